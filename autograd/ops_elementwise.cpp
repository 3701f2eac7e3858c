// Elementwise ops with broadcasting, and reductions.
#include "autograd/ops_util.h"

namespace memel {
using namespace detail;

MEMEL_REGISTER_OP("add");
MEMEL_REGISTER_OP("sub");
MEMEL_REGISTER_OP("mul");
MEMEL_REGISTER_OP("div");
MEMEL_REGISTER_OP("maximum");
MEMEL_REGISTER_OP("minimum");
MEMEL_REGISTER_OP("where");
MEMEL_REGISTER_NONDIFF_OP("compare");
MEMEL_REGISTER_OP("sum");
MEMEL_REGISTER_OP("amax");
MEMEL_REGISTER_NONDIFF_OP("argmax");

namespace {

Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_same(a, b, name);
  Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  backend_for(a).binary(op, broadcast_view(a, s), broadcast_view(b, s), out);
  return out;
}

}  // namespace

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  MEMEL_CHECK(lead >= 0, "[sum_to] cannot reduce ", shape_str(x.shape()), " to ", shape_str(shape));
  Axes axes;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1)) axes.push_back(i);
  Tensor r = axes.empty() ? x : sum(x, axes, true);
  return reshape(r, shape);
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw(BinaryOp::Add, a, b, "add");
  Shape as = a.shape(), bs = b.shape();
  return autograd::record("add", y, {a, b}, [as, bs](const TensorList& g) -> TensorList {
    return {sum_to(g[0], as), sum_to(g[0], bs)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw(BinaryOp::Sub, a, b, "sub");
  Shape as = a.shape(), bs = b.shape();
  return autograd::record("sub", y, {a, b}, [as, bs](const TensorList& g) -> TensorList {
    return {sum_to(g[0], as), sum_to(neg(g[0]), bs)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw(BinaryOp::Mul, a, b, "mul");
  bool ga = a.requires_grad(), gb = b.requires_grad();
  Tensor ad = a.detach(), bd = b.detach();
  return autograd::record("mul", y, {a, b}, [=](const TensorList& g) -> TensorList {
    return {ga ? sum_to(mul(g[0], bd), ad.shape()) : Tensor(), gb ? sum_to(mul(g[0], ad), bd.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary_raw(BinaryOp::Div, a, b, "div");
  bool ga = a.requires_grad(), gb = b.requires_grad();
  Tensor ad = a.detach(), bd = b.detach();
  return autograd::record("div", y, {a, b}, [=](const TensorList& g) -> TensorList {
    Tensor gra = ga ? sum_to(div(g[0], bd), ad.shape()) : Tensor();
    Tensor grb = gb ? sum_to(neg(div(mul(g[0], ad), mul(bd, bd))), bd.shape()) : Tensor();
    return {gra, grb};
  });
}

namespace {
Tensor minmax(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  Tensor y = binary_raw(op, a, b, name);
  Tensor ad = a.detach(), bd = b.detach();
  return autograd::record(name, y, {a, b}, [=](const TensorList& g) -> TensorList {
    // The gradient goes to the winner; ties split it evenly.
    Tensor win_a = op == BinaryOp::Max ? gt(ad, bd) : lt(ad, bd);
    Tensor tie = eq(ad, bd);
    Tensor wa = add(win_a, mul(tie, 0.5));
    Tensor wb = add(mul(wa, -1.0), 1.0);
    return {sum_to(mul(g[0], wa), ad.shape()), sum_to(mul(g[0], wb), bd.shape())};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return minmax(BinaryOp::Max, a, b, "maximum"); }
Tensor minimum(const Tensor& a, const Tensor& b) { return minmax(BinaryOp::Min, a, b, "minimum"); }

Tensor eq(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Eq, a, b, "eq"); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Gt, a, b, "gt"); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Lt, a, b, "lt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::Ge, a, b, "ge"); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same(a, b, "where");
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  backend_for(a).where(broadcast_view(cond, s), broadcast_view(a, s), broadcast_view(b, s), out);
  Tensor cd = cond.detach();
  Shape as = a.shape(), bs = b.shape();
  return autograd::record("where", out, {a, b}, [=](const TensorList& g) -> TensorList {
    Tensor z = Tensor::zeros({}, g[0].dtype(), g[0].device());
    return {sum_to(where(cd, g[0], z), as), sum_to(where(cd, z, g[0]), bs)};
  });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, Tensor::full({}, value, x.dtype(), x.device()), x);
}

// --- reductions -------------------------------------------------------------------

Tensor sum(const Tensor& x, const Axes& axes_in, bool keepdim) {
  Axes axes = normalize_axes(axes_in, x.dim(), "sum");
  Shape ks = keepdim_shape(x.shape(), axes);
  Tensor out = Tensor::empty(ks, x.dtype(), x.device());
  if (x.dim() == 0)
    backend_for(x).copy(x, out);
  else
    backend_for(x).reduce(ReduceOp::Sum, x, out);
  Shape xs = x.shape();
  Tensor y = out;
  if (!keepdim) {
    Shape s;
    for (int64_t i = 0; i < x.dim(); ++i)
      if (!std::binary_search(axes.begin(), axes.end(), i)) s.push_back(x.shape()[i]);
    y = out.as_strided(s, contiguous_strides(s), 0);
  }
  return autograd::record("sum", y, {x}, [xs, ks](const TensorList& g) -> TensorList {
    return {contiguous(expand(reshape(g[0], ks), xs))};
  });
}

Tensor mean(const Tensor& x, const Axes& axes_in, bool keepdim) {
  Axes axes = normalize_axes(axes_in, x.dim(), "mean");
  int64_t n = 1;
  for (int64_t a : axes) n *= x.shape()[a];
  return mul(sum(x, axes, keepdim), 1.0 / static_cast<double>(std::max<int64_t>(n, 1)));
}

namespace {
Tensor extreme(const Tensor& x, const Axes& axes_in, bool keepdim, bool is_max) {
  const char* name = is_max ? "amax" : "amin";
  Axes axes = normalize_axes(axes_in, x.dim(), name);
  for (int64_t a : axes) MEMEL_CHECK(x.shape()[a] > 0, "[", name, "] reduction over an empty axis");
  Shape ks = keepdim_shape(x.shape(), axes);
  Tensor out = Tensor::empty(ks, x.dtype(), x.device());
  if (x.dim() == 0)
    backend_for(x).copy(x, out);
  else
    backend_for(x).reduce(is_max ? ReduceOp::Max : ReduceOp::Min, x, out);
  Tensor y = out;
  Shape s;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (!std::binary_search(axes.begin(), axes.end(), i)) s.push_back(x.shape()[i]);
  if (!keepdim) y = out.as_strided(s, contiguous_strides(s), 0);
  Tensor xd = x.detach(), od = out.detach();
  return autograd::record("amax", y, {x}, [xd, od, ks, axes](const TensorList& g) -> TensorList {
    Tensor mask = eq(xd, od);                          // ties share the gradient
    Tensor cnt = sum(mask, axes, true);
    return {mul(div(reshape(g[0], ks), cnt), mask)};
  });
}
}  // namespace

Tensor amax(const Tensor& x, const Axes& axes, bool keepdim) { return extreme(x, axes, keepdim, true); }
Tensor amin(const Tensor& x, const Axes& axes, bool keepdim) { return extreme(x, axes, keepdim, false); }

Tensor var(const Tensor& x, const Axes& axes_in, bool unbiased, bool keepdim) {
  Axes axes = normalize_axes(axes_in, x.dim(), "var");
  int64_t n = 1;
  for (int64_t a : axes) n *= x.shape()[a];
  MEMEL_CHECK(n > (unbiased ? 1 : 0), "[var] needs at least ", unbiased ? 2 : 1, " elements per reduction, got ", n);
  Tensor d = sub(x, mean(x, axes, true));
  return mul(sum(mul(d, d), axes, keepdim), 1.0 / static_cast<double>(unbiased ? n - 1 : n));
}

Tensor argmax(const Tensor& x, int64_t axis, bool keepdim) {
  axis = wrap_axis(axis, x.dim(), "argmax");
  // (rows, n) with the reduced axis last.
  Tensor xl = cont(transpose(x.detach(), axis, -1));
  const int64_t n = xl.shape().back();
  MEMEL_CHECK(n > 0, "[argmax] empty axis");
  Shape s = xl.shape();
  s.pop_back();
  Tensor out = Tensor::empty(s, DType::I64, x.device());
  backend_for(x).argmax_last(xl, out);
  // Restore the axis order of x without the reduced axis.
  if (axis != x.dim() - 1 && x.dim() > 1) {
    // transpose(axis, -1) put x's last axis at position `axis`: move it back to the end.
    Axes perm;
    for (int64_t i = 0; i < axis; ++i) perm.push_back(i);
    for (int64_t i = axis + 1; i < x.dim() - 1; ++i) perm.push_back(i);
    perm.push_back(axis);
    out = cont(permute(out, perm));
  }
  if (keepdim) out = reshape(out, keepdim_shape(x.shape(), {axis}));
  return out;
}

}  // namespace memel
