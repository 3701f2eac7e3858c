#include "memel/layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <numeric>
#include <mutex>
#include <sstream>

#include "autograd/ops_util.h"
#include "core/thread_pool.h"
#include "tensor/host_stage.h"

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
  const bool all_ties = o.ties == MemelTies::All;
  if (o.select == MemelSelect::TopK && o.k == 1) {
    // The first largest valid score (ties toward the lower index): a branch-free maximum
    // (masked -1 and NaN never win), then the first index holding it.
    T best = T(-0.5);
    for (int64_t i = begin; i < end; ++i) best = phi[i] > best ? phi[i] : best;
    if (best < T(0)) return;
    int64_t i = begin;
    while (phi[i] != best) ++i;
    out.push_back(i);
    if (all_ties)  // the authors' (max == phi): every element tied with the maximum
      for (++i; i < end; ++i)
        if (phi[i] == best) out.push_back(i);
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
    if (k == 1 && !all_ties) {
      int64_t best = cand[0];
      for (int64_t i : cand)
        if (better(i, best)) best = i;
      chosen.push_back(best);
    } else if (k > 0) {
      std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), better);
      chosen.assign(cand.begin(), cand.begin() + k);
      if (all_ties) {
        // Every candidate whose score equals the k-th largest joins (the authors' kthvalue rule).
        const T kth = phi[cand[k - 1]];
        for (auto it = cand.begin() + k; it != cand.end(); ++it)
          if (phi[*it] == kth) chosen.push_back(*it);
      }
    }
  }
  std::sort(chosen.begin(), chosen.end());
  out.insert(out.end(), chosen.begin(), chosen.end());
}

// Per-neuron denominators v_i + eps * mean(v), with the zero-variance fallback.
template <typename T>
void make_denoms(const T* var, int64_t C, double eps, double* dn) {
  double sv = 0;
  for (int64_t j = 0; j < C; ++j) sv += double(var[j]);
  const double mean_v = sv / double(std::max<int64_t>(C, 1));
  parallel_for(C, 16384, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const double d = double(var[j]) + eps * mean_v;
      dn[j] = d > 0 ? d : (mean_v > 0 ? mean_v : 1.0);
    }
  });
}

// What one pass over the activation does: Stats accumulates the batch sums per neuron
// (shifted by `shift`), Score writes the MS of every element against the running
// statistics, Window adds the scores to the dump window (ms_sum, ms_n and the histogram).
template <typename T>
struct Pass {
  const T* x;
  T* phi;
  const uint8_t* valid;  // per element, or null for "all valid"
  int64_t blocks, C, inner;
  const T* mu;                        // running means (scoring)
  const double *shift, *dn;           // per neuron
  double *s1, *s2, *cnt, *psum, *pn;  // per neuron accumulators
  const MsHistBins* bins;
};

// Neurons [c0, c1) over every block, in a fixed order per neuron (so the sums do not
// depend on how neurons are split between threads). Counts of the histogram go to `hist`
// (4 interleaved copies, so that runs of equal bins do not wait on each other).
template <typename T, bool Masked, bool Stats, bool Score, bool Window>
void run_pass(const Pass<T>& a, int64_t c0, int64_t c1, uint32_t* hist) {
  const int64_t nb = Window ? a.bins->count() : 0;
  const T* __restrict x = a.x;
  T* __restrict phi = a.phi;
  const uint8_t* __restrict valid = a.valid;
  const T* __restrict mu = a.mu;
  const double* __restrict shift = a.shift;
  const double* __restrict dn = a.dn;
  double* __restrict s1 = a.s1;
  double* __restrict s2 = a.s2;
  double* __restrict cnt = a.cnt;
  double* __restrict psum = a.psum;
  double* __restrict pn = a.pn;
  for (int64_t blk = 0; blk < a.blocks; ++blk) {
    const int64_t base = blk * a.C * a.inner;
    if (a.inner == 1) {
      // Element neurons: neuron c is element c of the block; vectorises over c.
      const T* xr = x + base;
      T* pr = phi + base;
      const uint8_t* vr = Masked ? valid + base : nullptr;
#pragma GCC ivdep
      for (int64_t c = c0; c < c1; ++c) {
        const double z = double(xr[c]);
        const bool ok = !Masked || vr[c] != 0;
        if (Stats) {
          const double d = ok ? z - shift[c] : 0.0;
          s1[c] += d;
          s2[c] += d * d;
          if (Masked) cnt[c] += ok ? 1.0 : 0.0;
        }
        if (Score) {
          const double e = z - double(mu[c]);
          const double p = e * e / dn[c];
          pr[c] = ok ? T(p) : T(-1);
          if (Window) {
            psum[c] += ok ? p : 0.0;
            if (Masked) pn[c] += ok ? 1.0 : 0.0;
          }
        }
      }
      if (Window)
        for (int64_t c = c0; c < c1; ++c)
          if (!Masked || vr[c]) ++hist[(c & 3) * nb + (*a.bins)(double(pr[c]))];
    } else {
      // Channel neurons: a run of `inner` elements per neuron.
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t off = base + c * a.inner;
        const double sh = Stats ? shift[c] : 0.0, m = Score ? double(mu[c]) : 0.0, d0 = Score ? dn[c] : 1.0;
        double a1 = 0, a2 = 0, an = 0, ap = 0, aw = 0;
        for (int64_t t = 0; t < a.inner; ++t) {
          const int64_t i = off + t;
          const bool ok = !Masked || valid[i];
          const double z = double(x[i]);
          if (Stats) {
            const double d = ok ? z - sh : 0.0;
            a1 += d;
            a2 += d * d;
            an += ok ? 1.0 : 0.0;
          }
          if (Score) {
            const double e = z - m;
            const double p = e * e / d0;
            phi[i] = ok ? T(p) : T(-1);
            if (Window && ok) {
              ap += p;
              aw += 1.0;
              ++hist[(t & 3) * nb + (*a.bins)(double(phi[i]))];
            }
          }
        }
        if (Stats) {
          s1[c] += a1;
          s2[c] += a2;
          if (Masked) cnt[c] += an;
        }
        if (Window) {
          psum[c] += ap;
          if (Masked) pn[c] += aw;
        }
      }
    }
  }
}

// Runs a pass over all neurons on the thread pool and merges the histogram counts
// (integers, so the result does not depend on the split).
template <typename T, bool Stats, bool Score, bool Window>
void run_pass_all(const Pass<T>& a, double* ms_hist) {
  const int64_t per_neuron = a.blocks * a.inner;
  const int64_t nb = Window ? a.bins->count() : 0;
  std::mutex mu;
  parallel_for(a.C, std::max<int64_t>(1, 8192 / std::max<int64_t>(per_neuron, 1)), [&](int64_t c0, int64_t c1) {
    std::vector<uint32_t> hist(static_cast<size_t>(4 * nb), 0);
    if (a.valid)
      run_pass<T, true, Stats, Score, Window>(a, c0, c1, hist.data());
    else
      run_pass<T, false, Stats, Score, Window>(a, c0, c1, hist.data());
    if (!Window) return;
    std::lock_guard<std::mutex> lk(mu);
    for (int64_t k = 0; k < nb; ++k)
      ms_hist[k] += double(hist[k]) + double(hist[nb + k]) + double(hist[2 * nb + k]) + double(hist[3 * nb + k]);
  });
  if (!a.valid) {
    // Without a mask every element counts.
    const double n = double(per_neuron);
    for (int64_t c = 0; c < a.C; ++c) {
      if (Stats) a.cnt[c] += n;
      if (Window) a.pn[c] += n;
    }
  }
}

}  // namespace

MsHistBins::MsHistBins(int64_t bins, double lo, double hi) {
  const int64_t inner = bins - 2;
  for (int64_t i = 0; i <= inner && bins > 1; ++i)
    edges_.push_back(lo * std::pow(hi / lo, double(i) / double(std::max<int64_t>(inner, 1))));
  for (size_t i = 1; i < edges_.size(); ++i)  // 17 digits: such a range does not show at the default 6
    MEMEL_CHECK(edges_[i] > edges_[i - 1], "[memel] histogram of ", bins, " bins from hist_min ", std::setprecision(17),
                lo, " to hist_max ", hi, ": log-spaced edges round to equal values; use fewer bins or a wider range");
  if (edges_.size() < 2) return;
  key0_ = key(edges_.front());
  const uint64_t last = key(edges_.back());
  MEMEL_CHECK(last - key0_ < (uint64_t(1) << 24), "[memel] histogram range ", lo, " .. ", hi, " is too wide");
  table_.resize(static_cast<size_t>(last - key0_ + 1));
  for (uint64_t k = key0_; k <= last; ++k) {
    const uint64_t bits = k << 45;
    double v;
    std::memcpy(&v, &bits, sizeof v);
    table_[k - key0_] = static_cast<uint32_t>(std::upper_bound(edges_.begin(), edges_.end(), v) - edges_.begin());
  }
  // An entry spans a factor of at most 2^(1/128); edges further apart than that never
  // share an entry.
  wide_ = true;
  for (size_t i = 1; i < edges_.size(); ++i) wide_ = wide_ && edges_[i] > edges_[i - 1] * 1.01;
}

MemelLayer::MemelLayer(MemelOptions opts) : Module("MemelLayer"), opts_(std::move(opts)) {
  opts_.validate();
  bins_ = MsHistBins(opts_.hist_bins, opts_.hist_min, opts_.hist_max);
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

Tensor MemelLayer::work_input(const Tensor& x) const {
  if (opts_.stats_dtype == MemelStatsDType::Float32 && x.dtype() != DType::F32) return x.detach().to_dtype(DType::F32);
  return x;
}

void MemelLayer::materialize(const Shape& ns, DType dtype) {
  neuron_shape_ = ns;
  const Device dev = batches_.device();  // the layer's device (Module::to moves its buffers)
  stats_ = NeuronStats::zeros(ns, dtype, dev);
  inhibited_ = Tensor::zeros(ns, DType::F64, dev);
  ms_sum_ = Tensor::zeros(ns, DType::F64, dev);
  ms_n_ = Tensor::zeros(ns, DType::F64, dev);
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

void MemelLayer::set_options(const MemelOptions& o) {
  o.validate();
  opts_ = o;
  bins_ = MsHistBins(opts_.hist_bins, opts_.hist_min, opts_.hist_max);
}

Tensor MemelLayer::score(const Tensor& x_in) const {
  MEMEL_CHECK(initialized(), "[memel] score() before the layer has seen any data");
  Shape ns;
  Tensor x = detail::cont(work_input(x_in));
  Geometry g = geometry(x, opts_, &ns);
  MEMEL_CHECK(ns == neuron_shape_, "[memel] input per-sample shape gives neurons ", shape_str(ns), ", layer has ",
              shape_str(neuron_shape_));
  MEMEL_CHECK(x.dtype() == stats_.mean.dtype(), "[memel] input dtype ", dtype_name(x.dtype()),
              " differs from the statistics dtype ", dtype_name(stats_.mean.dtype()));
  const Device dev = x.device();
  Tensor phi;
  std::vector<double> dn(static_cast<size_t>(g.C));
  NeuronStats st = stats_;
  // The pass is host code: on a device the host cannot address it runs on host copies.
  on_host({&x, &st.mean, &st.var}, {}, [&] {
    phi = Tensor::empty(x.shape(), x.dtype());
    MEMEL_DISPATCH_FLOAT(x.dtype(), "memel", [&] {
      using T = scalar_t;
      make_denoms(st.var.data<T>(), g.C, opts_.eps, dn.data());
      Pass<T> a{x.data<T>(), phi.data<T>(), nullptr, g.B * g.outer, g.C, g.inner, st.mean.data<T>(), nullptr,
                dn.data(), nullptr, nullptr, nullptr, nullptr, nullptr, &bins_};
      run_pass_all<T, false, true, false>(a, nullptr);
    });
  });
  return phi.to(dev);
}

Tensor MemelLayer::forward(const Tensor& x_in) {
  const bool training = is_training();
  if (capture_) last_input_ = x_in.detach();
  penalty_ = Tensor();
  if (training && opts_.regularizer == "decorrelation") penalty_ = decorrelation_penalty(x_in, opts_.lambda);
  if (!training && !opts_.active_at_eval) {
    // Eval is the identity: nothing is selected, no scores.
    last_selected_.clear();
    last_scores_ = Tensor();
    return x_in;
  }
  detail::check_float(x_in, "memel");
  Tensor x = detail::cont(work_input(x_in));
  Shape ns;
  Geometry g = geometry(x, opts_, &ns);
  if (!initialized()) {
    if (!training) {  // nothing known yet: eval is the identity
      last_selected_.clear();
      last_scores_ = Tensor();
      return x_in;
    }
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
  const Device dev = x.device();
  Tensor phi;
  std::vector<int64_t> selected;
  Tensor vals;
  const int64_t C = g.C, blocks = g.B * g.outer;
  // Work arrays: shift and denominators (each written before it is read), batch sums s1
  // and s2, batch counts (zeroed).
  scratch_.resize(static_cast<size_t>(6 * C));
  std::fill(scratch_.begin() + 2 * C, scratch_.begin() + 5 * C, 0.0);
  double* shift = scratch_.data();
  double* dn = shift + C;
  double* s1 = dn + C;
  double* s2 = s1 + C;
  double* cnt = s2 + C;
  double* mu_scored = cnt + C;  // the means the scores used (pre-merge when scoring first)

  // The pass, merge and selection are host code: on a device the host cannot address
  // they run on host copies of the input and the layer's state (tensor/host_stage.h).
  on_host({&x}, {&stats_.count, &stats_.mean, &stats_.var, &inhibited_, &ms_sum_, &ms_n_, &ms_hist_}, [&] {
  phi = Tensor::empty(x.shape(), x.dtype());
  MEMEL_DISPATCH_FLOAT(x.dtype(), "memel", [&] {
    using T = scalar_t;
    const T* px = x.data<T>();
    T* pm = stats_.count.data<T>();
    T* pmu = stats_.mean.data<T>();
    Pass<T> a{px, phi.data<T>(), valid.empty() ? nullptr : valid.data(), blocks, C, g.inner, pmu, shift, dn, s1, s2,
              cnt, ms_sum_.data<double>(), ms_n_.data<double>(), &bins_};
    double* ph = ms_hist_.data<double>();
    // The batch sums are shifted by the running mean, or by the neuron's first valid value
    // in the batch when it has no history, so that they stay well conditioned.
    if (update)
      parallel_for(C, 16384, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          if (double(pm[c]) > 0) {
            shift[c] = double(pmu[c]);
            continue;
          }
          shift[c] = 0.0;  // no valid value in this batch: the neuron gets no sums
          for (int64_t blk = 0, found = 0; blk < blocks && !found; ++blk)
            for (int64_t t = 0; t < g.inner && !found; ++t) {
              const int64_t i = (blk * C + c) * g.inner + t;
              if (valid.empty() || valid[i]) {
                shift[c] = double(px[i]);
                found = 1;
              }
            }
        }
      });
    // One read of the activation: batch sums, and unless scoring after the update, the
    // scores against the history together with the dump window.
    const bool score_now = !opts_.score_after_update || !update;
    if (score_now) {
      make_denoms(stats_.var.data<T>(), C, opts_.eps, dn);
      for (int64_t c = 0; c < C; ++c) mu_scored[c] = double(pmu[c]);
    }
    if (update && score_now)
      run_pass_all<T, true, true, true>(a, ph);
    else if (update)
      run_pass_all<T, true, false, false>(a, ph);
    else
      run_pass_all<T, false, true, false>(a, ph);
    if (update) {
      parallel_for(C, 16384, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c)
          if (cnt[c] > 0) {
            const double m1 = s1[c] / cnt[c];                   // mean of (z - shift)
            s2[c] = std::max(0.0, s2[c] / cnt[c] - m1 * m1);  // biased batch variance
            s1[c] = shift[c] + m1;
          }
      });
      if (memel_cross_rank().reduce_moments) memel_cross_rank().reduce_moments(C, cnt, s1, s2);  // issue 24
      stats_.merge(cnt, s1, s2, MergeRule{opts_.forget_batches, opts_.count_ahead});
      batches_.fill_(double(seen + 1));
    }
    if (!score_now) {
      // Authors' order: score against the statistics that include this batch.
      make_denoms(stats_.var.data<T>(), C, opts_.eps, dn);
      for (int64_t c = 0; c < C; ++c) mu_scored[c] = double(pmu[c]);
      run_pass_all<T, false, true, true>(a, ph);
    }
    // Selection.
    const T* pphi = phi.data<T>();
    if (opts_.inhibits() && warm) {
      if (opts_.scope == MemelScope::Batch && update && memel_cross_rank().gather_scores) {
        // Data-parallel training: selected among the global batch's scores; this process
        // keeps its own (an evaluation runs on rank 0 alone, on its whole batch).
        int64_t first = 0;
        const std::vector<double> all = memel_cross_rank().gather_scores(std::vector<double>(pphi, pphi + x.numel()), first);
        const std::vector<T> allt(all.begin(), all.end());
        std::vector<int64_t> global;
        select_range<T>(allt.data(), 0, int64_t(allt.size()), opts_, global);
        for (int64_t i : global)
          if (i >= first && i < first + x.numel()) selected.push_back(i - first);
      } else if (opts_.scope == MemelScope::Batch) {
        select_range<T>(pphi, 0, x.numel(), opts_, selected);
      } else {
        std::vector<std::vector<int64_t>> per(static_cast<size_t>(g.B));
        parallel_for(g.B, 1, [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b) select_range<T>(pphi, b * g.n, (b + 1) * g.n, opts_, per[b]);
        });
        for (auto& v : per) selected.insert(selected.end(), v.begin(), v.end());
      }
    }
    if (update) {
      double* pin = inhibited_.data<double>();
      for (int64_t i : selected) pin[g.neuron(i % g.n)] += 1;
    }
    // Replacement values: the mean each selected element was scored against (the
    // pre-merge mean when scoring before the merge, the paper's Algorithm 2).
    vals = Tensor::empty({int64_t(selected.size())}, DType::F64);
    double* pval = vals.data<double>();
    for (size_t s = 0; s < selected.size(); ++s) pval[s] = mu_scored[g.neuron(selected[s] % g.n)];
  });
  });
  phi = phi.to(dev);
  last_scores_ = phi;
  last_selected_ = selected;
  if (selected.empty()) return x_in;
  return reverse_deactivate(x_in, selected, vals, opts_.effective_delta());
}

Tensor reverse_deactivate(const Tensor& x_in, const std::vector<int64_t>& indices, const Tensor& values, double delta) {
  detail::check_float(x_in, "memel_rd");
  MEMEL_CHECK(values.numel() == static_cast<int64_t>(indices.size()), "[memel_rd] ", values.numel(), " values for ",
              indices.size(), " indices");
  Tensor y = x_in.contiguous_copy();
  const int64_t n = y.numel(), k = static_cast<int64_t>(indices.size());
  for (int64_t i : indices)
    MEMEL_CHECK(i >= 0 && i < n, "[memel_rd] index ", i, " out of range for ", n, " elements");
  Backend& be = backend_for(y);
  const Tensor idx = Tensor::from_vector(indices, {k}).to(y.device());
  // y[idx] = values (in y's dtype)
  Tensor yf = y.as_strided({n, 1}, {1, 1}, y.offset());
  const Tensor vals = values.to(y.device()).to_dtype(y.dtype()).contiguous_copy();
  be.index_put(vals.as_strided({k, 1}, {1, 1}, vals.offset()), idx, yf, "memel_rd");
  return autograd::record("memel_rd", y, {x_in}, [idx, k, delta](const autograd::TensorList& g) -> autograd::TensorList {
    // gx = g, except gx[idx] = -delta * g[idx]
    Tensor gx = g[0].contiguous_copy();
    Backend& b = backend_for(gx);
    Tensor gf = gx.as_strided({gx.numel(), 1}, {1, 1}, gx.offset());
    Tensor picked = Tensor::empty({k, 1}, gx.dtype(), gx.device());
    b.index_select(gf, idx, picked, "memel_rd");
    b.unary(UnaryOp::MulScalar, picked, picked, -delta);
    b.index_put(picked, idx, gf, "memel_rd");
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
  if (total.defined()) return total;
  // No penalty: a zero where the model is (the loss it is added to is there).
  const std::vector<Tensor> params = root.parameters();
  return Tensor::zeros({}, DType::F32, params.empty() ? Device::cpu() : params.front().device());
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

std::vector<std::string> attach_memel(Module& root, const MemelOptions& opts,
                                      const std::vector<std::string>& paper_targets) {
  // No targets passed: the model's own placement (Module::paper_memel_targets).
  const std::vector<std::string> paper = paper_targets.empty() ? root.paper_memel_targets() : paper_targets;
  std::vector<std::string> targets;
  std::vector<bool> from_paper;  // per target: it came from the "paper" placement
  for (const std::string& t : opts.at) {
    if (t == "paper") {
      MEMEL_CHECK(!paper.empty(), "[memel] \"at\": \"paper\" but this model (", root.type_name(),
                  ") has no published placement; list module names instead");
      targets.insert(targets.end(), paper.begin(), paper.end());
      from_paper.insert(from_paper.end(), paper.size(), true);
    } else {
      targets.push_back(t);
      from_paper.push_back(false);
    }
  }
  MEMEL_CHECK(!targets.empty(), "[memel] \"at\" names no insertion point");
  // A target given twice would wrap one module twice ("child 'memel' registered twice").
  for (size_t i = 0; i < targets.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      MEMEL_CHECK(targets[i] != targets[j], "[memel] memel.at lists '", targets[i], "' twice",
                  from_paper[i] || from_paper[j] ? " (\"paper\" includes it)" : "");
  std::vector<std::string> names;
  for (const std::string& t : targets) {
    const size_t colon = t.find(':');
    const std::string name = colon == std::string::npos
                                 ? (t.empty() ? "memel" : t + ".memel")
                                 : t.substr(0, colon) + (colon ? "." : "") + "memel_" + t.substr(colon + 1);
    // Attached by an earlier call (e.g. memel.at, then memel.monitor_at).
    for (auto& [existing, layer] : memel_layers(root))
      MEMEL_CHECK(existing != name, "[memel] '", t, "' already has a memel layer (", name,
                  "); a target may be listed only once across memel.at and memel.monitor_at");
    root.wrap(t, std::make_shared<MemelLayer>(opts));
    names.push_back(name);
  }
  return names;
}

void set_memel_mask(const Module& root, const Tensor& mask) {
  for (auto& [name, layer] : memel_layers(root)) layer->set_mask(mask);
}

namespace {
MemelCrossRank& cross_rank_slot() {
  static MemelCrossRank r;
  return r;
}
}  // namespace

void set_memel_cross_rank(MemelCrossRank r) { cross_rank_slot() = std::move(r); }
const MemelCrossRank& memel_cross_rank() { return cross_rank_slot(); }

}  // namespace memel
