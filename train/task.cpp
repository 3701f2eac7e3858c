#include "train/task.h"

#include "train/config.h"
#include "tensor/tensor_io.h"

namespace memel::train {

std::map<std::string, TaskInfo>& task_registry() {
  // The built-in tasks, named here (not registered from static initialisers, which a
  // program linking the static library would drop); research code adds its own.
  static std::map<std::string, TaskInfo> r = {{"image-classification", image_classification_task()},
                                              {"mlm-pretrain", mlm_pretrain_task()},
                                              {"nowcasting", nowcasting_task()},
                                              {"text-classification", text_classification_task()}};
  return r;
}

bool register_task(const std::string& name, TaskInfo info) {
  task_registry()[name] = std::move(info);
  return true;
}

std::unique_ptr<Task> make_task(const json& cfg) {
  const std::string t = cfg.at("task").get<std::string>();
  auto it = task_registry().find(t);
  MEMEL_CHECK(it != task_registry().end(), "[config] unknown task '", t, "'");
  return it->second.make(cfg);
}

int64_t Task::batch_items(const Example& batch) const {
  return batch.empty() ? 0 : batch.begin()->second.shape()[0];
}

void Task::save_weights(const std::string& path) {
  std::map<std::string, Tensor> params;
  for (auto& [name, t] : model()->named_parameters()) params[name] = t;
  save_safetensors(path, params, {{"format", "pt"}});
}

json default_config(const std::string& task) {
  auto it = task_registry().find(task);
  std::string known;
  for (auto& kv : task_registry()) known += (known.empty() ? "" : ", ") + kv.first;
  MEMEL_CHECK(it != task_registry().end(), "[config] unknown task '", task, "' (known: ", known, ")");
  json c = {
      {"task", task},
      {"name", ""},
      {"seed", 0},
      {"threads", 0},
      {"device", "cpu"},
      {"out", "runs"},
      {"model", {{"name", ""}, {"config", json::object()}, {"config_file", nullptr}, {"pretrained", nullptr}}},
      {"data", json::object()},
      {"optimizer",
       {{"type", "adamw"}, {"lr", 1e-3}, {"weight_decay", 0.01}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8},
        {"momentum", 0.9}, {"nesterov", false}}},
      {"schedule",
       {{"kind", "constant"}, {"warmup_steps", 0}, {"warmup_ratio", 0.0}, {"min_lr", 0.0}, {"step_size", 1000},
        {"gamma", 0.1}}},
      {"train",
       {{"epochs", 1}, {"steps", 0}, {"batch_size", 64}, {"eval_batch_size", 256}, {"grad_accum", 1},
        {"clip_grad_norm", 0.0}, {"eval_every", 0}, {"log_every", 50}, {"workers", 1}}},
      {"checkpoint", {{"every", 0}, {"keep_last", 2}, {"best", true}}},
      {"memel", nullptr},
  };
  for (auto& kv : it->second.defaults.items()) c[kv.key()] = kv.value();
  return c;
}

}  // namespace memel::train
