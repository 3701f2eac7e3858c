#pragma once
// Swin's windows on the CPU (Backend::window_attention / window_gather / window_scatter,
// tensor/backend.h): the shifted-window permutation copies and the fused window attention
// with small register-tiled products per (window, head).
#include "tensor/backend.h"

namespace memel::cpu {

// to_windows: image (B, H, W, C) -> windows; else windows -> image.
void window_copy(const Tensor& src, Tensor& dst, const WindowGeometry& g, bool to_windows);
void window_attention(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale,
                      Tensor& out, Tensor& probs);
void window_attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& gout, int64_t heads, double scale,
                               Tensor& gqkv, Tensor& gbias);

}  // namespace memel::cpu
