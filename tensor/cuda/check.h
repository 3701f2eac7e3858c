#pragma once
// Every CUDA, cuBLAS and cuDNN call is checked: a failure throws memel::Error naming the
// call, the library's error string, the file and the line.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace memel::cuda {

[[noreturn]] void fail_call(const char* call, const char* what, const char* file, int line);
const char* cublas_error_string(cublasStatus_t s);

}  // namespace memel::cuda

#define MEMEL_CUDA_CHECK(call)                                                                   \
  do {                                                                                           \
    const cudaError_t memel_e_ = (call);                                                         \
    if (memel_e_ != cudaSuccess) ::memel::cuda::fail_call(#call, cudaGetErrorString(memel_e_), __FILE__, __LINE__); \
  } while (0)

#define MEMEL_CUBLAS_CHECK(call)                                                                           \
  do {                                                                                                     \
    const cublasStatus_t memel_s_ = (call);                                                                \
    if (memel_s_ != CUBLAS_STATUS_SUCCESS)                                                                 \
      ::memel::cuda::fail_call(#call, ::memel::cuda::cublas_error_string(memel_s_), __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: the launch's own error (bad configuration, no device code for
// this GPU).
#define MEMEL_CUDA_LAUNCH_CHECK(kernel) MEMEL_CUDA_CHECK(cudaPeekAtLastError())
