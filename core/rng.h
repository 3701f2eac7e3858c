#pragma once
// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011). The value for
// (seed, counter) is the same on every thread and device, so a dropout mask depends
// only on the seed and the element index, never on how work is split.
#include <cstdint>

#include "core/hd.h"

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

#if !defined(__CUDACC__)
// Philox-4x32-10 of kPhiloxBatch consecutive counters (counter + i) with key `key64`:
// the same numbers as philox4x32, 16 counters per vector (GCC/Clang vector extensions;
// the 32 x 32 -> 64-bit products run on the even and odd lanes as 64-bit lanes).
// out[4 * i + w] = word w of counter i.
constexpr int kPhiloxBatch = 16;
typedef uint32_t PhiloxVU16 __attribute__((vector_size(64)));
typedef uint64_t PhiloxVU8 __attribute__((vector_size(64)));

// lo, hi = the low and high 32 bits of a[i] * m, lane by lane.
inline void philox_mulhilo(const PhiloxVU16& a, uint32_t m, PhiloxVU16& lo, PhiloxVU16& hi) {
  const PhiloxVU8 w = (PhiloxVU8)a;  // 64-bit lane k holds 32-bit lanes 2k (low half) and 2k + 1
  const PhiloxVU8 low = PhiloxVU8{} + 0xffffffffull;
  const PhiloxVU8 pe = (w & low) * static_cast<uint64_t>(m);
  const PhiloxVU8 po = (w >> 32) * static_cast<uint64_t>(m);
  lo = (PhiloxVU16)((pe & low) | (po << 32));
  hi = (PhiloxVU16)((pe >> 32) | (po & ~low));
}

inline void philox4x32_batch(uint64_t counter, uint64_t key64, uint32_t* out) {
  PhiloxVU16 c0, c1, c2 = {}, c3 = {};
  for (int i = 0; i < kPhiloxBatch; ++i) {
    const uint64_t c = counter + static_cast<uint64_t>(i);
    c0[i] = static_cast<uint32_t>(c);
    c1[i] = static_cast<uint32_t>(c >> 32);
  }
  uint32_t k0 = static_cast<uint32_t>(key64), k1 = static_cast<uint32_t>(key64 >> 32);
  for (int r = 0; r < 10; ++r) {
    PhiloxVU16 lo0, hi0, lo1, hi1;
    philox_mulhilo(c0, 0xD2511F53u, lo0, hi0);
    philox_mulhilo(c2, 0xCD9E8D57u, lo1, hi1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int i = 0; i < kPhiloxBatch; ++i) {
    out[4 * i] = c0[i];
    out[4 * i + 1] = c1[i];
    out[4 * i + 2] = c2[i];
    out[4 * i + 3] = c3[i];
  }
}

// Calls f(j, u) with u = philox_uniform(seed, offset, idx0 + j) for j in [0, n), in
// order, drawing kPhiloxBatch counters (4 * kPhiloxBatch numbers) per batch.
template <typename F>
inline void philox_uniform_for(uint64_t seed, uint64_t offset, uint64_t idx0, int64_t n, F&& f) {
  uint32_t words[4 * kPhiloxBatch];
  int64_t j = 0;
  while (j < n) {
    const uint64_t idx = idx0 + static_cast<uint64_t>(j);
    const uint64_t block = idx >> 2;
    philox4x32_batch(offset + block, seed, words);  // stream indices [4 block, 4 (block + kPhiloxBatch))
    const int64_t first = static_cast<int64_t>(idx - 4 * block);
    const int64_t m = n - j < 4 * kPhiloxBatch - first ? n - j : 4 * kPhiloxBatch - first;
    for (int64_t t = 0; t < m; ++t) f(j + t, static_cast<float>(words[first + t] >> 8) * (1.0f / 16777216.0f));
    j += m;
  }
}
#endif

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
