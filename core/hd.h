#pragma once
// MEMEL_HD marks a function that runs on the host and, compiled by nvcc, on the GPU: the
// arithmetic shared by the CPU and CUDA backends (core/rng.h, tensor/kernel_math.h).
#if defined(__CUDACC__)
#define MEMEL_HD __host__ __device__ inline
#else
#define MEMEL_HD inline
#endif
