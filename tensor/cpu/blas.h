#pragma once
// Row-major single- and double-precision GEMM, one overload per type so that kernels
// templated on the scalar type call one name. Internal to the CPU backend.
//
// Every call is single-threaded, on a block whose shape follows from the problem (the
// callers cut the work; docs/notes.md, determinism). float goes to the library
// gemm_library() names: OpenBLAS (CBLAS), or oneDNN's dnnl_sgemm where OpenBLAS runs
// generic kernels on a processor with wider vectors (Debian's OpenBLAS 0.3.21 does on
// recent Xeons, issue 22). double always goes to OpenBLAS (oneDNN has no dgemm).
#include <cblas.h>

#include <string>

namespace memel::cpu {

enum class GemmLibrary { OpenBLAS, OneDNN };

// The library single-precision products use, fixed for the process: MEMEL_CPU_GEMM =
// "openblas" | "onednn" | "auto" (default). auto: oneDNN when OpenBLAS's kernels are generic
// (Prescott, Core2, ...) on a processor with AVX2 and FMA or AVX-512 and memel was built
// with oneDNN, else OpenBLAS. A value memel cannot honour is an error naming it.
GemmLibrary gemm_library();
const char* gemm_library_name(GemmLibrary l);
// True when OpenBLAS runs generic kernels on a processor that has AVX2+FMA or AVX-512.
bool openblas_kernels_generic();
// "oneDNN 2.6.3" (the library loaded), or "oneDNN (not in this build)".
std::string onednn_version();

void onednn_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
                  float beta, float* c, int ldc);

inline void blas_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                      int ldb, float beta, float* c, int ldc) {
  static const GemmLibrary lib = gemm_library();
  if (lib == GemmLibrary::OneDNN) return onednn_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}
inline void blas_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
                      int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}

}  // namespace memel::cpu
