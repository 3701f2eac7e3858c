#include "optim/adamw.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <type_traits>

#include "tensor/backend.h"

namespace memel {

namespace {

Tensor buffer(std::map<std::string, Tensor>& bufs, const std::string& name, const Tensor& p) {
  auto it = bufs.find(name);
  if (it != bufs.end()) return it->second;
  Tensor t = Tensor::zeros(p.shape(), p.dtype(), p.device());
  bufs[name] = t;
  return t;
}

void check_adam_group(const char* T, const ParamGroup& g) {
  const double b1 = g.option("beta1"), b2 = g.option("beta2"), eps = g.option("eps"), ams = g.option("amsgrad");
  MEMEL_CHECK(b1 >= 0.0 && b1 < 1.0, "[", T, "] beta1 must be in [0, 1), got ", b1);
  MEMEL_CHECK(b2 >= 0.0 && b2 < 1.0, "[", T, "] beta2 must be in [0, 1), got ", b2);
  MEMEL_CHECK(eps >= 0.0, "[", T, "] eps must be non-negative, got ", eps);
  MEMEL_CHECK(ams == 0.0 || ams == 1.0, "[", T, "] amsgrad must be 0 or 1, got ", ams);
}

void run_adam(const ParamGroup& group, const std::vector<Optimizer::Update>& params, bool decoupled) {
  AdamHyper h;
  h.lr = *group.lr;
  h.weight_decay = *group.weight_decay;
  h.beta1 = group.option("beta1");
  h.beta2 = group.option("beta2");
  h.eps = group.option("eps");
  h.decoupled = decoupled;
  const bool ams = group.option("amsgrad") != 0.0;
  for (const auto& on_device : Optimizer::by_device(params)) {
    std::vector<AdamSlot> slots;
    for (const auto& u : on_device) {
      auto& bufs = u.state->buffers;
      slots.push_back({u.p, u.g, buffer(bufs, "exp_avg", u.p), buffer(bufs, "exp_avg_sq", u.p),
                       ams ? buffer(bufs, "max_exp_avg_sq", u.p) : Tensor(), u.state->step});
    }
    backend_for(on_device[0].p).adam_step(slots, h);
  }
}

template <typename O>
std::map<std::string, double> adam_options(const O& o) {
  return {{"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps}, {"amsgrad", o.amsgrad ? 1.0 : 0.0}};
}

}  // namespace

// --- AdamW ------------------------------------------------------------------------

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& o)
    : AdamW(std::vector<ParamGroup>{ParamGroup(std::move(params))}, o) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o)
    : Optimizer("AdamW", std::move(groups), Defaults{o.lr, o.weight_decay, adam_options(o)}) {
  for (auto& g : param_groups()) check_group(g);
}

void AdamW::check_group(const ParamGroup& g) const { check_adam_group("AdamW", g); }

void AdamW::update(const ParamGroup& group, const std::vector<Update>& params) { run_adam(group, params, true); }

// --- Adam -------------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> params, const AdamOptions& o)
    : Adam(std::vector<ParamGroup>{ParamGroup(std::move(params))}, o) {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& o)
    : Optimizer("Adam", std::move(groups), Defaults{o.lr, o.weight_decay, adam_options(o)}) {
  for (auto& g : param_groups()) check_group(g);
}

void Adam::check_group(const ParamGroup& g) const { check_adam_group("Adam", g); }

void Adam::update(const ParamGroup& group, const std::vector<Update>& params) { run_adam(group, params, false); }

// --- parameter groups --------------------------------------------------------------

bool is_no_decay_param(const std::string& name, const Tensor& p) {
  if (p.dim() <= 1) return true;
  const std::string suffix = "bias";
  if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return true;
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find("norm") != std::string::npos;  // LayerNorm, layernorm, norm1, ...
}

std::vector<ParamGroup> param_groups_with_decay(const Module& module, double weight_decay) {
  MEMEL_CHECK(weight_decay >= 0.0, "[param_groups_with_decay] weight_decay must be non-negative, got ", weight_decay);
  ParamGroup decay, no_decay;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = 0.0;
  for (auto& np : module.named_parameters()) {
    if (!np.second.requires_grad()) continue;
    ParamGroup& g = is_no_decay_param(np.first, np.second) ? no_decay : decay;
    g.params.push_back(np.second);
    g.names.push_back(np.first);
  }
  return {decay, no_decay};
}

}  // namespace memel
