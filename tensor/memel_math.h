#pragma once
// The arithmetic of the memel pass kernels (Backend::memel_pass, memel_merge,
// memel_select; tensor/backend.h), shared by the CPU and CUDA backends (__host__
// __device__ under nvcc) so that both compute the same function and the host tests check
// the arithmetic the GPU runs. Everything is in double, whatever the statistics' dtype.
#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace memel {

// The MS denominator of a neuron with variance v: v + eps * mean_v, or, where that is not
// positive (a dead neuron with eps = 0), the mean variance, or 1 when every neuron is dead.
MEMEL_HD double memel_denom(double v, double eps, double mean_v) {
  const double d = v + eps * mean_v;
  return d > 0 ? d : (mean_v > 0 ? mean_v : 1.0);
}

// phi(z) = (z - mu)^2 / denom.
MEMEL_HD double memel_phi(double z, double mu, double denom) {
  const double e = z - mu;
  return e * e / denom;
}

// Batch moments from sums shifted by `shift` over cnt > 0 values: s1 = sum(z - shift),
// s2 = sum((z - shift)^2) -> mean and biased variance.
MEMEL_HD void memel_finish_moments(double s1, double s2, double cnt, double shift, double* mean, double* var) {
  const double m1 = s1 / cnt;  // mean of (z - shift)
  const double v = s2 / cnt - m1 * m1;
  *var = v > 0.0 ? v : 0.0;
  *mean = shift + m1;
}

// One neuron's statistics (m, mu, v) <- merge with a batch of b values of mean mb and
// biased variance vb (memel/stats.h: Lemma 3.2 with forgetting and count_ahead).
template <typename T>
MEMEL_HD void memel_merge_one(T& m_, T& mu_, T& v_, double b, double mb, double vb, int64_t forget_batches,
                              bool count_ahead) {
  if (!(b > 0)) return;
  const double m_true = double(m_), mu = double(mu_), v = double(v_);
  const double cap = forget_batches > 0 ? double(forget_batches) * b : 0.0;
  double m = m_true > 0 && count_ahead ? m_true + b : m_true;  // the history's weight
  if (cap > 0 && cap < m) m = cap;
  const double n = m + b;
  const double new_mu = (m * mu + b * mb) / n;
  double new_v = 0;
  if (n > 1) {
    const double d = mu - mb;
    new_v = m * b * d * d / ((n - 1) * n) + (b * vb + (m > 0 ? (m - 1) * v : 0.0)) / (n - 1);
  }
  const double stored = m_true + b;
  m_ = T(cap > 0 && cap < stored ? cap : stored);
  mu_ = T(new_mu);
  v_ = T(new_v);
}

// The bin of p among ne ascending edges (memel/layer.h MsHistBins): the number of edges
// <= p, by binary search; NaN and values below edges[0] give 0.
MEMEL_HD int64_t memel_hist_bin(double p, const double* edges, int64_t ne) {
  if (ne == 0 || !(p >= edges[0])) return 0;
  int64_t lo = 1, hi = ne;  // the answer is in [lo, hi]: edges[lo-1] <= p
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (p >= edges[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// How many of n candidates a selection rule takes (memel/options.h MemelSelect; rule 0
// top_k, 1 top_log, 2 ratio, 3 threshold: decided per element, so n).
MEMEL_HD int64_t memel_select_count(int rule, int64_t k, double ratio, int64_t n) {
  switch (rule) {
    case 0: return k < n ? k : n;
    case 1: {
      if (n <= 1) return n;
      const int64_t c = static_cast<int64_t>(std::ceil(std::log2(double(n))));
      return c < n ? c : n;
    }
    case 2: {
      const int64_t c = static_cast<int64_t>(std::ceil(ratio * double(n) - 1e-9));
      return c < n ? c : n;
    }
    default: return n;
  }
}

}  // namespace memel
