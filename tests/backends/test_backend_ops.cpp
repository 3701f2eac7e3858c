// One table of op cases run on every registered backend against the CPU (the idea of
// ggml's test-backend-ops): forward values and the gradients of sum(y * r) of every
// floating input, in float32 and float64 where the op takes floats, at broadcast,
// strided and transposed views, empty and size-1 axes and odd sizes. Every other backend
// (sim, and cuda:N where a GPU exists) is compared with the CPU, and on every backend
// the fused kernels are compared with their composed fallbacks (FallbackScope). A new
// backend joins without new test code; a registered op without a case fails the suite.
#include <doctest/doctest.h>

#include "support.h"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <set>

#include "autograd/ops.h"
#include "autograd/registry.h"
#include "layers/swin.h"
#include "memel/layer.h"
#include "tensor/backend.h"

using namespace memel;
using autograd::TensorList;

namespace {

struct OpCase {
  std::string op;       // the registered op it covers
  std::string variant;  // what it exercises
  // Inputs on the CPU in the given floating dtype (integer inputs stay integer).
  std::function<TensorList(DType)> inputs;
  std::function<Tensor(const TensorList&)> fn;
  double f32_tol = 2e-6;  // relative, against the CPU in float32 (float64: 1e-12)
};

Tensor uni(const Shape& s, double lo, double hi, uint64_t seed, DType dt) {
  Generator g(seed);
  return Tensor::uniform(s, lo, hi, dt, &g);
}
Tensor ids(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector(v, s); }
// t with its values rounded to multiples of `step` (ties for max and max pooling).
Tensor round_to(const Tensor& t, double step) {
  std::vector<double> v = t.to_vector();
  for (double& x : v) x = std::round(x / step) * step;
  return Tensor::from_vector(v, t.shape(), DType::F64).to_dtype(t.dtype());
}

std::vector<OpCase>& table() {
  static std::vector<OpCase> cases;
  return cases;
}
void add(const std::string& op, const std::string& variant, std::function<TensorList(DType)> in,
         std::function<Tensor(const TensorList&)> fn) {
  table().push_back({op, variant, std::move(in), std::move(fn)});
}
// The last case compares different algorithms (Winograd against im2col + GEMM), which
// agree to float32 rounding of a longer sum.
void loose_f32(double tol) { table().back().f32_tol = tol; }

// Unary ops: x of a given shape, optionally transposed before the op.
void unary(const std::string& op, std::function<Tensor(const Tensor&)> f, double lo = -2, double hi = 2) {
  add(op, "(7, 5) transposed view", [=](DType dt) { return TensorList{uni({7, 5}, lo, hi, 1, dt)}; },
      [=](const TensorList& x) { return f(transpose(x[0], 0, 1)); });
  add(op, "(0, 3) empty and (1, 1, 9) size-1 axes", [=](DType dt) {
        return TensorList{uni({0, 3}, lo, hi, 2, dt), uni({1, 1, 9}, lo, hi, 3, dt)};
      },
      [=](const TensorList& x) { return concat({reshape(f(x[0]), {-1}), reshape(f(x[1]), {-1})}, 0); });
}

// Binary ops: broadcasting (5, 1, 3) with (4, 3), and a strided slice.
void binary(const std::string& op, std::function<Tensor(const Tensor&, const Tensor&)> f, double lo = -2,
            double hi = 2) {
  add(op, "broadcast (5, 1, 3) with (4, 3)",
      [=](DType dt) { return TensorList{uni({5, 1, 3}, lo, hi, 4, dt), uni({4, 3}, lo, hi, 5, dt)}; },
      [=](const TensorList& x) { return f(x[0], x[1]); });
  add(op, "strided slice with a transposed view", [=](DType dt) {
        return TensorList{uni({6, 8}, lo, hi, 6, dt), uni({4, 6}, lo, hi, 7, dt)};
      },
      [=](const TensorList& x) { return f(slice(x[0], 1, 0, 8, 2), transpose(x[1], 0, 1)); });
}

Conv2dOptions conv(int s, int p, int d = 1, int g = 1) {
  Conv2dOptions o;
  o.stride_h = o.stride_w = s;
  o.pad_h = o.pad_w = p;
  o.dil_h = o.dil_w = d;
  o.groups = g;
  return o;
}

void build_table() {
  if (!table().empty()) return;
  // --- shape and views
  add("reshape", "transposed then reshaped (a copy)", [](DType dt) { return TensorList{uni({3, 4, 5}, -1, 1, 10, dt)}; },
      [](const TensorList& x) { return reshape(transpose(x[0], 0, 2), {5, 12}); });
  add("permute", "(2, 3, 4) -> (2, 0, 1)", [](DType dt) { return TensorList{uni({2, 3, 4}, -1, 1, 11, dt)}; },
      [](const TensorList& x) { return mul(permute(x[0], {2, 0, 1}), 1.5); });
  add("slice", "step 3, negative start", [](DType dt) { return TensorList{uni({9, 4}, -1, 1, 12, dt)}; },
      [](const TensorList& x) { return mul(slice(x[0], 0, -8, 9, 3), 2.0); });
  add("expand", "(3, 1) -> (3, 5)", [](DType dt) { return TensorList{uni({3, 1}, -1, 1, 13, dt)}; },
      [](const TensorList& x) { return mul(expand(x[0], {3, 5}), 1.0); });
  add("contiguous", "of a transposed view", [](DType dt) { return TensorList{uni({4, 6}, -1, 1, 14, dt)}; },
      [](const TensorList& x) { return contiguous(transpose(x[0], 0, 1)); });
  add("concat", "axis 1, one empty part", [](DType dt) {
        return TensorList{uni({3, 2}, -1, 1, 15, dt), uni({3, 0}, -1, 1, 16, dt), uni({3, 5}, -1, 1, 17, dt)};
      },
      [](const TensorList& x) { return concat({x[0], x[1], x[2]}, 1); });
  add("pad", "constant 0.5 around the last two axes", [](DType dt) { return TensorList{uni({2, 3, 4}, -1, 1, 18, dt)}; },
      [](const TensorList& x) { return pad(x[0], {1, 2, 0, 3}, 0.5); });
  add("unbind", "along axis 1, restacked", [](DType dt) { return TensorList{uni({2, 3, 5}, -1, 1, 19, dt)}; },
      [](const TensorList& x) {
        std::vector<Tensor> p = unbind(x[0], 1);
        return stack({p[2], p[0]}, 0);
      });
  // --- elementwise
  binary("add", [](const Tensor& a, const Tensor& b) { return add(a, b); });
  binary("sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); });
  binary("mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); });
  binary("div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, 0.5, 2);
  binary("maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); });
  binary("minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); });
  binary("compare", [](const Tensor& a, const Tensor& b) {
    return add(add(eq(a, b), gt(a, b)), add(lt(a, b), ge(a, b)));
  });
  add("where", "broadcast condition", [](DType dt) {
        return TensorList{uni({4, 1}, -1, 1, 20, dt), uni({4, 3}, -1, 1, 21, dt), uni({3}, -1, 1, 22, dt)};
      },
      [](const TensorList& x) { return where(gt(x[0], mul(x[0], 0.0)), x[1], x[2]); });
  for (const char* name : {"neg", "exp", "sin", "cos", "tanh", "sigmoid", "relu", "gelu", "gelu_tanh", "leaky_relu",
                           "square", "abs"}) {
    const std::string n = name;
    unary(n, [n](const Tensor& x) {
      if (n == "neg") return neg(x);
      if (n == "exp") return exp(x);
      if (n == "sin") return sin(x);
      if (n == "cos") return cos(x);
      if (n == "tanh") return tanh(x);
      if (n == "sigmoid") return sigmoid(x);
      if (n == "relu") return relu(x);
      if (n == "gelu") return gelu(x);
      if (n == "gelu_tanh") return gelu_tanh(x);
      if (n == "leaky_relu") return leaky_relu(x, 0.1);
      if (n == "square") return square(x);
      return abs(x);
    });
  }
  unary("log", [](const Tensor& x) { return log(x); }, 0.2, 3);
  unary("sqrt", [](const Tensor& x) { return sqrt(x); }, 0.2, 3);
  unary("rsqrt", [](const Tensor& x) { return rsqrt(x); }, 0.2, 3);
  unary("add_scalar", [](const Tensor& x) { return add(x, 0.75); });
  unary("mul_scalar", [](const Tensor& x) { return mul(x, -1.25); });
  unary("pow", [](const Tensor& x) { return pow(x, 1.7); }, 0.2, 3);
  unary("clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); });
  // --- reductions
  add("sum", "axes {0, 2} kept, of a permuted view", [](DType dt) { return TensorList{uni({3, 4, 5}, -1, 1, 23, dt)}; },
      [](const TensorList& x) { return sum(permute(x[0], {1, 0, 2}), {0, 2}, true); });
  add("amax", "axis 1 with ties", [](DType dt) { return TensorList{round_to(uni({4, 6}, -2, 2, 24, dt), 1.0)}; },
      [](const TensorList& x) { return amax(x[0], {1}); });
  add("argmax", "axis 0 of a transposed view (as float)", [](DType dt) { return TensorList{uni({5, 7}, -1, 1, 25, dt)}; },
      [](const TensorList& x) { return argmax(transpose(x[0], 0, 1), 1); });
  // --- linear algebra
  add("matmul", "batched (2, 1, 3, 5) x (4, 5, 2), broadcast batch", [](DType dt) {
        return TensorList{uni({2, 1, 3, 5}, -1, 1, 26, dt), uni({4, 5, 2}, -1, 1, 27, dt)};
      },
      [](const TensorList& x) { return matmul(x[0], x[1]); });
  add("matmul", "transposed operands, 1-d vector", [](DType dt) {
        return TensorList{uni({7, 3}, -1, 1, 28, dt), uni({7}, -1, 1, 29, dt)};
      },
      [](const TensorList& x) { return matmul(transpose(x[0], 0, 1), x[1]); });
  add("linear", "(2, 3, 5) with bias", [](DType dt) {
        return TensorList{uni({2, 3, 5}, -1, 1, 30, dt), uni({4, 5}, -1, 1, 31, dt), uni({4}, -1, 1, 32, dt)};
      },
      [](const TensorList& x) { return linear(x[0], x[1], x[2]); });
  // --- nn
  add("softmax", "axis 0 (not last)", [](DType dt) { return TensorList{uni({5, 3}, -3, 3, 33, dt)}; },
      [](const TensorList& x) { return softmax(x[0], 0); });
  add("softmax", "a row of -inf (every key masked)", [](DType dt) { return TensorList{uni({4, 6}, -3, 3, 71, dt)}; },
      [](const TensorList& x) {
        std::vector<double> m(24, 0.0);
        for (int j = 0; j < 6; ++j) m[size_t(12 + j)] = -INFINITY;
        return softmax(add(x[0], Tensor::from_vector(m, {4, 6}, x[0].dtype()).to(x[0].device())), -1);
      });
  add("log_softmax", "last axis, odd size", [](DType dt) { return TensorList{uni({4, 13}, -3, 3, 34, dt)}; },
      [](const TensorList& x) { return log_softmax(x[0], -1); });
  add("layer_norm", "(3, 5, 17) with weight and bias", [](DType dt) {
        return TensorList{uni({3, 5, 17}, -2, 2, 35, dt), uni({17}, 0.5, 1.5, 36, dt), uni({17}, -1, 1, 37, dt)};
      },
      [](const TensorList& x) { return layer_norm(x[0], x[1], x[2], 1e-5); });
  add("layer_norm", "(4, 32) no parameters (vector path)", [](DType dt) { return TensorList{uni({4, 32}, -2, 2, 38, dt)}; },
      [](const TensorList& x) { return layer_norm(x[0], Tensor(), Tensor(), 1e-5); });
  add("dropout", "p 0.3 with a fixed generator", [](DType dt) { return TensorList{uni({6, 11}, -1, 1, 39, dt)}; },
      [](const TensorList& x) {
        Generator g(5);
        return dropout(x[0], 0.3, true, &g);
      });
  add("embedding", "int64 and int32 ids, repeated rows", [](DType dt) {
        return TensorList{uni({7, 5}, -1, 1, 40, dt), ids({3, 0, 3, 6, 3}, {5}),
                          Tensor::from_vector(std::vector<int32_t>{1, 1, 2}, {3})};
      },
      [](const TensorList& x) { return concat({embedding(x[0], x[1]), embedding(x[0], x[2])}, 0); });
  add("conv2d", "stride 2, padding 1, groups 2, bias", [](DType dt) {
        return TensorList{uni({2, 4, 7, 6}, -1, 1, 41, dt), uni({6, 2, 3, 3}, -1, 1, 42, dt), uni({6}, -1, 1, 43, dt)};
      },
      [](const TensorList& x) { return conv2d(x[0], x[1], x[2], conv(2, 1, 1, 2)); });
  add("conv2d", "dilation 2, channels-last input", [](DType dt) {
        return TensorList{uni({1, 9, 8, 3}, -1, 1, 44, dt), uni({2, 3, 3, 3}, -1, 1, 45, dt), Tensor()};
      },
      [](const TensorList& x) { return conv2d(permute(x[0], {0, 3, 1, 2}), x[1], x[2], conv(1, 2, 2)); });
  // Winograd on backends that have it, im2col + GEMM where they do not (Auto): same values.
  add("winograd_conv2d", "Auto: 16 channels each side, 3x3", [](DType dt) {
        return TensorList{uni({1, 16, 9, 9}, -1, 1, 46, dt), uni({16, 16, 3, 3}, -0.2, 0.2, 47, dt), Tensor()};
      },
      [](const TensorList& x) { return conv2d(x[0], x[1], x[2], conv(1, 1)); });
  loose_f32(3e-5);
  add("winograd_weight", "Auto: 16 channels each side, 5x5", [](DType dt) {
        return TensorList{uni({1, 16, 8, 8}, -1, 1, 48, dt), uni({16, 16, 5, 5}, -0.2, 0.2, 49, dt), Tensor()};
      },
      [](const TensorList& x) { return conv2d(x[0], x[1], x[2], conv(1, 2)); });
  loose_f32(3e-5);
  add("conv_transpose2d", "stride 2, output padding 1", [](DType dt) {
        return TensorList{uni({2, 3, 4, 5}, -1, 1, 50, dt), uni({3, 2, 3, 3}, -1, 1, 51, dt), uni({2}, -1, 1, 52, dt)};
      },
      [](const TensorList& x) {
        Conv2dOptions o = conv(2, 1);
        o.out_pad_h = o.out_pad_w = 1;
        return conv_transpose2d(x[0], x[1], x[2], o);
      });
  add("max_pool2d", "3x3 stride 2 padding 1, ties", [](DType dt) {
        return TensorList{round_to(uni({2, 3, 7, 8}, -2, 2, 53, dt), 0.5)};
      },
      [](const TensorList& x) { return max_pool2d(x[0], 3, 3, 2, 2, 1, 1); });
  add("avg_pool2d", "3x2, padding, count_pad off and on", [](DType dt) { return TensorList{uni({2, 3, 7, 6}, -1, 1, 54, dt)}; },
      [](const TensorList& x) {
        return concat({reshape(avg_pool2d(x[0], 3, 2, 2, 1, 1, 1, false), {-1}),
                       reshape(avg_pool2d(x[0], 3, 2, 2, 1, 1, 1, true), {-1})},
                      0);
      });
  add("cross_entropy", "ignored rows, smoothing 0.1, (N, C, L) logits", [](DType dt) {
        return TensorList{uni({3, 5, 4}, -2, 2, 55, dt), ids({0, 4, -100, 2, 1, 1, 3, -100, 4, 0, 2, 3}, {3, 4})};
      },
      [](const TensorList& x) { return cross_entropy(x[0], x[1], -100, 0.1); });
  add("attention", "mask, dropout, heads as a view", [](DType dt) {
        return TensorList{uni({2, 5, 3, 4}, -1, 1, 56, dt), uni({2, 6, 3, 4}, -1, 1, 57, dt), uni({2, 6, 3, 2}, -1, 1, 58, dt)};
      },
      [](const TensorList& x) {
        std::vector<double> m(2 * 6, 0.0);
        for (int j = 4; j < 6; ++j) m[size_t(6 + j)] = -1e9;
        Tensor mask = Tensor::from_vector(m, {2, 1, 1, 6}, x[0].dtype()).to(x[0].device());
        auto heads = [](const Tensor& t) { return permute(t, {0, 2, 1, 3}); };  // (B, T, H, D) -> (B, H, T, D)
        Generator g(7);
        return scaled_dot_product_attention(heads(x[0]), heads(x[1]), heads(x[2]), mask, 0.2, true, &g);
      });
  add("gru_candidate", "leaky, with and without input gates", [](DType dt) {
        return TensorList{uni({2, 9, 5}, -2, 2, 59, dt), uni({2, 9, 5}, -2, 2, 60, dt)};
      },
      [](const TensorList& x) {
        return concat({gru_candidate(x[0], x[1], false, 0.2), gru_candidate(Tensor(), x[1], true, 0.0)}, 0);
      });
  add("gru_update", "with input gates", [](DType dt) {
        return TensorList{uni({2, 6, 4}, -2, 2, 61, dt), uni({2, 6, 4}, -2, 2, 62, dt), uni({2, 2, 4}, -1, 1, 63, dt),
                          uni({2, 2, 4}, -1, 1, 64, dt)};
      },
      [](const TensorList& x) { return gru_update(x[0], x[1], x[2], x[3]); });
  add("swin_window_attention", "bias and mask, 2 heads", [](DType dt) {
        return TensorList{uni({4, 4, 12}, -1, 1, 65, dt), uni({2, 4, 4}, -1, 1, 66, dt),
                          mul(round_to(uni({2, 4, 4}, 0, 1, 67, dt), 1.0), -100.0).detach()};
      },
      [](const TensorList& x) { return swin_window_attention(x[0], x[1], x[2], 2, 0.5); });
  add("swin_window_gather", "shift (1, 2)", [](DType dt) { return TensorList{uni({2, 4, 6, 3}, -1, 1, 68, dt)}; },
      [](const TensorList& x) { return mul(swin_window_gather(x[0], 2, 1, 2), 1.0); });
  add("swin_window_scatter", "shift (1, 0)", [](DType dt) { return TensorList{uni({12, 4, 3}, -1, 1, 69, dt)}; },
      [](const TensorList& x) { return mul(swin_window_scatter(x[0], 2, 1, 0, 4, 6), 1.0); });
  add("memel_rd", "reverse deactivation at given elements", [](DType dt) { return TensorList{uni({3, 5}, -1, 1, 70, dt)}; },
      [](const TensorList& x) {
        Tensor vals = Tensor::from_vector(std::vector<double>{0.25, -0.5}, {2}).to(x[0].device());
        return reverse_deactivate(x[0], {1, 12}, vals, 1.0);
      });
}

// Forward value and the gradients of sum(y * r) w.r.t. the floating inputs, on the host.
std::vector<Tensor> run_case(const OpCase& c, DType dt, Device dev) {
  TensorList in = c.inputs(dt);
  for (Tensor& t : in) {
    if (!t.defined()) continue;
    t = t.to(dev);
    if (is_floating(t.dtype())) t.set_requires_grad();
  }
  Tensor y = c.fn(in);
  std::vector<Tensor> out{y.detach().to(Device::cpu())};
  if (!y.requires_grad() || y.numel() == 0) return out;
  Tensor r = uni(y.shape(), -1, 1, 99, y.dtype()).to(dev);
  backward(sum(mul(y, r)));
  for (const Tensor& t : in)
    if (t.defined() && is_floating(t.dtype()))
      out.push_back(t.grad().defined() ? t.grad().to(Device::cpu()) : Tensor());
  return out;
}

void compare(const std::vector<Tensor>& got, const std::vector<Tensor>& ref, double tol) {
  REQUIRE(got.size() == ref.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string what = i == 0 ? std::string("output") : "gradient of input " + std::to_string(i - 1);
    INFO(what);
    REQUIRE(got[i].defined() == ref[i].defined());
    if (!got[i].defined()) continue;
    REQUIRE(got[i].shape() == ref[i].shape());
    CHECK(rel_err(got[i], ref[i]) <= tol);
  }
}

double tolerance(const OpCase& c, DType dt) { return dt == DType::F64 ? 1e-12 : c.f32_tol; }

}  // namespace

TEST_CASE("backend ops: every registered op has a case") {
  build_table();
  std::set<std::string> covered;
  for (const OpCase& c : table()) covered.insert(c.op);
  std::string missing;
  for (const autograd::OpInfo& op : autograd::registered_ops())
    if (!covered.count(op.name)) missing += (missing.empty() ? "" : ", ") + op.name + " (" + op.file + ")";
  CHECK_MESSAGE(missing.empty(), "registered ops without a backend case: ", missing);
}

TEST_CASE("backend ops: every backend against the CPU, fused kernels against their fallbacks") {
  build_table();
  // MEMEL_BACKEND_DEVICES=cuda,sim restricts the devices (the CPU reference always runs);
  // scripts/gpu-check.sh runs the table on cuda alone, also under compute-sanitizer.
  std::vector<Device> devices;
  const char* only = std::getenv("MEMEL_BACKEND_DEVICES");
  for (Device d : available_devices()) {
    const std::string t = d.type == DeviceType::CUDA ? "cuda" : d.str();
    if (!only || d == Device::cpu() || ("," + std::string(only) + ",").find("," + t + ",") != std::string::npos ||
        ("," + std::string(only) + ",").find("," + d.str() + ",") != std::string::npos)
      devices.push_back(d);
  }
  MESSAGE("backends: ", [&] {
    std::string s;
    for (Device d : devices) s += (s.empty() ? "" : ", ") + d.str() + " (" + backend_for(d).describe() + ")";
    return s;
  }());
  int checked = 0;
  for (const OpCase& c : table())
    for (DType dt : {DType::F32, DType::F64}) {
      INFO("op ", c.op, ": ", c.variant, " in ", std::string(dtype_name(dt)));
      const std::vector<Tensor> ref = run_case(c, dt, Device::cpu());
      for (Device d : devices) {
        INFO("on ", d.str());
        if (d != Device::cpu()) compare(run_case(c, dt, d), ref, tolerance(c, dt));
        FallbackScope composed;
        compare(run_case(c, dt, d), ref, tolerance(c, dt));
        ++checked;
      }
    }
  MESSAGE(checked, " case runs compared");
}

// --- the memel layer's kernels (Backend::memel_pass, memel_merge, memel_select,
// memel_inhibit): not autograd ops, so checked here directly, on every backend and under
// FallbackScope, against the CPU's kernels.

namespace {

struct PassCase {
  std::string what;
  int64_t blocks, C, inner;
  bool masked, moments, score, window;
  double eps;
  // Neuron c's values (and running mean) are offset by c * offset: a batch shift taken
  // from the wrong element (another neuron's) then costs the variance its precision,
  // which the comparison sees.
  double offset = 0.0;
};

// Inputs of a pass on the CPU: x (blocks, C, inner), mask (blocks, C) or undefined, the
// running statistics (some neurons without history, one dead), the window accumulators.
struct PassState {
  Tensor x, mask, count, mean, var, bcount, bmean, bvar, phi, ms_sum, ms_n, ms_hist;
};

PassState pass_inputs(const PassCase& c, DType dt, int64_t bins) {
  PassState s;
  s.x = uni({c.blocks, c.C, c.inner}, -3, 3, 201, dt);
  if (c.offset != 0.0) {
    std::vector<double> off(size_t(c.C));
    for (int64_t i = 0; i < c.C; ++i) off[size_t(i)] = c.offset * double(i);
    s.x = add(s.x, Tensor::from_vector(off, {1, c.C, 1}, dt));
  }
  if (c.masked) s.mask = round_to(uni({c.blocks, c.C}, 0, 1, 202, DType::F32), 1.0);
  std::vector<double> cnt(size_t(c.C)), mu(size_t(c.C)), var(size_t(c.C));
  for (int64_t i = 0; i < c.C; ++i) {
    cnt[size_t(i)] = i % 3 == 0 ? 0.0 : double(10 * i);
    mu[size_t(i)] = cnt[size_t(i)] > 0 ? 0.1 * double(i % 7) - 0.3 + c.offset * double(i) : 0.0;
    var[size_t(i)] = i == 1 ? 0.0 : cnt[size_t(i)] > 0 ? 0.5 + 0.05 * double(i) : 0.0;  // neuron 1 dead
  }
  s.count = Tensor::from_vector(cnt, {c.C}, dt);
  s.mean = Tensor::from_vector(mu, {c.C}, dt);
  s.var = Tensor::from_vector(var, {c.C}, dt);
  s.bcount = Tensor::zeros({c.C}, DType::F64);
  s.bmean = Tensor::zeros({c.C}, DType::F64);
  s.bvar = Tensor::zeros({c.C}, DType::F64);
  s.phi = Tensor::zeros(s.x.shape(), dt);
  s.ms_sum = Tensor::full({c.C}, 0.5, DType::F64);
  s.ms_n = Tensor::full({c.C}, 2.0, DType::F64);
  s.ms_hist = Tensor::full({bins}, 1.0, DType::F64);
  return s;
}

std::vector<Tensor> run_pass(const PassCase& c, DType dt, Device d) {
  const MsHistBins bins(12, 1e-3, 10.0);
  PassState s = pass_inputs(c, dt, bins.count());
  for (Tensor* t : {&s.x, &s.mask, &s.count, &s.mean, &s.var, &s.bcount, &s.bmean, &s.bvar, &s.phi, &s.ms_sum, &s.ms_n,
                    &s.ms_hist})
    if (t->defined()) *t = t->to(d);
  MemelPass p;
  p.blocks = c.blocks;
  p.C = c.C;
  p.inner = c.inner;
  p.moments = c.moments;
  p.score = c.score;
  p.window = c.window;
  p.eps = c.eps;
  p.bins = &bins;
  backend_for(d).memel_pass(s.x, s.mask, s.count, s.mean, s.var, p, s.bcount, s.bmean, s.bvar, s.phi, s.ms_sum, s.ms_n,
                            s.ms_hist);
  std::vector<Tensor> out;
  for (const Tensor& t : {s.bcount, s.bmean, s.bvar, s.phi, s.ms_sum, s.ms_n, s.ms_hist}) out.push_back(t.to(Device::cpu()));
  return out;
}

void compare_exact_or(const std::vector<Tensor>& got, const std::vector<Tensor>& ref, double tol,
                      const std::vector<std::string>& names, const std::set<std::string>& exact) {
  REQUIRE(got.size() == ref.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(names[i]);
    REQUIRE(got[i].shape() == ref[i].shape());
    if (exact.count(names[i]))
      CHECK(got[i].to_vector() == ref[i].to_vector());
    else
      CHECK(rel_err(got[i], ref[i]) <= tol);
  }
}

}  // namespace

TEST_CASE("backend ops: memel_pass on every backend and composed, against the CPU") {
  const std::vector<PassCase> cases{
      {"element neurons: moments, scores and window", 6, 20, 1, false, true, true, true, 0.01},
      {"element neurons, masked", 6, 20, 1, true, true, true, true, 0.01},
      {"channel neurons (inner 5), masked", 3, 4, 5, true, true, true, true, 0.01},
      {"channel neurons, moments only", 4, 3, 7, false, true, false, false, 0.01},
      {"scores only (eval), eps 0 with a dead neuron", 5, 9, 2, false, false, true, false, 0.0},
      {"scores and window, masked, eps 0", 2, 6, 3, true, false, true, true, 0.0},
      {"one block, odd sizes", 1, 7, 3, false, true, true, true, 0.01},
      {"more blocks than neurons, neurons far apart, masked", 7, 3, 2, true, true, false, false, 0.01, 1e6},
  };
  const std::vector<std::string> names{"bcount", "bmean", "bvar", "phi", "ms_sum", "ms_n", "ms_hist"};
  for (const PassCase& c : cases)
    for (DType dt : {DType::F32, DType::F64}) {
      INFO("memel_pass: ", c.what, " in ", std::string(dtype_name(dt)));
      const std::vector<Tensor> ref = run_pass(c, dt, Device::cpu());
      // The pass did what it was asked for: a moment, score and histogram count changed.
      if (c.moments) CHECK(sum(ref[0]).item() > 0);
      if (c.score) CHECK(sum(abs(ref[3])).item() > 0);
      if (c.window) CHECK(sum(ref[6]).item() > double(ref[6].numel()));
      for (Device d : available_devices()) {
        INFO("on ", d.str());
        const double tol = dt == DType::F64 ? 1e-12 : 2e-6;
        if (d != Device::cpu()) compare_exact_or(run_pass(c, dt, d), ref, tol, names, {"bcount", "ms_n", "ms_hist"});
        FallbackScope composed;
        compare_exact_or(run_pass(c, dt, d), ref, tol, names, {"bcount", "ms_n", "ms_hist"});
      }
    }
}

TEST_CASE("backend ops: memel_merge on every backend and composed, against the CPU") {
  for (DType dt : {DType::F32, DType::F64})
    for (int64_t forget : {int64_t(0), int64_t(2)})
      for (bool ahead : {false, true}) {
        INFO("memel_merge in ", std::string(dtype_name(dt)), ", forget ", forget, ", count_ahead ", ahead);
        auto run = [&](Device d) {
          std::vector<double> m{0, 0, 5, 40, 1, 3}, mu{0, 0, 0.5, -1, 2, 0.25}, v{0, 0, 0.3, 2, 0, 1.5};
          std::vector<double> b{4, 0, 3, 8, 1, 0}, mb{1.5, 9, -0.5, 0.25, 3, 7}, vb{0.5, 9, 0.1, 1, 0, 7};
          Tensor count = Tensor::from_vector(m, {2, 3}, dt).to(d), mean = Tensor::from_vector(mu, {2, 3}, dt).to(d),
                 var = Tensor::from_vector(v, {2, 3}, dt).to(d);
          backend_for(d).memel_merge(count, mean, var, Tensor::from_vector(b, {6}, DType::F64).to(d),
                                     Tensor::from_vector(mb, {6}, DType::F64).to(d),
                                     Tensor::from_vector(vb, {6}, DType::F64).to(d), forget, ahead);
          return std::vector<Tensor>{count.to(Device::cpu()), mean.to(Device::cpu()), var.to(Device::cpu())};
        };
        const std::vector<Tensor> ref = run(Device::cpu());
        // Neuron 1 had no values in the batch: unchanged; neuron 0 starts from the batch.
        CHECK(ref[1].to_vector()[1] == 0.0);
        CHECK(ref[1].to_vector()[0] == doctest::Approx(1.5));
        CHECK(ref[0].to_vector()[3] == (forget ? 16.0 : 48.0));
        for (Device d : available_devices()) {
          INFO("on ", d.str());
          const double tol = dt == DType::F64 ? 1e-12 : 2e-6;
          if (d != Device::cpu()) compare_exact_or(run(d), ref, tol, {"count", "mean", "var"}, {"count"});
          FallbackScope composed;
          compare_exact_or(run(d), ref, tol, {"count", "mean", "var"}, {"count"});
        }
      }
}

TEST_CASE("backend ops: memel_select and memel_inhibit on every backend and composed, against the CPU") {
  // Scores of 3 scopes of 8 with ties, invalid (-1) and NaN elements.
  const double nan = std::nan("");
  const std::vector<double> phi{0.5, 2.0, 2.0, -1, 0.1, nan, 2.0, 0.3,   //
                                -1, -1, -1, -1, -1, -1, -1, -1,          // no candidate
                                0.7, 0.7, 0.2, 0.9, 0.9, 0.05, 0.4, 0.9};
  struct SelCase {
    const char* what;
    MemelSelectSpec s;
    std::vector<int64_t> expect;  // on the CPU
  };
  auto spec = [](int64_t scopes, int64_t n, int rule, int64_t k, double ratio, double thr, bool ties) {
    MemelSelectSpec s;
    s.scopes = scopes;
    s.n = n;
    s.rule = rule;
    s.k = k;
    s.ratio = ratio;
    s.threshold = thr;
    s.all_ties = ties;
    return s;
  };
  const std::vector<SelCase> cases{
      {"top-1 per scope, ties to the lower index", spec(3, 8, 0, 1, 0, 0, false), {1, 19}},
      {"top-1 with all ties", spec(3, 8, 0, 1, 0, 0, true), {1, 2, 6, 19, 20, 23}},
      {"top-3", spec(3, 8, 0, 3, 0, 0, false), {1, 2, 6, 19, 20, 23}},
      {"top-4, ties to the lower index", spec(3, 8, 0, 4, 0, 0, false), {0, 1, 2, 6, 16, 19, 20, 23}},
      {"top_log over the batch", spec(1, 24, 1, 1, 0, 0, false), {1, 2, 6, 19}},
      {"ratio 0.25", spec(3, 8, 2, 1, 0.25, 0, false), {1, 2, 19, 20}},
      {"threshold 0.6", spec(3, 8, 3, 1, 0, 0.6, false), {1, 2, 6, 16, 17, 19, 20, 23}},
  };
  for (DType dt : {DType::F32, DType::F64})
    for (const SelCase& c : cases) {
      INFO("memel_select: ", c.what, " in ", std::string(dtype_name(dt)));
      const Tensor p = Tensor::from_vector(phi, {3, 8}, dt);
      CHECK(cpu_backend().memel_select(p, c.s) == c.expect);
      for (Device d : available_devices()) {
        INFO("on ", d.str());
        CHECK(backend_for(d).memel_select(p.to(d), c.s) == c.expect);
        FallbackScope composed;
        CHECK(backend_for(d).memel_select(p.to(d), c.s) == c.expect);
      }
    }
  for (DType dt : {DType::F32, DType::F64}) {
    INFO("memel_inhibit in ", std::string(dtype_name(dt)));
    auto run = [&](Device d, bool count) {
      Tensor mean = Tensor::from_vector(std::vector<double>{0.5, -1.25, 3, 7}, {2, 2}, dt).to(d);
      Tensor inh = count ? Tensor::from_vector(std::vector<double>{1, 0, 0, 2}, {4}, DType::F64).to(d) : Tensor();
      Tensor vals = Tensor::zeros({5}, DType::F64, d);
      backend_for(d).memel_inhibit(Tensor::from_vector(std::vector<int64_t>{1, 3, 1, 0, 1}, {5}).to(d), mean, inh, vals);
      return std::make_pair(vals.to_vector(), count ? inh.to_vector() : std::vector<double>{});
    };
    const auto ref = run(Device::cpu(), true);
    CHECK(ref.first == std::vector<double>{-1.25, 7, -1.25, 0.5, -1.25});
    CHECK(ref.second == std::vector<double>{2, 3, 0, 3});
    for (Device d : available_devices()) {
      INFO("on ", d.str());
      CHECK(run(d, true) == ref);
      CHECK(run(d, false).first == ref.first);
      FallbackScope composed;
      CHECK(run(d, true) == ref);
    }
  }
}
