#include "memel/validation.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace memel {

std::vector<InhibitionValidation> validate_inhibition(Module& model, MemelLayer& layer,
                                                      const std::function<Tensor(int64_t)>& loss_of,
                                                      const std::function<void()>& step, int64_t n,
                                                      const std::vector<std::string>& methods) {
  MEMEL_CHECK(layer.initialized(), "[validate] the memel layer has no statistics yet: run data through it first");
  MEMEL_CHECK(n >= 1, "[validate] need at least one sample, got ", n);
  const MemelOptions saved_opts = layer.options();
  std::vector<Tensor> params = model.parameters();
  std::vector<Tensor> backup;
  for (auto& p : params) backup.push_back(p.contiguous_copy());
  auto restore = [&] {
    NoGradGuard ng;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_from(backup[i]);
    model.zero_grad();
  };
  model.eval();
  layer.set_capture(true);
  std::vector<InhibitionValidation> out;
  try {
    for (const std::string& method : methods) {
      InhibitionValidation r;
      r.method = method;
      MemelOptions o = saved_opts;
      o.active_at_eval = true;
      o.warmup = 0;
      o.select = MemelSelect::TopK;
      o.k = 1;
      o.scope = MemelScope::Batch;
      if (method == "original") o.mode = MemelMode::Monitor;
      else if (method == "naive_a") o.mode = MemelMode::NaiveA;
      else if (method == "naive_b") o.mode = MemelMode::NaiveB;
      else if (method == "rd") o.mode = MemelMode::RD;
      else MEMEL_FAIL("[validate] unknown method '", method, "' (original, naive_a, naive_b, rd)");
      MemelOptions monitor = o;
      monitor.mode = MemelMode::Monitor;
      for (int64_t i = 0; i < n; ++i) {
        // Before: the most unusual element of this sample.
        layer.set_options(monitor);
        { NoGradGuard ng; loss_of(i); }
        std::vector<double> phi = layer.last_scores().to_vector(), z = layer.last_input().to_vector();
        size_t sel = 0;
        for (size_t k = 1; k < phi.size(); ++k)
          if (phi[k] > phi[sel]) sel = k;
        const double z0 = z[sel], p0 = phi[sel];
        // One step with the method applied.
        layer.set_options(o);
        Tensor loss = loss_of(i);
        backward(loss);
        step();
        // After: same sample, same (frozen) statistics, no inhibition.
        layer.set_options(monitor);
        { NoGradGuard ng; loss_of(i); }
        const double z1 = layer.last_input().to_vector()[sel];
        const double p1 = layer.score(layer.last_input()).to_vector()[sel];
        restore();
        if (p0 > 0) r.decrease_ratios.push_back(1.0 - p1 / p0);
        if (z0 != 0) r.total_update_ratios.push_back(std::abs(z1 / z0 - 1.0));
      }
      r.samples = n;
      for (double v : r.decrease_ratios) r.decrease_ratio += v / double(r.decrease_ratios.size());
      for (double v : r.total_update_ratios) r.total_update_ratio += v / double(r.total_update_ratios.size());
      out.push_back(r);
    }
  } catch (...) {
    layer.set_options(saved_opts);
    layer.set_capture(false);
    restore();
    throw;
  }
  layer.set_options(saved_opts);
  layer.set_capture(false);
  return out;
}

std::string format_validation_table(const std::vector<InhibitionValidation>& rows) {
  std::ostringstream os;
  os << "| method | samples | Decrease Ratio (mean) | Total Update Ratio (mean) |\n|---|---|---|---|\n";
  char buf[160];
  for (auto& r : rows) {
    std::snprintf(buf, sizeof buf, "| %s | %lld | %.4f%% | %.4f%% |\n", r.method.c_str(), (long long)r.samples,
                  100 * r.decrease_ratio, 100 * r.total_update_ratio);
    os << buf;
  }
  return os.str();
}

nlohmann::json validation_to_json(const std::vector<InhibitionValidation>& rows) {
  nlohmann::json j = nlohmann::json::array();
  for (auto& r : rows)
    j.push_back({{"method", r.method}, {"samples", r.samples}, {"decrease_ratio", r.decrease_ratio},
                 {"total_update_ratio", r.total_update_ratio}});
  return j;
}

}  // namespace memel
