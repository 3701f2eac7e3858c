#include "tensor/cpu/blas.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

#ifdef MEMEL_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
extern "C" void omp_set_num_threads(int);  // libgomp (oneDNN's OpenMP runtime)
#endif

extern "C" char* openblas_get_corename(void);

namespace memel::cpu {

bool openblas_kernels_generic() {
  static const bool generic = [] {
    const std::string core = openblas_get_corename();
    const bool old = core == "Prescott" || core == "Core2" || core == "Penryn" || core == "Dunnington" ||
                     core == "Nehalem" || core == "Atom" || core == "Opteron" || core == "Barcelona";
#if defined(__x86_64__) && defined(__GNUC__)
    return old && (__builtin_cpu_supports("avx512f") ||
                   (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")));
#else
    return false;
#endif
  }();
  return generic;
}

const char* gemm_library_name(GemmLibrary l) { return l == GemmLibrary::OneDNN ? "oneDNN" : "OpenBLAS"; }

GemmLibrary gemm_library() {
  const char* env = std::getenv("MEMEL_CPU_GEMM");
  const std::string v = env ? env : "";
#ifdef MEMEL_WITH_ONEDNN
  constexpr bool have_onednn = true;
#else
  constexpr bool have_onednn = false;
#endif
  if (v.empty() || v == "auto")
    return have_onednn && openblas_kernels_generic() ? GemmLibrary::OneDNN : GemmLibrary::OpenBLAS;
  if (v == "openblas") return GemmLibrary::OpenBLAS;
  if (v == "onednn") {
    MEMEL_CHECK(have_onednn, "MEMEL_CPU_GEMM=onednn: this build of memel has no oneDNN (install libdnnl-dev and "
                             "rebuild; scripts/setup.sh installs it)");
    return GemmLibrary::OneDNN;
  }
  MEMEL_FAIL("MEMEL_CPU_GEMM='", v, "': expected openblas, onednn or auto");
}

std::string onednn_version() {
#ifdef MEMEL_WITH_ONEDNN
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
#else
  return "oneDNN (not in this build)";
#endif
}

void onednn_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
                  float beta, float* c, int ldc) {
#ifdef MEMEL_WITH_ONEDNN
  // One OpenMP thread for calls from this thread (the pool already runs one block per
  // thread; a team per call would oversubscribe the cores and split the product by the
  // thread count).
  thread_local bool single = (omp_set_num_threads(1), true);
  (void)single;
  const dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  MEMEL_CHECK(st == dnnl_success, "[gemm] oneDNN dnnl_sgemm (", m, " x ", n, " x ", k, ") failed with status ",
              static_cast<int>(st));
#else
  MEMEL_FAIL("[gemm] oneDNN is not in this build");
#endif
}

}  // namespace memel::cpu
