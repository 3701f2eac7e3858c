#pragma once
// Linear: y = x W^T + b, as torch.nn.Linear. Parameters "weight" (out, in) and "bias" (out).
// Default init as PyTorch: weight kaiming_uniform(a = sqrt 5), i.e. U(-1/sqrt(in), 1/sqrt(in)),
// and bias U(-1/sqrt(in), 1/sqrt(in)).
#include "layers/module.h"

namespace memel {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;  // (..., in) -> (..., out)
  std::string extra_repr() const override;
  // Re-draws the parameters with the default init.
  void reset_parameters();

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  int64_t in_features_, out_features_;
  Tensor weight_, bias_;
};

}  // namespace memel
