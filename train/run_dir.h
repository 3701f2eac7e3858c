#pragma once
// The run directory's own files: the lock that makes one process its only writer, the
// metrics log, and the record of the run's configuration (config.resolved.json, the
// original, never overwritten; config.history.jsonl, each accepted change on resume).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace memel::train {

using nlohmann::json;

// An exclusive lock on DIR/.lock (flock) for the life of the object: a second process
// (or a second object in this one) is refused with a message naming the holder's pid.
// Creates DIR when missing; creation and locking are race-free (mkdir -p, then the lock
// decides who writes).
class RunDirLock {
 public:
  explicit RunDirLock(const std::string& dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

// metrics.jsonl as read back: every line's text, and the records that parse. A line that
// does not parse (a torn write) is reported in `warnings` and skipped; lines after it are
// kept. A torn last line (no newline at the end) is `torn_tail`.
struct MetricsFile {
  struct Line {
    std::string text;
    bool parsed = false;
    json record;  // when parsed
  };
  std::vector<Line> lines;
  std::vector<std::string> warnings;
  bool torn_tail = false;
};
MetricsFile read_metrics(const std::string& path);
// The text a resumed run keeps: the records up to `step` (later ones belong to the lost
// segment), unparsable lines in between kept as they are (reported, never destroyed), a
// torn tail dropped.
std::string metrics_kept_for_resume(const MetricsFile& m, int64_t step);

// Keys (dotted paths) whose values differ between two resolved configs, sorted.
std::vector<std::string> config_differences(const json& a, const json& b);
// Keys a resume may change without being named: they cannot change the results
// (threads: results are thread-count independent; out, name: where the run is written).
bool is_harmless_config_key(const std::string& key);
// config_differences (of the memel-expanded forms, with_memel_expanded) less the harmless
// keys: what a resume or a reuse must not ignore.
std::vector<std::string> result_changing_differences(const json& a, const json& b);
// The configuration a run directory's training has been using: config.resolved.json with
// every change in config.history.jsonl applied. Null when the directory has no config.
json recorded_config(const std::string& run_dir);
// Appends {"step", "changed": {key: {"from", "to"}}} to config.history.jsonl.
void record_config_change(const std::string& run_dir, int64_t step, const json& from, const json& to,
                          const std::vector<std::string>& keys);
// A value at a dotted path ("optimizer.lr"), or null when absent.
json config_value(const json& cfg, const std::string& key);

}  // namespace memel::train
