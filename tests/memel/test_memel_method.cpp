// The method pinned against formulas computed here, independently of the layer: the
// Monosemantic Scale (with its eps term) against two-pass statistics of the history, the
// order of scoring and merging, the value written into a selected element, eval mode,
// active_at_eval, a non-default channel axis, tie rules, presets, and the signs of the
// paper's Table 4 on a toy model where first-order theory fixes them.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "memel/layer.h"
#include "memel/validation.h"
#include "support.h"

using namespace memel;

namespace {

MemelOptions opts(const std::string& js) { return MemelOptions::from_json(nlohmann::json::parse(js)); }

// Two-pass float64 mean and unbiased variance of each column of `rows` (n columns).
void moments(const std::vector<std::vector<double>>& rows, size_t n, std::vector<double>& mu, std::vector<double>& var) {
  mu.assign(n, 0.0);
  var.assign(n, 0.0);
  for (auto& r : rows)
    for (size_t j = 0; j < n; ++j) mu[j] += r[j] / double(rows.size());
  for (auto& r : rows)
    for (size_t j = 0; j < n; ++j) var[j] += (r[j] - mu[j]) * (r[j] - mu[j]) / double(rows.size() - 1);
}

// phi(z) = (z - mu_i)^2 / (v_i + eps * mean(v)), written out for element neurons.
std::vector<double> ms_formula(const std::vector<double>& x, const std::vector<double>& mu, const std::vector<double>& var,
                               double eps) {
  const size_t n = mu.size();
  const double mean_v = std::accumulate(var.begin(), var.end(), 0.0) / double(n);
  std::vector<double> phi(x.size());
  for (size_t i = 0; i < x.size(); ++i) phi[i] = (x[i] - mu[i % n]) * (x[i] - mu[i % n]) / (var[i % n] + eps * mean_v);
  return phi;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), 1e-12));
  return m;
}

// A batch whose neuron 0 is dead (always 2.5: zero variance) and whose other neurons have
// different offsets and scales.
Tensor batch(Generator& g, int64_t B, int64_t n) {
  std::vector<double> v = Tensor::randn({B, n}, DType::F64, &g).to_vector();
  for (int64_t r = 0; r < B; ++r)
    for (int64_t j = 0; j < n; ++j) v[r * n + j] = j == 0 ? 2.5 : v[r * n + j] * (0.5 + 0.3 * double(j)) + double(j);
  return Tensor::from_vector(v, {B, n});
}

}  // namespace

TEST_CASE("memel MS: scores equal (z - mu)^2 / (v + eps * mean(v)) over two-pass statistics, in the set order") {
  // exact: no forgetting, so the layer's statistics must be the two-pass moments of all
  // history; the default (paper) preset agrees with it before the forgetting cap is reached.
  struct Case {
    const char* js;
    bool after;  // scored against the statistics that include the batch
    int batches;
  };
  for (const Case& c : {Case{R"({"preset": "exact", "mode": "monitor"})", false, 14},
                        Case{R"({"preset": "exact", "mode": "monitor", "eps": 0.2})", false, 6},
                        Case{R"({"mode": "monitor"})", false, 8},
                        Case{R"({"preset": "exact", "mode": "monitor", "score_after_update": true})", true, 14}}) {
    CAPTURE(c.js);
    MemelLayer layer(opts(c.js));
    const double eps = layer.options().eps;
    Generator g(31);
    const int64_t n = 7;
    std::vector<std::vector<double>> history;
    for (int t = 0; t < c.batches; ++t) {
      const int64_t B = 3 + t % 4;
      Tensor x = batch(g, B, n);
      const std::vector<double> xv = x.to_vector();
      std::vector<std::vector<double>> rows = history;
      for (int64_t r = 0; r < B; ++r) rows.emplace_back(xv.begin() + r * n, xv.begin() + (r + 1) * n);
      layer(x);
      if (t >= 1) {
        std::vector<double> mu, var;
        moments(c.after ? rows : history, size_t(n), mu, var);
        const std::vector<double> want = ms_formula(xv, mu, var, eps);
        CHECK(max_rel_diff(layer.last_scores().to_vector(), want) <= 1e-9);
      }
      history = rows;
    }
  }
}

TEST_CASE("memel MS: eps changes the score, and the score order changes it (so both are pinned)") {
  // Guards the previous test's sensitivity: without eps, or scored after the merge, the
  // same history gives scores far from the formula.
  Generator g(31);
  std::vector<Tensor> xs;
  for (int t = 0; t < 4; ++t) xs.push_back(batch(g, 5, 7));
  auto scores = [&](const std::string& js) {
    MemelLayer layer(opts(js));
    for (auto& x : xs) layer(x);
    return layer.last_scores().to_vector();
  };
  const auto ref = scores(R"({"preset": "exact", "mode": "monitor"})");
  CHECK(max_rel_diff(scores(R"({"preset": "exact", "mode": "monitor", "eps": 0})"), ref) > 1e-3);
  CHECK(max_rel_diff(scores(R"({"preset": "exact", "mode": "monitor", "score_after_update": true})"), ref) > 1e-3);
}

TEST_CASE("memel RD: the value written is the mean the score used (pre-merge by default, post-merge after)") {
  for (bool after : {false, true}) {
    CAPTURE(after);
    MemelLayer layer(opts(std::string(R"({"warmup": 2, "score_after_update": )") + (after ? "true" : "false") + "}"));
    Generator g(12);
    for (int i = 0; i < 3; ++i) layer(batch(g, 6, 7));
    const std::vector<double> before = layer.stats().mean.to_vector();
    Tensor x = batch(g, 4, 7);
    const std::vector<double> xv = x.to_vector();
    const std::vector<double> y = layer(x).to_vector();
    const std::vector<double> merged = layer.stats().mean.to_vector();
    REQUIRE(layer.last_selected().size() == 4);
    for (int64_t i : layer.last_selected()) {
      CHECK(y[i] == (after ? merged : before)[i % 7]);
      CHECK(before[i % 7] != merged[i % 7]);
    }
    // Everything else passes unchanged.
    for (size_t i = 0; i < y.size(); ++i)
      if (!std::binary_search(layer.last_selected().begin(), layer.last_selected().end(), int64_t(i)))
        CHECK(y[i] == xv[i]);
  }
}

TEST_CASE("memel eval mode: the identity, statistics frozen, last selection cleared") {
  MemelLayer layer(opts(R"({"warmup": 0})"));
  Generator g(2);
  for (int i = 0; i < 3; ++i) layer(batch(g, 5, 7));
  REQUIRE_FALSE(layer.last_selected().empty());
  StateDict before;
  for (auto& [k, v] : layer.state_dict()) before[k] = v.contiguous_copy();
  layer.eval();
  Tensor x = batch(g, 5, 7).set_requires_grad();
  Tensor y = layer(x);
  CHECK(y.to_vector() == x.to_vector());
  CHECK(layer.last_selected().empty());
  CHECK_FALSE(layer.last_scores().defined());
  Tensor gy = Tensor::randn({5, 7}, DType::F64, &g);
  backward(y, gy);
  CHECK(x.grad().to_vector() == gy.to_vector());
  for (auto& [k, v] : layer.state_dict()) CHECK_MESSAGE(v.to_vector() == before.at(k).to_vector(), k);
}

TEST_CASE("memel active_at_eval: inhibits in eval mode against frozen statistics") {
  MemelLayer layer(opts(R"({"warmup": 0, "active_at_eval": true})"));
  Generator g(4);
  for (int i = 0; i < 3; ++i) layer(batch(g, 5, 7));
  StateDict before;
  for (auto& [k, v] : layer.state_dict()) before[k] = v.contiguous_copy();
  layer.eval();
  Tensor x = batch(g, 5, 7).set_requires_grad();
  Tensor y = layer(x);
  const std::vector<double> mu = layer.stats().mean.to_vector(), yv = y.to_vector();
  REQUIRE(layer.last_selected().size() == 5);  // one per sample
  for (int64_t i : layer.last_selected()) CHECK(yv[i] == mu[i % 7]);
  Tensor gy = Tensor::randn({5, 7}, DType::F64, &g);
  backward(y, gy);
  const std::vector<double> gx = x.grad().to_vector(), gv = gy.to_vector();
  for (int64_t i : layer.last_selected()) CHECK(gx[i] == -gv[i]);
  for (auto& [k, v] : layer.state_dict()) CHECK_MESSAGE(v.to_vector() == before.at(k).to_vector(), k);
}

TEST_CASE("memel channel neurons on a non-default axis: statistics pool batch and positions, scores use them") {
  // (B, C, T) with channel_axis 1 (the batch is axis 0), against (B, T, C) with the default -1.
  Generator g(6);
  const int64_t B = 3, C = 4, T = 5;
  MemelLayer mid(opts(R"({"preset": "exact", "neurons": "channel", "channel_axis": 1, "mode": "monitor"})"));
  MemelLayer mid_neg(opts(R"({"preset": "exact", "neurons": "channel", "channel_axis": -2, "mode": "monitor"})"));
  MemelLayer last(opts(R"({"preset": "exact", "neurons": "channel", "mode": "monitor"})"));
  std::vector<std::vector<double>> per_channel(C);
  for (int step = 0; step < 3; ++step) {
    Tensor x = add(mul(Tensor::randn({B, C, T}, DType::F64, &g), 2.0), 1.0);
    const std::vector<double> xv = x.to_vector();
    std::vector<double> mu(C, 0.0), var(C, 0.0);
    if (step > 0) {
      for (int64_t c = 0; c < C; ++c) {
        const auto& h = per_channel[c];
        for (double z : h) mu[c] += z / double(h.size());
        for (double z : h) var[c] += (z - mu[c]) * (z - mu[c]) / double(h.size() - 1);
      }
    }
    mid(x);
    mid_neg(x);
    last(contiguous(transpose(x, 1, 2)));
    if (step > 0) {
      const double mean_v = std::accumulate(var.begin(), var.end(), 0.0) / double(C);
      std::vector<double> want(xv.size());
      for (size_t i = 0; i < xv.size(); ++i) {
        const int64_t c = (int64_t(i) / T) % C;
        want[i] = (xv[i] - mu[c]) * (xv[i] - mu[c]) / (var[c] + 0.01 * mean_v);
      }
      CHECK(max_rel_diff(mid.last_scores().to_vector(), want) <= 1e-9);
      CHECK(mid_neg.last_scores().to_vector() == mid.last_scores().to_vector());
      CHECK(max_rel_diff(contiguous(transpose(last.last_scores(), 1, 2)).to_vector(), want) <= 1e-9);
    }
    for (size_t i = 0; i < xv.size(); ++i) per_channel[(i / T) % C].push_back(xv[i]);
  }
  CHECK(mid.neuron_shape() == Shape{C});
  CHECK(mid.stats().count.to_vector() == std::vector<double>(C, double(3 * B * T)));
  CHECK(max_rel_diff(mid.stats().mean.to_vector(), last.stats().mean.to_vector()) <= 1e-12);
}

TEST_CASE("memel ties: all selects every element tied with the k-th largest score, lower_index exactly k") {
  // Two-valued inputs: many exact ties in the scores.
  for (int64_t k : {int64_t(1), int64_t(3)}) {
    for (const char* ties : {"all", "lower_index"}) {
      CAPTURE(k);
      CAPTURE(ties);
      MemelLayer layer(opts(R"({"warmup": 1, "k": )" + std::to_string(k) + R"(, "ties": ")" + ties + "\"}"));
      Generator g(8);
      layer(Tensor::randn({16, 10}, DType::F64, &g));
      std::vector<double> v(4 * 10);
      for (size_t i = 0; i < v.size(); ++i) v[i] = (i * 7) % 3 == 0 ? 3.0 : 0.0;
      layer(Tensor::from_vector(v, {4, 10}));
      const std::vector<double> phi = layer.last_scores().to_vector();
      std::vector<int64_t> want;
      for (int64_t s = 0; s < 4; ++s) {
        std::vector<double> row(phi.begin() + s * 10, phi.begin() + (s + 1) * 10);
        std::vector<double> sorted = row;
        std::sort(sorted.rbegin(), sorted.rend());
        const double kth = sorted[k - 1];
        int64_t taken = 0;
        for (int64_t j = 0; j < 10; ++j) {
          const bool above = row[j] > kth, tied = row[j] == kth;
          const int64_t above_count = std::count_if(row.begin(), row.end(), [&](double p) { return p > kth; });
          if (above || (tied && (std::string(ties) == "all" || taken < k - above_count))) {
            want.push_back(s * 10 + j);
            if (tied) ++taken;
          }
        }
      }
      CHECK(layer.last_selected() == want);
      if (std::string(ties) == "lower_index") CHECK(layer.last_selected().size() == size_t(4 * k));
    }
  }
}

TEST_CASE("memel stats_dtype float32: float64 activations, float32 statistics and scores") {
  MemelLayer f32(opts(R"({"warmup": 1, "stats_dtype": "float32"})")), f64(opts(R"({"warmup": 1})"));
  Generator g(3);
  for (int i = 0; i < 3; ++i) {
    Tensor x = batch(g, 6, 7);
    Tensor a = f32(x), b = f64(x);
    CHECK(a.dtype() == DType::F64);
    CHECK(max_abs_diff(a, b) <= 1e-5);
  }
  CHECK(f32.stats().mean.dtype() == DType::F32);
  CHECK(f64.stats().mean.dtype() == DType::F64);
  CHECK(max_rel_diff(f32.stats().var.to_vector(), f64.stats().var.to_vector()) <= 1e-5);
}

TEST_CASE("memel presets: paper by default, explicit keys override, to_json lists every key") {
  const MemelOptions paper = opts("{}");
  CHECK(paper.preset == "paper");
  CHECK(paper.forget_batches == 10);
  CHECK_FALSE(paper.score_after_update);
  CHECK_FALSE(paper.count_ahead);
  CHECK(paper.ties == MemelTies::LowerIndex);
  CHECK(paper.stats_dtype == MemelStatsDType::Input);
  CHECK(paper.warmup == 10);
  CHECK(paper.eps == 0.01);
  const MemelOptions authors = opts(R"({"preset": "authors"})");
  CHECK(authors.score_after_update);
  CHECK(authors.count_ahead);
  CHECK(authors.forget_batches == 10);
  CHECK(authors.ties == MemelTies::All);
  CHECK(authors.stats_dtype == MemelStatsDType::Float32);
  CHECK(opts(R"({"preset": "exact"})").forget_batches == 0);
  // Explicit keys win whatever their position in the object.
  const MemelOptions o = opts(R"({"eps": 0, "preset": "authors", "ties": "lower_index"})");
  CHECK(o.eps == 0);
  CHECK(o.ties == MemelTies::LowerIndex);
  CHECK(o.score_after_update);
  // to_json is complete: parsing it back gives the same options.
  for (const char* p : {"paper", "authors", "exact"}) {
    const nlohmann::json j = opts(std::string(R"({"preset": ")") + p + "\"}").to_json();
    CHECK(j.at("preset") == p);
    for (const char* key : {"forget_batches", "count_ahead", "ties", "stats_dtype", "score_after_update", "eps", "warmup"})
      CHECK_MESSAGE(j.contains(key), key);
    CHECK(MemelOptions::from_json(j).to_json() == j);
  }
  CHECK_THROWS_WITH_AS(opts(R"({"preset": "fast"})"), doctest::Contains("unknown value 'fast'"), Error);
  CHECK_THROWS_WITH_AS(opts(R"({"max_count": 50})"), doctest::Contains("replaced by memel.forget_batches"), Error);
  CHECK_THROWS_WITH_AS(opts(R"({"forget_batches": -1})"), doctest::Contains("forget_batches must be >= 0"), Error);
}

namespace {
struct Lin2 : Module {
  Tensor w;
  Lin2(int64_t in, int64_t out, uint64_t seed) : Module("Lin2") {
    Generator g(seed);
    w = register_parameter("weight", Tensor::uniform({in, out}, -0.5, 0.5, DType::F64, &g));
  }
  Tensor forward(const Tensor& x) override { return matmul(x, w); }
};
}  // namespace

TEST_CASE("memel validation (the paper's Table 4): the signs first-order theory gives on a toy model") {
  // x -> W1 (bias-free) -> memel -> W2 -> y, loss (y - t)^2 with t the model's own output, so
  // the neuron's actual value z is optimal. With the selected neuron j written as its mean
  // mu, the loss gradient at the neuron is 2 w2_j^2 (mu - z) (it pulls back toward z);
  // one SGD step moves z by -lr |x|^2 times the gradient that reaches it:
  //   original: gradient 0 (z optimal)        -> no change: Decrease 0, Update 0
  //   naive_a:  gradient cut                  -> no change: Decrease 0, Update 0
  //   naive_b:  straight through              -> z moves away from mu: Decrease < 0
  //   rd:       reversed                      -> z moves toward mu:    Decrease > 0
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Lin2>(6, 8, 1));
  model->push_back(std::make_shared<Lin2>(8, 1, 2));
  attach_memel(*model, opts(R"({"at": ["0"], "mode": "monitor", "warmup": 0})"));
  auto layer = memel_layers(*model)[0].second;
  Generator g(3);
  Tensor data = Tensor::randn({64, 6}, DType::F64, &g);
  for (int b = 0; b < 8; ++b) (*model)(slice(data, 0, b * 8, b * 8 + 8));
  model->eval();
  std::vector<double> target;
  {
    NoGradGuard ng;
    for (int64_t i = 0; i < 16; ++i) target.push_back((*model)(slice(data, 0, i, i + 1)).item());
  }
  auto loss_of = [&](int64_t i) { return sum(square(add((*model)(slice(data, 0, i, i + 1)), -target[size_t(i)]))); };
  auto step = [&] {
    NoGradGuard ng;
    for (auto& p : model->parameters())
      if (p.grad().defined()) p.copy_from(sub(p, mul(p.grad(), 1e-2)));
  };
  auto rows = validate_inhibition(*model, *layer, loss_of, step, 16);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0].method == "original");
  CHECK(rows[0].decrease_ratio == 0.0);
  CHECK(rows[0].total_update_ratio == 0.0);
  CHECK(rows[1].method == "naive_a");
  CHECK(rows[1].decrease_ratio == 0.0);
  CHECK(rows[1].total_update_ratio == 0.0);
  CHECK(rows[2].method == "naive_b");
  CHECK(rows[3].method == "rd");
  REQUIRE(rows[2].decrease_ratios.size() == 16);
  REQUIRE(rows[3].decrease_ratios.size() == 16);
  for (size_t i = 0; i < 16; ++i) {
    CAPTURE(i);
    CHECK(rows[2].decrease_ratios[i] < 0.0);
    CHECK(rows[3].decrease_ratios[i] > 0.0);
    CHECK(rows[3].total_update_ratios[i] > 0.0);
  }
  CHECK(rows[3].decrease_ratio > 0.0);
  CHECK(rows[2].decrease_ratio < 0.0);
  MESSAGE("table 4 toy: naive_b ", rows[2].decrease_ratio, ", rd ", rows[3].decrease_ratio);
}
