#include "memel/options.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_int.h"

namespace memel {

const char* to_string(MemelMode m) {
  switch (m) {
    case MemelMode::RD: return "rd";
    case MemelMode::NaiveA: return "naive_a";
    case MemelMode::NaiveB: return "naive_b";
    case MemelMode::Scaled: return "scaled";
    case MemelMode::Monitor: return "monitor";
  }
  return "?";
}
const char* to_string(MemelSelect s) {
  switch (s) {
    case MemelSelect::TopK: return "top_k";
    case MemelSelect::TopLog: return "top_log";
    case MemelSelect::Ratio: return "ratio";
    case MemelSelect::Threshold: return "threshold";
  }
  return "?";
}
const char* to_string(MemelScope s) { return s == MemelScope::Sample ? "sample" : "batch"; }
const char* to_string(MemelNeurons n) { return n == MemelNeurons::Element ? "element" : "channel"; }
const char* to_string(MemelTies t) { return t == MemelTies::LowerIndex ? "lower_index" : "all"; }
const char* to_string(MemelStatsDType d) { return d == MemelStatsDType::Input ? "input" : "float32"; }

MemelOptions MemelOptions::preset_options(const std::string& name) {
  MemelOptions o;  // the member defaults are the paper preset
  o.preset = name;
  if (name == "paper") return o;
  if (name == "exact") {
    o.forget_batches = 0;
    return o;
  }
  if (name == "authors") {
    o.score_after_update = true;
    o.forget_batches = 10;
    o.count_ahead = true;
    o.ties = MemelTies::All;
    o.stats_dtype = MemelStatsDType::Float32;
    return o;
  }
  MEMEL_FAIL("[config] memel.preset: unknown value '", name, "' (expected one of: paper, authors, exact)");
}

double MemelOptions::effective_delta() const {
  switch (mode) {
    case MemelMode::RD: return 1.0;
    case MemelMode::NaiveA: return 0.0;
    case MemelMode::NaiveB: return -1.0;
    case MemelMode::Scaled: return delta;
    case MemelMode::Monitor: return 0.0;
  }
  return 1.0;
}

namespace {

template <typename E>
E parse_enum(const nlohmann::json& v, const std::string& key, const std::vector<std::pair<const char*, E>>& names) {
  MEMEL_CHECK(v.is_string(), "[config] ", key, ": expected a string, got ", v.type_name());
  std::string s = v.get<std::string>();
  std::string all;
  for (auto& n : names) {
    if (s == n.first) return n.second;
    all += (all.empty() ? "" : ", ") + std::string(n.first);
  }
  MEMEL_FAIL("[config] ", key, ": unknown value '", s, "' (expected one of: ", all, ")");
}

double num(const nlohmann::json& v, const std::string& key) {
  MEMEL_CHECK(v.is_number(), "[config] ", key, ": expected a number, got ", v.type_name());
  return v.get<double>();
}
int64_t integer(const nlohmann::json& v, const std::string& key) {
  return json_int64_checked(v, true, "[config] ", key, ": expected an integer");
}
bool boolean(const nlohmann::json& v, const std::string& key) {
  MEMEL_CHECK(v.is_boolean(), "[config] ", key, ": expected true or false, got ", v.dump());
  return v.get<bool>();
}

}  // namespace

MemelOptions MemelOptions::from_json(const nlohmann::json& j, const std::string& where) {
  MEMEL_CHECK(j.is_object(), "[config] ", where, ": expected an object, got ", j.type_name());
  MemelOptions o;
  if (j.contains("preset")) {
    const nlohmann::json& p = j.at("preset");
    MEMEL_CHECK(p.is_string(), "[config] ", where, ".preset: expected \"paper\", \"authors\" or \"exact\", got ",
                p.dump());
    o = preset_options(p.get<std::string>());
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const std::string key = where + "." + k;
    const nlohmann::json& v = it.value();
    if (k == "preset") {
      continue;
    } else if (k == "at") {
      if (v.is_string()) {
        o.at = {v.get<std::string>()};
      } else {
        MEMEL_CHECK(v.is_array(), "[config] ", key, ": expected \"paper\" or a list of module names, got ",
                    v.type_name());
        o.at.clear();
        for (auto& e : v) {
          MEMEL_CHECK(e.is_string(), "[config] ", key, ": expected strings, got ", e.dump());
          o.at.push_back(e.get<std::string>());
        }
      }
    } else if (k == "neurons") {
      o.neurons = parse_enum<MemelNeurons>(v, key, {{"element", MemelNeurons::Element}, {"channel", MemelNeurons::Channel}});
    } else if (k == "channel_axis") {
      o.channel_axis = integer(v, key);
    } else if (k == "max_count") {
      MEMEL_FAIL("[config] ", key, " (a cap in samples) was replaced by ", where,
                 ".forget_batches: the history's weight stops at that many batches (default 10, the authors' "
                 "value; 0 or null = never forget)");
    } else if (k == "forget_batches") {
      o.forget_batches = v.is_null() ? 0 : integer(v, key);
    } else if (k == "count_ahead") {
      o.count_ahead = boolean(v, key);
    } else if (k == "ties") {
      o.ties = parse_enum<MemelTies>(v, key, {{"lower_index", MemelTies::LowerIndex}, {"all", MemelTies::All}});
    } else if (k == "stats_dtype") {
      o.stats_dtype =
          parse_enum<MemelStatsDType>(v, key, {{"input", MemelStatsDType::Input}, {"float32", MemelStatsDType::Float32}});
    } else if (k == "eps") {
      o.eps = num(v, key);
    } else if (k == "warmup") {
      o.warmup = integer(v, key);
    } else if (k == "score_after_update") {
      o.score_after_update = boolean(v, key);
    } else if (k == "select") {
      o.select = parse_enum<MemelSelect>(v, key, {{"top_k", MemelSelect::TopK}, {"top_log", MemelSelect::TopLog},
                                                  {"ratio", MemelSelect::Ratio}, {"threshold", MemelSelect::Threshold}});
    } else if (k == "k") {
      o.k = integer(v, key);
    } else if (k == "ratio") {
      o.ratio = num(v, key);
    } else if (k == "threshold") {
      o.threshold = num(v, key);
    } else if (k == "scope") {
      o.scope = parse_enum<MemelScope>(v, key, {{"sample", MemelScope::Sample}, {"batch", MemelScope::Batch}});
    } else if (k == "mode") {
      o.mode = parse_enum<MemelMode>(v, key, {{"rd", MemelMode::RD}, {"naive_a", MemelMode::NaiveA},
                                              {"naive_b", MemelMode::NaiveB}, {"scaled", MemelMode::Scaled},
                                              {"monitor", MemelMode::Monitor}});
    } else if (k == "delta") {
      o.delta = num(v, key);
    } else if (k == "active_at_eval") {
      o.active_at_eval = boolean(v, key);
    } else if (k == "regularizer") {
      MEMEL_CHECK(v.is_string() && (v == "none" || v == "decorrelation"), "[config] ", key,
                  ": expected \"none\" or \"decorrelation\", got ", v.dump());
      o.regularizer = v.get<std::string>();
    } else if (k == "lambda") {
      o.lambda = num(v, key);
    } else if (k == "hist_bins") {
      o.hist_bins = integer(v, key);
    } else if (k == "hist_min") {
      o.hist_min = num(v, key);
    } else if (k == "hist_max") {
      o.hist_max = num(v, key);
    } else if (k == "dump_top") {
      o.dump_top = integer(v, key);
    } else {
      MEMEL_FAIL("[config] unknown key '", key,
                 "' (memel options: preset, at, neurons, channel_axis, forget_batches, count_ahead, stats_dtype, eps, "
                 "warmup, score_after_update, select, k, ratio, threshold, scope, ties, mode, delta, active_at_eval, regularizer, lambda, hist_bins, hist_min, hist_max, dump_top)");
    }
  }
  if (j.contains("delta") && o.mode != MemelMode::Scaled)
    MEMEL_FAIL("[config] ", where, ".delta is only used with mode \"scaled\" (mode is \"", to_string(o.mode), "\")");
  o.validate();
  return o;
}

nlohmann::json MemelOptions::to_json() const {
  nlohmann::json j;
  j["preset"] = preset;
  j["at"] = at;
  j["neurons"] = to_string(neurons);
  j["channel_axis"] = channel_axis;
  j["forget_batches"] = forget_batches;
  j["count_ahead"] = count_ahead;
  j["stats_dtype"] = to_string(stats_dtype);
  j["eps"] = eps;
  j["warmup"] = warmup;
  j["score_after_update"] = score_after_update;
  j["select"] = to_string(select);
  j["k"] = k;
  j["ratio"] = ratio;
  j["threshold"] = threshold;
  j["scope"] = to_string(scope);
  j["ties"] = to_string(ties);
  j["mode"] = to_string(mode);
  if (mode == MemelMode::Scaled) j["delta"] = delta;
  j["active_at_eval"] = active_at_eval;
  j["regularizer"] = regularizer;
  if (regularizer != "none") j["lambda"] = lambda;
  j["hist_bins"] = hist_bins;
  j["hist_min"] = hist_min;
  j["hist_max"] = hist_max;
  j["dump_top"] = dump_top;
  return j;
}

nlohmann::json MemelOptions::expand_section(const nlohmann::json& section, const std::vector<std::string>& passthrough,
                                            const std::string& where) {
  if (section.is_null()) return section;
  MEMEL_CHECK(section.is_object(), "[config] ", where, ": expected an object or null, got ", section.type_name());
  nlohmann::json layer = section, kept = nlohmann::json::object();
  for (const std::string& k : passthrough)
    if (layer.contains(k)) {
      kept[k] = layer[k];
      layer.erase(k);
    }
  nlohmann::json out = from_json(layer, where).to_json();
  for (auto it = kept.begin(); it != kept.end(); ++it) out[it.key()] = it.value();
  return out;
}

void MemelOptions::validate() const {
  MEMEL_CHECK(forget_batches >= 0, "[memel] forget_batches must be >= 0 batches (0 = never forget), got ",
              forget_batches);
  MEMEL_CHECK(eps >= 0 && std::isfinite(eps), "[memel] eps must be a finite number >= 0, got ", eps);
  MEMEL_CHECK(warmup >= 0, "[memel] warmup must be >= 0 batches, got ", warmup);
  MEMEL_CHECK(k >= 1, "[memel] k must be >= 1, got ", k);
  MEMEL_CHECK(ratio > 0 && ratio <= 1, "[memel] ratio must be in (0, 1], got ", ratio);
  MEMEL_CHECK(threshold >= 0 && std::isfinite(threshold), "[memel] threshold must be a finite number >= 0, got ",
              threshold);
  MEMEL_CHECK(std::isfinite(delta), "[memel] delta must be finite, got ", delta);
  MEMEL_CHECK(hist_bins >= 1 && hist_min > 0 && hist_max > hist_min, "[memel] histogram needs hist_bins >= 1 and 0 < "
              "hist_min < hist_max");
  MEMEL_CHECK(lambda >= 0 && std::isfinite(lambda), "[memel] lambda must be a finite number >= 0, got ", lambda);
  MEMEL_CHECK(dump_top >= 0, "[memel] dump_top must be >= 0, got ", dump_top);
}

}  // namespace memel
