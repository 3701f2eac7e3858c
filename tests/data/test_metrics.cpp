// Metrics on small cases computed by hand.
#include <doctest/doctest.h>

#include <cmath>

#include "core/error.h"
#include "data/metrics.h"

using namespace memel;

TEST_CASE("metrics: accuracy, F1, Matthews correlation") {
  // tp = 2 (0, 2), fp = 1 (3), fn = 1 (1), tn = 0.
  const std::vector<int64_t> p{1, 0, 1, 1}, l{1, 1, 1, 0};
  CHECK(accuracy(p, l) == doctest::Approx(0.5));
  CHECK(f1_binary(p, l) == doctest::Approx(2.0 / 3.0));                   // 4 / (4 + 1 + 1)
  CHECK(matthews_corrcoef(p, l) == doctest::Approx(-1.0 / 3.0));          // (0 - 1) / sqrt(3*3*1*1)
  // tp 2, fp 1, tn 2, fn 1: (4 - 1) / sqrt(3^4) = 1/3.
  CHECK(matthews_corrcoef({1, 1, 0, 0, 1, 0}, {1, 0, 0, 0, 1, 1}) == doctest::Approx(1.0 / 3.0));
  CHECK(matthews_corrcoef({1, 0, 1, 0}, {1, 0, 1, 0}) == doctest::Approx(1.0));
  CHECK(matthews_corrcoef({1, 0, 1, 0}, {0, 1, 0, 1}) == doctest::Approx(-1.0));
  CHECK(matthews_corrcoef({1, 1, 1, 1}, {1, 0, 1, 0}) == 0.0);  // constant prediction
  // Three classes: c = 4, s = 6, t = (2,2,2), p = (3,2,1): (24 - 12) / sqrt((36 - 14) (36 - 12)).
  CHECK(matthews_corrcoef({0, 1, 1, 0, 0, 2}, {0, 1, 2, 0, 1, 2}) == doctest::Approx(12.0 / std::sqrt(22.0 * 24.0)));
  CHECK(f1_binary({0, 0}, {0, 0}) == 0.0);
  CHECK(f1_binary({1, 1}, {1, 1}) == doctest::Approx(1.0));
  CHECK(f1_binary({0, 1, 0}, {0, 1, 1}, 0) == doctest::Approx(2.0 / 3.0));  // positive class 0: tp 1, fp 1
  CHECK(accuracy({}, {}) == 0.0);
  CHECK_THROWS_AS(accuracy({1}, {1, 0}), Error);
}

TEST_CASE("metrics: Pearson and Spearman with ties") {
  CHECK(pearson({1, 2, 3, 4}, {2, 4, 6, 8}) == doctest::Approx(1.0));
  CHECK(pearson({1, 2, 3, 4}, {8, 6, 4, 2}) == doctest::Approx(-1.0));
  CHECK(pearson({1, 2, 3}, {1, 3, 2}) == doctest::Approx(0.5));  // sxy 1, sxx 2, syy 2
  CHECK(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
  CHECK(average_ranks({10, 20, 20, 30}) == std::vector<double>{1, 2.5, 2.5, 4});
  CHECK(average_ranks({3, 1, 3, 3}) == std::vector<double>{3, 1, 3, 3});
  // Ranks (1, 2.5, 2.5, 4) vs (1, 3, 2, 4): 4.5 / sqrt(4.5 * 5).
  CHECK(spearman({1, 2, 2, 3}, {1, 3, 2, 4}) == doctest::Approx(4.5 / std::sqrt(22.5)));
  CHECK(spearman({1, 2, 3, 4}, {1, 4, 9, 16}) == doctest::Approx(1.0));  // monotone
}

TEST_CASE("metrics: named sets as GLUE reports them") {
  MetricMap m = compute_metrics({"acc", "f1", "acc_and_f1"}, {1, 0, 1, 1}, {1, 1, 1, 0});
  CHECK(m.at("acc") == doctest::Approx(0.5));
  CHECK(m.at("f1") == doctest::Approx(2.0 / 3.0));
  CHECK(m.at("acc_and_f1") == doctest::Approx(7.0 / 12.0));
  MetricMap r = compute_metrics({"pearson", "spearmanr", "corr"}, {1, 2, 3}, {1, 3, 2});
  CHECK(r.at("pearson") == doctest::Approx(0.5));
  CHECK(r.at("spearmanr") == doctest::Approx(0.5));
  CHECK(r.at("corr") == doctest::Approx(0.5));
  CHECK(compute_metrics({"mcc"}, {1, 0, 1, 0}, {1, 0, 1, 0}).at("mcc") == doctest::Approx(1.0));
  CHECK_THROWS_AS(compute_metrics({"bleu"}, {1}, {1}), Error);
}
