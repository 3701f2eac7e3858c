// Op parity with PyTorch in float32: forward outputs and input gradients (for a fixed
// random upstream gradient) of memel's ops against torch's, on the same random inputs.
//
// All cases go to ONE run of tests/python/op_parity.py (python + torch start in about
// 2 s): inputs and upstream gradients are written to a JSON file, torch's results are
// read back from another. The test skips (MESSAGE) when /usr/bin/python3 or torch is
// missing.
//
// Error measure, per tensor: max_i |memel_i - torch_i| / max_i |torch_i| (max-norm
// relative error; insensitive to tiny reference elements that would blow up an
// elementwise ratio). Bound: 1e-5 for every output and gradient.
#include <doctest/doctest.h>

#include "support.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/ops.h"

using namespace memel;
using nlohmann::json;

namespace {

constexpr double kBound = 1e-5;

using Named = std::map<std::string, Tensor>;

struct ParityCase {
  ParityCase(std::string n, std::string o) : name(std::move(n)), op(std::move(o)) {}
  std::string name, op;
  json params = json::object();
  Named inputs;      // float32, gradients compared
  Named int_inputs;  // int64 ids / targets
  Named consts;      // float32 without gradient (masks)
  // f: the float inputs; i: the int inputs and the constants.
  std::function<Tensor(const Named& f, const Named& i)> fn;
  // Filled by the test.
  Tensor grad_out, output;
  Named grads;
};

json to_json(const Tensor& t) {
  return json{{"shape", t.shape()}, {"data", t.dtype() == DType::I64 ? json(t.to_vector_as<int64_t>())
                                                                      : json(t.to_vector_as<float>())}};
}

Tensor from_json(const json& j) {
  Shape s = j.at("shape").get<Shape>();
  std::vector<float> v = j.at("data").get<std::vector<float>>();
  return Tensor::from_vector(v, s, DType::F32);
}

uint64_t g_seed = 1000;
Tensor randn32(const Shape& s, double scale = 1.0) {
  Generator g(++g_seed);
  return mul(Tensor::randn(s, DType::F32, &g), scale);
}
Tensor uniform32(const Shape& s, double lo, double hi) {
  Generator g(++g_seed);
  return Tensor::uniform(s, lo, hi, DType::F32, &g);
}
Tensor ints(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector(v, s); }

Conv2dOptions conv_opts(json& p, int s, int pad, int dil, int groups, int out_pad = 0) {
  Conv2dOptions o;
  o.stride_h = o.stride_w = s;
  o.pad_h = o.pad_w = pad;
  o.dil_h = o.dil_w = dil;
  o.groups = groups;
  o.out_pad_h = o.out_pad_w = out_pad;
  p = json{{"stride", {s, s}}, {"padding", {pad, pad}}, {"dilation", {dil, dil}}, {"groups", groups},
           {"output_padding", {out_pad, out_pad}}};
  return o;
}

std::vector<ParityCase> build_cases() {
  std::vector<ParityCase> c;
  {
    ParityCase k{"linear (4,7,32) x (24,32) + bias", "linear"};
    k.inputs = {{"x", randn32({4, 7, 32})}, {"weight", randn32({24, 32}, 0.2)}, {"bias", randn32({24})}};
    k.fn = [](const Named& f, const Named&) { return linear(f.at("x"), f.at("weight"), f.at("bias")); };
    c.push_back(k);
  }
  {
    ParityCase k{"layer_norm (8,64) weight+bias", "layer_norm"};
    k.inputs = {{"x", add(randn32({8, 64}, 3.0), 1.0)}, {"weight", uniform32({64}, 0.5, 1.5)}, {"bias", randn32({64})}};
    k.params = {{"eps", 1e-5}};
    k.fn = [](const Named& f, const Named&) { return layer_norm(f.at("x"), f.at("weight"), f.at("bias"), 1e-5); };
    c.push_back(k);
  }
  {
    ParityCase k{"layer_norm (2,5,48) no affine", "layer_norm"};
    k.inputs = {{"x", randn32({2, 5, 48})}};
    k.params = {{"eps", 1e-5}};
    k.fn = [](const Named& f, const Named&) { return layer_norm(f.at("x"), Tensor(), Tensor(), 1e-5); };
    c.push_back(k);
  }
  {
    ParityCase k{"gelu (exact) (4096) in [-6,6]", "gelu"};
    k.inputs = {{"x", uniform32({4096}, -6, 6)}};
    k.fn = [](const Named& f, const Named&) { return gelu(f.at("x")); };
    c.push_back(k);
  }
  {
    ParityCase k{"gelu_tanh (1024)", "gelu_tanh"};
    k.inputs = {{"x", uniform32({1024}, -6, 6)}};
    k.fn = [](const Named& f, const Named&) { return gelu_tanh(f.at("x")); };
    c.push_back(k);
  }
  {
    ParityCase k{"softmax (16,50) last axis", "softmax"};
    k.inputs = {{"x", randn32({16, 50}, 3.0)}};
    k.params = {{"axis", -1}};
    k.fn = [](const Named& f, const Named&) { return softmax(f.at("x"), -1); };
    c.push_back(k);
  }
  {
    ParityCase k{"softmax (4,6,5) axis 1", "softmax"};
    k.inputs = {{"x", randn32({4, 6, 5}, 2.0)}};
    k.params = {{"axis", 1}};
    k.fn = [](const Named& f, const Named&) { return softmax(f.at("x"), 1); };
    c.push_back(k);
  }
  {
    ParityCase k{"log_softmax (8,30)", "log_softmax"};
    k.inputs = {{"x", randn32({8, 30}, 2.0)}};
    k.params = {{"axis", -1}};
    k.fn = [](const Named& f, const Named&) { return log_softmax(f.at("x"), -1); };
    c.push_back(k);
  }
  {
    ParityCase k{"cross_entropy (32,10) smoothing 0.1, ignore_index", "cross_entropy"};
    std::vector<int64_t> t;
    Generator g(77);
    for (int i = 0; i < 32; ++i) t.push_back(i % 7 == 3 ? -100 : g.randint(0, 10));
    k.inputs = {{"logits", randn32({32, 10}, 2.0)}};
    k.int_inputs = {{"target", ints(t, {32})}};
    k.params = {{"label_smoothing", 0.1}, {"ignore_index", -100}};
    k.fn = [](const Named& f, const Named& i) { return cross_entropy(f.at("logits"), i.at("target"), -100, 0.1); };
    c.push_back(k);
  }
  {
    ParityCase k{"cross_entropy (4,10,6) logits, smoothing 0.2, sum", "cross_entropy"};
    std::vector<int64_t> t;
    Generator g(78);
    for (int i = 0; i < 24; ++i) t.push_back(g.randint(0, 10));
    k.inputs = {{"logits", randn32({4, 10, 6}, 2.0)}};
    k.int_inputs = {{"target", ints(t, {4, 6})}};
    k.params = {{"label_smoothing", 0.2}, {"reduction", "sum"}};
    k.fn = [](const Named& f, const Named& i) {
      return cross_entropy(f.at("logits"), i.at("target"), -100, 0.2, Reduction::Sum);
    };
    c.push_back(k);
  }
  {
    ParityCase k{"conv2d (2,6,11,11) groups 2 stride 2 pad 1 + bias", "conv2d"};
    Conv2dOptions o = conv_opts(k.params, 2, 1, 1, 2);
    k.inputs = {{"x", randn32({2, 6, 11, 11})}, {"weight", randn32({8, 3, 3, 3}, 0.3)}, {"bias", randn32({8})}};
    k.fn = [o](const Named& f, const Named&) { return conv2d(f.at("x"), f.at("weight"), f.at("bias"), o); };
    c.push_back(k);
  }
  {
    ParityCase k{"conv2d (2,3,9,9) dilation 2 pad 2, no bias", "conv2d"};
    Conv2dOptions o = conv_opts(k.params, 1, 2, 2, 1);
    k.inputs = {{"x", randn32({2, 3, 9, 9})}, {"weight", randn32({4, 3, 3, 3}, 0.3)}};
    k.fn = [o](const Named& f, const Named&) { return conv2d(f.at("x"), f.at("weight"), Tensor(), o); };
    c.push_back(k);
  }
  {
    ParityCase k{"conv_transpose2d (2,4,6,6) stride 2 pad 1 out_pad 1 + bias", "conv_transpose2d"};
    Conv2dOptions o = conv_opts(k.params, 2, 1, 1, 1, 1);
    k.inputs = {{"x", randn32({2, 4, 6, 6})}, {"weight", randn32({4, 3, 3, 3}, 0.3)}, {"bias", randn32({3})}};
    k.fn = [o](const Named& f, const Named&) { return conv_transpose2d(f.at("x"), f.at("weight"), f.at("bias"), o); };
    c.push_back(k);
  }
  {
    ParityCase k{"conv_transpose2d (1,4,5,5) groups 2 stride 2 + bias", "conv_transpose2d"};
    Conv2dOptions o = conv_opts(k.params, 2, 0, 1, 2);
    k.inputs = {{"x", randn32({1, 4, 5, 5})}, {"weight", randn32({4, 2, 3, 3}, 0.3)}, {"bias", randn32({4})}};
    k.fn = [o](const Named& f, const Named&) { return conv_transpose2d(f.at("x"), f.at("weight"), f.at("bias"), o); };
    c.push_back(k);
  }
  {
    ParityCase k{"conv_transpose2d (1,2,4,4) stride 1 dilation 2 out_pad 1", "conv_transpose2d"};
    Conv2dOptions o = conv_opts(k.params, 1, 1, 2, 1, 1);
    k.inputs = {{"x", randn32({1, 2, 4, 4})}, {"weight", randn32({2, 3, 3, 3}, 0.3)}, {"bias", randn32({3})}};
    k.fn = [o](const Named& f, const Named&) { return conv_transpose2d(f.at("x"), f.at("weight"), f.at("bias"), o); };
    c.push_back(k);
  }
  {
    ParityCase k{"matmul (2,1,5,8) x (3,8,6) broadcast", "matmul"};
    k.inputs = {{"a", randn32({2, 1, 5, 8})}, {"b", randn32({3, 8, 6})}};
    k.fn = [](const Named& f, const Named&) { return matmul(f.at("a"), f.at("b")); };
    c.push_back(k);
  }
  {
    ParityCase k{"max_pool2d (2,3,9,9) k3 s2 p1", "max_pool2d"};
    k.inputs = {{"x", randn32({2, 3, 9, 9})}};
    k.params = {{"kernel", {3, 3}}, {"stride", {2, 2}}, {"padding", {1, 1}}};
    k.fn = [](const Named& f, const Named&) { return max_pool2d(f.at("x"), 3, 3, 2, 2, 1, 1); };
    c.push_back(k);
  }
  {
    ParityCase k{"avg_pool2d (2,3,9,9) k3 s2 p1 exclude pad", "avg_pool2d"};
    k.inputs = {{"x", randn32({2, 3, 9, 9})}};
    k.params = {{"kernel", {3, 3}}, {"stride", {2, 2}}, {"padding", {1, 1}}, {"count_include_pad", false}};
    k.fn = [](const Named& f, const Named&) { return avg_pool2d(f.at("x"), 3, 3, 2, 2, 1, 1, false); };
    c.push_back(k);
  }
  {
    ParityCase k{"embedding (10,16) ids (3,5) with repeats", "embedding"};
    k.inputs = {{"weight", randn32({10, 16})}};
    k.int_inputs = {{"ids", ints({1, 4, 4, 9, 0, 2, 2, 2, 7, 1, 3, 5, 6, 8, 4}, {3, 5})}};
    k.fn = [](const Named& f, const Named& i) { return embedding(f.at("weight"), i.at("ids")); };
    c.push_back(k);
  }
  {
    ParityCase k{"attention (2,3,5,8) x (2,3,7,8), padding mask, scale 0.3", "attention"};
    k.inputs = {{"q", randn32({2, 3, 5, 8})}, {"k", randn32({2, 3, 7, 8})}, {"v", randn32({2, 3, 7, 6})}};
    std::vector<float> m(14, 0.0f);
    m[5] = m[6] = m[13] = -1e9f;
    k.consts = {{"mask", Tensor::from_vector(m, {2, 1, 1, 7})}};
    k.params = {{"scale", 0.3}};
    k.fn = [](const Named& f, const Named& i) {
      return scaled_dot_product_attention(f.at("q"), f.at("k"), f.at("v"), i.at("mask"), 0.0, false, nullptr, 0.3);
    };
    c.push_back(k);
  }
  return c;
}

bool file_exists(const std::string& p) { return std::ifstream(p).good(); }

}  // namespace

TEST_CASE("torch parity: forward outputs and input gradients (float32)") {
  const std::string python = reference_python();
  const std::string script = std::string(MEMEL_SOURCE_DIR) + "/tests/python/op_parity.py";
  if (!file_exists(python)) {
    reference_unavailable(python + " not found");
    return;
  }
  REQUIRE(file_exists(script));

  // 1. memel: outputs and gradients; the spec for torch.
  std::vector<ParityCase> cases = build_cases();
  json spec;
  spec["cases"] = json::array();
  for (ParityCase& k : cases) {
    Named leaves;
    for (auto& [name, t] : k.inputs) leaves[name] = t.detach().contiguous_copy().set_requires_grad();
    Named other = k.int_inputs;
    other.insert(k.consts.begin(), k.consts.end());
    k.output = k.fn(leaves, other);
    k.grad_out = randn32(k.output.shape());
    backward(k.output, k.grad_out);
    for (auto& [name, t] : leaves) k.grads[name] = t.grad();
    json jc{{"name", k.name}, {"op", k.op}, {"params", k.params}, {"grad_out", to_json(k.grad_out)}};
    jc["inputs"] = json::object();
    jc["int_inputs"] = json::object();
    jc["consts"] = json::object();
    for (auto& [name, t] : k.consts) jc["consts"][name] = to_json(t);
    for (auto& [name, t] : k.inputs) jc["inputs"][name] = to_json(t);
    for (auto& [name, t] : k.int_inputs) jc["int_inputs"][name] = to_json(t);
    spec["cases"].push_back(jc);
  }

  // 2. torch, once for all cases.
  const std::string tag = std::to_string(::getpid());
  const std::string in_path = std::string(MEMEL_BINARY_DIR) + "/op_parity_in_" + tag + ".json";
  const std::string out_path = std::string(MEMEL_BINARY_DIR) + "/op_parity_out_" + tag + ".json";
  {
    std::ofstream f(in_path);
    REQUIRE(f.good());
    f << spec.dump();
  }
  const std::string cmd = python + " " + script + " " + in_path + " " + out_path;
  const int status = std::system(cmd.c_str());
  std::remove(in_path.c_str());
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (rc == 77) {
    reference_unavailable("torch is not importable by " + python);
    return;
  }
  REQUIRE_MESSAGE(rc == 0, "command failed (status ", rc, "): ", cmd);
  json out;
  {
    std::ifstream f(out_path);
    REQUIRE(f.good());
    f >> out;
  }
  std::remove(out_path.c_str());
  REQUIRE(out.at("cases").size() == cases.size());

  // 3. Compare.
  std::string report = "torch " + out.value("torch", std::string("?")) + ", max relative error (max|d|/max|ref|):";
  double worst = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const ParityCase& k = cases[i];
    const json& r = out["cases"][i];
    INFO("case ", k.name);
    REQUIRE(r.at("name").get<std::string>() == k.name);
    const double eo = rel_err(k.output, from_json(r.at("output")));
    CHECK_MESSAGE(eo <= kBound, "output relative error ", eo);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.2e", eo);
    report += "\n  " + k.name + ": output " + buf;
    worst = std::max(worst, eo);
    for (auto& [name, g] : k.grads) {
      REQUIRE_MESSAGE(r.at("grads").contains(name), "torch returned no gradient for ", name);
      const double eg = rel_err(g, from_json(r["grads"][name]));
      CHECK_MESSAGE(eg <= kBound, "gradient of ", name, " relative error ", eg);
      std::snprintf(buf, sizeof(buf), "%.2e", eg);
      report += std::string(", d") + name + " " + buf;
      worst = std::max(worst, eg);
    }
  }
  MESSAGE(report, "\n  worst: ", worst);
}
