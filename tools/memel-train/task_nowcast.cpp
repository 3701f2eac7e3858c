// nowcasting: the HKO-7-style ConvGRU encoder-forecaster on moving Fashion-MNIST objects
// or synthetic radar echoes; loss and metrics with HKO-7's conventions
// (models/nowcast_metrics.h). Each sequence of in_frames + out_frames frames is split
// into the input and the target.
#include "config.h"
#include "data/moving_objects.h"
#include "data/radar_synth.h"
#include "models/convgru.h"
#include "models/nowcast_metrics.h"
#include "task.h"

namespace memel::train {
namespace {

using namespace memel::nowcast;

class Nowcasting : public Task {
 public:
  explicit Nowcasting(const json& cfg) {
    const json& m = cfg.at("model");
    MEMEL_CHECK(get_str(m, "name", "model") == "convgru", "[config] model.name: nowcasting supports \"convgru\"");
    ConvGRUConfig mc = ConvGRUConfig::from_json(m.at("config"), "model.config");
    model_ = std::make_shared<EncoderForecaster>(mc);
    paper_ = paper_memel_targets(*model_);
    in_ = mc.in_frames;
    out_ = mc.out_frames;
    const json& d = cfg.at("data");
    const json& o = d.at("options");
    auto opt_int = [&](const char* k, int64_t def) { return o.contains(k) ? o.at(k).get<int64_t>() : def; };
    auto opt_num = [&](const char* k, double def) { return o.contains(k) ? o.at(k).get<double>() : def; };
    const std::string ds = get_str(d, "dataset", "data");
    if (ds == "moving-objects") {
      MovingObjectsOptions mo;
      mo.seq_len = in_ + out_;
      mo.canvas = opt_int("canvas", 64);
      mo.num_objects = opt_int("num_objects", 2);
      mo.speed_min = opt_num("speed_min", 0.05);
      mo.speed_max = opt_num("speed_max", 0.15);
      const std::string dir = get_str(d, "dir", "data");
      mo.num_sequences = opt_int("train_sequences", 10000);
      mo.seed = static_cast<uint64_t>(opt_int("train_seed", 1));
      train_ = moving_fashion_mnist(dir, true, mo);
      mo.num_sequences = opt_int("eval_sequences", 500);
      mo.seed = static_cast<uint64_t>(opt_int("eval_seed", 1000));
      eval_ = moving_fashion_mnist(dir, false, mo);
    } else if (ds == "radar-synth") {
      RadarSynthOptions ro;
      ro.seq_len = in_ + out_;
      ro.size = opt_int("size", 96);
      ro.min_blobs = opt_int("min_blobs", ro.min_blobs);
      ro.max_blobs = opt_int("max_blobs", ro.max_blobs);
      ro.max_speed = opt_num("max_speed", ro.max_speed);
      ro.noise_dbz = opt_num("noise_dbz", ro.noise_dbz);
      ro.num_sequences = opt_int("train_sequences", 10000);
      ro.seed = static_cast<uint64_t>(opt_int("train_seed", 1));
      train_ = std::make_shared<RadarSynthDataset>(ro);
      ro.num_sequences = opt_int("eval_sequences", 500);
      ro.seed = static_cast<uint64_t>(opt_int("eval_seed", 1000));
      eval_ = std::make_shared<RadarSynthDataset>(ro);
    } else {
      MEMEL_FAIL("[config] data.dataset: '", ds, "' is not wired into memel-train yet (supported: moving-objects, "
                 "radar-synth; the HKO-7 frame reader is data/frames.h)");
    }
    json loss = cfg.at("loss");
    const std::string type = loss.value("type", std::string("balanced_mse_mae"));
    loss.erase("type");
    loss_ = NowcastLossOptions::from_json(loss, "loss");
    loss_.balanced = type == "balanced_mse_mae";
    evaluator_ = std::make_unique<NowcastEvaluator>(out_, loss_.balance);
    copy_last_ = std::make_unique<NowcastEvaluator>(out_, loss_.balance);
  }

  std::shared_ptr<Module> model() override { return model_; }
  std::vector<std::string> paper_targets() const override { return paper_; }
  std::shared_ptr<const Dataset> train_set() override { return train_; }
  std::shared_ptr<const Dataset> eval_set() override { return eval_; }

  Tensor loss(const Example& b) override {
    const Tensor& f = b.at("frames");  // (B, in + out, 1, H, W)
    Tensor pred = (*model_)(slice(f, 1, 0, in_));
    return nowcast_loss(pred, contiguous(slice(f, 1, in_, in_ + out_)), Tensor(), loss_);
  }
  void eval_reset() override {
    evaluator_->reset();
    copy_last_->reset();
  }
  void eval_batch(const Example& b) override {
    const Tensor& f = b.at("frames");
    Tensor truth = contiguous(slice(f, 1, in_, in_ + out_));
    evaluator_->update(clamp((*model_)(slice(f, 1, 0, in_)), 0.0, 1.0), truth);
    // The copy-last-frame baseline on the same sequences.
    Tensor last = slice(f, 1, in_ - 1, in_);
    Shape s = truth.shape();
    copy_last_->update(contiguous(expand(last, s)), truth);
  }
  json eval_metrics() override {
    json j = evaluator_->to_json();
    json c = copy_last_->to_json();
    for (const char* k : {"mse", "b_mse", "b_mae"}) j[std::string("copy_last_") + k] = c[k];
    return j;
  }
  std::string primary_metric() const override { return "b_mse"; }
  bool higher_is_better() const override { return false; }

 private:
  std::shared_ptr<EncoderForecaster> model_;
  std::vector<std::string> paper_;
  int64_t in_ = 5, out_ = 20;
  std::shared_ptr<const Dataset> train_, eval_;
  NowcastLossOptions loss_;
  std::unique_ptr<NowcastEvaluator> evaluator_, copy_last_;
};

const bool registered = register_task(
    "nowcasting",
    {json{{"model", {{"name", "convgru"}, {"config", {{"preset", "convgru-mmnist"}}}, {"config_file", nullptr}, {"pretrained", nullptr}}},
          {"data", {{"dataset", "moving-objects"}, {"dir", "/usr/share/datasets/fashion-mnist"}, {"options", json::object()}}},
          {"loss", {{"type", "balanced_mse_mae"}, {"mse_weight", 1.0}, {"mae_weight", 1.0}, {"global_scale", 5e-5},
                    {"thresholds", {0.5, 2, 5, 10, 30}}, {"balancing_weights", {1, 1, 2, 5, 10, 30}}}},
          {"eval", {{"thresholds", {0.5, 2, 5, 10, 30}}, {"use_mask", false}, {"baselines", {"copy_last"}}}}},
     [](const json& cfg) { return std::make_unique<Nowcasting>(cfg); }});

}  // namespace
}  // namespace memel::train
