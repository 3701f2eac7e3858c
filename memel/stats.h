#pragma once
// Per-neuron running statistics (count m, mean mu, unbiased variance v) merged batch by
// batch with the exact parallel-variance rule (the paper's Lemma 3.2):
//   mu_{m+b} = (m mu_m + b mu_b') / (m + b)
//   v_{m+b}  = m b (mu_m - mu_b')^2 / ((m+b-1)(m+b)) + (b v_b' + (m-1) v_m) / (m+b-1)
// where the batch brings b values with mean mu_b' and biased variance v_b'. After any
// sequence of batches this equals the two-pass mean and unbiased variance of all values.
// Forgetting (MergeRule::forget_batches = t_f > 0): before a batch of b values is merged the
// history's count m is capped at t_f * b, and the stored count at t_f * b after it, so the
// history weighs at most t_f batches and the statistics become an exponential moving average
// (the paper's Appendix C.1). count_ahead reproduces the authors' code, whose batch counter is
// incremented before the merge: a non-empty history is weighted as m + b instead of m (then
// capped); the stored count stays the true one (capped).
#include "tensor/tensor.h"

namespace memel {

struct MergeRule {
  int64_t forget_batches = 0;  // 0 = never forget (exact moments of all history)
  bool count_ahead = false;
};

struct NeuronStats {
  Tensor count, mean, var;  // each of the neuron shape, same floating dtype

  static NeuronStats zeros(const Shape& neuron_shape, DType dtype, Device device = Device::cpu());
  bool defined() const { return count.defined(); }
  int64_t size() const { return count.numel(); }

  // Merges a batch summary: per-neuron count b (may differ per neuron under a padding
  // mask, and may be 0), batch mean and biased batch variance (contiguous, same shape).
  void merge(const Tensor& b, const Tensor& mean_b, const Tensor& var_b_biased, const MergeRule& rule = {});
  // The same from host arrays of size() doubles.
  void merge(const double* b, const double* mean_b, const double* var_b_biased, const MergeRule& rule = {});
  // Combines two statistics objects exactly (e.g. built on two devices or two halves).
  static NeuronStats combine(const NeuronStats& a, const NeuronStats& b);
  NeuronStats clone() const;
};

}  // namespace memel
