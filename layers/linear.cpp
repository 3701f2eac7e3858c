#include "layers/linear.h"

#include <cmath>

#include "layers/init.h"
#include "layers/layer_util.h"

namespace memel {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : Module("Linear"), in_features_(in_features), out_features_(out_features) {
  MEMEL_CHECK(in_features >= 0 && out_features >= 0, "[Linear] sizes must be non-negative, got in_features=",
              in_features, " out_features=", out_features);
  weight_ = register_parameter("weight", Tensor::empty({out_features, in_features}));
  if (bias) bias_ = register_parameter("bias", Tensor::empty({out_features}));
  reset_parameters();
}

void Linear::reset_parameters() {
  if (weight_.numel() > 0) init::kaiming_uniform_(weight_, std::sqrt(5.0));
  if (bias_.defined()) {
    const double b = init::default_bias_bound(weight_);
    init::uniform_(bias_, -b, b);
  }
}

Tensor Linear::forward(const Tensor& x) {
  MEMEL_CHECK(x.dim() >= 1 && x.shape().back() == in_features_, "[Linear] expected input (..., ", in_features_,
              "), got ", shape_str(x.shape()));
  return linear(x, weight_, bias_);  // (..., out)
}

std::string Linear::extra_repr() const {
  return str_cat("in_features=", in_features_, ", out_features=", out_features_,
                 ", bias=", detail::py_bool(bias_.defined()));
}

}  // namespace memel
