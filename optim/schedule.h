#pragma once
// Learning-rate schedules as functions of the step (the number of optimizer updates
// already taken; 0 for the first update). Every kind may start with a linear warm-up
// from 0: lr(s) = lr * s / warmup_steps for s < warmup_steps (Hugging Face's
// convention, so the very first update uses lr 0 when warm-up is on). After warm-up:
//   constant: lr
//   cosine:   min_lr + (lr - min_lr) * (1 + cos(pi * q)) / 2,  q = (s - w) / (total - w) clamped to [0, 1]
//   linear:   min_lr + (lr - min_lr) * max(0, (total - s) / (total - w))
//   step:     lr * gamma ^ floor((s - w) / step_size)
//
//   LRSchedule sched(ScheduleConfig::cosine(3e-4, 1000, 100000, 1e-5));
//   for (...) { sched.apply(opt); backward(loss); opt.step(); sched.step(); }
//
// apply() sets every group's lr to initial_lr * lr_at(step) / lr (PyTorch's LambdaLR
// rule, so groups keep their ratios; with one base lr every group gets lr_at(step)).
// The schedule's only state is its step counter.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace memel {

class Optimizer;

struct ScheduleConfig {
  std::string kind = "constant";  // constant | cosine | linear | step
  double lr = 1e-3;               // peak / base learning rate
  double min_lr = 0.0;            // cosine, linear: value reached at total_steps
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;        // cosine, linear
  int64_t step_size = 1;          // step: decay every step_size steps
  double gamma = 0.1;             // step: factor per decay

  static ScheduleConfig constant(double lr, int64_t warmup = 0);
  static ScheduleConfig cosine(double lr, int64_t warmup, int64_t total, double min_lr = 0.0);
  static ScheduleConfig linear(double lr, int64_t warmup, int64_t total, double min_lr = 0.0);
  static ScheduleConfig step_decay(double lr, int64_t step_size, double gamma, int64_t warmup = 0);
  // Reads {"kind": ..., "lr": ..., "min_lr", "warmup_steps", "total_steps", "step_size",
  // "gamma"}; absent keys keep their defaults, unknown keys are an error.
  static ScheduleConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  void validate() const;  // throws naming the bad field
};

class LRSchedule {
 public:
  explicit LRSchedule(ScheduleConfig config);
  double lr_at(int64_t step) const;
  double factor_at(int64_t step) const;  // lr_at(step) / config.lr (0 when lr is 0)
  double lr() const { return lr_at(step_); }

  int64_t current_step() const { return step_; }
  void set_step(int64_t s);
  void step() { ++step_; }
  // Sets the optimizer's group lrs for the current step.
  void apply(Optimizer& opt) const;

  const ScheduleConfig& config() const { return config_; }
  nlohmann::json state_dict() const { return {{"step", step_}}; }
  void load_state_dict(const nlohmann::json& j);

 private:
  ScheduleConfig config_;
  int64_t step_ = 0;
};

}  // namespace memel
