// dist/nccl.h: a one-rank NCCL communicator on a GPU (the GPU check runs it); on a machine
// without a GPU it only says so.
#include <doctest/doctest.h>

#include "support.h"

#include "dist/comm.h"
#include "dist/nccl.h"
#include "tensor/cuda/cuda_backend.h"

using namespace memel;

TEST_CASE("nccl: one-rank all-reduce and broadcast on a GPU") {
  if (!dist::NcclComm::available()) {
    MESSAGE("this build has no NCCL");
    return;
  }
  if (cuda_device_count() == 0) {
    MESSAGE("no CUDA device on this machine: the NCCL check runs in scripts/gpu-check.sh");
    return;
  }
  const dist::Group& g = dist::Group::world();
  if (g.size() != 1) return;  // one process: the communicator of one rank
  dist::NcclComm comm(g, 0);
  MESSAGE(comm.describe());
  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.5f;
  Tensor t = Tensor::from_vector(v, {1000}).to(Device::cuda(0));
  comm.allreduce_sum(t);
  CHECK(t.to(Device::cpu()).to_vector() == Tensor::from_vector(v, {1000}).to_vector());
  comm.broadcast(t, 0);
  CHECK(t.to(Device::cpu()).to_vector() == Tensor::from_vector(v, {1000}).to_vector());
  Tensor host = Tensor::ones({3});
  CHECK(error_of([&] { comm.allreduce_sum(host); }).find("expected a contiguous tensor on cuda:0") != std::string::npos);
}
