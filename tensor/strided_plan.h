#pragma once
// Strided iteration plans shared by the backends: N operands over one shape, size-1 axes
// dropped and adjacent axes merged where every operand allows it.
#include <array>

#include "tensor/tensor.h"

namespace memel {

// Operand strides for N operands over a common shape, with adjacent dimensions
// merged where every operand allows it.
template <int N>
struct StridedPlan {
  Shape shape;
  std::array<Shape, N> strides;
};

template <int N>
StridedPlan<N> make_plan(const Shape& shape, const std::array<const Shape*, N>& strides) {
  StridedPlan<N> p;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !p.shape.empty();
    for (int k = 0; merge && k < N; ++k) merge = p.strides[k].back() == (*strides[k])[d] * shape[d];
    if (merge) {
      p.shape.back() *= shape[d];
      for (int k = 0; k < N; ++k) p.strides[k].back() = (*strides[k])[d];
    } else {
      p.shape.push_back(shape[d]);
      for (int k = 0; k < N; ++k) p.strides[k].push_back((*strides[k])[d]);
    }
  }
  if (p.shape.empty()) {
    p.shape.push_back(1);
    for (int k = 0; k < N; ++k) p.strides[k].push_back(0);
  }
  return p;
}

}  // namespace memel
