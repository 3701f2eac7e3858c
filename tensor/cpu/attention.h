#pragma once
// CPU kernels of the fused attention op (see Backend::attention in tensor/backend.h).
// Internal to the CPU backend: called from CpuBackend, never directly by ops.
#include <cstdint>

#include "tensor/tensor.h"

namespace memel::cpu {

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale, double p,
                       uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse);

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& lse,
                        const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset, Tensor& gq,
                        Tensor& gk, Tensor& gv);

}  // namespace memel::cpu
