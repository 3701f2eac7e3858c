// CUDA part (first step): device discovery. Kernels arrive with the CUDA backend issue.
#include <cuda_runtime.h>

#include "tensor/cuda/device_info.h"

namespace memel::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a machine without a driver
    return 0;
  }
  return n;
}

}  // namespace memel::cuda
