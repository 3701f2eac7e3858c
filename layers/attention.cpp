#include "layers/attention.h"

#include <cmath>
#include <limits>

#include "layers/layer_util.h"
#include "layers/linear.h"

namespace memel {

Tensor padding_mask_to_additive(const Tensor& keep, DType dtype) {
  MEMEL_CHECK(keep.defined() && keep.dim() == 2, "[attention] padding mask must be (B, T), got ",
              keep.defined() ? shape_str(keep.shape()) : std::string("undefined"));
  MEMEL_CHECK(is_floating(dtype), "[attention] additive mask dtype must be floating, got ", dtype_name(dtype));
  const double lowest = dtype == DType::F64 ? std::numeric_limits<double>::lowest()
                                            : static_cast<double>(std::numeric_limits<float>::lowest());
  NoGradGuard ng;
  const int64_t B = keep.size(0), T = keep.size(1);
  std::vector<double> kv = keep.to_vector();
  std::vector<double> add(kv.size());
  for (size_t i = 0; i < kv.size(); ++i) add[i] = kv[i] != 0 ? 0.0 : lowest;
  return Tensor::from_vector(add, {B, 1, 1, T}).to_dtype(dtype).to(keep.device());  // (B, 1, 1, T)
}

Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double dropout_p,
                           bool training, Generator* gen, double scale) {
  MEMEL_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "[attention_reference] expects q, k, v of shape (B, H, T, D), got ", shape_str(q.shape()), ", ",
              shape_str(k.shape()), ", ", shape_str(v.shape()));
  if (scale <= 0.0) scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  Tensor s = mul(matmul(q, transpose(k, -2, -1)), scale);  // (B, H, Tq, Tk)
  if (mask.defined()) s = add(s, mask.dtype() == s.dtype() ? mask.detach() : mask.to_dtype(s.dtype()));
  Tensor p = softmax(s, -1);                  // (B, H, Tq, Tk), contiguous
  p = dropout(p, dropout_p, training, gen);   // same flat indices as the fused kernel
  return matmul(p, v);                        // (B, H, Tq, Dv)
}

MultiHeadSelfAttention::MultiHeadSelfAttention(int64_t hidden_size, int64_t num_heads, double attention_dropout,
                                               bool fused, Generator* gen)
    : Module("MultiHeadSelfAttention"),
      hidden_(hidden_size),
      heads_(num_heads),
      p_(attention_dropout),
      fused_(fused),
      gen_(gen) {
  MEMEL_CHECK(num_heads > 0 && hidden_size > 0 && hidden_size % num_heads == 0, "[MultiHeadSelfAttention] hidden size ",
              hidden_size, " is not a positive multiple of the number of heads ", num_heads);
  MEMEL_CHECK(attention_dropout >= 0.0 && attention_dropout < 1.0,
              "[MultiHeadSelfAttention] attention dropout must be in [0, 1), got ", attention_dropout);
  query_ = register_module("query", std::make_shared<Linear>(hidden_size, hidden_size));
  key_ = register_module("key", std::make_shared<Linear>(hidden_size, hidden_size));
  value_ = register_module("value", std::make_shared<Linear>(hidden_size, hidden_size));
}

Tensor MultiHeadSelfAttention::forward(const Tensor& x, const Tensor& mask) {
  MEMEL_CHECK(x.dim() == 3 && x.size(2) == hidden_, "[MultiHeadSelfAttention] expected input (B, T, ", hidden_,
              "), got ", shape_str(x.shape()));
  const int64_t B = x.size(0), T = x.size(1), H = heads_, D = hidden_ / heads_;
  Tensor am;
  if (mask.defined()) {
    if (mask.dim() == 2) {
      MEMEL_CHECK(mask.size(0) == B && mask.size(1) == T, "[MultiHeadSelfAttention] padding mask ",
                  shape_str(mask.shape()), " does not match input ", shape_str(x.shape()));
      am = padding_mask_to_additive(mask, x.dtype());
    } else {
      MEMEL_CHECK(mask.dim() == 4 && is_floating(mask.dtype()), "[MultiHeadSelfAttention] mask must be a (B, T) ",
                  "padding mask or a rank-4 floating additive mask, got ", shape_str(mask.shape()), " ",
                  dtype_name(mask.dtype()));
      am = mask;
    }
  }
  auto heads = [&](const std::shared_ptr<Module>& proj) {
    return permute(reshape((*proj)(x), {B, T, H, D}), {0, 2, 1, 3});  // (B, H, T, D), a view
  };
  Tensor q = heads(query_), k = heads(key_), v = heads(value_);
  Tensor ctx = fused_ ? scaled_dot_product_attention(q, k, v, am, p_, is_training(), gen_)
                      : attention_reference(q, k, v, am, p_, is_training(), gen_);  // (B, H, T, D)
  ctx = reshape(permute(ctx, {0, 2, 1, 3}), {B, T, hidden_});                      // (B, T, C)
  return output(ctx);
}

std::string MultiHeadSelfAttention::extra_repr() const {
  return str_cat("hidden_size=", hidden_, ", num_heads=", heads_, ", attention_dropout=", detail::py_float(p_),
                 ", fused=", detail::py_bool(fused_));
}

}  // namespace memel
