#include "memel/stats.h"

#include <algorithm>

#include "core/thread_pool.h"
#include "tensor/host_stage.h"

namespace memel {

NeuronStats NeuronStats::zeros(const Shape& s, DType dtype, Device device) {
  return {Tensor::zeros(s, dtype, device), Tensor::zeros(s, dtype, device), Tensor::zeros(s, dtype, device)};
}

NeuronStats NeuronStats::clone() const { return {count.contiguous_copy(), mean.contiguous_copy(), var.contiguous_copy()}; }

namespace {

// One neuron: (m, mu, v) <- merge with (b, mb, vb_biased).
template <typename T>
inline void merge_one(T& m_, T& mu_, T& v_, double b, double mb, double vb, const MergeRule& r) {
  if (b <= 0) return;
  const double m_true = double(m_), mu = double(mu_), v = double(v_);
  const double cap = r.forget_batches > 0 ? double(r.forget_batches) * b : 0.0;
  double m = m_true > 0 && r.count_ahead ? m_true + b : m_true;  // the history's weight
  if (cap > 0) m = std::min(m, cap);
  const double n = m + b;
  const double new_mu = (m * mu + b * mb) / n;
  double new_v = 0;
  if (n > 1) {
    const double d = mu - mb;
    new_v = m * b * d * d / ((n - 1) * n) + (b * vb + (m > 0 ? (m - 1) * v : 0.0)) / (n - 1);
  }
  m_ = T(cap > 0 ? std::min(m_true + b, cap) : m_true + b);
  mu_ = T(new_mu);
  v_ = T(new_v);
}

}  // namespace

void NeuronStats::merge(const Tensor& b, const Tensor& mean_b, const Tensor& var_b, const MergeRule& rule) {
  MEMEL_CHECK(b.numel() == size() && mean_b.numel() == size() && var_b.numel() == size(),
              "[memel stats] batch summary of ", b.numel(), " neurons for statistics of ", size());
  const std::vector<double> pb = b.to_vector(), pmb = mean_b.to_vector(), pvb = var_b.to_vector();
  merge(pb.data(), pmb.data(), pvb.data(), rule);
}

void NeuronStats::merge(const double* pb, const double* pmb, const double* pvb, const MergeRule& rule) {
  // Host code: on a device the host cannot address it merges host copies (tensor/host_stage.h).
  on_host({}, {&count, &mean, &var}, [&] {
    MEMEL_DISPATCH_FLOAT(mean.dtype(), "memel stats", [&] {
      using T = scalar_t;
      T* pm = count.data<T>();
      T* pmu = mean.data<T>();
      T* pv = var.data<T>();
      parallel_for(size(), 4096, [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) merge_one<T>(pm[i], pmu[i], pv[i], pb[i], pmb[i], pvb[i], rule);
      });
    });
  });
}

NeuronStats NeuronStats::combine(const NeuronStats& a, const NeuronStats& b) {
  MEMEL_CHECK(a.count.shape() == b.count.shape(), "[memel stats] cannot combine statistics of shapes ",
              shape_str(a.count.shape()), " and ", shape_str(b.count.shape()));
  NeuronStats r = a.clone();
  // b's unbiased variance -> biased, then the ordinary batch merge.
  std::vector<double> nb = b.count.to_vector(), vb = b.var.to_vector();
  for (size_t i = 0; i < nb.size(); ++i) vb[i] = nb[i] > 0 ? vb[i] * (nb[i] - 1) / nb[i] : 0.0;
  r.merge(b.count, b.mean, Tensor::from_vector(vb, b.count.shape(), DType::F64));
  return r;
}

}  // namespace memel
