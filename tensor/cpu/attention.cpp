// Fused scaled-dot-product attention on the CPU.
//
// Work is split over (batch, head) pairs with parallel_for; each pair runs on one thread
// with single-threaded BLAS products and a per-thread scratch of at most three Tq x Tk
// buffers, so no more than one head's scores per thread exist at any time. Nothing of
// size T x T is kept for the backward: the forward saves the row log-sum-exp (B, H, Tq)
// and the backward recomputes the probabilities from q, k and the mask (one extra
// q k^T product per head), and regenerates the dropout mask from the counter-based RNG.
#include "tensor/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "tensor/cpu/blas.h"
#include "tensor/cpu/vec_math.h"

namespace memel::cpu {
namespace {

// A (B, H, rows, cols) view: pointer arithmetic for one (b, h) matrix.
template <typename T>
struct View4 {
  T* base = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 1;
  int64_t rows = 0, cols = 0;
  View4() = default;
  View4(const Tensor& t) {  // NOLINT: implicit on purpose
    if (!t.defined()) return;
    base = t.data<T>();
    s0 = t.strides()[0];
    s1 = t.strides()[1];
    s2 = t.strides()[2];
    s3 = t.strides()[3];
    rows = t.shape()[2];
    cols = t.shape()[3];
  }
  T* at(int64_t b, int64_t h) const { return base + b * s0 + h * s1; }
  // Leading dimension for BLAS (any value >= cols works for a single row).
  int ld() const { return static_cast<int>(rows <= 1 ? std::max<int64_t>(cols, 1) : s2); }
};

// scores (Tq, Tk) = scale * q k^T + mask for one (b, h).
template <typename T>
void scores(const View4<T>& q, const View4<T>& k, const View4<T>& m, int64_t b, int64_t h, T scale, T* s) {
  const int Tq = int(q.rows), Tk = int(k.rows), D = int(q.cols);
  blas_gemm(false, true, Tq, Tk, D, scale, q.at(b, h), q.ld(), k.at(b, h), k.ld(), T(0), s, Tk);
  if (!m.base) return;
  const T* mp = m.at(b, h);
  for (int64_t i = 0; i < Tq; ++i) {
    const T* mr = mp + i * m.s2;
    T* sr = s + i * Tk;
    if (m.s3 == 1)
      for (int64_t j = 0; j < Tk; ++j) sr[j] += mr[j];
    else
      for (int64_t j = 0; j < Tk; ++j) sr[j] += mr[j * m.s3];
  }
}

// The dropout multipliers of elements [idx0, idx0 + n) of the (B, H, Tq, Tk) stream:
// keep (1/(1-p)) or 0, exactly as Backend::dropout_mask computes them
// (philox_uniform(seed, offset, idx) >= p).
template <typename T>
void dropout_row(uint64_t seed, uint64_t offset, uint64_t idx0, int64_t n, float pf, T keep, T* out) {
  philox_uniform_for(seed, offset, idx0, n, [&](int64_t j, float u) { out[j] = u >= pf ? keep : T(0); });
}

// Row helpers: the float versions run 16 lanes at a time (tensor/cpu/vec_math.h), the
// double ones (gradient checks) stay exact.
inline float max_of(const float* s, int64_t n) { return row_max(s, n); }
inline double max_of(const double* s, int64_t n) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j]);
  return mx;
}
// s[j] = exp(s[j] - sub), returns the sum.
inline float exp_shift(float* s, int64_t n, float sub) { return exp_sub_sum(s, s, n, sub); }
inline double exp_shift(double* s, int64_t n, double sub) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - sub);
    sum += s[j];
  }
  return sum;
}
inline float dot_of(const float* a, const float* b, int64_t n) { return dot_row(a, b, n); }
inline double dot_of(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += a[j] * b[j];
  return s;
}

template <typename T>
void forward_impl(const Tensor& qt, const Tensor& kt, const Tensor& vt, const Tensor& mt, double scale, double p,
                  uint64_t seed, uint64_t offset, Tensor& ot, Tensor& lset) {
  const View4<T> q(qt), k(kt), v(vt), m(mt), o(ot);
  const int64_t B = qt.shape()[0], H = qt.shape()[1], Tq = q.rows, Tk = k.rows, Dv = v.cols;
  T* lse = lset.data<T>();
  const bool drop = p > 0.0;
  const float pf = static_cast<float>(p);
  const T keep = T(1.0 / (1.0 - p));
  parallel_for(B * H, 1, [&](int64_t p0, int64_t p1) {
    std::vector<T> s(static_cast<size_t>(Tq * Tk)), dm(drop ? static_cast<size_t>(Tk) : 0);
    for (int64_t bh = p0; bh < p1; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      scores(q, k, m, b, h, T(scale), s.data());  // (Tq, Tk)
      for (int64_t i = 0; i < Tq; ++i) {
        T* sr = s.data() + i * Tk;
        const T mx = max_of(sr, Tk);
        if (mx == -std::numeric_limits<T>::infinity()) {  // every key masked out
          std::fill(sr, sr + Tk, T(0));
          lse[bh * Tq + i] = mx;
          continue;
        }
        const T sum = exp_shift(sr, Tk, mx);
        lse[bh * Tq + i] = mx + std::log(sum);
        T inv = T(1) / sum;
        if (drop) {
          dropout_row(seed, offset, static_cast<uint64_t>((bh * Tq + i) * Tk), Tk, pf, keep, dm.data());
          for (int64_t j = 0; j < Tk; ++j) sr[j] *= inv * dm[j];
        } else {
          for (int64_t j = 0; j < Tk; ++j) sr[j] *= inv;
        }
      }
      // out (Tq, Dv) = P (Tq, Tk) v (Tk, Dv)
      blas_gemm(false, false, int(Tq), int(Dv), int(Tk), T(1), s.data(), int(Tk), v.at(b, h), v.ld(), T(0), o.at(b, h),
           o.ld());
    }
  });
}

template <typename T>
void backward_impl(const Tensor& qt, const Tensor& kt, const Tensor& vt, const Tensor& mt, const Tensor& lset,
                   const Tensor& gt, double scale, double p, uint64_t seed, uint64_t offset, Tensor& gqt, Tensor& gkt,
                   Tensor& gvt) {
  const View4<T> q(qt), k(kt), v(vt), m(mt), go(gt), gq(gqt), gk(gkt), gv(gvt);
  const int64_t B = qt.shape()[0], H = qt.shape()[1], Tq = q.rows, Tk = k.rows, D = q.cols, Dv = v.cols;
  const T* lse = lset.data<T>();
  const bool drop = p > 0.0;
  const float pf = static_cast<float>(p);
  const T keep = T(1.0 / (1.0 - p));
  const T sc = T(scale);
  parallel_for(B * H, 1, [&](int64_t p0, int64_t p1) {
    const size_t n = static_cast<size_t>(Tq * Tk);
    std::vector<T> pr(n), dp(n), pd(drop ? n : 0);
    for (int64_t bh = p0; bh < p1; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      // P (Tq, Tk), recomputed from the saved row log-sum-exp.
      scores(q, k, m, b, h, sc, pr.data());
      for (int64_t i = 0; i < Tq; ++i) {
        T* r = pr.data() + i * Tk;
        const T l = lse[bh * Tq + i];
        if (l == -std::numeric_limits<T>::infinity())
          std::fill(r, r + Tk, T(0));
        else
          exp_shift(r, Tk, l);
      }
      // dPd (Tq, Tk) = gout (Tq, Dv) v^T (Dv, Tk): gradient w.r.t. the dropped probabilities.
      blas_gemm(false, true, int(Tq), int(Tk), int(Dv), T(1), go.at(b, h), go.ld(), v.at(b, h), v.ld(), T(0), dp.data(),
           int(Tk));
      const T* used = pr.data();  // the probabilities that multiplied v
      if (drop) {
        for (int64_t i = 0; i < Tq; ++i) {
          T* mrow = pd.data() + i * Tk;
          dropout_row(seed, offset, static_cast<uint64_t>((bh * Tq + i) * Tk), Tk, pf, keep, mrow);
          const T* r = pr.data() + i * Tk;
          T* d = dp.data() + i * Tk;
          for (int64_t j = 0; j < Tk; ++j) {
            d[j] *= mrow[j];           // dP = dPd * mask
            mrow[j] *= r[j];           // Pd = P * mask
          }
        }
        used = pd.data();
      }
      // gv (Tk, Dv) = Pd^T (Tk, Tq) gout (Tq, Dv)
      blas_gemm(true, false, int(Tk), int(Dv), int(Tq), T(1), used, int(Tk), go.at(b, h), go.ld(), T(0), gv.at(b, h),
           gv.ld());
      // dS = P * (dP - rowsum(dP * P)), in place in dp.
      for (int64_t i = 0; i < Tq; ++i) {
        const T* r = pr.data() + i * Tk;
        T* d = dp.data() + i * Tk;
        const T dot = dot_of(d, r, Tk);
        for (int64_t j = 0; j < Tk; ++j) d[j] = r[j] * (d[j] - dot);
      }
      // gq (Tq, D) = scale * dS (Tq, Tk) k (Tk, D);  gk (Tk, D) = scale * dS^T (Tk, Tq) q (Tq, D)
      blas_gemm(false, false, int(Tq), int(D), int(Tk), sc, dp.data(), int(Tk), k.at(b, h), k.ld(), T(0), gq.at(b, h),
           gq.ld());
      blas_gemm(true, false, int(Tk), int(D), int(Tq), sc, dp.data(), int(Tk), q.at(b, h), q.ld(), T(0), gk.at(b, h),
           gk.ld());
    }
  });
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale, double p,
                       uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse) {
  if (out.numel() == 0) return;
  MEMEL_DISPATCH_FLOAT(q.dtype(), "attention",
                       [&] { forward_impl<scalar_t>(q, k, v, mask, scale, p, seed, offset, out, lse); });
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& lse,
                        const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset, Tensor& gq,
                        Tensor& gk, Tensor& gv) {
  if (q.numel() == 0 && k.numel() == 0) return;
  MEMEL_DISPATCH_FLOAT(q.dtype(), "attention_backward", [&] {
    backward_impl<scalar_t>(q, k, v, mask, lse, gout, scale, p, seed, offset, gq, gk, gv);
  });
}

}  // namespace memel::cpu
