#pragma once
// Finite-difference gradient checking in float64 (central differences).
#include <functional>
#include <string>

#include "autograd/node.h"

namespace memel::autograd {

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0, max_rel_err = 0;
  std::string message;  // where the worst mismatch is
};

// fn maps inputs to one tensor; the scalar checked is sum(fn(inputs) * w) for a fixed
// random w. Inputs must be float64; those with requires_grad are checked.
// An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
GradcheckResult gradcheck(const std::function<Tensor(const TensorList&)>& fn, const TensorList& inputs,
                          double eps = 1e-6, double rtol = 1e-4, double atol = 1e-7);

}  // namespace memel::autograd
