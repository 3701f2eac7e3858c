#pragma once
// The training loop of memel-train: run directory, metrics, checkpoints, resume,
// statistics dumps, progress, and comparisons of MEmeL variants.
//
// Run directory (architecture.md):
//   config.resolved.json
//   metrics.jsonl        one JSON object per event: {"step", "split": "train"|"eval"|"perf", ...}
//                        train: loss, lr, grad_norm; eval: the task's metrics; perf: throughput
//                        (items/s), step_ms, data_wait_ms (timings live only in "perf" lines,
//                        so train/eval lines of a resumed run equal an unbroken run's exactly)
//   config.history.jsonl changes accepted on resume (--allow-change), with their step
//   .lock                held by the one process writing the run (train/run_dir.h)
//   checkpoints/step-NNNNNNNN/  self-verifying checkpoints (train/checkpoint.h)
//   checkpoints/best/    weights of the best evaluation (by the task's primary metric)
//   stats/step-NNNNNNNN.safetensors + .json   memel statistics dumps
//   summary.json         final and best metrics, steps, wall time
#include <atomic>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/step.h"  // NonFiniteLoss

namespace memel::train {

using nlohmann::json;

struct RunOptions {
  std::string out_dir;   // run directory
  std::string resume;    // "" (fresh), a run directory, or a checkpoint directory
  bool quiet = false;
  bool dry_run = false;  // build everything, run one batch, write nothing
  bool allow_existing = false;  // a fresh run may reuse the directory (--compare)
  std::vector<std::string> allow_change;  // config keys a resume may change
  // After training: the paper's inhibition check (memel/validation.h) on this many
  // evaluation samples at the first memel layer; table printed, validation.json written.
  int64_t validate = 0;
  double validate_lr = 1e-4;
};

// Set by the SIGINT handler: the loop writes a checkpoint and stops.
extern std::atomic<bool> g_interrupted;

// Thrown after an interrupt was handled and checkpointed (exit code 130).
struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The units (each usable on its own from research code): train/run_dir.h (lock, metrics
// log, config record), train/checkpoint.h (writing, verifying, falling back),
// train/evaluator.h (the evaluation pass), train/step.h (one optimisation step).
// run_training below is the loop that ties them together.
//
// Resume: the lock is taken, then the config is compared with the run's (keys that differ
// refuse the resume unless named in allow_change; accepted changes go to
// config.history.jsonl) and the checkpoint is loaded and verified (a damaged newest one
// falls back to the previous one with a warning), all before any file of the run is
// written, renamed or removed.
//
// Trains; returns the summary (also written to summary.json).
json run_training(const json& cfg, const RunOptions& opts);

// Runs each variant ("baseline" = no memel; "naive_a", "naive_b", "rd", "monitor",
// "scaled") for `seeds` seeds, and writes compare.md / compare.json into out_dir.
// `sweep` entries "key=v1,v2" expand every non-baseline variant into a grid over those
// memel keys (e.g. k=1,5 delta=1,5 for MEmeL-Tune; delta implies mode "scaled").
json run_comparison(const json& cfg, const std::vector<std::string>& variants, int seeds,
                    const std::vector<std::string>& sweep, const RunOptions& opts);

// The run directory a config trains into when --out is not given.
std::string default_run_dir(const json& cfg);

}  // namespace memel::train
