#pragma once
// BERT (Devlin et al. 2019) with Hugging Face's module and parameter names, so weights
// move between memel and PyTorch/transformers by name (see models/bert_weights.h):
//
//   BertModel                       embeddings.{word,position,token_type}_embeddings.weight,
//                                   embeddings.LayerNorm.{weight,bias},
//                                   encoder.layer.{i}.... (layers/transformer.h),
//                                   pooler.dense.{weight,bias}
//   BertForMaskedLM                 bert.* (no pooler, as HF) + cls.predictions.bias,
//                                   cls.predictions.transform.{dense,LayerNorm}.*; the
//                                   decoder is tied to bert.embeddings.word_embeddings
//   BertForSequenceClassification   bert.* + classifier.{weight,bias}
//
// Every forward first sets the padding mask of the memel layers in the model
// (set_memel_mask) to its attention_mask, so they skip padded tokens.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "layers/transformer.h"

namespace memel {

struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  std::string hidden_act = "gelu";  // gelu, gelu_new / gelu_tanh / gelu_pytorch_tanh, relu
  double layer_norm_eps = 1e-12;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  double initializer_range = 0.02;
  int64_t pad_token_id = 0;
  int64_t num_labels = 2;                    // sequence classification; 1 = regression (MSE)
  std::optional<double> classifier_dropout;  // null: hidden_dropout_prob
  // memel extensions (not in HF configs; written to config.json only when not default).
  bool pre_ln = false;
  bool fused_attention = true;

  // bert-tiny (2 layers / 128 hidden / 2 heads / 512 FFN), bert-mini (4/256/4/1024),
  // bert-small (4/512/8/2048), bert-medium (8/512/8/2048), bert-base (12/768/12/3072),
  // bert-large (24/1024/16/4096); all with vocab 30522, 512 positions, 2 token types.
  static BertConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();
  // A Hugging Face config.json object (or a preset's fields overridden by one). Unknown
  // keys are ignored; a known key with a wrong type is an error naming it. num_labels is
  // read from "num_labels" or else from the size of "id2label".
  static BertConfig from_json(const nlohmann::json& j, const std::string& where = "config.json");
  BertConfig& update(const nlohmann::json& j, const std::string& where = "config.json");
  static BertConfig from_file(const std::string& path);
  // A config.json Hugging Face reads ("model_type": "bert", id2label/label2id, ...).
  nlohmann::json to_json() const;
  void save(const std::string& path) const;
  void validate() const;  // throws naming the bad field
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  TransformerLayerOptions layer_options(Generator* gen = nullptr) const;
};

// Where the paper places memel layers in BERT, as module paths under `prefix` ("bert."
// for the *ForX models, "" for a bare BertModel). Rule: layers [L/3, 2L/3) (integer
// division) of the L encoder layers, at least one: for 12 layers that is layers 4..7
// ("bert.encoder.layer.4" ... ".7"), for 4 layers layer 1, for 2 layers layer 0.
std::vector<std::string> paper_memel_targets(const BertConfig& cfg, const std::string& prefix = "bert.");

// Hugging Face's BERT init: Linear and Embedding weights N(0, initializer_range), biases
// 0 (cls.predictions.bias too), LayerNorm weight 1 / bias 0, the padding row of the word
// embeddings 0. Applies to every parameter of `m` by its name.
void init_bert_weights(Module& m, const BertConfig& cfg, Generator* gen = nullptr);

class BertEmbeddings : public Module {
 public:
  explicit BertEmbeddings(const BertConfig& cfg, Generator* gen = nullptr);
  using Module::forward;
  // ids (B, T) int; token_type_ids (B, T) or undefined (all 0) -> (B, T, C).
  Tensor forward(const Tensor& input_ids, const Tensor& token_type_ids);
  const Tensor& word_embeddings_weight() const;

 private:
  BertConfig cfg_;
  std::shared_ptr<Module> word_, position_, token_type_, ln_, drop_;
};

struct BertModelOutput {
  Tensor last_hidden_state;  // (B, T, C)
  Tensor pooler_output;      // (B, C), undefined without a pooler
};

class BertModel : public Module {
 public:
  explicit BertModel(const BertConfig& cfg, bool add_pooling_layer = true, Generator* gen = nullptr);
  using Module::forward;
  // input_ids (B, T) int32/int64; attention_mask (B, T) with 1 = token, 0 = padding
  // (undefined: all tokens); token_type_ids (B, T) or undefined (all segment 0).
  BertModelOutput forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                          const Tensor& token_type_ids = Tensor());
  const BertConfig& config() const { return cfg_; }
  // The paper's placement for a bare encoder ("encoder.layer.i", see below).
  std::vector<std::string> paper_memel_targets() const override;
  BertEmbeddings& embeddings() { return *embeddings_; }
  TransformerEncoder& encoder() { return *encoder_; }
  bool has_pooler() const { return pooler_ != nullptr; }

 private:
  BertConfig cfg_;
  std::shared_ptr<BertEmbeddings> embeddings_;
  std::shared_ptr<TransformerEncoder> encoder_;
  std::shared_ptr<Module> pooler_;  // "pooler.dense"
};

struct BertHeadOutput {
  Tensor loss;    // scalar, undefined without labels
  Tensor logits;  // (B, T, vocab) for MLM, (B, num_labels) for classification
};

class BertForMaskedLM : public Module {
 public:
  explicit BertForMaskedLM(const BertConfig& cfg, Generator* gen = nullptr);
  using Module::forward;
  // labels (B, T) int: the token to predict, -100 where no loss is taken.
  BertHeadOutput forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                         const Tensor& token_type_ids = Tensor(), const Tensor& labels = Tensor());
  // The same loss as forward(..., labels), with the prediction head run only at the N
  // positions whose label is not -100 (pretraining masks ~15%, so the (N, vocab) decoder
  // product costs ~1/7 of the full one): logits (N, vocab), rows in row-major order of
  // those positions. With no labelled position the loss is 0 (still part of the graph).
  BertHeadOutput forward_labelled(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& token_type_ids,
                                  const Tensor& labels);
  BertModel& bert() { return *bert_; }
  const BertConfig& config() const { return cfg_; }
  std::vector<std::string> paper_memel_targets() const override;  // "bert.encoder.layer.i"

 private:
  Tensor head(const Tensor& hidden);  // (..., C) -> (..., vocab)
  BertConfig cfg_;
  std::shared_ptr<BertModel> bert_;
  std::shared_ptr<Module> transform_dense_, transform_ln_;
  Tensor bias_;  // cls.predictions.bias (vocab)
  ActivationFn act_;
};

class BertForSequenceClassification : public Module {
 public:
  explicit BertForSequenceClassification(const BertConfig& cfg, Generator* gen = nullptr);
  using Module::forward;
  // labels (B): class ids (int) for num_labels > 1 (cross-entropy), targets (float) for
  // num_labels = 1 (regression, mean squared error), as Hugging Face.
  BertHeadOutput forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                         const Tensor& token_type_ids = Tensor(), const Tensor& labels = Tensor());
  BertModel& bert() { return *bert_; }
  const BertConfig& config() const { return cfg_; }
  std::vector<std::string> paper_memel_targets() const override;  // "bert.encoder.layer.i"

 private:
  BertConfig cfg_;
  std::shared_ptr<BertModel> bert_;
  std::shared_ptr<Module> drop_, classifier_;
};

}  // namespace memel
