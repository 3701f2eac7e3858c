// Fused ConvGRU gates on the CPU. Gate tensors are (B, 3C, L) with thirds (reset, update,
// new) along the channels; states and candidates (B, C, L). Work is split over the B*C
// rows of L elements; every element is computed on its own, so results do not depend on
// the split.
#include "tensor/cpu/gru.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "tensor/cpu/vec_math.h"

namespace memel::cpu {
namespace {

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Pointers to the three thirds of one (b, c) row of a gate tensor; all null when the
// tensor is undefined (a cell without input).
template <typename T>
struct Thirds {
  const T *r = nullptr, *z = nullptr, *n = nullptr;
};

// The thirds of a gradient at the offsets `in` has in its input (none when either is absent).
template <typename T>
struct GradThirds {
  T *r = nullptr, *z = nullptr, *n = nullptr;
};
template <typename T>
GradThirds<T> at_same_offsets(const Thirds<T>& in, const Tensor& input, Tensor& grad) {
  GradThirds<T> g;
  if (!in.r || !grad.defined()) return g;
  const T* base = input.data<T>();
  T* gbase = grad.data<T>();
  g.r = gbase + (in.r - base);
  g.z = gbase + (in.z - base);
  g.n = gbase + (in.n - base);
  return g;
}

// Calls fn(row, L, xg thirds, hg thirds, state-row offset) for every (b, c) row.
template <typename T, typename F>
void for_rows(const Tensor& xg, const Tensor& hg, F fn) {
  const int64_t B = hg.shape()[0], C3 = hg.shape()[1], C = C3 / 3, L = hg.numel() / std::max<int64_t>(B * C3, 1);
  const T* px = xg.defined() ? xg.data<T>() : nullptr;
  const T* ph = hg.data<T>();
  parallel_for(B * C, std::max<int64_t>(1, 4096 / std::max<int64_t>(L, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / C, c = row % C;
      auto thirds = [&](const T* base) {
        Thirds<T> t;
        if (!base) return t;
        t.r = base + (b * C3 + c) * L;
        t.z = t.r + C * L;
        t.n = t.z + C * L;
        return t;
      };
      fn(L, thirds(px), thirds(ph), row * L);
    }
  });
}

}  // namespace

void gru_candidate(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand) {
  MEMEL_DISPATCH_FLOAT(hg.dtype(), "gru_candidate", [&] {
    using T = scalar_t;
    T* out = cand.data<T>();
    const T s = T(slope);
    for_rows<T>(xg, hg, [&](int64_t L, Thirds<T> x, Thirds<T> h, int64_t o) {
      for (int64_t i = 0; i < L; ++i) {
        const T r = sigmoid(x.r ? x.r[i] + h.r[i] : h.r[i]);
        const T a = (x.n ? x.n[i] : T(0)) + r * h.n[i];
        out[o + i] = tanh_act ? std::tanh(a) : (a > T(0) ? a : s * a);
      }
    });
  });
}

void gru_candidate_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand,
                            bool tanh_act, double slope, Tensor& gxg, Tensor& ghg) {
  MEMEL_DISPATCH_FLOAT(hg.dtype(), "gru_candidate_backward", [&] {
    using T = scalar_t;
    const T* c = cand.data<T>();
    const T* gc = gcand.data<T>();
    const T s = T(slope);
    for_rows<T>(xg, hg, [&](int64_t L, Thirds<T> x, Thirds<T> h, int64_t o) {
      const GradThirds<T> gx = at_same_offsets(x, xg, gxg), gh = at_same_offsets(h, hg, ghg);
      for (int64_t i = 0; i < L; ++i) {
        const T r = sigmoid(x.r ? x.r[i] + h.r[i] : h.r[i]);
        const T y = c[o + i];
        const T da = gc[o + i] * (tanh_act ? T(1) - y * y : (y > T(0) ? T(1) : s));
        const T dpre = da * h.n[i] * r * (T(1) - r);
        gh.r[i] = dpre;
        gh.z[i] = T(0);
        gh.n[i] = da * r;
        if (gx.r) {
          gx.r[i] = dpre;
          gx.z[i] = T(0);
          gx.n[i] = da;
        }
      }
    });
  });
}

void gru_update(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, Tensor& out) {
  MEMEL_DISPATCH_FLOAT(hg.dtype(), "gru_update", [&] {
    using T = scalar_t;
    const T* c = cand.data<T>();
    const T* hp = h.data<T>();
    T* po = out.data<T>();
    for_rows<T>(xg, hg, [&](int64_t L, Thirds<T> x, Thirds<T> g, int64_t o) {
      for (int64_t i = 0; i < L; ++i) {
        const T z = sigmoid(x.z ? x.z[i] + g.z[i] : g.z[i]);
        po[o + i] = c[o + i] + z * (hp[o + i] - c[o + i]);
      }
    });
  });
}

void gru_update_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                         const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh) {
  MEMEL_DISPATCH_FLOAT(hg.dtype(), "gru_update_backward", [&] {
    using T = scalar_t;
    const T* c = cand.data<T>();
    const T* hp = h.data<T>();
    const T* go = gout.data<T>();
    T* gc = gcand.data<T>();
    T* ghs = gh.data<T>();
    for_rows<T>(xg, hg, [&](int64_t L, Thirds<T> x, Thirds<T> g, int64_t o) {
      const GradThirds<T> gx = at_same_offsets(x, xg, gxg), gg = at_same_offsets(g, hg, ghg);
      for (int64_t i = 0; i < L; ++i) {
        const T z = sigmoid(x.z ? x.z[i] + g.z[i] : g.z[i]);
        const T gy = go[o + i];
        const T dpre = gy * (hp[o + i] - c[o + i]) * z * (T(1) - z);
        gc[o + i] = gy * (T(1) - z);
        ghs[o + i] = gy * z;
        gg.r[i] = T(0);
        gg.z[i] = dpre;
        gg.n[i] = T(0);
        if (gx.r) {
          gx.r[i] = T(0);
          gx.z[i] = dpre;
          gx.n[i] = T(0);
        }
      }
    });
  });
}

}  // namespace memel::cpu
