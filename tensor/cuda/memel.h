#pragma once
// The CUDA backend's memel kernels (tensor/cuda/memel.cu): Backend::memel_pass,
// memel_merge, memel_inhibit, and top-1 selection (memel_select's default rule; false for
// the other rules, which the backend then runs composed).
#include <vector>

#include "tensor/backend.h"
#include "tensor/cuda/context.h"

namespace memel::cuda {

void memel_pass(const Context& c, const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean,
                const Tensor& var, const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar, Tensor& phi,
                Tensor& ms_sum, Tensor& ms_n, Tensor& ms_hist);
void memel_merge(const Context& c, Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount,
                 const Tensor& bmean, const Tensor& bvar, int64_t forget_batches, bool count_ahead);
bool memel_select(const Context& c, const Tensor& phi, const MemelSelectSpec& s, std::vector<int64_t>& out);
void memel_inhibit(const Context& c, const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values);

}  // namespace memel::cuda
