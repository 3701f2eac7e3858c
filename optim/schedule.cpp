#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/json_int.h"
#include "optim/optimizer.h"

namespace memel {

ScheduleConfig ScheduleConfig::constant(double lr, int64_t warmup) {
  ScheduleConfig c;
  c.kind = "constant";
  c.lr = lr;
  c.warmup_steps = warmup;
  return c;
}

ScheduleConfig ScheduleConfig::cosine(double lr, int64_t warmup, int64_t total, double min_lr) {
  ScheduleConfig c = constant(lr, warmup);
  c.kind = "cosine";
  c.total_steps = total;
  c.min_lr = min_lr;
  return c;
}

ScheduleConfig ScheduleConfig::linear(double lr, int64_t warmup, int64_t total, double min_lr) {
  ScheduleConfig c = cosine(lr, warmup, total, min_lr);
  c.kind = "linear";
  return c;
}

ScheduleConfig ScheduleConfig::step_decay(double lr, int64_t step_size, double gamma, int64_t warmup) {
  ScheduleConfig c = constant(lr, warmup);
  c.kind = "step";
  c.step_size = step_size;
  c.gamma = gamma;
  return c;
}

void ScheduleConfig::validate() const {
  const char* E = "[schedule] ";
  MEMEL_CHECK(kind == "constant" || kind == "cosine" || kind == "linear" || kind == "step", E, "unknown kind '", kind,
              "' (expected constant, cosine, linear or step)");
  MEMEL_CHECK(lr >= 0.0, E, "lr must be non-negative, got ", lr);
  MEMEL_CHECK(warmup_steps >= 0, E, "warmup_steps must be non-negative, got ", warmup_steps);
  if (kind == "cosine" || kind == "linear") {
    MEMEL_CHECK(total_steps > warmup_steps, E, kind, " needs total_steps > warmup_steps, got total_steps=",
                total_steps, " warmup_steps=", warmup_steps);
    MEMEL_CHECK(min_lr >= 0.0 && min_lr <= lr, E, "min_lr must be in [0, lr], got min_lr=", min_lr, " lr=", lr);
  }
  if (kind == "step") {
    MEMEL_CHECK(step_size > 0, E, "step_size must be positive, got ", step_size);
    MEMEL_CHECK(gamma > 0.0, E, "gamma must be positive, got ", gamma);
  }
}

namespace {
int64_t as_int(const nlohmann::json& v, const std::string& key) {
  return json_int64_checked(v, true, "[schedule] ", key, ": expected an integer");
}
}  // namespace

ScheduleConfig ScheduleConfig::from_json(const nlohmann::json& j) {
  MEMEL_CHECK(j.is_object(), "[schedule] config must be a JSON object, got ", j.dump());
  ScheduleConfig c;
  try {
    for (auto& kv : j.items()) {
      const std::string& k = kv.key();
      if (k == "kind") c.kind = kv.value().get<std::string>();
      else if (k == "lr") c.lr = kv.value().get<double>();
      else if (k == "min_lr") c.min_lr = kv.value().get<double>();
      else if (k == "warmup_steps") c.warmup_steps = as_int(kv.value(), k);
      else if (k == "total_steps") c.total_steps = as_int(kv.value(), k);
      else if (k == "step_size") c.step_size = as_int(kv.value(), k);
      else if (k == "gamma") c.gamma = kv.value().get<double>();
      else
        MEMEL_FAIL("[schedule] unknown key '", k,
                   "' (expected kind, lr, min_lr, warmup_steps, total_steps, step_size, gamma)");
    }
  } catch (const nlohmann::json::exception& e) {
    MEMEL_FAIL("[schedule] bad value in ", j.dump(), ": ", e.what());
  }
  c.validate();
  return c;
}

nlohmann::json ScheduleConfig::to_json() const {
  return {{"kind", kind},           {"lr", lr},       {"min_lr", min_lr},       {"warmup_steps", warmup_steps},
          {"total_steps", total_steps}, {"step_size", step_size}, {"gamma", gamma}};
}

LRSchedule::LRSchedule(ScheduleConfig config) : config_(std::move(config)) { config_.validate(); }

double LRSchedule::lr_at(int64_t s) const {
  const ScheduleConfig& c = config_;
  MEMEL_CHECK(s >= 0, "[schedule] step must be non-negative, got ", s);
  const int64_t w = c.warmup_steps;
  if (s < w) return c.lr * static_cast<double>(s) / static_cast<double>(w);
  if (c.kind == "constant") return c.lr;
  if (c.kind == "cosine") {
    double q = static_cast<double>(s - w) / static_cast<double>(c.total_steps - w);
    q = std::min(std::max(q, 0.0), 1.0);
    return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + std::cos(M_PI * q));
  }
  if (c.kind == "linear") {
    const double r = std::max(0.0, static_cast<double>(c.total_steps - s) / static_cast<double>(c.total_steps - w));
    return c.min_lr + (c.lr - c.min_lr) * r;
  }
  // step
  return c.lr * std::pow(c.gamma, static_cast<double>((s - w) / c.step_size));
}

double LRSchedule::factor_at(int64_t s) const { return config_.lr > 0.0 ? lr_at(s) / config_.lr : 0.0; }

void LRSchedule::set_step(int64_t s) {
  MEMEL_CHECK(s >= 0, "[schedule] step must be non-negative, got ", s);
  step_ = s;
}

void LRSchedule::apply(Optimizer& opt) const {
  const double f = factor_at(step_), lr = lr_at(step_);
  for (size_t i = 0; i < opt.num_groups(); ++i) {
    const ParamGroup& g = opt.param_groups()[i];
    // Groups whose initial lr equals the schedule's get lr_at exactly (no f * lr rounding).
    opt.set_lr(i, *g.initial_lr == config_.lr ? lr : *g.initial_lr * f);
  }
}

void LRSchedule::load_state_dict(const nlohmann::json& j) {
  MEMEL_CHECK(j.is_object() && j.contains("step") && j.at("step").is_number_integer(),
              "[schedule] state must be {\"step\": <integer>}, got ", j.dump());
  set_step(j.at("step").get<int64_t>());
}

}  // namespace memel
