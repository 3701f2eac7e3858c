#pragma once

namespace memel::cuda {

// Number of usable CUDA devices; 0 when there is no driver or device.
int device_count();

}  // namespace memel::cuda
