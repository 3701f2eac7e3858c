#pragma once
// Multi-head self-attention, as Hugging Face's BertSelfAttention: children "query",
// "key", "value" (Linear C -> C). The heads run through the fused op
// scaled_dot_product_attention (autograd/ops.h, kernel in tensor/cpu/attention.cpp), or,
// with fused = false, through attention_reference, the same computation composed of
// matmul/softmax/dropout (kept for tests; identical dropout masks for the same generator).
//
// Masks: a rank-2 (B, T) tensor is a padding mask (nonzero = attend, 0 = padding; any
// dtype); a rank-4 floating tensor is an additive mask broadcastable to (B, H, T, T)
// (padding_mask_to_additive makes one, so a model converts its mask once for all layers).
#include "layers/module.h"

namespace memel {

// keep (B, T), nonzero = attend -> additive (B, 1, 1, T): 0 where kept, the dtype's
// lowest finite value elsewhere (as Hugging Face's BERT: a query whose every key is
// padding then attends uniformly instead of producing NaN).
Tensor padding_mask_to_additive(const Tensor& keep, DType dtype = DType::F32);

// The unfused reference of scaled_dot_product_attention (same arguments and result).
Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = Tensor(),
                           double dropout_p = 0.0, bool training = false, Generator* gen = nullptr,
                           double scale = 0.0);

class MultiHeadSelfAttention : public Module {
 public:
  // hidden_size must be a multiple of num_heads. attention_dropout applies to the
  // probabilities in training mode; masks come from `gen` (default_generator() if null).
  MultiHeadSelfAttention(int64_t hidden_size, int64_t num_heads, double attention_dropout = 0.0, bool fused = true,
                         Generator* gen = nullptr);
  using Module::forward;
  // x (B, T, C); mask as described above or undefined -> context (B, T, C), before any
  // output projection. Ends with output(), so wrappers attached here see the context.
  Tensor forward(const Tensor& x, const Tensor& mask);
  std::string extra_repr() const override;

  void set_fused(bool fused) { fused_ = fused; }
  bool fused() const { return fused_; }
  int64_t num_heads() const { return heads_; }
  int64_t head_dim() const { return hidden_ / heads_; }

 private:
  int64_t hidden_, heads_;
  double p_;
  bool fused_;
  Generator* gen_;
  std::shared_ptr<Module> query_, key_, value_;
};

}  // namespace memel
