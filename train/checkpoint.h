#pragma once
// Checkpoints of a run directory (run_dir/checkpoints/step-NNNNNNNN/):
//   model.safetensors      the model's parameters (reference names)
//   memel.safetensors      the memel layers' state (absent without memel layers)
//   optimizer.safetensors  the optimizer's state
//   state.json             step, loader position, RNG, schedule, best metric, wall time,
//                          "files": the SHA-256 of every file above, and "digest": the
//                          SHA-256 of state.json's own content (without "digest")
// A checkpoint is written into step-N.tmp/ and renamed into place when complete; older
// ones are renamed step-N.old/ before removal (one of the same step to step-N.replaced/
// until the new one is in place), so a crash at any point leaves only complete step-N/.
// Loading verifies every digest and that every weight and optimizer value is finite.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layers/module.h"
#include "optim/optimizer.h"

namespace memel::train {

using nlohmann::json;

// What state.json holds besides the digests.
struct TrainState {
  int64_t step = 0;
  int64_t loader_epoch = 0, loader_batch = 0;
  uint64_t rng_seed = 0, rng_offset = 0;
  json schedule;
  double best = std::numeric_limits<double>::quiet_NaN();  // NaN: none yet
  double wall_s = 0;              // training wall time of every segment up to this step
  json memel_mean_ms = nullptr;   // the final dump's mean MS per layer (null before the end)
};

struct Checkpoint {
  std::string dir;
  StateDict weights;  // model parameters and memel state (memel layer names prefixed)
  OptimizerState optimizer;
  TrainState state;
};

// The parts of a checkpoint to write.
struct CheckpointContents {
  std::function<void(const std::string& path)> write_model;  // model.safetensors (the task's names)
  std::map<std::string, Tensor> memel;                       // empty: no memel.safetensors
  OptimizerState optimizer;
  TrainState state;
};

// "step-00000042"
std::string checkpoint_name(int64_t step);

// Reads a checkpoint directory and verifies it (digests, ranges of state.json, finite
// values); throws naming the file and what is wrong.
Checkpoint load_checkpoint(const std::string& dir);

class Checkpointer {
 public:
  // keep_last: how many step checkpoints to keep (0: all).
  Checkpointer(std::string run_dir, int64_t keep_last);

  // Removes leftovers of a run killed while writing or pruning (step-N.tmp/, step-N.old/)
  // and brings back a step-N.replaced/ whose replacement never got into place.
  void tidy() const;
  // Removes every step checkpoint (a fresh run started in a reused directory).
  void clear() const;
  // Complete checkpoint directories, newest first (a step-N.replaced/ whose step-N/ is
  // missing counts as step N).
  std::vector<std::string> candidates() const;
  // The newest checkpoint that verifies. A damaged newer one is skipped with a warning
  // (through `warn`) naming it and what is wrong; throws when none verifies (`none_ok`
  // false) or returns an empty dir (`none_ok` true, e.g. a run killed before its first
  // checkpoint).
  Checkpoint load_latest(const std::function<void(const std::string&)>& warn, bool none_ok) const;
  // Writes step-N/ and prunes to keep_last; returns its directory. On failure the
  // temporary directory is removed and the error names the last complete checkpoint.
  std::string save(int64_t step, const CheckpointContents& c);

  const std::string& last() const { return last_; }
  void set_last(std::string dir) { last_ = std::move(dir); }

 private:
  std::string dir_;  // run_dir/checkpoints
  int64_t keep_last_;
  std::string last_;
};

}  // namespace memel::train
