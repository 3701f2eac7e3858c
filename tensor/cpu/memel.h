#pragma once
// The CPU backend's memel kernels (Backend::memel_pass, memel_merge, memel_select,
// memel_inhibit; tensor/backend.h): one pass over the activation on the thread pool, with
// sums in a fixed order per neuron, so results do not depend on the thread count.
#include <vector>

#include "tensor/backend.h"

namespace memel::cpu {

void memel_pass(const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean, const Tensor& var,
                const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar, Tensor& phi, Tensor& ms_sum,
                Tensor& ms_n, Tensor& ms_hist);
void memel_merge(Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount, const Tensor& bmean,
                 const Tensor& bvar, int64_t forget_batches, bool count_ahead);
std::vector<int64_t> memel_select(const Tensor& phi, const MemelSelectSpec& s);
void memel_inhibit(const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values);

}  // namespace memel::cpu
