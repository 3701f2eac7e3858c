#include "data/radar_synth.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "data/moving_objects.h"  // item_seed

namespace memel {

void RadarSynthOptions::validate() const {
  MEMEL_CHECK(num_sequences >= 0 && seq_len > 0 && size > 0, "[radar_synth] num_sequences must be >= 0, seq_len and "
              "size positive");
  MEMEL_CHECK(min_blobs >= 0 && max_blobs >= min_blobs, "[radar_synth] need 0 <= min_blobs <= max_blobs, got ",
              min_blobs, " and ", max_blobs);
  MEMEL_CHECK(min_sigma > 0 && max_sigma >= min_sigma, "[radar_synth] need 0 < min_sigma <= max_sigma");
  MEMEL_CHECK(max_peak_dbz >= min_peak_dbz, "[radar_synth] need min_peak_dbz <= max_peak_dbz");
  MEMEL_CHECK(max_speed >= 0 && speed_jitter >= 0 && max_growth_dbz >= 0 && max_area_rate >= 0 &&
                  max_rotation >= 0 && texture >= 0 && noise_dbz >= 0,
              "[radar_synth] speeds, rates, texture and noise must be non-negative");
}

RadarSynthDataset::RadarSynthDataset(RadarSynthOptions o) : opt_(o) { opt_.validate(); }

namespace {

struct Blob {
  double cx, cy, vx, vy;     // centre and velocity (pixels, pixels/frame)
  double phi, omega;         // orientation and its rate
  double amp, growth;        // peak dBZ and its rate
  double sa, sb, area_rate;  // axes and relative rate
  double f1, f2, p1, p2;     // texture
};

}  // namespace

Example RadarSynthDataset::get(int64_t i) const {
  MEMEL_CHECK(i >= 0 && i < size(), "[radar_synth] index ", i, " out of range [0, ", size(), ")");
  Generator g(item_seed(opt_.seed, uint64_t(i)));
  auto U = [&](double lo, double hi) { return lo + (hi - lo) * double(g.uniform()); };
  const int64_t T = opt_.seq_len, S = opt_.size;
  const double speed = U(0, opt_.max_speed), dir = U(0, 2 * M_PI);
  const double Vx = speed * std::cos(dir), Vy = speed * std::sin(dir);
  const int64_t nb = opt_.min_blobs + g.randint(0, opt_.max_blobs - opt_.min_blobs + 1);
  const double margin = 0.25 * double(S);
  std::vector<Blob> blobs(static_cast<size_t>(nb));
  for (Blob& b : blobs) {
    b.cx = U(-margin, double(S) + margin);
    b.cy = U(-margin, double(S) + margin);
    const double jd = U(0, 2 * M_PI), js = U(0, opt_.speed_jitter);
    b.vx = Vx + js * std::cos(jd);
    b.vy = Vy + js * std::sin(jd);
    b.phi = U(0, M_PI);
    b.omega = U(-opt_.max_rotation, opt_.max_rotation);
    b.amp = U(opt_.min_peak_dbz, opt_.max_peak_dbz);
    b.growth = U(-opt_.max_growth_dbz, opt_.max_growth_dbz);
    b.sa = U(opt_.min_sigma, opt_.max_sigma);
    b.sb = U(opt_.min_sigma, opt_.max_sigma);
    b.area_rate = U(-opt_.max_area_rate, opt_.max_area_rate);
    b.f1 = U(0.2, 0.8);
    b.f2 = U(0.2, 0.8);
    b.p1 = U(0, 2 * M_PI);
    b.p2 = U(0, 2 * M_PI);
  }
  std::vector<float> frames(size_t(T * S * S));
  std::vector<double> dbz(size_t(S * S));
  for (int64_t t = 0; t < T; ++t) {
    std::fill(dbz.begin(), dbz.end(), -10.0);
    for (const Blob& b : blobs) {
      const double amp = std::max(0.0, b.amp + b.growth * double(t));
      const double scale = std::max(0.2, 1.0 + b.area_rate * double(t));
      const double sa = b.sa * scale, sb = b.sb * scale;
      const double cx = b.cx + b.vx * double(t), cy = b.cy + b.vy * double(t);
      const double phi = b.phi + b.omega * double(t), c = std::cos(phi), s = std::sin(phi);
      if (amp <= opt_.floor_dbz) continue;
      // Only pixels within 4 sigma matter.
      const double reach = 4.0 * std::max(sa, sb);
      const int64_t y0 = std::max<int64_t>(0, int64_t(std::floor(cy - reach))),
                    y1 = std::min<int64_t>(S, int64_t(std::ceil(cy + reach)) + 1);
      const int64_t x0 = std::max<int64_t>(0, int64_t(std::floor(cx - reach))),
                    x1 = std::min<int64_t>(S, int64_t(std::ceil(cx + reach)) + 1);
      for (int64_t y = y0; y < y1; ++y)
        for (int64_t x = x0; x < x1; ++x) {
          const double dx = double(x) - cx, dy = double(y) - cy;
          const double u = c * dx + s * dy, v = -s * dx + c * dy;
          const double e = std::exp(-0.5 * (u * u / (sa * sa) + v * v / (sb * sb)));
          const double tex = 1.0 + opt_.texture * std::sin(b.f1 * u + b.p1) * std::sin(b.f2 * v + b.p2);
          double& d = dbz[size_t(y * S + x)];
          d = std::max(d, amp * e * tex);
        }
    }
    float* out = frames.data() + t * S * S;
    for (int64_t k = 0; k < S * S; ++k) {
      double d = dbz[size_t(k)];
      if (d > opt_.floor_dbz && opt_.noise_dbz > 0) d += opt_.noise_dbz * g.normal();
      out[k] = d > opt_.floor_dbz ? float(std::clamp((d + 10.0) / 70.0, 0.0, 1.0)) : 0.0f;
    }
  }
  return {{"frames", Tensor::from_vector(frames, {T, 1, S, S})}};
}

}  // namespace memel
