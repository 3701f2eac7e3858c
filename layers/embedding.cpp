#include "layers/embedding.h"

#include "layers/init.h"

namespace memel {

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, std::optional<int64_t> padding_idx)
    : Module("Embedding"), num_(num_embeddings), dim_(embedding_dim) {
  MEMEL_CHECK(num_embeddings > 0 && embedding_dim > 0, "[Embedding] sizes must be positive, got num_embeddings=",
              num_embeddings, " embedding_dim=", embedding_dim);
  if (padding_idx) {
    int64_t p = *padding_idx;
    MEMEL_CHECK(p >= -num_embeddings && p < num_embeddings, "[Embedding] padding_idx ", p,
                " must be within [-", num_embeddings, ", ", num_embeddings, ")");
    padding_idx_ = p < 0 ? p + num_embeddings : p;
  }
  weight_ = register_parameter("weight", Tensor::empty({num_embeddings, embedding_dim}));
  reset_parameters();
}

void Embedding::reset_parameters() {
  init::normal_(weight_, 0.0, 1.0);
  if (padding_idx_) {
    NoGradGuard ng;
    select(weight_.detach(), 0, *padding_idx_).zero_();
  }
}

Tensor Embedding::forward(const Tensor& ids) {
  Tensor y = embedding(weight_, ids);  // (..., dim)
  if (!padding_idx_ || !autograd::needs_grad({weight_})) return y;
  // Rows looked up at padding_idx take the (detached) padding row: same values, no gradient.
  Tensor is_pad = unsqueeze(eq(ids, Tensor::scalar(static_cast<double>(*padding_idx_), ids.dtype(), ids.device())), -1);  // (..., 1)
  Tensor pad_row = select(weight_.detach(), 0, *padding_idx_);                                             // (dim)
  return where(is_pad, pad_row, y);                                                                         // (..., dim)
}

std::string Embedding::extra_repr() const {
  std::string s = str_cat(num_, ", ", dim_);
  if (padding_idx_) s += str_cat(", padding_idx=", *padding_idx_);
  return s;
}

}  // namespace memel
