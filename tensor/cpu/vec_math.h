#pragma once
// Vectorised float helpers for the CPU kernels: 16-lane vectors (GCC/Clang vector
// extensions, one AVX-512 register or two AVX2 ones), a fast exp, and the row loops of
// softmax-like kernels. Sums over a row run in 16 fixed lanes and are combined in a fixed
// order, so results never depend on how rows are split between threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace memel::cpu {

typedef float VF16 __attribute__((vector_size(64)));
typedef int32_t VI16 __attribute__((vector_size(64)));

inline VF16 vload16(const float* p) {
  VF16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void vstore16(float* p, VF16 v) { std::memcpy(p, &v, sizeof(v)); }
inline VF16 vsplat16(float x) { return VF16{} + x; }

// Fixed-order horizontal sum and max of the 16 lanes.
inline float hsum16(VF16 v) {
  float s8[8], s4[4];
  for (int l = 0; l < 8; ++l) s8[l] = v[l] + v[l + 8];
  for (int l = 0; l < 4; ++l) s4[l] = s8[l] + s8[l + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}
inline float hmax16(VF16 v) {
  float m = v[0];
  for (int l = 1; l < 16; ++l) m = v[l] > m ? v[l] : m;
  return m;
}

// exp(x) in float, relative error about 2e-7 (Cephes' expf polynomial on the reduced
// argument, 2^n built from the exponent bits). Inputs below -87.3 (where expf leaves the
// normal range) give exactly 0, -inf included; inputs are clamped at 88.3 above.
template <typename V>
inline V exp_poly(V r) {
  V p = V{} + 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  return p * r * r + r + 1.0f;
}

inline VF16 vexp16(VF16 x) {
  const VF16 lo = vsplat16(-87.3f), hi = vsplat16(88.3f);
  const VI16 under = x < lo;  // lanes that flush to 0 (NaN compares false and stays NaN)
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  // n = round(x log2 e) by the 1.5 * 2^23 trick: n sits in the low mantissa bits of t.
  const VF16 t = x * 1.44269504088896341f + 12582912.0f;
  const VF16 n = t - 12582912.0f;
  const VF16 r = x - n * 0.693359375f + n * 2.12194440e-4f;
  const VI16 e = (((VI16)t - 0x4B400000) + 127) << 23;  // vector casts reinterpret the bits
  const VF16 y = exp_poly(r) * (VF16)e;
  return (VF16)((VI16)y & ~under);
}

inline float exp_fast(float x) {
  if (x < -87.3f) return 0.0f;
  x = std::min(x, 88.3f);
  const float t = x * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  int32_t bits;
  std::memcpy(&bits, &t, sizeof(bits));
  bits = ((bits - 0x4B400000) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return exp_poly<float>(r) * scale;
}

// max over s[0, n).
inline float row_max(const float* s, int64_t n) {
  int64_t j = 0;
  float mx = -INFINITY;
  if (n >= 16) {
    VF16 m = vload16(s);
    for (j = 16; j + 16 <= n; j += 16) {
      const VF16 v = vload16(s + j);
      m = v > m ? v : m;
    }
    mx = hmax16(m);
  }
  for (; j < n; ++j) mx = s[j] > mx ? s[j] : mx;
  return mx;
}

// d[j] = exp(s[j] - sub) for j < n (d may be s); returns the sum of the d[j].
inline float exp_sub_sum(const float* s, float* d, int64_t n, float sub) {
  VF16 acc = {};
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const VF16 e = vexp16(vload16(s + j) - sub);
    acc += e;
    vstore16(d + j, e);
  }
  float sum = hsum16(acc);
  for (; j < n; ++j) {
    d[j] = exp_fast(s[j] - sub);
    sum += d[j];
  }
  return sum;
}

// sum of a[j] * b[j] for j < n.
inline float dot_row(const float* a, const float* b, int64_t n) {
  VF16 acc = {};
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) acc += vload16(a + j) * vload16(b + j);
  float sum = hsum16(acc);
  for (; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

}  // namespace memel::cpu
