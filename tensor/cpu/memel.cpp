#include "tensor/cpu/memel.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "core/thread_pool.h"
#include "tensor/memel_math.h"
#include "tensor/ms_hist.h"

namespace memel::cpu {
namespace {

// Selects within [begin, end) of phi (flat indices); masked elements have phi < 0.
// Order: phi descending, ties toward the lower index. Appends ascending indices.
template <typename T>
void select_range(const T* phi, int64_t begin, int64_t end, const MemelSelectSpec& o, std::vector<int64_t>& out) {
  const bool all_ties = o.all_ties;
  if (o.rule == 0 && o.k == 1) {
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
  if (o.rule == 3) {
    for (int64_t i : cand)
      if (double(phi[i]) > o.threshold) chosen.push_back(i);
  } else {
    const int64_t k = memel_select_count(o.rule, o.k, o.ratio, n);
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
      dn[j] = memel_denom(double(var[j]), eps, mean_v);
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
          const double p = memel_phi(z, double(mu[c]), dn[c]);
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
            const double p = memel_phi(z, m, d0);
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

void memel_pass(const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean, const Tensor& var,
                const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar, Tensor& phi, Tensor& ms_sum,
                Tensor& ms_n, Tensor& ms_hist) {
  const int64_t C = s.C, blocks = s.blocks, inner = s.inner;
  // Validity per element from the mask (a prefix of the input's shape).
  std::vector<uint8_t> valid;
  if (mask.defined()) {
    const std::vector<double> m = mask.to_vector();
    const int64_t block = x.numel() / static_cast<int64_t>(m.size());
    valid.resize(static_cast<size_t>(x.numel()));
    for (size_t p = 0; p < m.size(); ++p)
      std::fill(valid.begin() + p * block, valid.begin() + (p + 1) * block, uint8_t(m[p] != 0));
  }
  // Per-neuron shift and denominators, each written before it is read: kept per thread
  // between calls (a ConvGRU tap has 10^5-10^6 neurons and runs every time step).
  thread_local std::vector<double> work;
  if (work.size() < static_cast<size_t>(2 * C)) work.resize(static_cast<size_t>(2 * C));
  double* shift = work.data();
  double* dn = shift + C;
  double *cnt = nullptr, *s1 = nullptr, *s2 = nullptr;
  if (s.moments) {
    cnt = bcount.data<double>();
    s1 = bmean.data<double>();
    s2 = bvar.data<double>();
    std::fill(cnt, cnt + C, 0.0);
    std::fill(s1, s1 + C, 0.0);
    std::fill(s2, s2 + C, 0.0);
  }
  MEMEL_DISPATCH_FLOAT(x.dtype(), "memel_pass", [&] {
    using T = scalar_t;
    const T* px = x.data<T>();
    Pass<T> a{px, s.score ? phi.data<T>() : nullptr, valid.empty() ? nullptr : valid.data(), blocks, C, inner,
              s.score || s.moments ? mean.data<T>() : nullptr, shift, dn, s1, s2, cnt,
              s.window ? ms_sum.data<double>() : nullptr, s.window ? ms_n.data<double>() : nullptr, s.bins};
    if (s.moments) {
      // The batch sums are shifted by the running mean, or by the neuron's first valid
      // value in the batch when it has no history, so that they stay well conditioned.
      const T* pm = count.data<T>();
      const T* pmu = mean.data<T>();
      parallel_for(C, 16384, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          if (double(pm[c]) > 0) {
            shift[c] = double(pmu[c]);
            continue;
          }
          shift[c] = 0.0;  // no valid value in this batch: the neuron gets no sums
          for (int64_t blk = 0, found = 0; blk < blocks && !found; ++blk)
            for (int64_t t = 0; t < inner && !found; ++t) {
              const int64_t i = (blk * C + c) * inner + t;
              if (valid.empty() || valid[i]) {
                shift[c] = double(px[i]);
                found = 1;
              }
            }
        }
      });
    }
    if (s.score) make_denoms(var.data<T>(), C, s.eps, dn);
    double* ph = s.window ? ms_hist.data<double>() : nullptr;
    // One read of the activation for whatever this call does.
    if (s.moments && s.window)
      run_pass_all<T, true, true, true>(a, ph);
    else if (s.moments && s.score)
      run_pass_all<T, true, true, false>(a, ph);
    else if (s.moments)
      run_pass_all<T, true, false, false>(a, ph);
    else if (s.window)
      run_pass_all<T, false, true, true>(a, ph);
    else if (s.score)
      run_pass_all<T, false, true, false>(a, ph);
  });
  if (s.moments)
    parallel_for(C, 16384, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c)
        if (cnt[c] > 0) memel_finish_moments(s1[c], s2[c], cnt[c], shift[c], &s1[c], &s2[c]);
    });
}

void memel_merge(Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount, const Tensor& bmean,
                 const Tensor& bvar, int64_t forget_batches, bool count_ahead) {
  const double* pb = bcount.data<double>();
  const double* pmb = bmean.data<double>();
  const double* pvb = bvar.data<double>();
  MEMEL_DISPATCH_FLOAT(mean.dtype(), "memel_merge", [&] {
    using T = scalar_t;
    T* pm = count.data<T>();
    T* pmu = mean.data<T>();
    T* pv = var.data<T>();
    parallel_for(count.numel(), 4096, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) memel_merge_one<T>(pm[i], pmu[i], pv[i], pb[i], pmb[i], pvb[i], forget_batches, count_ahead);
    });
  });
}

std::vector<int64_t> memel_select(const Tensor& phi, const MemelSelectSpec& s) {
  std::vector<int64_t> selected;
  MEMEL_DISPATCH_FLOAT(phi.dtype(), "memel_select", [&] {
    using T = scalar_t;
    const T* pphi = phi.data<T>();
    if (s.scopes == 1) {
      select_range<T>(pphi, 0, s.n, s, selected);
      return;
    }
    std::vector<std::vector<int64_t>> per(static_cast<size_t>(s.scopes));
    parallel_for(s.scopes, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) select_range<T>(pphi, b * s.n, (b + 1) * s.n, s, per[b]);
    });
    for (auto& v : per) selected.insert(selected.end(), v.begin(), v.end());
  });
  return selected;
}

void memel_inhibit(const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values) {
  const int64_t k = ids.numel();
  const int64_t* pid = ids.data<int64_t>();
  double* pval = values.data<double>();
  double* pin = inhibited.defined() ? inhibited.data<double>() : nullptr;
  const int64_t C = mean.numel();
  for (int64_t j = 0; j < k; ++j)
    MEMEL_CHECK(pid[j] >= 0 && pid[j] < C, "[memel_inhibit] neuron ", pid[j], " out of range for ", C);
  MEMEL_DISPATCH_FLOAT(mean.dtype(), "memel_inhibit", [&] {
    using T = scalar_t;
    const T* pmu = mean.data<T>();
    for (int64_t j = 0; j < k; ++j) {
      pval[j] = double(pmu[pid[j]]);
      if (pin) pin[pid[j]] += 1;
    }
  });
}

}  // namespace memel::cpu
