#pragma once
// A task: builds the model and the data from the resolved configuration, computes the
// training loss of a batch, and evaluates. memel-train's loop is the same for all.
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "layers/module.h"

namespace memel::train {

using nlohmann::json;

class Task {
 public:
  virtual ~Task() = default;
  virtual std::shared_ptr<Module> model() = 0;
  // The model's published memel placement ("at": "paper").
  virtual std::vector<std::string> paper_targets() const = 0;
  virtual std::shared_ptr<const Dataset> train_set() = 0;
  virtual std::shared_ptr<const Dataset> eval_set() = 0;
  // Forward and loss of a training batch (the model is in training mode).
  virtual Tensor loss(const Example& batch) = 0;
  // Evaluation: reset, accumulate batches (no grad, eval mode), then named metrics.
  virtual void eval_reset() = 0;
  virtual void eval_batch(const Example& batch) = 0;
  virtual json eval_metrics() = 0;
  // The metric that picks the best checkpoint, and its direction.
  virtual std::string primary_metric() const = 0;
  virtual bool higher_is_better() const { return true; }
  // Items in a batch (for throughput).
  virtual int64_t batch_items(const Example& batch) const;
  // Saves the model weights in the reference names (default: state_dict parameters).
  virtual void save_weights(const std::string& path);
  // Called before a forward so the task can set memel padding masks, etc.
  virtual void before_forward(const Example& batch) {}
};

using TaskFactory = std::function<std::unique_ptr<Task>(const json& cfg)>;
struct TaskInfo {
  json defaults;  // the task's sections of the default config (data, model, ...)
  TaskFactory make;
};
// Every known task by name: the built-in ones below, and any added with register_task.
std::map<std::string, TaskInfo>& task_registry();
TaskInfo image_classification_task();
TaskInfo mlm_pretrain_task();
TaskInfo nowcasting_task();
TaskInfo text_classification_task();
bool register_task(const std::string& name, TaskInfo info);
std::unique_ptr<Task> make_task(const json& cfg);

}  // namespace memel::train
