#include "layers/activation.h"

#include "layers/layer_util.h"

namespace memel {

std::string LeakyReLU::extra_repr() const { return "negative_slope=" + detail::py_float(slope_); }

std::string Flatten::extra_repr() const { return str_cat("start_dim=", start_, ", end_dim=", end_); }

}  // namespace memel
