#include "layers/norm.h"

#include "layers/init.h"
#include "layers/layer_util.h"

namespace memel {

LayerNorm::LayerNorm(int64_t normalized_size, double eps, bool elementwise_affine)
    : Module("LayerNorm"), n_(normalized_size), eps_(eps) {
  MEMEL_CHECK(normalized_size > 0, "[LayerNorm] normalized_size must be positive, got ", normalized_size);
  MEMEL_CHECK(eps >= 0.0, "[LayerNorm] eps must be non-negative, got ", eps);
  if (elementwise_affine) {
    weight_ = register_parameter("weight", Tensor::empty({n_}));
    bias_ = register_parameter("bias", Tensor::empty({n_}));
  }
  reset_parameters();
}

void LayerNorm::reset_parameters() {
  if (!weight_.defined()) return;
  init::ones_(weight_);
  init::zeros_(bias_);
}

Tensor LayerNorm::forward(const Tensor& x) {
  MEMEL_CHECK(x.dim() >= 1 && x.shape().back() == n_, "[LayerNorm] expected input (..., ", n_, "), got ",
              shape_str(x.shape()));
  return layer_norm(x, weight_, bias_, eps_);
}

std::string LayerNorm::extra_repr() const {
  return str_cat("(", n_, ",), eps=", detail::py_float(eps_), ", elementwise_affine=", detail::py_bool(weight_.defined()));
}

}  // namespace memel
