#pragma once
// Adam and AdamW, as torch.optim.Adam / AdamW (single-tensor path, PyTorch 1.13+):
//   t += 1
//   AdamW: p = p * (1 - lr * weight_decay)          (decoupled decay)
//   Adam:  g = g + weight_decay * p                  (L2 folded into the gradient)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   amsgrad: vmax = max(vmax, v), used instead of v below
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps
//   p = p - (lr / (1 - beta1^t)) * m / denom
// Group options: "beta1", "beta2", "eps", "amsgrad" (0 or 1). State: "exp_avg",
// "exp_avg_sq", and "max_exp_avg_sq" with amsgrad.
#include "layers/module.h"
#include "optim/optimizer.h"

namespace memel {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& o = {});
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& defaults = {});

 protected:
  void check_group(const ParamGroup& g) const override;
  void update(const ParamGroup& group, const std::vector<Update>& params) override;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& o = {});
  Adam(std::vector<ParamGroup> groups, const AdamOptions& defaults = {});

 protected:
  void check_group(const ParamGroup& g) const override;
  void update(const ParamGroup& group, const std::vector<Update>& params) override;
};

// True for parameters that conventionally get no weight decay: tensors of rank <= 1
// (biases, norm scales), names ending in "bias", and names containing "LayerNorm" or
// "norm" (any case).
bool is_no_decay_param(const std::string& name, const Tensor& p);

// Two groups over the module's trainable parameters (requires_grad), with names:
// [0] decayed with `weight_decay`, [1] the no-decay ones with weight decay 0. lr and
// the other options stay unset (the optimizer's defaults). Either group may be empty.
std::vector<ParamGroup> param_groups_with_decay(const Module& module, double weight_decay);

}  // namespace memel
