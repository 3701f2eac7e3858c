#pragma once
// CPU kernels of the fused ConvGRU gates (see Backend::gru_candidate in tensor/backend.h).
// Internal to the CPU backend: called from CpuBackend, never directly by ops.
#include "tensor/tensor.h"

namespace memel::cpu {

void gru_candidate(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand);
void gru_candidate_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand,
                            bool tanh_act, double slope, Tensor& gxg, Tensor& ghg);
void gru_update(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, Tensor& out);
void gru_update_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                         const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh);

}  // namespace memel::cpu
