// image-classification: Fashion-MNIST (IDX files) with an MLP, a CNN or a small Swin.
#include <cmath>

#include "config.h"
#include "data/fashion_mnist.h"
#include "models/small.h"
#include "models/swin.h"
#include "tensor/tensor_io.h"
#include "task.h"

namespace memel::train {
namespace {

class ImageClassification : public Task {
 public:
  explicit ImageClassification(const json& cfg) {
    const json& m = cfg.at("model");
    const std::string name = get_str(m, "name", "model");
    const json& mc = m.at("config");
    if (name == "mlp") {
      auto mlp = std::make_shared<MLP>(MLPConfig::from_json(mc));
      paper_ = mlp->paper_memel_targets();
      model_ = mlp;
    } else if (name == "cnn") {
      auto cnn = std::make_shared<CNN>(CNNConfig::from_json(mc));
      paper_ = cnn->paper_memel_targets();
      model_ = cnn;
    } else if (name == "swin") {
      auto swin = std::make_shared<SwinTransformer>(SwinConfig::from_json(mc, "model.config"));
      paper_ = paper_memel_targets(*swin);
      model_ = swin;
    } else {
      MEMEL_FAIL("[config] model.name: unknown image model '", name, "' (known: mlp, cnn, swin)");
    }
    // Pretrained weights (a safetensors file): Swin through its name mapping (timm,
    // torchvision; a different head is re-initialised and reported), others by name.
    if (m.at("pretrained").is_string()) {
      const std::string path = m.at("pretrained").get<std::string>();
      if (auto swin = std::dynamic_pointer_cast<SwinTransformer>(model_)) {
        load_swin_weights(*swin, path);
      } else {
        StateDict sd;
        for (auto& [k, t] : load_safetensors(path).tensors) sd[k] = t;
        model_->load_state_dict(sd);
      }
    }
    const json& d = cfg.at("data");
    const std::string ds = get_str(d, "dataset", "data");
    MEMEL_CHECK(ds == "fashion-mnist", "[config] data.dataset: unknown dataset '", ds, "' (known: fashion-mnist)");
    const std::string dir = get_str(d, "dir", "data");
    train_ = limit(fashion_mnist_dataset(dir, true), get_int(d, "train_limit", "data"));
    eval_ = limit(fashion_mnist_dataset(dir, false), get_int(d, "eval_limit", "data"));
    smoothing_ = get_num(d, "label_smoothing", "data");
  }

  std::shared_ptr<Module> model() override { return model_; }
  std::vector<std::string> paper_targets() const override { return paper_; }
  std::shared_ptr<const Dataset> train_set() override { return train_; }
  std::shared_ptr<const Dataset> eval_set() override { return eval_; }

  Tensor loss(const Example& b) override {
    Tensor logits = (*model_)(b.at("image"));
    return cross_entropy(logits, b.at("label"), -100, smoothing_);
  }
  void eval_reset() override { correct_ = total_ = 0, loss_sum_ = 0; }
  void eval_batch(const Example& b) override {
    Tensor logits = (*model_)(b.at("image"));
    const Tensor& y = b.at("label");
    loss_sum_ += cross_entropy(logits, y, -100, 0.0, Reduction::Sum).item();
    std::vector<int64_t> pred = argmax(logits, 1).to_vector_as<int64_t>(), lab = y.to_vector_as<int64_t>();
    for (size_t i = 0; i < pred.size(); ++i) correct_ += pred[i] == lab[i];
    total_ += static_cast<int64_t>(pred.size());
  }
  json eval_metrics() override {
    return {{"accuracy", total_ ? double(correct_) / double(total_) : 0.0},
            {"loss", total_ ? loss_sum_ / double(total_) : 0.0}};
  }
  std::string primary_metric() const override { return "accuracy"; }

 private:
  static std::shared_ptr<const Dataset> limit(std::shared_ptr<TensorDataset> d, int64_t n) {
    if (n <= 0 || n >= d->size()) return d;
    std::map<std::string, Tensor> cols;
    for (auto& [k, t] : d->columns()) cols[k] = slice(t, 0, 0, n).contiguous_copy();
    return std::make_shared<TensorDataset>(cols);
  }
  std::shared_ptr<Module> model_;
  std::vector<std::string> paper_;
  std::shared_ptr<const Dataset> train_, eval_;
  double smoothing_ = 0;
  int64_t correct_ = 0, total_ = 0;
  double loss_sum_ = 0;
};

const bool registered = register_task(
    "image-classification",
    {json{{"model", {{"name", "mlp"}, {"config", json::object()}, {"config_file", nullptr}, {"pretrained", nullptr}}},
          {"data",
           {{"dataset", "fashion-mnist"}, {"dir", "/usr/share/datasets/fashion-mnist"}, {"train_limit", 0},
            {"eval_limit", 0}, {"label_smoothing", 0.0}}}},
     [](const json& cfg) { return std::make_unique<ImageClassification>(cfg); }});

}  // namespace
}  // namespace memel::train
