// nowcasting: the HKO-7-style ConvGRU encoder-forecaster on moving Fashion-MNIST objects,
// synthetic radar echoes, or radar frames in HKO-7's layout (data/frames.h); loss and
// metrics with HKO-7's conventions (models/nowcast_metrics.h). Each sequence of
// in_frames + out_frames frames is split into the input and the target. With validity
// masks (HKO-7's mask tree), the loss always uses them and the evaluation when
// eval.use_mask is true.
#include <map>
#include <set>

#include "train/config.h"
#include "data/frames.h"
#include "data/moving_objects.h"
#include "data/radar_synth.h"
#include "models/convgru.h"
#include "models/nowcast_metrics.h"
#include "train/task.h"

namespace memel::train {
namespace {

using namespace memel::nowcast;

// data.options is free-form per dataset; a key the dataset does not read is an error.
void check_option_keys(const std::string& ds, const json& o) {
  static const std::map<std::string, std::set<std::string>> known = {
      {"moving-objects",
       {"canvas", "num_objects", "speed_min", "speed_max", "train_sequences", "eval_sequences", "train_seed",
        "eval_seed"}},
      {"radar-synth",
       {"size", "min_blobs", "max_blobs", "max_speed", "noise_dbz", "train_sequences", "eval_sequences", "train_seed",
        "eval_seed"}},
      {"hko7-frames",
       {"root", "mask_root", "name_pattern", "interval_minutes", "check_frames", "train_days", "train_days_file",
        "train_stride", "eval_days", "eval_days_file", "eval_stride"}}};
  auto it = known.find(ds);
  if (it == known.end()) return;  // the unknown dataset is reported by the caller
  MEMEL_CHECK(o.is_object(), "[config] data.options: expected an object");
  for (auto& [k, v] : o.items()) {
    if (it->second.count(k)) continue;
    std::string all;
    for (const std::string& n : it->second) all += (all.empty() ? "" : ", ") + n;
    MEMEL_FAIL("[config] data.options.", k, ": unknown option of the ", ds, " dataset (options: ", all, ")");
  }
}

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
    auto opt_int = [&](const char* k, int64_t def) { return o.contains(k) ? get_int(o, k, "data.options") : def; };
    auto opt_num = [&](const char* k, double def) { return o.contains(k) ? get_num(o, k, "data.options") : def; };
    auto opt_str = [&](const char* k, const std::string& def) {
      return o.contains(k) ? get_str(o, k, "data.options") : def;
    };
    auto opt_strs = [&](const char* k) {
      std::vector<std::string> r;
      if (!o.contains(k)) return r;
      MEMEL_CHECK(o.at(k).is_array(), "[config] data.options.", k, ": expected a list of strings");
      for (const json& v : o.at(k)) {
        MEMEL_CHECK(v.is_string(), "[config] data.options.", k, ": expected a list of strings, got ", v.dump());
        r.push_back(v.get<std::string>());
      }
      return r;
    };
    const std::string ds = get_str(d, "dataset", "data");
    check_option_keys(ds, o);
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
    } else if (ds == "hko7-frames") {
      // Frames in HKO-7's layout under options.root; train and eval sequences from their
      // day lists; frames are box-reduced to the model's frame size.
      FrameSequenceOptions fo;
      fo.root = opt_str("root", "");
      MEMEL_CHECK(!fo.root.empty(), "[config] data.options.root: the hko7-frames dataset needs the frame folder");
      fo.mask_root = opt_str("mask_root", "");
      fo.name_pattern = opt_str("name_pattern", fo.name_pattern);
      fo.interval_minutes = opt_int("interval_minutes", fo.interval_minutes);
      fo.check_frames = o.contains("check_frames") ? get_bool(o, "check_frames", "data.options") : false;
      fo.seq_len = in_ + out_;
      fo.height = mc.frame_size.h;
      fo.width = mc.frame_size.w;
      FrameSequenceOptions eo = fo;
      fo.days = opt_strs("train_days");
      fo.days_file = opt_str("train_days_file", "");
      fo.stride = opt_int("train_stride", 1);
      eo.days = opt_strs("eval_days");
      eo.days_file = opt_str("eval_days_file", "");
      eo.stride = opt_int("eval_stride", fo.seq_len);
      MEMEL_CHECK(!(fo.days.empty() && fo.days_file.empty()) && !(eo.days.empty() && eo.days_file.empty()),
                  "[config] data.options: the hko7-frames dataset needs train_days or train_days_file and eval_days "
                  "or eval_days_file (days as \"YYYYMMDD\")");
      train_ = std::make_shared<FrameSequenceDataset>(fo);
      eval_ = std::make_shared<FrameSequenceDataset>(eo);
      MEMEL_CHECK(train_->size() > 0, "[data] no complete ", fo.seq_len, "-frame sequence of the train days under ",
                  fo.root);
      MEMEL_CHECK(eval_->size() > 0, "[data] no complete ", eo.seq_len, "-frame sequence of the eval days under ",
                  eo.root);
      has_mask_ = !fo.mask_root.empty();
    } else {
      MEMEL_FAIL("[config] data.dataset: '", ds, "' is not a nowcasting dataset (moving-objects, radar-synth, hko7-frames)");
    }
    use_mask_ = get_bool(cfg.at("eval"), "use_mask", "eval");
    MEMEL_CHECK(!use_mask_ || has_mask_, "[config] eval.use_mask needs validity masks (data.options.mask_root of "
                "the hko7-frames dataset)");
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
    return nowcast_loss(pred, target(f), has_mask_ ? target(b.at("mask")) : Tensor(), loss_);
  }
  void eval_reset() override {
    evaluator_->reset();
    copy_last_->reset();
  }
  void eval_batch(const Example& b) override {
    const Tensor& f = b.at("frames");
    Tensor truth = target(f);
    Tensor mask = use_mask_ ? target(b.at("mask")) : Tensor();
    evaluator_->update(clamp((*model_)(slice(f, 1, 0, in_)), 0.0, 1.0), truth, mask);
    // The copy-last-frame baseline on the same sequences.
    Tensor last = slice(f, 1, in_ - 1, in_);
    Shape s = truth.shape();
    copy_last_->update(contiguous(expand(last, s)), truth, mask);
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
  // The frames to predict of a (B, in + out, ...) sequence tensor.
  Tensor target(const Tensor& seq) const { return contiguous(slice(seq, 1, in_, in_ + out_)); }

  std::shared_ptr<EncoderForecaster> model_;
  bool has_mask_ = false, use_mask_ = false;
  std::vector<std::string> paper_;
  int64_t in_ = 5, out_ = 20;
  std::shared_ptr<const Dataset> train_, eval_;
  NowcastLossOptions loss_;
  std::unique_ptr<NowcastEvaluator> evaluator_, copy_last_;
};

}  // namespace

TaskInfo nowcasting_task() {
  return {json{{"model", {{"name", "convgru"}, {"config", {{"preset", "convgru-mmnist"}}}, {"config_file", nullptr}, {"pretrained", nullptr}}},
          {"data", {{"dataset", "moving-objects"}, {"dir", "/usr/share/datasets/fashion-mnist"}, {"options", json::object()}}},
          {"loss", {{"type", "balanced_mse_mae"}, {"mse_weight", 1.0}, {"mae_weight", 1.0}, {"global_scale", 5e-5},
                    {"thresholds", {0.5, 2, 5, 10, 30}}, {"balancing_weights", {1, 1, 2, 5, 10, 30}}}},
          {"eval", {{"use_mask", false}}}},
     [](const json& cfg) { return std::make_unique<Nowcasting>(cfg); }};
}

}  // namespace memel::train
