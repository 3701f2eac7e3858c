#pragma once
// Synthetic radar echoes in the HKO-7 pixel convention (p = (dBZ + 10) / 70, clipped to
// [0, 1]; models/nowcast_metrics.h), so the nowcasting losses and scores (rain rates
// 0.5 to 30 mm/h, i.e. about 13 to 41 dBZ) have meaning without the HKO-7 data.
//
// A sequence has a random number of storm cells ("blobs"). Every blob is an elliptic
// Gaussian bump in dBZ with an internal texture:
//   dBZ_k(x, t) = A_k(t) * exp(-(u^2 / s_a(t)^2 + v^2 / s_b(t)^2) / 2) * (1 + tex_k(u, v))
// where (u, v) is x - c_k(t) rotated by the blob's orientation phi_k(t), and
//   c_k(t)   = c_k(0) + (V + dv_k) t                advection: a common velocity V plus jitter
//   phi_k(t) = phi_k(0) + omega_k t                 rotation
//   A_k(t)   = A_k(0) + g_k t  (clipped at 0)       growth (g_k > 0) or decay (g_k < 0)
//   s(t)     = s(0) * (1 + r_k t)                   the area grows or shrinks with it
//   tex_k    = texture * sin(f1 u + p1) sin(f2 v + p2)   moves and turns with the blob
// The field is the maximum over blobs; Gaussian noise (noise_dbz) is added where there
// is echo; reflectivity below floor_dbz is clear air (pixel 0). Blobs start anywhere in
// a margin around the frame, so echoes also drift in and out.
//
// Sequence i depends only on (seed, i): deterministic and thread-safe.
#include <cstdint>

#include "data/dataset.h"

namespace memel {

struct RadarSynthOptions {
  int64_t num_sequences = 10000;
  int64_t seq_len = 15;
  int64_t size = 96;                   // frames are size x size
  int64_t min_blobs = 2, max_blobs = 6;
  double max_speed = 2.0;              // |V| in pixels per frame
  double speed_jitter = 0.3;           // |dv_k| at most this, pixels per frame
  double min_sigma = 3.0, max_sigma = 14.0;  // ellipse axes s_a, s_b at t = 0, pixels
  double min_peak_dbz = 25.0, max_peak_dbz = 58.0;
  double max_growth_dbz = 1.5;         // |g_k|, dBZ per frame
  double max_area_rate = 0.03;         // |r_k|, relative axis change per frame
  double max_rotation = 0.08;          // |omega_k|, radians per frame
  double texture = 0.15;               // relative amplitude of the internal texture
  double noise_dbz = 1.0;              // noise standard deviation on echoes
  double floor_dbz = 5.0;              // weaker reflectivity is clear air
  uint64_t seed = 0;
  void validate() const;
};

class RadarSynthDataset : public Dataset {
 public:
  explicit RadarSynthDataset(RadarSynthOptions o);
  int64_t size() const override { return opt_.num_sequences; }
  // {"frames": (seq_len, 1, size, size) F32 pixels in [0, 1]}
  Example get(int64_t i) const override;
  const RadarSynthOptions& options() const { return opt_; }

 private:
  RadarSynthOptions opt_;
};

}  // namespace memel
