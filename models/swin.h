#pragma once
// Swin Transformer image classifier (Liu et al., ICCV 2021), built from layers/swin.h.
//
//   images (B, in_chans, H, W)
//   -> patch_embed (Conv2d k = s = patch, LayerNorm)          (B, H/p, W/p, C)
//   -> layers.0 .. layers.{S-1}: blocks (W-MSA / SW-MSA alternating), then
//      downsample (PatchMerging) at the end of every stage but the last
//   -> norm -> mean over tokens -> head                        (B, num_classes)
//
// Parameter names are the Swin authors' (microsoft/Swin-Transformer) and timm < 0.9:
//   patch_embed.proj.{weight,bias}, patch_embed.norm.{weight,bias},
//   layers.{i}.blocks.{j}.norm1, .attn.qkv, .attn.proj, .attn.relative_position_bias_table,
//   .norm2, .mlp.fc1, .mlp.fc2, layers.{i}.downsample.{norm,reduction}, norm, head.
// relative_position_index is a non-persistent buffer (recomputed, never saved, as in
// timm >= 0.9); checkpoints that carry it or attn_mask (the authors' files) load fine,
// those keys are ignored. load_swin_weights also reads timm >= 0.9 files (downsample at
// the start of stage i+1, head.fc) and torchvision files (features.*), see below.
//
// Windows: each stage's window is fixed at construction from img_size, as the authors:
// when the stage's feature map (img_size / patch / 2^i, odd sizes rounded up by patch
// merging) is no larger than the window, the window shrinks to the map and there is no
// shift (window_clamp = true, the default). With window_clamp = false the window stays
// and small maps are zero-padded up to it, as torchvision 0.14 does. Images must be
// img_size x img_size (strict_img_size = true, the default: another size would run with
// windows and shifts chosen for img_size, e.g. a 224 model fed 448 images loses the last
// stage's shift, so it is an error). With strict_img_size = false any size runs with
// the windows as built, maps that are not a multiple of the window padded per block.
//
// JSON (every key optional; "preset" first fills the defaults from a named preset):
//   {"preset": "swin-t", "img_size": 224, "patch_size": 4, "in_chans": 3,
//    "num_classes": 1000, "embed_dim": 96, "depths": [2, 2, 6, 2],
//    "num_heads": [3, 6, 12, 24], "window_size": 7, "mlp_ratio": 4.0, "qkv_bias": true,
//    "patch_norm": true, "drop_rate": 0.0, "attn_drop_rate": 0.0, "drop_path_rate": 0.2,
//    "layer_norm_eps": 1e-5, "window_clamp": true, "strict_img_size": true,
//    "fused_attention": true, "seed": 0}
// img_size, patch_size and window_size also take [n, n] (square only).
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "layers/module.h"
#include "layers/swin.h"

namespace memel {

struct SwinConfig {
  std::string name = "custom";
  int64_t img_size = 224, patch_size = 4, in_chans = 3, num_classes = 1000;
  int64_t embed_dim = 96;
  std::vector<int64_t> depths = {2, 2, 6, 2};
  std::vector<int64_t> num_heads = {3, 6, 12, 24};
  int64_t window_size = 7;
  double mlp_ratio = 4.0;
  bool qkv_bias = true, patch_norm = true;
  double drop_rate = 0.0, attn_drop_rate = 0.0, drop_path_rate = 0.2;
  double layer_norm_eps = 1e-5;
  bool window_clamp = true;      // authors / timm; false = torchvision 0.14's padding
  bool strict_img_size = true;   // refuse images other than img_size x img_size
  bool fused_attention = true;   // fused CPU attention kernel (false: op-by-op path)
  uint64_t seed = 0;             // stream for stochastic depth and dropout

  // Presets (224 px, patch 4, window 7 unless said):
  //   "swin-t"  dim 96,  depths 2-2-6-2,  heads 3-6-12-24, drop_path 0.2
  //   "swin-s"  dim 96,  depths 2-2-18-2, heads 3-6-12-24, drop_path 0.3
  //   "swin-b"  dim 128, depths 2-2-18-2, heads 4-8-16-32, drop_path 0.5
  //   "swin-mini"   32 px, 3 channels, patch 2, dim 48, depths 2-2-6-2, heads 3-6-12-24,
  //                 window 4, 10 classes, drop_path 0.1 (benchmark W3; CIFAR-sized data):
  //                 maps 16, 8, 4, 2 -> windows 4 (shifted), 4 (shifted), 4, 2
  //   "swin-fmnist" 28 px, 1 channel, patch 2, dim 48, depths 2-2-2, heads 3-6-12,
  //                 window 7, 10 classes, drop_path 0.1 (Fashion-MNIST): maps 14, 7, 4
  //                 -> windows 7 (shifted), 7, 4; about 1.2 M parameters.
  static SwinConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();
  static SwinConfig from_json(const nlohmann::json& j, const std::string& where = "model");
  nlohmann::json to_json() const;
  // Throws naming the first inconsistent field.
  void validate() const;

  int64_t num_stages() const { return static_cast<int64_t>(depths.size()); }
  int64_t num_features() const { return embed_dim << (num_stages() - 1); }
  // Feature-map side of each stage at img_size.
  std::vector<int64_t> stage_resolutions() const;
  // Window and shift of block j of stage i (after clamping).
  int64_t stage_window(int64_t stage) const;
  int64_t block_shift(int64_t stage, int64_t block) const;
};

class SwinTransformer : public Module {
 public:
  explicit SwinTransformer(const SwinConfig& cfg);
  // images (B, in_chans, H, W) -> logits (B, num_classes); pooled features when
  // num_classes is 0.
  Tensor forward(const Tensor& images) override;
  // Token map after the last stage and the final norm: (B, h, w, num_features).
  Tensor forward_tokens(const Tensor& images);
  // Mean over tokens of forward_tokens: (B, num_features).
  Tensor forward_features(const Tensor& images);

  const SwinConfig& config() const { return cfg_; }
  // The paper's placement (the free function paper_memel_targets(config()) below).
  std::vector<std::string> paper_memel_targets() const override;
  // The stream used by stochastic depth and dropout (save its state to resume exactly).
  Generator& generator() { return gen_; }
  // Switches every block between the fused attention kernel and the op-by-op path.
  void set_fused_attention(bool on);
  // Re-draws the head as at construction (trunc_normal std 0.02, zero bias).
  void reset_head();
  // Re-draws every parameter as at construction (timm's init: trunc_normal(0.02) for
  // Linear weights and the bias tables, zero biases, LayerNorm 1/0, the patch
  // convolution as torch's Conv2d default).
  void reset_parameters();
  std::string extra_repr() const override;

  std::shared_ptr<PatchEmbed> patch_embed;
  std::shared_ptr<Sequential> layers;  // "layers.{i}", each a SwinStage
  std::vector<std::shared_ptr<SwinStage>> stages;
  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> head;  // null when num_classes == 0

 private:
  SwinConfig cfg_;
  Generator gen_;
};

// The paper's memel placement ("at": "paper"): the outputs of blocks d/2-2 ... d/2+1 of
// stage 3 (index 2), d = depths[2]: "layers.2.blocks.1" ... "layers.2.blocks.4" for
// Swin-T, blocks 7-10 for Swin-S/B. Blocks outside [0, d) are dropped (depth 2 gives
// blocks 0-1, depth 4 blocks 0-3); a model with fewer than 3 stages uses its last stage.
std::vector<std::string> paper_memel_targets(const SwinConfig& cfg);
std::vector<std::string> paper_memel_targets(const SwinTransformer& model);

// --- weights -------------------------------------------------------------------------

// Which implementation's names a state dict uses.
enum class SwinNaming { Authors, TimmNew, Torchvision };
const char* swin_naming_name(SwinNaming n);
// Authors: "layers.0.downsample.*" or no downsample at all; TimmNew: downsample only in
// layers 1.. or a "head.fc.weight"; Torchvision: "features.0.0.weight".
SwinNaming detect_swin_naming(const StateDict& sd);

// torchvision's SwinTransformer names <-> ours:
//   features.0.0 = patch_embed.proj, features.0.2 = patch_embed.norm,
//   features.{2i+1}.{j} = layers.{i}.blocks.{j} (mlp.0 = mlp.fc1, mlp.3 = mlp.fc2),
//   features.{2i+2} = layers.{i}.downsample, norm = norm, head = head.
// Names that match no rule are kept as they are.
StateDict swin_from_torchvision(const StateDict& sd);
StateDict swin_to_torchvision(const StateDict& sd);
std::string swin_name_to_torchvision(const std::string& name);
std::string swin_name_from_torchvision(const std::string& name);
// timm >= 0.9 (layers.{i+1}.downsample = our layers.{i}.downsample, head.fc = head).
StateDict swin_from_timm_new(const StateDict& sd);

struct SwinLoadReport {
  SwinNaming naming = SwinNaming::Authors;
  std::vector<std::string> reinitialized;  // new head: "head.weight", "head.bias"
  std::vector<std::string> ignored;        // recomputed buffers in the file (index, masks)
  std::vector<std::string> memel_missing;  // memel state the file does not have (fresh)
  std::string message;                     // what happened, one line per point
};

// Loads weights into `model`, converting names first. A head of a different shape (e.g.
// a 1000-class file into a 10-class model) is re-initialised, listed in `reinitialized`
// and reported in the message, which is also written to `log` (std::clog by default;
// nullptr for silence) when there is anything to say. Everything else
// must match exactly when strict (missing, unexpected or mis-shaped names throw);
// memel layers attached to the model may be absent from the file.
SwinLoadReport load_swin_weights(SwinTransformer& model, const StateDict& sd, bool strict = true,
                                 std::ostream* log = &std::clog);
SwinLoadReport load_swin_weights(SwinTransformer& model, const std::string& safetensors_path, bool strict = true,
                                 std::ostream* log = &std::clog);
// Writes the state dict (our names) with the config as metadata "swin_config" (JSON).
void save_swin_weights(const SwinTransformer& model, const std::string& safetensors_path);

}  // namespace memel
