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
