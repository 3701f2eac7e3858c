#include "layers/dropout.h"

#include "layers/layer_util.h"

namespace memel {

Dropout::Dropout(double p, Generator* gen) : Module("Dropout"), p_(p), gen_(gen) {
  MEMEL_CHECK(p >= 0.0 && p <= 1.0, "[Dropout] probability must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), gen_); }

std::string Dropout::extra_repr() const { return "p=" + detail::py_float(p_); }

}  // namespace memel
