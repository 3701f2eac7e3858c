#include "optim/clip.h"

#include <cmath>

#include "autograd/ops.h"

namespace memel {

double grad_norm(const std::vector<Tensor>& params) {
  double total = 0.0;
  for (const Tensor& p : params) {
    if (!p.defined()) continue;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!g.device().is_cpu()) g = g.to(Device::cpu());
    if (!g.is_contiguous()) g = g.contiguous_copy();
    MEMEL_DISPATCH_FLOAT(g.dtype(), "grad_norm", [&] {
      const scalar_t* d = g.data<scalar_t>();
      const int64_t n = g.numel();
      // Eight running sums in a fixed order (independent adds that vectorise).
      double part[8] = {};
      int64_t i = 0;
      for (; i + 8 <= n; i += 8)
        for (int64_t l = 0; l < 8; ++l) part[l] += static_cast<double>(d[i + l]) * static_cast<double>(d[i + l]);
      double s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; i < n; ++i) s += static_cast<double>(d[i]) * static_cast<double>(d[i]);
      total += s;
    });
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
  NoGradGuard ng;
  for (const Tensor& p : params) {
    if (!p.defined()) continue;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (g.device().is_cpu() && g.is_contiguous()) {
      MEMEL_DISPATCH_FLOAT(g.dtype(), "clip_grad_norm", [&] {
        scalar_t* d = g.data<scalar_t>();
        const scalar_t c = static_cast<scalar_t>(coef);
        const int64_t n = g.numel();
        for (int64_t i = 0; i < n; ++i) d[i] *= c;
      });
    } else {
      g.copy_from(mul(g, coef));
    }
  }
  return norm;
}

}  // namespace memel
