#include "core/sample_shard.h"

namespace memel {

namespace {
SampleShard g_shard;  // set and read by the thread running the forward
}

void set_sample_shard(const SampleShard& s) { g_shard = s; }
const SampleShard& sample_shard() { return g_shard; }

PerSampleDraw reserve_per_sample(Generator& g, int64_t leading, uint64_t numel) {
  const SampleShard& s = g_shard;
  if (!s.active() || s.local <= 0 || leading <= 0 || leading % s.local != 0 || numel % uint64_t(s.local) != 0)
    return {g.reserve(numel), 0};
  const uint64_t per = numel / uint64_t(s.local);
  return {g.reserve(per * uint64_t(s.global)), per * uint64_t(s.start)};
}

}  // namespace memel
