#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "autograd/gradcheck.h"
#include "memel/layer.h"
#include "memel/validation.h"

using namespace memel;

namespace {

// A bias-free linear map as a module, so tests do not depend on layers/linear.h.
struct Lin : Module {
  Tensor w;
  Lin(int64_t in, int64_t out, uint64_t seed, DType dt) : Module("Lin") {
    Generator g(seed);
    w = register_parameter("weight", Tensor::uniform({in, out}, -0.5, 0.5, dt, &g));
  }
  Tensor forward(const Tensor& x) override { return matmul(x, w); }
};

// Two-pass float64 mean and unbiased variance per column.
void two_pass(const std::vector<std::vector<double>>& rows, std::vector<double>& mean, std::vector<double>& var) {
  const size_t n = rows[0].size();
  mean.assign(n, 0);
  var.assign(n, 0);
  for (auto& r : rows)
    for (size_t j = 0; j < n; ++j) mean[j] += r[j];
  for (size_t j = 0; j < n; ++j) mean[j] /= double(rows.size());
  for (auto& r : rows)
    for (size_t j = 0; j < n; ++j) var[j] += (r[j] - mean[j]) * (r[j] - mean[j]);
  for (size_t j = 0; j < n; ++j) var[j] = rows.size() > 1 ? var[j] / double(rows.size() - 1) : 0.0;
}

double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), 1e-3));
  return m;
}

MemelOptions opts_with(const std::string& json) { return MemelOptions::from_json(nlohmann::json::parse(json)); }

}  // namespace

TEST_CASE("memel stats: with the exact preset any batch sequence equals the two-pass statistics") {
  for (DType dt : {DType::F64, DType::F32}) {
    MemelLayer layer(opts_with(R"({"preset": "exact", "mode": "monitor"})"));
    Generator g(7);
    std::vector<std::vector<double>> all;
    for (int64_t b : {1, 3, 1, 17, 2, 64, 5}) {  // first batch of one, batch size 1 again later
      Tensor x = Tensor::randn({b, 4, 3}, dt, &g);
      x = add(mul(x, 3.0), 5.0);  // offset mean, larger variance
      std::vector<double> v = x.to_vector();
      for (int64_t r = 0; r < b; ++r) all.emplace_back(v.begin() + r * 12, v.begin() + (r + 1) * 12);
      layer(x);
    }
    std::vector<double> mean, var;
    two_pass(all, mean, var);
    const double tol = dt == DType::F64 ? 1e-6 : 1e-4;
    CHECK(max_rel(layer.stats().mean.to_vector(), mean) <= tol);
    CHECK(max_rel(layer.stats().var.to_vector(), var) <= tol);
    CHECK(layer.stats().count.to_vector()[0] == doctest::Approx(double(all.size())));
  }
}

TEST_CASE("memel stats: merging statistics of two halves equals the whole") {
  Generator g(3);
  Tensor a = Tensor::randn({10, 6}, DType::F64, &g), b = Tensor::randn({7, 6}, DType::F64, &g);
  MemelLayer la(opts_with(R"({"preset": "exact", "mode": "monitor"})")),
      lb(opts_with(R"({"preset": "exact", "mode": "monitor"})")), lall(opts_with(R"({"preset": "exact", "mode": "monitor"})"));
  la(a);
  lb(b);
  lall(a);
  lall(b);
  NeuronStats m = NeuronStats::combine(la.stats(), lb.stats());
  CHECK(max_rel(m.mean.to_vector(), lall.stats().mean.to_vector()) <= 1e-12);
  CHECK(max_rel(m.var.to_vector(), lall.stats().var.to_vector()) <= 1e-12);
  CHECK(m.count.to_vector() == lall.stats().count.to_vector());
}

TEST_CASE("memel stats: forget_batches caps the history's weight in batches (an EMA), 0 never forgets") {
  // Batch sizes vary: the cap is forget_batches times the current batch's size.
  for (int64_t tf : {int64_t(3), int64_t(10), int64_t(0)}) {
    CAPTURE(tf);
    MemelLayer layer(opts_with(R"({"mode": "monitor", "forget_batches": )" + std::to_string(tf) + "}"));
    Generator g(5);
    double m = 0, mu = 0, v = 0;  // independent recursion: weight, mean, unbiased variance
    for (int step = 0; step < 16; ++step) {
      const int64_t b = step % 3 == 2 ? 5 : 8;
      Tensor x = add(Tensor::randn({b, 2}, DType::F64, &g), 0.3 * step);  // drifting
      std::vector<double> col;
      for (int64_t r = 0; r < b; ++r) col.push_back(x.to_vector()[r * 2]);
      double bm = 0, bv = 0;
      for (double z : col) bm += z / double(b);
      for (double z : col) bv += (z - bm) * (z - bm) / double(b);
      const double w = tf > 0 ? std::min(m, double(tf * b)) : m;
      const double n = w + double(b);
      const double nv = (w * double(b) * (mu - bm) * (mu - bm) / n + double(b) * bv + (w > 0 ? (w - 1) * v : 0.0)) / (n - 1);
      mu = (w * mu + double(b) * bm) / n;
      v = nv;
      m = tf > 0 ? std::min(m + double(b), double(tf * b)) : m + double(b);
      layer(x);
      CHECK(layer.stats().mean.to_vector()[0] == doctest::Approx(mu).epsilon(1e-12));
      CHECK(layer.stats().var.to_vector()[0] == doctest::Approx(v).epsilon(1e-10));
      CHECK(layer.stats().count.to_vector()[0] == m);
    }
    if (tf == 3) CHECK(layer.stats().count.to_vector()[0] == 23.0);  // 3 x 5 after the batch of 5, + 8 < 3 x 8
    if (tf == 0) CHECK(layer.stats().count.to_vector()[0] == 11 * 8 + 5 * 5);  // every sample
  }
  // The default forgets after 10 batches (the paper's Appendix C.1, the authors' value).
  CHECK(MemelOptions().forget_batches == 10);
  CHECK(opts_with("{}").forget_batches == 10);
  CHECK(opts_with(R"({"forget_batches": null})").forget_batches == 0);
  CHECK(opts_with(R"({"preset": "exact"})").forget_batches == 0);
}

TEST_CASE("memel MS: eps = 0 on a zero-variance neuron gives no inf or NaN") {
  MemelLayer layer(opts_with(R"({"eps": 0, "warmup": 1})"));
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 1, 3, 1, 4}, {3, 2});  // neuron 0 constant
  layer(x);
  Tensor y = layer(Tensor::from_vector(std::vector<double>{5, 2, 1, 3}, {2, 2}));
  for (double p : layer.last_scores().to_vector()) CHECK(std::isfinite(p));
  for (double v : y.to_vector()) CHECK(std::isfinite(v));
}

TEST_CASE("memel RD: forward writes the running mean at selected elements, backward scales by -delta") {
  for (const char* mode : {"rd", "naive_a", "naive_b", "scaled"}) {
    CAPTURE(mode);
    std::string js = std::string(R"({"warmup": 2, "select": "top_k", "k": 2, "mode": ")") + mode + "\"" +
                     (std::string(mode) == "scaled" ? R"(, "delta": 5})" : "}");
    MemelLayer layer(opts_with(js));
    const double delta = layer.options().effective_delta();
    Generator g(11);
    for (int i = 0; i < 2; ++i) layer(Tensor::randn({6, 5}, DType::F64, &g));
    Tensor x = Tensor::randn({4, 5}, DType::F64, &g).set_requires_grad();
    // The paper's Algorithm 2: the value written is the mean the score used, the one before
    // this batch is merged.
    std::vector<double> mu = layer.stats().mean.to_vector();
    Tensor y = layer(x);
    const auto sel = layer.last_selected();
    REQUIRE(sel.size() == 8);  // k = 2 per sample, 4 samples
    CHECK(layer.stats().mean.to_vector() != mu);
    std::vector<double> xv = x.to_vector(), yv = y.to_vector();
    for (int64_t i = 0; i < 20; ++i) {
      bool s = std::binary_search(sel.begin(), sel.end(), i);
      CHECK(yv[i] == (s ? mu[i % 5] : xv[i]));
    }
    Tensor gy = Tensor::randn({4, 5}, DType::F64, &g);
    backward(sum(mul(y, gy)));
    std::vector<double> gx = x.grad().to_vector(), gv = gy.to_vector();
    for (int64_t i = 0; i < 20; ++i) {
      bool s = std::binary_search(sel.begin(), sel.end(), i);
      CHECK(gx[i] == (s ? -delta * gv[i] : gv[i]));
    }
  }
}

namespace {
// Brute force: full sort by (phi desc, index asc) within each scope.
std::vector<int64_t> brute_select(const std::vector<double>& phi, int64_t B, int64_t n, const MemelOptions& o) {
  std::vector<int64_t> out;
  const bool batch = o.scope == MemelScope::Batch;
  for (int64_t s = 0; s < (batch ? 1 : B); ++s) {
    const int64_t b0 = batch ? 0 : s * n, b1 = batch ? B * n : (s + 1) * n;
    std::vector<int64_t> idx(b1 - b0);
    std::iota(idx.begin(), idx.end(), b0);
    std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return phi[a] > phi[b] || (phi[a] == phi[b] && a < b); });
    const int64_t N = b1 - b0;
    int64_t k = 0;
    if (o.select == MemelSelect::TopK) k = o.k;
    if (o.select == MemelSelect::TopLog) k = int64_t(std::ceil(std::log2(double(N))));
    if (o.select == MemelSelect::Ratio) k = int64_t(std::ceil(o.ratio * double(N) - 1e-9));
    std::vector<int64_t> chosen;
    if (o.select == MemelSelect::Threshold) {
      for (int64_t i : idx)
        if (phi[i] > o.threshold) chosen.push_back(i);
    } else {
      chosen.assign(idx.begin(), idx.begin() + std::min(k, N));
    }
    std::sort(chosen.begin(), chosen.end());
    out.insert(out.end(), chosen.begin(), chosen.end());
  }
  return out;
}
}  // namespace

TEST_CASE("memel selection matches a brute-force reference for every select and scope, ties to the lower index") {
  const char* selects[] = {R"("select": "top_k", "k": 3)", R"("select": "top_log")", R"("select": "ratio", "ratio": 0.1)",
                           R"("select": "threshold", "threshold": 1.5)"};
  for (const char* sel : selects)
    for (const char* scope : {"sample", "batch"}) {
      CAPTURE(sel);
      CAPTURE(scope);
      MemelLayer layer(opts_with(std::string("{") + sel + R"(, "warmup": 1, "scope": ")" + scope + "\"}"));
      Generator g(19);
      layer(Tensor::randn({8, 30}, DType::F64, &g));
      // Inputs with many exact ties: values on a coarse grid.
      Tensor x = Tensor::from_vector(std::vector<double>(), {0, 30}, DType::F64);
      std::vector<double> v(5 * 30);
      for (size_t i = 0; i < v.size(); ++i) v[i] = double((i * 7) % 5) - 2.0;
      x = Tensor::from_vector(v, {5, 30});
      layer(x);
      std::vector<double> phi = layer.last_scores().to_vector();
      CHECK(layer.last_selected() == brute_select(phi, 5, 30, layer.options()));
    }
}

TEST_CASE("memel monitor mode: outputs and gradients bit-identical to no memel layer") {
  auto run = [](bool with_memel) {
    auto model = std::make_shared<Sequential>();
    model->push_back(std::make_shared<Lin>(6, 8, 1, DType::F32));
    model->push_back(std::make_shared<Lin>(8, 3, 2, DType::F32));
    if (with_memel) attach_memel(*model, opts_with(R"({"at": ["0"], "mode": "monitor", "warmup": 0})"));
    Generator g(4);
    std::vector<double> outs, grads;
    for (int i = 0; i < 3; ++i) {
      Tensor y = (*model)(Tensor::randn({5, 6}, DType::F32, &g));
      backward(sum(square(y)));
      for (double v : y.to_vector()) outs.push_back(v);
    }
    for (auto& p : model->parameters())
      for (double v : p.grad().to_vector()) grads.push_back(v);
    return std::make_pair(outs, grads);
  };
  auto a = run(false), b = run(true);
  CHECK(a.first == b.first);
  CHECK(a.second == b.second);
}

TEST_CASE("memel checkpoint: resume mid-run gives bit-identical statistics and outputs") {
  auto make = [] {
    auto model = std::make_shared<Sequential>();
    model->push_back(std::make_shared<Lin>(6, 8, 1, DType::F32));
    model->push_back(std::make_shared<Lin>(8, 3, 2, DType::F32));
    attach_memel(*model, opts_with(R"({"at": ["0"], "warmup": 2, "forget_batches": 3})"));
    return model;
  };
  std::vector<Tensor> batches;
  Generator g(8);
  for (int i = 0; i < 8; ++i) batches.push_back(Tensor::randn({4, 6}, DType::F32, &g));
  auto unbroken = make();
  std::vector<double> out_a;
  StateDict mid;
  for (int i = 0; i < 8; ++i) {
    if (i == 4)
      for (auto& kv : unbroken->state_dict()) mid[kv.first] = kv.second.contiguous_copy();
    for (double v : (*unbroken)(batches[i]).to_vector()) out_a.push_back(v);
  }
  auto resumed = make();
  prepare_memel_layers_for_load(*resumed, mid);
  resumed->load_state_dict(mid);
  std::vector<double> out_b(out_a.begin(), out_a.begin() + 4 * 4 * 3);
  for (int i = 4; i < 8; ++i)
    for (double v : (*resumed)(batches[i]).to_vector()) out_b.push_back(v);
  CHECK(out_a == out_b);
  auto sa = unbroken->state_dict(), sb = resumed->state_dict();
  for (auto& kv : sa) CHECK(kv.second.to_vector() == sb.at(kv.first).to_vector());
}

TEST_CASE("memel options: validation errors name the problem") {
  CHECK_THROWS_WITH_AS(opts_with(R"({"mode": "banana"})"), doctest::Contains("unknown value 'banana'"), Error);
  CHECK_THROWS_WITH_AS(opts_with(R"({"ratio": -0.1, "select": "ratio"})"), doctest::Contains("ratio must be in (0, 1]"),
                       Error);
  CHECK_THROWS_WITH_AS(opts_with(R"({"k": "3"})"), doctest::Contains("expected an integer"), Error);
  CHECK_THROWS_WITH_AS(opts_with(R"({"colour": 1})"), doctest::Contains("unknown key 'memel.colour'"), Error);
  MemelLayer layer(opts_with(R"({"k": 50, "warmup": 0})"));
  CHECK_THROWS_WITH_AS(layer(Tensor::zeros({2, 10})), doctest::Contains("k = 50 is larger than the 10 elements"), Error);
  // Valid on their own, but 64 log-spaced edges in [1, 1 + 1e-15] round to equal doubles,
  // which the dump reader would later refuse: the layer refuses them when it is built.
  CHECK_THROWS_WITH_AS(MemelLayer(opts_with(R"({"hist_bins": 64, "hist_min": 1.0, "hist_max": 1.000000000000001})")),
                       doctest::Contains("from hist_min 1 to hist_max 1.0000000000000011: log-spaced edges round"),
                       Error);
  CHECK_NOTHROW(MemelLayer(opts_with(R"({"hist_bins": 3, "hist_min": 1.0, "hist_max": 1.000000000000001})")));
}

TEST_CASE("memel channel neurons with a padding mask leave padded positions out") {
  MemelLayer layer(opts_with(R"({"neurons": "channel", "warmup": 0, "mode": "monitor"})"));
  // (B=2, T=3, C=2); the last token of sample 1 is padding with a huge value.
  Tensor x = Tensor::from_vector(std::vector<double>{1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 1000, 1000}, {2, 3, 2});
  layer.set_mask(Tensor::from_vector(std::vector<double>{1, 1, 1, 1, 1, 0}, {2, 3}));
  layer(x);
  CHECK(layer.stats().count.to_vector() == std::vector<double>{5, 5});
  CHECK(layer.stats().mean.to_vector()[0] == doctest::Approx(3.0));
  CHECK(layer.stats().mean.to_vector()[1] == doctest::Approx(30.0));
  CHECK(layer.last_scores().to_vector()[10] == -1.0);
}

TEST_CASE("memel decorrelation regularizer: value and finite-difference gradient") {
  // Two perfectly correlated channels and one independent: the penalty counts the
  // off-diagonal correlation twice (C01 = C10 = 1).
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 5, 2, 4, -1, 3, 6, 0, 4, 8, 2}, {4, 3});
  double p = decorrelation_penalty(x, 1.0, 0.0).item();
  Tensor zc = sub(x, mean(x, {0}, true));
  Tensor zn = div(zc, sqrt(sum(square(zc), {0}, true)));
  std::vector<double> c = matmul(transpose(zn, 0, 1), zn).to_vector();
  double expect = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) expect += (c[i * 3 + j] - (i == j)) * (c[i * 3 + j] - (i == j));
  CHECK(p == doctest::Approx(expect).epsilon(1e-9));
  CHECK(c[1] == doctest::Approx(1.0));
  Generator g(5);
  Tensor y = Tensor::randn({2, 5, 4}, DType::F64, &g).set_requires_grad();
  auto r = autograd::gradcheck([](const autograd::TensorList& in) { return decorrelation_penalty(in[0], 0.3); }, {y});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("memel decorrelation regularizer: attached by configuration, summed into the loss") {
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Lin>(6, 8, 1, DType::F64));
  attach_memel(*model, opts_with(R"({"at": ["0"], "mode": "monitor", "regularizer": "decorrelation", "lambda": 0.5})"));
  Generator g(1);
  Tensor x = Tensor::randn({16, 6}, DType::F64, &g);
  Tensor y = (*model)(x);
  Tensor reg = memel_regularization(*model);
  Tensor w = model->parameters()[0];
  CHECK(reg.item() == doctest::Approx(decorrelation_penalty(matmul(x, w), 0.5).item()));
  backward(reg);
  CHECK(w.grad().defined());
}

TEST_CASE("memel validation: every method runs, naive_a leaves the neuron still, weights are restored (signs: test_memel_method.cpp)") {
  auto model = std::make_shared<Sequential>();
  model->push_back(std::make_shared<Lin>(6, 8, 1, DType::F64));
  model->push_back(std::make_shared<Lin>(8, 1, 2, DType::F64));
  attach_memel(*model, opts_with(R"({"at": ["0"], "mode": "monitor", "warmup": 0})"));
  auto layer = memel_layers(*model)[0].second;
  Generator g(3);
  Tensor data = Tensor::randn({64, 6}, DType::F64, &g);
  for (int b = 0; b < 8; ++b) (*model)(slice(data, 0, b * 8, b * 8 + 8));
  auto loss_of = [&](int64_t i) { return sum(square((*model)(slice(data, 0, i, i + 1)))); };
  auto step = [&] {
    NoGradGuard ng;
    for (auto& p : model->parameters()) p.copy_from(sub(p, mul(p.grad(), 1e-3)));
  };
  auto rows = validate_inhibition(*model, *layer, loss_of, step, 16);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0].method == "original");
  // naive_a cuts the neuron's gradient: with one sample and a bias-free first layer the
  // weights into that neuron get no gradient, so the neuron does not move at all.
  CHECK(rows[1].total_update_ratio == 0.0);
  CHECK(rows[3].total_update_ratio > 0.0);
  CHECK(format_validation_table(rows).find("| rd |") != std::string::npos);
  // Weights restored.
  auto again = validate_inhibition(*model, *layer, loss_of, step, 16, {"rd"});
  CHECK(again[0].decrease_ratio == doctest::Approx(rows[3].decrease_ratio).epsilon(1e-12));
}

TEST_CASE("memel histogram: every score lands in the bin its edges give") {
  MemelLayer layer(opts_with(R"({"mode": "monitor", "warmup": 0})"));
  Generator g(9);
  layer(Tensor::randn({64, 50}, DType::F64, &g));
  Tensor x = mul(Tensor::randn({64, 50}, DType::F64, &g), 30.0);
  layer.reset_window();
  layer(x);
  std::vector<double> edges = layer.hist_edges(), phi = layer.last_scores().to_vector();
  std::vector<double> expect(edges.size() + 1, 0.0);
  for (double p : phi) expect[std::upper_bound(edges.begin(), edges.end(), p) - edges.begin()] += 1;
  CHECK(layer.state_dict().at("ms_hist").to_vector() == expect);
}
