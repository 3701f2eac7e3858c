#include "memel/layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <mutex>
#include <sstream>

#include "autograd/ops_util.h"
#include "core/thread_pool.h"

namespace memel {

// The gradient of reverse deactivation is a rule, not the derivative of the forward
// (the forward is constant at selected elements), so finite differences cannot check
// it; tests/memel checks the rule exactly. Hence registered as "no finite-difference
// gradient".
MEMEL_REGISTER_NONDIFF_OP("memel_rd");

namespace {

// Where neurons sit in the per-sample layout: element index i (within a sample) belongs
// to neuron (i / inner) % C; `outer` blocks of C * inner elements make up a sample.
struct Geometry {
  int64_t B = 0, n = 0, outer = 1, C = 1, inner = 1;
  int64_t neuron(int64_t i) const { return (i / inner) % C; }
};

Geometry geometry(const Tensor& x, const MemelOptions& o, Shape* neuron_shape) {
  MEMEL_CHECK(x.dim() >= 2, "[memel] input must be (B, ...) with at least one axis after the batch, got ",
              shape_str(x.shape()));
  Geometry g;
  g.B = x.shape()[0];
  Shape s(x.shape().begin() + 1, x.shape().end());
  g.n = shape_numel(s);
  if (o.neurons == MemelNeurons::Element) {
    g.C = g.n;
    *neuron_shape = s;
  } else {
    const int64_t a = wrap_axis(o.channel_axis < 0 ? o.channel_axis : o.channel_axis - 1, static_cast<int64_t>(s.size()),
                                "memel channel_axis");
    g.C = s[a];
    for (int64_t i = 0; i < a; ++i) g.outer *= s[i];
    for (int64_t i = a + 1; i < static_cast<int64_t>(s.size()); ++i) g.inner *= s[i];
    *neuron_shape = {g.C};
  }
  return g;
}

// Validity per element from a mask that covers a prefix of x's shape (batch first).
std::vector<uint8_t> expand_mask(const Tensor& mask, const Tensor& x) {
  std::vector<uint8_t> valid;
  if (!mask.defined()) return valid;
  MEMEL_CHECK(mask.dim() >= 1 && mask.dim() <= x.dim(), "[memel] mask ", shape_str(mask.shape()),
              " must cover leading axes of the input ", shape_str(x.shape()));
  for (int64_t i = 0; i < mask.dim(); ++i)
    MEMEL_CHECK(mask.shape()[i] == x.shape()[i], "[memel] mask ", shape_str(mask.shape()),
                " does not match the leading axes of the input ", shape_str(x.shape()));
  std::vector<double> m = mask.to_vector();
  const int64_t block = x.numel() / std::max<int64_t>(mask.numel(), 1);
  valid.resize(static_cast<size_t>(x.numel()));
  for (size_t p = 0; p < m.size(); ++p)
    std::fill(valid.begin() + p * block, valid.begin() + (p + 1) * block, uint8_t(m[p] != 0));
  return valid;
}

// Bin of phi given the inner edges (bins - 1 of them): bin k covers [edges[k-1], edges[k]),
// bin 0 lies below edges[0], the last bin at or above edges.back().
// The bin is guessed from a cheap log2 (exponent bits plus a quadratic mantissa term,
// error < 0.01) and then corrected against the exact edges, so it equals the search.
inline double fast_log2(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const double e = double(int64_t((bits >> 52) & 0x7ff) - 1023);
  bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  double m;
  std::memcpy(&m, &bits, sizeof m);
  m -= 1.0;
  return e + m * (1.3465553 - 0.3465553 * m);
}
inline int64_t hist_bin(double phi, const std::vector<double>& edges, double lg_lo, double per_log2) {
  const int64_t ne = static_cast<int64_t>(edges.size());
  if (ne == 0 || !(phi >= edges[0])) return 0;
  if (phi >= edges[ne - 1]) return ne;
  // The guess is off by at most one bin (log2 error < 0.01, a bin is wider), so one
  // branch-free step each way lands on the exact bin.
  int64_t k = 1 + static_cast<int64_t>((fast_log2(phi) - lg_lo) * per_log2);
  k = std::min<int64_t>(std::max<int64_t>(k, 1), ne - 1);
  k -= phi < edges[k - 1];
  k += phi >= edges[k];
  return k;
}

// How many of the n candidates in a scope to take (threshold: decided per element).
int64_t select_count(const MemelOptions& o, int64_t n) {
  switch (o.select) {
    case MemelSelect::TopK: return std::min(o.k, n);
    case MemelSelect::TopLog: return n <= 1 ? n : std::min<int64_t>(n, static_cast<int64_t>(std::ceil(std::log2(double(n)))));
    case MemelSelect::Ratio: return std::min<int64_t>(n, static_cast<int64_t>(std::ceil(o.ratio * double(n) - 1e-9)));
    case MemelSelect::Threshold: return n;
  }
  return 0;
}

// Selects within [begin, end) of phi (flat indices); masked elements have phi < 0.
// Order: phi descending, ties toward the lower index. Appends ascending indices.
template <typename T>
void select_range(const T* phi, int64_t begin, int64_t end, const MemelOptions& o, std::vector<int64_t>& out) {
  if (o.select == MemelSelect::TopK && o.k == 1) {
    // The first largest valid score (ties toward the lower index).
    int64_t best = -1;
    for (int64_t i = begin; i < end; ++i)
      if (phi[i] >= T(0) && (best < 0 || phi[i] > phi[best])) best = i;
    if (best >= 0) out.push_back(best);
    return;
  }
  std::vector<int64_t> cand;
  cand.reserve(static_cast<size_t>(end - begin));
  for (int64_t i = begin; i < end; ++i)
    if (phi[i] >= T(0)) cand.push_back(i);
  const int64_t n = static_cast<int64_t>(cand.size());
  if (n == 0) return;
  std::vector<int64_t> chosen;
  if (o.select == MemelSelect::Threshold) {
    for (int64_t i : cand)
      if (double(phi[i]) > o.threshold) chosen.push_back(i);
  } else {
    const int64_t k = select_count(o, n);
    auto better = [phi](int64_t a, int64_t b) { return phi[a] > phi[b] || (phi[a] == phi[b] && a < b); };
    if (k == 1) {
      int64_t best = cand[0];
      for (int64_t i : cand)
        if (better(i, best)) best = i;
      chosen.push_back(best);
    } else if (k > 0) {
      std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), better);
      chosen.assign(cand.begin(), cand.begin() + k);
    }
  }
  std::sort(chosen.begin(), chosen.end());
  out.insert(out.end(), chosen.begin(), chosen.end());
}

}  // namespace

MemelLayer::MemelLayer(MemelOptions opts) : Module("MemelLayer"), opts_(std::move(opts)) {
  opts_.validate();
  // Registered empty; shaped on the first batch (or from a checkpoint).
  register_buffer("count", Tensor::empty({0}));
  register_buffer("mean", Tensor::empty({0}));
  register_buffer("var", Tensor::empty({0}));
  register_buffer("inhibited", Tensor::empty({0}));
  register_buffer("ms_sum", Tensor::empty({0}));
  register_buffer("ms_n", Tensor::empty({0}));
  batches_ = register_buffer("batches", Tensor::zeros({1}, DType::F64));
  ms_hist_ = register_buffer("ms_hist", Tensor::zeros({opts_.hist_bins}, DType::F64));
}

std::string MemelLayer::extra_repr() const {
  std::ostringstream os;
  os << "mode=" << to_string(opts_.mode) << ", select=" << to_string(opts_.select);
  if (opts_.select == MemelSelect::TopK) os << "(k=" << opts_.k << ")";
  os << ", scope=" << to_string(opts_.scope) << ", neurons=" << to_string(opts_.neurons);
  if (!neuron_shape_.empty()) os << ", neuron_shape=" << shape_str(neuron_shape_);
  return os.str();
}

int64_t MemelLayer::batches_seen() const { return static_cast<int64_t>(batches_.item()); }

void MemelLayer::set_state(const std::string& name, Tensor t) { *find_tensor(name) = t; }

void MemelLayer::materialize(const Shape& ns, DType dtype) {
  neuron_shape_ = ns;
  stats_ = NeuronStats::zeros(ns, dtype);
  inhibited_ = Tensor::zeros(ns, DType::F64);
  ms_sum_ = Tensor::zeros(ns, DType::F64);
  ms_n_ = Tensor::zeros(ns, DType::F64);
  set_state("count", stats_.count);
  set_state("mean", stats_.mean);
  set_state("var", stats_.var);
  set_state("inhibited", inhibited_);
  set_state("ms_sum", ms_sum_);
  set_state("ms_n", ms_n_);
}

void MemelLayer::reset_window() {
  if (ms_sum_.defined()) {
    ms_sum_.zero_();
    ms_n_.zero_();
  }
  ms_hist_.zero_();
}

std::vector<double> MemelLayer::hist_edges() const {
  std::vector<double> e;
  const int64_t inner = opts_.hist_bins - 2;
  for (int64_t i = 0; i <= inner && opts_.hist_bins > 1; ++i)
    e.push_back(opts_.hist_min * std::pow(opts_.hist_max / opts_.hist_min, double(i) / double(std::max<int64_t>(inner, 1))));
  return e;
}

Tensor MemelLayer::score(const Tensor& x_in) const {
  MEMEL_CHECK(initialized(), "[memel] score() before the layer has seen any data");
  Shape ns;
  Tensor x = detail::cont(x_in);
  Geometry g = geometry(x, opts_, &ns);
  MEMEL_CHECK(ns == neuron_shape_, "[memel] input per-sample shape gives neurons ", shape_str(ns), ", layer has ",
              shape_str(neuron_shape_));
  Tensor phi = Tensor::empty(x.shape(), x.dtype());
  MEMEL_DISPATCH_FLOAT(x.dtype(), "memel", [&] {
    using T = scalar_t;
    std::vector<double> mu = stats_.mean.to_vector(), v = stats_.var.to_vector();
    const double mean_v = std::accumulate(v.begin(), v.end(), 0.0) / double(std::max<size_t>(v.size(), 1));
    const T* px = x.data<T>();
    T* pp = phi.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t j = g.neuron(i % g.n);
      double d = v[j] + opts_.eps * mean_v;
      if (!(d > 0)) d = mean_v > 0 ? mean_v : 1.0;
      const double z = double(px[i]) - mu[j];
      pp[i] = T(z * z / d);
    }
  });
  return phi;
}

Tensor MemelLayer::forward(const Tensor& x_in) {
  const bool training = is_training();
  if (capture_) last_input_ = x_in.detach();
  penalty_ = Tensor();
  if (training && opts_.regularizer == "decorrelation") penalty_ = decorrelation_penalty(x_in, opts_.lambda);
  if (!training && !opts_.active_at_eval) return x_in;
  detail::check_float(x_in, "memel");
  MEMEL_CHECK(x_in.device().is_cpu(), "[memel] the memel layer runs on the CPU in this build; got ",
              x_in.device().str());
  Tensor x = detail::cont(x_in);
  Shape ns;
  Geometry g = geometry(x, opts_, &ns);
  if (!initialized()) {
    if (!training) return x_in;  // nothing known yet: eval is the identity
    materialize(ns, x.dtype());
  }
  MEMEL_CHECK(ns == neuron_shape_, "[memel] input ", shape_str(x.shape()), " gives neurons ", shape_str(ns),
              " but this layer tracks neurons ", shape_str(neuron_shape_),
              " (element neurons need a fixed per-sample shape, e.g. padding to a fixed length)");
  MEMEL_CHECK(x.dtype() == stats_.mean.dtype(), "[memel] input dtype ", dtype_name(x.dtype()),
              " differs from the statistics dtype ", dtype_name(stats_.mean.dtype()));
  if (opts_.select == MemelSelect::TopK) {
    const int64_t scope_n = opts_.scope == MemelScope::Sample ? g.n : g.n * g.B;
    MEMEL_CHECK(opts_.k <= scope_n, "[memel] k = ", opts_.k, " is larger than the ", scope_n, " elements in each ",
                to_string(opts_.scope), " scope");
  }
  const std::vector<uint8_t> valid = expand_mask(mask_, x);
  const bool update = training;
  const int64_t seen = batches_seen();
  const bool warm = seen >= opts_.warmup;
  Tensor phi = Tensor::empty(x.shape(), x.dtype());
  std::vector<int64_t> selected;
  const int64_t C = g.C;

  MEMEL_DISPATCH_FLOAT(x.dtype(), "memel", [&] {
    using T = scalar_t;
    const T* px = x.data<T>();
    T* pphi = phi.data<T>();
    T* pm = stats_.count.data<T>();
    T* pmu = stats_.mean.data<T>();
    T* pv = stats_.var.data<T>();
    const uint8_t* pvalid = valid.empty() ? nullptr : valid.data();

    // Per-neuron denominators v_i + eps * mean(v), with the zero-variance fallback.
    std::vector<double> denom(static_cast<size_t>(C));
    auto make_denoms = [&] {
      double sv = 0;
      for (int64_t j = 0; j < C; ++j) sv += double(pv[j]);
      const double mean_v = sv / double(std::max<int64_t>(C, 1));
      for (int64_t j = 0; j < C; ++j) {
        double d = double(pv[j]) + opts_.eps * mean_v;
        denom[j] = d > 0 ? d : (mean_v > 0 ? mean_v : 1.0);
      }
    };
    // One read of the activation: per neuron, the batch count and shifted sums (shift =
    // the running mean, or the neuron's first value in the batch when it has no history,
    // so the sums stay well conditioned), and unless scoring after the update, the scores
    // against the history together with the dump window (MS sums and histogram).
    std::vector<double> bcnt(static_cast<size_t>(C), 0.0), bmean(static_cast<size_t>(C), 0.0),
        bm2(static_cast<size_t>(C), 0.0), shift(static_cast<size_t>(C), 0.0);
    std::vector<uint8_t> have_shift(static_cast<size_t>(C), 0);
    const bool score_now = !opts_.score_after_update || !update;
    if (score_now) make_denoms();
    const int64_t blocks = g.B * g.outer;  // each block holds C * inner elements
    const int64_t nb = opts_.hist_bins;
    const std::vector<double> edges = hist_edges();
    const double lg_lo = edges.empty() ? 0.0 : std::log2(edges.front());
    const double per_log2 = edges.size() < 2 ? 0.0 : double(edges.size() - 1) / (std::log2(edges.back()) - lg_lo);
    double* psum = ms_sum_.data<double>();
    double* pn = ms_n_.data<double>();
    double* ph = ms_hist_.data<double>();
    std::mutex hist_mu;
    for (int64_t c = 0; c < C; ++c)
      if (double(pm[c]) > 0) {
        shift[c] = double(pmu[c]);
        have_shift[c] = 1;
      }
    parallel_for(C, std::max<int64_t>(1, 4096 / std::max<int64_t>(blocks * g.inner, 1)), [&](int64_t c0, int64_t c1) {
      std::vector<double> local(static_cast<size_t>(update && score_now ? nb : 0), 0.0);
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t base = blk * C * g.inner;
        for (int64_t c = c0; c < c1; ++c) {
          const double mu_old = double(pmu[c]), dn = denom[c];
          for (int64_t t = 0; t < g.inner; ++t) {
            const int64_t i = base + c * g.inner + t;
            if (pvalid && !pvalid[i]) {
              pphi[i] = T(-1);
              continue;
            }
            const double z = double(px[i]);
            if (update) {
              if (!have_shift[c]) {
                shift[c] = z;
                have_shift[c] = 1;
              }
              const double d = z - shift[c];
              bmean[c] += d;
              bm2[c] += d * d;
              bcnt[c] += 1.0;
            }
            if (score_now) {
              const double e = z - mu_old;
              const double p = e * e / dn;
              pphi[i] = T(p);
              if (update) {
                psum[c] += p;
                pn[c] += 1;
                local[hist_bin(p, edges, lg_lo, per_log2)] += 1;
              }
            }
          }
        }
      }
      if (!local.empty()) {
        std::lock_guard<std::mutex> lk(hist_mu);
        for (int64_t k = 0; k < nb; ++k) ph[k] += local[k];
      }
    });
    if (update)
      for (int64_t c = 0; c < C; ++c)
        if (bcnt[c] > 0) {
          const double m1 = bmean[c] / bcnt[c];  // mean of (z - shift)
          bm2[c] = std::max(0.0, bm2[c] / bcnt[c] - m1 * m1);  // biased batch variance
          bmean[c] = shift[c] + m1;
        }
    if (update) {
      stats_.merge(Tensor::from_vector(bcnt, {C}, DType::F64), Tensor::from_vector(bmean, {C}, DType::F64),
                   Tensor::from_vector(bm2, {C}, DType::F64), opts_.max_count);
      batches_.fill_(double(seen + 1));
    }
    if (!score_now) {
      // Authors' order: score against the statistics that include this batch.
      make_denoms();
      parallel_for(x.numel(), 16384, [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) {
          if (pvalid && !pvalid[i]) continue;
          const int64_t c = g.neuron(i % g.n);
          const double d = double(px[i]) - double(pmu[c]);
          pphi[i] = T(d * d / denom[c]);
        }
      });
    }
    // Selection.
    if (opts_.inhibits() && warm) {
      if (opts_.scope == MemelScope::Batch) {
        select_range<T>(pphi, 0, x.numel(), opts_, selected);
      } else {
        std::vector<std::vector<int64_t>> per(static_cast<size_t>(g.B));
        parallel_for(g.B, 1, [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b) select_range<T>(pphi, b * g.n, (b + 1) * g.n, opts_, per[b]);
        });
        for (auto& v : per) selected.insert(selected.end(), v.begin(), v.end());
      }
    }
    // Window accumulators (training only); with the default order they were filled in the
    // main pass. Histogram counts are merged per chunk (integer counts in doubles, so the
    // result does not depend on the split).
    if (update) {
      double* pin = inhibited_.data<double>();
      if (!score_now)
        parallel_for(C, std::max<int64_t>(1, 4096 / std::max<int64_t>(blocks * g.inner, 1)), [&](int64_t c0, int64_t c1) {
          std::vector<double> local(static_cast<size_t>(nb), 0.0);
          for (int64_t blk = 0; blk < blocks; ++blk) {
            const int64_t base = blk * C * g.inner;
            for (int64_t c = c0; c < c1; ++c)
              for (int64_t t = 0; t < g.inner; ++t) {
                const double p = double(pphi[base + c * g.inner + t]);
                if (p < 0) continue;
                psum[c] += p;
                pn[c] += 1;
                local[hist_bin(p, edges, lg_lo, per_log2)] += 1;
              }
          }
          std::lock_guard<std::mutex> lk(hist_mu);
          for (int64_t k = 0; k < nb; ++k) ph[k] += local[k];
        });
      for (int64_t i : selected) pin[g.neuron(i % g.n)] += 1;
    }
  });
  last_scores_ = phi;
  last_selected_ = selected;
  if (selected.empty()) return x_in;
  // Replacement values: the running mean of each selected element's neuron.
  std::vector<double> mu = stats_.mean.to_vector();
  std::vector<double> vals(selected.size());
  for (size_t s = 0; s < selected.size(); ++s) vals[s] = mu[g.neuron(selected[s] % g.n)];
  return reverse_deactivate(x_in, selected, Tensor::from_vector(vals, {int64_t(vals.size())}, DType::F64),
                            opts_.effective_delta());
}

Tensor reverse_deactivate(const Tensor& x_in, const std::vector<int64_t>& indices, const Tensor& values, double delta) {
  detail::check_float(x_in, "memel_rd");
  MEMEL_CHECK(values.numel() == static_cast<int64_t>(indices.size()), "[memel_rd] ", values.numel(), " values for ",
              indices.size(), " indices");
  Tensor y = x_in.contiguous_copy();
  std::vector<double> vals = values.to_vector();
  MEMEL_DISPATCH_FLOAT(y.dtype(), "memel_rd", [&] {
    using T = scalar_t;
    T* py = y.data<T>();
    for (size_t s = 0; s < indices.size(); ++s) {
      MEMEL_CHECK(indices[s] >= 0 && indices[s] < y.numel(), "[memel_rd] index ", indices[s], " out of range for ",
                  y.numel(), " elements");
      py[indices[s]] = T(vals[s]);
    }
  });
  auto idx = std::make_shared<std::vector<int64_t>>(indices);
  return autograd::record("memel_rd", y, {x_in}, [idx, delta](const autograd::TensorList& g) -> autograd::TensorList {
    Tensor gx = g[0].contiguous_copy();
    MEMEL_DISPATCH_FLOAT(gx.dtype(), "memel_rd", [&] {
      using T = scalar_t;
      T* pg = gx.data<T>();
      for (int64_t i : *idx) pg[i] = T(-delta) * pg[i];
    });
    return {gx};
  });
}

Tensor decorrelation_penalty(const Tensor& x, double lambda, double eps) {
  MEMEL_CHECK(x.dim() >= 2, "[decorrelation] input must have rank >= 2, got ", shape_str(x.shape()));
  const int64_t C = x.shape().back();
  Tensor z = reshape(x, {-1, C});                                   // (M, C)
  Tensor zc = sub(z, mean(z, {0}, true));
  Tensor norm = sqrt(add(sum(square(zc), {0}, true), eps));          // (1, C)
  Tensor zn = div(zc, norm);
  Tensor corr = matmul(transpose(zn, 0, 1), zn);                     // (C, C)
  std::vector<double> e(static_cast<size_t>(C * C), 0.0);
  for (int64_t i = 0; i < C; ++i) e[i * C + i] = 1.0;
  Tensor eye = Tensor::from_vector(e, {C, C}, x.dtype());
  return mul(sum(square(sub(corr, eye))), lambda);
}

Tensor memel_regularization(const Module& root) {
  Tensor total;
  for (auto& [name, layer] : memel_layers(root)) {
    const Tensor& p = layer->penalty();
    if (!p.defined()) continue;
    total = total.defined() ? add(total, p) : p;
  }
  return total.defined() ? total : Tensor::zeros({});
}

void prepare_memel_layers_for_load(Module& root, const StateDict& sd) {
  for (auto& [name, layer] : memel_layers(root)) {
    auto it = sd.find(name + ".mean");
    if (it == sd.end() || it->second.numel() == 0) continue;
    if (layer->initialized() && layer->neuron_shape() == it->second.shape()) continue;
    // Shape the buffers like the checkpoint; load_state_dict then copies the values.
    layer->load_neuron_shape(it->second.shape(), it->second.dtype());
  }
}

std::vector<std::pair<std::string, std::shared_ptr<MemelLayer>>> memel_layers(const Module& root) {
  std::vector<std::pair<std::string, std::shared_ptr<MemelLayer>>> r;
  for (auto& [name, m] : root.named_modules())
    if (auto l = std::dynamic_pointer_cast<MemelLayer>(m)) r.emplace_back(name, l);
  return r;
}

std::vector<std::string> attach_memel(Module& root, const MemelOptions& opts, const std::vector<std::string>& paper) {
  std::vector<std::string> targets;
  for (const std::string& t : opts.at) {
    if (t == "paper") {
      MEMEL_CHECK(!paper.empty(), "[memel] \"at\": \"paper\" but this model has no published placement; list module "
                  "names instead");
      targets.insert(targets.end(), paper.begin(), paper.end());
    } else {
      targets.push_back(t);
    }
  }
  MEMEL_CHECK(!targets.empty(), "[memel] \"at\" names no insertion point");
  std::vector<std::string> names;
  for (const std::string& t : targets) {
    root.wrap(t, std::make_shared<MemelLayer>(opts));
    const size_t colon = t.find(':');
    names.push_back(colon == std::string::npos ? (t.empty() ? "memel" : t + ".memel")
                                               : t.substr(0, colon) + (colon ? "." : "") + "memel_" + t.substr(colon + 1));
  }
  return names;
}

void set_memel_mask(const Module& root, const Tensor& mask) {
  for (auto& [name, layer] : memel_layers(root)) layer->set_mask(mask);
}

}  // namespace memel
