// The research API: one-call loading of BERT directories and Swin checkpoints (ours, timm,
// torchvision, the authors'), mean pooling and L2 normalisation, attach_memel "paper"
// without targets for every model with a published placement.
#include <doctest/doctest.h>

#include "support.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "memel/layer.h"
#include "models/bert_weights.h"
#include "models/convgru.h"
#include "models/pretrained.h"
#include "models/small.h"
#include "tensor/tensor_io.h"

using namespace memel;

namespace {

std::string tmp_dir(const std::string& name) {
  std::string d = std::string(MEMEL_BINARY_DIR) + "/pretrained_test_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

SwinConfig tiny_swin() {
  SwinConfig c;
  c.img_size = 16;
  c.patch_size = 2;
  c.in_chans = 3;
  c.embed_dim = 12;
  c.depths = {2, 3};
  c.num_heads = {2, 4};
  c.window_size = 4;
  c.mlp_ratio = 3.0;
  c.num_classes = 5;
  c.drop_path_rate = 0.0;
  return c;
}

void perturb(Module& m, uint64_t seed) {
  NoGradGuard ng;
  Generator g(seed);
  for (auto& [name, p] : m.named_parameters()) p.copy_from(add(p.detach(), mul(Tensor::randn(p.shape(), p.dtype(), &g), 0.1)));
}

void save(const StateDict& sd, const std::string& path) {
  save_safetensors(path, std::map<std::string, Tensor>(sd.begin(), sd.end()));
}

}  // namespace

TEST_CASE("mean_pool and l2_normalize: hand values, padding ignored, gradients flow") {
  // hidden (2, 3, 2); the second sequence has one padded position holding a large value.
  Tensor h = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, /**/ 2, 0, 4, 0, 1000, 1000}, {2, 3, 2})
                 .set_requires_grad();
  Tensor mask = Tensor::from_vector(std::vector<int64_t>{1, 1, 1, 1, 1, 0}, {2, 3});
  Tensor p = mean_pool(h, mask);
  CHECK(p.shape() == Shape({2, 2}));
  CHECK(p.to_vector() == std::vector<double>{3, 4, 3, 0});
  CHECK(mean_pool(h, Tensor()).to_vector()[0] == doctest::Approx(3.0));
  Tensor n = l2_normalize(p);
  const auto v = n.to_vector();
  CHECK(v[0] == doctest::Approx(0.6));
  CHECK(v[1] == doctest::Approx(0.8));
  CHECK(v[2] == doctest::Approx(1.0));
  CHECK(v[3] == doctest::Approx(0.0));
  // A zero row stays zero (eps), no NaN.
  CHECK(l2_normalize(Tensor::zeros({1, 3})).to_vector() == std::vector<double>{0, 0, 0});
  Tensor sim = cosine_similarity_matrix(n, n);
  CHECK(sim.shape() == Shape({2, 2}));
  CHECK(sim.to_vector()[1] == doctest::Approx(0.6));
  backward(sum(p));
  // d sum(p) / d h: 1/3 on the first sequence's tokens, 1/2 on the second's valid ones, 0 on padding.
  const auto g = h.grad().to_vector();
  CHECK(g[0] == doctest::Approx(1.0 / 3));
  CHECK(g[6] == doctest::Approx(0.5));
  CHECK(g[10] == 0.0);
  CHECK(g[11] == 0.0);
  CHECK(error_of([&] { mean_pool(h, Tensor::ones({2, 4})); }) ==
        "[mean_pool] attention_mask (2, 4) does not match hidden states (2, 3, 2) (expected (B, T))");
}

TEST_CASE("load_pretrained_bert_model: a save_pretrained directory, eval mode, same outputs") {
  BertConfig c = BertConfig::preset("bert-tiny");
  c.vocab_size = 40;
  c.max_position_embeddings = 16;
  c.hidden_size = 16;
  c.num_attention_heads = 2;
  c.intermediate_size = 24;
  manual_seed(3);
  BertModel ref(c);
  perturb(ref, 4);
  ref.eval();
  const std::string dir = tmp_dir("bert");
  save_bert_pretrained(ref, c, dir);
  std::ostringstream log;
  BertPretrainedOptions o;
  o.log = &log;
  auto m = load_pretrained_bert_model(dir, o);
  CHECK_FALSE(m->is_training());
  CHECK_MESSAGE(log.str().empty(), log.str());
  CHECK(m->config().hidden_size == 16);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{2, 5, 7, 9, 3, 0}, {2, 3});
  Tensor mask = Tensor::from_vector(std::vector<int64_t>{1, 1, 1, 1, 1, 0}, {2, 3});
  CHECK(max_abs_diff(m->forward(ids, mask).last_hidden_state, ref.forward(ids, mask).last_hidden_state) == 0.0);
  // Without the pooler: the file's pooler weights are reported unused.
  o.add_pooling_layer = false;
  auto np = load_pretrained_bert_model(dir, o);
  CHECK_FALSE(np->has_pooler());
  CHECK(log.str().find("pooler.dense.weight") != std::string::npos);
  CHECK(error_of([&] { load_pretrained_bert_model(dir + "/nope"); }).find("nope/config.json") != std::string::npos);
}

TEST_CASE("infer_swin_config and load_pretrained_swin: ours, torchvision, timm >= 0.9 and authors' names") {
  const SwinConfig c = tiny_swin();
  manual_seed(5);
  SwinTransformer ref(c);
  perturb(ref, 6);
  ref.eval();
  Generator g(7);
  Tensor x = Tensor::randn({2, 3, 16, 16}, DType::F32, &g);
  Tensor want = ref(x);
  const std::string dir = tmp_dir("swin");
  StateDict ours = ref.state_dict();

  SwinConfig inf = infer_swin_config(ours);
  CHECK(inf.embed_dim == 12);
  CHECK(inf.in_chans == 3);
  CHECK(inf.patch_size == 2);
  CHECK(inf.depths == std::vector<int64_t>{2, 3});
  CHECK(inf.num_heads == std::vector<int64_t>{2, 4});
  CHECK(inf.window_size == 4);
  CHECK(inf.mlp_ratio == 3.0);
  CHECK(inf.num_classes == 5);
  CHECK(inf.qkv_bias);
  CHECK(inf.patch_norm);
  CHECK(inf.window_clamp);
  CHECK(inf.img_size == 224);  // nothing in these names says otherwise

  std::ostringstream log;
  SwinPretrainedOptions o;
  o.log = &log;
  o.img_size = 16;
  // Our file with its config as metadata: img_size comes from there.
  save_swin_weights(ref, dir + "/ours.safetensors");
  {
    SwinPretrainedOptions o2;
    o2.log = &log;
    auto m = load_pretrained_swin(dir + "/ours.safetensors", o2);
    CHECK_FALSE(m->is_training());
    CHECK(m->config().img_size == 16);
    CHECK(max_abs_diff((*m)(x), want) == 0.0);
  }
  // torchvision names (features.*): window_clamp off, the same logits at this size.
  save(swin_to_torchvision(ours), dir + "/tv.safetensors");
  {
    auto m = load_pretrained_swin(dir + "/tv.safetensors", o);
    CHECK_FALSE(m->config().window_clamp);
    CHECK(max_abs_diff((*m)(x), want) < 1e-5);
  }
  // timm >= 0.9: downsample at the start of the next stage, head.fc.
  {
    StateDict timm;
    for (auto& [k, v] : ours) {
      std::string n = k;
      if (k.rfind("layers.0.downsample.", 0) == 0) n = "layers.1.downsample." + k.substr(20);
      if (k.rfind("head.", 0) == 0) n = "head.fc." + k.substr(5);
      timm[n] = v;
    }
    save(timm, dir + "/timm.safetensors");
    auto m = load_pretrained_swin(dir + "/timm.safetensors", o);
    CHECK(max_abs_diff((*m)(x), want) == 0.0);
    // A new head for fine-tuning: 3 classes, fresh, reported.
    SwinPretrainedOptions ft = o;
    ft.num_classes = 3;
    ft.drop_path_rate = 0.1;
    auto f = load_pretrained_swin(dir + "/timm.safetensors", ft);
    CHECK(f->config().num_classes == 3);
    CHECK(f->config().drop_path_rate == 0.1);
    CHECK(log.str().find("re-initialised the classifier head") != std::string::npos);
    CHECK(max_abs_diff(f->forward_features(x), ref.forward_features(x)) == 0.0);
  }
  // The authors' files carry attn_mask buffers (windows, w*w, w*w) of the shifted blocks:
  // stage 0 of a 16 px image with patch 2 is 8x8 = 4 windows of 4x4 -> img_size 16.
  {
    StateDict authors = ours;
    authors["layers.0.blocks.1.attn_mask"] = Tensor::zeros({4, 16, 16});
    authors["layers.0.blocks.0.attn.relative_position_index"] = Tensor::zeros({16, 16}, DType::I64);
    CHECK(infer_swin_config(authors).img_size == 16);
    save(authors, dir + "/authors.safetensors");
    SwinPretrainedOptions o3;
    o3.log = &log;
    auto m = load_pretrained_swin(dir + "/authors.safetensors", o3);
    CHECK(m->config().img_size == 16);
    CHECK(max_abs_diff((*m)(x), want) == 0.0);
  }
  StateDict broken = ours;
  broken.erase("layers.0.blocks.0.attn.relative_position_bias_table");
  CHECK(error_of([&] { infer_swin_config(broken); }) ==
        "[infer_swin_config] the state dict has no 'layers.0.blocks.0.attn.relative_position_bias_table'");
}

TEST_CASE("attach_memel \"paper\" needs no targets for models with a published placement") {
  MemelOptions mo;
  mo.at = {"paper"};
  {
    manual_seed(1);
    SwinTransformer swin(SwinConfig::preset("swin-fmnist"));
    CHECK(attach_memel(swin, mo) ==
          std::vector<std::string>{"layers.2.blocks.0.memel", "layers.2.blocks.1.memel"});
  }
  {
    BertConfig c = BertConfig::preset("bert-mini");  // 4 layers -> layer 1
    BertModel bare(c);
    CHECK(attach_memel(bare, mo) == std::vector<std::string>{"encoder.layer.1.memel"});
    BertForSequenceClassification cls(c);
    CHECK(attach_memel(cls, mo) == std::vector<std::string>{"bert.encoder.layer.1.memel"});
    BertForMaskedLM mlm(c);
    CHECK(attach_memel(mlm, mo) == std::vector<std::string>{"bert.encoder.layer.1.memel"});
  }
  {
    EncoderForecaster ef(ConvGRUConfig::preset("convgru-mmnist"));
    CHECK(attach_memel(ef, mo).size() == paper_memel_targets(ef.config()).size());
    MLP mlp(MLPConfig{});
    CHECK(attach_memel(mlp, mo) == std::vector<std::string>{"act2.memel"});
  }
  {
    // Targets passed explicitly still win.
    SwinTransformer swin(SwinConfig::preset("swin-fmnist"));
    CHECK(attach_memel(swin, mo, {"layers.0.blocks.1"}) == std::vector<std::string>{"layers.0.blocks.1.memel"});
  }
  Sequential plain;
  plain.push_back(std::make_shared<Sequential>());
  CHECK(error_of([&] { attach_memel(plain, mo); }) ==
        "[memel] \"at\": \"paper\" but this model (Sequential) has no published placement; list module names "
        "instead");
}
