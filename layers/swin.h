#pragma once
// Swin Transformer building blocks (Liu et al. 2021, "Swin Transformer: Hierarchical
// Vision Transformer using Shifted Windows"), with the parameter names of the authors'
// code and timm, so weights move between this framework and PyTorch:
//
//   PatchEmbed       proj (Conv2d k = stride = patch), norm (LayerNorm, optional)
//   WindowAttention  qkv, proj, relative_position_bias_table ((2w-1)^2, heads) and the
//                    non-persistent buffer relative_position_index (w^2, w^2), as timm
//   SwinBlock        norm1, attn, norm2, mlp.fc1, mlp.fc2 (pre-LN, GELU, residuals,
//                    stochastic depth)
//   PatchMerging     norm (4C), reduction (Linear 4C -> 2C, no bias)
//
// Feature maps travel between blocks as (B, H, W, C), channels last (as torchvision),
// so a memel layer wrapped on a block sees (token, channel) neurons as (H, W, C).
//
// Shapes that do not fit the window: a block pads its normalised input on the bottom
// and right with zeros up to a multiple of the window (as torchvision and the authors'
// detection code), shifts only along an axis whose padded size exceeds the window, and
// crops the result back. Patch merging pads an odd H or W with one zero row/column.
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

#include "core/rng.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/module.h"
#include "layers/norm.h"

namespace memel {

// --- functions ---------------------------------------------------------------------

// (B, H, W, C) -> (B * H/w * W/w, w*w, C), windows in row-major order of the window
// grid, tokens in row-major order inside a window. H and W must be multiples of w.
Tensor window_partition(const Tensor& x, int64_t window);
// Inverse of window_partition: (B * H/w * W/w, w*w, C) -> (B, H, W, C).
Tensor window_reverse(const Tensor& windows, int64_t window, int64_t H, int64_t W);

// The shifted-window partition in one copy: windows of x (B, H, W, C) rolled by
// (-shift_h, -shift_w) along (H, W), i.e. window_partition(roll(x, {-sh, -sw}, {1, 2}), w)
// -> (B * H/w * W/w, w*w, C). Its gradient is swin_window_scatter's forward.
Tensor swin_window_gather(const Tensor& x, int64_t window, int64_t shift_h, int64_t shift_w);
// Its inverse: roll(window_reverse(windows, w, H, W), {sh, sw}, {1, 2}) -> (B, H, W, C).
Tensor swin_window_scatter(const Tensor& windows, int64_t window, int64_t shift_h, int64_t shift_w, int64_t H,
                           int64_t W);

// Pairwise relative position index of a w x w window: (w*w, w*w) I64 with values in
// [0, (2w-1)^2), index = (dy + w - 1) * (2w - 1) + (dx + w - 1) for the displacement
// (dy, dx) from key to query, as the authors' code.
Tensor swin_relative_position_index(int64_t window);

// The shifted-window attention mask of a padded (Hp, Wp) map cut into w x w windows
// after a cyclic shift of (shift_h, shift_w): (nW, w*w, w*w) with 0 where query and key
// come from the same region before the shift and `masked_value` (-100, the reference)
// where they do not. A zero shift along an axis makes that axis one region.
Tensor swin_attention_mask(int64_t Hp, int64_t Wp, int64_t window, int64_t shift_h, int64_t shift_w,
                           DType dtype = DType::F32, double masked_value = -100.0);

// Stochastic depth ("row" mode): in training, each sample's residual branch x[b] is
// zeroed with probability p and otherwise scaled by 1/(1-p). Draws B numbers from gen
// (default_generator() when null); identity in eval or when p == 0.
Tensor drop_path(const Tensor& x, double p, bool training, Generator* gen = nullptr);

// Fused window attention core on the output of the qkv projection:
//   qkv (BW, N, 3C) with C = heads * d (q, k, v each split into heads as the reference),
//   bias (heads, N, N) relative position bias, mask (nW, N, N) or undefined, with BW a
//   multiple of nW (window b uses mask[b % nW]).
// Returns softmax(scale * q k^T + bias + mask) v with heads concatenated: (BW, N, C).
// Differentiable in qkv and bias (the mask is a constant). Registered op
// "swin_window_attention". On the CPU one fused kernel per (window, head) keeps the
// probabilities for the backward; other devices take the op-by-op path below. The bias
// gradient is summed over a fixed split of the windows, so it does not depend on the
// thread count.
Tensor swin_window_attention(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale);
// The same computed with ordinary ops (matmul, softmax, ...): the reference for tests.
Tensor swin_window_attention_unfused(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads,
                                     double scale);

// --- modules -------------------------------------------------------------------------

// Image to patch tokens: (B, in_chans, H, W) -> (B, H/p, W/p, dim) (floor, as a strided
// convolution), then LayerNorm when `norm`.
class PatchEmbed : public Module {
 public:
  PatchEmbed(int64_t in_chans, int64_t dim, int64_t patch, bool norm, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  std::shared_ptr<Conv2d> proj;
  std::shared_ptr<LayerNorm> norm;  // null without patch_norm

 private:
  int64_t patch_;
};

// Window multi-head self-attention with a learned relative position bias.
class WindowAttention : public Module {
 public:
  WindowAttention(int64_t dim, int64_t num_heads, int64_t window, bool qkv_bias = true, double attn_drop = 0.0,
                  double proj_drop = 0.0, Generator* gen = nullptr);
  // windows (BW, N, C) with N = window^2; mask (nW, N, N) or undefined -> (BW, N, C).
  Tensor forward_windows(const Tensor& windows, const Tensor& mask);
  // (heads, N, N) gathered from the table.
  Tensor relative_position_bias() const;
  std::string extra_repr() const override;

  int64_t window() const { return window_; }
  int64_t num_heads() const { return heads_; }
  // Use the fused kernel (default) or the op-by-op reference path.
  void set_fused(bool on) { fused_ = on; }

  std::shared_ptr<Linear> qkv, proj;

 private:
  int64_t dim_, heads_, window_;
  double scale_, attn_drop_, proj_drop_;
  Generator* gen_;
  bool fused_ = true;
  Tensor table_, index_;  // relative_position_bias_table ((2w-1)^2, heads); index (N*N) I64
};

// Two-layer perceptron fc1 -> GELU -> dropout -> fc2 -> dropout (timm's Mlp).
class SwinMlp : public Module {
 public:
  SwinMlp(int64_t dim, int64_t hidden, double drop = 0.0, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // (..., dim) -> (..., dim)
  std::shared_ptr<Linear> fc1, fc2;

 private:
  double drop_;
  Generator* gen_;
};

struct SwinBlockOptions {
  int64_t dim = 96;
  int64_t num_heads = 3;
  int64_t window = 7;       // the window this block uses (already clamped by the caller)
  int64_t shift = 0;        // 0 (W-MSA) or window / 2 (SW-MSA)
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  double drop = 0.0;        // dropout after the projections
  double attn_drop = 0.0;   // dropout on attention weights
  double drop_path = 0.0;   // stochastic depth of both residual branches
  double eps = 1e-5;        // LayerNorm epsilon
};

// One Swin block on (B, H, W, C):
//   x = x + drop_path(reverse(attn(partition(shift(pad(norm1(x)))))))
//   x = x + drop_path(mlp(norm2(x)))
class SwinBlock : public Module {
 public:
  explicit SwinBlock(const SwinBlockOptions& o, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // (B, H, W, C) -> (B, H, W, C)
  std::string extra_repr() const override;
  const SwinBlockOptions& options() const { return o_; }

  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<WindowAttention> attn;
  std::shared_ptr<SwinMlp> mlp;

 private:
  const Tensor& mask_for(int64_t Hp, int64_t Wp, int64_t sh, int64_t sw, DType dtype);
  SwinBlockOptions o_;
  Generator* gen_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int>, Tensor> masks_;  // cache by padded size, shift
};

// 2x2 neighbourhood concat in the reference order x0 (0,0), x1 (1,0), x2 (0,1), x3
// (1,1) as (row, col) offsets, LayerNorm(4C), Linear 4C -> 2C without bias:
// (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C).
class PatchMerging : public Module {
 public:
  explicit PatchMerging(int64_t dim, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> reduction;

 private:
  int64_t dim_;
};

// One stage ("layers.i"): blocks "blocks.0" ... then an optional "downsample".
class SwinStage : public Module {
 public:
  SwinStage() : Module("BasicLayer") {}
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Sequential> blocks;
  std::shared_ptr<PatchMerging> downsample;  // null in the last stage
};

}  // namespace memel
