#pragma once
// Helpers shared by the op implementations (not part of the public API).
#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/registry.h"
#include "tensor/backend.h"

namespace memel::detail {

using autograd::TensorList;

// Contiguous data of t without history (a copy only when t is not contiguous).
inline Tensor cont(const Tensor& t) { return t.is_contiguous() ? t.detach() : t.contiguous_copy(); }

inline Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

inline void check_defined(const Tensor& t, const char* op, const char* what) {
  MEMEL_CHECK(t.defined(), "[", op, "] ", what, " is undefined");
}

inline void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  MEMEL_CHECK(a.device() == b.device(), "[", op, "] operands on different devices: ", a.device().str(), " and ",
              b.device().str());
}

inline void check_same(const Tensor& a, const Tensor& b, const char* op) {
  check_same_device(a, b, op);
  MEMEL_CHECK(a.dtype() == b.dtype(), "[", op, "] operands have different dtypes: ", dtype_name(a.dtype()), " and ",
              dtype_name(b.dtype()));
}

inline void check_float(const Tensor& t, const char* op) {
  MEMEL_CHECK(is_floating(t.dtype()), "[", op, "] expects a floating tensor, got ", dtype_name(t.dtype()));
}

// A raw view of t broadcast to `shape` (stride 0 on new/size-1 axes).
Tensor broadcast_view(const Tensor& t, const Shape& shape);

// Axes normalised, sorted and deduplicated; empty = all axes.
Axes normalize_axes(const Axes& axes, int64_t dim, const char* op);
// Shape with reduced axes set to 1.
Shape keepdim_shape(const Shape& s, const Axes& axes);

}  // namespace memel::detail
