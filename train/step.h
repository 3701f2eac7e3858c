#pragma once
// One optimisation step, the unit memel-train and memel-bench share.
#include <functional>
#include <stdexcept>

#include "autograd/ops.h"
#include "layers/module.h"
#include "optim/optimizer.h"

namespace memel::train {

class GradSync;  // train/data_parallel.h

// Thrown when the loss or the gradient norm is NaN/inf (memel-train exits with code 3).
struct NonFiniteLoss : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct StepOptions {
  int64_t accum = 1;       // micro-batches per step; each loss is scaled by 1/accum
  double clip = 0;         // > 0: clip the global gradient norm to this
  bool grad_norm = true;   // measure the gradient norm (and refuse a non-finite one)
  // Data-parallel runs: gradients averaged over the ranks (buckets started during the
  // last backward) before clipping, and the loss averaged for the result. Null: one process.
  GradSync* sync = nullptr;
};

struct StepResult {
  double loss = 0;       // mean over the micro-batches
  double grad_norm = 0;  // before clipping; 0 when not measured
};

// Forward and backward of each micro-batch (loss_of(i) builds micro-batch i's loss),
// then clipping, the update and zero_grad. A NaN/inf loss or gradient norm throws
// NonFiniteLoss before the update, so no bad value reaches the weights.
StepResult train_step(const std::vector<Tensor>& params, Optimizer& opt, const StepOptions& o,
                      const std::function<Tensor(int64_t micro)>& loss_of);

}  // namespace memel::train
