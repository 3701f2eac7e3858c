#pragma once
// CPU kernels of the Winograd convolution (see Backend::winograd_conv2d in tensor/backend.h).
// Internal to the CPU backend: called from CpuBackend, never directly by ops.
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace memel::cpu {

// The matrices of one minimal filtering algorithm F(m x m, r x r) (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016), built by Toom-Cook from the points
// 0, 1, -1, 2, -2, 1/2, -1/2, ... and infinity; n = m + r - 1 is the tile size.
// One tile: y (m x m) = AT [(G g G^T) . (BT d BT^T)] AT^T for a kernel g (r x r) and an
// input tile d (n x n), where y(i, j) = sum_ab d(i + a, j + b) g(a, b) (cross-correlation).
struct WinogradMatrices {
  int m = 0, r = 0, n = 0;
  std::vector<double> AT;  // (m, n)
  std::vector<double> G;   // (n, r)
  std::vector<double> BT;  // (n, n)
};
WinogradMatrices winograd_matrices(int m, int r);

// Kernel sizes with a Winograd algorithm here: 3 (F(4x4, 3x3)) and 5 (F(2x2, 5x5)).
bool winograd_supported(int64_t kernel);

// U (36, Co, C): the kernels of w (Co, C, k, k) in the transformed domain.
Tensor winograd_weight(const Tensor& w);

// x (N, C, H, W), w (Co, C, k, k) and its U, y (N, Co, H + 2 ph - k + 1, W + 2 pw - k + 1);
// float or double, contiguous. The backward writes gx and/or gw; an undefined one is skipped.
void winograd_conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& U, int ph, int pw, Tensor& y);
void winograd_conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& U, const Tensor& gy, int ph, int pw,
                              Tensor& gx, Tensor& gw);

}  // namespace memel::cpu
