#pragma once
// The CUDA backend's kernels that need no cooperation between threads, written as
// functors over a flat index: on the GPU one thread runs f(i) for each i (grid-stride
// loop, tensor/cuda/launch.cuh); in the host tests (tests/cuda) a loop runs the same
// functor over host memory, so the index arithmetic is checked before any GPU sees it.
// Each writes its output elements from gathered inputs (no atomics), so results are
// deterministic.
#include <cmath>
#include <cstdint>

#include "core/hd.h"
#include "core/rng.h"
#include "tensor/backend.h"
#include "tensor/cuda/indexing.h"
#include "tensor/kernel_math.h"

namespace memel::cuda {

// --- elementwise over strided views -------------------------------------------------

template <typename T>
struct UnaryF {
  UnaryOp op;
  double alpha;
  Strided<2> st;  // x, out
  const T* x;
  T* out;
  MEMEL_HD void operator()(int64_t i) const {
    int64_t o[2];
    st.offsets(i, o);
    out[o[1]] = unary_fn<T>(op, x[o[0]], alpha);
  }
};

// Contiguous x, y (may be null), gy, gx.
template <typename T>
struct UnaryGradF {
  UnaryOp op;
  double alpha;
  const T *x, *y, *gy;
  T* gx;
  MEMEL_HD void operator()(int64_t i) const {
    gx[i] = gy[i] * unary_grad<T>(op, x[i], y ? y[i] : T(0), alpha);
  }
};

template <typename T>
struct BinaryF {
  BinaryOp op;
  Strided<3> st;  // a, b, out
  const T *a, *b;
  T* out;
  MEMEL_HD void operator()(int64_t i) const {
    int64_t o[3];
    st.offsets(i, o);
    out[o[2]] = binary_fn<T>(op, a[o[0]], b[o[1]]);
  }
};

template <typename T, typename C>
struct WhereF {
  Strided<4> st;  // cond, a, b, out
  const C* cond;
  const T *a, *b;
  T* out;
  MEMEL_HD void operator()(int64_t i) const {
    int64_t o[4];
    st.offsets(i, o);
    out[o[3]] = cond[o[0]] != C(0) ? a[o[1]] : b[o[2]];
  }
};

template <typename S, typename D>
struct CopyF {
  Strided<2> st;  // src, dst
  const S* src;
  D* dst;
  MEMEL_HD void operator()(int64_t i) const {
    int64_t o[2];
    st.offsets(i, o);
    dst[o[1]] = static_cast<D>(src[o[0]]);
  }
};

template <typename T>
struct FillF {
  Strided<1> st;
  T value;
  T* dst;
  MEMEL_HD void operator()(int64_t i) const {
    int64_t o[1];
    st.offsets(i, o);
    dst[o[0]] = value;
  }
};

// out[i] = philox_uniform(seed, offset, i) (core/rng.h), contiguous.
template <typename T>
struct UniformF {
  uint64_t seed, offset;
  T* out;
  MEMEL_HD void operator()(int64_t i) const { out[i] = T(philox_uniform(seed, offset, uint64_t(i))); }
};

// mask[i] = (u_i >= pf) / (1 - p), as Backend::dropout_mask.
template <typename T>
struct DropoutMaskF {
  uint64_t seed, offset;
  float pf;
  T keep;
  T* mask;
  MEMEL_HD void operator()(int64_t i) const {
    mask[i] = philox_uniform(seed, offset, uint64_t(i)) >= pf ? keep : T(0);
  }
};

// out[row] = the index of the first maximum of x's row (rows, n): a strict > against the
// best so far, as the CPU (a NaN never replaces an earlier value); i over rows.
template <typename T>
struct ArgmaxRowF {
  const T* x;
  int64_t n;
  int64_t* out;
  MEMEL_HD void operator()(int64_t row) const {
    const T* r = x + row * n;
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
      if (r[i] > r[best]) best = i;
    out[row] = best;
  }
};

// --- rows gathered and scattered by index ---------------------------------------------

// The first out-of-range id (its position) is recorded in *bad (initially n); the
// backend reads it after the launch and throws.
template <typename I>
MEMEL_HD bool id_ok(const I* ids, int64_t row, int64_t v, int64_t* bad) {
  const int64_t id = int64_t(ids[row]);
  if (id >= 0 && id < v) return true;
#if defined(__CUDA_ARCH__)
  atomicMin(reinterpret_cast<unsigned long long*>(bad), static_cast<unsigned long long>(row));
#else
  if (row < *bad) *bad = row;
#endif
  return false;
}

// out (n, d) = x (v, d) rows ids; i over n * d.
template <typename T, typename I>
struct IndexSelectF {
  const T* x;
  const I* ids;
  T* out;
  int64_t v, d;
  int64_t* bad;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t row = i / d, col = i % d;
    out[i] = id_ok(ids, row, v, bad) ? x[int64_t(ids[row]) * d + col] : T(0);
  }
};

// out rows ids = src rows; i over n * d (ids distinct).
template <typename T, typename I>
struct IndexPutF {
  const T* src;
  const I* ids;
  T* out;
  int64_t v, d;
  int64_t* bad;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t row = i / d, col = i % d;
    if (id_ok(ids, row, v, bad)) out[int64_t(ids[row]) * d + col] = src[i];
  }
};

// out rows ids += src rows, in the order of the rows (a fixed sum per element): one
// index per column, each walking every row; i over d.
template <typename T, typename I>
struct IndexAddF {
  const T* src;
  const I* ids;
  T* out;
  int64_t n, v, d;
  int64_t* bad;
  MEMEL_HD void operator()(int64_t col) const {
    for (int64_t row = 0; row < n; ++row)
      if (id_ok(ids, row, v, bad)) out[int64_t(ids[row]) * d + col] += src[row * d + col];
  }
};

// --- convolution paths and pooling (N, C, H, W) ---------------------------------------

struct ConvGeom {
  int64_t N, C, H, W, OH, OW;
  int kh, kw, sh, sw, ph, pw, dh, dw;
};

// cols (N, C*kh*kw, OH*OW); i over its elements.
template <typename T>
struct Im2colF {
  ConvGeom g;
  const T* x;
  T* cols;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, r = i / (g.OW * g.OH);
    const int64_t kj = r % g.kw, ki = (r / g.kw) % g.kh, nc = r / (g.kw * g.kh);  // nc = n * C + c
    const int64_t iy = oy * g.sh - g.ph + ki * g.dh, ix = ox * g.sw - g.pw + kj * g.dw;
    cols[i] = (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) ? x[(nc * g.H + iy) * g.W + ix] : T(0);
  }
};

// x (N, C, H, W) = the sum of the columns that read each pixel, in (ki, kj) order (as the
// CPU's col2im adds them); i over x's elements.
template <typename T>
struct Col2imF {
  ConvGeom g;
  const T* cols;
  T* x;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t xx = i % g.W, yy = (i / g.W) % g.H, nc = i / (g.W * g.H);
    T s = T(0);
    for (int ki = 0; ki < g.kh; ++ki) {
      const int64_t ty = yy + g.ph - int64_t(ki) * g.dh;  // = oy * sh
      if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.OH) continue;
      const int64_t oy = ty / g.sh;
      for (int kj = 0; kj < g.kw; ++kj) {
        const int64_t tx = xx + g.pw - int64_t(kj) * g.dw;
        if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.OW) continue;
        const int64_t ox = tx / g.sw;
        s += cols[((nc * g.kh + ki) * g.kw + kj) * g.OH * g.OW + oy * g.OW + ox];
      }
    }
    x[i] = s;
  }
};

// y, argmax (N, C, OH, OW); i over y's elements. The first maximum of the window in
// row-major order wins, NaN wins (as the CPU).
template <typename T>
struct MaxPoolF {
  ConvGeom g;
  const T* x;
  T* y;
  int64_t* argmax;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, nc = i / (g.OW * g.OH);
    const T* xp = x + nc * g.H * g.W;
    T best = T(0);
    int64_t bi = -1;
    for (int a = 0; a < g.kh; ++a)
      for (int b = 0; b < g.kw; ++b) {
        const int64_t iy = oy * g.sh - g.ph + a, ix = ox * g.sw - g.pw + b;
        if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) continue;
        const T v = xp[iy * g.W + ix];
        if (bi < 0 || v > best || v != v) {
          best = v;
          bi = iy * g.W + ix;
        }
      }
    y[i] = best;
    argmax[i] = bi;
  }
};

// gx (N, C, H, W) from gy and the argmax (N, C, OH, OW): one index per (n, c) plane,
// which zeroes its plane and adds the outputs' gradients at their argmax in output order
// (windows may overlap, so planes are the unit that never races).
template <typename T>
struct MaxPoolBackwardF {
  int64_t HW, OHW;
  const T* gy;
  const int64_t* argmax;
  T* gx;
  MEMEL_HD void operator()(int64_t plane) const {
    T* g = gx + plane * HW;
    for (int64_t j = 0; j < HW; ++j) g[j] = T(0);
    for (int64_t o = 0; o < OHW; ++o) {
      const int64_t a = argmax[plane * OHW + o];
      if (a >= 0) g[a] += gy[plane * OHW + o];
    }
  }
};

MEMEL_HD int64_t avg_pool_divisor(const ConvGeom& g, int64_t oy, int64_t ox, bool count_pad) {
  const int64_t y0 = oy * g.sh - g.ph, x0 = ox * g.sw - g.pw;
  int64_t n;
  if (count_pad) {
    const int64_t ye = y0 + g.kh < g.H + g.ph ? y0 + g.kh : g.H + g.ph, xe = x0 + g.kw < g.W + g.pw ? x0 + g.kw : g.W + g.pw;
    n = (ye - y0) * (xe - x0);
  } else {
    const int64_t ys = y0 > 0 ? y0 : 0, xs = x0 > 0 ? x0 : 0;
    const int64_t ye = y0 + g.kh < g.H ? y0 + g.kh : g.H, xe = x0 + g.kw < g.W ? x0 + g.kw : g.W;
    n = (ye - ys) * (xe - xs);
  }
  return n;
}

template <typename T>
struct AvgPoolF {
  ConvGeom g;
  bool count_pad;
  const T* x;
  T* y;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, nc = i / (g.OW * g.OH);
    const T* xp = x + nc * g.H * g.W;
    T s = T(0);
    for (int a = 0; a < g.kh; ++a)
      for (int b = 0; b < g.kw; ++b) {
        const int64_t iy = oy * g.sh - g.ph + a, ix = ox * g.sw - g.pw + b;
        if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) s += xp[iy * g.W + ix];
      }
    const int64_t div = avg_pool_divisor(g, oy, ox, count_pad);
    y[i] = div > 0 ? s / T(div) : T(0);
  }
};

template <typename T>
struct AvgPoolBackwardF {
  ConvGeom g;
  bool count_pad;
  const T* gy;
  T* gx;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t xx = i % g.W, yy = (i / g.W) % g.H, nc = i / (g.W * g.H);
    T s = T(0);
    for (int64_t oy = 0; oy < g.OH; ++oy) {
      const int64_t y0 = oy * g.sh - g.ph;
      if (yy < y0 || yy >= y0 + g.kh) continue;
      for (int64_t ox = 0; ox < g.OW; ++ox) {
        const int64_t x0 = ox * g.sw - g.pw;
        if (xx < x0 || xx >= x0 + g.kw) continue;
        const int64_t div = avg_pool_divisor(g, oy, ox, count_pad);
        if (div > 0) s += gy[(nc * g.OH + oy) * g.OW + ox] / T(div);
      }
    }
    gx[i] = s;
  }
};

// --- Swin windows ----------------------------------------------------------------------

// windows (B * H/w * W/w, w*w, C) <-> image (B, H, W, C) with the cyclic shift of
// WindowGeometry; i over the windows' elements. to_windows: image -> windows.
template <typename T>
struct WindowCopyF {
  WindowGeometry g;
  bool to_windows;
  const T* src;
  T* dst;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t c = i % g.C, tok = (i / g.C) % (g.w * g.w), win = i / (g.C * g.w * g.w);
    const int64_t gw = g.W / g.w, nw = (g.H / g.w) * gw;
    const int64_t b = win / nw, wy = (win % nw) / gw, wx = win % gw;
    const int64_t y = wy * g.w + tok / g.w, x = wx * g.w + tok % g.w;  // in the shifted map
    const int64_t img = ((b * g.H + (y + g.sh) % g.H) * g.W + (x + g.sw) % g.W) * g.C + c;
    if (to_windows)
      dst[i] = src[img];
    else
      dst[img] = src[i];
  }
};

// --- ConvGRU gates (B, 3C, L) / (B, C, L); i over (B, C, L) ---------------------------

template <typename T>
MEMEL_HD T gru_sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T>
struct GruIndex {
  int64_t C, L;
  // Offset of element i of a (B, C, L) state in third `k` of a (B, 3C, L) gate tensor.
  MEMEL_HD int64_t gate(int64_t i, int k) const {
    const int64_t l = i % L, c = (i / L) % C, b = i / (L * C);
    return (b * 3 * C + int64_t(k) * C + c) * L + l;
  }
};

template <typename T>
struct GruCandidateF {
  GruIndex<T> ix;
  bool tanh_act;
  T slope;
  const T *xg, *hg;  // xg may be null
  T* cand;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t r0 = ix.gate(i, 0), n0 = ix.gate(i, 2);
    const T r = gru_sigmoid<T>(xg ? xg[r0] + hg[r0] : hg[r0]);
    const T a = (xg ? xg[n0] : T(0)) + r * hg[n0];
    cand[i] = tanh_act ? std::tanh(a) : (a > T(0) ? a : slope * a);
  }
};

template <typename T>
struct GruCandidateBackwardF {
  GruIndex<T> ix;
  bool tanh_act;
  T slope;
  const T *xg, *hg, *cand, *gcand;
  T *gxg, *ghg;  // gxg may be null
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t r0 = ix.gate(i, 0), z0 = ix.gate(i, 1), n0 = ix.gate(i, 2);
    const T r = gru_sigmoid<T>(xg ? xg[r0] + hg[r0] : hg[r0]);
    const T y = cand[i];
    const T da = gcand[i] * (tanh_act ? T(1) - y * y : (y > T(0) ? T(1) : slope));
    const T dpre = da * hg[n0] * r * (T(1) - r);
    ghg[r0] = dpre;
    ghg[z0] = T(0);
    ghg[n0] = da * r;
    if (gxg) {
      gxg[r0] = dpre;
      gxg[z0] = T(0);
      gxg[n0] = da;
    }
  }
};

template <typename T>
struct GruUpdateF {
  GruIndex<T> ix;
  const T *xg, *hg, *cand, *h;
  T* out;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t z0 = ix.gate(i, 1);
    const T z = gru_sigmoid<T>(xg ? xg[z0] + hg[z0] : hg[z0]);
    out[i] = cand[i] + z * (h[i] - cand[i]);
  }
};

template <typename T>
struct GruUpdateBackwardF {
  GruIndex<T> ix;
  const T *xg, *hg, *cand, *h, *gout;
  T *gxg, *ghg, *gcand, *gh;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t r0 = ix.gate(i, 0), z0 = ix.gate(i, 1), n0 = ix.gate(i, 2);
    const T z = gru_sigmoid<T>(xg ? xg[z0] + hg[z0] : hg[z0]);
    const T gy = gout[i];
    const T dpre = gy * (h[i] - cand[i]) * z * (T(1) - z);
    gcand[i] = gy * (T(1) - z);
    gh[i] = gy * z;
    ghg[r0] = T(0);
    ghg[z0] = dpre;
    ghg[n0] = T(0);
    if (gxg) {
      gxg[r0] = T(0);
      gxg[z0] = dpre;
      gxg[n0] = T(0);
    }
  }
};

// --- cross-entropy backward over (rows, C); i over its elements ------------------------

template <typename T, typename I>
struct CrossEntropyBackwardF {
  const T *logits, *lse, *grow;
  const I* target;
  int64_t C, ignore_index;
  T smoothing;
  T* glogits;
  MEMEL_HD void operator()(int64_t i) const {
    const int64_t r = i / C, j = i % C, t = int64_t(target[r]);
    if (t == ignore_index) {
      glogits[i] = T(0);
      return;
    }
    const T p = std::exp(logits[i] - lse[r]);
    const T tgt = smoothing / T(C) + (j == t ? T(1) - smoothing : T(0));
    glogits[i] = grow[r] * (p - tgt);
  }
};

// --- optimizer updates (one parameter, contiguous) --------------------------------------

// Adam(W) with the CPU's operation order (tensor/cpu/optim.cpp), scalars rounded to T.
template <typename T>
struct AdamF {
  T *p, *m, *v, *vmax;  // vmax null without amsgrad
  const T* g;
  T step_size, bc2_sqrt, b1, b2, omb1, omb2, eps, decay, wd;
  bool decoupled, has_decay;
  MEMEL_HD void operator()(int64_t i) const {
    T gi = g[i];
    if (has_decay) {
      if (decoupled)
        p[i] *= decay;
      else
        gi = gi + wd * p[i];
    }
    m[i] = m[i] * b1 + omb1 * gi;
    v[i] = v[i] * b2 + omb2 * gi * gi;
    T vv = v[i];
    if (vmax) {
      vmax[i] = vmax[i] > vv ? vmax[i] : vv;
      vv = vmax[i];
    }
    p[i] -= step_size * m[i] / (std::sqrt(vv) / bc2_sqrt + eps);
  }
};

// The functor of one Adam(W) parameter (host): its step's bias corrections folded into the
// step size, as the CPU's update computes them (optim/adamw.h).
template <typename T>
AdamF<T> adam_functor(T* p, T* m, T* v, T* vmax, const T* g, int64_t step, const AdamHyper& h) {
  const double bc1 = 1.0 - std::pow(h.beta1, double(step)), bc2 = 1.0 - std::pow(h.beta2, double(step));
  return AdamF<T>{p, m, v, vmax, g, T(h.lr / bc1), T(std::sqrt(bc2)), T(h.beta1), T(h.beta2), T(1.0 - h.beta1),
                  T(1.0 - h.beta2), T(h.eps), T(1.0 - h.lr * h.weight_decay), T(h.weight_decay), h.decoupled,
                  h.weight_decay != 0.0};
}

template <typename T>
struct SgdF {
  T *p, *buf;  // buf null without momentum
  const T* g;
  bool first, nesterov, has_decay;
  T wd, mom, damp1, neg_lr;
  MEMEL_HD void operator()(int64_t i) const {
    T d = g[i];
    if (has_decay) d = d + wd * p[i];
    if (buf) {
      const T b = first ? d : buf[i] * mom + damp1 * d;
      buf[i] = b;
      d = nesterov ? d + mom * b : b;
    }
    p[i] = p[i] + neg_lr * d;
  }
};

// Runs f(i) for every i in [0, n) on the host: the tests' stand-in for a launch.
template <typename F>
void run_on_host(const F& f, int64_t n) {
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace memel::cuda
