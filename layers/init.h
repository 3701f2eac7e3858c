#pragma once
// Parameter initialisers, as torch.nn.init. Each fills the tensor in place (any device,
// any strides) without recording history and returns the same tensor handle. Random
// values come from `gen`, or from default_generator() when it is null.
//
// Fans follow PyTorch: for a tensor of shape (d0, d1, k...), fan_in = d1 * prod(k) and
// fan_out = d0 * prod(k); tensors of rank < 2 have no fans (an error).
#include <string>
#include <utility>

#include "core/rng.h"
#include "tensor/tensor.h"

namespace memel::init {

enum class FanMode { In, Out };

// {fan_in, fan_out} of a weight of rank >= 2.
std::pair<int64_t, int64_t> compute_fans(const Tensor& t);
// Recommended gain for a nonlinearity: "linear", "conv2d", "sigmoid" (1), "tanh" (5/3),
// "relu" (sqrt 2), "leaky_relu" (sqrt(2 / (1 + param^2))), "selu" (3/4).
double calculate_gain(const std::string& nonlinearity, double param = 0.01);

Tensor uniform_(const Tensor& t, double lo = 0.0, double hi = 1.0, Generator* gen = nullptr);
Tensor normal_(const Tensor& t, double mean = 0.0, double stddev = 1.0, Generator* gen = nullptr);
Tensor constant_(const Tensor& t, double value);
Tensor zeros_(const Tensor& t);
Tensor ones_(const Tensor& t);
// U(-b, b) with b = gain * sqrt(3 / fan), gain = calculate_gain("leaky_relu", a).
// a = sqrt(5) gives PyTorch's default Linear/Conv weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Tensor kaiming_uniform_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::In, Generator* gen = nullptr);
// N(0, std^2) with std = gain / sqrt(fan), gain as for kaiming_uniform_.
Tensor kaiming_normal_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::In, Generator* gen = nullptr);
// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).
Tensor xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// N(mean, std^2) restricted to [a, b] (absolute bounds, as PyTorch's trunc_normal_), by
// inverse-CDF sampling. timm's trunc_normal_(w, std=.02) is trunc_normal_(w, 0.02).
Tensor trunc_normal_(const Tensor& t, double stddev = 1.0, double a = -2.0, double b = 2.0, double mean = 0.0,
                     Generator* gen = nullptr);

// The default bias bound of PyTorch's Linear/Conv layers: 1/sqrt(fan_in), 0 when fan_in is 0.
double default_bias_bound(const Tensor& weight);

}  // namespace memel::init
