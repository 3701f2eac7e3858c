#pragma once
// Parameter-free layers, as their torch.nn namesakes: ReLU, GELU, Tanh, Sigmoid,
// LeakyReLU, Identity, Flatten.
#include "layers/module.h"

namespace memel {

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override { return relu(x); }
};

// Exact GELU x * Phi(x) (erf form, as BERT), or the tanh approximation.
class GELU : public Module {
 public:
  explicit GELU(bool tanh_approximation = false) : Module("GELU"), tanh_(tanh_approximation) {}
  Tensor forward(const Tensor& x) override { return tanh_ ? gelu_tanh(x) : gelu(x); }
  std::string extra_repr() const override { return tanh_ ? "approximate='tanh'" : "approximate='none'"; }

 private:
  bool tanh_;
};

class Tanh : public Module {
 public:
  Tanh() : Module("Tanh") {}
  Tensor forward(const Tensor& x) override { return tanh(x); }
};

class Sigmoid : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : Module("LeakyReLU"), slope_(negative_slope) {}
  Tensor forward(const Tensor& x) override { return leaky_relu(x, slope_); }
  std::string extra_repr() const override;

 private:
  double slope_;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) override { return x; }
};

// Flattens axes [start_dim, end_dim] into one (PyTorch's defaults keep the batch axis).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : Module("Flatten"), start_(start_dim), end_(end_dim) {}
  Tensor forward(const Tensor& x) override { return flatten(x, start_, end_); }
  std::string extra_repr() const override;

 private:
  int64_t start_, end_;
};

}  // namespace memel
