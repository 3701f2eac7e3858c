#pragma once
// Launching the functors of tensor/cuda/functors.h: one thread per index in a grid-stride
// loop, on the backend's stream, the launch checked.
#include <algorithm>

#include "tensor/cuda/check.h"

namespace memel::cuda {

template <typename F>
__global__ void for_each_kernel(F f, int64_t n) {
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

template <typename F>
void for_each(const F& f, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8);
  for_each_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(f, n);
  MEMEL_CUDA_LAUNCH_CHECK(for_each_kernel);
}

}  // namespace memel::cuda
