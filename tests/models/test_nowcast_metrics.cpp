// HKO-7 nowcasting conventions on small hand-computed cases: pixel <-> dBZ <-> rain
// rate, balancing weights, B-MSE / B-MAE (with a mask and an empty mask), the training
// loss and its gradient, and CSI / HSS / POD / FAR.
//
// Threshold pixels p(r) = (10 log10 58.53 + 15.6 log10 r + 10) / 70:
//   r = 0.5 -> 0.32825, 2 -> 0.46243, 5 -> 0.55111, 10 -> 0.61820, 30 -> 0.72453
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "models/nowcast_metrics.h"

using namespace memel;
using namespace memel::nowcast;

namespace {

// One sequence (B = 1), two frames of 2x2 pixels: (1, 2, 1, 2, 2).
//   frame 0 truth 0.1 0.4 0.5 0.7 -> weights 1 1 2 10;  pred 0.2 0.4 0.3 0.9
//   frame 1 truth 0.0 0.8 0.6 0.56 -> weights 1 30 5 5; pred 0.0 0.7 0.6 0.5
Tensor truth() { return Tensor::from_vector(std::vector<float>{0.1f, 0.4f, 0.5f, 0.7f, 0.0f, 0.8f, 0.6f, 0.56f}, {1, 2, 1, 2, 2}); }
Tensor pred() { return Tensor::from_vector(std::vector<float>{0.2f, 0.4f, 0.3f, 0.9f, 0.0f, 0.7f, 0.6f, 0.5f}, {1, 2, 1, 2, 2}); }

}  // namespace

TEST_CASE("nowcast conversions: pixel, dBZ and rain rate") {
  CHECK(pixel_to_dbz(0.5) == doctest::Approx(25.0));
  CHECK(pixel_to_dbz(0.0) == doctest::Approx(-10.0));
  CHECK(dbz_to_pixel(60.0) == doctest::Approx(1.0));
  CHECK(dbz_to_pixel(95.0) == 1.0);   // clipped
  CHECK(dbz_to_pixel(-20.0) == 0.0);  // clipped
  // 1 mm/h is 10 log10(58.53) = 17.6738 dBZ
  CHECK(rainfall_to_dbz(1.0) == doctest::Approx(17.67379).epsilon(1e-6));
  CHECK(rainfall_to_dbz(10.0) == doctest::Approx(17.67379 + 15.6).epsilon(1e-6));
  CHECK(dbz_to_rainfall(rainfall_to_dbz(7.3)) == doctest::Approx(7.3));
  CHECK(rainfall_to_pixel(0.5) == doctest::Approx(0.3282531).epsilon(1e-6));
  CHECK(rainfall_to_pixel(30) == doctest::Approx(0.7245268).epsilon(1e-6));
  CHECK(pixel_to_rainfall(rainfall_to_pixel(5.0)) == doctest::Approx(5.0));
  Tensor r = pixel_to_rainfall(Tensor::from_vector(std::vector<float>{float(rainfall_to_pixel(2.0))}, {1}));
  CHECK(r.item() == doctest::Approx(2.0).epsilon(1e-5));
}

TEST_CASE("nowcast balancing weights: 1, 1, 2, 5, 10, 30 by rain rate of the truth") {
  Tensor w = balancing_weights(truth());
  CHECK(w.shape() == truth().shape());
  CHECK(w.to_vector() == std::vector<double>{1, 1, 2, 10, 1, 30, 5, 5});
  // Just below / above each threshold.
  std::vector<float> px;
  for (double r : {0.5, 2.0, 5.0, 10.0, 30.0}) {
    px.push_back(float(rainfall_to_pixel(r) - 1e-4));
    px.push_back(float(rainfall_to_pixel(r) + 1e-4));
  }
  Tensor t = Tensor::from_vector(px, {1, 10, 1});
  CHECK(balancing_weights(t).to_vector() == std::vector<double>{1, 1, 1, 2, 2, 5, 5, 10, 10, 30});
  Tensor m = Tensor::from_vector(std::vector<float>{1, 0, 1, 0, 1, 1, 0, 1}, {1, 2, 1, 2, 2});
  CHECK(balancing_weights(truth(), m).to_vector() == std::vector<double>{1, 0, 2, 0, 1, 30, 0, 5});
  BalanceOptions bad;
  bad.weights = {1, 2};
  CHECK_THROWS_WITH_AS(balancing_weights(truth(), Tensor(), bad), doctest::Contains("one more entry"), memel::Error);
}

TEST_CASE("nowcast B-MSE and B-MAE: sums over pixels, mean over frames and sequences, masks") {
  // frame 0: w d^2 = 1*0.01 + 0 + 2*0.04 + 10*0.04 = 0.49;  w |d| = 0.1 + 0 + 0.4 + 2.0 = 2.5
  // frame 1: w d^2 = 30*0.01 + 5*0.0036 = 0.318;             w |d| = 3.0 + 0.3 = 3.3
  CHECK(balanced_mse(pred(), truth()) == doctest::Approx((0.49 + 0.318) / 2));
  CHECK(balanced_mae(pred(), truth()) == doctest::Approx((2.5 + 3.3) / 2));
  // Masking the 0.7 pixel of frame 0 removes 10 * 0.04 and 10 * 0.2.
  Tensor m = Tensor::from_vector(std::vector<float>{1, 1, 1, 0, 1, 1, 1, 1}, {1, 2, 1, 2, 2});
  CHECK(balanced_mse(pred(), truth(), m) == doctest::Approx((0.09 + 0.318) / 2));
  CHECK(balanced_mae(pred(), truth(), m) == doctest::Approx((0.5 + 3.3) / 2));
  // An empty mask: nothing counts.
  Tensor empty = Tensor::zeros({1, 2, 1, 2, 2});
  CHECK(balanced_mse(pred(), truth(), empty) == 0.0);
  CHECK(balanced_mae(pred(), truth(), empty) == 0.0);
  CHECK_THROWS_WITH_AS(balanced_mse(pred(), Tensor::zeros({1, 2, 4})), doctest::Contains("does not match"),
                       memel::Error);

  NowcastEvaluator ev(2);
  ev.update(pred(), truth(), m);
  ev.update(pred(), truth(), m);  // two sequences, same numbers
  CHECK(ev.sequences() == 2);
  CHECK(ev.b_mse()[0] == doctest::Approx(0.09));
  CHECK(ev.b_mse()[1] == doctest::Approx(0.318));
  CHECK(ev.mean_b_mse() == doctest::Approx((0.09 + 0.318) / 2));
  CHECK(ev.mean_b_mae() == doctest::Approx((0.5 + 3.3) / 2));
  // plain MSE over valid pixels: frame 0: 0.01 + 0.04 = 0.05, frame 1: 0.01 + 0.0036
  CHECK(ev.mean_mse() == doctest::Approx((0.05 + 0.0136) / 2));
}

TEST_CASE("nowcast training loss: weighted MSE + MAE and its gradient") {
  NowcastLossOptions o;
  o.global_scale = 1.0;
  Tensor p = pred().set_requires_grad();
  Tensor loss = nowcast_loss(p, truth(), Tensor(), o);
  CHECK(loss.item() == doctest::Approx(0.404 + 2.9));
  backward(loss);
  // d/dp = w (2 d + sign d) / (B T): pixel 0 of frame 0: 1 * (0.2 + 1) / 2; pixel 3: 10 * (0.4 + 1) / 2
  std::vector<double> g = p.grad().to_vector();
  CHECK(g[0] == doctest::Approx(0.6));
  CHECK(g[3] == doctest::Approx(7.0));
  CHECK(g[5] == doctest::Approx(30 * (-0.2 - 1) / 2));
  // Scales and weights; the unbalanced variant with a mask.
  o.global_scale = 5e-5;
  o.mae_weight = 0.0;
  CHECK(nowcast_loss(pred(), truth(), Tensor(), o).item() == doctest::Approx(5e-5 * 0.404));
  o.balanced = false;
  o.global_scale = 1.0;
  o.mae_weight = 1.0;
  Tensor m = Tensor::from_vector(std::vector<float>{1, 1, 1, 0, 1, 1, 1, 1}, {1, 2, 1, 2, 2});
  CHECK(nowcast_loss(pred(), truth(), m, o).item() == doctest::Approx((0.05 + 0.0136) / 2 + (0.3 + 0.16) / 2));
  auto j = nlohmann::json::parse(R"({"type": "balanced_mse_mae", "global_scale": 0.001, "mae_weight": 0.5})");
  NowcastLossOptions parsed = NowcastLossOptions::from_json(j);
  CHECK(parsed.global_scale == 0.001);
  CHECK(parsed.mae_weight == 0.5);
  CHECK_THROWS_WITH_AS(NowcastLossOptions::from_json(nlohmann::json::parse(R"({"scale": 1})")),
                       doctest::Contains("loss.scale"), memel::Error);
}

TEST_CASE("nowcast scores: CSI, HSS, POD, FAR per frame and threshold") {
  // HSS from the formula: a=2 b=0 c=1 d=1 -> 2(ad - bc) / ((a+c)(c+d) + (a+b)(b+d)) = 4/8
  SkillScores s = skill_scores({2, 1, 0, 1});  // hits, misses, false alarms, correct negatives
  CHECK(s.csi == doctest::Approx(2.0 / 3));
  CHECK(s.pod == doctest::Approx(2.0 / 3));
  CHECK(s.far == doctest::Approx(0.0));
  CHECK(s.hss == doctest::Approx(0.5));
  CHECK(s.gss == doctest::Approx(1.0 / 3));
  // A general table: HSS = 2 GSS / (GSS + 1) equals the textbook formula.
  SkillScores t = skill_scores({7, 3, 5, 11});
  const double a = 7, c = 3, b = 5, d = 11;
  CHECK(t.hss == doctest::Approx(2 * (a * d - b * c) / ((a + c) * (c + d) + (a + b) * (b + d))));
  CHECK(std::isnan(skill_scores({}).csi));

  NowcastEvaluator ev(2);
  ev.update(pred(), truth());
  const auto& cnt = ev.counts();
  // 0.5 mm/h (p >= 0.328): frame 0 truth F T T T, pred F T F T -> a=2 c=1 b=0 d=1
  CHECK(cnt[0][0].hits == 2);
  CHECK(cnt[0][0].misses == 1);
  CHECK(cnt[0][0].false_alarms == 0);
  CHECK(cnt[0][0].correct_negatives == 1);
  // frame 1 truth F T T T, pred F T T T -> a=3 d=1
  CHECK(cnt[1][0].hits == 3);
  CHECK(cnt[1][0].correct_negatives == 1);
  auto sc = ev.scores();
  CHECK(sc[0][0].hss == doctest::Approx(0.5));
  CHECK(sc[1][0].hss == doctest::Approx(1.0));
  auto ms = ev.mean_scores();
  CHECK(ms[0].csi == doctest::Approx((2.0 / 3 + 1.0) / 2));
  CHECK(ms[0].hss == doctest::Approx(0.75));
  // 30 mm/h (p >= 0.7245): frame 0 a=0 b=1 c=0 d=3 (POD undefined), frame 1 a=0 b=0 c=1 d=3 (FAR undefined)
  CHECK(cnt[0][4].false_alarms == 1);
  CHECK(cnt[1][4].misses == 1);
  CHECK(std::isnan(sc[0][4].pod));
  CHECK(std::isnan(sc[1][4].far));
  CHECK(sc[0][4].csi == 0.0);
  CHECK(sc[0][4].hss == doctest::Approx(0.0));
  CHECK(ms[4].pod == doctest::Approx(0.0));  // mean over the frames where it is defined
  CHECK(ms[4].far == doctest::Approx(1.0));
  auto j = ev.to_json(true);
  CHECK(j["csi_0.5"].get<double>() == doctest::Approx(5.0 / 6));
  CHECK(j["hss_30"].get<double>() == doctest::Approx(0.0));
  CHECK(j["per_frame"]["pod"][0][4].is_null());

  // An empty mask: no pixel counts; errors are 0, scores undefined (null in JSON).
  NowcastEvaluator em(2);
  em.update(pred(), truth(), Tensor::zeros({1, 2, 1, 2, 2}));
  CHECK(em.mean_b_mse() == 0.0);
  CHECK(em.counts()[0][0].hits + em.counts()[0][0].correct_negatives == 0);
  CHECK(std::isnan(em.mean_scores()[0].csi));
  CHECK(em.to_json()["csi_0.5"].is_null());
  CHECK_THROWS_WITH_AS(em.update(Tensor::zeros({1, 3, 4}), Tensor::zeros({1, 3, 4})),
                       doctest::Contains("expected 2 frames"), memel::Error);
}
