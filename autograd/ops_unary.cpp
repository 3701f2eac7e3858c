// Unary elementwise ops: one kernel each way through the backend.
#include "autograd/ops_util.h"

namespace memel {
using namespace detail;

MEMEL_REGISTER_OP("neg");
MEMEL_REGISTER_OP("exp");
MEMEL_REGISTER_OP("log");
MEMEL_REGISTER_OP("sqrt");
MEMEL_REGISTER_OP("rsqrt");
MEMEL_REGISTER_OP("abs");
MEMEL_REGISTER_OP("square");
MEMEL_REGISTER_OP("sin");
MEMEL_REGISTER_OP("cos");
MEMEL_REGISTER_OP("tanh");
MEMEL_REGISTER_OP("sigmoid");
MEMEL_REGISTER_OP("relu");
MEMEL_REGISTER_OP("gelu");
MEMEL_REGISTER_OP("gelu_tanh");
MEMEL_REGISTER_OP("leaky_relu");
MEMEL_REGISTER_OP("add_scalar");
MEMEL_REGISTER_OP("mul_scalar");
MEMEL_REGISTER_OP("pow");
MEMEL_REGISTER_OP("clamp");

namespace {

// y = op(x); backward uses x or y as the kernel prefers.
Tensor unary(UnaryOp op, const char* name, const Tensor& x, double alpha = 0.0) {
  check_float(x, name);
  Tensor y = empty_like(x);
  if (y.numel() > 0) backend_for(x).unary(op, x, y, alpha);
  if (!autograd::needs_grad({x})) return y;
  Tensor xd = cont(x), yd = y.detach();
  return autograd::record(name, y, {x}, [=](const TensorList& g) -> TensorList {
    Tensor gx = empty_like(xd);
    if (gx.numel() > 0) backend_for(xd).unary_backward(op, xd, yd, cont(g[0]), gx, alpha);
    return {gx};
  });
}

}  // namespace

Tensor neg(const Tensor& x) { return unary(UnaryOp::Neg, "neg", x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::Exp, "exp", x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::Log, "log", x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::Sqrt, "sqrt", x); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::Rsqrt, "rsqrt", x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::Abs, "abs", x); }
Tensor square(const Tensor& x) { return unary(UnaryOp::Square, "square", x); }
Tensor sin(const Tensor& x) { return unary(UnaryOp::Sin, "sin", x); }
Tensor cos(const Tensor& x) { return unary(UnaryOp::Cos, "cos", x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::Tanh, "tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::Sigmoid, "sigmoid", x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, "relu", x); }
Tensor gelu(const Tensor& x) { return unary(UnaryOp::Gelu, "gelu", x); }
Tensor gelu_tanh(const Tensor& x) { return unary(UnaryOp::GeluTanh, "gelu_tanh", x); }
Tensor leaky_relu(const Tensor& x, double slope) { return unary(UnaryOp::LeakyRelu, "leaky_relu", x, slope); }
Tensor add(const Tensor& x, double s) { return unary(UnaryOp::AddScalar, "add_scalar", x, s); }
Tensor mul(const Tensor& x, double s) { return unary(UnaryOp::MulScalar, "mul_scalar", x, s); }
Tensor pow(const Tensor& x, double e) { return unary(UnaryOp::PowScalar, "pow", x, e); }

Tensor clamp(const Tensor& x, double lo, double hi) {
  MEMEL_CHECK(lo <= hi, "[clamp] lower bound ", lo, " exceeds upper bound ", hi);
  check_float(x, "clamp");
  Tensor a = empty_like(x), y = empty_like(x);
  backend_for(x).unary(UnaryOp::ClampMin, x, a, lo);
  backend_for(x).unary(UnaryOp::ClampMax, a, y, hi);
  if (!autograd::needs_grad({x})) return y;
  Tensor xd = cont(x);
  return autograd::record("clamp", y, {x}, [=](const TensorList& g) -> TensorList {
    Tensor g1 = empty_like(xd), g2 = empty_like(xd);
    Tensor gc = cont(g[0]);
    backend_for(xd).unary_backward(UnaryOp::ClampMin, xd, Tensor(), gc, g1, lo);
    backend_for(xd).unary_backward(UnaryOp::ClampMax, xd, Tensor(), g1, g2, hi);
    return {g2};
  });
}

}  // namespace memel
