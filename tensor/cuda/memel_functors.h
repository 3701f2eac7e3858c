#pragma once
// The CUDA backend's memel kernels as functors (tensor/cuda/memel.cu launches them; the
// host tests in tests/cuda run them over host memory with run_on_host). The arithmetic is
// tensor/memel_math.h, shared with the CPU backend; the pass visits a neuron's elements in
// the CPU kernel's order (block by block, a partial sum per block), so its sums are the
// CPU's bit for bit. Counts (histogram bins, inhibitions) are added with atomics on the
// GPU: integer-valued, so their totals do not depend on the order.
#include <cstdint>

#include "core/hd.h"
#include "tensor/memel_math.h"

namespace memel::cuda {

MEMEL_HD void add_count(unsigned int* c, int64_t k) {
#if defined(__CUDA_ARCH__)
  atomicAdd(c + k, 1u);
#else
  ++c[k];
#endif
}

MEMEL_HD void add_one(double* c, int64_t k) {
#if defined(__CUDA_ARCH__)
  atomicAdd(c + k, 1.0);
#else
  c[k] += 1.0;
#endif
}

// One neuron c of Backend::memel_pass per index (tensor/backend.h has the contract).
template <typename T>
struct MemelPassF {
  const T* x;
  T* phi;                  // with score
  const double* mask;      // per mask entry (nonzero: valid), or null
  int64_t mblock;          // elements per mask entry
  int64_t blocks, C, inner;
  const T *count, *mean, *var;
  const double* sum_var;   // the sum of var over all neurons (with score)
  double eps;
  bool moments, score, window;
  double *bcount, *bmean, *bvar, *ms_sum, *ms_n;
  unsigned int* hist;      // with window: counts per bin
  const double* edges;
  int64_t ne;

  MEMEL_HD void operator()(int64_t c) const {
    double shift = 0.0;
    if (moments) {
      if (double(count[c]) > 0) {
        shift = double(mean[c]);
      } else {
        bool found = false;
        for (int64_t blk = 0; blk < blocks && !found; ++blk)
          for (int64_t t = 0; t < inner && !found; ++t) {
            const int64_t i = (blk * C + c) * inner + t;
            if (!mask || mask[i / mblock] != 0) {
              shift = double(x[i]);
              found = true;
            }
          }
      }
    }
    const double mu = score ? double(mean[c]) : 0.0;
    const double C1 = double(C > 1 ? C : 1);
    const double dn = score ? memel_denom(double(var[c]), eps, *sum_var / C1) : 1.0;
    double s1 = 0, s2 = 0, n = 0, ps = ms_sum ? ms_sum[c] : 0.0, pn = 0;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      double a1 = 0, a2 = 0, ap = 0;
      for (int64_t t = 0; t < inner; ++t) {
        const int64_t i = (blk * C + c) * inner + t;
        const bool ok = !mask || mask[i / mblock] != 0;
        const double z = double(x[i]);
        if (moments) {
          const double d = ok ? z - shift : 0.0;
          a1 += d;
          a2 += d * d;
          n += ok ? 1.0 : 0.0;
        }
        if (score) {
          const double p = memel_phi(z, mu, dn);
          phi[i] = ok ? T(p) : T(-1);
          if (window && ok) {
            ap += p;
            pn += 1.0;
            add_count(hist, memel_hist_bin(double(phi[i]), edges, ne));
          }
        }
      }
      s1 += a1;
      s2 += a2;
      if (window) ps += ap;
    }
    if (moments) {
      bcount[c] = n;
      double m = 0, v = 0;
      if (n > 0) memel_finish_moments(s1, s2, n, shift, &m, &v);
      bmean[c] = m;
      bvar[c] = v;
    }
    if (window) {
      ms_sum[c] = ps;
      ms_n[c] += pn;
    }
  }
};

// The histogram's counts added to the window (bins per index).
struct MemelHistAddF {
  const unsigned int* counts;
  double* hist;
  MEMEL_HD void operator()(int64_t k) const { hist[k] += double(counts[k]); }
};

// One neuron of Backend::memel_merge per index.
template <typename T>
struct MemelMergeF {
  T *count, *mean, *var;
  const double *b, *mb, *vb;
  int64_t forget_batches;
  bool count_ahead;
  MEMEL_HD void operator()(int64_t i) const {
    memel_merge_one<T>(count[i], mean[i], var[i], b[i], mb[i], vb[i], forget_batches, count_ahead);
  }
};

// One selected element of Backend::memel_inhibit per index.
template <typename T>
struct MemelInhibitF {
  const int64_t* ids;
  const T* mean;
  double *inhibited, *values;  // inhibited may be null
  MEMEL_HD void operator()(int64_t j) const {
    values[j] = double(mean[ids[j]]);
    if (inhibited) add_one(inhibited, ids[j]);
  }
};

// Of two candidates (score, index), the one top-1 selection prefers: the larger score,
// ties toward the lower index; a score below 0 or NaN is no candidate (index -1).
MEMEL_HD void memel_better(double v, int64_t i, double* bv, int64_t* bi) {
  if (!(v >= 0) || i < 0) return;
  if (*bi < 0 || v > *bv || (v == *bv && i < *bi)) {
    *bv = v;
    *bi = i;
  }
}

}  // namespace memel::cuda
