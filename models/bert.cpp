#include "models/bert.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/json_int.h"
#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "memel/layer.h"

namespace memel {

// --- configuration ----------------------------------------------------------------------

namespace {

int64_t json_int(const nlohmann::json& v, const std::string& key) {
  return json_int64_checked(v, true, "[bert config] ", key, ": expected an integer");
}
double json_num(const nlohmann::json& v, const std::string& key) {
  MEMEL_CHECK(v.is_number(), "[bert config] ", key, ": expected a number, got ", v.dump());
  return v.get<double>();
}
bool json_bool(const nlohmann::json& v, const std::string& key) {
  MEMEL_CHECK(v.is_boolean(), "[bert config] ", key, ": expected true or false, got ", v.dump());
  return v.get<bool>();
}
std::string json_str(const nlohmann::json& v, const std::string& key) {
  MEMEL_CHECK(v.is_string(), "[bert config] ", key, ": expected a string, got ", v.dump());
  return v.get<std::string>();
}

struct Preset {
  const char* name;
  int64_t layers, hidden, heads, ffn;
};
constexpr Preset kPresets[] = {
    {"bert-tiny", 2, 128, 2, 512},    {"bert-mini", 4, 256, 4, 1024},   {"bert-small", 4, 512, 8, 2048},
    {"bert-medium", 8, 512, 8, 2048}, {"bert-base", 12, 768, 12, 3072}, {"bert-large", 24, 1024, 16, 4096},
};

}  // namespace

BertConfig BertConfig::preset(const std::string& name) {
  for (const Preset& p : kPresets) {
    if (name != p.name) continue;
    BertConfig c;
    c.num_hidden_layers = p.layers;
    c.hidden_size = p.hidden;
    c.num_attention_heads = p.heads;
    c.intermediate_size = p.ffn;
    return c;
  }
  std::string all;
  for (const Preset& p : kPresets) all += (all.empty() ? "" : ", ") + std::string(p.name);
  MEMEL_FAIL("[bert config] unknown preset '", name, "' (known: ", all, ")");
}

std::vector<std::string> BertConfig::preset_names() {
  std::vector<std::string> r;
  for (const Preset& p : kPresets) r.push_back(p.name);
  return r;
}

BertConfig BertConfig::from_json(const nlohmann::json& j, const std::string& where) {
  BertConfig c;
  c.update(j, where);
  return c;
}

BertConfig& BertConfig::update(const nlohmann::json& j, const std::string& where) {
  MEMEL_CHECK(j.is_object(), "[bert config] ", where, ": expected a JSON object, got ", j.type_name());
  bool have_num_labels = false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const nlohmann::json& v = it.value();
    const std::string key = where + ": " + k;
    if (k == "vocab_size") vocab_size = json_int(v, key);
    else if (k == "hidden_size") hidden_size = json_int(v, key);
    else if (k == "num_hidden_layers") num_hidden_layers = json_int(v, key);
    else if (k == "num_attention_heads") num_attention_heads = json_int(v, key);
    else if (k == "intermediate_size") intermediate_size = json_int(v, key);
    else if (k == "max_position_embeddings") max_position_embeddings = json_int(v, key);
    else if (k == "type_vocab_size") type_vocab_size = json_int(v, key);
    else if (k == "hidden_act") hidden_act = json_str(v, key);
    else if (k == "layer_norm_eps") layer_norm_eps = json_num(v, key);
    else if (k == "hidden_dropout_prob") hidden_dropout_prob = json_num(v, key);
    else if (k == "attention_probs_dropout_prob") attention_probs_dropout_prob = json_num(v, key);
    else if (k == "initializer_range") initializer_range = json_num(v, key);
    else if (k == "pad_token_id") pad_token_id = v.is_null() ? 0 : json_int(v, key);
    else if (k == "classifier_dropout") {
      if (v.is_null()) classifier_dropout.reset();
      else classifier_dropout = json_num(v, key);
    } else if (k == "num_labels") {
      num_labels = json_int(v, key);
      have_num_labels = true;
    } else if (k == "id2label") {
      MEMEL_CHECK(v.is_object(), "[bert config] ", key, ": expected an object, got ", v.dump());
      if (!have_num_labels && !j.contains("num_labels")) num_labels = static_cast<int64_t>(v.size());
    } else if (k == "position_embedding_type") {
      const std::string s = json_str(v, key);
      MEMEL_CHECK(s == "absolute", "[bert config] ", key, ": only \"absolute\" position embeddings are supported, got \"",
                  s, "\"");
    } else if (k == "pre_ln") pre_ln = json_bool(v, key);
    else if (k == "fused_attention") fused_attention = json_bool(v, key);
    // Every other key (architectures, model_type, transformers_version, ...) is ignored.
  }
  validate();
  return *this;
}

BertConfig BertConfig::from_file(const std::string& path) {
  std::ifstream f(path);
  MEMEL_CHECK(f.good(), "[bert config] cannot open '", path, "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    MEMEL_FAIL("[bert config] '", path, "' is not valid JSON: ", e.what());
  }
  return from_json(j, path);
}

nlohmann::json BertConfig::to_json() const {
  nlohmann::json j;
  j["model_type"] = "bert";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["hidden_act"] = hidden_act;
  j["layer_norm_eps"] = layer_norm_eps;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["initializer_range"] = initializer_range;
  j["pad_token_id"] = pad_token_id;
  j["position_embedding_type"] = "absolute";
  j["classifier_dropout"] = classifier_dropout ? nlohmann::json(*classifier_dropout) : nlohmann::json(nullptr);
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (int64_t i = 0; i < num_labels; ++i) {
    id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
    label2id["LABEL_" + std::to_string(i)] = i;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  if (pre_ln) j["pre_ln"] = true;
  if (!fused_attention) j["fused_attention"] = false;
  return j;
}

void BertConfig::save(const std::string& path) const {
  std::ofstream f(path);
  MEMEL_CHECK(f.good(), "[bert config] cannot write '", path, "'");
  f << to_json().dump(2) << "\n";
  MEMEL_CHECK(f.good(), "[bert config] write to '", path, "' failed");
}

void BertConfig::validate() const {
  auto pos = [](int64_t v, const char* name) {
    MEMEL_CHECK(v > 0, "[bert config] ", name, " must be positive, got ", v);
  };
  pos(vocab_size, "vocab_size");
  pos(hidden_size, "hidden_size");
  pos(num_attention_heads, "num_attention_heads");
  pos(intermediate_size, "intermediate_size");
  pos(max_position_embeddings, "max_position_embeddings");
  pos(type_vocab_size, "type_vocab_size");
  pos(num_labels, "num_labels");
  MEMEL_CHECK(num_hidden_layers >= 0, "[bert config] num_hidden_layers must be non-negative, got ", num_hidden_layers);
  MEMEL_CHECK(hidden_size % num_attention_heads == 0, "[bert config] hidden_size ", hidden_size,
              " is not a multiple of num_attention_heads ", num_attention_heads);
  activation_by_name(hidden_act, "bert config: hidden_act");
  auto prob = [](double p, const char* name) {
    MEMEL_CHECK(p >= 0.0 && p < 1.0, "[bert config] ", name, " must be in [0, 1), got ", p);
  };
  prob(hidden_dropout_prob, "hidden_dropout_prob");
  prob(attention_probs_dropout_prob, "attention_probs_dropout_prob");
  if (classifier_dropout) prob(*classifier_dropout, "classifier_dropout");
  MEMEL_CHECK(layer_norm_eps > 0.0, "[bert config] layer_norm_eps must be positive, got ", layer_norm_eps);
  MEMEL_CHECK(initializer_range >= 0.0, "[bert config] initializer_range must be non-negative, got ",
              initializer_range);
  MEMEL_CHECK(pad_token_id >= 0 && pad_token_id < vocab_size, "[bert config] pad_token_id ", pad_token_id,
              " is outside the vocabulary [0, ", vocab_size, ")");
}

TransformerLayerOptions BertConfig::layer_options(Generator* gen) const {
  TransformerLayerOptions o;
  o.hidden_size = hidden_size;
  o.num_heads = num_attention_heads;
  o.intermediate_size = intermediate_size;
  o.activation = hidden_act;
  o.layer_norm_eps = layer_norm_eps;
  o.hidden_dropout = hidden_dropout_prob;
  o.attention_dropout = attention_probs_dropout_prob;
  o.pre_ln = pre_ln;
  o.fused_attention = fused_attention;
  o.dropout_generator = gen;
  return o;
}

std::vector<std::string> paper_memel_targets(const BertConfig& cfg, const std::string& prefix) {
  const int64_t L = cfg.num_hidden_layers;
  MEMEL_CHECK(L > 0, "[bert] paper_memel_targets: the model has no encoder layers");
  int64_t lo = L / 3, hi = (2 * L) / 3;
  if (hi <= lo) hi = lo + 1;
  std::vector<std::string> r;
  for (int64_t i = lo; i < hi; ++i) r.push_back(prefix + "encoder.layer." + std::to_string(i));
  return r;
}

std::vector<std::string> BertModel::paper_memel_targets() const { return memel::paper_memel_targets(cfg_, ""); }
std::vector<std::string> BertForMaskedLM::paper_memel_targets() const {
  return memel::paper_memel_targets(cfg_, "bert.");
}
std::vector<std::string> BertForSequenceClassification::paper_memel_targets() const {
  return memel::paper_memel_targets(cfg_, "bert.");
}

// --- initialisation -------------------------------------------------------------------

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

void init_bert_weights(Module& m, const BertConfig& cfg, Generator* gen) {
  NoGradGuard ng;
  for (auto& [name, p] : m.named_parameters()) {
    if (ends_with(name, "LayerNorm.weight")) init::ones_(p);
    else if (ends_with(name, "LayerNorm.bias") || ends_with(name, "bias")) init::zeros_(p);
    else init::normal_(p, 0.0, cfg.initializer_range, gen);
    if (ends_with(name, "word_embeddings.weight") && cfg.pad_token_id < p.size(0))
      select(p.detach(), 0, cfg.pad_token_id).zero_();
  }
}

// --- embeddings, model -------------------------------------------------------------------

BertEmbeddings::BertEmbeddings(const BertConfig& cfg, Generator* gen) : Module("BertEmbeddings"), cfg_(cfg) {
  word_ = register_module("word_embeddings",
                          std::make_shared<Embedding>(cfg.vocab_size, cfg.hidden_size, cfg.pad_token_id));
  position_ = register_module("position_embeddings",
                              std::make_shared<Embedding>(cfg.max_position_embeddings, cfg.hidden_size));
  token_type_ = register_module("token_type_embeddings",
                                std::make_shared<Embedding>(cfg.type_vocab_size, cfg.hidden_size));
  ln_ = register_module("LayerNorm", std::make_shared<LayerNorm>(cfg.hidden_size, cfg.layer_norm_eps));
  drop_ = register_module("dropout", std::make_shared<Dropout>(cfg.hidden_dropout_prob, gen));
}

const Tensor& BertEmbeddings::word_embeddings_weight() const {
  return static_cast<const Embedding&>(*word_).weight();
}

Tensor BertEmbeddings::forward(const Tensor& ids, const Tensor& token_type_ids) {
  MEMEL_CHECK(ids.dim() == 2, "[BertEmbeddings] input_ids must be (B, T), got ", shape_str(ids.shape()));
  const int64_t B = ids.size(0), T = ids.size(1);
  MEMEL_CHECK(T <= cfg_.max_position_embeddings, "[BertEmbeddings] sequence length ", T,
              " exceeds max_position_embeddings ", cfg_.max_position_embeddings);
  Tensor tt = token_type_ids;
  if (tt.defined())
    MEMEL_CHECK(tt.shape() == ids.shape(), "[BertEmbeddings] token_type_ids ", shape_str(tt.shape()),
                " do not match input_ids ", shape_str(ids.shape()));
  else
    tt = Tensor::zeros({B, T}, DType::I64, ids.device());
  Tensor pos = Tensor::arange(T, DType::I64).to(ids.device());                  // (T)
  Tensor h = add(add((*word_)(ids), (*token_type_)(tt)), (*position_)(pos));  // (B, T, C)
  return output((*drop_)((*ln_)(h)));
}

BertModel::BertModel(const BertConfig& cfg, bool add_pooling_layer, Generator* gen) : Module("BertModel"), cfg_(cfg) {
  cfg.validate();
  embeddings_ = register_module("embeddings", std::make_shared<BertEmbeddings>(cfg, gen));
  encoder_ = register_module("encoder", std::make_shared<TransformerEncoder>(cfg.num_hidden_layers,
                                                                               cfg.layer_options(gen)));
  if (add_pooling_layer) {
    pooler_ = register_module("pooler", std::make_shared<Module>("BertPooler"));
    pooler_->register_module("dense", std::make_shared<Linear>(cfg.hidden_size, cfg.hidden_size));
  }
  init_bert_weights(*this, cfg, nullptr);
}

BertModelOutput BertModel::forward(const Tensor& ids, const Tensor& attention_mask, const Tensor& token_type_ids) {
  if (attention_mask.defined())
    MEMEL_CHECK(attention_mask.shape() == ids.shape(), "[BertModel] attention_mask ",
                shape_str(attention_mask.shape()), " does not match input_ids ", shape_str(ids.shape()));
  set_memel_mask(*this, attention_mask);  // memel layers skip padded tokens
  Tensor h = embeddings_->forward(ids, token_type_ids);  // (B, T, C)
  Tensor am = attention_mask.defined() ? padding_mask_to_additive(attention_mask, h.dtype()) : Tensor();
  BertModelOutput out;
  // Wrappers attached to the model itself see (and may change) the hidden states.
  out.last_hidden_state = output(encoder_->forward(h, am));  // (B, T, C)
  if (pooler_) {
    Tensor cls = select(out.last_hidden_state, 1, 0);          // (B, C)
    out.pooler_output = tanh((*pooler_->find("dense"))(cls));  // (B, C)
  }
  return out;
}

// --- heads ------------------------------------------------------------------------------

BertForMaskedLM::BertForMaskedLM(const BertConfig& cfg, Generator* gen)
    : Module("BertForMaskedLM"), cfg_(cfg), act_(activation_by_name(cfg.hidden_act)) {
  bert_ = register_module("bert", std::make_shared<BertModel>(cfg, false, gen));
  auto cls = register_module("cls", std::make_shared<Module>("BertOnlyMLMHead"));
  auto pred = cls->register_module("predictions", std::make_shared<Module>("BertLMPredictionHead"));
  auto transform = pred->register_module("transform", std::make_shared<Module>("BertPredictionHeadTransform"));
  transform_dense_ = transform->register_module("dense", std::make_shared<Linear>(cfg.hidden_size, cfg.hidden_size));
  transform_ln_ = transform->register_module("LayerNorm", std::make_shared<LayerNorm>(cfg.hidden_size,
                                                                                      cfg.layer_norm_eps));
  bias_ = pred->register_parameter("bias", Tensor::zeros({cfg.vocab_size}));
  init_bert_weights(*cls, cfg, nullptr);
}

Tensor BertForMaskedLM::head(const Tensor& hidden) {
  Tensor h = (*transform_ln_)(act_((*transform_dense_)(hidden)));  // (..., C)
  // Decoder tied to the word embeddings: (..., C) x (V, C)^T + bias -> (..., V)
  return linear(h, bert_->embeddings().word_embeddings_weight(), bias_);
}

BertHeadOutput BertForMaskedLM::forward(const Tensor& ids, const Tensor& attention_mask, const Tensor& token_type_ids,
                                        const Tensor& labels) {
  BertModelOutput base = bert_->forward(ids, attention_mask, token_type_ids);
  BertHeadOutput out;
  out.logits = head(base.last_hidden_state);  // (B, T, V)
  if (labels.defined()) {
    MEMEL_CHECK(labels.shape() == ids.shape(), "[BertForMaskedLM] labels ", shape_str(labels.shape()),
                " do not match input_ids ", shape_str(ids.shape()));
    out.loss = cross_entropy(reshape(out.logits, {-1, cfg_.vocab_size}), reshape(labels, {-1}), -100);
  }
  return out;
}

BertHeadOutput BertForMaskedLM::forward_labelled(const Tensor& ids, const Tensor& attention_mask,
                                                 const Tensor& token_type_ids, const Tensor& labels) {
  MEMEL_CHECK(labels.defined() && labels.shape() == ids.shape(), "[BertForMaskedLM] labels ",
              labels.defined() ? shape_str(labels.shape()) : std::string("(undefined)"), " do not match input_ids ",
              shape_str(ids.shape()));
  MEMEL_CHECK(labels.dtype() == DType::I64 || labels.dtype() == DType::I32,
              "[BertForMaskedLM] labels must be integer token ids, got ", dtype_name(labels.dtype()));
  BertModelOutput base = bert_->forward(ids, attention_mask, token_type_ids);
  const std::vector<int64_t> lab = labels.to_vector_as<int64_t>();
  std::vector<int64_t> rows, targets;
  for (size_t i = 0; i < lab.size(); ++i)
    if (lab[i] != -100) {
      rows.push_back(static_cast<int64_t>(i));
      targets.push_back(lab[i]);
    }
  const int64_t N = static_cast<int64_t>(rows.size());
  BertHeadOutput out;
  if (N == 0) {
    out.logits = Tensor::zeros({0, cfg_.vocab_size});
    out.loss = mul(sum(base.last_hidden_state), 0.0);
    return out;
  }
  Tensor flat = reshape(base.last_hidden_state, {-1, cfg_.hidden_size});           // (B*T, C)
  Tensor picked = embedding(flat, Tensor::from_vector(rows, {N}));                // (N, C), gather with gradient
  out.logits = head(picked);                                                      // (N, V)
  out.loss = cross_entropy(out.logits, Tensor::from_vector(targets, {N}), -100);
  return out;
}

BertForSequenceClassification::BertForSequenceClassification(const BertConfig& cfg, Generator* gen)
    : Module("BertForSequenceClassification"), cfg_(cfg) {
  bert_ = register_module("bert", std::make_shared<BertModel>(cfg, true, gen));
  drop_ = register_module("dropout", std::make_shared<Dropout>(cfg.classifier_dropout.value_or(cfg.hidden_dropout_prob),
                                                               gen));
  classifier_ = register_module("classifier", std::make_shared<Linear>(cfg.hidden_size, cfg.num_labels));
  init_bert_weights(*classifier_, cfg, nullptr);
}

BertHeadOutput BertForSequenceClassification::forward(const Tensor& ids, const Tensor& attention_mask,
                                                      const Tensor& token_type_ids, const Tensor& labels) {
  BertModelOutput base = bert_->forward(ids, attention_mask, token_type_ids);
  BertHeadOutput out;
  out.logits = (*classifier_)((*drop_)(base.pooler_output));  // (B, num_labels)
  if (labels.defined()) {
    const int64_t B = ids.size(0);
    MEMEL_CHECK(labels.numel() == B, "[BertForSequenceClassification] expected ", B, " labels, got ",
                shape_str(labels.shape()));
    if (cfg_.num_labels == 1) {
      Tensor t = reshape(labels, {B}).to_dtype(out.logits.dtype());
      out.loss = mse_loss(reshape(out.logits, {B}), t.detach());
    } else {
      MEMEL_CHECK(labels.dtype() == DType::I64 || labels.dtype() == DType::I32,
                  "[BertForSequenceClassification] classification labels must be integer class ids, got ",
                  dtype_name(labels.dtype()), " (num_labels = 1 means regression)");
      out.loss = cross_entropy(out.logits, reshape(labels, {B}));
    }
  }
  return out;
}

}  // namespace memel
