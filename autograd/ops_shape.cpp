// Views and shape ops.
#include <numeric>

#include "autograd/ops_util.h"

namespace memel {
using namespace detail;

MEMEL_REGISTER_OP("reshape");
MEMEL_REGISTER_OP("permute");
MEMEL_REGISTER_OP("slice");
MEMEL_REGISTER_OP("expand");
MEMEL_REGISTER_OP("contiguous");
MEMEL_REGISTER_OP("concat");
MEMEL_REGISTER_OP("pad");
MEMEL_REGISTER_OP("unbind");

namespace detail {
Tensor broadcast_view(const Tensor& t, const Shape& shape) {
  const int64_t nd = static_cast<int64_t>(shape.size()), td = t.dim();
  MEMEL_CHECK(td <= nd, "[expand] cannot expand shape ", shape_str(t.shape()), " to ", shape_str(shape));
  Shape st(shape.size(), 0);
  for (int64_t i = 0; i < td; ++i) {
    const int64_t d = nd - td + i;
    const int64_t sz = t.shape()[i];
    MEMEL_CHECK(sz == shape[d] || sz == 1, "[expand] cannot expand shape ", shape_str(t.shape()), " to ",
                shape_str(shape));
    st[d] = sz == 1 && shape[d] != 1 ? 0 : t.strides()[i];
  }
  return t.as_strided(shape, st, t.offset());
}

Axes normalize_axes(const Axes& axes, int64_t dim, const char* op) {
  Axes r;
  if (axes.empty()) {
    r.resize(static_cast<size_t>(dim));
    std::iota(r.begin(), r.end(), 0);
    return r;
  }
  for (int64_t a : axes) r.push_back(wrap_axis(a, dim, op));
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

Shape keepdim_shape(const Shape& s, const Axes& axes) {
  Shape r = s;
  for (int64_t a : axes) r[a] = 1;
  return r;
}
}  // namespace detail

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  Shape shape = shape_in;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      MEMEL_CHECK(infer < 0, "[reshape] more than one -1 in ", shape_str(shape_in));
      infer = static_cast<int64_t>(i);
    } else {
      MEMEL_CHECK(shape[i] >= 0, "[reshape] negative size in ", shape_str(shape_in));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    MEMEL_CHECK(known > 0 && x.numel() % known == 0, "[reshape] cannot reshape ", shape_str(x.shape()), " (",
                x.numel(), " elements) to ", shape_str(shape_in));
    shape[infer] = x.numel() / known;
  }
  MEMEL_CHECK(shape_numel(shape) == x.numel(), "[reshape] cannot reshape ", shape_str(x.shape()), " (", x.numel(),
              " elements) to ", shape_str(shape_in));
  Tensor base = x.is_contiguous() ? x : x.contiguous_copy();
  Tensor y = base.as_strided(shape, contiguous_strides(shape), base.offset());
  Shape xs = x.shape();
  return autograd::record("reshape", y, {x}, [xs](const TensorList& g) -> TensorList { return {reshape(g[0], xs)}; });
}

Tensor flatten(const Tensor& x, int64_t start, int64_t end) {
  if (x.dim() == 0) return reshape(x, {1});
  start = wrap_axis(start, x.dim(), "flatten");
  end = wrap_axis(end, x.dim(), "flatten");
  Shape s;
  for (int64_t i = 0; i < start; ++i) s.push_back(x.shape()[i]);
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= x.shape()[i];
  s.push_back(m);
  for (int64_t i = end + 1; i < x.dim(); ++i) s.push_back(x.shape()[i]);
  return reshape(x, s);
}

Tensor permute(const Tensor& x, const Axes& order) {
  MEMEL_CHECK(static_cast<int64_t>(order.size()) == x.dim(), "[permute] order of length ", order.size(),
              " for a tensor of rank ", x.dim());
  Shape s(order.size()), st(order.size());
  Axes inv(order.size());
  std::vector<bool> seen(order.size(), false);
  for (size_t i = 0; i < order.size(); ++i) {
    int64_t a = wrap_axis(order[i], x.dim(), "permute");
    MEMEL_CHECK(!seen[a], "[permute] axis ", a, " repeated in the order");
    seen[a] = true;
    s[i] = x.shape()[a];
    st[i] = x.strides()[a];
    inv[a] = static_cast<int64_t>(i);
  }
  Tensor y = x.as_strided(s, st, x.offset());
  return autograd::record("permute", y, {x}, [inv](const TensorList& g) -> TensorList { return {permute(g[0], inv)}; });
}

Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  Axes order(static_cast<size_t>(x.dim()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[wrap_axis(a, x.dim(), "transpose")], order[wrap_axis(b, x.dim(), "transpose")]);
  return permute(x, order);
}

namespace {
// Gradient of a strided sub-view: zeros of the base shape with g written into the view.
Tensor scatter_into_zeros(const Tensor& g, const Shape& base_shape, int64_t axis, int64_t start, int64_t step) {
  Tensor z = Tensor::zeros(base_shape, g.dtype(), g.device());
  Shape st = z.strides();
  int64_t off = start * st[axis];
  st[axis] *= step;
  Tensor view = z.as_strided(g.shape(), st, off);
  backend_for(z).copy(g, view);
  return z;
}
}  // namespace

Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  axis = wrap_axis(axis, x.dim(), "slice");
  const int64_t n = x.shape()[axis];
  MEMEL_CHECK(step > 0, "[slice] step must be positive, got ", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = x.shape(), st = x.strides();
  s[axis] = (end - start + step - 1) / step;
  st[axis] *= step;
  Tensor y = x.as_strided(s, st, x.offset() + start * x.strides()[axis]);
  Shape xs = x.shape();
  return autograd::record("slice", y, {x}, [=](const TensorList& g) -> TensorList {
    return {scatter_into_zeros(cont(g[0]), xs, axis, start, step)};
  });
}

Tensor select(const Tensor& x, int64_t axis, int64_t index) {
  axis = wrap_axis(axis, x.dim(), "select");
  const int64_t n = x.shape()[axis];
  MEMEL_CHECK(index >= -n && index < n, "[select] index ", index, " out of range for axis ", axis, " of size ", n);
  if (index < 0) index += n;
  return squeeze(slice(x, axis, index, index + 1), axis);
}

Tensor squeeze(const Tensor& x, int64_t axis) {
  axis = wrap_axis(axis, x.dim(), "squeeze");
  MEMEL_CHECK(x.shape()[axis] == 1, "[squeeze] axis ", axis, " has size ", x.shape()[axis], ", expected 1");
  Shape s = x.shape();
  s.erase(s.begin() + axis);
  Shape st = x.strides();
  st.erase(st.begin() + axis);
  Tensor y = x.as_strided(s, st, x.offset());
  Shape xs = x.shape();
  return autograd::record("reshape", y, {x}, [xs](const TensorList& g) -> TensorList { return {reshape(g[0], xs)}; });
}

Tensor unsqueeze(const Tensor& x, int64_t axis) {
  axis = wrap_axis(axis, x.dim() + 1, "unsqueeze");
  Shape s = x.shape(), st = x.strides();
  int64_t stride = axis < x.dim() ? x.strides()[axis] * x.shape()[axis] : 1;
  s.insert(s.begin() + axis, 1);
  st.insert(st.begin() + axis, stride);
  Tensor y = x.as_strided(s, st, x.offset());
  Shape xs = x.shape();
  return autograd::record("reshape", y, {x}, [xs](const TensorList& g) -> TensorList { return {reshape(g[0], xs)}; });
}

Tensor expand(const Tensor& x, const Shape& shape_in) {
  Shape shape = shape_in;
  const int64_t off = static_cast<int64_t>(shape.size()) - x.dim();
  MEMEL_CHECK(off >= 0, "[expand] cannot expand shape ", shape_str(x.shape()), " to ", shape_str(shape_in));
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i)
    if (shape[i] == -1) {
      MEMEL_CHECK(i >= off, "[expand] -1 for a new axis in ", shape_str(shape_in));
      shape[i] = x.shape()[i - off];
    }
  Tensor y = broadcast_view(x, shape);
  Shape xs = x.shape();
  return autograd::record("expand", y, {x}, [xs](const TensorList& g) -> TensorList { return {sum_to(g[0], xs)}; });
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor y = x.contiguous_copy();
  return autograd::record("contiguous", y, {x}, [](const TensorList& g) -> TensorList { return {g[0]}; });
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  MEMEL_CHECK(!xs.empty(), "[concat] no tensors given");
  axis = wrap_axis(axis, xs[0].dim(), "concat");
  Shape s = xs[0].shape();
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_same(xs[0], xs[i], "concat");
    MEMEL_CHECK(xs[i].dim() == xs[0].dim(), "[concat] tensor ", i, " has rank ", xs[i].dim(), ", expected ",
                xs[0].dim());
    for (int64_t d = 0; d < xs[0].dim(); ++d)
      MEMEL_CHECK(d == axis || xs[i].shape()[d] == s[d], "[concat] tensor ", i, " has shape ",
                  shape_str(xs[i].shape()), ", incompatible with ", shape_str(s), " along axis ", d);
    total += xs[i].shape()[axis];
  }
  s[axis] = total;
  Tensor y = Tensor::empty(s, xs[0].dtype(), xs[0].device());
  std::vector<int64_t> sizes;
  int64_t off = 0;
  for (const Tensor& x : xs) {
    Shape vs = s;
    vs[axis] = x.shape()[axis];
    Tensor view = y.as_strided(vs, y.strides(), off * y.strides()[axis]);
    backend_for(y).copy(x, view);
    off += x.shape()[axis];
    sizes.push_back(x.shape()[axis]);
  }
  return autograd::record("concat", y, xs, [sizes, axis](const TensorList& g) -> TensorList {
    TensorList r;
    int64_t o = 0;
    for (int64_t n : sizes) {
      r.push_back(slice(g[0], axis, o, o + n));
      o += n;
    }
    return r;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t axis) {
  MEMEL_CHECK(!xs.empty(), "[stack] no tensors given");
  axis = wrap_axis(axis, xs[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (size_t i = 0; i < xs.size(); ++i) {
    MEMEL_CHECK(xs[i].shape() == xs[0].shape(), "[stack] tensor ", i, " has shape ", shape_str(xs[i].shape()),
                ", expected ", shape_str(xs[0].shape()));
    u.push_back(unsqueeze(xs[i], axis));
  }
  return concat(u, axis);
}

std::vector<Tensor> unbind(const Tensor& x, int64_t axis) {
  axis = wrap_axis(axis, x.dim(), "unbind");
  const int64_t n = x.shape()[axis];
  Shape s = x.shape(), st = x.strides();
  s.erase(s.begin() + axis);
  st.erase(st.begin() + axis);
  TensorList parts;
  for (int64_t i = 0; i < n; ++i) parts.push_back(x.as_strided(s, st, x.offset() + i * x.strides()[axis]));
  if (n == 0) return parts;
  return autograd::record("unbind", parts, {x}, [axis](const TensorList& g) -> TensorList { return {stack(g, axis)}; });
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis) {
  axis = wrap_axis(axis, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  MEMEL_CHECK(total == x.shape()[axis], "[split] sizes sum to ", total, " but axis ", axis, " has size ",
              x.shape()[axis]);
  std::vector<Tensor> r;
  int64_t o = 0;
  for (int64_t s : sizes) {
    r.push_back(slice(x, axis, o, o + s));
    o += s;
  }
  return r;
}

Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts, const Axes& axes) {
  MEMEL_CHECK(shifts.size() == axes.size(), "[roll] ", shifts.size(), " shifts for ", axes.size(), " axes");
  Tensor y = x;
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = wrap_axis(axes[i], x.dim(), "roll");
    const int64_t n = x.shape()[a];
    if (n == 0) continue;
    const int64_t s = ((shifts[i] % n) + n) % n;
    if (s == 0) continue;
    y = concat({slice(y, a, n - s, n), slice(y, a, 0, n - s)}, a);
  }
  return y;
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  MEMEL_CHECK(pads.size() % 2 == 0 && static_cast<int64_t>(pads.size() / 2) <= x.dim(), "[pad] ", pads.size(),
              " pad values for a tensor of rank ", x.dim());
  Shape s = x.shape();
  int64_t off = 0;
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int64_t a = x.dim() - 1 - static_cast<int64_t>(i);
    MEMEL_CHECK(pads[2 * i] >= 0 && pads[2 * i + 1] >= 0, "[pad] negative padding is not supported");
    s[a] += pads[2 * i] + pads[2 * i + 1];
  }
  Tensor y = Tensor::full(s, value, x.dtype(), x.device());
  Shape st = y.strides();
  for (size_t i = 0; i < pads.size() / 2; ++i) off += pads[2 * i] * st[x.dim() - 1 - static_cast<int64_t>(i)];
  Tensor view = y.as_strided(x.shape(), st, off);
  backend_for(y).copy(x, view);
  Shape xs = x.shape();
  return autograd::record("pad", y, {x}, [xs, st, off](const TensorList& g) -> TensorList {
    Tensor gc = cont(g[0]);
    return {gc.as_strided(xs, gc.strides(), gc.offset() + off).contiguous_copy()};
  });
}

}  // namespace memel
