#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/ops.h"

namespace memel::autograd {

GradcheckResult gradcheck(const std::function<Tensor(const TensorList&)>& fn, const TensorList& inputs, double eps,
                          double rtol, double atol) {
  for (const Tensor& t : inputs)
    MEMEL_CHECK(!t.defined() || !is_floating(t.dtype()) || t.dtype() == DType::F64,
                "[gradcheck] floating inputs must be float64");
  GradcheckResult res;
  Tensor y0 = fn(inputs);
  Generator wg(12345);
  Tensor w = Tensor::uniform(y0.shape(), 0.5, 1.5, DType::F64, &wg);
  auto scalar = [&](const TensorList& in) {
    NoGradGuard ng;
    return sum(mul(fn(in), w)).item();
  };
  // Analytic gradients.
  TensorList need;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) need.push_back(t);
  Tensor s = sum(mul(y0, w));
  TensorList ga = grad({s}, need);
  size_t k = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined() || !t.requires_grad()) continue;
    Tensor g = ga[k++];
    std::vector<double> gv = g.defined() ? g.to_vector() : std::vector<double>(static_cast<size_t>(t.numel()), 0.0);
    // Perturb element j of a contiguous copy used in place of the input.
    Tensor base = t.contiguous_copy();
    double* p = base.data<double>();
    for (int64_t j = 0; j < t.numel(); ++j) {
      const double orig = p[j];
      TensorList in = inputs;
      in[i] = base;
      p[j] = orig + eps;
      const double fp = scalar(in);
      p[j] = orig - eps;
      const double fm = scalar(in);
      p[j] = orig;
      const double num = (fp - fm) / (2 * eps);
      const double err = std::abs(gv[j] - num);
      const double rel = err / std::max(std::abs(num), 1e-12);
      res.max_abs_err = std::max(res.max_abs_err, err);
      if (err > atol) res.max_rel_err = std::max(res.max_rel_err, rel);
      if (err > atol + rtol * std::abs(num) && res.ok) {
        res.ok = false;
        res.message = str_cat("input ", i, " element ", j, ": analytic ", gv[j], " vs numeric ", num);
      }
    }
  }
  return res;
}

}  // namespace memel::autograd
