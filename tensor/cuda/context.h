#pragma once
// Per-GPU state of the CUDA backend: the device index, its one stream, the cuBLAS handle,
// the caching allocator and a small device word that kernels use to report a bad index.
// Host code, shared by the backend's .cu files.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "tensor/allocator.h"
#include "tensor/tensor.h"

namespace memel::cuda {

struct PinnedStaging;

struct Context {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  Allocator* allocator = nullptr;
  int64_t* flag = nullptr;  // device memory: first bad row of an index kernel (n = none)
  PinnedStaging* staging = nullptr;  // pinned host buffers for uploads (cuda_backend.cu)

  // Makes this GPU current on the calling thread.
  void activate() const;
  // Waits for the stream.
  void sync() const;
  // Sets *flag to `none` before an index kernel; after it, the first bad row (none if none).
  void reset_flag(int64_t none) const;
  int64_t read_flag() const;
  // Copies n host bytes to device memory `dst` on the stream without waiting for it: the
  // bytes go through one of a few pinned host buffers (reused once their copy is done), so
  // the caller may reuse `src` at once. Copies over the staging limit wait for the stream.
  void upload(void* dst, const void* src, size_t n) const;
};

// The context of GPU `device`, created on first use (throws when there is no such GPU).
Context& context(int device);
Context& context_of(const Tensor& t);

// Typed device pointer of a tensor on this backend (never dereferenced on the host).
template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.device_data());
}

}  // namespace memel::cuda
