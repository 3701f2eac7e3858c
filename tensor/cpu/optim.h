#pragma once
// Optimizer updates on the CPU (Backend::adam_step / sgd_step / sum_squares).
#include <vector>

#include "tensor/backend.h"

namespace memel::cpu {

void adam_step(const std::vector<AdamSlot>& slots, const AdamHyper& h);
void sgd_step(const std::vector<SgdSlot>& slots, const SgdHyper& h);
void sum_squares(const std::vector<Tensor>& ts, Tensor& out);

}  // namespace memel::cpu
