#include "core/rng.h"

#include <cmath>

namespace memel {

uint64_t Generator::next_u64() {
  Philox4 r = philox4x32(offset_++, seed_);
  return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
}

float Generator::uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }

double Generator::normal() {
  uint64_t a = next_u64(), b = next_u64();
  double u1 = (static_cast<double>(a >> 11) + 1.0) * (1.0 / 9007199254740993.0);  // (0, 1]
  double u2 = static_cast<double>(b >> 11) * (1.0 / 9007199254740992.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

int64_t Generator::randint(int64_t lo, int64_t hi) {
  uint64_t span = static_cast<uint64_t>(hi - lo);
  return lo + static_cast<int64_t>(next_u64() % span);
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

}  // namespace memel
