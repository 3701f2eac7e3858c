// The fused attention op against its unfused reference (matmul/softmax/dropout), the
// multi-head self-attention module, and the Transformer encoder layer (names, pre-LN,
// output wrappers).
#include <doctest/doctest.h>

#include "support.h"

#include <cmath>
#include <limits>

#include "layers/attention.h"
#include "layers/transformer.h"

using namespace memel;
using autograd::TensorList;

namespace {

// q, k, v as heads of (B, T, H*D) projections (strided views), a padding mask with a
// fully masked sequence row pattern, output and input gradients for fused or reference.
struct Run {
  Tensor out, gq, gk, gv;
};

Run run(bool fused, DType dt, double p, bool training, uint64_t gen_seed) {
  const int64_t B = 3, T = 7, H = 2, D = 4;
  Generator g0(5);
  Tensor xq = Tensor::randn({B, T, H * D}, dt, &g0).set_requires_grad();
  Tensor xk = Tensor::randn({B, T, H * D}, dt, &g0).set_requires_grad();
  Tensor xv = Tensor::randn({B, T, H * D}, dt, &g0).set_requires_grad();
  auto heads = [&](const Tensor& x) { return permute(reshape(x, {B, T, H, D}), {0, 2, 1, 3}); };
  // Sequence 0: full; 1: last 3 padded; 2: only the first token.
  std::vector<int64_t> keep(B * T, 1);
  for (int64_t t = 4; t < T; ++t) keep[1 * T + t] = 0;
  for (int64_t t = 1; t < T; ++t) keep[2 * T + t] = 0;
  Tensor mask = padding_mask_to_additive(Tensor::from_vector(keep, {B, T}), dt);
  Generator g(gen_seed);
  Tensor o = fused ? scaled_dot_product_attention(heads(xq), heads(xk), heads(xv), mask, p, training, &g)
                   : attention_reference(heads(xq), heads(xk), heads(xv), mask, p, training, &g);
  Generator gw(11);
  Tensor w = Tensor::randn(o.shape(), dt, &gw);
  backward(sum(mul(o, w)));
  return {o.detach(), xq.grad(), xk.grad(), xv.grad()};
}

}  // namespace

TEST_CASE("attention: fused op matches the unfused reference, with and without dropout") {
  for (DType dt : {DType::F32, DType::F64}) {
    for (double p : {0.0, 0.25}) {
      Run a = run(true, dt, p, true, 42), b = run(false, dt, p, true, 42);
      const double tol = dt == DType::F32 ? 2e-5 : 1e-12;
      INFO("dtype ", dtype_name(dt), " p ", p);
      CHECK(max_abs_diff(a.out, b.out) < tol);
      CHECK(max_abs_diff(a.gq, b.gq) < tol);
      CHECK(max_abs_diff(a.gk, b.gk) < tol);
      CHECK(max_abs_diff(a.gv, b.gv) < tol);
    }
  }
  // Dropout masks follow the generator: another seed gives another result.
  Run c = run(true, DType::F64, 0.25, true, 43), d = run(true, DType::F64, 0.25, true, 42);
  CHECK(max_abs_diff(c.out, d.out) > 1e-3);
  // Eval mode: no dropout, whatever p.
  Run e = run(true, DType::F64, 0.25, false, 1), f = run(true, DType::F64, 0.0, true, 2);
  CHECK(max_abs_diff(e.out, f.out) < 1e-12);
}

TEST_CASE("attention: padded keys get no weight and no gradient") {
  const int64_t T = 5;
  Generator g(3);
  Tensor q = Tensor::randn({1, 1, T, 4}, DType::F64, &g);
  Tensor k = Tensor::randn({1, 1, T, 4}, DType::F64, &g).set_requires_grad();
  Tensor v = Tensor::randn({1, 1, T, 4}, DType::F64, &g).set_requires_grad();
  Tensor mask = padding_mask_to_additive(Tensor::from_vector(std::vector<int64_t>{1, 1, 0, 1, 0}, {1, T}), DType::F64);
  Tensor o = scaled_dot_product_attention(q, k, v, mask);
  // Changing a padded value changes nothing.
  Tensor v2 = v.detach().contiguous_copy();
  v2.data<double>()[2 * 4 + 1] += 100.0;
  CHECK(max_abs_diff(o, scaled_dot_product_attention(q, k.detach(), v2, mask)) < 1e-12);
  backward(sum(o));
  std::vector<double> gk = k.grad().to_vector(), gv = v.grad().to_vector();
  for (int64_t t : {2, 4})
    for (int64_t d = 0; d < 4; ++d) {
      CHECK(gk[t * 4 + d] == 0.0);
      CHECK(gv[t * 4 + d] == 0.0);
    }
}

TEST_CASE("attention: a row with every key at -inf gives zeros, no NaN") {
  Generator g(4);
  Tensor q = Tensor::randn({1, 1, 2, 3}, DType::F64, &g).set_requires_grad();
  Tensor k = Tensor::randn({1, 1, 3, 3}, DType::F64, &g).set_requires_grad();
  Tensor v = Tensor::randn({1, 1, 3, 3}, DType::F64, &g).set_requires_grad();
  const double inf = std::numeric_limits<double>::infinity();
  Tensor mask = Tensor::from_vector(std::vector<double>{-inf, -inf, -inf, 0, 0, -inf}, {1, 1, 2, 3});
  Tensor o = scaled_dot_product_attention(q, k, v, mask);
  std::vector<double> ov = o.to_vector();
  for (int i = 0; i < 3; ++i) CHECK(ov[i] == 0.0);
  backward(sum(o));
  for (double x : q.grad().to_vector()) CHECK(std::isfinite(x));
  for (double x : k.grad().to_vector()) CHECK(std::isfinite(x));
  // The reference agrees.
  CHECK(max_abs_diff(o, attention_reference(q.detach(), k.detach(), v.detach(), mask)) < 1e-12);
}

TEST_CASE("attention: bad inputs name the op") {
  Tensor q = Tensor::zeros({2, 2, 3, 4}), k = Tensor::zeros({2, 2, 5, 4});
  CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, Tensor::zeros({2, 2, 4, 4})),
                    doctest::Contains("[attention]"));
  CHECK_THROWS_WITH(scaled_dot_product_attention(q, Tensor::zeros({2, 2, 5, 3}), Tensor::zeros({2, 2, 5, 3})),
                    doctest::Contains("[attention]"));
  CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, k, Tensor::zeros({2, 1, 3, 4})),
                    doctest::Contains("does not broadcast"));
  CHECK_THROWS_WITH(scaled_dot_product_attention(q, k, k, Tensor(), 1.0, true), doctest::Contains("[0, 1)"));
  CHECK_THROWS_WITH(scaled_dot_product_attention(reshape(q, {4, 3, 4}), k, k), doctest::Contains("(B, H, T, D)"));
}

TEST_CASE("MultiHeadSelfAttention: fused and unfused modules agree; (B, T) masks accepted") {
  manual_seed(1);
  MultiHeadSelfAttention m(16, 4, 0.1);
  Generator g(2);
  Tensor x = Tensor::randn({2, 6, 16}, DType::F32, &g);
  Tensor keep = Tensor::from_vector(std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, {2, 6});
  m.eval();
  Tensor a = m.forward(x, keep);
  m.set_fused(false);
  Tensor b = m.forward(x, keep);
  CHECK(a.shape() == Shape{2, 6, 16});
  CHECK(max_abs_diff(a, b) < 1e-5);
  std::vector<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"query.weight", "query.bias", "key.weight", "key.bias", "value.weight",
                                          "value.bias"});
  CHECK_THROWS_WITH(m.forward(x, Tensor::ones({2, 5})), doctest::Contains("padding mask"));
  CHECK_THROWS_WITH(MultiHeadSelfAttention(10, 4), doctest::Contains("multiple"));
}

TEST_CASE("TransformerEncoderLayer: Hugging Face names, post-/pre-LN, output wrapper") {
  TransformerLayerOptions o;
  o.hidden_size = 8;
  o.num_heads = 2;
  o.intermediate_size = 12;
  o.hidden_dropout = 0.0;
  o.attention_dropout = 0.0;
  manual_seed(3);
  TransformerEncoder enc(2, o);
  std::vector<std::string> names;
  for (auto& [n, p] : enc.named_parameters()) names.push_back(n);
  const std::vector<std::string> layer0{
      "layer.0.attention.self.query.weight",       "layer.0.attention.self.query.bias",
      "layer.0.attention.self.key.weight",         "layer.0.attention.self.key.bias",
      "layer.0.attention.self.value.weight",       "layer.0.attention.self.value.bias",
      "layer.0.attention.output.dense.weight",     "layer.0.attention.output.dense.bias",
      "layer.0.attention.output.LayerNorm.weight", "layer.0.attention.output.LayerNorm.bias",
      "layer.0.intermediate.dense.weight",         "layer.0.intermediate.dense.bias",
      "layer.0.output.dense.weight",               "layer.0.output.dense.bias",
      "layer.0.output.LayerNorm.weight",           "layer.0.output.LayerNorm.bias"};
  REQUIRE(names.size() == 32);
  CHECK(std::vector<std::string>(names.begin(), names.begin() + 16) == layer0);

  Generator g(4);
  Tensor x = Tensor::randn({2, 5, 8}, DType::F32, &g);
  Tensor y = enc.forward(x, Tensor());
  // Post-LN: every token of the output is normalised (mean 0, var 1 with LN weight 1, bias 0).
  std::vector<double> yv = y.to_vector();
  for (int r = 0; r < 10; ++r) {
    double s = 0, s2 = 0;
    for (int c = 0; c < 8; ++c) s += yv[r * 8 + c];
    for (int c = 0; c < 8; ++c) s2 += (yv[r * 8 + c] - s / 8) * (yv[r * 8 + c] - s / 8);
    CHECK(std::abs(s / 8) < 1e-5);
    CHECK(std::abs(s2 / 8 - 1) < 1e-3);
  }

  // A wrapper on "layer.1" sees the block output (B, T, C) and can change it.
  struct Probe : Module {
    Shape seen;
    Probe() : Module("Probe") {}
    Tensor forward(const Tensor& t) override {
      seen = t.shape();
      return mul(t, 2.0);
    }
  };
  auto probe = std::make_shared<Probe>();
  enc.wrap("layer.1", probe, "probe");
  Tensor y2 = enc.forward(x, Tensor());
  CHECK(probe->seen == Shape{2, 5, 8});
  CHECK(max_abs_diff(y2, mul(y, 2.0)) < 1e-6);

  // Pre-LN runs, differs, and keeps the same parameter names.
  o.pre_ln = true;
  manual_seed(3);
  TransformerEncoder pre(2, o);
  CHECK(pre.named_parameters().size() == 32);
  Tensor yp = pre.forward(x, Tensor::ones({2, 5}));
  CHECK(yp.shape() == y.shape());
  CHECK(max_abs_diff(yp, y) > 1e-2);
  backward(sum(yp));
  for (auto& [n, p] : pre.named_parameters()) {
    INFO(n);
    CHECK(p.grad().defined());
  }
  CHECK_THROWS_WITH(activation_by_name("swish"), doctest::Contains("unknown activation"));
}
