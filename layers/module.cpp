#include "layers/module.h"

#include <algorithm>
#include <sstream>

namespace memel {

std::string LoadReport::str() const {
  std::string s;
  auto join = [](const std::vector<std::string>& v) {
    std::string r;
    for (size_t i = 0; i < v.size(); ++i) r += (i ? ", " : "") + v[i];
    return r;
  };
  if (!missing.empty()) s += "missing keys (" + std::to_string(missing.size()) + "): " + join(missing) + "\n";
  if (!unexpected.empty())
    s += "unexpected keys (" + std::to_string(unexpected.size()) + "): " + join(unexpected) + "\n";
  if (!mismatched.empty()) s += "shape mismatch: " + join(mismatched) + "\n";
  if (!s.empty()) s.pop_back();
  return s;
}

Tensor Module::forward(const Tensor&) {
  MEMEL_FAIL("[", type_name_, "] has no single-input forward; call its own forward with the inputs it takes");
}

Tensor Module::output(Tensor y) {
  for (auto& w : output_wrappers_) y = (*w)(y);
  return y;
}

Tensor Module::tap(const std::string& point, Tensor t) {
  auto it = tap_wrappers_.find(point);
  if (it == tap_wrappers_.end()) return t;
  for (auto& w : it->second) t = (*w)(t);
  return t;
}

namespace {
void check_name(const std::string& name, const std::string& owner) {
  MEMEL_CHECK(!name.empty() && name.find('.') == std::string::npos && name.find(':') == std::string::npos,
              "[", owner, "] invalid member name '", name, "' (non-empty, no '.' or ':')");
}
}  // namespace

Tensor& Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_name(name, type_name_);
  for (auto& s : params_) MEMEL_CHECK(s.name != name, "[", type_name_, "] parameter '", name, "' registered twice");
  if (requires_grad) t.set_requires_grad(true);
  params_.push_back({name, t, true});
  return params_.back().tensor;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_name(name, type_name_);
  for (auto& s : buffers_) MEMEL_CHECK(s.name != name, "[", type_name_, "] buffer '", name, "' registered twice");
  buffers_.push_back({name, t, persistent});
  return buffers_.back().tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_name(name, type_name_);
  MEMEL_CHECK(m != nullptr, "[", type_name_, "] child '", name, "' is null");
  for (auto& c : children_) MEMEL_CHECK(c.first != name, "[", type_name_, "] child '", name, "' registered twice");
  m->train(training_);
  children_.emplace_back(name, std::move(m));
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors r;
  for (auto& s : params_) r.emplace_back(s.name, s.tensor);
  if (recurse)
    for (auto& c : children_)
      for (auto& p : c.second->named_parameters(true)) r.emplace_back(c.first + "." + p.first, p.second);
  return r;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> r;
  for (auto& p : named_parameters(recurse)) r.push_back(p.second);
  return r;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors r;
  for (auto& s : buffers_) r.emplace_back(s.name, s.tensor);
  if (recurse)
    for (auto& c : children_)
      for (auto& p : c.second->named_buffers(true)) r.emplace_back(c.first + "." + p.first, p.second);
  return r;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules(const std::string& prefix) const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> r;
  for (auto& c : children_) {
    std::string name = prefix.empty() ? c.first : prefix + "." + c.first;
    r.emplace_back(name, c.second);
    for (auto& d : c.second->named_modules(name)) r.push_back(d);
  }
  return r;
}

std::shared_ptr<Module> Module::find_or_null(const std::string& path) const {
  if (path.empty()) return nullptr;
  const Module* cur = this;
  std::shared_ptr<Module> found;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    found = nullptr;
    for (auto& c : cur->children_)
      if (c.first == part) found = c.second;
    if (!found) return nullptr;
    cur = found.get();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return found;
}

std::shared_ptr<Module> Module::find(const std::string& path) const {
  auto m = find_or_null(path);
  if (m) return m;
  // Suggest the names that share the longest prefix with the request.
  std::string hint;
  size_t best = 0;
  for (auto& nm : named_modules()) {
    size_t k = 0;
    while (k < nm.first.size() && k < path.size() && nm.first[k] == path[k]) ++k;
    if (k > best) {
      best = k;
      hint = nm.first;
    }
  }
  MEMEL_FAIL("[", type_name_, "] no submodule named '", path, "'", hint.empty() ? "" : " (closest: '" + hint + "')");
}

Tensor* Module::find_tensor(const std::string& name) {
  size_t dot = name.rfind('.');
  Module* owner = this;
  std::string leaf = name;
  if (dot != std::string::npos) {
    auto m = find_or_null(name.substr(0, dot));
    if (!m) return nullptr;
    owner = m.get();
    leaf = name.substr(dot + 1);
  }
  for (auto& s : owner->params_)
    if (s.name == leaf) return &s.tensor;
  for (auto& s : owner->buffers_)
    if (s.name == leaf) return &s.tensor;
  return nullptr;
}

std::vector<std::string> Module::tap_points() const {
  std::vector<std::string> r;
  for (auto& t : taps_) r.push_back(":" + t);
  for (auto& nm : named_modules())
    for (auto& t : nm.second->taps_) r.push_back(nm.first + ":" + t);
  return r;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& p : named_parameters()) n += p.second.numel();
  return n;
}

void Module::wrap(const std::string& target, std::shared_ptr<Module> wrapper, const std::string& as) {
  size_t colon = target.find(':');
  std::string path = target.substr(0, colon);
  Module* m = this;
  std::shared_ptr<Module> holder;
  if (!path.empty()) {
    holder = find(path);
    m = holder.get();
  }
  if (colon == std::string::npos) {
    m->add_child(as, wrapper);
    m->output_wrappers_.push_back(wrapper);
    return;
  }
  std::string point = target.substr(colon + 1);
  bool declared = std::find(m->taps_.begin(), m->taps_.end(), point) != m->taps_.end();
  if (!declared) {
    std::string all;
    for (auto& t : m->taps_) all += (all.empty() ? "" : ", ") + t;
    MEMEL_FAIL("[wrap] module '", path, "' (", m->type_name_, ") has no point '", point,
               "'; its points: ", all.empty() ? "none" : all);
  }
  m->add_child(as + "_" + point, wrapper);
  m->tap_wrappers_[point].push_back(wrapper);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.second->train(on);
}

void Module::zero_grad() {
  for (auto& p : named_parameters()) p.second.zero_grad();
}

StateDict Module::state_dict() const {
  StateDict sd;
  for (auto& s : params_) sd[s.name] = s.tensor;
  for (auto& s : buffers_)
    if (s.persistent) sd[s.name] = s.tensor;
  for (auto& c : children_)
    for (auto& kv : c.second->state_dict()) sd[c.first + "." + kv.first] = kv.second;
  return sd;
}

Module& Module::to(Device d) {
  for (auto* list : {&params_, &buffers_})
    for (Slot& slot : *list) {
      Tensor& t = slot.tensor;
      if (!t.defined()) continue;
      t.move_to_(d);
      if (t.grad().defined()) {
        Tensor g = t.grad();
        g.move_to_(d);
      }
    }
  for (auto& [name, c] : children_) {
    (void)name;
    c->to(d);
  }
  return *this;
}

LoadReport Module::load_state_dict(const StateDict& sd, bool strict) {
  LoadReport rep;
  StateDict mine = state_dict();
  for (auto& kv : mine) {
    auto it = sd.find(kv.first);
    if (it == sd.end()) {
      rep.missing.push_back(kv.first);
      continue;
    }
    if (it->second.shape() != kv.second.shape()) {
      rep.mismatched.push_back(kv.first + ": checkpoint " + shape_str(it->second.shape()) + " vs model " +
                               shape_str(kv.second.shape()));
      continue;
    }
  }
  for (auto& kv : sd)
    if (!mine.count(kv.first)) rep.unexpected.push_back(kv.first);
  if (strict && !rep.ok()) MEMEL_FAIL("[load_state_dict] ", type_name_, ": ", rep.str());
  NoGradGuard ng;
  for (auto& kv : mine) {
    auto it = sd.find(kv.first);
    if (it == sd.end() || it->second.shape() != kv.second.shape()) continue;
    Tensor dst = kv.second;
    dst.copy_from(it->second.to_dtype(dst.dtype()));
  }
  return rep;
}

std::string Module::repr(int indent) const {
  std::ostringstream os;
  os << type_name_ << "(" << extra_repr();
  if (children_.empty()) {
    os << ")";
    return os.str();
  }
  os << "\n";
  for (auto& c : children_)
    os << std::string(indent + 2, ' ') << "(" << c.first << "): " << c.second->repr(indent + 2) << "\n";
  os << std::string(indent, ' ') << ")";
  return os.str();
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> mods) : Module("Sequential") {
  for (auto& m : mods) push_back(m);
}

void Sequential::push_back(std::shared_ptr<Module> m) {
  add_child(std::to_string(layers_.size()), m);
  layers_.push_back(std::move(m));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : layers_) y = (*m)(y);
  return y;
}

}  // namespace memel
