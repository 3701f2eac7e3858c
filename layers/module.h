#pragma once
// Module: the base of every layer and model. A module owns named parameters (trained),
// buffers (state such as running statistics; saved but not trained) and child modules,
// and so has hierarchical names such as "encoder.layer.3.attention.self.query.weight".
//
// Calling convention: `m(x)` runs `forward(x)` and then `output(y)`, which passes y
// through the wrappers attached to this module's output (memel layers sit there).
// A module whose forward takes other arguments ends it with `return output(y);`.
// Inside a forward, `tap("point", t)` marks a named point (e.g. a ConvGRU cell's
// candidate state) where wrappers can be attached as "path:point".
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"

namespace memel {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StateDict = std::map<std::string, Tensor>;

// What load_state_dict found; strict loading throws when any list is non-empty.
struct LoadReport {
  std::vector<std::string> missing;     // in the model, not in the checkpoint
  std::vector<std::string> unexpected;  // in the checkpoint, not in the model
  std::vector<std::string> mismatched;  // "name: checkpoint (a, b) vs model (c, d)"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string str() const;  // one line per problem kind
};

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return output(forward(x)); }
  // Passes a module's result through the wrappers attached to its output.
  Tensor output(Tensor y);
  // Passes an inner value through the wrappers attached at a declared point.
  Tensor tap(const std::string& point, Tensor t);

  // --- registration (in constructors) -----------------------------------------------
  Tensor& register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor t, bool persistent = true);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  void declare_tap(const std::string& point) { taps_.push_back(point); }

  // --- traversal ---------------------------------------------------------------------
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;  // persistent and not
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules(const std::string& prefix = "") const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  // Submodule by dotted path ("" is this module); throws naming the closest match.
  std::shared_ptr<Module> find(const std::string& path) const;
  std::shared_ptr<Module> find_or_null(const std::string& path) const;
  // Parameter or buffer by dotted name (nullptr when absent).
  Tensor* find_tensor(const std::string& name);
  // Every "path:point" tap declared in this tree.
  std::vector<std::string> tap_points() const;
  int64_t num_parameters() const;

  // --- wrapping ------------------------------------------------------------------
  // Attaches `wrapper` to the output of the submodule at `target` ("encoder.layer.4") or
  // to a declared point ("encoder.cell0:candidate"). The wrapper becomes a child of the
  // target named `as` (so its buffers are saved with the model) and runs on every call.
  void wrap(const std::string& target, std::shared_ptr<Module> wrapper, const std::string& as = "memel");
  const std::vector<std::shared_ptr<Module>>& output_wrappers() const { return output_wrappers_; }

  // --- modes, state --------------------------------------------------------------
  // Moves every parameter and buffer, and their gradients, to device d in place (handles
  // held by layers and optimizers follow). Returns *this.
  Module& to(Device d);

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  // Parameters and persistent buffers by full name.
  StateDict state_dict() const;
  // Copies values into the existing tensors. strict: throw on any problem listed in the
  // report. `skip_prefixes` are names expected to differ (e.g. a new head).
  LoadReport load_state_dict(const StateDict& sd, bool strict = true);

  const std::string& type_name() const { return type_name_; }
  // Module paths where the paper places memel layers in this model: what attach_memel's
  // "paper" expands to when the caller passes no targets. Empty: no published placement.
  virtual std::vector<std::string> paper_memel_targets() const { return {}; }
  virtual std::string extra_repr() const { return ""; }
  std::string repr(int indent = 0) const;  // tree view with shapes

 protected:
  void add_child(const std::string& name, std::shared_ptr<Module> m);

 private:
  struct Slot {
    std::string name;
    Tensor tensor;
    bool persistent = true;
  };
  std::string type_name_;
  bool training_ = true;
  std::vector<Slot> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::shared_ptr<Module>> output_wrappers_;
  std::vector<std::string> taps_;
  std::map<std::string, std::vector<std::shared_ptr<Module>>> tap_wrappers_;
};

// A chain of single-input modules named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(std::vector<std::shared_ptr<Module>> mods);
  void push_back(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;  // children() may also hold wrappers
};

}  // namespace memel
