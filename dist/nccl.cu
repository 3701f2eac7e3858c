// dist/nccl.h with NCCL (compiled into the CUDA part when nccl.h and libnccl are found).
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "core/error.h"
#include "dist/nccl.h"
#include "tensor/cuda/context.h"

namespace memel::dist {

namespace {

void check_nccl(ncclResult_t r, const char* call) {
  MEMEL_CHECK(r == ncclSuccess, "[dist] ", call, " failed: ", ncclGetErrorString(r));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
  }
  MEMEL_FAIL("[dist] NCCL: unsupported dtype");
}

}  // namespace

struct NcclComm::Impl {
  const Group* group = nullptr;
  int device = 0;
  ncclComm_t comm = nullptr;
  cuda::Context* ctx = nullptr;

  // Waits for the stream, polling, within the group's timeout; past it the communicator
  // is aborted (NCCL's way out of a collective whose peer is gone).
  void wait(const char* what) {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      const cudaError_t q = cudaStreamQuery(ctx->stream);
      if (q == cudaSuccess) return;
      MEMEL_CHECK(q == cudaErrorNotReady, "[dist] NCCL ", what, ": ", cudaGetErrorString(q));
      ncclResult_t async = ncclSuccess;
      check_nccl(ncclCommGetAsyncError(comm, &async), "ncclCommGetAsyncError");
      check_nccl(async, what);
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (waited >= group->timeout()) {
        ncclCommAbort(comm);
        comm = nullptr;
        MEMEL_FAIL("[dist] rank ", group->rank(), ": NCCL ", what, " did not complete within ", group->timeout(),
                   " s (MEMEL_DIST_TIMEOUT_S); another rank has stopped answering");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void check_tensor(const Tensor& t, const char* what) const {
    MEMEL_CHECK(t.device() == Device::cuda(device) && t.is_contiguous(), "[dist] NCCL ", what,
                ": expected a contiguous tensor on cuda:", device, ", got one on ", t.device().str());
  }
};

bool NcclComm::available() { return true; }

NcclComm::NcclComm(const Group& g, int device) : impl_(std::make_unique<Impl>()) {
  impl_->group = &g;
  impl_->device = device;
  impl_->ctx = &cuda::context(device);
  impl_->ctx->activate();
  // Rank 0 makes the unique id; MPI carries it to the others.
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (g.is_root()) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  std::vector<uint8_t> bytes(reinterpret_cast<uint8_t*>(&id), reinterpret_cast<uint8_t*>(&id) + sizeof id);
  g.broadcast_bytes(bytes, 0);
  std::memcpy(&id, bytes.data(), sizeof id);
  check_nccl(ncclCommInitRank(&impl_->comm, g.size(), id, g.rank()), "ncclCommInitRank");
}

NcclComm::~NcclComm() {
  if (impl_ && impl_->comm) ncclCommDestroy(impl_->comm);
}

void NcclComm::allreduce_sum(Tensor& t) {
  impl_->check_tensor(t, "all-reduce");
  if (t.numel() == 0) return;
  impl_->ctx->activate();
  check_nccl(ncclAllReduce(t.device_data(), t.device_data(), size_t(t.numel()), nccl_type(t.dtype()), ncclSum,
                           impl_->comm, impl_->ctx->stream),
             "ncclAllReduce");
  impl_->wait("all-reduce");
}

void NcclComm::broadcast(Tensor& t, int root) {
  impl_->check_tensor(t, "broadcast");
  if (t.numel() == 0) return;
  impl_->ctx->activate();
  check_nccl(ncclBroadcast(t.device_data(), t.device_data(), size_t(t.numel()), nccl_type(t.dtype()), root,
                           impl_->comm, impl_->ctx->stream),
             "ncclBroadcast");
  impl_->wait("broadcast");
}

std::string NcclComm::describe() const {
  int v = 0;
  ncclGetVersion(&v);
  return str_cat("NCCL ", v / 10000, ".", (v / 100) % 100, ".", v % 100, ", rank ", impl_->group->rank(), " of ",
                 impl_->group->size(), " on cuda:", impl_->device);
}

}  // namespace memel::dist
