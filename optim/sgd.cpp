#include "optim/sgd.h"

namespace memel {

namespace {

// One fused pass; buf is null without momentum. Same operation order as PyTorch's
// single-tensor SGD (the scalars rounded to the parameter's type).
template <typename T>
void sgd_update(T* p, const T* g, T* buf, bool first, int64_t n, double lr, double wd, double momentum,
                double dampening, bool nesterov) {
  const T wd_t = static_cast<T>(wd), mom = static_cast<T>(momentum), damp1 = static_cast<T>(1.0 - dampening);
  const T neg_lr = static_cast<T>(-lr);
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if (wd != 0.0) d = d + wd_t * p[i];
    if (buf) {
      const T b = first ? d : buf[i] * mom + damp1 * d;
      buf[i] = b;
      d = nesterov ? d + mom * b : b;
    }
    p[i] = p[i] + neg_lr * d;
  }
}

}  // namespace

Optimizer::Defaults SGD::defaults_for(const SGDOptions& o) {
  Defaults d;
  d.lr = o.lr;
  d.weight_decay = o.weight_decay;
  d.options = {{"momentum", o.momentum}, {"dampening", o.dampening}, {"nesterov", o.nesterov ? 1.0 : 0.0}};
  return d;
}

SGD::SGD(std::vector<Tensor> params, const SGDOptions& o)
    : SGD(std::vector<ParamGroup>{ParamGroup(std::move(params))}, o) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& o) : Optimizer("SGD", std::move(groups), defaults_for(o)) {
  for (auto& g : param_groups()) check_group(g);
}

void SGD::check_group(const ParamGroup& g) const {
  const double m = g.option("momentum"), d = g.option("dampening"), n = g.option("nesterov");
  MEMEL_CHECK(m >= 0.0, "[SGD] momentum must be non-negative, got ", m);
  MEMEL_CHECK(n == 0.0 || n == 1.0, "[SGD] nesterov must be 0 or 1, got ", n);
  MEMEL_CHECK(n == 0.0 || (m > 0.0 && d == 0.0), "[SGD] Nesterov momentum requires a momentum and zero dampening");
}

void SGD::update(const ParamGroup& group, Tensor& p, const Tensor& g, ParamState& st) {
  const double momentum = group.option("momentum");
  const bool nesterov = group.option("nesterov") != 0.0;
  bool first = false;
  Tensor buf;
  if (momentum != 0.0) {
    auto it = st.buffers.find("momentum_buffer");
    if (it == st.buffers.end()) {
      buf = Tensor::empty(p.shape(), p.dtype(), p.device());
      st.buffers["momentum_buffer"] = buf;
      first = true;
    } else {
      buf = it->second;
    }
  }
  MEMEL_DISPATCH_FLOAT(p.dtype(), "SGD", [&] {
    sgd_update<scalar_t>(p.data<scalar_t>(), g.data<scalar_t>(), buf.defined() ? buf.data<scalar_t>() : nullptr,
                         first, p.numel(), *group.lr, *group.weight_decay, momentum, group.option("dampening"),
                         nesterov);
  });
}

}  // namespace memel
