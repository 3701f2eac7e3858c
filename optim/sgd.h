#pragma once
// SGD with momentum, dampening, Nesterov and (L2) weight decay, as torch.optim.SGD:
//   g = grad + weight_decay * p
//   buf = g on the first step, then buf = momentum * buf + (1 - dampening) * g
//   g = nesterov ? g + momentum * buf : buf        (when momentum != 0)
//   p = p - lr * g
// Group options: "momentum", "dampening", "nesterov" (0 or 1). State: "momentum_buffer".
#include "optim/optimizer.h"

namespace memel {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& o = {});
  SGD(std::vector<ParamGroup> groups, const SGDOptions& defaults = {});

 protected:
  void check_group(const ParamGroup& g) const override;
  void update(const ParamGroup& group, const std::vector<Update>& params) override;

 private:
  static Defaults defaults_for(const SGDOptions& o);
};

}  // namespace memel
