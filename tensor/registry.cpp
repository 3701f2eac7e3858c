// The device registry: which backend runs a device's kernels. The backends are listed
// here in one place (ggml's backend registry does the same), so a static library never
// drops a registration its user did not reference.
#include <atomic>

#include "tensor/allocator.h"
#include "tensor/backend.h"
#include "tensor/sim/sim_backend.h"
#ifdef MEMEL_WITH_CUDA
#include "tensor/cuda/cuda_backend.h"
#endif

namespace memel {

Backend& backend_for(Device d) {
  switch (d.type) {
    case DeviceType::CPU: return cpu_backend();
    case DeviceType::Sim: return sim_backend();
    case DeviceType::CUDA:
#ifdef MEMEL_WITH_CUDA
      return cuda_backend(d.index);  // throws "no CUDA device found" without a GPU
#else
      MEMEL_FAIL("[device] ", d.str(), " requested but this build of memel has no CUDA part (configure with "
                 "-DMEMEL_CUDA=ON on a machine with nvcc)");
#endif
  }
  MEMEL_FAIL("[device] unknown device type");
}

Allocator& allocator_for(Device d) { return backend_for(d).allocator(); }

std::vector<Device> available_devices() {
  std::vector<Device> r{Device::cpu(), Device::sim()};
#ifdef MEMEL_WITH_CUDA
  for (int i = 0; i < cuda_device_count(); ++i) r.push_back(Device::cuda(i));
#endif
  return r;
}

namespace {
std::atomic<int> g_fallback_depth{0};
std::atomic<MatmulPrecision> g_matmul_precision{MatmulPrecision::Highest};
}  // namespace

void set_matmul_precision(MatmulPrecision p) { g_matmul_precision = p; }
MatmulPrecision matmul_precision() { return g_matmul_precision.load(); }
MatmulPrecision parse_matmul_precision(const std::string& s) {
  if (s == "fp32" || s == "highest") return MatmulPrecision::Highest;
  if (s == "tf32" || s == "high") return MatmulPrecision::High;
  if (s == "bf16" || s == "medium") return MatmulPrecision::Medium;
  MEMEL_FAIL("[precision] unknown matmul precision '", s, "' (expected fp32, tf32 or bf16)");
}

FallbackScope::FallbackScope() { ++g_fallback_depth; }
FallbackScope::~FallbackScope() { --g_fallback_depth; }
bool fallbacks_forced() { return g_fallback_depth.load() > 0; }

}  // namespace memel
