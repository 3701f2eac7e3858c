#include "train/device_task.h"

#include "tensor/backend.h"

namespace memel::train {

Device config_device(const std::string& name) {
  std::string avail;
  for (const Device& d : available_devices()) avail += (avail.empty() ? "" : ", ") + d.str();
  Device d;
  try {
    d = Device::parse(name);
  } catch (const std::exception& e) {
    MEMEL_FAIL("[config] device: '", name, "' is not a device name (this machine has: ", avail, "); ", e.what());
  }
  try {
    (void)backend_for(d);
  } catch (const std::exception& e) {
    MEMEL_FAIL("[config] device: '", name, "' is not available (this machine has: ", avail, "): ", e.what());
  }
  return d;
}

Example example_to(const Example& batch, Device device) {
  Example out;
  for (const auto& [k, t] : batch) out[k] = t.defined() ? t.to(device) : t;
  return out;
}

namespace {

class DeviceTask : public Task {
 public:
  DeviceTask(std::unique_ptr<Task> inner, Device d) : inner_(std::move(inner)), dev_(d) {}
  std::shared_ptr<Module> model() override { return inner_->model(); }
  std::vector<std::string> paper_targets() const override { return inner_->paper_targets(); }
  std::shared_ptr<const Dataset> train_set() override { return inner_->train_set(); }
  std::shared_ptr<const Dataset> eval_set() override { return inner_->eval_set(); }
  Tensor loss(const Example& b) override { return inner_->loss(example_to(b, dev_)); }
  void eval_reset() override { inner_->eval_reset(); }
  void eval_batch(const Example& b) override { inner_->eval_batch(example_to(b, dev_)); }
  json eval_metrics() override { return inner_->eval_metrics(); }
  std::string primary_metric() const override { return inner_->primary_metric(); }
  bool higher_is_better() const override { return inner_->higher_is_better(); }
  int64_t batch_items(const Example& b) const override { return inner_->batch_items(b); }
  void save_weights(const std::string& path) override { inner_->save_weights(path); }
  void before_forward(const Example& b) override { inner_->before_forward(example_to(b, dev_)); }

 private:
  std::unique_ptr<Task> inner_;
  Device dev_;
};

}  // namespace

std::unique_ptr<Task> on_device(std::unique_ptr<Task> inner, Device device) {
  return std::make_unique<DeviceTask>(std::move(inner), device);
}

}  // namespace memel::train
