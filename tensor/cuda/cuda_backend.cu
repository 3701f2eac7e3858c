#include "tensor/cuda/cuda_backend.h"

#include "tensor/cuda/device_info.h"

namespace memel {

int cuda_device_count() { return cuda::device_count(); }

Backend& cuda_backend(int index) {
  const int n = cuda_device_count();
  MEMEL_CHECK(n > 0, "[device] cuda:", index, " requested but no CUDA device found");
  MEMEL_CHECK(index >= 0 && index < n, "[device] cuda:", index, " requested but ", n, " CUDA device(s) found");
  MEMEL_FAIL("[device] cuda:", index, ": the CUDA backend's kernels are not in this build yet");
}

}  // namespace memel
