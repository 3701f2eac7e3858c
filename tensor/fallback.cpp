// The fused kernels composed from core kernels (tensor/fallback.h). Everything here runs
// on the backend `b` through its core kernels: views are made with as_strided, constants
// that depend only on shapes are built on the host and transferred, and nothing reads
// device memory from the host except a scalar in an error path.
#include "tensor/fallback.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/memel_math.h"
#include "tensor/ms_hist.h"

namespace memel::fallback {
namespace {

// --- small helpers over the core kernels ------------------------------------------------

Tensor empty(Backend& b, const Shape& s, DType dt) { return Tensor::empty(s, dt, b.device()); }

Tensor full(Backend& b, const Shape& s, double v, DType dt) {
  Tensor t = empty(b, s, dt);
  b.fill(t, v);
  return t;
}

// t viewed with `shape` (same number of elements, t contiguous).
Tensor view(const Tensor& t, const Shape& shape) { return t.as_strided(shape, contiguous_strides(shape), t.offset()); }

// t broadcast to `shape` (numpy rules) as a view with stride 0 on broadcast axes.
Tensor expand_to(const Tensor& t, const Shape& shape) {
  const size_t n = shape.size(), k = t.shape().size();
  Shape st(n, 0);
  for (size_t i = 0; i < k; ++i) {
    const size_t j = n - k + i;
    st[j] = t.shape()[i] == 1 && shape[j] != 1 ? 0 : t.strides()[i];
  }
  return t.as_strided(shape, st, t.offset());
}

Tensor un(Backend& b, UnaryOp op, const Tensor& x, double alpha = 0.0) {
  Tensor out = empty(b, x.shape(), x.dtype());
  b.unary(op, x, out, alpha);
  return out;
}

Tensor bin(Backend& b, BinaryOp op, const Tensor& x, const Tensor& y) {
  const Shape s = broadcast_shapes(x.shape(), y.shape(), "fallback");
  Tensor out = empty(b, s, x.dtype());
  b.binary(op, expand_to(x, s), expand_to(y, s), out);
  return out;
}

// dst (a view) op= src, src broadcast to dst's shape.
void bin_into(Backend& b, BinaryOp op, Tensor& dst, const Tensor& src) { b.binary(op, dst, expand_to(src, dst.shape()), dst); }

Tensor scalar(Backend& b, double v, DType dt) { return full(b, {}, v, dt); }

// Reduction over the last axis of x (rows, n), kept as (rows, 1).
Tensor reduce_last(Backend& b, ReduceOp op, const Tensor& x) {
  Shape s = x.shape();
  s.back() = 1;
  Tensor out = empty(b, s, x.dtype());
  b.reduce(op, x, out);
  return out;
}

// Reduction over axis 0, kept.
Tensor reduce_first(Backend& b, ReduceOp op, const Tensor& x) {
  Shape s = x.shape();
  s[0] = 1;
  Tensor out = empty(b, s, x.dtype());
  b.reduce(op, x, out);
  return out;
}

Tensor where(Backend& b, const Tensor& cond, const Tensor& x, const Tensor& y) {
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape(), x.shape(), "where"), y.shape(), "where");
  Tensor out = empty(b, s, x.dtype());
  b.where(expand_to(cond, s), expand_to(x, s), expand_to(y, s), out);
  return out;
}

void assign(Backend& b, Tensor dst, const Tensor& src) { b.copy(expand_to(src, dst.shape()), dst); }

// dst (a view, often a temporary) = src.
void copy_to(Backend& b, const Tensor& src, Tensor dst) { b.copy(src, dst); }

Tensor cast(Backend& b, const Tensor& x, DType dt) {
  Tensor out = empty(b, x.shape(), dt);
  b.copy(x, out);
  return out;
}

// A host-built constant on the backend's device.
template <typename T>
Tensor constant(Backend& b, const std::vector<T>& v, const Shape& s, DType dt) {
  return Tensor::from_vector(v, s, dt).to(b.device());
}

Tensor col(const Tensor& t) { return view(t, {t.numel(), 1}); }  // (n) -> (n, 1)

// The value of a one-element tensor on the host (error paths and scalar results only).
double host_scalar(const Tensor& t) { return t.to(Device::cpu()).item(); }

constexpr double kInf = std::numeric_limits<double>::infinity();

// The (N, C, OH, OW) view of padded (N, C, Hp, Wp) at window offset (i, j) (in padded
// coordinates) with strides (sh, sw).
Tensor window_view(const Tensor& padded, int64_t OH, int64_t OW, int64_t i, int64_t j, int sh, int sw) {
  const int64_t N = padded.shape()[0], C = padded.shape()[1], Hp = padded.shape()[2], Wp = padded.shape()[3];
  return padded.as_strided({N, C, OH, OW}, {C * Hp * Wp, Hp * Wp, sh * Wp, sw}, padded.offset() + i * Wp + j);
}

// The interior (N, C, H, W) view of a padded image.
Tensor interior(const Tensor& p, int64_t H, int64_t W, int ph, int pw) {
  const int64_t N = p.shape()[0], C = p.shape()[1], Hp = p.shape()[2], Wp = p.shape()[3];
  return p.as_strided({N, C, H, W}, {C * Hp * Wp, Hp * Wp, Wp, 1}, p.offset() + ph * Wp + pw);
}

// padded (N, C, H + 2ph, W + 2pw) holding value v around x (or zeros when x is undefined).
Tensor pad_image(Backend& b, const Tensor& x, const Shape& xs, int ph, int pw, DType dt, double v) {
  const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], Hp = H + 2 * ph, Wp = W + 2 * pw;
  Tensor p = full(b, {N, C, Hp, Wp}, v, dt);
  if (x.defined()) copy_to(b, x, interior(p, H, W, ph, pw));
  return p;
}

}  // namespace

// --- softmax, LayerNorm, dropout ---------------------------------------------------------

void softmax(Backend& b, const Tensor& x, Tensor& y, bool log) {
  Tensor mx = reduce_last(b, ReduceOp::Max, x);
  mx = where(b, bin(b, BinaryOp::Eq, mx, scalar(b, -kInf, x.dtype())), scalar(b, 0.0, x.dtype()), mx);  // masked row
  Tensor e = un(b, UnaryOp::Exp, bin(b, BinaryOp::Sub, x, mx));
  Tensor s = reduce_last(b, ReduceOp::Sum, e);
  if (log) {
    b.binary(BinaryOp::Sub, x, expand_to(bin(b, BinaryOp::Add, un(b, UnaryOp::Log, s), mx), x.shape()), y);
  } else {
    Tensor zero = scalar(b, 0.0, x.dtype());
    Tensor inv = where(b, bin(b, BinaryOp::Gt, s, zero), un(b, UnaryOp::Reciprocal, s), zero);
    b.binary(BinaryOp::Mul, e, expand_to(inv, x.shape()), y);
  }
}

void softmax_backward(Backend& b, const Tensor& y, const Tensor& gy, Tensor& gx, bool log) {
  if (log) {
    Tensor s = reduce_last(b, ReduceOp::Sum, gy);
    b.binary(BinaryOp::Sub, gy, bin(b, BinaryOp::Mul, un(b, UnaryOp::Exp, y), s), gx);
  } else {
    Tensor s = reduce_last(b, ReduceOp::Sum, bin(b, BinaryOp::Mul, gy, y));
    b.binary(BinaryOp::Mul, y, bin(b, BinaryOp::Sub, gy, s), gx);
  }
}

void layer_norm(Backend& b, const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                Tensor& mean, Tensor& rstd) {
  const int64_t n = x.shape().back();
  const double inv_n = 1.0 / double(n);
  Tensor mu = un(b, UnaryOp::MulScalar, reduce_last(b, ReduceOp::Sum, x), inv_n);  // (rows, 1)
  Tensor d = bin(b, BinaryOp::Sub, x, mu);
  Tensor var = un(b, UnaryOp::MulScalar, reduce_last(b, ReduceOp::Sum, un(b, UnaryOp::Square, d)), inv_n);
  Tensor rs = un(b, UnaryOp::Rsqrt, un(b, UnaryOp::AddScalar, var, eps));
  Tensor h = bin(b, BinaryOp::Mul, d, rs);
  if (weight.defined()) h = bin(b, BinaryOp::Mul, h, weight);
  if (bias.defined()) h = bin(b, BinaryOp::Add, h, bias);
  b.copy(h, y);
  b.copy(view(mu, mean.shape()), mean);
  b.copy(view(rs, rstd.shape()), rstd);
}

void layer_norm_backward(Backend& b, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) {
  const int64_t n = x.shape().back(), rows = x.numel() / std::max<int64_t>(n, 1);
  const Tensor x2 = view(x, {rows, n}), g2 = view(gy, {rows, n});
  const Tensor m = view(mean, {rows, 1}), rs = view(rstd, {rows, 1});
  Tensor xh = bin(b, BinaryOp::Mul, bin(b, BinaryOp::Sub, x2, m), rs);
  Tensor gw_ = weight.defined() ? bin(b, BinaryOp::Mul, g2, weight) : g2;
  Tensor a1 = un(b, UnaryOp::MulScalar, reduce_last(b, ReduceOp::Sum, gw_), 1.0 / double(n));
  Tensor a2 = un(b, UnaryOp::MulScalar, reduce_last(b, ReduceOp::Sum, bin(b, BinaryOp::Mul, gw_, xh)), 1.0 / double(n));
  Tensor t = bin(b, BinaryOp::Sub, bin(b, BinaryOp::Sub, gw_, a1), bin(b, BinaryOp::Mul, xh, a2));
  copy_to(b, bin(b, BinaryOp::Mul, t, rs), view(gx, {rows, n}));
  if (gw.defined()) b.copy(view(reduce_first(b, ReduceOp::Sum, bin(b, BinaryOp::Mul, g2, xh)), gw.shape()), gw);
  if (gb.defined()) b.copy(view(reduce_first(b, ReduceOp::Sum, g2), gb.shape()), gb);
}

void dropout_mask(Backend& b, uint64_t seed, uint64_t offset, double p, Tensor& mask) {
  Tensor u = empty(b, mask.shape(), mask.dtype());
  b.uniform(seed, offset, u);
  Tensor keep = bin(b, BinaryOp::Ge, u, scalar(b, double(static_cast<float>(p)), mask.dtype()));
  b.unary(UnaryOp::MulScalar, keep, mask, 1.0 / (1.0 - p));
}

// --- convolution paths and pooling -------------------------------------------------------

void im2col(Backend& b, const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& cols) {
  const int64_t N = x.shape()[0], C = x.shape()[1];
  const int64_t OH = cols.shape()[2] == 0 ? 0 : (x.shape()[2] + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
  const int64_t OW = OH == 0 ? 0 : cols.shape()[2] / OH;
  if (cols.numel() == 0) return;
  Tensor p = pad_image(b, x, x.shape(), ph, pw, x.dtype(), 0.0);
  const int64_t Hp = p.shape()[2], Wp = p.shape()[3];
  // cols (N, C, kh, kw, OH, OW) in one strided copy of the padded image.
  Tensor src = p.as_strided({N, C, kh, kw, OH, OW}, {C * Hp * Wp, Hp * Wp, dh * Wp, dw, sh * Wp, sw}, p.offset());
  copy_to(b, src, view(cols, {N, C, kh, kw, OH, OW}));
}

void col2im(Backend& b, const Tensor& cols, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& x) {
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t OH = (H + 2 * ph - dh * (kh - 1) - 1) / sh + 1, OW = (W + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
  Tensor p = pad_image(b, Tensor(), x.shape(), ph, pw, x.dtype(), 0.0);
  if (OH > 0 && OW > 0) {
    const Tensor c6 = view(cols, {N, C, kh, kw, OH, OW});
    for (int64_t i = 0; i < kh; ++i)
      for (int64_t j = 0; j < kw; ++j) {
        Tensor dst = window_view(p, OH, OW, i * dh, j * dw, sh, sw);
        Tensor src = c6.as_strided({N, C, OH, OW}, {C * kh * kw * OH * OW, kh * kw * OH * OW, OW, 1},
                                   c6.offset() + (i * kw + j) * OH * OW);
        b.binary(BinaryOp::Add, dst, src, dst);
      }
  }
  b.copy(interior(p, H, W, ph, pw), x);
}

namespace {

// For pooling window offset (i, j): which outputs (OH, OW) see an in-image pixel there,
// and that pixel's flat index in H*W (0 where none).
void window_positions(int64_t H, int64_t W, int64_t OH, int64_t OW, int i, int j, int sh, int sw, int ph, int pw,
                      std::vector<double>& valid, std::vector<int64_t>& index) {
  valid.assign(size_t(OH * OW), 0.0);
  index.assign(size_t(OH * OW), 0);
  for (int64_t oy = 0; oy < OH; ++oy)
    for (int64_t ox = 0; ox < OW; ++ox) {
      const int64_t iy = oy * sh - ph + i, ix = ox * sw - pw + j;
      if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
      valid[size_t(oy * OW + ox)] = 1.0;
      index[size_t(oy * OW + ox)] = iy * W + ix;
    }
}

// The divisor of every average-pooling output (OH, OW).
std::vector<double> avg_divisors(int64_t H, int64_t W, int64_t OH, int64_t OW, int kh, int kw, int sh, int sw, int ph,
                                 int pw, bool count_pad) {
  std::vector<double> d(size_t(OH * OW));
  for (int64_t oy = 0; oy < OH; ++oy)
    for (int64_t ox = 0; ox < OW; ++ox) {
      const int64_t y0 = oy * sh - ph, x0 = ox * sw - pw;
      int64_t n;
      if (count_pad) {
        n = (std::min<int64_t>(y0 + kh, H + ph) - y0) * (std::min<int64_t>(x0 + kw, W + pw) - x0);
      } else {
        n = (std::min<int64_t>(y0 + kh, H) - std::max<int64_t>(y0, 0)) *
            (std::min<int64_t>(x0 + kw, W) - std::max<int64_t>(x0, 0));
      }
      d[size_t(oy * OW + ox)] = double(std::max<int64_t>(n, 1));
    }
  return d;
}

}  // namespace

void max_pool2d(Backend& b, const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor& y,
                Tensor& argmax) {
  const int64_t H = x.shape()[2], W = x.shape()[3], OH = y.shape()[2], OW = y.shape()[3];
  const DType dt = x.dtype();
  Tensor p = pad_image(b, x, x.shape(), ph, pw, dt, 0.0);
  Tensor best = full(b, y.shape(), 0.0, dt), arg = full(b, y.shape(), -1.0, DType::I64);
  Tensor have = full(b, y.shape(), 0.0, dt);  // 1 once a window has seen an in-image pixel
  std::vector<double> valid;
  std::vector<int64_t> index;
  for (int i = 0; i < kh; ++i)
    for (int j = 0; j < kw; ++j) {
      window_positions(H, W, OH, OW, i, j, sh, sw, ph, pw, valid, index);
      const Tensor v = window_view(p, OH, OW, i, j, sh, sw);
      const Tensor ok = constant(b, valid, {OH, OW}, dt), idx = constant(b, index, {OH, OW}, DType::I64);
      // take = ok * (not have or v > best or v is NaN): the first maximum wins, NaN wins.
      Tensor better = bin(b, BinaryOp::Max, bin(b, BinaryOp::Gt, v, best), bin(b, BinaryOp::Ne, v, v));
      better = bin(b, BinaryOp::Max, better, un(b, UnaryOp::AddScalar, un(b, UnaryOp::Neg, have), 1.0));
      const Tensor take = bin(b, BinaryOp::Mul, better, ok);
      best = where(b, take, v, best);
      arg = where(b, take, expand_to(idx, y.shape()), arg);
      have = bin(b, BinaryOp::Max, have, ok);
    }
  b.copy(best, y);
  b.copy(arg, argmax);
}

void max_pool2d_backward(Backend& b, const Tensor& gy, const Tensor& argmax, Tensor& gx) {
  const int64_t N = gx.shape()[0], C = gx.shape()[1], HW = gx.shape()[2] * gx.shape()[3];
  const int64_t OHW = gy.shape()[2] * gy.shape()[3];
  b.fill(gx, 0.0);
  if (gy.numel() == 0) return;
  std::vector<int64_t> base(static_cast<size_t>(N * C));
  for (int64_t p = 0; p < N * C; ++p) base[size_t(p)] = p * HW;
  // Flat targets in gx: the plane's first element plus the argmax within it.
  Tensor ids = bin(b, BinaryOp::Add, view(argmax, {N * C, OHW}), constant(b, base, {N * C, 1}, DType::I64));
  Tensor out = col(gx);
  b.index_add(col(gy), view(ids, {N * C * OHW}), out, "max_pool2d_backward");
}

void avg_pool2d(Backend& b, const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad,
                Tensor& y) {
  const int64_t H = x.shape()[2], W = x.shape()[3], OH = y.shape()[2], OW = y.shape()[3];
  Tensor p = pad_image(b, x, x.shape(), ph, pw, x.dtype(), 0.0);
  Tensor s = full(b, y.shape(), 0.0, x.dtype());
  for (int i = 0; i < kh; ++i)
    for (int j = 0; j < kw; ++j) bin_into(b, BinaryOp::Add, s, window_view(p, OH, OW, i, j, sh, sw));
  const Tensor div = constant(b, avg_divisors(H, W, OH, OW, kh, kw, sh, sw, ph, pw, count_pad), {OH, OW}, x.dtype());
  b.binary(BinaryOp::Div, s, expand_to(div, y.shape()), y);
}

void avg_pool2d_backward(Backend& b, const Tensor& gy, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad,
                         Tensor& gx) {
  const int64_t H = gx.shape()[2], W = gx.shape()[3], OH = gy.shape()[2], OW = gy.shape()[3];
  const Tensor div = constant(b, avg_divisors(H, W, OH, OW, kh, kw, sh, sw, ph, pw, count_pad), {OH, OW}, gy.dtype());
  const Tensor g = bin(b, BinaryOp::Div, gy, div);
  Tensor p = pad_image(b, Tensor(), gx.shape(), ph, pw, gx.dtype(), 0.0);
  for (int i = 0; i < kh; ++i)
    for (int j = 0; j < kw; ++j) {
      Tensor dst = window_view(p, OH, OW, i, j, sh, sw);
      b.binary(BinaryOp::Add, dst, g, dst);
    }
  b.copy(interior(p, H, W, ph, pw), gx);
}

// --- attention ---------------------------------------------------------------------------

namespace {

// One (b) slice of a (B, H, rows, cols) view as a 3-d (H, rows, cols) view.
Tensor head_slice(const Tensor& t, int64_t bi) {
  return t.as_strided({t.shape()[1], t.shape()[2], t.shape()[3]}, {t.strides()[1], t.strides()[2], t.strides()[3]},
                      t.offset() + bi * t.strides()[0]);
}

// c (B, H, M, N) = alpha * op(a) op(b) per (batch, head).
void gemm4(Backend& b, bool ta, bool tb, double alpha, const Tensor& x, const Tensor& y, Tensor& c) {
  for (int64_t bi = 0; bi < c.shape()[0]; ++bi) {
    Tensor cs = head_slice(c, bi);
    b.gemm(ta, tb, alpha, head_slice(x, bi), head_slice(y, bi), 0.0, cs);
  }
}

// Scores (B, H, Tq, Tk) = scale q k^T + mask, the row log-sum-exp (B, H, Tq, 1) and the
// probabilities (0 on rows whose every key is -inf).
struct Probs {
  Tensor lse, P;
};
Probs attention_probs(Backend& b, const Tensor& q, const Tensor& k, const Tensor& mask, double scale) {
  const int64_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], Tk = k.shape()[2];
  const DType dt = q.dtype();
  Tensor S = empty(b, {B, H, Tq, Tk}, dt);
  gemm4(b, false, true, scale, q, k, S);
  if (mask.defined()) b.binary(BinaryOp::Add, S, mask, S);
  const Tensor ninf = scalar(b, -kInf, dt), zero = scalar(b, 0.0, dt);
  Tensor mx = reduce_last(b, ReduceOp::Max, S);
  mx = where(b, bin(b, BinaryOp::Eq, mx, ninf), zero, mx);
  Tensor s = reduce_last(b, ReduceOp::Sum, un(b, UnaryOp::Exp, bin(b, BinaryOp::Sub, S, mx)));
  Tensor lse = bin(b, BinaryOp::Add, un(b, UnaryOp::Log, s), mx);  // -inf when s = 0
  Tensor P = where(b, bin(b, BinaryOp::Eq, lse, ninf), zero, un(b, UnaryOp::Exp, bin(b, BinaryOp::Sub, S, lse)));
  return {lse, P};
}

}  // namespace

void attention(Backend& b, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale, double p,
               uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse) {
  if (out.numel() == 0) return;
  Probs pr = attention_probs(b, q, k, mask, scale);
  b.copy(view(pr.lse, lse.shape()), lse);
  Tensor P = pr.P;
  if (p > 0.0) {
    Tensor dm = empty(b, P.shape(), P.dtype());
    b.dropout_mask(seed, offset, p, dm);
    P = bin(b, BinaryOp::Mul, P, dm);
  }
  gemm4(b, false, false, 1.0, P, v, out);
}

void attention_backward(Backend& b, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                        const Tensor& lse, const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset,
                        Tensor& gq, Tensor& gk, Tensor& gv) {
  if (q.numel() == 0 && k.numel() == 0) return;
  const Tensor P = attention_probs(b, q, k, mask, scale).P;  // recomputed, as the fused kernel does
  const int64_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], Tk = k.shape()[2];
  Tensor dP = empty(b, {B, H, Tq, Tk}, q.dtype());
  gemm4(b, false, true, 1.0, gout, v, dP);  // gradient w.r.t. the dropped probabilities
  Tensor used = P;
  if (p > 0.0) {
    Tensor dm = empty(b, P.shape(), P.dtype());
    b.dropout_mask(seed, offset, p, dm);
    dP = bin(b, BinaryOp::Mul, dP, dm);
    used = bin(b, BinaryOp::Mul, P, dm);
  }
  gemm4(b, true, false, 1.0, used, gout, gv);
  Tensor dot = reduce_last(b, ReduceOp::Sum, bin(b, BinaryOp::Mul, dP, P));
  Tensor dS = bin(b, BinaryOp::Mul, P, bin(b, BinaryOp::Sub, dP, dot));
  gemm4(b, false, false, scale, dS, k, gq);
  gemm4(b, true, false, scale, dS, q, gk);
}

// --- Swin windows ------------------------------------------------------------------------

namespace {

// q, k or v of qkv (BW, N, 3C) as a (BW, heads, N, d) view.
Tensor qkv_part(const Tensor& qkv, int64_t part, int64_t heads) {
  const int64_t BW = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3, d = C / heads;
  return qkv.as_strided({BW, heads, N, d}, {N * 3 * C, d, 3 * C, 1}, qkv.offset() + part * C);
}

// A (BW, heads, N, d) view copied to contiguous memory.
Tensor contiguous_of(Backend& b, const Tensor& t) {
  Tensor c = empty(b, t.shape(), t.dtype());
  b.copy(t, c);
  return c;
}

// (BW, heads, N, N) scores with bias and mask, softmax over the last axis.
Tensor window_probs(Backend& b, const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads,
                    double scale) {
  const int64_t BW = qkv.shape()[0], N = qkv.shape()[1];
  const Tensor q = contiguous_of(b, qkv_part(qkv, 0, heads)), k = contiguous_of(b, qkv_part(qkv, 1, heads));
  const int64_t d = q.shape()[3];
  Tensor S = empty(b, {BW * heads, N, N}, qkv.dtype());
  b.gemm(false, true, scale, view(q, {BW * heads, N, d}), view(k, {BW * heads, N, d}), 0.0, S);
  Tensor S4 = view(S, {BW, heads, N, N});
  bin_into(b, BinaryOp::Add, S4, bias);
  if (mask.defined()) {
    const int64_t nW = mask.shape()[0];
    Tensor S5 = view(S, {BW / nW, nW, heads, N, N});
    bin_into(b, BinaryOp::Add, S5, view(mask, {nW, 1, N, N}));
  }
  Tensor P = empty(b, {BW * heads * N, N}, qkv.dtype());
  b.softmax(view(S, {BW * heads * N, N}), P, false);
  return view(P, {BW, heads, N, N});
}

}  // namespace

void window_attention(Backend& b, const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads,
                      double scale, Tensor& out, Tensor& probs) {
  const int64_t BW = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3, d = C / heads;
  Tensor P = window_probs(b, qkv, bias, mask, heads, scale);
  b.copy(P, probs);
  const Tensor v = contiguous_of(b, qkv_part(qkv, 2, heads));
  Tensor O = empty(b, {BW * heads, N, d}, qkv.dtype());
  b.gemm(false, false, 1.0, view(P, {BW * heads, N, N}), view(v, {BW * heads, N, d}), 0.0, O);
  // out (BW, N, C) as (BW, heads, N, d)
  copy_to(b, view(O, {BW, heads, N, d}), out.as_strided({BW, heads, N, d}, {N * C, d, C, 1}, out.offset()));
}

void window_attention_backward(Backend& b, const Tensor& qkv, const Tensor& probs, const Tensor& gout, int64_t heads,
                               double scale, Tensor& gqkv, Tensor& gbias) {
  const int64_t BW = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3, d = C / heads, M = BW * heads;
  const Tensor q = contiguous_of(b, qkv_part(qkv, 0, heads)), k = contiguous_of(b, qkv_part(qkv, 1, heads)),
               v = contiguous_of(b, qkv_part(qkv, 2, heads));
  const Tensor go = contiguous_of(b, gout.as_strided({BW, heads, N, d}, {N * C, d, C, 1}, gout.offset()));
  const Tensor P = view(probs, {M, N, N});
  Tensor dP = empty(b, {M, N, N}, qkv.dtype()), dV = empty(b, {M, N, d}, qkv.dtype());
  b.gemm(false, true, 1.0, view(go, {M, N, d}), view(v, {M, N, d}), 0.0, dP);
  b.gemm(true, false, 1.0, P, view(go, {M, N, d}), 0.0, dV);
  Tensor dot = reduce_last(b, ReduceOp::Sum, bin(b, BinaryOp::Mul, P, dP));
  Tensor dS = bin(b, BinaryOp::Mul, P, bin(b, BinaryOp::Sub, dP, dot));  // (M, N, N)
  if (gbias.defined()) b.copy(view(reduce_first(b, ReduceOp::Sum, view(dS, {BW, heads * N * N})), gbias.shape()), gbias);
  Tensor dQ = empty(b, {M, N, d}, qkv.dtype()), dK = empty(b, {M, N, d}, qkv.dtype());
  b.gemm(false, false, scale, dS, view(k, {M, N, d}), 0.0, dQ);
  b.gemm(true, false, scale, dS, view(q, {M, N, d}), 0.0, dK);
  if (!gqkv.defined()) return;
  const Tensor parts[3] = {dQ, dK, dV};
  for (int64_t part = 0; part < 3; ++part) copy_to(b, view(parts[part], {BW, heads, N, d}), qkv_part(gqkv, part, heads));
}

namespace {

// The windows (B, H/w, W/w, w, w, C) of a shifted map (B, H, W, C) as a view of the map.
Tensor windows_of_map(const Tensor& map, const WindowGeometry& g) {
  const int64_t nh = g.H / g.w, nw = g.W / g.w;
  return map.as_strided({g.B, nh, nw, g.w, g.w, g.C},
                        {g.H * g.W * g.C, g.w * g.W * g.C, g.w * g.C, g.W * g.C, g.C, 1}, map.offset());
}

// Copies between an image and its shifted map (map[y][x] = image[(y + sh) % H][(x + sw) % W]),
// in up to four rectangular blocks.
void shift_copy(Backend& b, const Tensor& image, Tensor& map, const WindowGeometry& g, bool to_map) {
  const int64_t sh = g.sh, sw = g.sw, H = g.H, W = g.W, C = g.C;
  const Shape st = {H * W * C, W * C, C, 1};
  for (int ry = 0; ry < 2; ++ry)
    for (int rx = 0; rx < 2; ++rx) {
      // map rows [my, my + h) <- image rows [iy, iy + h); same for columns.
      const int64_t h = ry == 0 ? H - sh : sh, w = rx == 0 ? W - sw : sw;
      if (h == 0 || w == 0) continue;
      const int64_t my = ry == 0 ? 0 : H - sh, iy = ry == 0 ? sh : 0;
      const int64_t mx = rx == 0 ? 0 : W - sw, ix = rx == 0 ? sw : 0;
      Tensor mv = map.as_strided({g.B, h, w, C}, st, map.offset() + (my * W + mx) * C);
      Tensor iv = image.as_strided({g.B, h, w, C}, st, image.offset() + (iy * W + ix) * C);
      if (to_map)
        b.copy(iv, mv);
      else
        b.copy(mv, iv);
    }
}

}  // namespace

void window_gather(Backend& b, const Tensor& image, const WindowGeometry& g, Tensor& windows) {
  Tensor map = image;
  if (g.sh || g.sw) {
    map = empty(b, image.shape(), image.dtype());
    shift_copy(b, image, map, g, true);
  }
  copy_to(b, windows_of_map(map, g), view(windows, {g.B, g.H / g.w, g.W / g.w, g.w, g.w, g.C}));
}

void window_scatter(Backend& b, const Tensor& windows, const WindowGeometry& g, Tensor& image) {
  Tensor map = g.sh || g.sw ? empty(b, image.shape(), image.dtype()) : image;
  copy_to(b, view(windows, {g.B, g.H / g.w, g.W / g.w, g.w, g.w, g.C}), windows_of_map(map, g));
  if (g.sh || g.sw) shift_copy(b, image, map, g, false);
}

// --- ConvGRU gates -----------------------------------------------------------------------

namespace {

// Third `i` (0 reset, 1 update, 2 new) of a gate tensor (B, 3C, L) as a (B, C, L) view.
Tensor third(const Tensor& t, int64_t i) {
  const int64_t B = t.shape()[0], C3 = t.shape()[1], L = t.numel() / std::max<int64_t>(B * C3, 1), C = C3 / 3;
  return t.as_strided({B, C, L}, {C3 * L, L, 1}, t.offset() + i * C * L);
}

// sigmoid(xg_i + hg_i) (or of hg_i alone without input gates).
Tensor gate(Backend& b, const Tensor& xg, const Tensor& hg, int64_t i) {
  Tensor pre = xg.defined() ? bin(b, BinaryOp::Add, third(xg, i), third(hg, i)) : third(hg, i);
  return un(b, UnaryOp::Sigmoid, pre);
}

Tensor state_view(const Tensor& t, const Tensor& hg) { return third(hg, 0).shape() == t.shape() ? t : view(t, third(hg, 0).shape()); }

}  // namespace

void gru_candidate(Backend& b, const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand) {
  const Tensor r = gate(b, xg, hg, 0);
  Tensor a = bin(b, BinaryOp::Mul, r, third(hg, 2));
  if (xg.defined()) a = bin(b, BinaryOp::Add, third(xg, 2), a);
  Tensor out = state_view(cand, hg);
  b.unary(tanh_act ? UnaryOp::Tanh : UnaryOp::LeakyRelu, a, out, slope);
}

void gru_candidate_backward(Backend& b, const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand,
                            bool tanh_act, double slope, Tensor& gxg, Tensor& ghg) {
  const Tensor r = gate(b, xg, hg, 0), y = state_view(cand, hg), gc = state_view(gcand, hg);
  Tensor da = empty(b, y.shape(), y.dtype());
  if (tanh_act)
    b.unary_backward(UnaryOp::Tanh, y, y, gc, da, 0.0);  // (1 - y^2) g, from the output
  else
    b.unary_backward(UnaryOp::LeakyRelu, y, y, gc, da, slope);  // y > 0 exactly where its input is
  // dpre = da * hn * r * (1 - r)
  const Tensor dr = bin(b, BinaryOp::Mul, r, un(b, UnaryOp::AddScalar, un(b, UnaryOp::Neg, r), 1.0));
  const Tensor dpre = bin(b, BinaryOp::Mul, bin(b, BinaryOp::Mul, da, third(hg, 2)), dr);
  for (Tensor* g : {&ghg, &gxg}) {
    if (!g->defined()) continue;
    assign(b, third(*g, 0), dpre);
    Tensor z = third(*g, 1);
    b.fill(z, 0.0);
    assign(b, third(*g, 2), g == &ghg ? bin(b, BinaryOp::Mul, da, r) : da);
  }
}

void gru_update(Backend& b, const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, Tensor& out) {
  const Tensor z = gate(b, xg, hg, 1), c = state_view(cand, hg), hs = state_view(h, hg);
  Tensor o = state_view(out, hg);
  b.binary(BinaryOp::Add, c, bin(b, BinaryOp::Mul, z, bin(b, BinaryOp::Sub, hs, c)), o);
}

void gru_update_backward(Backend& b, const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                         const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh) {
  const Tensor z = gate(b, xg, hg, 1), c = state_view(cand, hg), hs = state_view(h, hg), go = state_view(gout, hg);
  const Tensor omz = un(b, UnaryOp::AddScalar, un(b, UnaryOp::Neg, z), 1.0);
  // dpre = g (h - c) z (1 - z); gcand = g (1 - z); gh = g z
  const Tensor dpre = bin(b, BinaryOp::Mul, bin(b, BinaryOp::Mul, go, bin(b, BinaryOp::Sub, hs, c)),
                          bin(b, BinaryOp::Mul, z, omz));
  copy_to(b, bin(b, BinaryOp::Mul, go, omz), state_view(gcand, hg));
  copy_to(b, bin(b, BinaryOp::Mul, go, z), state_view(gh, hg));
  for (Tensor* g : {&ghg, &gxg}) {
    if (!g->defined()) continue;
    Tensor r0 = third(*g, 0), r2 = third(*g, 2);
    b.fill(r0, 0.0);
    b.fill(r2, 0.0);
    assign(b, third(*g, 1), dpre);
  }
}

// --- cross-entropy -----------------------------------------------------------------------

namespace {

// Rejects a target outside [0, C) that is not ignore_index, naming the first such row
// (targets are read on the host only when one is out of range).
void check_targets(Backend& b, const Tensor& target, int64_t ignore_index, int64_t C) {
  const Tensor t = view(cast(b, target, DType::I64), {target.numel()});
  const Tensor ign = scalar(b, double(ignore_index), DType::I64);
  const Tensor neg = bin(b, BinaryOp::Lt, t, scalar(b, 0.0, DType::I64));
  const Tensor big = bin(b, BinaryOp::Ge, t, scalar(b, double(C), DType::I64));
  const Tensor bad = bin(b, BinaryOp::Mul, bin(b, BinaryOp::Ne, t, ign), bin(b, BinaryOp::Max, neg, big));
  Tensor n = empty(b, Shape(bad.shape().size(), 1), DType::I64);
  b.reduce(ReduceOp::Sum, bad, n);
  if (host_scalar(n) == 0) return;
  const std::vector<int64_t> th = t.to_vector_as<int64_t>();
  for (size_t r = 0; r < th.size(); ++r)
    MEMEL_CHECK(th[r] == ignore_index || (th[r] >= 0 && th[r] < C), "[cross_entropy] target ", th[r], " at row ", r,
                " is out of range [0, ", C, ")");
}

// The target rows' valid mask (rows, 1) in dtype dt and their targets with ignored rows set to 0.
struct Targets {
  Tensor valid, t;  // (rows, 1) dt, (rows) I64
};
Targets targets_of(Backend& b, const Tensor& target, int64_t ignore_index, DType dt) {
  const Tensor t = view(cast(b, target, DType::I64), {target.numel()});
  const Tensor ne = bin(b, BinaryOp::Ne, t, scalar(b, double(ignore_index), DType::I64));
  return {view(cast(b, ne, dt), {t.numel(), 1}), where(b, ne, t, scalar(b, 0.0, DType::I64))};
}

}  // namespace

void cross_entropy(Backend& b, const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                   Tensor& loss, Tensor& lse) {
  // As the CPU kernel: the row maximum and the differences l - max in the logits' dtype,
  // the log-sum-exp and the loss in double, rounded once at the end.
  const int64_t rows = logits.shape()[0], C = logits.shape()[1];
  const DType dt = logits.dtype();
  check_targets(b, target, ignore_index, C);
  const Targets tg = targets_of(b, target, ignore_index, DType::F64);
  Tensor mx = reduce_last(b, ReduceOp::Max, logits);
  const Tensor sh = cast(b, bin(b, BinaryOp::Sub, logits, mx), DType::F64);
  Tensor z = bin(b, BinaryOp::Add, un(b, UnaryOp::Log, reduce_last(b, ReduceOp::Sum, un(b, UnaryOp::Exp, sh))),
                 cast(b, mx, DType::F64));  // (rows, 1)
  b.copy(view(z, lse.shape()), lse);
  // The target logit of every row: element r * C + t_r of the flat logits.
  std::vector<int64_t> base(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) base[size_t(r)] = r * C;
  const Tensor flat_ids = bin(b, BinaryOp::Add, tg.t, constant(b, base, {rows}, DType::I64));
  Tensor picked = empty(b, {rows, 1}, dt);
  b.index_select(view(logits, {rows * C, 1}), flat_ids, picked, "cross_entropy");
  // (1 - s) (z - l_t) + s (z - mean_i l_i), 0 on ignored rows
  const Tensor nll = bin(b, BinaryOp::Sub, z, cast(b, picked, DType::F64));
  const Tensor smooth = bin(b, BinaryOp::Sub, z,
                            bin(b, BinaryOp::Div, reduce_last(b, ReduceOp::Sum, cast(b, logits, DType::F64)),
                                scalar(b, double(C), DType::F64)));
  const Tensor l = bin(b, BinaryOp::Add, un(b, UnaryOp::MulScalar, nll, 1.0 - smoothing),
                       un(b, UnaryOp::MulScalar, smooth, smoothing));
  b.copy(view(bin(b, BinaryOp::Mul, l, tg.valid), loss.shape()), loss);
}

void cross_entropy_backward(Backend& b, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            const Tensor& grow, int64_t ignore_index, double smoothing, Tensor& glogits) {
  const int64_t rows = logits.shape()[0], C = logits.shape()[1];
  const DType dt = logits.dtype();
  const Targets tg = targets_of(b, target, ignore_index, dt);
  const Tensor p = un(b, UnaryOp::Exp, bin(b, BinaryOp::Sub, logits, view(lse, {rows, 1})));
  std::vector<double> iota(static_cast<size_t>(C));
  for (int64_t i = 0; i < C; ++i) iota[size_t(i)] = double(i);
  const Tensor onehot = bin(b, BinaryOp::Eq, constant(b, iota, {1, C}, dt), view(cast(b, tg.t, dt), {rows, 1}));
  const Tensor tgt = un(b, UnaryOp::AddScalar, un(b, UnaryOp::MulScalar, onehot, 1.0 - smoothing), smoothing / double(C));
  const Tensor scale = bin(b, BinaryOp::Mul, view(grow, {rows, 1}), tg.valid);
  b.binary(BinaryOp::Mul, expand_to(scale, {rows, C}), bin(b, BinaryOp::Sub, p, tgt), glogits);
}

// --- optimizers ---------------------------------------------------------------------------

void adam_step(Backend& b, const std::vector<AdamSlot>& slots, const AdamHyper& h) {
  for (const AdamSlot& s : slots) {
    Tensor p = s.p, m = s.m, v = s.v;
    const double bc1 = 1.0 - std::pow(h.beta1, double(s.step)), bc2 = 1.0 - std::pow(h.beta2, double(s.step));
    Tensor g = s.g;
    if (h.weight_decay != 0.0) {
      if (h.decoupled)
        b.unary(UnaryOp::MulScalar, p, p, 1.0 - h.lr * h.weight_decay);
      else
        g = bin(b, BinaryOp::Add, g, un(b, UnaryOp::MulScalar, p, h.weight_decay));
    }
    // The CPU kernel's order of operations (tensor/cpu/optim.cpp), its scalars rounded to
    // the parameter's dtype: m = m b1 + (1-b1) g; v = v b2 + ((1-b2) g) g;
    // p -= (lr/bc1 m) / (sqrt(v) / sqrt(bc2) + eps).
    const DType dt = p.dtype();
    b.binary(BinaryOp::Add, un(b, UnaryOp::MulScalar, m, h.beta1), un(b, UnaryOp::MulScalar, g, 1.0 - h.beta1), m);
    b.binary(BinaryOp::Add, un(b, UnaryOp::MulScalar, v, h.beta2),
             bin(b, BinaryOp::Mul, un(b, UnaryOp::MulScalar, g, 1.0 - h.beta2), g), v);
    Tensor vv = v;
    if (s.vmax.defined()) {
      Tensor vmax = s.vmax;
      b.binary(BinaryOp::Max, vmax, v, vmax);
      vv = vmax;
    }
    Tensor den = un(b, UnaryOp::AddScalar, bin(b, BinaryOp::Div, un(b, UnaryOp::Sqrt, vv), scalar(b, std::sqrt(bc2), dt)),
                    h.eps);
    Tensor upd = bin(b, BinaryOp::Div, un(b, UnaryOp::MulScalar, m, h.lr / bc1), den);
    b.binary(BinaryOp::Sub, p, upd, p);
  }
}

void sgd_step(Backend& b, const std::vector<SgdSlot>& slots, const SgdHyper& h) {
  for (const SgdSlot& s : slots) {
    Tensor p = s.p;
    Tensor d = s.g;
    if (h.weight_decay != 0.0) d = bin(b, BinaryOp::Add, d, un(b, UnaryOp::MulScalar, p, h.weight_decay));
    if (s.buf.defined()) {
      Tensor buf = s.buf;
      if (s.first)
        b.copy(d, buf);
      else
        b.binary(BinaryOp::Add, un(b, UnaryOp::MulScalar, buf, h.momentum),
                 un(b, UnaryOp::MulScalar, d, 1.0 - h.dampening), buf);
      d = h.nesterov ? bin(b, BinaryOp::Add, d, un(b, UnaryOp::MulScalar, buf, h.momentum)) : buf;
    }
    b.binary(BinaryOp::Add, p, un(b, UnaryOp::MulScalar, d, -h.lr), p);
  }
}

void sum_squares(Backend& b, const std::vector<Tensor>& ts, Tensor& out) {
  b.fill(out, 0.0);
  for (const Tensor& t : ts) {
    if (t.numel() == 0) continue;
    Tensor s = empty(b, Shape(size_t(t.dim()), 1), DType::F64);
    b.reduce(ReduceOp::Sum, un(b, UnaryOp::Square, cast(b, t, DType::F64)), s);
    b.binary(BinaryOp::Add, out, view(s, {}), out);
  }
}

// --- the memel layer ------------------------------------------------------------------------
// Everything in double (as the CPU kernel), on (blocks, C, inner) views; the sums run in
// the core reduction's order, so the results agree with the fused kernel to rounding.

namespace {

// Validity (blocks, C, inner) F64 of 1/0 from a mask of a prefix (memel_pass's rule).
Tensor memel_valid(Backend& b, const Tensor& mask, const MemelPass& s) {
  const int64_t N = s.blocks * s.C * s.inner, m = mask.numel(), blk = N / m;
  const Tensor flag = bin(b, BinaryOp::Ne, cast(b, view(mask.contiguous_copy(), {m, 1}), DType::F64),
                          scalar(b, 0.0, DType::F64));
  Tensor v = empty(b, {s.blocks, s.C, s.inner}, DType::F64);
  Tensor vf = view(v, {m, blk});
  b.copy(expand_to(flag, {m, blk}), vf);
  return v;
}

// Sum over the block and inner axes of t (blocks, C, inner) -> (C) F64, in the CPU
// kernel's order: a partial sum per block (over inner), then the partials block by block,
// after `init` (C) when given.
Tensor per_neuron_sum(Backend& b, const Tensor& t, const Tensor& init = Tensor()) {
  const int64_t B = t.shape()[0], C = t.shape()[1];
  Tensor part = empty(b, {B + (init.defined() ? 1 : 0), C, 1}, DType::F64);
  if (init.defined()) {
    Tensor head = part.as_strided({1, C, 1}, {C, 1, 1}, part.offset());
    b.copy(view(init, {1, C, 1}), head);
  }
  Tensor rest = part.as_strided({B, C, 1}, {C, 1, 1}, part.offset() + (init.defined() ? C : 0));
  b.reduce(ReduceOp::Sum, t, rest);
  Tensor out = empty(b, {1, C, 1}, DType::F64);
  b.reduce(ReduceOp::Sum, part, out);
  return view(out, {C});
}

}  // namespace

void memel_pass(Backend& b, const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean,
                const Tensor& var, const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar, Tensor& phi,
                Tensor& ms_sum, Tensor& ms_n, Tensor& ms_hist) {
  const int64_t C = s.C, L = s.blocks * s.inner;
  const Shape shp{s.blocks, C, s.inner}, ns{1, C, 1};
  const Tensor xd = cast(b, view(x, shp), DType::F64);
  const Tensor valid = mask.defined() ? memel_valid(b, mask, s) : Tensor();
  const Tensor zero = scalar(b, 0.0, DType::F64);
  const Tensor cnt = valid.defined() ? per_neuron_sum(b, valid) : full(b, {C}, double(L), DType::F64);
  if (s.moments && C > 0) {
    // The shift: the running mean where the neuron has history, else its first valid value
    // in the batch (block-major, then inner): the first maximum of validity per neuron.
    Tensor first;
    if (L == 0) {
      first = full(b, {C}, 0.0, DType::F64);
    } else {
      Tensor vperm = empty(b, {C, s.blocks, s.inner}, DType::F64), xperm = empty(b, {C, s.blocks, s.inner}, DType::F64);
      const Shape pst{s.inner, C * s.inner, 1};  // (C, blocks, inner) view of (blocks, C, inner)
      if (valid.defined()) b.copy(valid.as_strided({C, s.blocks, s.inner}, pst, valid.offset()), vperm);
      else b.fill(vperm, 1.0);
      b.copy(xd.as_strided({C, s.blocks, s.inner}, pst, xd.offset()), xperm);
      Tensor am = empty(b, {C}, DType::I64);
      b.argmax_last(view(vperm, {C, L}), am);
      std::vector<double> base(static_cast<size_t>(C));
      for (int64_t c = 0; c < C; ++c) base[size_t(c)] = double(c * L);
      const Tensor flat = cast(b, bin(b, BinaryOp::Add, cast(b, am, DType::F64), constant(b, base, {C}, DType::F64)),
                               DType::I64);
      first = empty(b, {C, 1}, DType::F64);
      b.index_select(view(xperm, {C * L, 1}), flat, first, "memel_pass");
      first = view(first, {C});
    }
    const Tensor has = bin(b, BinaryOp::Gt, cast(b, view(count, {C}), DType::F64), zero);
    const Tensor shift = where(b, has, cast(b, view(mean, {C}), DType::F64), first);
    Tensor d = bin(b, BinaryOp::Sub, xd, view(shift, ns));
    if (valid.defined()) d = bin(b, BinaryOp::Mul, d, valid);
    const Tensor s1 = per_neuron_sum(b, d), s2 = per_neuron_sum(b, un(b, UnaryOp::Square, d));
    const Tensor m1 = bin(b, BinaryOp::Div, s1, cnt);
    const Tensor v = un(b, UnaryOp::ClampMin, bin(b, BinaryOp::Sub, bin(b, BinaryOp::Div, s2, cnt), un(b, UnaryOp::Square, m1)), 0.0);
    const Tensor any = bin(b, BinaryOp::Gt, cnt, zero);
    Tensor bc = view(bcount, {C}), mb = view(bmean, {C}), vb = view(bvar, {C});
    b.copy(cnt, bc);
    b.where(any, bin(b, BinaryOp::Add, shift, m1), expand_to(zero, {C}), mb);
    b.where(any, v, expand_to(zero, {C}), vb);
  }
  if (!s.score) return;
  // Denominators var + eps * mean(var), with the zero-variance fallback.
  const Tensor vd = cast(b, view(var, {C}), DType::F64);
  Tensor sv = empty(b, {1}, DType::F64);
  if (C > 0) b.reduce(ReduceOp::Sum, vd, sv);
  else b.fill(sv, 0.0);
  const Tensor mean_v = un(b, UnaryOp::MulScalar, sv, 1.0 / double(std::max<int64_t>(C, 1)));
  const Tensor d0 = bin(b, BinaryOp::Add, vd, un(b, UnaryOp::MulScalar, mean_v, s.eps));
  const Tensor alt = where(b, bin(b, BinaryOp::Gt, mean_v, zero), mean_v, scalar(b, 1.0, DType::F64));
  const Tensor dn = where(b, bin(b, BinaryOp::Gt, d0, zero), d0, alt);
  const Tensor e = bin(b, BinaryOp::Sub, xd, view(cast(b, mean, DType::F64), ns));
  Tensor p = bin(b, BinaryOp::Div, un(b, UnaryOp::Square, e), view(dn, ns));  // (blocks, C, inner)
  Tensor phv = view(phi, shp);
  b.copy(valid.defined() ? where(b, valid, p, scalar(b, -1.0, DType::F64)) : p, phv);
  if (!s.window) return;
  if (valid.defined()) p = bin(b, BinaryOp::Mul, p, valid);
  Tensor su = view(ms_sum, {C}), sn = view(ms_n, {C});
  b.copy(per_neuron_sum(b, p, su), su);
  b.binary(BinaryOp::Add, sn, cnt, sn);
  // The histogram of the stored (rounded) scores: a first guess of the bin from the log
  // spacing of the edges, corrected twice against the exact edges, then counted with
  // index_add (integer counts, in a fixed order).
  const std::vector<double>& edges = s.bins->edges();
  const int64_t ne = static_cast<int64_t>(edges.size()), N = x.numel();
  if (N == 0) return;
  const Tensor pr = view(cast(b, phv, DType::F64), {N});
  Tensor k;
  if (ne == 0) {
    k = full(b, {N}, 0.0, DType::F64);
  } else {
    const double lo = edges.front(), hi = edges.back();
    const double scale = ne > 1 ? double(ne - 1) / std::log(hi / lo) : 0.0;
    const Tensor pos = bin(b, BinaryOp::Gt, pr, zero);  // NaN: 0
    const Tensor lp = un(b, UnaryOp::Log, where(b, pos, pr, scalar(b, lo, DType::F64)));
    Tensor g = un(b, UnaryOp::AddScalar, un(b, UnaryOp::MulScalar, un(b, UnaryOp::AddScalar, lp, -std::log(lo)), scale), 1.0);
    g = un(b, UnaryOp::ClampMax, un(b, UnaryOp::ClampMin, g, 0.0), double(ne));
    k = cast(b, cast(b, g, DType::I64), DType::F64);  // truncation of a value >= 0: floor
    std::vector<double> ext(static_cast<size_t>(ne + 2));
    ext[0] = -kInf;
    for (int64_t i = 0; i < ne; ++i) ext[size_t(i + 1)] = edges[size_t(i)];
    ext[size_t(ne + 1)] = kInf;
    const Tensor ext_t = constant(b, ext, {ne + 2, 1}, DType::F64);
    const Tensor prc = where(b, bin(b, BinaryOp::Eq, pr, pr), pr, scalar(b, -kInf, DType::F64));  // NaN: bin 0
    for (int round = 0; round < 2; ++round) {
      // bin k holds [ext[k], ext[k + 1])
      const Tensor ki = cast(b, k, DType::I64);
      Tensor lower = empty(b, {N, 1}, DType::F64), upper = empty(b, {N, 1}, DType::F64);
      b.index_select(ext_t, ki, lower, "memel_pass");
      b.index_select(ext_t, cast(b, un(b, UnaryOp::AddScalar, k, 1.0), DType::I64), upper, "memel_pass");
      const Tensor up = bin(b, BinaryOp::Ge, prc, view(upper, {N}));
      const Tensor down = bin(b, BinaryOp::Lt, prc, view(lower, {N}));
      k = bin(b, BinaryOp::Sub, bin(b, BinaryOp::Add, k, up), down);
    }
  }
  const Tensor w = valid.defined() ? view(valid, {N, 1}) : full(b, {N, 1}, 1.0, DType::F64);
  Tensor h = view(ms_hist, {s.bins->count(), 1});
  b.index_add(w, cast(b, k, DType::I64), h, "memel_pass");
}

void memel_merge(Backend& b, Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount, const Tensor& bmean,
                 const Tensor& bvar, int64_t forget_batches, bool count_ahead) {
  const int64_t C = count.numel();
  const Shape ns{C};
  const DType dt = mean.dtype();
  const Tensor zero = scalar(b, 0.0, DType::F64), one = scalar(b, 1.0, DType::F64);
  const Tensor bc = cast(b, view(bcount.contiguous_copy(), ns), DType::F64);
  const Tensor mb = cast(b, view(bmean.contiguous_copy(), ns), DType::F64);
  const Tensor vb = cast(b, view(bvar.contiguous_copy(), ns), DType::F64);
  const Tensor m_true = cast(b, view(count, ns), DType::F64), mu = cast(b, view(mean, ns), DType::F64),
               v = cast(b, view(var, ns), DType::F64);
  Tensor m = m_true;
  if (count_ahead) m = where(b, bin(b, BinaryOp::Gt, m_true, zero), bin(b, BinaryOp::Add, m_true, bc), m_true);
  const Tensor cap = un(b, UnaryOp::MulScalar, bc, double(forget_batches));
  if (forget_batches > 0) m = bin(b, BinaryOp::Min, m, cap);
  const Tensor n = bin(b, BinaryOp::Add, m, bc);
  const Tensor new_mu = bin(b, BinaryOp::Div, bin(b, BinaryOp::Add, bin(b, BinaryOp::Mul, m, mu), bin(b, BinaryOp::Mul, bc, mb)), n);
  const Tensor dd = bin(b, BinaryOp::Sub, mu, mb);
  const Tensor n1 = un(b, UnaryOp::AddScalar, n, -1.0);
  const Tensor t1 = bin(b, BinaryOp::Div, bin(b, BinaryOp::Mul, bin(b, BinaryOp::Mul, m, bc), un(b, UnaryOp::Square, dd)),
                        bin(b, BinaryOp::Mul, n1, n));
  const Tensor hist = where(b, bin(b, BinaryOp::Gt, m, zero), bin(b, BinaryOp::Mul, un(b, UnaryOp::AddScalar, m, -1.0), v), zero);
  const Tensor t2 = bin(b, BinaryOp::Div, bin(b, BinaryOp::Add, bin(b, BinaryOp::Mul, bc, vb), hist), n1);
  const Tensor new_v = where(b, bin(b, BinaryOp::Gt, n, one), bin(b, BinaryOp::Add, t1, t2), zero);
  Tensor stored = bin(b, BinaryOp::Add, m_true, bc);
  if (forget_batches > 0) stored = bin(b, BinaryOp::Min, stored, cap);
  // Neurons without values in this batch keep their statistics.
  const Tensor take = bin(b, BinaryOp::Gt, bc, zero);
  auto put = [&](Tensor& dst, const Tensor& nv, const Tensor& old) {
    Tensor out = view(dst, ns);
    b.copy(where(b, take, nv, old), out);
  };
  put(count, stored, m_true);
  put(mean, new_mu, mu);
  put(var, new_v, v);
  (void)dt;
}

std::vector<int64_t> memel_select(Backend& b, const Tensor& phi_in, const MemelSelectSpec& s) {
  std::vector<int64_t> out;
  if (s.scopes == 0 || s.n == 0) return out;
  const Shape sh{s.scopes, s.n};
  const Tensor phi = cast(b, view(phi_in.contiguous_copy(), sh), DType::F64);
  const Tensor zero = scalar(b, 0.0, DType::F64);
  const Tensor cand = bin(b, BinaryOp::Ge, phi, zero);  // NaN and -1: not candidates
  // Reads a (scopes, n) 1/0 tensor back and appends its set indices (scope by scope).
  std::vector<std::vector<int64_t>> per(static_cast<size_t>(s.scopes));
  auto take_mask = [&](const Tensor& m) {
    const std::vector<double> h = m.to(Device::cpu()).to_vector();
    for (int64_t q = 0; q < s.scopes; ++q)
      for (int64_t i = 0; i < s.n; ++i)
        if (h[size_t(q * s.n + i)] != 0) per[size_t(q)].push_back(q * s.n + i);
  };
  if (s.rule == 3) {
    take_mask(bin(b, BinaryOp::Mul, cand, bin(b, BinaryOp::Gt, phi, scalar(b, s.threshold, DType::F64))));
  } else {
    const std::vector<double> nc = reduce_last(b, ReduceOp::Sum, cand).to(Device::cpu()).to_vector();
    std::vector<int64_t> kq(static_cast<size_t>(s.scopes));
    int64_t kmax = 0;
    for (int64_t q = 0; q < s.scopes; ++q) {
      kq[size_t(q)] = memel_select_count(s.rule, s.k, s.ratio, static_cast<int64_t>(nc[size_t(q)]));
      kmax = std::max(kmax, kq[size_t(q)]);
    }
    // k rounds of "the first maximum of each scope", each taken out of the running.
    Tensor work = where(b, cand, phi, scalar(b, -kInf, DType::F64));
    Tensor am = empty(b, {s.scopes}, DType::I64);
    std::vector<int64_t> last(static_cast<size_t>(s.scopes), -1);
    for (int64_t t = 0; t < kmax; ++t) {
      b.argmax_last(work, am);
      const std::vector<int64_t> a = am.to(Device::cpu()).to_vector_as<int64_t>();
      std::vector<int64_t> flat(static_cast<size_t>(s.scopes));
      for (int64_t q = 0; q < s.scopes; ++q) {
        flat[size_t(q)] = q * s.n + a[size_t(q)];
        if (t < kq[size_t(q)]) {
          per[size_t(q)].push_back(flat[size_t(q)]);
          last[size_t(q)] = flat[size_t(q)];
        }
      }
      Tensor wf = view(work, {s.scopes * s.n, 1});
      b.index_put(full(b, {s.scopes, 1}, -kInf, DType::F64), constant(b, flat, {s.scopes}, DType::I64), wf,
                  "memel_select");
    }
    if (s.all_ties && kmax > 0) {
      // Every remaining candidate equal to the last one taken (NaN where none was taken).
      std::vector<int64_t> ids;
      std::vector<double> none;
      for (int64_t q = 0; q < s.scopes; ++q) ids.push_back(std::max<int64_t>(last[size_t(q)], 0));
      Tensor kth = empty(b, {s.scopes, 1}, DType::F64);
      b.index_select(view(phi, {s.scopes * s.n, 1}), constant(b, ids, {s.scopes}, DType::I64), kth, "memel_select");
      std::vector<double> has(static_cast<size_t>(s.scopes));
      for (int64_t q = 0; q < s.scopes; ++q) has[size_t(q)] = last[size_t(q)] >= 0 ? 1.0 : 0.0;
      kth = where(b, constant(b, has, {s.scopes, 1}, DType::F64), kth, scalar(b, std::nan(""), DType::F64));
      take_mask(bin(b, BinaryOp::Eq, work, kth));
    }
  }
  for (auto& v : per) {
    std::sort(v.begin(), v.end());
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

void memel_inhibit(Backend& b, const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values) {
  const int64_t k = ids.numel(), C = mean.numel();
  if (k == 0) return;
  const Tensor id = view(ids.contiguous_copy(), {k});
  Tensor got = empty(b, {k, 1}, mean.dtype());
  b.index_select(view(mean.contiguous_copy(), {C, 1}), id, got, "memel_inhibit");
  b.copy(view(got, values.shape()), values);
  if (inhibited.defined()) {
    Tensor inh = view(inhibited, {C, 1});
    b.index_add(full(b, {k, 1}, 1.0, DType::F64), id, inh, "memel_inhibit");
  }
}

}  // namespace memel::fallback
