#pragma once
// Small models for tests, examples and the toy MEmeL comparison: an MLP and a CNN for
// 28x28 single-channel images (Fashion-MNIST). Children are named so that memel layers
// can sit on any activation ("act1", "act2", ...).
#include <nlohmann/json.hpp>

#include "layers/module.h"

namespace memel {

// MLP: flatten -> [fc{i} -> act{i} -> drop{i}] for each hidden size -> head.
struct MLPConfig {
  int64_t in_features = 784;
  std::vector<int64_t> hidden = {256, 256, 256};
  int64_t num_classes = 10;
  double dropout = 0.1;
  static MLPConfig from_json(const nlohmann::json& j);  // keys: in_features, hidden, num_classes, dropout
  nlohmann::json to_json() const;
};

class MLP : public Module {
 public:
  explicit MLP(const MLPConfig& c);
  Tensor forward(const Tensor& x) override;  // (B, ...) -> (B, classes)
  // The middle hidden activation ("act2" for three hidden layers).
  std::vector<std::string> paper_memel_targets() const override;
  const MLPConfig& config() const { return cfg_; }

 private:
  MLPConfig cfg_;
  std::vector<std::shared_ptr<Module>> seq_;
};

// CNN: conv1(1->c1, 3x3, pad 1) act1 pool1 -> conv2(c1->c2) act2 pool2 -> flatten ->
// fc1(c2*7*7 -> hidden) act3 drop -> head.
struct CNNConfig {
  int64_t in_channels = 1, image_size = 28;
  int64_t c1 = 32, c2 = 64, hidden = 128, num_classes = 10;
  double dropout = 0.25;
  static CNNConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

class CNN : public Module {
 public:
  explicit CNN(const CNNConfig& c);
  Tensor forward(const Tensor& x) override;  // (B, C, H, W) -> (B, classes)
  std::vector<std::string> paper_memel_targets() const override { return {"act3"}; }

 private:
  CNNConfig cfg_;
  std::vector<std::shared_ptr<Module>> seq_;
};

}  // namespace memel
