#pragma once
// Optimizer: the base of SGD, Adam and AdamW, over parameter groups as in PyTorch.
//
//   auto groups = param_groups_with_decay(model, 0.01);   // optim/adamw.h
//   AdamWOptions o;  o.lr = 1e-4;
//   AdamW opt(groups, o);
//   loss = ...; backward(loss); opt.step(); opt.zero_grad();
//
// Each group holds parameters and their hyper-parameters: lr, weight_decay and the
// optimizer's own options ("momentum", "beta1", ...). Values a group leaves unset take
// the optimizer's defaults at construction. step() updates every parameter that has a
// gradient, in place on its storage, with recording off; parameters without a gradient
// are skipped and their state (step count included) is left as it is, as in PyTorch.
// Updates run as fused loops over contiguous CPU float32/float64 data.
//
// State (OptimizerState) = tensors + JSON, so it saves as one safetensors file whose
// "__metadata__" holds the JSON under the key "optimizer" (save_optimizer_state):
//   tensors: "state.<i>.<buffer>"  e.g. "state.0.exp_avg", "state.3.momentum_buffer";
//            <i> is the parameter's index counting through the groups in order, as in
//            PyTorch's state_dict.
//   json:    {"type": "AdamW", "format": 1,
//             "param_groups": [{"lr": 1e-4, "initial_lr": 1e-4, "weight_decay": 0.01,
//                               "options": {"beta1": 0.9, ...}, "params": [0, 1, 2],
//                               "names": ["encoder.weight", ...]}, ...],
//             "state": {"0": {"step": 12, "buffers": ["exp_avg", "exp_avg_sq"]}, ...}}
// Doubles survive the JSON round trip exactly, so a fresh optimizer loaded from a saved
// state continues bit for bit.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/tensor.h"

namespace memel {

struct ParamGroup {
  std::vector<Tensor> params;
  std::vector<std::string> names;          // optional: empty, or one per parameter
  std::optional<double> lr;                // unset: the optimizer's default
  std::optional<double> weight_decay;      // unset: the optimizer's default
  std::map<std::string, double> options;   // per-type options; missing keys take defaults
  std::optional<double> initial_lr;        // set at construction to lr; schedules scale from it

  ParamGroup() = default;
  explicit ParamGroup(std::vector<Tensor> ps) : params(std::move(ps)) {}
  // Value of an option once the optimizer has filled the defaults (throws if absent).
  double option(const std::string& key) const;
};

struct OptimizerState {
  std::map<std::string, Tensor> tensors;  // "state.<i>.<buffer>", CPU copies
  nlohmann::json meta;                    // the layout above
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient.
  void step();
  // Drops every parameter's gradient (PyTorch's set_to_none=True).
  void zero_grad();

  const std::string& type_name() const { return type_name_; }
  size_t num_groups() const { return groups_.size(); }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  ParamGroup& param_group(size_t i);
  double lr(size_t group = 0) const;
  void set_lr(double lr);               // every group
  void set_lr(size_t group, double lr);
  // Number of updates applied to parameter i (global index), 0 before its first.
  int64_t param_step(size_t i) const;
  size_t num_params() const { return state_.size(); }

  OptimizerState state_dict() const;
  // Restores hyper-parameters, step counts and buffers. The groups must hold the same
  // number of parameters with the same shapes (and names, where both sides have them).
  void load_state_dict(const OptimizerState& s);

  struct ParamState {
    int64_t step = 0;
    std::map<std::string, Tensor> buffers;  // e.g. "exp_avg"; created by update()
  };
  // One parameter to update: p and g have the same shape, dtype and device, and are
  // contiguous; the state's step count is already incremented (1 on the first update).
  struct Update {
    Tensor p, g;
    ParamState* state;
  };
  // `params` split by device, in order (a backend call updates one device's parameters).
  static std::vector<std::vector<Update>> by_device(const std::vector<Update>& params);

 protected:
  struct Defaults {
    double lr = 1e-3;
    double weight_decay = 0.0;
    std::map<std::string, double> options;  // every option the optimizer knows
  };
  Optimizer(std::string type_name, std::vector<ParamGroup> groups, Defaults defaults);
  // Checks an option's value (called for every group at construction and on load).
  virtual void check_group(const ParamGroup& g) const {}
  // Updates every parameter of a group that has a gradient, in place, through the
  // backend of their device (one call per device).
  virtual void update(const ParamGroup& group, const std::vector<Update>& params) = 0;


 private:
  std::string type_name_;
  Defaults defaults_;
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> state_;  // one per parameter, global index
};

// Saves an optimizer state as one safetensors file (JSON under the metadata key "optimizer").
void save_optimizer_state(const std::string& path, const OptimizerState& s);
OptimizerState load_optimizer_state(const std::string& path);

}  // namespace memel
