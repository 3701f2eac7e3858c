#pragma once
// The paper's check that inhibition works (memel-method.md section 7, Table 4). For each
// sample x and each method (original / naive_a / naive_b / rd): pick the neuron of x with
// the largest MS at the layer (against the layer's current, frozen statistics), take one
// optimiser step on x with that method applied to the neuron, and measure the same
// neuron on the same x again with the same statistics:
//   Decrease Ratio     = 1 - phi(z_after) / phi(z_before)   (> 0: less monosemantic)
//   Total Update Ratio = |z_after / z_before - 1|
// The weights are restored after every sample, so every sample starts from the same model.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "memel/layer.h"

namespace memel {

struct InhibitionValidation {
  std::string method;  // "original", "naive_a", "naive_b", "rd"
  int64_t samples = 0;
  double decrease_ratio = 0;      // mean over samples
  double total_update_ratio = 0;  // mean over samples
  std::vector<double> decrease_ratios, total_update_ratios;
};

// `loss_of(i)` runs the model on sample i and returns its loss; `step()` applies one
// optimiser step from the current gradients (a fresh optimiser each call, so steps do not
// share state). `layer` must already hold statistics (run data through it in training
// mode first). The model is left in eval mode with its weights and layer options restored.
std::vector<InhibitionValidation> validate_inhibition(Module& model, MemelLayer& layer,
                                                      const std::function<Tensor(int64_t)>& loss_of,
                                                      const std::function<void()>& step, int64_t num_samples,
                                                      const std::vector<std::string>& methods = {"original", "naive_a",
                                                                                                 "naive_b", "rd"});

std::string format_validation_table(const std::vector<InhibitionValidation>& rows);
nlohmann::json validation_to_json(const std::vector<InhibitionValidation>& rows);

}  // namespace memel
