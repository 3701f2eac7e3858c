#pragma once
// Embedding: a lookup table, as torch.nn.Embedding. Parameter "weight" (num, dim),
// initialised N(0, 1). With padding_idx, that row is zeroed at init and receives no
// gradient (its value is still returned, so loaded weights behave as in PyTorch).
#include <optional>

#include "layers/module.h"

namespace memel {

class Embedding : public Module {
 public:
  // padding_idx may be negative (counted from the end), as in PyTorch.
  Embedding(int64_t num_embeddings, int64_t embedding_dim, std::optional<int64_t> padding_idx = std::nullopt);
  Tensor forward(const Tensor& ids) override;  // ids (...) int32/int64 -> (..., dim)
  std::string extra_repr() const override;
  void reset_parameters();

  int64_t num_embeddings() const { return num_; }
  int64_t embedding_dim() const { return dim_; }
  std::optional<int64_t> padding_idx() const { return padding_idx_; }
  const Tensor& weight() const { return weight_; }

 private:
  int64_t num_, dim_;
  std::optional<int64_t> padding_idx_;  // normalised to [0, num)
  Tensor weight_;
};

}  // namespace memel
