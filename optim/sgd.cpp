#include "optim/sgd.h"

#include "tensor/backend.h"

namespace memel {


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

void SGD::update(const ParamGroup& group, const std::vector<Update>& params) {
  SgdHyper h;
  h.lr = *group.lr;
  h.weight_decay = *group.weight_decay;
  h.momentum = group.option("momentum");
  h.dampening = group.option("dampening");
  h.nesterov = group.option("nesterov") != 0.0;
  for (const auto& on_device : by_device(params)) {
    std::vector<SgdSlot> slots;
    for (const auto& u : on_device) {
      SgdSlot s{u.p, u.g, Tensor(), false};
      if (h.momentum != 0.0) {
        auto& bufs = u.state->buffers;
        auto it = bufs.find("momentum_buffer");
        s.first = it == bufs.end();
        s.buf = s.first ? (bufs["momentum_buffer"] = Tensor::empty(u.p.shape(), u.p.dtype(), u.p.device()))
                        : it->second;
      }
      slots.push_back(s);
    }
    backend_for(on_device[0].p).sgd_step(slots, h);
  }
}

}  // namespace memel
