// ConvGRU cell and a two-level encoder-forecaster against an independent PyTorch
// implementation built from torch.nn.Conv2d / ConvTranspose2d (tests/python/
// convgru_parity.py), with the same weights and inputs exchanged through safetensors
// files. Our side runs in float32, the reference in float64, over 5 time steps.
// Metric, per tensor: max |ours - reference| / max |reference|; the output, the input
// gradient and every parameter gradient must be below 1e-4. One cell is large enough to
// run on the Winograd convolution.
// Skips (with a message) when /usr/bin/python3 cannot import torch; fails instead under
// MEMEL_TORCH_REFERENCE=required.
#include <doctest/doctest.h>

#include "support.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "layers/convgru.h"
#include "models/convgru.h"
#include "tensor/tensor_io.h"

using namespace memel;

namespace {

std::string dir() {
  const std::string d = std::string(MEMEL_BINARY_DIR) + "/convgru_parity";
  std::filesystem::create_directories(d);
  return d;
}

// What one case needs for the comparison after the reference ran.
struct Case {
  std::string name;
  std::map<std::string, Tensor> ours;  // "y", "grad.x", ["grad.h0"], "grad.<param>"
};

// Writes NAME.in.safetensors and returns our output and gradients.
Case prepare(const std::string& name, Module& model, const nlohmann::json& cfg, const Tensor& x, const Tensor& h0,
             const Tensor& y, const Tensor& g) {
  std::map<std::string, Tensor> in{{"x", x.detach()}, {"g", g}};
  if (h0.defined()) in["h0"] = h0.detach();
  for (auto& [n, p] : model.named_parameters()) in["param." + n] = p.detach();
  save_safetensors(dir() + "/" + name + ".in.safetensors", in, {{"config", cfg.dump()}});
  Case c{name, {{"y", y.detach()}, {"grad.x", x.grad()}}};
  if (h0.defined()) c.ours["grad.h0"] = h0.grad();
  for (auto& [pn, p] : model.named_parameters()) c.ours["grad." + pn] = p.grad();
  return c;
}

// Runs the reference once for all cases and compares every tensor.
void compare(const std::vector<Case>& cases) {
  std::string cmd = reference_python() + " " + std::string(MEMEL_SOURCE_DIR) + "/tests/python/convgru_parity.py " + dir();
  for (auto& c : cases) cmd += " " + c.name;
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "reference failed: ", cmd);
  for (auto& c : cases) {
    TensorFile ref = load_safetensors(dir() + "/" + c.name + ".torch.safetensors");
    double worst = 0;
    std::string worst_key;
    for (auto& [key, ours] : c.ours) {
      REQUIRE_MESSAGE(ref.tensors.count(key), c.name, ": reference has no ", key);
      REQUIRE_MESSAGE(ours.defined(), c.name, ": no gradient for ", key);
      CHECK(ours.shape() == ref.tensors[key].shape());
      const double e = rel_err(ours, ref.tensors[key]);
      INFO(c.name, " ", key, " rel err ", e);
      CHECK(e <= 2e-5);  // float32 rounding: 2.7e-6 measured (the Winograd cell)
      if (e >= worst) {
        worst = e;
        worst_key = key;
      }
    }
    MESSAGE(c.name, ": ", c.ours.size(), " tensors (output, input and parameter gradients), worst rel err ", worst,
            " (", worst_key, ")");
  }
}

Case cell_case(const std::string& name, ConvGRUOptions o, Shape xshape, bool with_h0) {
  manual_seed(11);
  ConvGRUCell cell(o);
  Generator gen(5);
  Tensor x = Tensor::randn(xshape, DType::F32, &gen).set_requires_grad();
  const Size2 st = cell.state_size(Size2(int(xshape[3]), int(xshape[4])));
  Tensor h0;
  if (with_h0) h0 = Tensor::randn({xshape[0], o.hidden_channels, st.h, st.w}, DType::F32, &gen).set_requires_grad();
  Tensor y = cell.forward_sequence(x, h0);  // (B, T, C, H', W')
  Tensor g = Tensor::randn(y.shape(), DType::F32, &gen);
  backward(sum(mul(y, g)));
  auto s2 = [](Size2 s) { return nlohmann::json::array({s.h, s.w}); };
  nlohmann::json cfg = {{"kind", "cell"},
                        {"input_channels", o.input_channels},
                        {"hidden_channels", o.hidden_channels},
                        {"i2h_kernel", s2(o.i2h_kernel)},
                        {"i2h_stride", s2(o.i2h_stride)},
                        {"i2h_padding", s2(o.i2h_padding)},
                        {"i2h_dilation", s2(o.i2h_dilation)},
                        {"h2h_kernel", s2(o.h2h_kernel)},
                        {"h2h_dilation", s2(o.h2h_dilation)},
                        {"activation", o.activation},
                        {"leaky_slope", o.leaky_slope}};
  return prepare(name, cell, cfg, x, h0, y, g);
}

}  // namespace

TEST_CASE("convgru parity: cells and a two-level encoder-forecaster vs PyTorch, 5 time steps") {
  if (!torch_reference_available("torch")) return;
  std::vector<Case> cases;
  {
    // Leaky ReLU (0.2), zero initial state, "same" i2h.
    ConvGRUOptions o;
    o.input_channels = 3;
    o.hidden_channels = 4;
    o.h2h_kernel = Size2(5);
    cases.push_back(cell_case("cell_leaky", o, {2, 5, 3, 9, 9}, false));
  }
  {
    // Channels and frames large enough for conv2d's Auto to take the Winograd algorithm for
    // both convolutions (3x3 i2h, 5x5 h2h; see ConvAlgorithm), as in the HKO-7 models.
    ConvGRUOptions o;
    o.input_channels = 16;
    o.hidden_channels = 16;
    o.h2h_kernel = Size2(5);
    cases.push_back(cell_case("cell_winograd", o, {2, 5, 16, 9, 10}, true));
  }
  {
    // tanh, strided i2h (9x10 -> 5x5 state), dilated rectangular h2h, a given state.
    ConvGRUOptions o;
    o.input_channels = 2;
    o.hidden_channels = 3;
    o.i2h_kernel = Size2(3);
    o.i2h_stride = Size2(2);
    o.i2h_padding = Size2(1);
    o.h2h_kernel = Size2(3, 5);
    o.h2h_dilation = Size2(2, 1);
    o.activation = "tanh";
    cases.push_back(cell_case("cell_tanh", o, {2, 5, 2, 9, 10}, true));
  }
  {
    // Two levels, 16x16 frames -> 8 -> 4, 5 input and 5 output frames.
    nlohmann::json j = nlohmann::json::parse(R"({
      "name": "parity-2level", "in_frames": 5, "out_frames": 5, "frame_size": 16, "frame_channels": 1,
      "first_conv": {"channels": 4, "kernel": 3, "stride": 2, "padding": 1},
      "rnn": [{"channels": 6, "h2h_kernel": 5}, {"channels": 8, "h2h_kernel": 3}],
      "downsample": [{"channels": 8, "kernel": 3, "stride": 2, "padding": 1}],
      "upsample": [{"channels": 6, "kernel": 4, "stride": 2, "padding": 1}],
      "last_deconv": {"channels": 4, "kernel": 4, "stride": 2, "padding": 1},
      "final_conv": {"channels": 4, "kernel": 3, "stride": 1, "padding": 1}
    })");
    ConvGRUConfig cfg = ConvGRUConfig::from_json(j);
    CHECK(cfg.feature_sizes() == std::vector<Size2>{Size2(8), Size2(4)});
    manual_seed(3);
    EncoderForecaster model(cfg);
    Generator gen(9);
    Tensor x = Tensor::rand({2, 5, 1, 16, 16}, DType::F32, &gen).set_requires_grad();
    Tensor y = model(x);
    REQUIRE(y.shape() == Shape{2, 5, 1, 16, 16});
    Tensor g = Tensor::randn(y.shape(), DType::F32, &gen);
    backward(sum(mul(y, g)));
    nlohmann::json rc = cfg.to_json();
    rc["kind"] = "ef";
    cases.push_back(prepare("ef2", model, rc, x, Tensor(), y, g));
  }
  compare(cases);
}
