#include "layers/init.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/node.h"

namespace memel::init {

namespace {

void check_float_tensor(const Tensor& t, const char* op) {
  MEMEL_CHECK(t.defined(), "[init.", op, "] tensor is undefined");
  MEMEL_CHECK(is_floating(t.dtype()), "[init.", op, "] expects a floating tensor, got ", dtype_name(t.dtype()));
}

// Writes host values (row-major) into t, whatever its device and strides.
Tensor assign(const Tensor& t, const Tensor& host_values) {
  NoGradGuard ng;
  Tensor dst = t;
  dst.copy_from(host_values);
  return t;
}

// Inverse error function: a rational first guess refined by Newton steps on std::erf.
double erfinv(double y) {
  if (y <= -1.0) return -INFINITY;
  if (y >= 1.0) return INFINITY;
  double w = -std::log((1.0 - y) * (1.0 + y)), x;
  if (w < 5.0) {
    w -= 2.5;
    double p = 2.81022636e-08;
    p = 3.43273939e-07 + p * w;
    p = -3.5233877e-06 + p * w;
    p = -4.39150654e-06 + p * w;
    p = 0.00021858087 + p * w;
    p = -0.00125372503 + p * w;
    p = -0.00417768164 + p * w;
    p = 0.246640727 + p * w;
    p = 1.50140941 + p * w;
    x = p * y;
  } else {
    w = std::sqrt(w) - 3.0;
    double p = -0.000200214257;
    p = 0.000100950558 + p * w;
    p = 0.00134934322 + p * w;
    p = -0.00367342844 + p * w;
    p = 0.00573950773 + p * w;
    p = -0.0076224613 + p * w;
    p = 0.00943887047 + p * w;
    p = 1.00167406 + p * w;
    p = 2.83297682 + p * w;
    x = p * y;
  }
  for (int i = 0; i < 2; ++i) x -= (std::erf(x) - y) / (2.0 / std::sqrt(M_PI) * std::exp(-x * x));
  return x;
}

double fan_for(const Tensor& t, FanMode mode) {
  auto f = compute_fans(t);
  return static_cast<double>(mode == FanMode::In ? f.first : f.second);
}

}  // namespace

std::pair<int64_t, int64_t> compute_fans(const Tensor& t) {
  MEMEL_CHECK(t.defined(), "[init.compute_fans] tensor is undefined");
  MEMEL_CHECK(t.dim() >= 2, "[init.compute_fans] fan in and fan out need a tensor of rank >= 2, got ",
              shape_str(t.shape()));
  int64_t receptive = 1;
  for (int64_t i = 2; i < t.dim(); ++i) receptive *= t.shape()[i];
  return {t.shape()[1] * receptive, t.shape()[0] * receptive};
}

double calculate_gain(const std::string& nl, double param) {
  if (nl == "linear" || nl == "conv1d" || nl == "conv2d" || nl == "conv3d" || nl == "conv_transpose2d" ||
      nl == "sigmoid" || nl == "identity")
    return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nl == "selu") return 0.75;
  MEMEL_FAIL("[init.calculate_gain] unknown nonlinearity '", nl,
             "' (expected linear, conv2d, sigmoid, tanh, relu, leaky_relu or selu)");
}

Tensor uniform_(const Tensor& t, double lo, double hi, Generator* gen) {
  check_float_tensor(t, "uniform_");
  MEMEL_CHECK(lo <= hi, "[init.uniform_] lower bound ", lo, " is above upper bound ", hi);
  return assign(t, Tensor::uniform(t.shape(), lo, hi, t.dtype(), gen));
}

Tensor normal_(const Tensor& t, double mean, double stddev, Generator* gen) {
  check_float_tensor(t, "normal_");
  MEMEL_CHECK(stddev >= 0.0, "[init.normal_] std must be non-negative, got ", stddev);
  Generator& g = gen ? *gen : default_generator();
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (double& x : v) x = mean + stddev * g.normal();
  return assign(t, Tensor::from_vector(v, t.shape(), DType::F64));
}

Tensor constant_(const Tensor& t, double value) {
  check_float_tensor(t, "constant_");
  NoGradGuard ng;
  Tensor dst = t;
  dst.fill_(value);
  return t;
}
Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1.0); }

Tensor kaiming_uniform_(const Tensor& t, double a, FanMode mode, Generator* gen) {
  check_float_tensor(t, "kaiming_uniform_");
  const double fan = fan_for(t, mode);
  MEMEL_CHECK(fan > 0, "[init.kaiming_uniform_] zero fan for tensor ", shape_str(t.shape()));
  const double bound = calculate_gain("leaky_relu", a) * std::sqrt(3.0 / fan);
  return uniform_(t, -bound, bound, gen);
}

Tensor kaiming_normal_(const Tensor& t, double a, FanMode mode, Generator* gen) {
  check_float_tensor(t, "kaiming_normal_");
  const double fan = fan_for(t, mode);
  MEMEL_CHECK(fan > 0, "[init.kaiming_normal_] zero fan for tensor ", shape_str(t.shape()));
  return normal_(t, 0.0, calculate_gain("leaky_relu", a) / std::sqrt(fan), gen);
}

Tensor xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  check_float_tensor(t, "xavier_uniform_");
  auto f = compute_fans(t);
  MEMEL_CHECK(f.first + f.second > 0, "[init.xavier_uniform_] zero fans for tensor ", shape_str(t.shape()));
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(f.first + f.second));
  return uniform_(t, -bound, bound, gen);
}

Tensor xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  check_float_tensor(t, "xavier_normal_");
  auto f = compute_fans(t);
  MEMEL_CHECK(f.first + f.second > 0, "[init.xavier_normal_] zero fans for tensor ", shape_str(t.shape()));
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(f.first + f.second)), gen);
}

Tensor trunc_normal_(const Tensor& t, double stddev, double a, double b, double mean, Generator* gen) {
  check_float_tensor(t, "trunc_normal_");
  MEMEL_CHECK(stddev > 0.0, "[init.trunc_normal_] std must be positive, got ", stddev);
  MEMEL_CHECK(a < b, "[init.trunc_normal_] bounds must satisfy a < b, got a=", a, " b=", b);
  // Uniform in [cdf(a), cdf(b)], mapped back through the inverse normal CDF.
  auto cdf = [](double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); };
  const double lo = cdf((a - mean) / stddev), hi = cdf((b - mean) / stddev);
  Tensor u = Tensor::uniform(t.shape(), 0.0, 1.0, DType::F64, gen);
  double* p = u.data<double>();
  for (int64_t i = 0; i < u.numel(); ++i) {
    const double q = lo + (hi - lo) * p[i];
    double x = mean + stddev * std::sqrt(2.0) * erfinv(2.0 * q - 1.0);
    p[i] = std::min(std::max(x, a), b);
  }
  return assign(t, u);
}

double default_bias_bound(const Tensor& weight) {
  const int64_t fan_in = compute_fans(weight).first;
  return fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
}

}  // namespace memel::init
