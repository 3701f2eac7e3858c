#pragma once
// Per-neuron running statistics (count m, mean mu, unbiased variance v) merged batch by
// batch with the exact parallel-variance rule (the paper's Lemma 3.2):
//   mu_{m+b} = (m mu_m + b mu_b') / (m + b)
//   v_{m+b}  = m b (mu_m - mu_b')^2 / ((m+b-1)(m+b)) + (b v_b' + (m-1) v_m) / (m+b-1)
// where the batch brings b values with mean mu_b' and biased variance v_b'. After any
// sequence of batches this equals the two-pass mean and unbiased variance of all values.
// With max_count = N > 0 the count stops growing at N (m is capped before and after the
// merge), which turns the statistics into an exponential moving average.
#include "tensor/tensor.h"

namespace memel {

struct NeuronStats {
  Tensor count, mean, var;  // each of the neuron shape, same floating dtype

  static NeuronStats zeros(const Shape& neuron_shape, DType dtype);
  bool defined() const { return count.defined(); }
  int64_t size() const { return count.numel(); }

  // Merges a batch summary: per-neuron count b (may differ per neuron under a padding
  // mask, and may be 0), batch mean and biased batch variance (contiguous, same shape).
  void merge(const Tensor& b, const Tensor& mean_b, const Tensor& var_b_biased, double max_count = 0);
  // The same from host arrays of size() doubles.
  void merge(const double* b, const double* mean_b, const double* var_b_biased, double max_count = 0);
  // Combines two statistics objects exactly (e.g. built on two devices or two halves).
  static NeuronStats combine(const NeuronStats& a, const NeuronStats& b, double max_count = 0);
  NeuronStats clone() const;
};

}  // namespace memel
