// GPU discovery and the error on a machine without one. The kernels themselves are
// checked on a GPU by the cross-backend op test (tests/backends), which includes every
// cuda:N device that exists, and on the host by test_cuda_host.cpp.
#include <doctest/doctest.h>

#include "support.h"

#include "tensor/backend.h"
#include "tensor/allocator.h"
#include "tensor/cuda/cuda_backend.h"

using namespace memel;

TEST_CASE("cuda: device discovery, and a clear error without a GPU") {
  const int n = cuda_device_count();
  std::vector<Device> devs = available_devices();
  int listed = 0;
  for (Device d : devs) listed += d.type == DeviceType::CUDA;
  CHECK(listed == n);
  if (n == 0) {
    CHECK(error_of([] { backend_for(Device::cuda(0)); }) == "[device] cuda:0 requested but no CUDA device found");
    CHECK(error_of([] { Tensor::zeros({2}, DType::F32, Device::parse("cuda")); }) ==
          "[device] cuda:0 requested but no CUDA device found");
    MESSAGE("no CUDA device on this machine: the GPU checks run in scripts/gpu-check.sh");
    return;
  }
  CHECK(error_of([&] { backend_for(Device::cuda(n)); }).find("CUDA device(s) found") != std::string::npos);
  // A round trip through device memory, and the allocator's statistics.
  Tensor x = Tensor::uniform({1000}, -1, 1);
  Tensor y = x.to(Device::cuda(0));
  CHECK(y.device() == Device::cuda(0));
  CHECK(max_abs_diff(y.to(Device::cpu()), x) == 0.0);
  CHECK(backend_for(y).allocator().stats().bytes_in_use > 0);
  MESSAGE(backend_for(y).describe());
}
