#pragma once
// NCCL between GPUs (issue 24): a communicator over the ranks of a dist::Group, one GPU
// per rank, built from the unique id rank 0 creates and broadcasts over MPI. Collectives
// run on the CUDA backend's stream of that GPU and are waited for with the group's
// timeout (a rank that stops answering: the communicator is aborted and an error names
// the collective). Built when CUDA and NCCL (nccl.h, libnccl) are found at configure
// time (MEMEL_WITH_NCCL); otherwise available() is false and constructing one throws.
#include <memory>

#include "dist/comm.h"
#include "tensor/tensor.h"

namespace memel::dist {

class NcclComm {
 public:
  static bool available();
  // Every rank of `g` calls this with its GPU index (a collective over MPI).
  NcclComm(const Group& g, int device);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  // In place on a contiguous cuda:device tensor (f32, f64, i32, i64): the elementwise
  // sum over the ranks / rank `root`'s values. Returns when the result is in place.
  void allreduce_sum(Tensor& t);
  void broadcast(Tensor& t, int root = 0);
  std::string describe() const;  // "NCCL 2.28.9, rank 0 of 1 on cuda:0"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace memel::dist
