#pragma once
// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011). The value for
// (seed, counter) is the same on every thread and device, so a dropout mask depends
// only on the seed and the element index, never on how work is split.
#include <cstdint>

#if defined(__CUDACC__)
#define MEMEL_HD __host__ __device__ inline
#else
#define MEMEL_HD inline
#endif

namespace memel {

struct Philox4 { uint32_t v[4]; };

MEMEL_HD Philox4 philox4x32(uint64_t counter_hi_lo, uint64_t key64, uint32_t c2 = 0, uint32_t c3 = 0) {
  uint32_t c0 = static_cast<uint32_t>(counter_hi_lo), c1 = static_cast<uint32_t>(counter_hi_lo >> 32);
  uint32_t k0 = static_cast<uint32_t>(key64), k1 = static_cast<uint32_t>(key64 >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = static_cast<uint32_t>(p1);
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = static_cast<uint32_t>(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform float in [0, 1) for element `index` of the stream (seed, offset).
MEMEL_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t index) {
  Philox4 r = philox4x32(offset + (index >> 2), seed);
  return static_cast<float>(r.v[index & 3] >> 8) * (1.0f / 16777216.0f);
}

// A stream of random numbers: a seed and an offset that advances as numbers are drawn.
// Its whole state is two integers, saved in checkpoints.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves `n` numbers; returns the offset to pass to philox_uniform with index in [0, n).
  uint64_t reserve(uint64_t n) { uint64_t o = offset_; offset_ += (n + 3) / 4; return o; }
  float uniform();                           // one number in [0, 1)
  double normal();                           // standard normal (Box-Muller)
  uint64_t next_u64();
  int64_t randint(int64_t lo, int64_t hi);   // in [lo, hi)
 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

// The process-wide default generator (parameter init, dropout, shuffling unless a
// component owns its own). manual_seed resets it.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace memel
