#pragma once
// The CUDA backend (built when MEMEL_WITH_CUDA is defined; tensor/registry.cpp).
#include "tensor/backend.h"

namespace memel {

// Number of usable CUDA devices; 0 without a driver or a GPU.
int cuda_device_count();
// The backend of GPU `index`; throws "no CUDA device found" on a machine without one.
Backend& cuda_backend(int index);

}  // namespace memel
