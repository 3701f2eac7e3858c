#pragma once
// The arithmetic of the elementwise kernels, shared by the CPU and CUDA backends
// (__host__ __device__ under nvcc): one definition of every unary and binary op and of
// the unary ops' derivatives, so both backends compute the same function and the host
// tests check the arithmetic the GPU runs.
#include <cmath>

#include "core/hd.h"
#include "tensor/backend.h"

namespace memel {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <typename T>
MEMEL_HD T unary_fn(UnaryOp op, T x, double alpha) {
  using std::abs;
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return T(1) / std::sqrt(x);
    case UnaryOp::Abs: return abs(x);
    case UnaryOp::Sign: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::Square: return x * x;
    case UnaryOp::Reciprocal: return T(1) / x;
    case UnaryOp::Sin: return std::sin(x);
    case UnaryOp::Cos: return std::cos(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return T(1) / (T(1) + std::exp(-x));
    case UnaryOp::Relu: return x > T(0) ? x : T(0);
    case UnaryOp::Gelu: return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
    case UnaryOp::GeluTanh: {
      T c = T(0.7978845608028654) * (x + T(0.044715) * x * x * x);
      return T(0.5) * x * (T(1) + std::tanh(c));
    }
    case UnaryOp::LeakyRelu: return x > T(0) ? x : T(alpha) * x;
    case UnaryOp::AddScalar: return x + T(alpha);
    case UnaryOp::MulScalar: return x * T(alpha);
    case UnaryOp::PowScalar: return std::pow(x, T(alpha));
    case UnaryOp::ClampMin: return x < T(alpha) ? T(alpha) : x;
    case UnaryOp::ClampMax: return x > T(alpha) ? T(alpha) : x;
    case UnaryOp::Step: return x > T(alpha) ? T(1) : T(0);
  }
  return x;
}

// d op(x) / dx given x and y = op(x).
template <typename T>
MEMEL_HD T unary_grad(UnaryOp op, T x, T y, double alpha) {
  switch (op) {
    case UnaryOp::Neg: return T(-1);
    case UnaryOp::Exp: return y;
    case UnaryOp::Log: return T(1) / x;
    case UnaryOp::Sqrt: return T(0.5) / y;
    case UnaryOp::Rsqrt: return T(-0.5) * y * y * y;
    case UnaryOp::Abs: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::Sign: return T(0);
    case UnaryOp::Square: return T(2) * x;
    case UnaryOp::Reciprocal: return -y * y;
    case UnaryOp::Sin: return std::cos(x);
    case UnaryOp::Cos: return -std::sin(x);
    case UnaryOp::Tanh: return T(1) - y * y;
    case UnaryOp::Sigmoid: return y * (T(1) - y);
    case UnaryOp::Relu: return x > T(0) ? T(1) : T(0);
    case UnaryOp::Gelu:
      return T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2))) + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    case UnaryOp::GeluTanh: {
      T c = T(0.7978845608028654) * (x + T(0.044715) * x * x * x);
      T t = std::tanh(c);
      T dc = T(0.7978845608028654) * (T(1) + T(3 * 0.044715) * x * x);
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dc;
    }
    case UnaryOp::LeakyRelu: return x > T(0) ? T(1) : T(alpha);
    case UnaryOp::AddScalar: return T(1);
    case UnaryOp::MulScalar: return T(alpha);
    case UnaryOp::PowScalar: return T(alpha) * std::pow(x, T(alpha - 1));
    case UnaryOp::ClampMin: return x >= T(alpha) ? T(1) : T(0);
    case UnaryOp::ClampMax: return x <= T(alpha) ? T(1) : T(0);
    case UnaryOp::Step: return T(0);
  }
  return T(0);
}

template <typename T>
MEMEL_HD T binary_fn(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Max: return a > b ? a : b;
    case BinaryOp::Min: return a < b ? a : b;
    case BinaryOp::Pow: return static_cast<T>(std::pow(a, b));
    case BinaryOp::Eq: return T(a == b);
    case BinaryOp::Ne: return T(a != b);
    case BinaryOp::Gt: return T(a > b);
    case BinaryOp::Ge: return T(a >= b);
    case BinaryOp::Lt: return T(a < b);
    case BinaryOp::Le: return T(a <= b);
  }
  return a;
}


}  // namespace memel
