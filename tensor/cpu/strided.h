#pragma once
// Helpers for CPU kernels over strided views: collapse dimensions, then call an inner
// loop over the last dimension with per-operand offsets.
#include <array>
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "tensor/strided_plan.h"
#include "tensor/tensor.h"

namespace memel::cpu {

// Calls f(offsets, n, inner_strides) for every run of the innermost dimension; runs
// are processed in parallel. Offsets are in elements relative to each operand's base.
template <int N, typename F>
void strided_for(const Shape& shape, const std::array<const Shape*, N>& strides, F&& f, int64_t grain_elems = 32768) {
  StridedPlan<N> p = make_plan<N>(shape, strides);
  const int64_t nd = static_cast<int64_t>(p.shape.size());
  const int64_t inner = p.shape.back();
  int64_t outer = 1;
  for (int64_t d = 0; d < nd - 1; ++d) outer *= p.shape[d];
  std::array<int64_t, N> istr;
  for (int k = 0; k < N; ++k) istr[k] = p.strides[k].back();
  int64_t grain = std::max<int64_t>(1, grain_elems / std::max<int64_t>(inner, 1));
  parallel_for(outer, grain, [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(static_cast<size_t>(std::max<int64_t>(nd - 1, 0)), 0);
    // Unravel b.
    int64_t rem = b;
    for (int64_t d = nd - 2; d >= 0; --d) {
      idx[d] = rem % p.shape[d];
      rem /= p.shape[d];
    }
    std::array<int64_t, N> off{};
    for (int k = 0; k < N; ++k)
      for (int64_t d = 0; d < nd - 1; ++d) off[k] += idx[d] * p.strides[k][d];
    for (int64_t o = b; o < e; ++o) {
      f(off, inner, istr);
      for (int64_t d = nd - 2; d >= 0; --d) {
        ++idx[d];
        for (int k = 0; k < N; ++k) off[k] += p.strides[k][d];
        if (idx[d] < p.shape[d]) break;
        for (int k = 0; k < N; ++k) off[k] -= p.strides[k][d] * p.shape[d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace memel::cpu
