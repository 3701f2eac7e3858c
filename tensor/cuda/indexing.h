#pragma once
// Element offsets of N strided operands over one shape, for CUDA kernels and their host
// emulation (tensor/cuda/functors.h): a flat index i in [0, numel) is unravelled over the
// merged shape (tensor/strided_plan.h), last axis fastest.
#include <cstdint>

#include "core/hd.h"
#include "tensor/strided_plan.h"

namespace memel::cuda {

constexpr int kMaxDims = 8;

template <int N>
struct Strided {
  int nd = 1;
  int64_t shape[kMaxDims] = {1};
  int64_t strides[N][kMaxDims] = {};

  MEMEL_HD void offsets(int64_t i, int64_t* off) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t idx = i % shape[d];
      i /= shape[d];
      for (int k = 0; k < N; ++k) off[k] += idx * strides[k][d];
    }
  }
};

// The plan of `shape` for the N operands' strides (host).
template <int N>
Strided<N> make_strided(const Shape& shape, const std::array<const Shape*, N>& strides) {
  const StridedPlan<N> p = make_plan<N>(shape, strides);
  MEMEL_CHECK(p.shape.size() <= size_t(kMaxDims), "[cuda] a strided view of ", p.shape.size(),
              " non-mergeable axes; at most ", kMaxDims, " are supported");
  Strided<N> s;
  s.nd = static_cast<int>(p.shape.size());
  for (int d = 0; d < s.nd; ++d) {
    s.shape[d] = p.shape[size_t(d)];
    for (int k = 0; k < N; ++k) s.strides[k][d] = p.strides[size_t(k)][size_t(d)];
  }
  return s;
}

}  // namespace memel::cuda
