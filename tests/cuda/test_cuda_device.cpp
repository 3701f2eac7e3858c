// GPU checks. Without a CUDA device these skip with a message (the CUDA part still
// compiles wherever nvcc is present).
#include <doctest/doctest.h>

#include "tensor/cuda/device_info.h"

TEST_CASE("cuda: device discovery") {
  const int n = memel::cuda::device_count();
  if (n == 0) {
    MESSAGE("skipped: no CUDA device on this machine");
    return;
  }
  CHECK(n >= 1);
}
