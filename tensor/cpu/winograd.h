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
int64_t winograd_points(int64_t kernel);
// Backend::winograd_* (tensor/backend.h).
void winograd_weight(const Tensor& w, Tensor& U);
void winograd_weight_backward(const Tensor& gU, Tensor& gw);
void winograd_conv2d_forward(const Tensor& x, const Tensor& U, int64_t kernel, int ph, int pw, Tensor& y);
void winograd_conv2d_backward(const Tensor& x, const Tensor& U, const Tensor& gy, int64_t kernel, int ph, int pw,
                              Tensor& gx, Tensor& gU);

}  // namespace memel::cpu
