#pragma once
// The simulated accelerator, device "sim" (core/device.h): memory in an arena of its own
// that ops cannot address from the host (Tensor::data throws), reached only through the
// host-transfer kernels, and only the core kernels of the contract (tensor/backend.h),
// run by the CPU's core kernels on aliases of that memory. Every fused kernel therefore
// runs through its composed fallback. The CPU-only test suite trains every model on it to
// prove that nothing outside the backends depends on the device (PyTorch tests its
// out-of-tree accelerator support with a CPU-backed stand-in the same way).
#include "tensor/backend.h"

namespace memel {

Backend& sim_backend();

}  // namespace memel
