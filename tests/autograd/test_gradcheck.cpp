// Finite-difference gradient checks for every registered differentiable op.
//
// The table below maps each op name registered with MEMEL_REGISTER_OP to one or more
// cases (float64, central differences, relative tolerance 1e-4). Each case also
// verifies that its graph really contains a node of the op it claims to cover, and a
// separate test fails, listing the names, when a registered differentiable op has no
// case: registering a new op without a gradient check breaks the suite.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "autograd/gradcheck.h"
#include "layers/swin.h"
#include "autograd/ops.h"
#include "autograd/registry.h"
#include "core/thread_pool.h"
#include "support.h"

using namespace memel;
using autograd::TensorList;

namespace {

constexpr double kRtol = 1e-4;

struct GradCase {
  std::string op;       // the registered op this case covers
  std::string variant;  // what it exercises
  std::function<TensorList()> inputs;
  std::function<Tensor(const TensorList&)> fn;
};

// --- input helpers (float64, seeded, requiring grad) ---------------------------------

Tensor uni(const Shape& s, double lo, double hi, uint64_t seed, bool grad = true) {
  Generator g(seed);
  Tensor t = Tensor::uniform(s, lo, hi, DType::F64, &g);
  if (grad) t.set_requires_grad();
  return t;
}

// Values with |x| in [lo, hi] and a random sign: away from the kink at 0.
Tensor away(const Shape& s, double lo, double hi, uint64_t seed) {
  Generator g(seed);
  std::vector<double> v = Tensor::uniform(s, lo, hi, DType::F64, &g).to_vector();
  for (double& x : v)
    if (g.uniform() < 0.5f) x = -x;
  return Tensor::from_vector(v, s).set_requires_grad();
}

Tensor ids64(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector(v, s); }
Tensor ids32(const std::vector<int32_t>& v, const Shape& s) { return Tensor::from_vector(v, s); }

// (a, b) with every broadcast |a - b| >= 0.05: max/min have a unique winner, far from ties.
TensorList separated_pair(const Shape& sa, const Shape& sb, uint64_t seed) {
  Tensor a = uni(sa, -1, 1, seed);
  Generator g(seed + 1);
  // b is drawn for its own shape; check the broadcast difference and nudge b.
  std::vector<double> bv = Tensor::uniform(sb, -1, 1, DType::F64, &g).to_vector();
  Tensor b0 = Tensor::from_vector(bv, sb);
  for (int it = 0; it < 50; ++it) {
    NoGradGuard ng;
    std::vector<double> d = abs(sub(a.detach(), b0)).to_vector();
    if (*std::min_element(d.begin(), d.end()) >= 0.05) break;
    for (double& x : bv) x += 0.0137;
    b0 = Tensor::from_vector(bv, sb);
  }
  return {a, b0.set_requires_grad()};
}

Conv2dOptions conv_opts(int sh, int sw, int ph, int pw, int dh = 1, int dw = 1, int groups = 1, int oph = 0,
                        int opw = 0) {
  Conv2dOptions o;
  o.stride_h = sh;
  o.stride_w = sw;
  o.pad_h = ph;
  o.pad_w = pw;
  o.dil_h = dh;
  o.dil_w = dw;
  o.groups = groups;
  o.out_pad_h = oph;
  o.out_pad_w = opw;
  return o;
}

// Names of every node reachable from t's grad_fn.
std::set<std::string> graph_ops(const Tensor& t) {
  std::set<std::string> names;
  if (!t.defined() || !t.impl().grad_fn) return names;
  std::vector<autograd::Node*> stack{t.impl().grad_fn.get()};
  std::unordered_set<autograd::Node*> seen{stack[0]};
  while (!stack.empty()) {
    autograd::Node* n = stack.back();
    stack.pop_back();
    names.insert(n->name());
    for (const autograd::Edge& e : n->next_edges)
      if (e.valid() && seen.insert(e.node.get()).second) stack.push_back(e.node.get());
  }
  return names;
}

using Fn = std::function<Tensor(const TensorList&)>;
using In = std::function<TensorList()>;

std::vector<GradCase> build_cases() {
  std::vector<GradCase> c;
  auto add_case = [&](const char* op, const char* variant, In in, Fn fn) {
    c.push_back({op, variant, std::move(in), std::move(fn)});
  };

  // --- views and shape -----------------------------------------------------------
  add_case("reshape", "(2,3,4) -> (4,-1)", [] { return TensorList{uni({2, 3, 4}, -1, 1, 1)}; },
           [](const TensorList& x) { return reshape(x[0], {4, -1}); });
  add_case("reshape", "of a transposed (non-contiguous) input", [] { return TensorList{uni({3, 4}, -1, 1, 2)}; },
           [](const TensorList& x) { return reshape(transpose(x[0], 0, 1), {2, 6}); });
  add_case("reshape", "flatten, squeeze, unsqueeze", [] { return TensorList{uni({2, 1, 3, 2}, -1, 1, 3)}; },
           [](const TensorList& x) { return unsqueeze(flatten(squeeze(x[0], 1), 1), 0); });
  add_case("permute", "(2,3,4) -> (2,0,1)", [] { return TensorList{uni({2, 3, 4}, -1, 1, 4)}; },
           [](const TensorList& x) { return permute(x[0], {2, 0, 1}); });
  add_case("permute", "transpose then exp (strided unary input)", [] { return TensorList{uni({3, 5}, -1, 1, 5)}; },
           [](const TensorList& x) { return exp(transpose(x[0], 0, 1)); });
  add_case("slice", "axis 1, step 2", [] { return TensorList{uni({3, 7}, -1, 1, 6)}; },
           [](const TensorList& x) { return slice(x[0], 1, 1, 6, 2); });
  add_case("slice", "negative bounds, select, split", [] { return TensorList{uni({4, 5, 2}, -1, 1, 7)}; },
           [](const TensorList& x) {
             std::vector<Tensor> parts = split(x[0], {2, 3}, 1);                  // (4,2,2), (4,3,2)
             Tensor a = slice(parts[1], 0, -3, -1);                               // (2,3,2)
             Tensor b = unsqueeze(select(slice(parts[0], 0, 1, 3), 1, -1), 1);   // (2,1,2)
             return add(mul(a, 2.0), b);
           });
  add_case("expand", "(3,1) -> (2,3,4)", [] { return TensorList{uni({3, 1}, -1, 1, 8)}; },
           [](const TensorList& x) { return expand(x[0], {2, 3, 4}); });
  add_case("expand", "-1 keeps a size, then a product", [] { return TensorList{uni({1, 4}, -1, 1, 9), uni({3, 4}, -1, 1, 10)}; },
           [](const TensorList& x) { return mul(expand(x[0], {3, -1}), x[1]); });
  add_case("contiguous", "of a permuted view", [] { return TensorList{uni({2, 3, 4}, -1, 1, 11)}; },
           [](const TensorList& x) { return contiguous(permute(x[0], {1, 2, 0})); });
  add_case("concat", "three inputs along axis 1, one transposed", [] {
             return TensorList{uni({2, 3}, -1, 1, 12), uni({2, 1}, -1, 1, 13), uni({4, 2}, -1, 1, 14)};
           },
           [](const TensorList& x) { return concat({x[0], x[1], transpose(x[2], 0, 1)}, 1); });
  add_case("concat", "stack and roll", [] { return TensorList{uni({2, 3}, -1, 1, 15), uni({2, 3}, -1, 1, 16)}; },
           [](const TensorList& x) { return roll(stack({x[0], x[1]}, 1), {1, -1}, {0, 2}); });
  add_case("unbind", "axis 1, parts used unevenly, one unused", [] { return TensorList{uni({2, 4, 3}, -1, 1, 19)}; },
           [](const TensorList& x) {
             std::vector<Tensor> p = unbind(x[0], 1);  // four (2, 3) views
             return add(mul(p[0], p[2]), mul(p[3], 3.0));
           });
  add_case("pad", "last two axes, constant 0.5", [] { return TensorList{uni({2, 3, 4}, -1, 1, 17)}; },
           [](const TensorList& x) { return pad(x[0], {1, 2, 0, 1}, 0.5); });
  add_case("pad", "of a transposed input", [] { return TensorList{uni({3, 2}, -1, 1, 18)}; },
           [](const TensorList& x) { return pad(transpose(x[0], 0, 1), {2, 0}); });

  // --- binary (broadcasting) -------------------------------------------------------
  add_case("add", "broadcast (3,1,4) + (2,4)", [] { return TensorList{uni({3, 1, 4}, -1, 1, 20), uni({2, 4}, -1, 1, 21)}; },
           [](const TensorList& x) { return add(x[0], x[1]); });
  add_case("add", "transposed + 0-d", [] { return TensorList{uni({4, 3}, -1, 1, 22), uni({}, -1, 1, 23)}; },
           [](const TensorList& x) { return add(transpose(x[0], 0, 1), x[1]); });
  add_case("sub", "broadcast (2,3) - (3)", [] { return TensorList{uni({2, 3}, -1, 1, 24), uni({3}, -1, 1, 25)}; },
           [](const TensorList& x) { return sub(x[0], x[1]); });
  add_case("sub", "broadcast both ways (4,1) - (1,3)", [] { return TensorList{uni({4, 1}, -1, 1, 26), uni({1, 3}, -1, 1, 27)}; },
           [](const TensorList& x) { return sub(x[0], x[1]); });
  add_case("mul", "broadcast (2,3,4) * (3,1)", [] { return TensorList{uni({2, 3, 4}, -1, 1, 28), uni({3, 1}, -1, 1, 29)}; },
           [](const TensorList& x) { return mul(x[0], x[1]); });
  add_case("mul", "same tensor twice (fan-in), sliced", [] { return TensorList{uni({4, 4}, -1, 1, 30)}; },
           [](const TensorList& x) { // rows {0,2} * rows {1,2}
             return mul(slice(x[0], 0, 0, 4, 2), slice(x[0], 0, 1, 3));
           });
  add_case("div", "broadcast (2,3) / (2,1), divisor in [0.5, 2]", [] {
             return TensorList{uni({2, 3}, -1, 1, 31), uni({2, 1}, 0.5, 2, 32)};
           },
           [](const TensorList& x) { return div(x[0], x[1]); });
  add_case("div", "0-d numerator, transposed divisor", [] { return TensorList{uni({}, -1, 1, 33), uni({3, 2}, 0.5, 2, 34)}; },
           [](const TensorList& x) { return div(x[0], transpose(x[1], 0, 1)); });
  add_case("maximum", "broadcast (3,4) vs (4), no ties", [] { return separated_pair({3, 4}, {4}, 35); },
           [](const TensorList& x) { return maximum(x[0], x[1]); });
  add_case("minimum", "broadcast (2,3) vs (2,1), no ties", [] { return separated_pair({2, 3}, {2, 1}, 36); },
           [](const TensorList& x) { return minimum(x[0], x[1]); });
  add_case("where", "broadcast cond (3,1), a (3,4), b (4)", [] { return TensorList{uni({3, 4}, -1, 1, 37), uni({4}, -1, 1, 38)}; },
           [](const TensorList& x) {
             Tensor cond = Tensor::from_vector(std::vector<double>{1, 0, 1}, {3, 1});
             return where(cond, x[0], x[1]);
           });
  add_case("where", "masked_fill with an elementwise mask", [] { return TensorList{uni({2, 3}, -1, 1, 39)}; },
           [](const TensorList& x) {
             Tensor mask = Tensor::from_vector(std::vector<double>{0, 1, 0, 1, 1, 0}, {2, 3});
             return masked_fill(x[0], mask, -2.0);
           });

  // --- reductions ------------------------------------------------------------------
  add_case("sum", "axis 1 keepdim", [] { return TensorList{uni({2, 3, 4}, -1, 1, 40)}; },
           [](const TensorList& x) { return sum(x[0], {1}, true); });
  add_case("sum", "all axes of a transposed input", [] { return TensorList{uni({3, 4}, -1, 1, 41)}; },
           [](const TensorList& x) { return sum(transpose(x[0], 0, 1)); });
  add_case("sum", "axes {0,2}, mean, var", [] { return TensorList{uni({2, 3, 4}, -1, 1, 42)}; },
           [](const TensorList& x) { return add(sum(x[0], {0, -1}), add(mean(x[0], {2, 0}), var(x[0], {0, 2}, true))); });
  add_case("sum", "sum_to and the 0-d case", [] { return TensorList{uni({2, 3}, -1, 1, 43), uni({}, -1, 1, 44)}; },
           [](const TensorList& x) { return add(sum_to(x[0], {1, 3}), sum(x[1])); });
  add_case("amax", "axis 1 (no ties)", [] { return TensorList{uni({3, 5}, -1, 1, 45)}; },
           [](const TensorList& x) { return amax(x[0], {1}); });
  add_case("amax", "all axes keepdim, amin over axis 0", [] { return TensorList{uni({4, 3}, -1, 1, 46)}; },
           [](const TensorList& x) { return add(amax(x[0], {}, true), amin(x[0], {0}, true)); });

  // --- unary -----------------------------------------------------------------------
  auto unary_case = [&](const char* op, std::function<Tensor(const Tensor&)> f, double lo, double hi, bool signed_away,
                        uint64_t seed) {
    In in = [=] { return TensorList{signed_away ? away({3, 4}, lo, hi, seed) : uni({3, 4}, lo, hi, seed)}; };
    c.push_back({op, "contiguous", in, [f](const TensorList& x) { return f(x[0]); }});
    c.push_back({op, "transposed input", in, [f](const TensorList& x) { return f(transpose(x[0], 0, 1)); }});
  };
  unary_case("neg", [](const Tensor& t) { return neg(t); }, -2, 2, false, 50);
  unary_case("exp", [](const Tensor& t) { return exp(t); }, -2, 2, false, 51);
  unary_case("log", [](const Tensor& t) { return log(t); }, 0.2, 3, false, 52);
  unary_case("sqrt", [](const Tensor& t) { return sqrt(t); }, 0.2, 3, false, 53);
  unary_case("rsqrt", [](const Tensor& t) { return rsqrt(t); }, 0.2, 3, false, 54);
  unary_case("abs", [](const Tensor& t) { return abs(t); }, 0.1, 2, true, 55);
  unary_case("square", [](const Tensor& t) { return square(t); }, -2, 2, false, 56);
  unary_case("sin", [](const Tensor& t) { return sin(t); }, -3, 3, false, 57);
  unary_case("cos", [](const Tensor& t) { return cos(t); }, -3, 3, false, 58);
  unary_case("tanh", [](const Tensor& t) { return tanh(t); }, -3, 3, false, 59);
  unary_case("sigmoid", [](const Tensor& t) { return sigmoid(t); }, -4, 4, false, 60);
  unary_case("relu", [](const Tensor& t) { return relu(t); }, 0.1, 2, true, 61);
  unary_case("gelu", [](const Tensor& t) { return gelu(t); }, -4, 4, false, 62);
  unary_case("gelu_tanh", [](const Tensor& t) { return gelu_tanh(t); }, -4, 4, false, 63);
  unary_case("leaky_relu", [](const Tensor& t) { return leaky_relu(t, 0.1); }, 0.1, 2, true, 64);
  unary_case("add_scalar", [](const Tensor& t) { return add(t, 1.5); }, -2, 2, false, 65);
  unary_case("mul_scalar", [](const Tensor& t) { return mul(t, -2.5); }, -2, 2, false, 66);
  unary_case("pow", [](const Tensor& t) { return pow(t, 2.5); }, 0.2, 2, false, 67);
  add_case("pow", "negative exponent -1.5", [] { return TensorList{uni({5}, 0.3, 2, 68)}; },
           [](const TensorList& x) { return pow(x[0], -1.5); });
  add_case("pow", "integer exponent 3 on signed input", [] { return TensorList{uni({5}, -2, 2, 69)}; },
           [](const TensorList& x) { return pow(x[0], 3.0); });
  // clamp to [-0.5, 0.5]: values in +-[0.1, 0.4] or +-[0.6, 2] (away from both bounds).
  add_case("clamp", "inside and outside [-0.5, 0.5]", [] {
             Tensor a = away({3, 4}, 0.1, 0.4, 70).detach(), b = away({3, 4}, 0.6, 2.0, 71).detach();
             Tensor m = Tensor::from_vector(std::vector<double>{1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1}, {3, 4});
             return TensorList{where(m, a, b).contiguous_copy().set_requires_grad()};
           },
           [](const TensorList& x) { return clamp(x[0], -0.5, 0.5); });
  add_case("clamp", "transposed input, one-sided range", [] { return TensorList{uni({3, 4}, 0.1, 0.9, 72)}; },
           [](const TensorList& x) { return clamp(transpose(x[0], 0, 1), -1.0, 0.45 + 1e-3); });

  // --- linear algebra ----------------------------------------------------------------
  auto mm = [&](const char* variant, Shape sa, Shape sb, uint64_t seed, bool ta = false, bool tb = false) {
    add_case("matmul", variant, [=] { return TensorList{uni(sa, -1, 1, seed), uni(sb, -1, 1, seed + 1)}; },
             [=](const TensorList& x) {
               Tensor a = ta ? transpose(x[0], -1, -2) : x[0];
               Tensor b = tb ? transpose(x[1], -1, -2) : x[1];
               return matmul(a, b);
             });
  };
  mm("2-d (3,4) x (4,5)", {3, 4}, {4, 5}, 80);
  mm("batched (2,3,4) x (2,4,5)", {2, 3, 4}, {2, 4, 5}, 82);
  mm("broadcast batch (2,1,3,4) x (3,4,5)", {2, 1, 3, 4}, {3, 4, 5}, 84);
  mm("2-d x batched (3,4) x (2,4,5)", {3, 4}, {2, 4, 5}, 86);
  mm("batched x 2-d (2,3,4) x (4,5)", {2, 3, 4}, {4, 5}, 88);
  mm("1-d x 2-d (4) x (4,5)", {4}, {4, 5}, 90);
  mm("2-d x 1-d (3,4) x (4)", {3, 4}, {4}, 92);
  mm("1-d x 1-d (4) x (4)", {4}, {4}, 94);
  mm("1-d x batched (4) x (2,4,3)", {4}, {2, 4, 3}, 96);
  mm("transposed a: (4,3)^T x (4,5)", {4, 3}, {4, 5}, 98, true, false);
  mm("transposed b: (3,4) x (5,4)^T", {3, 4}, {5, 4}, 100, false, true);
  mm("both transposed, batched (2,4,3)^T x (2,5,4)^T", {2, 4, 3}, {2, 5, 4}, 102, true, true);
  mm("size-1 rows/cols (1,4) x (4,1)", {1, 4}, {4, 1}, 104);
  mm("3-d x 1-d (2,3,4) x (4)", {2, 3, 4}, {4}, 105);
  add_case("matmul", "batch-strided operands (sliced batch, permuted 4-d)", [] {
             return TensorList{uni({4, 3, 4}, -1, 1, 108), uni({3, 2, 4, 2}, -1, 1, 109)};
           },
           [](const TensorList& x) {
             Tensor a = slice(x[0], 0, 0, 4, 2);           // (2,3,4), batch stride 24
             Tensor b = permute(x[1], {1, 0, 2, 3});       // (2,3,4,2)
             return matmul(unsqueeze(a, 1), b);            // (2,1,3,4) x (2,3,4,2) -> (2,3,3,2)
           });
  add_case("matmul", "sliced (non-unit stride) operand", [] { return TensorList{uni({3, 8}, -1, 1, 106), uni({4, 2}, -1, 1, 107)}; },
           [](const TensorList& x) { return matmul(slice(x[0], 1, 0, 8, 2), x[1]); });
  add_case("linear", "(2,3,4) with bias", [] {
             return TensorList{uni({2, 3, 4}, -1, 1, 110), uni({5, 4}, -1, 1, 111), uni({5}, -1, 1, 112)};
           },
           [](const TensorList& x) { return linear(x[0], x[1], x[2]); });
  add_case("linear", "no bias, transposed input", [] { return TensorList{uni({4, 3}, -1, 1, 113), uni({2, 4}, -1, 1, 114)}; },
           [](const TensorList& x) { return linear(transpose(x[0], 0, 1), x[1], Tensor()); });
  add_case("linear", "1-d input, transposed weight", [] {
             return TensorList{uni({4}, -1, 1, 115), uni({4, 3}, -1, 1, 116), uni({3}, -1, 1, 117)};
           },
           [](const TensorList& x) { return linear(x[0], transpose(x[1], 0, 1), x[2]); });

  // --- normalisation and activation helpers ------------------------------------------
  add_case("softmax", "last axis", [] { return TensorList{uni({3, 5}, -2, 2, 120)}; },
           [](const TensorList& x) { return softmax(x[0], -1); });
  add_case("softmax", "axis 0 of a 3-d input", [] { return TensorList{uni({3, 2, 4}, -2, 2, 121)}; },
           [](const TensorList& x) { return softmax(x[0], 0); });
  add_case("softmax", "middle axis of a transposed input", [] { return TensorList{uni({4, 3, 2}, -2, 2, 122)}; },
           [](const TensorList& x) { return softmax(transpose(x[0], 0, 2), 1); });
  add_case("softmax", "0-d input", [] { return TensorList{uni({}, -2, 2, 125)}; },
           [](const TensorList& x) { return add(softmax(x[0]), x[0]); });
  add_case("log_softmax", "0-d input", [] { return TensorList{uni({}, -2, 2, 126)}; },
           [](const TensorList& x) { return add(log_softmax(x[0]), x[0]); });
  add_case("log_softmax", "last axis", [] { return TensorList{uni({3, 5}, -2, 2, 123)}; },
           [](const TensorList& x) { return log_softmax(x[0], -1); });
  add_case("log_softmax", "axis 1 of a 3-d input", [] { return TensorList{uni({2, 4, 3}, -2, 2, 124)}; },
           [](const TensorList& x) { return log_softmax(x[0], 1); });
  add_case("layer_norm", "weight and bias", [] {
             return TensorList{uni({2, 3, 6}, -2, 2, 130), uni({6}, 0.5, 1.5, 131), uni({6}, -1, 1, 132)};
           },
           [](const TensorList& x) { return layer_norm(x[0], x[1], x[2]); });
  add_case("layer_norm", "no weight, no bias", [] { return TensorList{uni({4, 5}, -2, 2, 133)}; },
           [](const TensorList& x) { return layer_norm(x[0], Tensor(), Tensor()); });
  add_case("layer_norm", "weight only, transposed input, eps 1e-3", [] {
             return TensorList{uni({5, 3}, -2, 2, 134), uni({5}, 0.5, 1.5, 135)};
           },
           [](const TensorList& x) { return layer_norm(transpose(x[0], 0, 1), x[1], Tensor(), 1e-3); });
  add_case("layer_norm", "bias only", [] { return TensorList{uni({3, 4}, -2, 2, 136), uni({4}, -1, 1, 137)}; },
           [](const TensorList& x) { return layer_norm(x[0], Tensor(), x[1]); });
  add_case("dropout", "p = 0.4, fixed generator seed", [] { return TensorList{uni({4, 6}, -1, 1, 140)}; },
           [](const TensorList& x) {
             Generator g(2024);  // fresh each call: every evaluation sees the same mask
             return dropout(x[0], 0.4, true, &g);
           });
  add_case("dropout", "p = 0.5 on a transposed input", [] { return TensorList{uni({3, 5}, -1, 1, 141)}; },
           [](const TensorList& x) {
             Generator g(99);
             return dropout(transpose(x[0], 0, 1), 0.5, true, &g);
           });
  add_case("embedding", "(2,4) int64 ids with repeats", [] { return TensorList{uni({6, 3}, -1, 1, 150)}; },
           [](const TensorList& x) { return embedding(x[0], ids64({1, 3, 1, 5, 0, 3, 3, 2}, {2, 4})); });
  add_case("embedding", "int32 ids, transposed weight", [] { return TensorList{uni({3, 5}, -1, 1, 151)}; },
           [](const TensorList& x) { return embedding(transpose(x[0], 0, 1), ids32({4, 4, 0, 2, 4}, {5})); });

  // --- attention -------------------------------------------------------------------
  add_case("attention", "no mask, default scale, Tq != Tk, Dv != D", [] {
             return TensorList{uni({2, 2, 3, 4}, -1, 1, 155), uni({2, 2, 5, 4}, -1, 1, 156), uni({2, 2, 5, 3}, -1, 1, 157)};
           },
           [](const TensorList& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); });
  add_case("attention", "padding mask (B,1,1,Tk), scale 0.5", [] {
             return TensorList{uni({2, 1, 3, 4}, -1, 1, 158), uni({2, 1, 4, 4}, -1, 1, 159), uni({2, 1, 4, 2}, -1, 1, 160)};
           },
           [](const TensorList& x) {
             Tensor mask = Tensor::from_vector(std::vector<double>{0, 0, -1e9, 0, 0, -1e9, 0, -1e9}, {2, 1, 1, 4});
             return scaled_dot_product_attention(x[0], x[1], x[2], mask, 0.0, false, nullptr, 0.5);
           });
  add_case("attention", "causal mask (Tq,Tk), heads as views of (B,T,H,D)", [] {
             return TensorList{uni({1, 4, 2, 3}, -1, 1, 161), uni({1, 4, 2, 3}, -1, 1, 162), uni({1, 4, 2, 3}, -1, 1, 163)};
           },
           [](const TensorList& x) {
             std::vector<double> m(16, 0.0);
             for (int i = 0; i < 4; ++i)
               for (int j = i + 1; j < 4; ++j) m[i * 4 + j] = -1e9;
             Tensor mask = Tensor::from_vector(m, {4, 4});
             auto heads = [](const Tensor& t) { return permute(t, {0, 2, 1, 3}); };  // (B,T,H,D) -> (B,H,T,D)
             return scaled_dot_product_attention(heads(x[0]), heads(x[1]), heads(x[2]), mask);
           });
  add_case("attention", "dropout 0.3 in training, fixed generator seed", [] {
             return TensorList{uni({1, 2, 3, 4}, -1, 1, 164), uni({1, 2, 4, 4}, -1, 1, 165), uni({1, 2, 4, 2}, -1, 1, 166)};
           },
           [](const TensorList& x) {
             Generator g(31);
             return scaled_dot_product_attention(x[0], x[1], x[2], Tensor(), 0.3, true, &g);
           });

  // --- convolution and pooling ---------------------------------------------------------
  auto conv = [&](const char* variant, Shape xs, Shape ws, bool bias, Conv2dOptions o, uint64_t seed,
                  bool permuted_x = false, const char* op = "conv2d") {
    const int64_t co = ws[0];
    add_case(op, variant,
             [=] {
               TensorList t{uni(xs, -1, 1, seed), uni(ws, -1, 1, seed + 1)};
               t.push_back(bias ? uni({co}, -1, 1, seed + 2) : Tensor());
               return t;
             },
             [=](const TensorList& x) {
               Tensor in = permuted_x ? permute(x[0], {0, 3, 1, 2}) : x[0];  // stored (N, H, W, C)
               return conv2d(in, x[1], x[2], o);
             });
  };
  conv("basic 3x3 with bias", {2, 3, 5, 5}, {4, 3, 3, 3}, true, conv_opts(1, 1, 0, 0), 160);
  conv("stride 2, padding 1", {1, 2, 6, 7}, {3, 2, 3, 3}, true, conv_opts(2, 2, 1, 1), 163);
  conv("dilation 2, padding 2", {1, 2, 7, 6}, {2, 2, 3, 3}, true, conv_opts(1, 1, 2, 2, 2, 2), 166);
  conv("groups 2, stride (1,2), padding (1,0)", {2, 4, 5, 6}, {6, 2, 3, 3}, true, conv_opts(1, 2, 1, 0, 1, 1, 2), 169);
  conv("depthwise (groups = channels), no bias", {1, 3, 5, 5}, {3, 1, 3, 3}, false, conv_opts(1, 1, 1, 1, 1, 1, 3), 172);
  conv("rect kernel 2x3, channels-last input", {1, 5, 6, 2}, {3, 2, 2, 3}, true, conv_opts(2, 1, 0, 1, 1, 2), 175, true);
  conv("everything: stride 2, pad 1, dilation 2, groups 2", {2, 4, 8, 7}, {4, 2, 3, 2}, true,
       conv_opts(2, 2, 1, 1, 2, 2, 2), 178);
  conv("1x1 kernel", {2, 3, 3, 3}, {2, 3, 1, 1}, true, conv_opts(1, 1, 0, 0), 181);
  auto winograd = [](Conv2dOptions o) {
    o.algorithm = ConvAlgorithm::Winograd;
    return o;
  };
  // conv2d with the Winograd algorithm records winograd_weight and winograd_conv2d nodes.
  conv("conv2d Winograd F(4x4, 3x3), padding 1, partial tiles", {2, 3, 7, 6}, {4, 3, 3, 3}, true,
       winograd(conv_opts(1, 1, 1, 1)), 184, false, "winograd_conv2d");
  conv("conv2d Winograd F(2x2, 5x5), padding (2, 1), odd output", {1, 2, 7, 8}, {3, 2, 5, 5}, true,
       winograd(conv_opts(1, 1, 2, 1)), 187, false, "winograd_weight");
  conv("conv2d Winograd 3x3 without padding, no bias", {1, 2, 6, 9}, {2, 2, 3, 3}, false,
       winograd(conv_opts(1, 1, 0, 0)), 221, false, "winograd_conv2d");
  add_case("winograd_conv2d", "one transformed kernel applied twice (a recurrent cell's steps)",
           [] { return TensorList{uni({1, 2, 6, 7}, -1, 1, 224), uni({2, 2, 3, 3}, -1, 1, 225)}; },
           [](const TensorList& x) {
             Tensor U = winograd_weight(x[1]);
             return winograd_conv2d(tanh(winograd_conv2d(x[0], U, 3, 1, 1)), winograd_weight(x[1] * 0.5), 3, 1, 1);
           });

  // --- recurrent cells ------------------------------------------------------------------
  add_case("gru_candidate", "leaky 0.2, input and state gates", [] {
             return TensorList{uni({2, 6, 3, 2}, -2, 2, 230), uni({2, 6, 3, 2}, -2, 2, 231)};
           },
           [](const TensorList& x) { return gru_candidate(x[0], x[1], false, 0.2); });
  add_case("gru_candidate", "tanh, no input gates", [] { return TensorList{uni({1, 9, 4}, -2, 2, 232)}; },
           [](const TensorList& x) { return gru_candidate(Tensor(), x[0], true, 0.0); });
  add_case("gru_update", "input and state gates", [] {
             return TensorList{uni({2, 6, 3, 2}, -2, 2, 233), uni({2, 6, 3, 2}, -2, 2, 234),
                               uni({2, 2, 3, 2}, -1, 1, 235), uni({2, 2, 3, 2}, -1, 1, 236)};
           },
           [](const TensorList& x) { return gru_update(x[0], x[1], x[2], x[3]); });
  add_case("gru_update", "no input gates", [] {
             return TensorList{uni({1, 9, 4}, -2, 2, 237), uni({1, 3, 4}, -1, 1, 238), uni({1, 3, 4}, -1, 1, 239)};
           },
           [](const TensorList& x) { return gru_update(Tensor(), x[0], x[1], x[2]); });

  auto convt = [&](const char* variant, Shape xs, Shape ws, bool bias, Conv2dOptions o, uint64_t seed) {
    const int64_t co = ws[1] * o.groups;
    add_case("conv_transpose2d", variant,
             [=] {
               TensorList t{uni(xs, -1, 1, seed), uni(ws, -1, 1, seed + 1)};
               t.push_back(bias ? uni({co}, -1, 1, seed + 2) : Tensor());
               return t;
             },
             [=](const TensorList& x) { return conv_transpose2d(x[0], x[1], x[2], o); });
  };
  convt("basic 3x3 with bias", {2, 3, 4, 4}, {3, 2, 3, 3}, true, conv_opts(1, 1, 0, 0), 190);
  convt("stride 2, padding 1, output_padding 1", {1, 2, 3, 4}, {2, 3, 3, 3}, true, conv_opts(2, 2, 1, 1, 1, 1, 1, 1, 1), 193);
  convt("groups 2, stride 2", {1, 4, 3, 3}, {4, 2, 3, 3}, true, conv_opts(2, 2, 0, 0, 1, 1, 2), 196);
  convt("dilation 2, padding 1, no bias", {1, 2, 4, 3}, {2, 2, 3, 3}, false, conv_opts(1, 1, 1, 1, 2, 2), 199);
  convt("rect: stride (2,1), padding (0,1), output_padding (1,0)", {2, 2, 3, 4}, {2, 3, 2, 3}, true,
        conv_opts(2, 1, 0, 1, 1, 1, 1, 1, 0), 202);
  convt("output_padding 1 < dilation 2 with stride 1", {1, 2, 3, 3}, {2, 2, 3, 3}, true,
        conv_opts(1, 1, 0, 0, 2, 2, 1, 1, 1), 205);
  convt("everything: stride 2, pad 1, out_pad 1, dilation 2, groups 2", {1, 4, 3, 3}, {4, 1, 3, 2}, true,
        conv_opts(2, 2, 1, 1, 2, 2, 2, 1, 1), 208);

  add_case("max_pool2d", "2x2 stride 2", [] { return TensorList{uni({2, 2, 6, 6}, -1, 1, 220)}; },
           [](const TensorList& x) { return max_pool2d(x[0], 2, 2, 2, 2); });
  add_case("max_pool2d", "3x3 stride 2 padding 1 (overlapping windows)", [] { return TensorList{uni({1, 2, 7, 6}, -1, 1, 221)}; },
           [](const TensorList& x) { return max_pool2d(x[0], 3, 3, 2, 2, 1, 1); });
  add_case("max_pool2d", "rect 2x3 stride (1,2), transposed input", [] { return TensorList{uni({1, 2, 6, 5}, -1, 1, 222)}; },
           [](const TensorList& x) { return max_pool2d(transpose(x[0], 2, 3), 2, 3, 1, 2); });
  add_case("avg_pool2d", "2x2 stride 2", [] { return TensorList{uni({2, 2, 6, 6}, -1, 1, 223)}; },
           [](const TensorList& x) { return avg_pool2d(x[0], 2, 2, 2, 2); });
  add_case("avg_pool2d", "3x3 stride 2 padding 1, count_include_pad", [] { return TensorList{uni({1, 2, 7, 6}, -1, 1, 224)}; },
           [](const TensorList& x) { return avg_pool2d(x[0], 3, 3, 2, 2, 1, 1, true); });
  add_case("avg_pool2d", "3x2 stride (1,2) padding (1,1), exclude pad", [] { return TensorList{uni({1, 2, 5, 5}, -1, 1, 225)}; },
           [](const TensorList& x) { return avg_pool2d(x[0], 3, 2, 1, 2, 1, 1, false); });

  // --- fused layers (layers/swin.h) ------------------------------------------------------
  add_case("swin_window_attention", "2 heads, shifted-window mask (nW 2), bias", [] {
             return TensorList{uni({4, 4, 12}, -1, 1, 240), uni({2, 4, 4}, -1, 1, 241),
                               swin_attention_mask(2, 4, 2, 0, 1, DType::F64)};
           },
           [](const TensorList& x) { return swin_window_attention(x[0], x[1], x[2], 2, 0.5); });
  add_case("swin_window_attention", "1 head, no mask", [] {
             return TensorList{uni({3, 4, 6}, -1, 1, 242), uni({1, 4, 4}, -1, 1, 243)};
           },
           [](const TensorList& x) { return swin_window_attention(x[0], x[1], Tensor(), 1, 0.7); });

  add_case("swin_window_gather", "2x2 windows of a 4x6 map, shift (1, 1)",
           [] { return TensorList{uni({2, 4, 6, 3}, -1, 1, 244)}; },
           [](const TensorList& x) { return swin_window_gather(x[0], 2, 1, 1); });
  add_case("swin_window_gather", "no shift, strided input", [] { return TensorList{uni({1, 3, 4, 4}, -1, 1, 245)}; },
           [](const TensorList& x) { return swin_window_gather(permute(x[0], {0, 2, 3, 1}), 2, 0, 0); });
  add_case("swin_window_scatter", "3x3 windows onto a 3x6 map, shift (0, 2)",
           [] { return TensorList{uni({4, 9, 2}, -1, 1, 246)}; },
           [](const TensorList& x) { return swin_window_scatter(x[0], 3, 0, 2, 3, 6); });

  // --- losses ------------------------------------------------------------------------
  auto ce = [&](const char* variant, Shape ls, std::vector<int64_t> tgt, Shape ts, int64_t ignore, double smooth,
                Reduction r, uint64_t seed, bool i32 = false) {
    add_case("cross_entropy", variant, [=] { return TensorList{uni(ls, -2, 2, seed)}; },
             [=](const TensorList& x) {
               Tensor t = i32 ? Tensor::from_vector(std::vector<int32_t>(tgt.begin(), tgt.end()), ts) : ids64(tgt, ts);
               return cross_entropy(x[0], t, ignore, smooth, r);
             });
  };
  ce("(N,C) mean", {4, 5}, {0, 3, 4, 1}, {4}, -100, 0.0, Reduction::Mean, 230);
  ce("label smoothing 0.1 + ignore_index", {5, 4}, {2, -100, 0, 3, -100}, {5}, -100, 0.1, Reduction::Mean, 231);
  ce("(N,C,d) logits, smoothing 0.2, ignore_index 1", {2, 4, 3}, {0, 1, 3, 2, 2, 1}, {2, 3}, 1, 0.2, Reduction::Mean, 232);
  ce("(N,C,h,w) logits, sum", {2, 3, 2, 2}, {0, 1, 2, 2, 1, 0, 0, 2}, {2, 2, 2}, -100, 0.0, Reduction::Sum, 233);
  ce("reduction none, int32 targets", {3, 4}, {3, 0, -1}, {3}, -1, 0.05, Reduction::None, 234, true);
  add_case("cross_entropy", "logits from a transposed tensor", [] { return TensorList{uni({5, 3}, -2, 2, 235)}; },
           [](const TensorList& x) { return cross_entropy(transpose(x[0], 0, 1), ids64({4, 0, 2}, {3})); });
  add_case("sub", "mse_loss and l1_loss (composites), target fixed", [] {
             Tensor pred = uni({3, 4}, -1, 1, 236);
             Tensor target = add(pred.detach(), away({3, 4}, 0.2, 1, 237).detach());  // |pred - target| >= 0.2
             return TensorList{pred, target};
           },
           [](const TensorList& x) { return add(mse_loss(x[0], x[1]), l1_loss(x[0], x[1], Reduction::Sum)); });

  // --- attention (fused kernel, tensor/cpu/attention.cpp) ---------------------------
  add_case("attention", "(2,2,4,3), padding mask (B,1,1,Tk)", [] {
             return TensorList{uni({2, 2, 4, 3}, -1, 1, 640), uni({2, 2, 4, 3}, -1, 1, 641), uni({2, 2, 4, 3}, -1, 1, 642)};
           },
           [](const TensorList& x) {
             Tensor m = Tensor::from_vector(std::vector<double>{0, 0, 0, -1e300, 0, 0, -1e300, -1e300}, {2, 1, 1, 4});
             return scaled_dot_product_attention(x[0], x[1], x[2], m);
           });
  add_case("attention", "heads from a (B,T,H*D) projection, Tq != Tk, Dv != D, dropout 0.3", [] {
             return TensorList{uni({2, 3, 4}, -1, 1, 643), uni({2, 5, 4}, -1, 1, 644), uni({2, 5, 6}, -1, 1, 645)};
           },
           [](const TensorList& x) {
             Tensor q = permute(reshape(x[0], {2, 3, 2, 2}), {0, 2, 1, 3});  // (B,H,Tq,D) strided view
             Tensor k = permute(reshape(x[1], {2, 5, 2, 2}), {0, 2, 1, 3});
             Tensor v = permute(reshape(x[2], {2, 5, 2, 3}), {0, 2, 1, 3});
             Tensor m = uni({3, 5}, -1, 1, 646, false);                       // additive, broadcast
             Generator g(99);
             return scaled_dot_product_attention(q, k, v, m, 0.3, true, &g, 0.7);
           });
  return c;
}

const std::vector<GradCase>& cases() {
  static const std::vector<GradCase> c = build_cases();
  return c;
}

bool exempt(const autograd::OpInfo& op) { return !op.differentiable || op.name.rfind("test_", 0) == 0; }

}  // namespace

TEST_CASE("gradcheck: every case passes in float64") {
  double worst_rel = 0.0, worst_abs = 0.0;
  std::string worst_case;
  std::set<std::string> ops;
  int passed = 0;
  for (const GradCase& gc : cases()) {
    INFO("op ", gc.op, ": ", gc.variant);
    autograd::GradcheckResult r;
    try {
      TensorList in = gc.inputs();
      for (const Tensor& t : in)
        if (t.defined() && is_floating(t.dtype())) REQUIRE(t.dtype() == DType::F64);
      // The case must really exercise the op it is filed under, and a graph dropped
      // without backward must be freed (no node may own its own output).
      std::weak_ptr<TensorImpl> out_alive;
      std::weak_ptr<autograd::Node> node_alive;
      {
        Tensor y = gc.fn(in);
        std::set<std::string> names = graph_ops(y);
        CHECK_MESSAGE(names.count(gc.op) == 1, "the graph of this case has no '", gc.op, "' node");
        out_alive = y.impl_ptr();
        node_alive = y.impl().grad_fn;
      }
      CHECK_MESSAGE(out_alive.expired(), "the output outlives its last handle (reference cycle)");
      CHECK_MESSAGE(node_alive.expired(), "the graph outlives the output (reference cycle)");
      r = autograd::gradcheck(gc.fn, in, 1e-6, kRtol, 1e-7);
      // Scale of the gradients checked (same weights as gradcheck), to report the
      // worst error relative to it.
      double scale = 0.0;
      {
        Tensor y = gc.fn(in);
        Generator wg(12345);
        Tensor w = Tensor::uniform(y.shape(), 0.5, 1.5, DType::F64, &wg);
        TensorList need;
        for (const Tensor& t : in)
          if (t.defined() && t.requires_grad()) need.push_back(t);
        for (const Tensor& g : autograd::grad({sum(mul(y, w))}, need))
          if (g.defined())
            for (double v : g.to_vector()) scale = std::max(scale, std::abs(v));
      }
      const double rel = r.max_abs_err / std::max(scale, 1e-12);
      if (rel > worst_rel) {
        worst_rel = rel;
        worst_case = gc.op + ": " + gc.variant;
      }
    } catch (const std::exception& e) {
      FAIL_CHECK("threw: ", std::string(e.what()));
      continue;
    }
    CHECK_MESSAGE(r.ok, r.message, " (max abs err ", r.max_abs_err, ", max rel err ", r.max_rel_err, ")");
    if (r.ok) ++passed;
    ops.insert(gc.op);
    worst_abs = std::max(worst_abs, r.max_abs_err);
  }
  // Relative error of a case: max |analytic - numeric| / max |analytic gradient|.
  MESSAGE("gradcheck: ", passed, "/", cases().size(), " cases passed over ", ops.size(),
          " ops; worst relative error ", worst_rel, " (", worst_case, "), worst absolute error ", worst_abs);
}

TEST_CASE("gradcheck: every registered differentiable op has a case") {
  std::set<std::string> covered;
  for (const GradCase& gc : cases()) covered.insert(gc.op);
  std::string missing;
  int checked = 0;
  for (const autograd::OpInfo& op : autograd::registered_ops()) {
    if (exempt(op)) continue;
    ++checked;
    if (!covered.count(op.name)) missing += (missing.empty() ? "" : ", ") + op.name + " (" + op.file + ")";
  }
  CHECK_MESSAGE(missing.empty(), "registered differentiable ops without a gradcheck case: ", missing);
  CHECK(checked >= 40);
  // And the table names only registered ops (no typos that would hide a gap).
  for (const std::string& name : covered) {
    INFO("table entry ", name);
    CHECK(autograd::is_registered(name));
  }
}

TEST_CASE("gradcheck: dropout mask is deterministic for a seed and not trivial") {
  Tensor x = Tensor::ones({1000}, DType::F64);
  Generator g1(7), g2(7), g3(8);
  std::vector<double> a = dropout(x, 0.3, true, &g1).to_vector();
  std::vector<double> b = dropout(x, 0.3, true, &g2).to_vector();
  std::vector<double> c = dropout(x, 0.3, true, &g3).to_vector();
  CHECK(a == b);
  CHECK(a != c);
  int zeros = 0;
  for (double v : a) {
    CHECK((v == 0.0 || std::abs(v - 1.0 / 0.7) < 1e-12));
    zeros += v == 0.0;
  }
  CHECK(zeros > 240);
  CHECK(zeros < 360);
}

// The Winograd algorithm against im2col + GEMM in float32, at the sizes where Auto picks it
// (the ConvGRU cells of the nowcasting models) and at awkward ones: forward and both
// gradients agree up to float rounding; results do not depend on the thread count.
TEST_CASE("conv2d: Winograd matches im2col + GEMM in float32") {
  struct Case {
    Shape x, w;
    int pad;
  };
  const Case cases[] = {
      {{2, 64, 48, 48}, {192, 64, 5, 5}, 2},   // ConvGRU h2h, bottom level of convgru-w4
      {{2, 192, 8, 8}, {576, 192, 3, 3}, 1},   // top level
      {{3, 17, 11, 13}, {19, 17, 3, 3}, 1},    // partial tiles both ways
      {{1, 16, 9, 10}, {20, 16, 5, 5}, 1},     // padding smaller than the kernel's half
      {{2, 5, 6, 7}, {3, 5, 3, 3}, 0},         // no padding; Auto would not pick it
  };
  for (const Case& c : cases) {
    INFO("x ", shape_str(c.x), " w ", shape_str(c.w), " pad ", c.pad);
    Generator g(11);
    Tensor x = Tensor::uniform(c.x, -1, 1, DType::F32, &g), w = Tensor::uniform(c.w, -0.2, 0.2, DType::F32, &g);
    Tensor gy = Tensor::uniform({c.x[0], c.w[0], c.x[2] + 2 * c.pad - c.w[2] + 1, c.x[3] + 2 * c.pad - c.w[3] + 1},
                                -1, 1, DType::F32, &g);
    auto run = [&](ConvAlgorithm algo, int threads, DType dt) {
      const int before = num_threads();
      set_num_threads(threads);
      Tensor xa = x.to_dtype(dt).detach().set_requires_grad(), wa = w.to_dtype(dt).detach().set_requires_grad();
      Conv2dOptions o = conv_opts(1, 1, c.pad, c.pad);
      o.algorithm = algo;
      Tensor y = conv2d(xa, wa, Tensor(), o);
      backward(sum(mul(y, gy.to_dtype(dt))));
      set_num_threads(before);
      return TensorList{y.detach(), xa.grad(), wa.grad()};
    };
    // Reference: GEMM in float64. Winograd's rounding error is a few times GEMM's.
    const TensorList ref = run(ConvAlgorithm::Gemm, 2, DType::F64);
    const TensorList gemm = run(ConvAlgorithm::Gemm, 2, DType::F32);
    const TensorList win = run(ConvAlgorithm::Winograd, 2, DType::F32);
    const TensorList win1 = run(ConvAlgorithm::Winograd, 1, DType::F32);
    const char* what[] = {"output", "input gradient", "weight gradient"};
    for (size_t i = 0; i < 3; ++i) {
      const double e_win = rel_err(win[i], ref[i]), e_gemm = rel_err(gemm[i], ref[i]);
      INFO(what[i], ": Winograd ", e_win, ", GEMM ", e_gemm);
      CHECK(e_win < 3e-5);
      CHECK(max_abs_diff(win1[i], win[i]) == 0.0);
    }
  }
  // A prepared kernel (conv2d_prepare) reused over two applications gives the results and
  // gradients of plain conv2d calls; after the weight changes, a new one is made.
  {
    Generator g(12);
    Tensor x = Tensor::uniform({2, 16, 9, 9}, -1, 1, DType::F32, &g);
    Tensor w = Tensor::uniform({16, 16, 3, 3}, -0.2, 0.2, DType::F32, &g).set_requires_grad();
    Conv2dOptions o = conv_opts(1, 1, 1, 1);
    o.algorithm = ConvAlgorithm::Winograd;
    auto twice = [&](bool prepare) {  // two applications of w, as two steps of a cell
      w.zero_grad();
      Tensor k = prepare ? conv2d_prepare(w, o, 9, 9) : Tensor();
      CHECK(k.defined() == prepare);
      Tensor y = conv2d(tanh(conv2d(x, w, Tensor(), o, k)), w, Tensor(), o, k);
      backward(sum(y));
      return TensorList{y.detach(), w.grad()};
    };
    const TensorList plain = twice(false), reused = twice(true);
    CHECK(rel_err(reused[0], plain[0]) < 1e-6);
    CHECK(rel_err(reused[1], plain[1]) < 1e-5);  // one adjoint transform of the summed gradient
    Conv2dOptions gemm = o;
    gemm.algorithm = ConvAlgorithm::Gemm;
    CHECK_FALSE(conv2d_prepare(w, gemm, 9, 9).defined());  // nothing to prepare for im2col + GEMM
  }
  // Where it does not apply, forcing it is an error that says why.
  Conv2dOptions o = conv_opts(2, 2, 1, 1);
  o.algorithm = ConvAlgorithm::Winograd;
  CHECK(error_of([&] { conv2d(Tensor::ones({1, 2, 8, 8}), Tensor::ones({2, 2, 3, 3}), Tensor(), o); }) ==
        "[conv2d] the Winograd algorithm needs groups 1, stride 1, dilation 1 and a square kernel of a size the cpu "
        "backend supports; got a 3x3 kernel, stride (2, 2), dilation (1, 1), groups 1");
}
