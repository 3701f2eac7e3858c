#include "optim/clip.h"

#include <algorithm>
#include <cmath>

#include "tensor/backend.h"

namespace memel {

namespace {

// The defined gradients of `params`, split by device.
std::vector<std::vector<Tensor>> grads_by_device(const std::vector<Tensor>& params) {
  std::vector<std::vector<Tensor>> r;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    const Tensor g = p.grad();
    auto it = std::find_if(r.begin(), r.end(), [&](const std::vector<Tensor>& v) { return v[0].device() == g.device(); });
    if (it == r.end())
      r.push_back({g});
    else
      it->push_back(g);
  }
  return r;
}

}  // namespace

double grad_norm(const std::vector<Tensor>& params) {
  double total = 0.0;
  for (const auto& gs : grads_by_device(params)) {
    Tensor s = Tensor::empty({}, DType::F64, gs[0].device());
    backend_for(s).sum_squares(gs, s);
    total += s.item();
  }
  return std::sqrt(total);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, bool error_if_nonfinite) {
  MEMEL_CHECK(max_norm >= 0.0, "[clip_grad_norm] max_norm must be non-negative, got ", max_norm);
  const double norm = grad_norm(params);
  if (!std::isfinite(norm)) {
    MEMEL_CHECK(!error_if_nonfinite, "[clip_grad_norm] the total gradient norm is ", norm);
    return norm;
  }
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return norm;
  for (const auto& gs : grads_by_device(params))
    for (Tensor g : gs) backend_for(g).unary(UnaryOp::MulScalar, g, g, coef);  // in place, any strides
  return norm;
}

}  // namespace memel
