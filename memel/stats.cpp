#include "memel/stats.h"

#include <algorithm>

#include "tensor/backend.h"

namespace memel {

NeuronStats NeuronStats::zeros(const Shape& s, DType dtype, Device device) {
  return {Tensor::zeros(s, dtype, device), Tensor::zeros(s, dtype, device), Tensor::zeros(s, dtype, device)};
}

NeuronStats NeuronStats::clone() const { return {count.contiguous_copy(), mean.contiguous_copy(), var.contiguous_copy()}; }

void NeuronStats::merge(const Tensor& b, const Tensor& mean_b, const Tensor& var_b, const MergeRule& rule) {
  MEMEL_CHECK(b.numel() == size() && mean_b.numel() == size() && var_b.numel() == size(),
              "[memel stats] batch summary of ", b.numel(), " neurons for statistics of ", size());
  // The batch moments in double on the statistics' device (no copy when they are already).
  const Device dev = count.device();
  auto prep = [&](const Tensor& t) {
    Tensor r = t.to(dev);
    if (r.dtype() != DType::F64) r = r.to_dtype(DType::F64);
    return r.is_contiguous() ? r : r.contiguous_copy();
  };
  backend_for(dev).memel_merge(count, mean, var, prep(b), prep(mean_b), prep(var_b), rule.forget_batches,
                               rule.count_ahead);
}

void NeuronStats::merge(const double* pb, const double* pmb, const double* pvb, const MergeRule& rule) {
  const Shape s{size()};
  auto host = [&](const double* p) { return Tensor::from_vector(std::vector<double>(p, p + size()), s, DType::F64); };
  merge(host(pb), host(pmb), host(pvb), rule);
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
