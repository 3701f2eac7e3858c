#include "models/small.h"

#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/pool.h"

namespace memel {

namespace {
void check_keys(const nlohmann::json& j, const std::vector<std::string>& keys, const char* what) {
  MEMEL_CHECK(j.is_object(), "[", what, "] config must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (auto& k : keys) ok |= k == it.key();
    std::string all;
    for (auto& k : keys) all += (all.empty() ? "" : ", ") + k;
    MEMEL_CHECK(ok, "[", what, "] unknown config key '", it.key(), "' (known: ", all, ")");
  }
}
template <typename T>
void read(const nlohmann::json& j, const char* key, T& out, const char* what) {
  if (!j.contains(key)) return;
  try {
    out = j.at(key).get<T>();
  } catch (const std::exception&) {
    MEMEL_FAIL("[", what, "] config key '", key, "' has the wrong type: ", j.at(key).dump());
  }
}
}  // namespace

MLPConfig MLPConfig::from_json(const nlohmann::json& j) {
  check_keys(j, {"in_features", "hidden", "num_classes", "dropout"}, "mlp");
  MLPConfig c;
  read(j, "in_features", c.in_features, "mlp");
  read(j, "hidden", c.hidden, "mlp");
  read(j, "num_classes", c.num_classes, "mlp");
  read(j, "dropout", c.dropout, "mlp");
  MEMEL_CHECK(!c.hidden.empty(), "[mlp] needs at least one hidden layer");
  return c;
}
nlohmann::json MLPConfig::to_json() const {
  return {{"in_features", in_features}, {"hidden", hidden}, {"num_classes", num_classes}, {"dropout", dropout}};
}

MLP::MLP(const MLPConfig& c) : Module("MLP"), cfg_(c) {
  seq_.push_back(register_module("flatten", std::make_shared<Flatten>(1)));
  int64_t in = c.in_features;
  for (size_t i = 0; i < c.hidden.size(); ++i) {
    const std::string n = std::to_string(i + 1);
    seq_.push_back(register_module("fc" + n, std::make_shared<Linear>(in, c.hidden[i])));
    seq_.push_back(register_module("act" + n, std::make_shared<ReLU>()));
    if (c.dropout > 0) seq_.push_back(register_module("drop" + n, std::make_shared<Dropout>(c.dropout)));
    in = c.hidden[i];
  }
  seq_.push_back(register_module("head", std::make_shared<Linear>(in, c.num_classes)));
}

Tensor MLP::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : seq_) y = (*m)(y);
  return y;
}

std::vector<std::string> MLP::paper_memel_targets() const {
  return {"act" + std::to_string(cfg_.hidden.size() / 2 + 1)};
}

CNNConfig CNNConfig::from_json(const nlohmann::json& j) {
  check_keys(j, {"in_channels", "image_size", "c1", "c2", "hidden", "num_classes", "dropout"}, "cnn");
  CNNConfig c;
  read(j, "in_channels", c.in_channels, "cnn");
  read(j, "image_size", c.image_size, "cnn");
  read(j, "c1", c.c1, "cnn");
  read(j, "c2", c.c2, "cnn");
  read(j, "hidden", c.hidden, "cnn");
  read(j, "num_classes", c.num_classes, "cnn");
  read(j, "dropout", c.dropout, "cnn");
  MEMEL_CHECK(c.image_size % 4 == 0, "[cnn] image_size must be a multiple of 4, got ", c.image_size);
  return c;
}
nlohmann::json CNNConfig::to_json() const {
  return {{"in_channels", in_channels}, {"image_size", image_size}, {"c1", c1}, {"c2", c2},
          {"hidden", hidden}, {"num_classes", num_classes}, {"dropout", dropout}};
}

CNN::CNN(const CNNConfig& c) : Module("CNN"), cfg_(c) {
  seq_.push_back(register_module("conv1", std::make_shared<Conv2d>(c.in_channels, c.c1, 3, ConvArgs().with_padding(1))));
  seq_.push_back(register_module("act1", std::make_shared<ReLU>()));
  seq_.push_back(register_module("pool1", std::make_shared<MaxPool2d>(2)));
  seq_.push_back(register_module("conv2", std::make_shared<Conv2d>(c.c1, c.c2, 3, ConvArgs().with_padding(1))));
  seq_.push_back(register_module("act2", std::make_shared<ReLU>()));
  seq_.push_back(register_module("pool2", std::make_shared<MaxPool2d>(2)));
  seq_.push_back(register_module("flatten", std::make_shared<Flatten>(1)));
  const int64_t s = c.image_size / 4;
  seq_.push_back(register_module("fc1", std::make_shared<Linear>(c.c2 * s * s, c.hidden)));
  seq_.push_back(register_module("act3", std::make_shared<ReLU>()));
  if (c.dropout > 0) seq_.push_back(register_module("drop", std::make_shared<Dropout>(c.dropout)));
  seq_.push_back(register_module("head", std::make_shared<Linear>(c.hidden, c.num_classes)));
}

Tensor CNN::forward(const Tensor& x) {
  MEMEL_CHECK(x.dim() == 4 && x.shape()[1] == cfg_.in_channels && x.shape()[2] == cfg_.image_size &&
                  x.shape()[3] == cfg_.image_size,
              "[cnn] expects (B, ", cfg_.in_channels, ", ", cfg_.image_size, ", ", cfg_.image_size, ") images, got ",
              shape_str(x.shape()));
  Tensor y = x;
  for (auto& m : seq_) y = (*m)(y);
  return y;
}

}  // namespace memel
