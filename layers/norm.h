#pragma once
// LayerNorm over the last axis, as torch.nn.LayerNorm(normalized_size). With
// elementwise_affine, parameters "weight" (ones) and "bias" (zeros), both (n).
#include "layers/module.h"

namespace memel {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t normalized_size, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override;  // (..., n) -> (..., n)
  std::string extra_repr() const override;
  void reset_parameters();

  int64_t normalized_size() const { return n_; }
  double eps() const { return eps_; }
  const Tensor& weight() const { return weight_; }  // undefined without affine
  const Tensor& bias() const { return bias_; }

 private:
  int64_t n_;
  double eps_;
  Tensor weight_, bias_;
};

}  // namespace memel
