#include "train/step.h"

#include <cmath>
#include <sstream>

#include "autograd/node.h"
#include "optim/clip.h"
#include "train/data_parallel.h"

namespace memel::train {

StepResult train_step(const std::vector<Tensor>& params, Optimizer& opt, const StepOptions& o,
                      const std::function<Tensor(int64_t micro)>& loss_of) {
  StepResult r;
  for (int64_t a = 0; a < o.accum; ++a) {
    Tensor loss = loss_of(a);
    const double lv = loss.item();
    if (!std::isfinite(lv)) {
      std::ostringstream os;
      os << "loss is " << lv;
      throw NonFiniteLoss(os.str());
    }
    r.loss += lv;
    // The last backward of the step starts the gradient sums bucket by bucket.
    const auto armed = o.sync && a == o.accum - 1 ? o.sync->arm() : nullptr;
    backward(o.accum > 1 ? mul(loss, 1.0 / double(o.accum)) : loss);
  }
  r.loss /= double(o.accum);
  if (o.sync) {
    o.sync->finish();  // the global batch's gradient on every rank: the norm below is global
    r.loss = o.sync->mean(r.loss);
  }
  if (o.clip > 0 || o.grad_norm) {
    r.grad_norm = o.clip > 0 ? clip_grad_norm(params, o.clip) : grad_norm(params);
    // A finite loss can still come with non-finite gradients (a NaN input behind a ReLU).
    if (!std::isfinite(r.grad_norm)) {
      std::ostringstream os;
      os << "gradient norm is " << r.grad_norm;
      throw NonFiniteLoss(os.str());
    }
  }
  opt.step();
  opt.zero_grad();
  return r;
}

}  // namespace memel::train
