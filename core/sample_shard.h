#pragma once
// Data-parallel runs (issue 24): while a SampleShard is set, this process computes samples
// [start, start + local) of a global batch of `global` samples. A per-sample random draw
// (dropout, attention dropout, drop-path) over a tensor whose leading axis is that batch,
// laid out sample by sample, then reserves the global batch's numbers and uses those of
// its own samples, so the ranks together draw exactly what one process draws (and the
// generator advances as in one process: checkpoints do not depend on the rank count).
#include <cstdint>

#include "core/rng.h"

namespace memel {

struct SampleShard {
  int64_t global = 0, start = 0, local = 0;
  bool active() const { return global > 0; }
};
void set_sample_shard(const SampleShard& s);  // SampleShard{} clears it
const SampleShard& sample_shard();

// Reserves the numbers of a draw over `numel` elements whose first axis has `leading`
// entries: numel numbers normally; under an active shard whose local count divides
// `leading` and `numel`, the global batch's numbers. Element i of this process's tensor
// then takes number first_index + i of the stream (g.seed(), offset).
struct PerSampleDraw {
  uint64_t offset = 0, first_index = 0;
};
PerSampleDraw reserve_per_sample(Generator& g, int64_t leading, uint64_t numel);

}  // namespace memel
