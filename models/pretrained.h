#pragma once
// Pretrained models in one call, and the pooling helpers sentence encoders use.
//
//   auto swin = load_pretrained_swin("swin_tiny_patch4_window7_224.safetensors");  // eval mode
//   auto bert = load_pretrained_bert_model("models/all-MiniLM-L6-v2");             // eval mode
//
// With a tokenizer: memel::load_pretrained_bert(dir) in train/pretrained.h (which may use
// both models/ and data/). docs/pretrained.md walks through both, step by step.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include "models/bert.h"
#include "models/swin.h"

namespace memel {

// --- BERT ------------------------------------------------------------------------------

struct BertPretrainedOptions {
  bool add_pooling_layer = true;  // BertModel's pooler (loaded when the file has it)
  // The HF-style report of weights not used / newly initialised, written when there is
  // something to say; nullptr for silence.
  std::ostream* log = &std::clog;
};

// dir/config.json (BertConfig::from_file) + dir/model.safetensors (load_bert_pretrained,
// Hugging Face names with or without "bert.") into a BertModel, in eval mode.
std::shared_ptr<BertModel> load_pretrained_bert_model(const std::string& dir, const BertPretrainedOptions& o = {});

// Mean of hidden (B, T, C) over the positions where attention_mask (B, T) is 1 (as
// sentence-transformers' mean pooling: the sum over valid tokens divided by their count,
// at least 1e-9) -> (B, C). attention_mask undefined: all positions. Differentiable.
Tensor mean_pool(const Tensor& hidden, const Tensor& attention_mask);
// x / max(||x||_2, eps) along the last axis (torch.nn.functional.normalize). Differentiable.
Tensor l2_normalize(const Tensor& x, double eps = 1e-12);
// Cosine similarities of the rows of two L2-normalised matrices: a (N, C), b (M, C) ->
// (N, M), a @ b^T.
Tensor cosine_similarity_matrix(const Tensor& a, const Tensor& b);

// --- Swin ------------------------------------------------------------------------------

struct SwinPretrainedOptions {
  // Input size the windows are built for. 0: the file's (the "swin_config" metadata that
  // save_swin_weights writes, or the authors' attn_mask buffers), else 224.
  int64_t img_size = 0;
  // -1: the file's head (0 classes when it has none); another value: a new head,
  // initialised fresh and reported (fine-tuning).
  int64_t num_classes = -1;
  double drop_path_rate = 0.0;  // stochastic depth for fine-tuning (timm's default is 0)
  bool strict = true;           // every other tensor must match (load_swin_weights)
  std::ostream* log = &std::clog;
};

// The architecture of a Swin state dict in any of the names load_swin_weights reads
// (authors / timm < 0.9, timm >= 0.9, torchvision): embed_dim, in_chans and patch_size
// from patch_embed.proj, depths from the block indices, num_heads and window_size from
// the relative position bias tables (stage 0's window), mlp_ratio from mlp.fc1, qkv_bias,
// patch_norm, num_classes from the head; window_clamp is false for torchvision files
// (torchvision pads small maps). img_size: from the authors' attn_mask buffers when
// present, else 224. Throws naming the first tensor it needs and cannot find.
SwinConfig infer_swin_config(const StateDict& sd);

// One call: a .safetensors file (ours with its config, or a timm / torchvision / authors'
// checkpoint converted to safetensors) -> a SwinTransformer with the weights, in eval mode.
std::shared_ptr<SwinTransformer> load_pretrained_swin(const std::string& safetensors_path,
                                                      const SwinPretrainedOptions& o = {});

}  // namespace memel
