#include "train/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_int.h"
#include "core/sha256.h"
#include "tensor/tensor_io.h"
#include "train/faults.h"

namespace fs = std::filesystem;

namespace memel::train {

namespace {

const char* const kFiles[] = {"model.safetensors", "memel.safetensors", "optimizer.safetensors"};

// "step-" and digits, nothing else (so step-N.tmp/ and step-N.old/ never count).
bool is_checkpoint_name(const std::string& n) {
  return n.size() > 5 && n.rfind("step-", 0) == 0 &&
         std::all_of(n.begin() + 5, n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The first non-finite value of a tensor, as a message, or "".
std::string non_finite(const std::string& name, const Tensor& t) {
  if (!is_floating(t.dtype())) return "";
  auto report = [&](double v, int64_t i) {
    return name + " holds " + std::to_string(v) + " at element " + std::to_string(i);
  };
  const int64_t n = t.numel();
  if (t.is_contiguous() && t.dtype() == DType::F32) {  // what the loader gives: no copy
    const float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) return report(p[i], i);
    return "";
  }
  const std::vector<double> v = t.to_vector();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[size_t(i)])) return report(v[size_t(i)], i);
  return "";
}

json state_to_json(const TrainState& s) {
  return {{"step", s.step},
          {"loader", {{"epoch", s.loader_epoch}, {"batch", s.loader_batch}}},
          {"rng", {{"seed", s.rng_seed}, {"offset", s.rng_offset}}},
          {"schedule", s.schedule},
          {"best", std::isnan(s.best) ? json(nullptr) : json(s.best)},
          {"wall_s", s.wall_s},
          {"memel_mean_ms", s.memel_mean_ms}};
}

// state.json's fields, each range-checked (the file may have been edited by hand).
TrainState state_from_json(const json& st, const std::string& where) {
  auto nonneg = [&](const json& v, const char* what) {
    const int64_t x = json_int64_checked(v, false, "[memel-train] ", where, ": ", what, " is not an integer");
    MEMEL_CHECK(x >= 0, "[memel-train] ", where, ": ", what, " is ", x, ", expected >= 0");
    return x;
  };
  auto u64 = [&](const json& v, const char* what) {
    MEMEL_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), "[memel-train] ", where,
                ": ", what, " is not a non-negative integer");
    return v.get<uint64_t>();
  };
  auto field = [&](const json& j, const char* key) -> const json& {
    MEMEL_CHECK(j.is_object() && j.contains(key), "[memel-train] ", where, ": missing \"", key, "\"");
    return j.at(key);
  };
  TrainState s;
  s.step = nonneg(field(st, "step"), "step");
  MEMEL_CHECK(s.step <= (int64_t(1) << 50), "[memel-train] ", where, ": step ", s.step, " is out of range");
  s.loader_epoch = nonneg(field(field(st, "loader"), "epoch"), "loader.epoch");
  s.loader_batch = nonneg(field(field(st, "loader"), "batch"), "loader.batch");
  s.rng_seed = u64(field(field(st, "rng"), "seed"), "rng.seed");
  s.rng_offset = u64(field(field(st, "rng"), "offset"), "rng.offset");
  s.schedule = field(st, "schedule");
  const json& best = field(st, "best");
  MEMEL_CHECK(best.is_null() || (best.is_number() && std::isfinite(best.get<double>())), "[memel-train] ", where,
              ": best is ", best.dump(), ", expected a finite number or null");
  if (!best.is_null()) s.best = best.get<double>();
  if (st.contains("wall_s")) {
    const json& w = st.at("wall_s");
    MEMEL_CHECK(w.is_number() && std::isfinite(w.get<double>()) && w.get<double>() >= 0, "[memel-train] ", where,
                ": wall_s is ", w.dump(), ", expected a number >= 0");
    s.wall_s = w.get<double>();
  }
  if (st.contains("memel_mean_ms")) s.memel_mean_ms = st.at("memel_mean_ms");
  return s;
}

std::string state_digest(json st) {
  st.erase("digest");
  return sha256_hex(st.dump());
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", (long long)step);
  return buf;
}

Checkpoint load_checkpoint(const std::string& dir) {
  const fs::path d(dir);
  const std::string where = (d / "state.json").string();
  std::ifstream sf(d / "state.json");
  MEMEL_CHECK(sf.good(), "[memel-train] ", where, " is missing");
  const json st = json::parse(sf, nullptr, false);
  MEMEL_CHECK(!st.is_discarded() && st.is_object(), "[memel-train] ", where, " is not a JSON object (torn or edited)");
  // Digests: state.json's own, then every file it names. Checkpoints of memel before
  // digests (no "digest") are accepted unverified.
  const bool verified = st.contains("digest");
  if (verified) {
    MEMEL_CHECK(st["digest"].is_string() && st["digest"].get<std::string>() == state_digest(st), "[memel-train] ", where,
                ": its content does not match its digest (edited or damaged)");
    MEMEL_CHECK(st.contains("files") && st["files"].is_object(), "[memel-train] ", where, ": no \"files\" digests");
    for (auto& kv : st["files"].items()) {
      const std::string f = (d / kv.key()).string();
      MEMEL_CHECK(fs::exists(f), "[memel-train] ", f, " is missing (state.json lists it)");
      MEMEL_CHECK(kv.value().is_string() && sha256_file_hex(f) == kv.value().get<std::string>(), "[memel-train] ", f,
                  ": SHA-256 does not match the one in state.json (the file was changed or damaged)");
    }
    for (const char* f : kFiles)
      MEMEL_CHECK(!fs::exists(d / f) || st["files"].contains(f), "[memel-train] ", (d / f).string(),
                  " is not listed in state.json's digests");
  }
  Checkpoint c;
  c.dir = dir;
  c.state = state_from_json(st, where);
  for (const char* f : {"model.safetensors", "memel.safetensors"}) {
    const fs::path p = d / f;
    if (std::string(f) == "memel.safetensors" && !fs::exists(p)) continue;
    for (auto& [k, t] : load_safetensors(p.string()).tensors) {
      const std::string bad = non_finite(k, t);
      MEMEL_CHECK(bad.empty(), "[memel-train] ", p.string(), ": ", bad, " (a weight must be finite)");
      c.weights[k] = t;
    }
  }
  c.optimizer = load_optimizer_state((d / "optimizer.safetensors").string());
  for (auto& [k, t] : c.optimizer.tensors) {
    const std::string bad = non_finite(k, t);
    MEMEL_CHECK(bad.empty(), "[memel-train] ", (d / "optimizer.safetensors").string(), ": ", bad,
                " (optimizer state must be finite)");
  }
  return c;
}

Checkpointer::Checkpointer(std::string run_dir, int64_t keep_last)
    : dir_((fs::path(run_dir) / "checkpoints").string()), keep_last_(keep_last) {}

void Checkpointer::tidy() const {
  const fs::path d(dir_);
  if (!fs::is_directory(d)) return;
  std::vector<fs::path> found;
  for (auto& e : fs::directory_iterator(d)) found.push_back(e.path());
  for (const fs::path& p : found) {
    const std::string n = p.filename().string(), base = n.substr(0, n.find('.')), suffix = n.substr(base.size());
    if (!is_checkpoint_name(base)) continue;  // not ours (e.g. a user's step-16-backup/)
    if (suffix == ".replaced" && !fs::exists(d / base))
      fs::rename(p, d / base);
    else if (suffix == ".tmp" || suffix == ".old" || suffix == ".replaced")
      fs::remove_all(p);
  }
}

void Checkpointer::clear() const {
  const fs::path d(dir_);
  if (!fs::is_directory(d)) return;
  std::vector<fs::path> found;
  for (auto& e : fs::directory_iterator(d))
    if (is_checkpoint_name(e.path().filename().string())) found.push_back(e.path());
  for (const fs::path& p : found) {
    const fs::path aside = p.string() + ".old";
    fs::remove_all(aside);
    fs::rename(p, aside);
    fs::remove_all(aside);
  }
}

std::vector<std::string> Checkpointer::candidates() const {
  const fs::path d(dir_);
  std::map<std::string, fs::path> by_step;  // name -> directory
  if (fs::is_directory(d))
    for (auto& e : fs::directory_iterator(d)) {
      if (!e.is_directory()) continue;
      const std::string n = e.path().filename().string(), base = n.substr(0, n.find('.'));
      if (!is_checkpoint_name(base)) continue;
      if (n == base) by_step[base] = e.path();
      else if (n == base + ".replaced" && !fs::exists(d / base)) by_step[base] = e.path();
    }
  std::vector<std::string> out;
  for (auto it = by_step.rbegin(); it != by_step.rend(); ++it) out.push_back(it->second.string());
  return out;
}

Checkpoint Checkpointer::load_latest(const std::function<void(const std::string&)>& warn, bool none_ok) const {
  const std::vector<std::string> dirs = candidates();
  for (size_t i = 0; i < dirs.size(); ++i) {
    try {
      return load_checkpoint(dirs[i]);
    } catch (const std::exception& e) {
      warn("checkpoint " + dirs[i] + " is damaged: " + e.what() +
           (i + 1 < dirs.size() ? "; falling back to " + dirs[i + 1] : "; no older checkpoint is left"));
    }
  }
  MEMEL_CHECK(none_ok, "[memel-train] no complete checkpoint in ", dir_,
              dirs.empty() ? std::string("") : " (every one failed verification: see the warnings above)");
  return {};
}

std::string Checkpointer::save(int64_t s, const CheckpointContents& c) {
  const fs::path d(dir_), dir = d / checkpoint_name(s), tmp = d / (checkpoint_name(s) + ".tmp"),
                          replaced = d / (checkpoint_name(s) + ".replaced");
  try {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    fault_point("begin", s);
    c.write_model((tmp / "model.safetensors").string());
    fault_point("model", s);
    if (!c.memel.empty()) save_safetensors((tmp / "memel.safetensors").string(), c.memel);
    fault_point("memel", s);
    save_optimizer_state((tmp / "optimizer.safetensors").string(), c.optimizer);
    fault_point("optimizer", s);
    json st = state_to_json(c.state);
    json files = json::object();
    for (const char* f : kFiles)
      if (fs::exists(tmp / f)) files[f] = sha256_file_hex((tmp / f).string());
    st["files"] = files;
    st["digest"] = state_digest(st);
    write_file_atomic((tmp / "state.json").string(), st.dump(2) + "\n");
    fault_point("state", s);
    if (fs::exists(dir)) {  // the same step again: the old one is moved aside until the new one is in place
      fs::remove_all(replaced);
      fs::rename(dir, replaced);
      fault_point("replacing", s);
    }
    fs::rename(tmp, dir);
    fs::remove_all(replaced);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    if (!fs::exists(dir, ec) && fs::exists(replaced, ec)) fs::rename(replaced, dir, ec);
    MEMEL_FAIL("[memel-train] cannot write checkpoint ", dir.string(), ": ", e.what(), "; the last complete checkpoint is ",
               last_.empty() ? std::string("none") : last_);
  }
  last_ = dir.string();
  fault_point("renamed", s);
  // keep_last: remove the oldest step directories before this one (each moved aside
  // first); newer ones (a damaged checkpoint this run fell back from) are not counted.
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(d)) {
    const std::string n = e.path().filename().string();
    if (is_checkpoint_name(n) && n < checkpoint_name(s)) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  for (size_t i = 0; keep_last_ > 0 && i + size_t(keep_last_) - 1 < names.size(); ++i) {
    const fs::path victim = d / names[i], aside = d / (names[i] + ".old");
    fs::remove_all(aside);
    fs::rename(victim, aside);
    fault_point("pruning", s);
    fs::remove_all(aside);
  }
  return last_;
}

}  // namespace memel::train
