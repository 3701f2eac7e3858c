#pragma once
// Evaluation metrics for classification and regression, as GLUE reports them
// (scikit-learn / SciPy definitions): accuracy, binary F1, Matthews correlation,
// Pearson and Spearman correlation (average ranks for ties).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace memel {

using MetricMap = std::map<std::string, double>;

// Fraction of equal entries. Empty input -> 0.
double accuracy(const std::vector<int64_t>& pred, const std::vector<int64_t>& label);
// F1 of class `positive`: 2 tp / (2 tp + fp + fn); 0 when there is no positive in
// either (as scikit-learn's zero_division default).
double f1_binary(const std::vector<int64_t>& pred, const std::vector<int64_t>& label, int64_t positive = 1);
// Matthews correlation (multi-class form of Gorodkin, equal to the usual binary
// formula for two classes); 0 when a denominator term is 0 (as scikit-learn).
double matthews_corrcoef(const std::vector<int64_t>& pred, const std::vector<int64_t>& label);
// Pearson correlation; NaN when either input is constant.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Ranks 1..n with ties given their average rank.
std::vector<double> average_ranks(const std::vector<double>& x);
// Spearman correlation: Pearson of the average ranks; NaN when either is constant.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

// Computes the named metrics: "acc", "f1", "mcc", "acc_and_f1" (mean of acc and f1),
// "pearson", "spearmanr", "corr" (mean of both). Classification metrics read
// predictions and labels as class indices (rounded); unknown names throw.
MetricMap compute_metrics(const std::vector<std::string>& names, const std::vector<double>& pred,
                          const std::vector<double>& label);

}  // namespace memel
