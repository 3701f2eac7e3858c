#include "data/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace memel {

namespace {
template <typename T>
void check_sizes(const std::vector<T>& a, const std::vector<T>& b, const char* what) {
  MEMEL_CHECK(a.size() == b.size(), "[", what, "] predictions and labels differ in length: ", a.size(), " vs ",
              b.size());
}
}  // namespace

double accuracy(const std::vector<int64_t>& pred, const std::vector<int64_t>& label) {
  check_sizes(pred, label, "accuracy");
  if (pred.empty()) return 0.0;
  int64_t ok = 0;
  for (size_t i = 0; i < pred.size(); ++i) ok += pred[i] == label[i];
  return static_cast<double>(ok) / static_cast<double>(pred.size());
}

double f1_binary(const std::vector<int64_t>& pred, const std::vector<int64_t>& label, int64_t positive) {
  check_sizes(pred, label, "f1");
  int64_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    const bool p = pred[i] == positive, l = label[i] == positive;
    tp += p && l;
    fp += p && !l;
    fn += !p && l;
  }
  const int64_t d = 2 * tp + fp + fn;
  return d == 0 ? 0.0 : 2.0 * static_cast<double>(tp) / static_cast<double>(d);
}

double matthews_corrcoef(const std::vector<int64_t>& pred, const std::vector<int64_t>& label) {
  check_sizes(pred, label, "matthews_corrcoef");
  // Confusion-matrix sums: t_k (true count of k), p_k (predicted count of k), c (correct), s (all).
  std::map<int64_t, std::pair<double, double>> counts;  // k -> (t_k, p_k)
  double c = 0, s = static_cast<double>(pred.size());
  for (size_t i = 0; i < pred.size(); ++i) {
    counts[label[i]].first += 1;
    counts[pred[i]].second += 1;
    c += pred[i] == label[i];
  }
  double tp_sum = 0, tt = 0, pp = 0;
  for (const auto& kv : counts) {
    tp_sum += kv.second.first * kv.second.second;
    tt += kv.second.first * kv.second.first;
    pp += kv.second.second * kv.second.second;
  }
  const double cov_ytyp = c * s - tp_sum, cov_ypyp = s * s - pp, cov_ytyt = s * s - tt;
  if (cov_ypyp * cov_ytyt == 0.0) return 0.0;
  return cov_ytyp / std::sqrt(cov_ytyt * cov_ypyp);
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "pearson");
  const size_t n = x.size();
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    const double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx == 0.0 || syy == 0.0) return std::numeric_limits<double>::quiet_NaN();
  return std::max(-1.0, std::min(1.0, sxy / std::sqrt(sxx * syy)));
}

std::vector<double> average_ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> rank(x.size());
  size_t i = 0;
  while (i < order.size()) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double r = 0.5 * static_cast<double>(i + j) + 1.0;  // mean of ranks i+1 .. j+1
    for (size_t k = i; k <= j; ++k) rank[order[k]] = r;
    i = j + 1;
  }
  return rank;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "spearman");
  return pearson(average_ranks(x), average_ranks(y));
}

MetricMap compute_metrics(const std::vector<std::string>& names, const std::vector<double>& pred,
                          const std::vector<double>& label) {
  check_sizes(pred, label, "metrics");
  std::vector<int64_t> pi(pred.size()), li(label.size());
  for (size_t i = 0; i < pred.size(); ++i) {
    pi[i] = static_cast<int64_t>(std::llround(pred[i]));
    li[i] = static_cast<int64_t>(std::llround(label[i]));
  }
  MetricMap m;
  for (const std::string& n : names) {
    if (n == "acc") m[n] = accuracy(pi, li);
    else if (n == "f1") m[n] = f1_binary(pi, li, 1);
    else if (n == "mcc") m[n] = matthews_corrcoef(pi, li);
    else if (n == "acc_and_f1") m[n] = 0.5 * (accuracy(pi, li) + f1_binary(pi, li, 1));
    else if (n == "pearson") m[n] = pearson(pred, label);
    else if (n == "spearmanr") m[n] = spearman(pred, label);
    else if (n == "corr") m[n] = 0.5 * (pearson(pred, label) + spearman(pred, label));
    else MEMEL_FAIL("[metrics] unknown metric '", n, "' (known: acc, f1, mcc, acc_and_f1, pearson, spearmanr, corr)");
  }
  return m;
}

}  // namespace memel
