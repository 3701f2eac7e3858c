#include <doctest/doctest.h>

#include <cmath>

#include "autograd/function.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"

using namespace memel;
using autograd::TensorList;

TEST_CASE("autograd: fan-in accumulates, leaves get .grad") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}).set_requires_grad();
  Tensor y = add(mul(x, x), x);  // x^2 + x
  backward(sum(y));
  CHECK(x.grad().to_vector() == std::vector<double>{3, 5, 7});
}

TEST_CASE("autograd: backward twice needs retain_graph") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2}).set_requires_grad();
  Tensor y = sum(exp(x));
  backward(y, Tensor(), true);
  backward(y);
  CHECK(x.grad().to_vector()[0] == doctest::Approx(2 * std::exp(1.0)));
  CHECK_THROWS_WITH_AS(backward(y), doctest::Contains("retain_graph"), Error);
}

TEST_CASE("autograd: no-grad guard records nothing") {
  Tensor x = Tensor::ones({2}, DType::F64).set_requires_grad();
  NoGradGuard g;
  Tensor y = mul(x, 2.0);
  CHECK(!y.requires_grad());
}

namespace {
struct TripleFn : autograd::Function<TripleFn> {
  static constexpr const char* kName = "test_triple";
  static TensorList forward(autograd::FunctionCtx& ctx, const TensorList& in) { return {mul(in[0], 3.0)}; }
  static TensorList backward(autograd::FunctionCtx& ctx, const TensorList& g) { return {mul(g[0], 3.0)}; }
};
MEMEL_REGISTER_OP("test_triple");
}  // namespace

TEST_CASE("autograd: custom function") {
  Tensor x = Tensor::ones({2}, DType::F64).set_requires_grad();
  Tensor y = TripleFn::apply({x})[0];
  backward(sum(y));
  CHECK(x.grad().to_vector() == std::vector<double>{3, 3});
  auto r = autograd::gradcheck([](const TensorList& in) { return TripleFn::apply({in[0]})[0]; }, {x});
  CHECK(r.ok);
}
