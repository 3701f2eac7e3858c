#include "memel/dump.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>

#include "core/file_io.h"
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
  const int64_t k = std::min<int64_t>(top_n, static_cast<int64_t>(m.size()));
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return m[a] > m[b] || (m[a] == m[b] && a < b); });
  d.top.clear();
  for (int64_t i = 0; i < k; ++i) d.top.push_back({order[i], unravel(order[i], d.neuron_shape), m[order[i]], inh[order[i]]});
}


}  // namespace

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
  MEMEL_CHECK(j.is_object() && j.value("format", "") == "memel-stats/1", "[memel dump] ", prefix,
              ".json is not a memel statistics dump (format memel-stats/1)");
  TensorFile tf = load_safetensors(prefix + ".safetensors");
  MemelDump dump;
  try {
    dump.step = j.at("step").get<int64_t>();
    for (auto& l : j.at("layers")) {
      LayerDump d;
      d.name = l.at("name").get<std::string>();
      d.neuron_shape = l.at("neuron_shape").get<Shape>();
      d.batches = l.at("batches").get<int64_t>();
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
      MEMEL_CHECK(d.ms_mean.shape() == d.neuron_shape, "[memel dump] ", d.name, ".ms_mean has shape ",
                  shape_str(d.ms_mean.shape()), ", expected ", shape_str(d.neuron_shape));
      fill_summary(d, d.options.value("dump_top", 20));
      dump.layers.push_back(std::move(d));
    }
  } catch (const nlohmann::json::exception& e) {
    MEMEL_FAIL("[memel dump] ", prefix, ".json: missing or malformed field (", e.what(), ")");
  }
  return dump;
}

}  // namespace memel
