#pragma once
// Data-parallel training (issue 24): the pieces memel-train uses to make a run on N
// processes (dist::Group, MPI) the same run as one process with the same global batch.
//
//   BatchShard          each rank's contiguous share of every global batch, in the order
//                       the one-process run uses; per-sample random draws are keyed by the
//                       global sample index while the shard is set (core/rng.h).
//   GradSync            gradients summed over the ranks in buckets that start while the
//                       backward runs (autograd OnGradReady), then averaged: the global
//                       batch's gradient on every rank, bit for bit, before clipping.
//   install_memel_cross_rank
//                       memel batch moments merged across ranks (Lemma 3.2) before they
//                       reach the running statistics; scope "batch" selects among the
//                       global batch's scores.
//   MemelWindowSync     the dump-window accumulators (ms_sum, ms_n, ms_hist, inhibited)
//                       summed over the ranks before a dump, a checkpoint or the summary,
//                       so rank 0 writes the statistics of the whole run.
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "autograd/node.h"
#include "data/dataset.h"
#include "dist/comm.h"
#include "layers/module.h"

namespace memel::train {

struct BatchShard {
  int64_t global = 0, start = 0, local = 0;
  // Rank `rank` of `size`: samples [rank * global / size, (rank + 1) * global / size).
  // The global batch must divide evenly (so every rank's mean loss weighs the same).
  static BatchShard of(int64_t global, int rank, int size);
  // Rows [start, start + local) of every tensor of `batch` whose first axis is the global
  // batch (other tensors are kept whole).
  Example take(const Example& batch) const;
};

// Sets core/rng.h's SampleShard for its lifetime (nothing when the group has one process).
class ScopedSampleShard {
 public:
  explicit ScopedSampleShard(const BatchShard& s, bool active);
  ~ScopedSampleShard();
  ScopedSampleShard(const ScopedSampleShard&) = delete;
  ScopedSampleShard& operator=(const ScopedSampleShard&) = delete;

 private:
  bool active_;
};

class GradSync {
 public:
  GradSync(const dist::Group& g, const std::vector<Tensor>& params, int64_t bucket_bytes = int64_t(1) << 20);
  // While the returned guard lives, every parameter gradient the backward completes
  // joins a bucket; a full bucket's sum starts at once. Arm it around the last backward
  // of a step (the gradients are final then).
  std::unique_ptr<autograd::OnGradReady> arm();
  // Starts what is left (parameters the last backward did not reach), waits for every
  // bucket and divides by the number of ranks.
  void finish();
  // The mean of a per-rank value (the loss) over the ranks.
  double mean(double v) const;
  // Milliseconds spent in finish() waiting for sums, since the last take_comm_ms().
  double take_comm_ms();
  int64_t buckets_last_step() const { return buckets_last_; }

 private:
  struct Bucket {
    std::vector<size_t> params;
    Tensor buf;
    dist::Group::Pending pending;
  };
  void on_ready(const Tensor& leaf);
  void launch();

  const dist::Group& g_;
  std::vector<Tensor> params_;
  std::unordered_map<const void*, size_t> index_;
  std::vector<uint8_t> queued_;
  std::vector<size_t> open_;
  int64_t open_bytes_ = 0, cap_;
  std::vector<Bucket> buckets_;
  int64_t buckets_last_ = 0;
  double comm_ms_ = 0;
};

// Installs memel_cross_rank() hooks over `g` (clears them when g has one process).
void install_memel_cross_rank(const dist::Group& g);

class MemelWindowSync {
 public:
  // Sums every memel layer's window accumulators over the ranks (what each rank added
  // since the last sync): afterwards every rank holds the whole run's values.
  void sync(const Module& root, const dist::Group& g);
  // Records the current values as synced (after a dump has reset the window).
  void mark(const Module& root);

 private:
  std::map<std::string, std::vector<double>> synced_;
};

// Rank 0's parameters and buffers on every rank.
void broadcast_module(Module& m, const dist::Group& g);

}  // namespace memel::train
