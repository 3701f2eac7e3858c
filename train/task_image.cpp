// image-classification: Fashion-MNIST (IDX files) or an image folder in the ImageNet
// layout (data.dir/<train_dir>/<class>/*.jpg|png, data.dir/<eval_dir>/<class>/...) with
// an MLP, a CNN or a Swin Transformer.
#include <cmath>
#include <set>

#include "train/config.h"
#include "data/fashion_mnist.h"
#include "data/image_folder.h"
#include "models/small.h"
#include "models/swin.h"
#include "tensor/tensor_io.h"
#include "train/task.h"

namespace memel::train {
namespace {

class ImageClassification : public Task {
 public:
  explicit ImageClassification(const json& cfg) {
    const json& m = cfg.at("model");
    const std::string name = get_str(m, "name", "model");
    const json& mc = m.at("config");
    if (name == "mlp") {
      const MLPConfig c = MLPConfig::from_json(mc);
      outputs_ = c.num_classes;
      auto mlp = std::make_shared<MLP>(c);
      paper_ = mlp->paper_memel_targets();
      model_ = mlp;
    } else if (name == "cnn") {
      const CNNConfig c = CNNConfig::from_json(mc);
      outputs_ = c.num_classes;
      auto cnn = std::make_shared<CNN>(c);
      paper_ = cnn->paper_memel_targets();
      model_ = cnn;
    } else if (name == "swin") {
      const SwinConfig c = SwinConfig::from_json(mc, "model.config");
      outputs_ = c.num_classes;
      auto swin = std::make_shared<SwinTransformer>(c);
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
    const std::string dir = get_str(d, "dir", "data");
    const json& o = d.at("options");
    if (ds == "fashion-mnist") {
      MEMEL_CHECK(o.empty(), "[config] data.options: the fashion-mnist dataset takes no options");
      check_classes(10, "the fashion-mnist dataset in " + dir);
      train_ = limit(fashion_mnist_dataset(dir, true), get_int(d, "train_limit", "data"));
      eval_ = limit(fashion_mnist_dataset(dir, false), get_int(d, "eval_limit", "data"));
    } else if (ds == "image-folder") {
      ImageFolderOptions io = image_folder_options(o);
      io.seed = config_seed(cfg);
      const std::string sub_train = o.value("train_dir", std::string("train")),
                        sub_eval = o.value("eval_dir", std::string("val"));
      ImageFolderOptions eo = io;
      io.train = true;
      auto tr = std::make_shared<ImageFolder>(dir + "/" + sub_train, io);
      auto ev = std::make_shared<ImageFolder>(dir + "/" + sub_eval, eo);
      MEMEL_CHECK(tr->classes() == ev->classes(), "[data] the class folders of ", dir, "/", sub_train, " and ", dir,
                  "/", sub_eval, " differ");
      check_classes(static_cast<int64_t>(tr->classes().size()), "the image folder " + dir + "/" + sub_train);
      train_ = spread(tr, get_int(d, "train_limit", "data"));
      eval_ = spread(ev, get_int(d, "eval_limit", "data"));
    } else {
      MEMEL_FAIL("[config] data.dataset: unknown dataset '", ds, "' (known: fashion-mnist, image-folder)");
    }
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
  // data.options of an image folder (keys as ImageFolderOptions; mean/std per channel).
  static ImageFolderOptions image_folder_options(const json& o) {
    static const std::set<std::string> known = {"train_dir", "eval_dir",  "image_size", "crop_pct", "scale_min",
                                                "scale_max", "ratio_min", "ratio_max",  "hflip",    "channels",
                                                "mean",      "std",       "skip_corrupt", "max_pixels"};
    MEMEL_CHECK(o.is_object(), "[config] data.options: expected an object");
    for (auto& [k, v] : o.items())
      MEMEL_CHECK(known.count(k), "[config] data.options.", k, ": unknown option of the image-folder dataset");
    ImageFolderOptions io;
    const std::string w = "data.options";
    auto num = [&](const char* k, double& x) {
      if (o.contains(k)) x = get_num(o, k, w);
    };
    if (o.contains("image_size")) io.image_size = get_int(o, "image_size", w);
    if (o.contains("channels")) io.channels = get_int(o, "channels", w);
    num("crop_pct", io.crop_pct);
    num("scale_min", io.scale_min);
    num("scale_max", io.scale_max);
    num("ratio_min", io.ratio_min);
    num("ratio_max", io.ratio_max);
    num("hflip", io.hflip);
    if (o.contains("skip_corrupt")) io.skip_corrupt = get_bool(o, "skip_corrupt", w);
    if (o.contains("max_pixels")) {
      io.max_pixels = get_int(o, "max_pixels", w);
      MEMEL_CHECK(io.max_pixels > 0, "[config] ", w, ".max_pixels: expected a positive number of pixels, got ", io.max_pixels);
    }
    for (const char* k : {"train_dir", "eval_dir"})
      if (o.contains(k)) get_str(o, k, w);  // type check
    auto floats = [&](const char* k, std::vector<float>& x) {
      if (!o.contains(k)) return;
      MEMEL_CHECK(o.at(k).is_array() && !o.at(k).empty(), "[config] ", w, ".", k, ": expected a list of numbers");
      x.clear();
      for (const json& v : o.at(k)) {
        MEMEL_CHECK(v.is_number(), "[config] ", w, ".", k, ": expected a list of numbers, got ", v.dump());
        x.push_back(v.get<float>());
      }
    };
    floats("mean", io.mean);
    floats("std", io.std);
    if (io.channels == 1 && !o.contains("mean")) io.mean = {0.5f}, io.std = {0.5f};
    MEMEL_CHECK(int64_t(io.mean.size()) == io.channels && int64_t(io.std.size()) == io.channels, "[config] ", w,
                ".mean and .std need one value per channel (", io.channels, ")");
    return io;
  }
  // At most n examples of an image folder, evenly spread over its (class-sorted) files
  // so that every class keeps its share; n <= 0 keeps all.
  class Spread : public Dataset {
   public:
    Spread(std::shared_ptr<const Dataset> d, int64_t n) : d_(std::move(d)), n_(n) {}
    int64_t size() const override { return n_; }
    Example get(int64_t i) const override { return d_->get(map(i)); }
    Example get_batch_at_epoch(const std::vector<int64_t>& idx, int64_t epoch) const override {
      std::vector<int64_t> m;
      for (int64_t i : idx) m.push_back(map(i));
      return d_->get_batch_at_epoch(m, epoch);
    }

   private:
    int64_t map(int64_t i) const { return i * d_->size() / n_; }
    std::shared_ptr<const Dataset> d_;
    int64_t n_;
  };
  static std::shared_ptr<const Dataset> spread(std::shared_ptr<const Dataset> d, int64_t n) {
    if (n <= 0 || n >= d->size()) return d;
    return std::make_shared<Spread>(std::move(d), n);
  }
  static std::shared_ptr<const Dataset> limit(std::shared_ptr<TensorDataset> d, int64_t n) {
    if (n <= 0 || n >= d->size()) return d;
    std::map<std::string, Tensor> cols;
    for (auto& [k, t] : d->columns()) cols[k] = slice(t, 0, 0, n).contiguous_copy();
    return std::make_shared<TensorDataset>(cols);
  }
  // The dataset's classes must match the model's head: with more outputs the model
  // trains silently on a wrong problem, with fewer the labels fall outside the logits.
  void check_classes(int64_t n, const std::string& source) const {
    MEMEL_CHECK(n == outputs_, "[data] ", source, " has ", n, " classes but the model's head has ", outputs_,
                " outputs; set model.config.num_classes to ", n);
  }
  std::shared_ptr<Module> model_;
  int64_t outputs_ = 0;  // the head's outputs (model.config.num_classes)
  std::vector<std::string> paper_;
  std::shared_ptr<const Dataset> train_, eval_;
  double smoothing_ = 0;
  int64_t correct_ = 0, total_ = 0;
  double loss_sum_ = 0;
};

}  // namespace

TaskInfo image_classification_task() {
  return {json{{"model", {{"name", "mlp"}, {"config", json::object()}, {"config_file", nullptr}, {"pretrained", nullptr}}},
          {"data",
           {{"dataset", "fashion-mnist"}, {"dir", "/usr/share/datasets/fashion-mnist"}, {"train_limit", 0},
            {"eval_limit", 0}, {"label_smoothing", 0.0}, {"options", json::object()}}}},
     [](const json& cfg) { return std::make_unique<ImageClassification>(cfg); }};
}

}  // namespace memel::train
