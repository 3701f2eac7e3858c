// Swin Transformer: building blocks, config, names, weights, memel placement.
// (Numerical parity with torchvision is in test_swin_parity.cpp.)
#include <doctest/doctest.h>

#include "support.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "autograd/gradcheck.h"
#include "memel/layer.h"
#include "models/swin.h"
#include "tensor/tensor_io.h"

using namespace memel;

namespace {

SwinConfig tiny_config() {
  SwinConfig c;
  c.img_size = 16;
  c.patch_size = 2;
  c.in_chans = 3;
  c.embed_dim = 12;
  c.depths = {2, 2};
  c.num_heads = {2, 4};
  c.window_size = 4;
  c.num_classes = 5;
  c.drop_path_rate = 0.0;
  return c;
}

}  // namespace

TEST_CASE("swin: relative position index as the reference (w = 2)") {
  Tensor idx = swin_relative_position_index(2);
  CHECK(idx.shape() == Shape({4, 4}));
  // torch: Swin's get_relative_position_index(2, 2)
  std::vector<double> expect = {4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4};
  CHECK(idx.to_vector() == expect);
  Tensor i7 = swin_relative_position_index(7);
  std::vector<double> v = i7.to_vector();
  CHECK(*std::max_element(v.begin(), v.end()) == 168);  // (2*7-1)^2 - 1
  CHECK(v[0] == 84);                                    // the centre: zero displacement
}

TEST_CASE("swin: shifted-window mask") {
  // 4x4 map, window 2, shift 1: windows (0,0) one region; (1,1) four regions.
  Tensor m = swin_attention_mask(4, 4, 2, 1, 1);
  REQUIRE(m.shape() == Shape({4, 4, 4}));
  std::vector<double> v = m.to_vector();
  for (int i = 0; i < 16; ++i) CHECK(v[i] == 0.0);
  int masked = 0;
  for (int i = 48; i < 64; ++i) masked += v[i] == -100.0;
  CHECK(masked == 12);  // 4 tokens in 4 regions: only the diagonal is unmasked
  // No shift along an axis: only the other axis splits.
  Tensor m2 = swin_attention_mask(2, 4, 2, 0, 1);
  std::vector<double> v2 = m2.to_vector();
  // window 1 (cols 2-3): col 2 region 1, col 3 region 2 -> tokens (0,0),(1,0) vs (0,1),(1,1)
  CHECK(v2[16 + 0 * 4 + 1] == -100.0);
  CHECK(v2[16 + 0 * 4 + 2] == 0.0);
  CHECK_THROWS_WITH_AS(swin_attention_mask(5, 4, 2, 1, 1), doctest::Contains("multiple of the window"), Error);
}

TEST_CASE("swin: window partition and reverse are inverse") {
  Generator g(1);
  Tensor x = Tensor::randn({2, 8, 12, 3}, DType::F32, &g);
  Tensor w = window_partition(x, 4);
  CHECK(w.shape() == Shape({2 * 2 * 3, 16, 3}));
  // Window 1 of image 0 = rows 0-3, cols 4-7; its token 5 = (1, 1) -> x[0, 1, 5, :].
  CHECK(max_abs_diff(select(select(w, 0, 1), 0, 5), select(select(select(x, 0, 0), 0, 1), 0, 5)) == 0.0);
  CHECK(max_abs_diff(window_reverse(w, 4, 8, 12), x) == 0.0);
  CHECK_THROWS_AS(window_partition(x, 5), Error);
}

TEST_CASE("swin: one-copy shifted window gather/scatter equal roll + partition / reverse + roll") {
  Generator g(2);
  for (int64_t sh : {0, 1, 3})
    for (int64_t sw : {0, 2}) {
      Tensor x = Tensor::randn({2, 8, 12, 3}, DType::F32, &g);
      Tensor ref = window_partition(roll(x, {-sh, -sw}, {1, 2}), 4);
      Tensor w = swin_window_gather(x, 4, sh, sw);
      CHECK(w.shape() == ref.shape());
      CHECK(max_abs_diff(w, ref) == 0.0);
      Tensor back = swin_window_scatter(w, 4, sh, sw, 8, 12);
      CHECK(max_abs_diff(back, x) == 0.0);
      CHECK(max_abs_diff(back, roll(window_reverse(ref, 4, 8, 12), {sh, sw}, {1, 2})) == 0.0);
    }
  CHECK_THROWS_AS(swin_window_gather(Tensor::zeros({1, 8, 8, 2}), 3, 0, 0), Error);
  CHECK_THROWS_AS(swin_window_scatter(Tensor::zeros({3, 16, 2}), 4, 0, 0, 8, 8), Error);
}

TEST_CASE("swin: fused window attention equals the op-by-op path, values and gradients") {
  for (DType dt : {DType::F32, DType::F64}) {
    Generator g(5);
    const int64_t BW = 6, N = 9, heads = 3, C = 12;
    Tensor qkv = Tensor::randn({BW, N, 3 * C}, dt, &g).set_requires_grad();
    Tensor bias = Tensor::randn({heads, N, N}, dt, &g).set_requires_grad();
    Tensor mask = swin_attention_mask(3, 6, 3, 1, 1, dt);  // nW 2
    Tensor w = Tensor::randn({BW, N, C}, dt, &g);
    Tensor y1 = swin_window_attention(qkv, bias, mask, heads, 0.5);
    backward(sum(mul(y1, w)));
    Tensor gq1 = qkv.grad(), gb1 = bias.grad();
    qkv.zero_grad();
    bias.zero_grad();
    Tensor y2 = swin_window_attention_unfused(qkv, bias, mask, heads, 0.5);
    backward(sum(mul(y2, w)));
    const double tol = dt == DType::F32 ? 1e-5 : 1e-12;
    CHECK(max_abs_diff(y1, y2) < tol);
    CHECK(max_abs_diff(gq1, qkv.grad()) < tol);
    CHECK(max_abs_diff(gb1, bias.grad()) < tol);
  }
}

TEST_CASE("swin: fused attention gradient by finite differences, any thread count the same") {
  Generator g(9);
  Tensor qkv = Tensor::uniform({4, 4, 12}, -1, 1, DType::F64, &g).set_requires_grad();
  Tensor bias = Tensor::uniform({2, 4, 4}, -1, 1, DType::F64, &g).set_requires_grad();
  Tensor mask = swin_attention_mask(2, 4, 2, 1, 1, DType::F64);
  auto r = autograd::gradcheck(
      [&](const autograd::TensorList& x) { return swin_window_attention(x[0], x[1], mask, 2, 0.5); }, {qkv, bias});
  CHECK_MESSAGE(r.ok, r.message);
  CHECK_THROWS_WITH_AS(swin_window_attention(qkv, bias, Tensor(), 5, 1.0), doctest::Contains("heads"), Error);
  CHECK_THROWS_WITH_AS(swin_window_attention(qkv, select(bias, 0, 0), Tensor(), 2, 1.0),
                       doctest::Contains("bias must be"), Error);
}

TEST_CASE("swin: drop_path is per sample, scaled, deterministic") {
  Tensor x = Tensor::ones({64, 2, 3});
  Generator g1(3), g2(3);
  Tensor a = drop_path(x, 0.25, true, &g1), b = drop_path(x, 0.25, true, &g2);
  CHECK(max_abs_diff(a, b) == 0.0);
  std::vector<double> v = a.to_vector();
  int dropped = 0;
  for (int s = 0; s < 64; ++s) {
    const double first = v[s * 6];
    CHECK((first == 0.0 || std::abs(first - 1.0 / 0.75) < 1e-6));
    for (int k = 1; k < 6; ++k) CHECK(v[s * 6 + k] == first);
    dropped += first == 0.0;
  }
  CHECK(dropped > 4);
  CHECK(dropped < 30);
  CHECK(drop_path(x, 0.25, false).same_storage(x));
}

TEST_CASE("swin: presets, windows, parameter counts") {
  // torchvision's published parameter counts (same model, no buffers).
  CHECK(SwinTransformer(SwinConfig::preset("swin-t")).num_parameters() == 28288354);
  SwinConfig m = SwinConfig::preset("swin-mini");
  CHECK(m.stage_resolutions() == std::vector<int64_t>{16, 8, 4, 2});
  CHECK(m.stage_window(0) == 4);
  CHECK(m.block_shift(0, 1) == 2);
  CHECK(m.stage_window(2) == 4);
  CHECK(m.block_shift(2, 1) == 0);  // map == window: no shift
  CHECK(m.stage_window(3) == 2);    // map < window: window = map
  m.window_clamp = false;
  CHECK(m.stage_window(3) == 4);
  SwinConfig f = SwinConfig::preset("swin-fmnist");
  CHECK(f.stage_resolutions() == std::vector<int64_t>{14, 7, 4});
  SwinTransformer fm(f);
  MESSAGE("swin-fmnist parameters: ", fm.num_parameters());
  CHECK_THROWS_WITH_AS(SwinConfig::preset("swin-x"), doctest::Contains("swin-fmnist"), Error);
}

TEST_CASE("swin: forward shapes, odd input sizes, names") {
  manual_seed(0);
  SwinTransformer model(tiny_config());
  Generator g(2);
  CHECK(model(Tensor::randn({2, 3, 16, 16}, DType::F32, &g)).shape() == Shape({2, 5}));
  // Another size than the windows were built for is refused, naming both sizes.
  CHECK_THROWS_WITH_AS(model(Tensor::randn({1, 3, 32, 32}, DType::F32, &g)),
                       doctest::Contains("images of 32x32, but the model's windows were built for img_size 16x16 "
                                         "(stage windows: 4 shifted, 4); resize the images to 16x16 or build the "
                                         "model with img_size = 32"),
                       Error);
  CHECK_THROWS_WITH_AS(model(Tensor::randn({1, 3, 22, 18}, DType::F32, &g)), doctest::Contains("images of 22x18"),
                       Error);
  {
    // strict_img_size = false: any size runs with the windows as built.
    SwinConfig c = tiny_config();
    c.strict_img_size = false;
    CHECK(SwinConfig::from_json(c.to_json()).strict_img_size == false);
    CHECK(SwinConfig::from_json({{"strict_img_size", false}}).strict_img_size == false);
    CHECK(SwinConfig{}.strict_img_size);
    manual_seed(0);
    SwinTransformer loose(c);
    CHECK(loose(Tensor::randn({1, 3, 22, 18}, DType::F32, &g)).shape() == Shape({1, 5}));  // 11x9 map: padded
  }
  CHECK(model.forward_tokens(Tensor::randn({1, 3, 16, 16}, DType::F32, &g)).shape() == Shape({1, 4, 4, 24}));
  CHECK_THROWS_WITH_AS(model(Tensor::randn({1, 1, 16, 16}, DType::F32, &g)), doctest::Contains("expected images"),
                       Error);

  StateDict sd = model.state_dict();
  for (const char* k : {"patch_embed.proj.weight", "patch_embed.proj.bias", "patch_embed.norm.weight",
                        "layers.0.blocks.1.attn.relative_position_bias_table", "layers.0.blocks.0.attn.qkv.weight",
                        "layers.0.blocks.0.attn.qkv.bias", "layers.0.blocks.0.attn.proj.bias",
                        "layers.0.blocks.1.mlp.fc1.weight", "layers.0.blocks.1.mlp.fc2.bias",
                        "layers.1.blocks.0.norm2.weight", "layers.0.downsample.reduction.weight",
                        "layers.0.downsample.norm.bias", "norm.weight", "head.weight", "head.bias"})
    CHECK_MESSAGE(sd.count(k), k);
  CHECK(sd.count("layers.0.blocks.0.attn.relative_position_index") == 0);  // non-persistent
  CHECK(sd.count("layers.0.downsample.reduction.bias") == 0);
  CHECK(sd.count("layers.1.downsample.norm.weight") == 0);  // no merging after the last stage
  CHECK(sd.at("layers.0.downsample.norm.weight").shape() == Shape({48}));
  CHECK(sd.at("layers.0.downsample.reduction.weight").shape() == Shape({24, 48}));
  CHECK(sd.at("layers.1.blocks.0.attn.relative_position_bias_table").shape() == Shape({49, 4}));  // map 4 = window 4
}

TEST_CASE("swin: fused and op-by-op models agree, eval and training with drop path") {
  SwinConfig c = tiny_config();
  c.drop_path_rate = 0.3;
  manual_seed(4);
  SwinTransformer a(c);
  manual_seed(4);
  SwinTransformer b(c);
  b.set_fused_attention(false);
  Generator g(3);
  Tensor x = Tensor::randn({3, 3, 16, 16}, DType::F32, &g);
  CHECK(max_abs_diff(a(x), b(x)) < 1e-5);  // training: same drop-path draws (same seed)
  a.eval();
  b.eval();
  CHECK(max_abs_diff(a(x), b(x)) < 1e-5);
}

TEST_CASE("swin: torchvision and timm>=0.9 names") {
  CHECK(swin_name_to_torchvision("patch_embed.proj.weight") == "features.0.0.weight");
  CHECK(swin_name_to_torchvision("patch_embed.norm.bias") == "features.0.2.bias");
  CHECK(swin_name_to_torchvision("layers.2.blocks.5.mlp.fc1.weight") == "features.5.5.mlp.0.weight");
  CHECK(swin_name_to_torchvision("layers.0.blocks.1.mlp.fc2.bias") == "features.1.1.mlp.3.bias");
  CHECK(swin_name_to_torchvision("layers.1.blocks.0.attn.relative_position_bias_table") ==
        "features.3.0.attn.relative_position_bias_table");
  CHECK(swin_name_to_torchvision("layers.2.downsample.reduction.weight") == "features.6.reduction.weight");
  CHECK(swin_name_to_torchvision("head.weight") == "head.weight");
  manual_seed(0);
  SwinTransformer model(tiny_config());
  StateDict sd = model.state_dict();
  StateDict back = swin_from_torchvision(swin_to_torchvision(sd));
  CHECK(back.size() == sd.size());
  for (auto& [k, v] : sd) CHECK_MESSAGE(back.count(k), k);
  CHECK(detect_swin_naming(swin_to_torchvision(sd)) == SwinNaming::Torchvision);
  CHECK(detect_swin_naming(sd) == SwinNaming::Authors);

  StateDict timm;
  for (auto& [k, v] : sd) {
    std::string n = k;
    if (n.rfind("layers.0.downsample.", 0) == 0) n = "layers.1.downsample." + n.substr(20);
    if (n.rfind("head.", 0) == 0) n = "head.fc." + n.substr(5);
    timm[n] = v;
  }
  CHECK(detect_swin_naming(timm) == SwinNaming::TimmNew);
  StateDict conv = swin_from_timm_new(timm);
  CHECK(conv.size() == sd.size());
  for (auto& [k, v] : sd) CHECK_MESSAGE(conv.count(k), k);
}

TEST_CASE("swin: loading weights: names converted, buffers ignored, new head re-initialised") {
  const std::string dir = std::string(MEMEL_BINARY_DIR) + "/swin_weights";
  std::filesystem::create_directories(dir);
  manual_seed(1);
  SwinConfig c = tiny_config();
  SwinTransformer src(c);
  save_swin_weights(src, dir + "/src.safetensors");

  // Same architecture, torchvision names, with the buffers the authors' files carry.
  {
    manual_seed(2);
    SwinTransformer dst(c);
    StateDict sd = swin_to_torchvision(src.state_dict());
    sd["features.1.0.attn.relative_position_index"] = swin_relative_position_index(4);
    sd["features.1.1.attn_mask"] = swin_attention_mask(8, 8, 4, 2, 2);
    std::ostringstream log;
    SwinLoadReport r = load_swin_weights(dst, sd, true, &log);
    CHECK(r.naming == SwinNaming::Torchvision);
    CHECK(r.ignored.size() == 2);
    CHECK(r.reinitialized.empty());
    for (auto& [k, v] : src.state_dict()) CHECK_MESSAGE(max_abs_diff(v, dst.state_dict().at(k)) == 0.0, k);
  }
  // A 5-class file into a 3-class model: only the head is re-initialised, and it says so.
  {
    SwinConfig c3 = c;
    c3.num_classes = 3;
    manual_seed(3);
    SwinTransformer dst(c3);
    std::ostringstream log;
    SwinLoadReport r = load_swin_weights(dst, dir + "/src.safetensors", true, &log);
    CHECK(r.reinitialized == std::vector<std::string>{"head.weight", "head.bias"});
    CHECK(log.str().find("re-initialised the classifier head") != std::string::npos);
    CHECK(log.str().find("head.weight") != std::string::npos);
    StateDict a = src.state_dict(), b = dst.state_dict();
    CHECK(max_abs_diff(a.at("layers.1.blocks.1.mlp.fc2.weight"), b.at("layers.1.blocks.1.mlp.fc2.weight")) == 0.0);
    CHECK(b.at("head.weight").shape() == Shape({3, 24}));
    CHECK(max_abs_diff(b.at("head.bias"), Tensor::zeros({3})) == 0.0);
  }
  // Missing or mis-shaped tensors elsewhere are errors.
  {
    SwinConfig c2 = c;
    c2.embed_dim = 24;
    c2.num_heads = {3, 6};
    SwinTransformer dst(c2);
    CHECK_THROWS_WITH_AS(load_swin_weights(dst, dir + "/src.safetensors"), doctest::Contains("shape mismatch"),
                         Error);
  }
}

TEST_CASE("swin: paper memel placement and wrapping block outputs") {
  CHECK(paper_memel_targets(SwinConfig::preset("swin-t")) ==
        std::vector<std::string>{"layers.2.blocks.1", "layers.2.blocks.2", "layers.2.blocks.3", "layers.2.blocks.4"});
  auto s = paper_memel_targets(SwinConfig::preset("swin-s"));
  CHECK(s.front() == "layers.2.blocks.7");
  CHECK(s.back() == "layers.2.blocks.10");
  CHECK(paper_memel_targets(SwinConfig::preset("swin-b")).size() == 4);
  CHECK(paper_memel_targets(SwinConfig::preset("swin-fmnist")) ==
        std::vector<std::string>{"layers.2.blocks.0", "layers.2.blocks.1"});
  CHECK(paper_memel_targets(tiny_config()) == std::vector<std::string>{"layers.1.blocks.0", "layers.1.blocks.1"});

  SwinConfig c = SwinConfig::preset("swin-fmnist");
  c.depths = {1, 1, 2};
  c.embed_dim = 12;
  manual_seed(0);
  SwinTransformer model(c);
  MemelOptions o;
  o.at = {"paper"};
  auto names = attach_memel(model, o, paper_memel_targets(model));
  REQUIRE(names.size() == 2);
  auto layers = memel_layers(model);
  REQUIRE(layers.size() == 2);
  Generator g(0);
  Tensor x = Tensor::randn({4, 1, 28, 28}, DType::F32, &g);
  backward(sum(model(x)));
  CHECK(layers[0].second->initialized());
  CHECK(layers[0].second->neuron_shape() == Shape({4, 4, 48}));  // (H, W, C) tokens x channels
}

TEST_CASE("swin: config from JSON") {
  SwinConfig c = SwinConfig::from_json(nlohmann::json::parse(
      R"({"preset": "swin-t", "num_classes": 10, "img_size": [112, 112], "drop_path_rate": 0.1})"));
  CHECK(c.embed_dim == 96);
  CHECK(c.num_classes == 10);
  CHECK(c.img_size == 112);
  CHECK(c.name == "swin-t");
  SwinConfig back = SwinConfig::from_json(c.to_json());
  CHECK(back.to_json() == c.to_json());
  CHECK_THROWS_WITH_AS(SwinConfig::from_json(nlohmann::json::parse(R"({"embed_dims": 3})")),
                       doctest::Contains("unknown Swin config key \"embed_dims\""), Error);
  CHECK_THROWS_WITH_AS(SwinConfig::from_json(nlohmann::json::parse(R"({"depths": [2, 2], "num_heads": [3]})")),
                       doctest::Contains("num_heads"), Error);
  CHECK_THROWS_WITH_AS(SwinConfig::from_json(nlohmann::json::parse(R"({"embed_dim": 10, "num_heads": [3, 6, 12, 24]})")),
                       doctest::Contains("not divisible"), Error);
  CHECK_THROWS_WITH_AS(SwinConfig::from_json(nlohmann::json::parse(R"({"window_size": [7, 8]})")),
                       doctest::Contains("square"), Error);
}
