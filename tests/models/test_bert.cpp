// BERT: configs and presets, Hugging Face names and init, weight loading reports and
// round trips, heads (tied MLM decoder, regression), memel placement and padding mask,
// fused and unfused attention giving the same training step.
#include <doctest/doctest.h>

#include "support.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "memel/layer.h"
#include "models/bert.h"
#include "models/bert_weights.h"
#include "tensor/tensor_io.h"

using namespace memel;
using nlohmann::json;

namespace {

BertConfig tiny(int64_t vocab = 50) {
  BertConfig c = BertConfig::preset("bert-tiny");
  c.vocab_size = vocab;
  c.max_position_embeddings = 16;
  c.hidden_size = 16;
  c.num_attention_heads = 2;
  c.intermediate_size = 24;
  return c;
}

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> r;
  for (auto& [n, p] : m.named_parameters()) r.push_back(n);
  return r;
}

struct Batch {
  Tensor ids, mask, tt;
};
Batch batch(int64_t vocab, uint64_t seed = 1) {
  const int64_t B = 2, T = 6;
  Generator g(seed);
  std::vector<int64_t> ids(B * T), mask(B * T, 1), tt(B * T, 0);
  for (auto& v : ids) v = g.randint(1, vocab);
  for (int64_t t = 4; t < T; ++t) mask[T + t] = 0, ids[T + t] = 0;
  for (int64_t t = 3; t < T; ++t) tt[t] = 1;
  return {Tensor::from_vector(ids, {B, T}), Tensor::from_vector(mask, {B, T}), Tensor::from_vector(tt, {B, T})};
}

std::string tmp_dir(const std::string& name) {
  std::string d = std::string(MEMEL_BINARY_DIR) + "/bert_test_" + name;
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("BertConfig: presets, config.json fields, errors naming the key") {
  BertConfig m = BertConfig::preset("bert-mini");
  CHECK(m.num_hidden_layers == 4);
  CHECK(m.hidden_size == 256);
  CHECK(m.num_attention_heads == 4);
  CHECK(m.intermediate_size == 1024);
  CHECK(m.vocab_size == 30522);
  CHECK(m.max_position_embeddings == 512);
  CHECK(m.type_vocab_size == 2);
  BertConfig t = BertConfig::preset("bert-tiny"), s = BertConfig::preset("bert-small"), b = BertConfig::preset("bert-base");
  CHECK((t.num_hidden_layers == 2 && t.hidden_size == 128 && t.num_attention_heads == 2 && t.intermediate_size == 512));
  CHECK((s.num_hidden_layers == 4 && s.hidden_size == 512 && s.num_attention_heads == 8 && s.intermediate_size == 2048));
  CHECK((b.num_hidden_layers == 12 && b.hidden_size == 768 && b.num_attention_heads == 12 && b.intermediate_size == 3072));
  CHECK_THROWS_WITH(BertConfig::preset("bert-huge"), doctest::Contains("bert-mini"));

  // A config.json as transformers writes it: unknown keys ignored, id2label gives num_labels.
  json j = json::parse(R"({"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": false, "hidden_act": "gelu_new", "hidden_dropout_prob": 0.2, "hidden_size": 256,
    "initializer_range": 0.02, "intermediate_size": 1024, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
    "model_type": "bert", "num_attention_heads": 4, "num_hidden_layers": 4, "pad_token_id": 0,
    "position_embedding_type": "absolute", "transformers_version": "4.30.0", "type_vocab_size": 2,
    "use_cache": true, "vocab_size": 30522, "classifier_dropout": null,
    "id2label": {"0": "NEG", "1": "NEU", "2": "POS"}})");
  BertConfig c = BertConfig::from_json(j);
  CHECK(c.hidden_act == "gelu_new");
  CHECK(c.hidden_dropout_prob == 0.2);
  CHECK(c.num_labels == 3);
  CHECK(!c.classifier_dropout);
  // to_json -> from_json round trip.
  BertConfig c2 = BertConfig::from_json(c.to_json());
  CHECK(c2.to_json() == c.to_json());
  CHECK(c.to_json()["id2label"].size() == 3);

  CHECK_THROWS_WITH(BertConfig::from_json(json{{"hidden_size", "256"}}), doctest::Contains("hidden_size"));
  CHECK_THROWS_WITH(BertConfig::from_json(json{{"layer_norm_eps", true}}), doctest::Contains("layer_norm_eps"));
  CHECK_THROWS_WITH(BertConfig::from_json(json{{"num_hidden_layers", 2.5}}), doctest::Contains("num_hidden_layers"));
  CHECK_THROWS_WITH(BertConfig::from_json(json{{"hidden_act", "swish"}}), doctest::Contains("hidden_act"));
  CHECK_THROWS_WITH(BertConfig::from_json(json{{"hidden_size", 100}}), doctest::Contains("num_attention_heads"));
  CHECK_THROWS_WITH(BertConfig::from_json(json{{"position_embedding_type", "relative_key"}}),
                    doctest::Contains("position_embedding_type"));
  CHECK_THROWS_WITH(BertConfig::from_json(json::array()), doctest::Contains("object"));
}

TEST_CASE("paper_memel_targets: layers [L/3, 2L/3)") {
  CHECK(paper_memel_targets(BertConfig::preset("bert-base")) ==
        std::vector<std::string>{"bert.encoder.layer.4", "bert.encoder.layer.5", "bert.encoder.layer.6",
                                 "bert.encoder.layer.7"});
  CHECK(paper_memel_targets(BertConfig::preset("bert-mini")) == std::vector<std::string>{"bert.encoder.layer.1"});
  CHECK(paper_memel_targets(BertConfig::preset("bert-tiny"), "") == std::vector<std::string>{"encoder.layer.0"});
  CHECK(paper_memel_targets(BertConfig::preset("bert-large")).size() == 8);
}

TEST_CASE("BertModel: Hugging Face names, parameter count, init") {
  // prajjwal1/bert-mini (BertModel with pooler, vocab 30522) has 11,170,560 parameters;
  // a vocabulary of 1000 (faster to build) removes 29522 rows of 256.
  BertConfig mini = BertConfig::preset("bert-mini");
  mini.vocab_size = 1000;
  BertModel m(mini);
  CHECK(m.num_parameters() == 11170560 - 29522 * 256);
  std::vector<std::string> n = names_of(m);
  REQUIRE(n.size() == 5 + 16 * 4 + 2);
  CHECK(std::vector<std::string>(n.begin(), n.begin() + 6) ==
        std::vector<std::string>{"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                                 "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
                                 "embeddings.LayerNorm.bias", "encoder.layer.0.attention.self.query.weight"});
  CHECK(n[n.size() - 3] == "encoder.layer.3.output.LayerNorm.bias");
  CHECK(n[n.size() - 2] == "pooler.dense.weight");
  CHECK(n.back() == "pooler.dense.bias");
  // Init: N(0, 0.02) weights, zero biases, LayerNorm 1/0, padding row 0.
  StateDict sd = m.state_dict();
  std::vector<double> w = sd["encoder.layer.0.intermediate.dense.weight"].to_vector();
  double s2 = 0;
  for (double v : w) s2 += v * v;
  CHECK(std::abs(std::sqrt(s2 / double(w.size())) - 0.02) < 0.001);
  for (double v : sd["encoder.layer.0.intermediate.dense.bias"].to_vector()) CHECK(v == 0.0);
  for (double v : sd["embeddings.LayerNorm.weight"].to_vector()) CHECK(v == 1.0);
  for (double v : select(sd["embeddings.word_embeddings.weight"], 0, 0).to_vector()) CHECK(v == 0.0);

  BertForMaskedLM mlm(tiny());
  std::vector<std::string> mn = names_of(mlm);
  CHECK(mn.front() == "bert.embeddings.word_embeddings.weight");
  CHECK(std::find(mn.begin(), mn.end(), "bert.pooler.dense.weight") == mn.end());  // no pooler, as HF
  CHECK(std::vector<std::string>(mn.end() - 5, mn.end()) ==
        std::vector<std::string>{"cls.predictions.bias", "cls.predictions.transform.dense.weight",
                                 "cls.predictions.transform.dense.bias",
                                 "cls.predictions.transform.LayerNorm.weight",
                                 "cls.predictions.transform.LayerNorm.bias"});
  BertForSequenceClassification sc(tiny());
  std::vector<std::string> sn = names_of(sc);
  CHECK(sn[sn.size() - 4] == "bert.pooler.dense.weight");
  CHECK(sn[sn.size() - 2] == "classifier.weight");
  CHECK(sc.state_dict()["classifier.weight"].shape() == Shape{2, 16});
}

TEST_CASE("BertForMaskedLM: decoder tied to the word embeddings") {
  BertConfig cfg = tiny();
  manual_seed(3);
  BertForMaskedLM m(cfg);
  m.eval();
  Batch b = batch(cfg.vocab_size);
  std::vector<int64_t> lab(12, -100);
  lab[1] = 5;
  lab[7] = 9;
  BertHeadOutput o = m.forward(b.ids, b.mask, b.tt, Tensor::from_vector(lab, {2, 6}));
  CHECK(o.logits.shape() == Shape{2, 6, cfg.vocab_size});
  backward(o.loss);
  // Row 33 of the word embeddings is never looked up (ids drawn below 50 may hit it, so
  // pick an id absent from the batch): its gradient comes from the decoder alone.
  std::vector<int64_t> idv = b.ids.to_vector_as<int64_t>();
  int64_t unused = 1;
  while (std::find(idv.begin(), idv.end(), unused) != idv.end()) ++unused;
  std::vector<double> g = select(m.bert().embeddings().word_embeddings_weight().grad(), 0, unused).to_vector();
  double norm = 0;
  for (double v : g) norm += std::abs(v);
  CHECK(norm > 0);
  // Changing the embedding row changes that token's logit.
  Tensor before = o.logits.detach();
  {
    NoGradGuard ng;
    Tensor w = m.bert().embeddings().word_embeddings_weight();
    select(w.detach(), 0, unused).fill_(0.5);
  }
  Tensor after = m.forward(b.ids, b.mask, b.tt).logits;
  CHECK(std::abs(select(select(select(after, 0, 0), 0, 0), 0, unused).item() -
                 select(select(select(before, 0, 0), 0, 0), 0, unused).item()) > 1e-4);
}

TEST_CASE("BertForMaskedLM: forward_labelled gives forward's loss, logits and gradients at the labelled rows") {
  BertConfig cfg = tiny();
  cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0;
  manual_seed(4);
  BertForMaskedLM m(cfg);
  Batch b = batch(cfg.vocab_size);
  std::vector<int64_t> lab(12, -100);
  lab[1] = 5;
  lab[3] = 17;
  lab[7] = 9;
  const Tensor labels = Tensor::from_vector(lab, {2, 6});
  BertHeadOutput full = m.forward(b.ids, b.mask, b.tt, labels);
  backward(full.loss);
  std::map<std::string, std::vector<double>> g_full;
  for (auto& [n, p] : m.named_parameters()) g_full[n] = p.grad().to_vector();
  m.zero_grad();
  BertHeadOutput part = m.forward_labelled(b.ids, b.mask, b.tt, labels);
  CHECK(part.logits.shape() == Shape{3, cfg.vocab_size});
  CHECK(part.loss.item() == doctest::Approx(full.loss.item()).epsilon(1e-6));
  const Tensor flat = reshape(full.logits, {12, cfg.vocab_size});
  CHECK(max_abs_diff(select(part.logits, 0, 2), select(flat, 0, 7)) < 1e-5);
  CHECK(max_abs_diff(select(part.logits, 0, 1), select(flat, 0, 3)) < 1e-5);
  backward(part.loss);
  for (auto& [n, p] : m.named_parameters()) {
    const std::vector<double> g = p.grad().to_vector();
    double d = 0, s = 0;
    for (size_t i = 0; i < g.size(); ++i) d = std::max(d, std::abs(g[i] - g_full[n][i])), s = std::max(s, std::abs(g_full[n][i]));
    CHECK_MESSAGE(d <= 1e-5 * std::max(s, 1e-3), n);
  }
  // No labelled position: loss 0, still differentiable.
  BertHeadOutput none = m.forward_labelled(b.ids, b.mask, b.tt, Tensor::from_vector(std::vector<int64_t>(12, -100), {2, 6}));
  CHECK(none.loss.item() == 0.0);
  CHECK(none.logits.shape() == Shape{0, cfg.vocab_size});
  backward(none.loss);
}

TEST_CASE("BertForSequenceClassification: cross-entropy, and regression (num_labels = 1) with MSE") {
  BertConfig cfg = tiny();
  cfg.num_labels = 1;
  manual_seed(4);
  BertForSequenceClassification m(cfg);
  m.eval();
  Batch b = batch(cfg.vocab_size);
  Tensor target = Tensor::from_vector(std::vector<float>{0.5f, -1.0f}, {2});
  BertHeadOutput o = m.forward(b.ids, b.mask, b.tt, target);
  CHECK(o.logits.shape() == Shape{2, 1});
  std::vector<double> l = o.logits.to_vector();
  const double mse = ((l[0] - 0.5) * (l[0] - 0.5) + (l[1] + 1.0) * (l[1] + 1.0)) / 2;
  CHECK(o.loss.item() == doctest::Approx(mse).epsilon(1e-5));
  cfg.num_labels = 2;
  BertForSequenceClassification c2(cfg);
  CHECK_THROWS_WITH(c2.forward(b.ids, b.mask, b.tt, target), doctest::Contains("integer class ids"));
  BertHeadOutput o2 = c2.forward(b.ids, b.mask, b.tt, Tensor::from_vector(std::vector<int64_t>{1, 0}, {2}));
  CHECK(std::isfinite(o2.loss.item()));
  // Padding does not leak: changing a padded token's id changes nothing for that sequence.
  Batch b2 = b;
  std::vector<int64_t> ids = b.ids.to_vector_as<int64_t>();
  ids[11] = 7;
  b2.ids = Tensor::from_vector(ids, {2, 6});
  c2.eval();
  CHECK(max_abs_diff(c2.forward(b.ids, b.mask, b.tt).logits, c2.forward(b2.ids, b.mask, b.tt).logits) < 1e-6);
}

TEST_CASE("bert weights: HF-style reports, prefixes, gamma/beta, mismatches, round trip") {
  BertConfig cfg = tiny();
  manual_seed(5);
  BertModel backbone(cfg);
  // A bare backbone checkpoint with TF-era LayerNorm names and position_ids.
  StateDict sd;
  for (auto& [n, t] : backbone.state_dict()) {
    std::string k = n;
    if (k.size() > 16 && k.compare(k.size() - 16, 16, "LayerNorm.weight") == 0) k = k.substr(0, k.size() - 6) + "gamma";
    if (k.size() > 14 && k.compare(k.size() - 14, 14, "LayerNorm.bias") == 0) k = k.substr(0, k.size() - 4) + "beta";
    sd[k] = t.detach().contiguous_copy();
  }
  sd["embeddings.position_ids"] = unsqueeze(Tensor::arange(16), 0);
  manual_seed(6);
  BertForSequenceClassification cls(cfg);
  BertLoadReport r = load_bert_state_dict(cls, sd);
  CHECK(r.newly_initialized == std::vector<std::string>{"classifier.bias", "classifier.weight"});
  CHECK(r.unused.empty());
  CHECK(r.ignored == std::vector<std::string>{"embeddings.position_ids"});
  CHECK(r.str("BertForSequenceClassification", "ckpt").find("newly initialized: [classifier.bias, classifier.weight]") !=
        std::string::npos);
  StateDict got = cls.state_dict();
  for (auto& [n, t] : backbone.state_dict()) {
    INFO(n);
    CHECK(max_abs_diff(got["bert." + n], t) == 0.0);
  }

  // An MLM checkpoint (with the tied decoder keys HF may write) into a classifier: cls.*
  // unused, decoder keys too (no MLM head here); into an MLM model: decoder keys ignored.
  manual_seed(7);
  BertForMaskedLM mlm(cfg);
  StateDict msd = mlm.state_dict();
  msd["cls.predictions.decoder.weight"] = msd["bert.embeddings.word_embeddings.weight"];
  msd["cls.predictions.decoder.bias"] = msd["cls.predictions.bias"];
  BertLoadReport r2 = load_bert_state_dict(cls, msd);
  CHECK(r2.unused.size() == 7);
  CHECK(r2.newly_initialized == std::vector<std::string>{"bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                                         "classifier.bias", "classifier.weight"});
  BertForMaskedLM mlm2(cfg);
  BertLoadReport r3 = load_bert_state_dict(mlm2, msd);
  CHECK(r3.unused.empty());
  CHECK(r3.newly_initialized.empty());
  CHECK(r3.ignored.size() == 2);
  // Into a bare BertModel: "bert." stripped, cls.* unused, pooler new.
  BertModel bare(cfg);
  BertLoadReport r4 = load_bert_state_dict(bare, msd);
  CHECK(r4.newly_initialized == std::vector<std::string>{"pooler.dense.bias", "pooler.dense.weight"});
  CHECK(r4.unused.size() == 7);

  // Shape mismatch: an error naming the tensor and both shapes.
  BertConfig other = cfg;
  other.vocab_size = 60;
  BertForSequenceClassification wrong(other);
  CHECK_THROWS_WITH(load_bert_state_dict(wrong, sd),
                    doctest::Contains("bert.embeddings.word_embeddings.weight: checkpoint (50, 16) vs model (60, 16)"));

  // save_bert_pretrained -> fresh model -> same outputs; the file carries "format": "pt".
  const std::string dir = tmp_dir("roundtrip");
  save_bert_pretrained(cls, cfg, dir);
  json cj = json::parse(std::ifstream(dir + "/config.json"));
  CHECK(cj["architectures"][0] == "BertForSequenceClassification");
  TensorFile f = load_safetensors(dir + "/model.safetensors");
  CHECK(f.metadata["format"] == "pt");
  CHECK(f.tensors.size() == cls.state_dict().size());
  BertConfig cfg2 = BertConfig::from_file(dir + "/config.json");
  manual_seed(8);
  BertForSequenceClassification cls2(cfg2);
  BertLoadReport r5 = load_bert_pretrained(cls2, dir);
  CHECK(r5.newly_initialized.empty());
  CHECK(r5.unused.empty());
  CHECK(r5.loaded == int64_t(cls.state_dict().size()));
  cls.eval();
  cls2.eval();
  Batch b = batch(cfg.vocab_size);
  CHECK(max_abs_diff(cls.forward(b.ids, b.mask, b.tt).logits, cls2.forward(b.ids, b.mask, b.tt).logits) == 0.0);
}

TEST_CASE("memel on BERT: paper placement wraps whole layers, padded tokens kept out") {
  BertConfig cfg = tiny();
  cfg.num_hidden_layers = 3;
  manual_seed(9);
  BertForSequenceClassification m(cfg);
  MemelOptions o;
  o.at = {"paper"};
  o.warmup = 0;
  std::vector<std::string> made = attach_memel(m, o, paper_memel_targets(cfg));
  CHECK(made == std::vector<std::string>{"bert.encoder.layer.1.memel"});
  Batch b = batch(cfg.vocab_size);
  m.train();
  BertHeadOutput out = m.forward(b.ids, b.mask, b.tt, Tensor::from_vector(std::vector<int64_t>{0, 1}, {2}));
  backward(out.loss);
  auto layers = memel_layers(m);
  REQUIRE(layers.size() == 1);
  const auto& layer = layers[0].second;
  REQUIRE(layer->initialized());
  CHECK(layer->neuron_shape() == Shape{6, 16});  // element neurons of the (B, T, C) block output
  // Positions 4 and 5 are padding in sequence 1: those neurons counted one sample, the others two.
  std::vector<double> count = layer->stats().count.to_vector();
  CHECK(count[0 * 16] == 2.0);
  CHECK(count[3 * 16 + 5] == 2.0);
  CHECK(count[4 * 16] == 1.0);
  CHECK(count[5 * 16 + 15] == 1.0);
  // The memel state is not part of an HF export unless asked for.
  const std::string dir = tmp_dir("memel");
  save_bert_weights(m, dir + "/plain.safetensors");
  save_bert_weights(m, dir + "/full.safetensors", true);
  CHECK(load_safetensors(dir + "/plain.safetensors").tensors.size() == names_of(m).size());
  CHECK(load_safetensors(dir + "/full.safetensors").tensors.size() > names_of(m).size());
  // ... and a model with a memel layer loads a full file back, memel state included.
  manual_seed(10);
  BertForSequenceClassification m2(cfg);
  attach_memel(m2, o, paper_memel_targets(cfg));
  BertLoadReport r = load_bert_weights(m2, dir + "/full.safetensors");
  CHECK(r.newly_initialized.empty());
  CHECK(r.unused.empty());
  CHECK(max_abs_diff(memel_layers(m2)[0].second->stats().count, layer->stats().count) == 0.0);
}

TEST_CASE("BERT training step: fused and unfused attention agree with dropout on") {
  BertConfig cfg = tiny();
  cfg.hidden_dropout_prob = 0.1;
  cfg.attention_probs_dropout_prob = 0.2;
  Batch b = batch(cfg.vocab_size);
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{1, 0}, {2});
  std::vector<double> losses;
  std::vector<Tensor> grads;
  for (bool fused : {true, false}) {
    cfg.fused_attention = fused;
    manual_seed(11);
    BertForSequenceClassification m(cfg);
    m.train();
    manual_seed(12);
    BertHeadOutput o = m.forward(b.ids, b.mask, b.tt, labels);
    backward(o.loss);
    losses.push_back(o.loss.item());
    grads.push_back(m.state_dict()["bert.encoder.layer.0.attention.self.query.weight"].grad());
    for (auto& [n, p] : m.named_parameters()) {
      INFO(n);
      CHECK(p.grad().defined());
    }
  }
  CHECK(losses[0] == doctest::Approx(losses[1]).epsilon(1e-5));
  CHECK(max_abs_diff(grads[0], grads[1]) < 1e-5);
}
