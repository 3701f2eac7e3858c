#pragma once
// Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_.
#include <vector>

#include "tensor/tensor.h"

namespace memel {

// sqrt(sum over parameters of sum(grad^2)), accumulated in double; parameters without
// a gradient are skipped.
double grad_norm(const std::vector<Tensor>& params);

// Scales every gradient in place by max_norm / (norm + 1e-6) when that factor is below 1
// (i.e. when norm exceeds max_norm). Returns the total norm before clipping. A
// non-finite norm leaves the gradients alone unless error_if_nonfinite, which throws.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, bool error_if_nonfinite = false);

}  // namespace memel
