#include "layers/transformer.h"

#include "layers/dropout.h"
#include "layers/layer_util.h"
#include "layers/linear.h"
#include "layers/norm.h"

namespace memel {

ActivationFn activation_by_name(const std::string& name, const std::string& where) {
  if (name == "gelu") return [](const Tensor& x) { return gelu(x); };
  if (name == "gelu_new" || name == "gelu_tanh" || name == "gelu_pytorch_tanh")
    return [](const Tensor& x) { return gelu_tanh(x); };
  if (name == "relu") return [](const Tensor& x) { return relu(x); };
  MEMEL_FAIL("[", where, "] unknown activation '", name, "'; expected gelu, gelu_new, gelu_tanh, "
             "gelu_pytorch_tanh or relu");
}

ResidualOutput::ResidualOutput(int64_t in_features, int64_t hidden_size, double eps, double dropout, bool pre_ln,
                               Generator* gen)
    : Module("ResidualOutput"), pre_ln_(pre_ln) {
  dense_ = register_module("dense", std::make_shared<Linear>(in_features, hidden_size));
  ln_ = register_module("LayerNorm", std::make_shared<LayerNorm>(hidden_size, eps));
  drop_ = register_module("dropout", std::make_shared<Dropout>(dropout, gen));
}

Tensor ResidualOutput::forward(const Tensor& h, const Tensor& residual) {
  Tensor y = add((*drop_)((*dense_)(h)), residual);  // (..., C)
  if (!pre_ln_) y = (*ln_)(y);
  return output(y);
}

AttentionBlock::AttentionBlock(const TransformerLayerOptions& o) : Module("AttentionBlock"), pre_ln_(o.pre_ln) {
  self_ = register_module("self", std::make_shared<MultiHeadSelfAttention>(o.hidden_size, o.num_heads,
                                                                            o.attention_dropout, o.fused_attention,
                                                                            o.dropout_generator));
  out_ = register_module("output", std::make_shared<ResidualOutput>(o.hidden_size, o.hidden_size, o.layer_norm_eps,
                                                                     o.hidden_dropout, o.pre_ln,
                                                                     o.dropout_generator));
}

Tensor AttentionBlock::forward(const Tensor& x, const Tensor& mask) {
  Tensor in = pre_ln_ ? out_->layer_norm()(x) : x;
  return output(out_->forward(self_->forward(in, mask), x));  // (B, T, C)
}

Intermediate::Intermediate(int64_t hidden_size, int64_t intermediate_size, const std::string& activation)
    : Module("Intermediate"), act_(activation_by_name(activation)), act_name_(activation) {
  dense_ = register_module("dense", std::make_shared<Linear>(hidden_size, intermediate_size));
}

Tensor Intermediate::forward(const Tensor& x) { return act_((*dense_)(x)); }  // (..., F)

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerLayerOptions& o)
    : Module("TransformerEncoderLayer"), opts_(o) {
  MEMEL_CHECK(o.intermediate_size > 0, "[TransformerEncoderLayer] intermediate size must be positive, got ",
              o.intermediate_size);
  MEMEL_CHECK(o.hidden_dropout >= 0.0 && o.hidden_dropout <= 1.0,
              "[TransformerEncoderLayer] hidden dropout must be in [0, 1], got ", o.hidden_dropout);
  attention_ = register_module("attention", std::make_shared<AttentionBlock>(o));
  intermediate_ = register_module("intermediate",
                                  std::make_shared<Intermediate>(o.hidden_size, o.intermediate_size, o.activation));
  out_ = register_module("output", std::make_shared<ResidualOutput>(o.intermediate_size, o.hidden_size,
                                                                     o.layer_norm_eps, o.hidden_dropout, o.pre_ln,
                                                                     o.dropout_generator));
}

Tensor TransformerEncoderLayer::forward(const Tensor& x, const Tensor& mask) {
  Tensor h = attention_->forward(x, mask);                            // (B, T, C)
  Tensor f = (*intermediate_)(opts_.pre_ln ? out_->layer_norm()(h) : h);  // (B, T, F)
  return output(out_->forward(f, h));                                 // (B, T, C)
}

std::string TransformerEncoderLayer::extra_repr() const {
  return str_cat("hidden_size=", opts_.hidden_size, ", num_heads=", opts_.num_heads, ", intermediate_size=",
                 opts_.intermediate_size, ", activation=", opts_.activation, ", pre_ln=", detail::py_bool(opts_.pre_ln));
}

TransformerEncoder::TransformerEncoder(int64_t num_layers, const TransformerLayerOptions& o)
    : Module("TransformerEncoder") {
  MEMEL_CHECK(num_layers >= 0, "[TransformerEncoder] number of layers must be non-negative, got ", num_layers);
  auto list = register_module("layer", std::make_shared<Module>("ModuleList"));
  for (int64_t i = 0; i < num_layers; ++i)
    layers_.push_back(list->register_module(std::to_string(i), std::make_shared<TransformerEncoderLayer>(o)));
}

Tensor TransformerEncoder::forward(const Tensor& x, const Tensor& mask) {
  Tensor am = mask.defined() && mask.dim() == 2 ? padding_mask_to_additive(mask, x.dtype()) : mask;
  Tensor h = x;
  for (auto& l : layers_) h = l->forward(h, am);  // (B, T, C)
  return output(h);
}

void TransformerEncoder::set_fused_attention(bool fused) {
  for (auto& l : layers_) l->attention().self_attention().set_fused(fused);
}

}  // namespace memel
