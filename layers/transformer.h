#pragma once
// Transformer encoder layer and stack with Hugging Face BERT's module names, so weights
// load by name:
//
//   layer.{i}.attention.self.{query,key,value}     MultiHeadSelfAttention
//   layer.{i}.attention.output.{dense,LayerNorm}   ResidualOutput (dense C -> C)
//   layer.{i}.intermediate.dense                   Intermediate (dense C -> F, activation)
//   layer.{i}.output.{dense,LayerNorm}             ResidualOutput (dense F -> C)
//
// Post-LN (BERT, the default):
//   h = LN_a(x + drop(dense_a(attn(x))));   y = LN_o(h + drop(dense_o(act(dense_i(h)))))
// Pre-LN (pre_ln = true; the same parameters, each LayerNorm moved to its block's input):
//   h = x + drop(dense_a(attn(LN_a(x))));   y = h + drop(dense_o(act(dense_i(LN_o(h)))))
// where LN_a = attention.output.LayerNorm and LN_o = output.LayerNorm. A pre-LN stack
// usually wants a final LayerNorm after the last layer; add it in the model.
//
// The layer's own result y passes through Module::output(), so a wrapper (a memel layer)
// attached at "encoder.layer.4" sees the whole block output (B, T, C) after its last
// LayerNorm (post-LN) or residual sum (pre-LN).
#include <string>

#include "layers/attention.h"

namespace memel {

struct TransformerLayerOptions {
  int64_t hidden_size = 768;
  int64_t num_heads = 12;
  int64_t intermediate_size = 3072;
  // "gelu" (erf form), "gelu_new" / "gelu_tanh" / "gelu_pytorch_tanh" (tanh approximation), "relu".
  std::string activation = "gelu";
  double layer_norm_eps = 1e-12;
  double hidden_dropout = 0.1;     // after each dense output projection
  double attention_dropout = 0.1;  // on the attention probabilities
  bool pre_ln = false;
  bool fused_attention = true;
  Generator* dropout_generator = nullptr;  // default_generator() when null
};

// The activation function named as in Hugging Face configs; throws for unknown names.
using ActivationFn = Tensor (*)(const Tensor&);
ActivationFn activation_by_name(const std::string& name, const std::string& where = "hidden_act");

// dense -> dropout -> (+ residual) with a LayerNorm after the sum (post-LN) or none here
// (pre-LN: the owner applies LayerNorm to the block's input). Children "dense", "LayerNorm".
class ResidualOutput : public Module {
 public:
  ResidualOutput(int64_t in_features, int64_t hidden_size, double eps, double dropout, bool pre_ln,
                 Generator* gen = nullptr);
  using Module::forward;
  Tensor forward(const Tensor& h, const Tensor& residual);  // h (..., in), residual (..., C) -> (..., C)
  Module& layer_norm() { return *ln_; }

 private:
  std::shared_ptr<Module> dense_, ln_, drop_;
  bool pre_ln_;
};

// Children "self" (MultiHeadSelfAttention) and "output" (ResidualOutput).
class AttentionBlock : public Module {
 public:
  explicit AttentionBlock(const TransformerLayerOptions& o);
  using Module::forward;
  Tensor forward(const Tensor& x, const Tensor& mask);  // (B, T, C) -> (B, T, C)
  MultiHeadSelfAttention& self_attention() { return *self_; }

 private:
  std::shared_ptr<MultiHeadSelfAttention> self_;
  std::shared_ptr<ResidualOutput> out_;
  bool pre_ln_;
};

// act(dense(x)); child "dense".
class Intermediate : public Module {
 public:
  Intermediate(int64_t hidden_size, int64_t intermediate_size, const std::string& activation);
  Tensor forward(const Tensor& x) override;  // (..., C) -> (..., F)

 private:
  std::shared_ptr<Module> dense_;
  ActivationFn act_;
  std::string act_name_;
};

class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(const TransformerLayerOptions& o);
  using Module::forward;
  // x (B, T, C); mask: (B, T) padding mask or additive rank-4 mask (see attention.h).
  Tensor forward(const Tensor& x, const Tensor& mask);
  std::string extra_repr() const override;
  AttentionBlock& attention() { return *attention_; }

 private:
  TransformerLayerOptions opts_;
  std::shared_ptr<AttentionBlock> attention_;
  std::shared_ptr<Intermediate> intermediate_;
  std::shared_ptr<ResidualOutput> out_;
};

// A stack of layers named "layer.0", "layer.1", ... (Hugging Face's BertEncoder).
class TransformerEncoder : public Module {
 public:
  TransformerEncoder(int64_t num_layers, const TransformerLayerOptions& o);
  using Module::forward;
  // A (B, T) padding mask is converted to the additive form once for all layers.
  Tensor forward(const Tensor& x, const Tensor& mask);
  size_t size() const { return layers_.size(); }
  TransformerEncoderLayer& layer(size_t i) { return *layers_.at(i); }
  // Uses the fused attention op (true) or the unfused reference (false) in every layer.
  void set_fused_attention(bool fused);

 private:
  std::vector<std::shared_ptr<TransformerEncoderLayer>> layers_;
};

}  // namespace memel
