// dist/nccl.h in a build without NCCL: nothing to run on.
#ifndef MEMEL_WITH_NCCL
#include "core/error.h"
#include "dist/nccl.h"

namespace memel::dist {

struct NcclComm::Impl {};
bool NcclComm::available() { return false; }
NcclComm::NcclComm(const Group&, int) {
  MEMEL_FAIL("[dist] NCCL requested, but this build of memel has no NCCL (configure with CUDA and the NCCL "
             "headers and library: nccl.h, libnccl)");
}
NcclComm::~NcclComm() = default;
void NcclComm::allreduce_sum(Tensor&) {}
void NcclComm::broadcast(Tensor&, int) {}
std::string NcclComm::describe() const { return "no NCCL"; }

}  // namespace memel::dist
#endif
