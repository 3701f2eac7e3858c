#pragma once
// Dropout(p), as torch.nn.Dropout: active only in training mode (Module::train/eval).
// Masks come from `gen` (default_generator() when null).
#include "layers/module.h"

namespace memel {

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  double p() const { return p_; }

 private:
  double p_;
  Generator* gen_;
};

}  // namespace memel
