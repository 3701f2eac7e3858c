#include "optim/optimizer.h"

#include <algorithm>

#include <set>

#include "autograd/node.h"
#include "core/json_int.h"
#include "tensor/tensor_io.h"

namespace memel {

double ParamGroup::option(const std::string& key) const {
  auto it = options.find(key);
  MEMEL_CHECK(it != options.end(), "[optimizer] parameter group has no option '", key, "'");
  return it->second;
}

namespace {

std::string known_options(const std::map<std::string, double>& m) {
  std::string s;
  for (auto& kv : m) s += (s.empty() ? "" : ", ") + kv.first;
  return s.empty() ? "none" : s;
}

}  // namespace

Optimizer::Optimizer(std::string type_name, std::vector<ParamGroup> groups, Defaults defaults)
    : type_name_(std::move(type_name)), defaults_(std::move(defaults)), groups_(std::move(groups)) {
  const std::string& T = type_name_;
  MEMEL_CHECK(!groups_.empty(), "[", T, "] got no parameter groups");
  std::set<const TensorImpl*> seen;
  size_t total = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    MEMEL_CHECK(g.names.empty() || g.names.size() == g.params.size(), "[", T, "] group ", gi, " has ",
                g.params.size(), " parameters but ", g.names.size(), " names");
    if (!g.lr) g.lr = defaults_.lr;
    if (!g.weight_decay) g.weight_decay = defaults_.weight_decay;
    if (!g.initial_lr) g.initial_lr = g.lr;
    for (auto& kv : g.options)
      MEMEL_CHECK(defaults_.options.count(kv.first), "[", T, "] unknown option '", kv.first, "' in group ", gi,
                  " (known: ", known_options(defaults_.options), ")");
    for (auto& kv : defaults_.options) g.options.emplace(kv.first, kv.second);
    MEMEL_CHECK(*g.lr >= 0.0, "[", T, "] learning rate must be non-negative, got ", *g.lr, " in group ", gi);
    MEMEL_CHECK(*g.weight_decay >= 0.0, "[", T, "] weight_decay must be non-negative, got ", *g.weight_decay,
                " in group ", gi);
    check_group(g);
    for (size_t k = 0; k < g.params.size(); ++k) {
      const Tensor& p = g.params[k];
      std::string what = g.names.empty() ? str_cat("parameter ", k, " of group ", gi) : "parameter '" + g.names[k] + "'";
      MEMEL_CHECK(p.defined(), "[", T, "] ", what, " is undefined");
      MEMEL_CHECK(is_floating(p.dtype()), "[", T, "] ", what, " is ", dtype_name(p.dtype()), ", expected a float");
      MEMEL_CHECK(p.is_leaf(), "[", T, "] ", what, " is not a leaf tensor (it has a history); optimise leaves only");
      MEMEL_CHECK(seen.insert(p.impl_ptr().get()).second, "[", T, "] ", what,
                  " appears more than once in the parameter groups");
    }
    total += g.params.size();
  }
  MEMEL_CHECK(total > 0, "[", T, "] got an empty parameter list");
  state_.resize(total);
}

ParamGroup& Optimizer::param_group(size_t i) {
  MEMEL_CHECK(i < groups_.size(), "[", type_name_, "] no parameter group ", i, " (there are ", groups_.size(), ")");
  return groups_[i];
}

double Optimizer::lr(size_t group) const {
  MEMEL_CHECK(group < groups_.size(), "[", type_name_, "] no parameter group ", group, " (there are ",
              groups_.size(), ")");
  return *groups_[group].lr;
}

void Optimizer::set_lr(double lr) {
  for (size_t i = 0; i < groups_.size(); ++i) set_lr(i, lr);
}

void Optimizer::set_lr(size_t group, double lr) {
  MEMEL_CHECK(lr >= 0.0, "[", type_name_, "] learning rate must be non-negative, got ", lr);
  param_group(group).lr = lr;
}

int64_t Optimizer::param_step(size_t i) const {
  MEMEL_CHECK(i < state_.size(), "[", type_name_, "] no parameter ", i, " (there are ", state_.size(), ")");
  return state_[i].step;
}

void Optimizer::step() {
  NoGradGuard ng;
  size_t idx = 0;
  for (auto& group : groups_) {
    std::vector<Update> ups;
    for (size_t k = 0; k < group.params.size(); ++k, ++idx) {
      Tensor p = group.params[k];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      auto what = [&] { return group.names.empty() ? str_cat("parameter ", idx) : "parameter '" + group.names[k] + "'"; };
      MEMEL_CHECK(g.shape() == p.shape(), "[", type_name_, "] gradient ", shape_str(g.shape()), " of ", what(),
                  " does not match its shape ", shape_str(p.shape()));
      MEMEL_CHECK(g.device() == p.device(), "[", type_name_, "] ", what(), " is on ", p.device().str(),
                  " but its gradient on ", g.device().str());
      MEMEL_CHECK(p.is_contiguous(), "[", type_name_, "] ", what(), " is not contiguous");
      if (g.dtype() != p.dtype()) g = g.to_dtype(p.dtype());
      if (!g.is_contiguous()) g = g.contiguous_copy();
      ParamState& st = state_[idx];
      ++st.step;
      ups.push_back({p, g, &st});
    }
    if (!ups.empty()) update(group, ups);
  }
}

std::vector<std::vector<Optimizer::Update>> Optimizer::by_device(const std::vector<Update>& params) {
  std::vector<std::vector<Update>> r;
  for (const Update& u : params) {
    auto it = std::find_if(r.begin(), r.end(), [&](const std::vector<Update>& v) { return v[0].p.device() == u.p.device(); });
    if (it == r.end())
      r.push_back({u});
    else
      it->push_back(u);
  }
  return r;
}

void Optimizer::zero_grad() {
  for (auto& group : groups_)
    for (auto& p : group.params) {
      Tensor t = p;
      t.zero_grad();
    }
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState s;
  nlohmann::json groups = nlohmann::json::array();
  size_t idx = 0;
  for (auto& g : groups_) {
    nlohmann::json jg;
    jg["lr"] = *g.lr;
    jg["initial_lr"] = *g.initial_lr;
    jg["weight_decay"] = *g.weight_decay;
    jg["options"] = nlohmann::json::object();
    for (auto& kv : g.options) jg["options"][kv.first] = kv.second;
    std::vector<size_t> ids;
    for (size_t k = 0; k < g.params.size(); ++k) ids.push_back(idx++);
    jg["params"] = ids;
    jg["names"] = g.names;
    groups.push_back(jg);
  }
  nlohmann::json state = nlohmann::json::object();
  for (size_t i = 0; i < state_.size(); ++i) {
    const ParamState& st = state_[i];
    if (st.step == 0 && st.buffers.empty()) continue;
    nlohmann::json js;
    js["step"] = st.step;
    js["buffers"] = nlohmann::json::array();
    for (auto& kv : st.buffers) {
      js["buffers"].push_back(kv.first);
      s.tensors["state." + std::to_string(i) + "." + kv.first] = kv.second.to(Device::cpu()).contiguous_copy();
    }
    state[std::to_string(i)] = js;
  }
  s.meta = {{"type", type_name_}, {"format", 1}, {"param_groups", groups}, {"state", state}};
  return s;
}

void Optimizer::load_state_dict(const OptimizerState& s) {
  const std::string T = type_name_;
  const std::string E = "[" + T + ".load_state_dict] ";
  std::vector<ParamGroup> groups = groups_;
  std::vector<ParamState> state(state_.size());
  std::set<std::string> used;
  try {
    const nlohmann::json& m = s.meta;
    MEMEL_CHECK(m.is_object() && m.contains("type") && m.contains("param_groups") && m.contains("state"), E,
                "not an optimizer state (expected keys type, param_groups, state)");
    const std::string type = m.at("type").get<std::string>();
    MEMEL_CHECK(type == T, E, "state was saved by ", type, ", this optimizer is ", T);
    const auto& jgroups = m.at("param_groups");
    MEMEL_CHECK(jgroups.is_array() && jgroups.size() == groups.size(), E, "state has ", jgroups.size(),
                " parameter groups, this optimizer has ", groups.size());
    size_t idx = 0;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& jg = jgroups[gi];
      ParamGroup& g = groups[gi];
      const auto& ids = jg.at("params");
      MEMEL_CHECK(ids.size() == g.params.size(), E, "group ", gi, " has ", ids.size(), " parameters in the state, ",
                  g.params.size(), " in this optimizer");
      for (size_t k = 0; k < ids.size(); ++k)
        MEMEL_CHECK(json_is_int64(ids[k], false) && json_int64(ids[k]) == static_cast<int64_t>(idx + k), E, "group ",
                    gi, " lists parameter ", ids[k].dump(), " at position ", k, ", expected ", idx + k);
      if (jg.contains("names") && !jg.at("names").empty() && !g.names.empty()) {
        auto names = jg.at("names").get<std::vector<std::string>>();
        for (size_t k = 0; k < names.size() && k < g.names.size(); ++k)
          MEMEL_CHECK(names[k] == g.names[k], E, "group ", gi, " parameter ", k, " is '", names[k],
                      "' in the state but '", g.names[k], "' here");
      }
      g.lr = jg.at("lr").get<double>();
      g.initial_lr = jg.contains("initial_lr") ? jg.at("initial_lr").get<double>() : *g.lr;
      g.weight_decay = jg.at("weight_decay").get<double>();
      for (auto& kv : jg.at("options").items()) {
        MEMEL_CHECK(defaults_.options.count(kv.key()), E, "unknown option '", kv.key(), "' in group ", gi,
                    " (known: ", known_options(defaults_.options), ")");
        g.options[kv.key()] = kv.value().get<double>();
      }
      check_group(g);
      idx += g.params.size();
    }
    // Parameter index -> its tensor, for shape checks.
    std::vector<const Tensor*> params;
    for (auto& g : groups)
      for (auto& p : g.params) params.push_back(&p);
    for (auto& kv : m.at("state").items()) {
      size_t i = 0;
      try {
        i = std::stoul(kv.key());
      } catch (const std::exception&) {
        MEMEL_FAIL(E, "state key '", kv.key(), "' is not a parameter index");
      }
      MEMEL_CHECK(i < params.size(), E, "state for parameter ", i, ", but there are ", params.size());
      const Tensor& p = *params[i];
      state[i].step = json_int64_checked(kv.value().at("step"), false, E, "state for parameter ", i, ": step is not an integer");
      for (auto& b : kv.value().at("buffers")) {
        const std::string key = "state." + kv.key() + "." + b.get<std::string>();
        auto it = s.tensors.find(key);
        MEMEL_CHECK(it != s.tensors.end(), E, "missing tensor '", key, "'");
        MEMEL_CHECK(it->second.shape() == p.shape(), E, "tensor '", key, "' has shape ", shape_str(it->second.shape()),
                    ", parameter ", i, " has ", shape_str(p.shape()));
        Tensor t = Tensor::empty(p.shape(), p.dtype(), p.device());
        t.copy_from(it->second);
        state[i].buffers[b.get<std::string>()] = t;
        used.insert(key);
      }
    }
  } catch (const nlohmann::json::exception& e) {
    MEMEL_FAIL(E, "malformed state JSON: ", e.what());
  }
  for (auto& kv : s.tensors) MEMEL_CHECK(used.count(kv.first), E, "unexpected tensor '", kv.first, "'");
  groups_ = std::move(groups);
  state_ = std::move(state);
}

void save_optimizer_state(const std::string& path, const OptimizerState& s) {
  save_safetensors(path, s.tensors, {{"optimizer", s.meta.dump()}});
}

OptimizerState load_optimizer_state(const std::string& path) {
  TensorFile f = load_safetensors(path);
  auto it = f.metadata.find("optimizer");
  MEMEL_CHECK(it != f.metadata.end(), "[load_optimizer_state] ", path, " has no 'optimizer' metadata entry");
  OptimizerState s;
  s.tensors = std::move(f.tensors);
  try {
    s.meta = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    MEMEL_FAIL("[load_optimizer_state] ", path, ": malformed JSON: ", e.what());
  }
  return s;
}

}  // namespace memel
