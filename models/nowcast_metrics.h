#pragma once
// Precipitation-nowcasting conventions, losses and scores of the HKO-7 benchmark (Shi et
// al. 2017; nowcasting/hko_evaluation.py and numba_accelerated.py of sxjscience/HKO-7).
//
// Pixels p in [0, 1] encode radar reflectivity:
//   dBZ = 70 p - 10                           p = clip((dBZ + 10) / 70, 0, 1)
// Reflectivity to rain rate R (mm/h) by the Z-R relation Z = a R^b with a = 58.53,
// b = 1.56 (dBZ = 10 log10 Z):
//   dBZ = 10 log10(a) + 10 b log10(R) = 10 log10(58.53) + 15.6 log10(R)
//   R   = 10^((dBZ - 10 log10 a) / (10 b))
// Rain thresholds 0.5, 2, 5, 10, 30 mm/h; a pixel is "rain at threshold r" when
// p >= rainfall_to_pixel(r) (as HKO-7 compares pixels, not rates).
// Balancing weight of a pixel from the ground truth (R_true):
//   w = 1 (R < 2), 2 (2 <= R < 5), 5 (5 <= R < 10), 10 (10 <= R < 30), 30 (R >= 30)
// i.e. w = w_0 + sum_i (w_{i+1} - w_i) [p >= p(r_i)] with base weights (1, 1, 2, 5, 10, 30)
// and thresholds r_i = (0.5, 2, 5, 10, 30); invalid pixels (mask = 0) weigh 0.
//
// Tensors are (B, T, ...) frames: batch, time, then the pixels of one frame (e.g.
// (B, T, 1, H, W)). Masks have the prediction's shape, nonzero = valid.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/tensor.h"

namespace memel::nowcast {

// Z = a R^b.
struct ZRRelation {
  double a = 58.53;
  double b = 1.56;
};

double pixel_to_dbz(double p);                 // 70 p - 10
double dbz_to_pixel(double dbz);               // clip((dBZ + 10) / 70, 0, 1)
double dbz_to_rainfall(double dbz, const ZRRelation& zr = {});  // 10^((dBZ - 10 log10 a) / (10 b))
double rainfall_to_dbz(double rate, const ZRRelation& zr = {});  // 10 log10 a + 10 b log10 R
double pixel_to_rainfall(double p, const ZRRelation& zr = {});
double rainfall_to_pixel(double rate, const ZRRelation& zr = {});  // not clipped, as HKO-7
// Elementwise on tensors (differentiable ops).
Tensor pixel_to_dbz(const Tensor& p);
Tensor pixel_to_rainfall(const Tensor& p, const ZRRelation& zr = {});

// Thresholds (mm/h, increasing) and base weights (one more than thresholds).
struct BalanceOptions {
  std::vector<double> thresholds{0.5, 2, 5, 10, 30};
  std::vector<double> weights{1, 1, 2, 5, 10, 30};
  ZRRelation zr;
  void validate() const;
  std::vector<double> pixel_thresholds() const;  // rainfall_to_pixel of each threshold
};

// Per-pixel balancing weights from the ground truth, times the mask when given; same
// shape as truth, F32, no gradient.
Tensor balancing_weights(const Tensor& truth, const Tensor& mask = Tensor(), const BalanceOptions& o = {});

// The training loss (differentiable in pred), as HKO-7's balanced loss:
//   d = pred - truth,  w = balancing weights (or the mask alone when balanced = false)
//   mse_bt = sum_pixels w d^2,  mae_bt = sum_pixels w |d|       for each (b, t)
//   loss = global_scale * (mse_weight * mean_bt(mse_bt) + mae_weight * mean_bt(mae_bt))
// HKO-7 uses mse_weight = mae_weight = 1 and global_scale = 5e-5 on 480x480 frames.
struct NowcastLossOptions {
  double mse_weight = 1.0;
  double mae_weight = 1.0;
  double global_scale = 5e-5;
  bool balanced = true;
  BalanceOptions balance;
  static NowcastLossOptions from_json(const nlohmann::json& j, const std::string& where = "loss");
};
Tensor nowcast_loss(const Tensor& pred, const Tensor& truth, const Tensor& mask = Tensor(),
                    const NowcastLossOptions& o = {});

// Contingency table of one threshold: a = hits, b = false alarms, c = misses,
// d = correct negatives (valid pixels only).
struct ContingencyCounts {
  int64_t hits = 0, misses = 0, false_alarms = 0, correct_negatives = 0;
  ContingencyCounts& operator+=(const ContingencyCounts& o);
};

// Scores as HKO-7 computes them (NaN where a denominator is 0, as numpy gives):
//   POD = a / (a + c)           FAR = b / (a + b)          CSI = a / (a + b + c)
//   n = a + b + c + d,  a_ref = (a + b)(a + c) / n
//   GSS = (a - a_ref) / (a + b + c - a_ref)   (equitable threat score)
//   HSS = 2 GSS / (GSS + 1)  =  2(ad - bc) / ((a + c)(c + d) + (a + b)(b + d))
struct SkillScores {
  double pod = 0, far = 0, csi = 0, hss = 0, gss = 0;
};
SkillScores skill_scores(const ContingencyCounts& c);

// Accumulates HKO-7's evaluation over batches of (B, T, ...) predictions and truths.
// Per frame t (over all sequences seen, N of them):
//   mse[t]   = (1/N) sum_seq sum_pixels mask (p - g)^2        mae[t] likewise with |p - g|
//   b_mse[t] = (1/N) sum_seq sum_pixels w (p - g)^2           b_mae[t] likewise
//   counts[t][k] summed over sequences; scores[t][k] = skill_scores(counts[t][k])
// The headline numbers average over frames: B-MSE = mean_t b_mse[t], CSI@r = mean_t of
// csi[t][k] over the frames where it is defined (not NaN).
class NowcastEvaluator {
 public:
  explicit NowcastEvaluator(int64_t frames, BalanceOptions o = {});
  // pred, truth (B, T, ...) with T = frames; mask the same shape or undefined (all valid).
  void update(const Tensor& pred, const Tensor& truth, const Tensor& mask = Tensor());
  void reset();

  int64_t sequences() const { return sequences_; }
  int64_t frames() const { return frames_; }
  const BalanceOptions& options() const { return opt_; }

  std::vector<double> mse() const;    // per frame
  std::vector<double> mae() const;
  std::vector<double> b_mse() const;
  std::vector<double> b_mae() const;
  const std::vector<std::vector<ContingencyCounts>>& counts() const { return counts_; }  // [t][k]
  std::vector<std::vector<SkillScores>> scores() const;                                 // [t][k]

  double mean_mse() const;
  double mean_mae() const;
  double mean_b_mse() const;
  double mean_b_mae() const;
  // Frame-averaged scores per threshold (NaN frames skipped; NaN when all are).
  std::vector<SkillScores> mean_scores() const;

  // {"sequences", "mse", "mae", "b_mse", "b_mae", "csi_0.5", "hss_0.5", "pod_0.5",
  //  "far_0.5", "gss_0.5", ..., "per_frame": {"mse": [...], ..., "csi": [[...], ...]}}
  // NaN becomes null.
  nlohmann::json to_json(bool per_frame = false) const;

 private:
  int64_t frames_;
  BalanceOptions opt_;
  int64_t sequences_ = 0;
  std::vector<double> sq_, abs_, bsq_, babs_;                // per frame, summed over sequences
  std::vector<std::vector<ContingencyCounts>> counts_;       // [t][k]
};

// One-shot versions over a single batch: B-MSE and B-MAE averaged over frames and
// sequences (mean_bt of sum_pixels w d^2 or w |d|).
double balanced_mse(const Tensor& pred, const Tensor& truth, const Tensor& mask = Tensor(),
                    const BalanceOptions& o = {});
double balanced_mae(const Tensor& pred, const Tensor& truth, const Tensor& mask = Tensor(),
                    const BalanceOptions& o = {});

}  // namespace memel::nowcast
