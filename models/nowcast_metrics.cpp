#include "models/nowcast_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "autograd/ops.h"

namespace memel::nowcast {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// (B, T, ...) frames as contiguous floats: B*T rows of P pixels each.
struct Frames {
  std::vector<float> v;
  int64_t B = 0, T = 0, P = 0;
};

Frames frames_of(const Tensor& t, const char* what, const char* op) {
  MEMEL_CHECK(t.defined(), "[", op, "] ", what, " is undefined");
  MEMEL_CHECK(t.dim() >= 3, "[", op, "] ", what, " must be (B, T, ...) frames, got ", shape_str(t.shape()));
  Frames f;
  f.B = t.size(0);
  f.T = t.size(1);
  f.P = f.B * f.T > 0 ? t.numel() / (f.B * f.T) : 0;
  f.v = t.detach().to_vector_as<float>();
  return f;
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* what, const char* op) {
  MEMEL_CHECK(b.shape() == a.shape(), "[", op, "] ", what, " ", shape_str(b.shape()), " does not match ",
              shape_str(a.shape()));
}

// Balancing weight of one truth pixel (thresholds in pixel units, increasing).
inline double pixel_weight(float g, const std::vector<double>& pth, const std::vector<double>& w) {
  double r = w[0];
  for (size_t i = 0; i < pth.size(); ++i)
    if (double(g) >= pth[i]) r += w[i + 1] - w[i];
  return r;
}

std::string fmt_threshold(double r) {
  std::ostringstream os;
  os << r;
  return os.str();
}

nlohmann::json num(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

// Sum over pixels of w d^2 (squared) or w |d|, averaged over the B*T frames.
double balanced_error(const Tensor& pred, const Tensor& truth, const Tensor& mask, const BalanceOptions& o,
                      bool squared, const char* op) {
  o.validate();
  check_same_shape(pred, truth, "truth", op);
  if (mask.defined()) check_same_shape(pred, mask, "mask", op);
  Frames p = frames_of(pred, "prediction", op), g = frames_of(truth, "truth", op);
  std::vector<float> m = mask.defined() ? mask.detach().to_vector_as<float>() : std::vector<float>();
  const std::vector<double> pth = o.pixel_thresholds();
  double total = 0;
  for (size_t i = 0; i < p.v.size(); ++i) {
    if (!m.empty() && m[i] == 0.0f) continue;
    const double d = double(p.v[i]) - double(g.v[i]);
    total += pixel_weight(g.v[i], pth, o.weights) * (squared ? d * d : std::abs(d));
  }
  const int64_t n = p.B * p.T;
  return n > 0 ? total / double(n) : 0.0;
}

}  // namespace

// --- conversions --------------------------------------------------------------------

double pixel_to_dbz(double p) { return p * 70.0 - 10.0; }
double dbz_to_pixel(double dbz) { return std::clamp((dbz + 10.0) / 70.0, 0.0, 1.0); }
double dbz_to_rainfall(double dbz, const ZRRelation& zr) {
  // dBR = (dBZ - 10 log10 a) / b;  R = 10^(dBR / 10)
  return std::pow(10.0, (dbz - 10.0 * std::log10(zr.a)) / zr.b / 10.0);
}
double rainfall_to_dbz(double rate, const ZRRelation& zr) { return 10.0 * std::log10(rate) * zr.b + 10.0 * std::log10(zr.a); }
double pixel_to_rainfall(double p, const ZRRelation& zr) { return dbz_to_rainfall(pixel_to_dbz(p), zr); }
double rainfall_to_pixel(double rate, const ZRRelation& zr) { return (rainfall_to_dbz(rate, zr) + 10.0) / 70.0; }

Tensor pixel_to_dbz(const Tensor& p) { return p * 70.0 - 10.0; }
Tensor pixel_to_rainfall(const Tensor& p, const ZRRelation& zr) {
  // R = 10^((dBZ - 10 log10 a) / (10 b)) = exp(ln 10 * (dBZ - 10 log10 a) / (10 b))
  return exp((pixel_to_dbz(p) - 10.0 * std::log10(zr.a)) * (std::log(10.0) / (10.0 * zr.b)));
}

void BalanceOptions::validate() const {
  MEMEL_CHECK(weights.size() == thresholds.size() + 1, "[nowcast] balancing weights need one more entry (",
              thresholds.size() + 1, ") than thresholds, got ", weights.size());
  for (size_t i = 0; i < thresholds.size(); ++i) {
    MEMEL_CHECK(thresholds[i] > 0, "[nowcast] rain thresholds must be positive (mm/h), got ", thresholds[i]);
    MEMEL_CHECK(i == 0 || thresholds[i] > thresholds[i - 1], "[nowcast] rain thresholds must increase");
  }
  MEMEL_CHECK(zr.a > 0 && zr.b > 0, "[nowcast] Z-R coefficients must be positive, got a=", zr.a, " b=", zr.b);
}

std::vector<double> BalanceOptions::pixel_thresholds() const {
  std::vector<double> r;
  for (double t : thresholds) r.push_back(rainfall_to_pixel(t, zr));
  return r;
}

Tensor balancing_weights(const Tensor& truth, const Tensor& mask, const BalanceOptions& o) {
  o.validate();
  if (mask.defined()) check_same_shape(truth, mask, "mask", "balancing_weights");
  MEMEL_CHECK(truth.defined(), "[balancing_weights] truth is undefined");
  std::vector<float> g = truth.detach().to_vector_as<float>();
  std::vector<float> m = mask.defined() ? mask.detach().to_vector_as<float>() : std::vector<float>();
  const std::vector<double> pth = o.pixel_thresholds();
  std::vector<float> w(g.size());
  for (size_t i = 0; i < g.size(); ++i)
    w[i] = (!m.empty() && m[i] == 0.0f) ? 0.0f : float(pixel_weight(g[i], pth, o.weights));
  return Tensor::from_vector(w, truth.shape()).to(truth.device());
}

// --- loss ---------------------------------------------------------------------------

NowcastLossOptions NowcastLossOptions::from_json(const nlohmann::json& j, const std::string& where) {
  MEMEL_CHECK(j.is_object(), "[config] ", where, ": expected an object, got ", j.dump());
  NowcastLossOptions o;
  for (auto it = j.begin(); it != j.end(); ++it) {
    // Named references, not a structured binding: C++17 lambdas cannot capture those.
    const std::string& k = it.key();
    const nlohmann::json& v = it.value();
    const std::string key = where + "." + k;
    auto number = [&]() {
      MEMEL_CHECK(v.is_number(), "[config] ", key, ": expected a number, got ", v.dump());
      return v.get<double>();
    };
    auto numbers = [&]() {
      MEMEL_CHECK(v.is_array(), "[config] ", key, ": expected a list of numbers, got ", v.dump());
      std::vector<double> r;
      for (auto& e : v) {
        MEMEL_CHECK(e.is_number(), "[config] ", key, ": expected numbers, got ", e.dump());
        r.push_back(e.get<double>());
      }
      return r;
    };
    if (k == "type") {
      MEMEL_CHECK(v.is_string() && (v == "balanced_mse_mae" || v == "mse_mae"), "[config] ", key,
                  ": expected \"balanced_mse_mae\" or \"mse_mae\", got ", v.dump());
      o.balanced = v == "balanced_mse_mae";
    } else if (k == "mse_weight") {
      o.mse_weight = number();
    } else if (k == "mae_weight") {
      o.mae_weight = number();
    } else if (k == "global_scale") {
      o.global_scale = number();
    } else if (k == "thresholds") {
      o.balance.thresholds = numbers();
    } else if (k == "balancing_weights") {
      o.balance.weights = numbers();
    } else if (k == "zr_a") {
      o.balance.zr.a = number();
    } else if (k == "zr_b") {
      o.balance.zr.b = number();
    } else {
      MEMEL_FAIL("[config] unknown key '", key, "' (loss keys: type, mse_weight, mae_weight, global_scale, "
                 "thresholds, balancing_weights, zr_a, zr_b)");
    }
  }
  o.balance.validate();
  return o;
}

Tensor nowcast_loss(const Tensor& pred, const Tensor& truth, const Tensor& mask, const NowcastLossOptions& o) {
  MEMEL_CHECK(pred.defined() && truth.defined(), "[nowcast_loss] prediction and truth are required");
  MEMEL_CHECK(pred.dim() >= 3, "[nowcast_loss] prediction must be (B, T, ...) frames, got ", shape_str(pred.shape()));
  check_same_shape(pred, truth, "truth", "nowcast_loss");
  if (mask.defined()) check_same_shape(pred, mask, "mask", "nowcast_loss");
  Tensor w;  // (B, T, ...) without history
  if (o.balanced) {
    w = balancing_weights(truth, mask, o.balance).to_dtype(pred.dtype());
  } else if (mask.defined()) {
    std::vector<float> mv = mask.detach().to_vector_as<float>();
    for (float& x : mv) x = x != 0.0f ? 1.0f : 0.0f;
    w = Tensor::from_vector(mv, mask.shape()).to_dtype(pred.dtype()).to(pred.device());
  }
  Tensor d = pred - truth.detach();
  Tensor sq = square(d), ab = abs(d);
  if (w.defined()) {
    sq = sq * w;
    ab = ab * w;
  }
  // (B, T, ...) -> (B, T): sum over the pixels of each frame, then mean over (B, T)
  Tensor mse_bt = sum(flatten(sq, 2), {2}), mae_bt = sum(flatten(ab, 2), {2});
  return (mean(mse_bt) * o.mse_weight + mean(mae_bt) * o.mae_weight) * o.global_scale;
}

// --- scores --------------------------------------------------------------------------

ContingencyCounts& ContingencyCounts::operator+=(const ContingencyCounts& o) {
  hits += o.hits;
  misses += o.misses;
  false_alarms += o.false_alarms;
  correct_negatives += o.correct_negatives;
  return *this;
}

SkillScores skill_scores(const ContingencyCounts& c) {
  const double a = double(c.hits), b = double(c.false_alarms), cc = double(c.misses), d = double(c.correct_negatives);
  auto ratio = [](double x, double y) { return y == 0 ? kNaN : x / y; };  // numpy: 0/0 -> nan
  SkillScores s;
  s.pod = ratio(a, a + cc);
  s.far = ratio(b, a + b);
  s.csi = ratio(a, a + b + cc);
  const double n = a + b + cc + d;
  const double aref = n == 0 ? kNaN : (a + b) / n * (a + cc);
  s.gss = ratio(a - aref, a + b + cc - aref);
  s.hss = std::isnan(s.gss) ? kNaN : ratio(2.0 * s.gss, s.gss + 1.0);
  return s;
}

NowcastEvaluator::NowcastEvaluator(int64_t frames, BalanceOptions o) : frames_(frames), opt_(std::move(o)) {
  MEMEL_CHECK(frames > 0, "[NowcastEvaluator] frames must be positive, got ", frames);
  opt_.validate();
  reset();
}

void NowcastEvaluator::reset() {
  sequences_ = 0;
  sq_.assign(size_t(frames_), 0.0);
  abs_.assign(size_t(frames_), 0.0);
  bsq_.assign(size_t(frames_), 0.0);
  babs_.assign(size_t(frames_), 0.0);
  counts_.assign(size_t(frames_), std::vector<ContingencyCounts>(opt_.thresholds.size()));
}

void NowcastEvaluator::update(const Tensor& pred, const Tensor& truth, const Tensor& mask) {
  const char* op = "NowcastEvaluator";
  check_same_shape(pred, truth, "truth", op);
  if (mask.defined()) check_same_shape(pred, mask, "mask", op);
  Frames p = frames_of(pred, "prediction", op), g = frames_of(truth, "truth", op);
  MEMEL_CHECK(p.T == frames_, "[", op, "] expected ", frames_, " frames on axis 1, got ", shape_str(pred.shape()));
  std::vector<float> m = mask.defined() ? mask.detach().to_vector_as<float>() : std::vector<float>();
  const std::vector<double> pth = opt_.pixel_thresholds();
  const size_t K = pth.size();
  for (int64_t b = 0; b < p.B; ++b) {
    for (int64_t t = 0; t < p.T; ++t) {
      const size_t base = size_t((b * p.T + t) * p.P);
      double sq = 0, ab = 0, bsq = 0, bab = 0;
      std::vector<ContingencyCounts>& cnt = counts_[size_t(t)];
      for (int64_t i = 0; i < p.P; ++i) {
        const size_t j = base + size_t(i);
        if (!m.empty() && m[j] == 0.0f) continue;
        const double pv = p.v[j], gv = g.v[j], d = pv - gv;
        const double w = pixel_weight(g.v[j], pth, opt_.weights);
        sq += d * d;
        ab += std::abs(d);
        bsq += w * d * d;
        bab += w * std::abs(d);
        for (size_t k = 0; k < K; ++k) {
          const bool bp = pv >= pth[k], bt = gv >= pth[k];
          if (bp && bt) ++cnt[k].hits;
          else if (!bp && bt) ++cnt[k].misses;
          else if (bp && !bt) ++cnt[k].false_alarms;
          else ++cnt[k].correct_negatives;
        }
      }
      sq_[size_t(t)] += sq;
      abs_[size_t(t)] += ab;
      bsq_[size_t(t)] += bsq;
      babs_[size_t(t)] += bab;
    }
  }
  sequences_ += p.B;
}

namespace {
std::vector<double> per_sequence(const std::vector<double>& v, int64_t n) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = n > 0 ? v[i] / double(n) : kNaN;
  return r;
}
}  // namespace

std::vector<double> NowcastEvaluator::mse() const { return per_sequence(sq_, sequences_); }
std::vector<double> NowcastEvaluator::mae() const { return per_sequence(abs_, sequences_); }
std::vector<double> NowcastEvaluator::b_mse() const { return per_sequence(bsq_, sequences_); }
std::vector<double> NowcastEvaluator::b_mae() const { return per_sequence(babs_, sequences_); }
double NowcastEvaluator::mean_mse() const { return mean_of(mse()); }
double NowcastEvaluator::mean_mae() const { return mean_of(mae()); }
double NowcastEvaluator::mean_b_mse() const { return mean_of(b_mse()); }
double NowcastEvaluator::mean_b_mae() const { return mean_of(b_mae()); }

std::vector<std::vector<SkillScores>> NowcastEvaluator::scores() const {
  std::vector<std::vector<SkillScores>> r(counts_.size());
  for (size_t t = 0; t < counts_.size(); ++t)
    for (auto& c : counts_[t]) r[t].push_back(skill_scores(c));
  return r;
}

std::vector<SkillScores> NowcastEvaluator::mean_scores() const {
  const auto s = scores();
  const size_t K = opt_.thresholds.size();
  std::vector<SkillScores> r(K);
  auto avg = [&](size_t k, double SkillScores::*f) {
    double sum = 0;
    int64_t n = 0;
    for (auto& row : s)
      if (!std::isnan(row[k].*f)) {
        sum += row[k].*f;
        ++n;
      }
    return n ? sum / double(n) : kNaN;
  };
  for (size_t k = 0; k < K; ++k) {
    r[k].pod = avg(k, &SkillScores::pod);
    r[k].far = avg(k, &SkillScores::far);
    r[k].csi = avg(k, &SkillScores::csi);
    r[k].hss = avg(k, &SkillScores::hss);
    r[k].gss = avg(k, &SkillScores::gss);
  }
  return r;
}

nlohmann::json NowcastEvaluator::to_json(bool per_frame) const {
  nlohmann::json j;
  j["sequences"] = sequences_;
  j["mse"] = num(mean_mse());
  j["mae"] = num(mean_mae());
  j["b_mse"] = num(mean_b_mse());
  j["b_mae"] = num(mean_b_mae());
  const auto ms = mean_scores();
  for (size_t k = 0; k < ms.size(); ++k) {
    const std::string r = fmt_threshold(opt_.thresholds[k]);
    j["csi_" + r] = num(ms[k].csi);
    j["hss_" + r] = num(ms[k].hss);
    j["pod_" + r] = num(ms[k].pod);
    j["far_" + r] = num(ms[k].far);
    j["gss_" + r] = num(ms[k].gss);
  }
  if (per_frame) {
    nlohmann::json f;
    auto arr = [](const std::vector<double>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (double x : v) a.push_back(num(x));
      return a;
    };
    f["mse"] = arr(mse());
    f["mae"] = arr(mae());
    f["b_mse"] = arr(b_mse());
    f["b_mae"] = arr(b_mae());
    const auto s = scores();
    for (const char* name : {"csi", "hss", "pod", "far", "gss"}) {
      nlohmann::json rows = nlohmann::json::array();
      for (auto& row : s) {
        nlohmann::json a = nlohmann::json::array();
        for (auto& sc : row) {
          const std::string n = name;
          a.push_back(num(n == "csi" ? sc.csi : n == "hss" ? sc.hss : n == "pod" ? sc.pod : n == "far" ? sc.far : sc.gss));
        }
        rows.push_back(a);
      }
      f[name] = rows;
    }
    nlohmann::json th = nlohmann::json::array();
    for (double t : opt_.thresholds) th.push_back(t);
    f["thresholds"] = th;
    j["per_frame"] = f;
  }
  return j;
}

double balanced_mse(const Tensor& pred, const Tensor& truth, const Tensor& mask, const BalanceOptions& o) {
  return balanced_error(pred, truth, mask, o, true, "balanced_mse");
}

double balanced_mae(const Tensor& pred, const Tensor& truth, const Tensor& mask, const BalanceOptions& o) {
  return balanced_error(pred, truth, mask, o, false, "balanced_mae");
}

}  // namespace memel::nowcast
