// Swin Transformer against torchvision 0.14's SwinTransformer (Debian's python3-torchvision)
// with the same random weights, exchanged through safetensors files under torchvision's
// names (swin_to_torchvision). Our side runs in float32, the reference in float64.
// Metric, per tensor: max |ours - reference| / max |reference| (relative to the tensor's
// largest entry); every logit tensor and every parameter gradient must be below 1e-4.
// Skips (with a message) when /usr/bin/python3 cannot import torch and torchvision; fails
// instead under MEMEL_TORCH_REFERENCE=required.
#include <doctest/doctest.h>

#include "support.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "models/swin.h"
#include "tensor/tensor_io.h"

using namespace memel;

namespace {

struct Case {
  std::string name;
  SwinConfig cfg;
  int64_t batch, image;
};

// Writes the files the Python side reads; returns our logits and gradients.
std::map<std::string, Tensor> prepare(const Case& c, const std::string& dir) {
  manual_seed(1234);
  SwinTransformer model(c.cfg);
  {
    // Move every parameter off its init (LayerNorm 1/0, zero biases) so that all of
    // them matter, and make the relative position biases large enough to count.
    NoGradGuard ng;
    Generator g(99);
    for (auto& [name, p] : model.named_parameters()) {
      const bool table = name.find("relative_position_bias_table") != std::string::npos;
      Tensor noise = Tensor::randn(p.shape(), p.dtype(), &g);
      Tensor upd = add(p.detach(), mul(noise, table ? 0.5 : 0.05));
      p.copy_from(upd);
    }
  }
  Generator gi(7);
  Tensor x = Tensor::randn({c.batch, c.cfg.in_chans, c.image, c.image}, DType::F32, &gi);
  Tensor gw = Tensor::randn({c.batch, c.cfg.num_classes}, DType::F32, &gi);
  Tensor logits = model(x);
  backward(sum(mul(logits, gw)));

  StateDict sd = swin_to_torchvision(model.state_dict());
  save_safetensors(dir + "/" + c.name + ".weights.safetensors", std::map<std::string, Tensor>(sd.begin(), sd.end()));
  save_safetensors(dir + "/" + c.name + ".input.safetensors", {{"x", x}, {"g", gw}});
  nlohmann::json j = {{"patch_size", c.cfg.patch_size}, {"embed_dim", c.cfg.embed_dim},
                      {"depths", c.cfg.depths},         {"num_heads", c.cfg.num_heads},
                      {"window_size", c.cfg.window_size}, {"mlp_ratio", c.cfg.mlp_ratio},
                      {"num_classes", c.cfg.num_classes}};
  std::ofstream(dir + "/" + c.name + ".json") << j.dump();

  std::map<std::string, Tensor> ours{{"logits", logits.detach()}};
  for (auto& [name, p] : model.named_parameters()) {
    REQUIRE_MESSAGE(p.grad().defined(), "no gradient for ", name);
    ours["grad." + swin_name_to_torchvision(name)] = p.grad();
  }
  return ours;
}

}  // namespace

TEST_CASE("swin: logits and parameter gradients match torchvision 0.14") {
  if (!torch_reference_available("torch, torchvision")) return;
  const std::string dir = std::string(MEMEL_BINARY_DIR) + "/swin_parity";
  std::filesystem::create_directories(dir);

  std::vector<Case> cases;
  {
    // Padding everywhere: maps 18, 9, 5, 3 with window 4 (padded to 20, 12, 8, 4), shifted
    // blocks on padded maps, odd maps into patch merging, and an unshifted last stage.
    // torchvision's semantics for small maps (window_clamp = false).
    SwinConfig c;
    c.name = "tv-pad";
    c.img_size = 36;
    c.patch_size = 2;
    c.embed_dim = 24;
    c.depths = {2, 2, 2, 2};
    c.num_heads = {3, 6, 12, 24};
    c.window_size = 4;
    c.num_classes = 10;
    c.drop_path_rate = 0.0;
    c.window_clamp = false;
    cases.push_back({"tv_pad", c, 2, 36});
  }
  {
    // Benchmark W3's architecture (maps 16, 8, 4, 2), torchvision's small-map padding.
    SwinConfig c = SwinConfig::preset("swin-mini");
    c.drop_path_rate = 0.0;
    c.window_clamp = false;
    cases.push_back({"swin_mini", c, 2, 32});
  }
  {
    // Swin-T itself at 224 (maps 56, 28, 14, 7: clamping and torchvision agree).
    SwinConfig c = SwinConfig::preset("swin-t");
    c.drop_path_rate = 0.0;
    cases.push_back({"swin_t", c, 1, 224});
  }

  std::map<std::string, std::map<std::string, Tensor>> ours;
  std::string names;
  for (auto& c : cases) {
    ours[c.name] = prepare(c, dir);
    names += " " + c.name;
  }
  const std::string cmd = reference_python() + " " + std::string(MEMEL_SOURCE_DIR) + "/tests/python/swin_parity.py " +
                          dir + names + " > " + dir + "/python.log 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    std::ifstream lf(dir + "/python.log");
    std::string log((std::istreambuf_iterator<char>(lf)), std::istreambuf_iterator<char>());
    FAIL("swin_parity.py failed (", rc, "):\n", log);
  }

  for (auto& c : cases) {
    TensorFile ref = load_safetensors(dir + "/" + c.name + ".torch.safetensors");
    const auto& mine = ours[c.name];
    double worst_grad = 0;
    std::string worst_name;
    for (auto& [key, t] : mine) {
      auto it = ref.tensors.find(key);
      REQUIRE_MESSAGE(it != ref.tensors.end(), c.name, ": reference has no ", key);
      REQUIRE(it->second.shape() == t.shape());
      const double e = rel_err(t, it->second);
      if (key == "logits") {
        MESSAGE(c.name, ": logits relative error ", e);
        CHECK(e < 1e-5);  // float32 rounding: 4.6e-7 measured
      } else if (e > worst_grad) {
        worst_grad = e;
        worst_name = key;
      }
      CHECK_MESSAGE(e < 2e-5, c.name, ": ", key, " relative error ", e);  // 3.0e-6 measured
    }
    MESSAGE(c.name, ": worst parameter-gradient relative error ", worst_grad, " (", worst_name, ") over ",
            mine.size() - 1, " parameters");
  }
}
