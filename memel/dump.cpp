#include "memel/dump.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>

#include "core/file_io.h"
#include "core/json_int.h"
#include "memel/layer.h"
#include "tensor/tensor_io.h"

namespace memel {

double LayerDump::share_above(double tau) const {
  std::vector<double> m = ms_mean.to_vector();
  if (m.empty()) return 0;
  int64_t k = 0;
  for (double v : m) k += v > tau;
  return double(k) / double(m.size());
}

const LayerDump* MemelDump::find(const std::string& name) const {
  for (auto& l : layers)
    if (l.name == name) return &l;
  return nullptr;
}

namespace {

std::vector<int64_t> unravel(int64_t flat, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
    idx[d] = s[d] ? flat % s[d] : 0;
    flat = s[d] ? flat / s[d] : 0;
  }
  return idx;
}

void fill_summary(LayerDump& d, int64_t top_n) {
  std::vector<double> m = d.ms_mean.to_vector(), inh = d.inhibited.to_vector();
  d.mean_ms = m.empty() ? 0 : std::accumulate(m.begin(), m.end(), 0.0) / double(m.size());
  d.total_inhibited = std::accumulate(inh.begin(), inh.end(), 0.0);
  std::vector<int64_t> order(m.size());
  std::iota(order.begin(), order.end(), 0);
  const int64_t k = std::clamp<int64_t>(top_n, 0, static_cast<int64_t>(m.size()));
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
    const double ka = ms_sort_key(m[a]), kb = ms_sort_key(m[b]);
    return ka > kb || (ka == kb && a < b);
  });
  d.top.clear();
  for (int64_t i = 0; i < k; ++i) d.top.push_back({order[i], unravel(order[i], d.neuron_shape), m[order[i]], inh[order[i]]});
}


}  // namespace

std::vector<double> ms_hist_bounds(const std::vector<double>& inner) {
  std::vector<double> b{0.0};
  b.insert(b.end(), inner.begin(), inner.end());
  const size_t n = inner.size();
  b.push_back(n >= 2 ? inner[n - 1] * (inner[n - 1] / inner[n - 2]) : (n == 1 ? 2 * inner[0] : 1.0));
  return b;
}

MemelDump collect_memel_dump(const Module& root, int64_t step) {
  MemelDump dump;
  dump.step = step;
  for (auto& [name, layer] : memel_layers(root)) {
    if (!layer->initialized()) continue;
    LayerDump d;
    d.name = name;
    d.neuron_shape = layer->neuron_shape();
    d.batches = layer->batches_seen();
    d.options = layer->options().to_json();
    d.hist_edges = layer->hist_edges();
    StateDict sd = layer->state_dict();
    d.count = sd.at("count").contiguous_copy();
    d.mean = sd.at("mean").contiguous_copy();
    d.var = sd.at("var").contiguous_copy();
    d.inhibited = sd.at("inhibited").contiguous_copy();
    d.ms_hist = sd.at("ms_hist").contiguous_copy();
    std::vector<double> s = sd.at("ms_sum").to_vector(), n = sd.at("ms_n").to_vector();
    for (size_t i = 0; i < s.size(); ++i) s[i] = n[i] > 0 ? s[i] / n[i] : 0.0;
    d.ms_mean = Tensor::from_vector(s, d.neuron_shape, DType::F64);
    fill_summary(d, layer->options().dump_top);
    dump.layers.push_back(std::move(d));
  }
  return dump;
}

void write_memel_dump(const Module& root, const std::string& prefix, int64_t step, bool reset_window) {
  MemelDump dump = collect_memel_dump(root, step);
  std::map<std::string, Tensor> tensors;
  nlohmann::json j;
  j["format"] = "memel-stats/1";
  j["step"] = step;
  j["layers"] = nlohmann::json::array();
  for (auto& d : dump.layers) {
    tensors[d.name + ".count"] = d.count;
    tensors[d.name + ".mean"] = d.mean;
    tensors[d.name + ".var"] = d.var;
    tensors[d.name + ".inhibited"] = d.inhibited;
    tensors[d.name + ".ms_mean"] = d.ms_mean;
    tensors[d.name + ".ms_hist"] = d.ms_hist;
    nlohmann::json l;
    l["name"] = d.name;
    l["neuron_shape"] = d.neuron_shape;
    l["batches"] = d.batches;
    l["options"] = d.options;
    l["hist_edges"] = d.hist_edges;
    l["mean_ms"] = d.mean_ms;
    l["total_inhibited"] = d.total_inhibited;
    l["top"] = nlohmann::json::array();
    for (auto& t : d.top) l["top"].push_back({{"flat", t.flat}, {"index", t.index}, {"mean_ms", t.mean_ms}, {"inhibited", t.inhibited}});
    j["layers"].push_back(l);
  }
  save_safetensors(prefix + ".safetensors", tensors, {{"format", "memel-stats/1"}, {"step", std::to_string(step)}});
  write_file_atomic(prefix + ".json", j.dump(1));
  if (reset_window)
    for (auto& [name, layer] : memel_layers(root)) layer->reset_window();
}

MemelDump read_memel_dump(const std::string& path) {
  std::string prefix = path;
  for (const char* ext : {".json", ".safetensors"}) {
    const std::string e(ext);
    if (prefix.size() > e.size() && prefix.compare(prefix.size() - e.size(), e.size(), e) == 0)
      prefix = prefix.substr(0, prefix.size() - e.size());
  }
  std::ifstream f(prefix + ".json");
  MEMEL_CHECK(f.good(), "[memel dump] cannot open ", prefix, ".json (a dump is PREFIX.json + PREFIX.safetensors)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    MEMEL_FAIL("[memel dump] ", prefix, ".json is not valid JSON: ", e.what());
  }
  MEMEL_CHECK(j.is_object() && j.contains("format") && j["format"] == "memel-stats/1", "[memel dump] ", prefix,
              ".json is not a memel statistics dump (format memel-stats/1)");
  TensorFile tf = load_safetensors(prefix + ".safetensors");
  MemelDump dump;
  try {
    // Integers checked before conversion (core/json_int.h).
    auto integer = [&](const nlohmann::json& v, const char* what) {
      return json_int64_checked(v, false, "[memel dump] ", prefix, ".json: ", what, " is not an integer");
    };
    dump.step = integer(j.at("step"), "step");
    for (auto& l : j.at("layers")) {
      LayerDump d;
      d.name = l.at("name").get<std::string>();
      MEMEL_CHECK(l.at("neuron_shape").is_array(), "[memel dump] ", prefix, ".json: neuron_shape is not a list");
      for (const auto& s : l.at("neuron_shape")) {
        d.neuron_shape.push_back(integer(s, "a neuron_shape entry"));
        MEMEL_CHECK(d.neuron_shape.back() >= 0, "[memel dump] ", prefix, ".json: layer ", d.name,
                    ": negative neuron_shape entry");
      }
      d.batches = integer(l.at("batches"), "batches");
      d.options = l.at("options");
      d.hist_edges = l.at("hist_edges").get<std::vector<double>>();
      auto get = [&](const char* what) {
        auto it = tf.tensors.find(d.name + "." + what);
        MEMEL_CHECK(it != tf.tensors.end(), "[memel dump] ", prefix, ".safetensors lacks ", d.name, ".", what);
        return it->second;
      };
      d.count = get("count");
      d.mean = get("mean");
      d.var = get("var");
      d.inhibited = get("inhibited");
      d.ms_mean = get("ms_mean");
      d.ms_hist = get("ms_hist");
      // Everything the summaries and the inspector index must agree (a dump may come
      // from anywhere: docs/hardening.md).
      for (const auto& [what, t] : {std::pair<const char*, const Tensor*>{"count", &d.count}, {"mean", &d.mean},
                                    {"var", &d.var}, {"inhibited", &d.inhibited}, {"ms_mean", &d.ms_mean}})
        MEMEL_CHECK(t->shape() == d.neuron_shape, "[memel dump] ", prefix, ".safetensors: ", d.name, ".", what, " has shape ",
                    shape_str(t->shape()), ", expected the neuron shape ", shape_str(d.neuron_shape));
      const std::vector<double>& e = d.hist_edges;
      for (size_t i = 0; i < e.size(); ++i)
        MEMEL_CHECK(std::isfinite(e[i]) && e[i] > 0 && (i == 0 || e[i] > e[i - 1]), "[memel dump] ", prefix,
                    ".json: layer ", d.name, ": hist_edges must be positive and increasing");
      MEMEL_CHECK(d.ms_hist.dim() == 1 && d.ms_hist.numel() == static_cast<int64_t>(d.hist_edges.size()) + 1,
                  "[memel dump] ", prefix, ".safetensors: ", d.name, ".ms_hist has shape ", shape_str(d.ms_hist.shape()), ", expected (",
                  d.hist_edges.size() + 1, ",) for ", d.hist_edges.size(), " histogram edges");
      const bool has_top = d.options.is_object() && d.options.contains("dump_top");
      fill_summary(d, integer(has_top ? d.options["dump_top"] : nlohmann::json(20), "options.dump_top"));
      dump.layers.push_back(std::move(d));
    }
  } catch (const nlohmann::json::exception& e) {
    MEMEL_FAIL("[memel dump] ", prefix, ".json: missing or malformed field (", e.what(), ")");
  }
  return dump;
}

}  // namespace memel
