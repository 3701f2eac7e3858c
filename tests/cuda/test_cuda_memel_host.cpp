// The CUDA backend's memel kernels (tensor/cuda/memel_functors.h) run on the host through
// the functors the GPU runs, against the CPU backend's kernels. The pass visits a neuron's
// elements in the CPU's order; counts, the histogram, the merge and the inhibition agree
// bit for bit, the moments and scores to rounding (the compilers contract a * b + c into
// fused multiply-adds in different places; the GPU's sum of the variances is a block tree,
// here it is summed in the CPU's order).
#include <doctest/doctest.h>

#include "support.h"

#include <cstring>

#include "autograd/ops.h"
#include "core/rng.h"
#include "tensor/backend.h"
#include "tensor/cuda/functors.h"
#include "tensor/cuda/memel_functors.h"
#include "tensor/ms_hist.h"

using namespace memel;
using namespace memel::cuda;

namespace {

Tensor uni(const Shape& s, uint64_t seed, double lo, double hi, DType dt) {
  Generator g(seed);
  return Tensor::uniform(s, lo, hi, dt, &g);
}

bool same(const Tensor& a, const Tensor& b) { return a.to_vector() == b.to_vector(); }

}  // namespace

TEST_CASE("cuda memel functors on the host: the pass, the merge and the inhibition equal the CPU's") {
  const MsHistBins bins(10, 1e-2, 10.0);
  struct G {
    int64_t blocks, C, inner;
    bool masked, moments, score, window;
  };
  for (const G& g : {G{5, 12, 1, false, true, true, true}, G{5, 12, 1, true, true, true, true},
                     G{3, 4, 6, true, true, true, true}, G{4, 5, 3, false, true, false, false},
                     G{4, 5, 3, true, false, true, true}, G{2, 7, 2, false, false, true, false}})
    for (DType dt : {DType::F32, DType::F64}) {
      INFO("blocks ", g.blocks, " C ", g.C, " inner ", g.inner, " masked ", g.masked, " moments ", g.moments, " score ",
           g.score, " window ", g.window, " ", std::string(dtype_name(dt)));
      const Tensor x = uni({g.blocks, g.C, g.inner}, 3, -2, 2, dt);
      Tensor mask = g.masked ? Tensor::from_vector(std::vector<double>{1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0,
                                                                       1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1,
                                                                       1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                       1, 1, 1, 1, 1, 1},
                                                   {60}, DType::F64)
                                   .as_strided({g.blocks, g.C}, {g.C, 1}, 0)
                                   .contiguous_copy()
                             : Tensor();
      std::vector<double> cnt(size_t(g.C)), mu(size_t(g.C)), var(size_t(g.C));
      for (int64_t i = 0; i < g.C; ++i) {
        cnt[size_t(i)] = i % 2 ? 7.0 : 0.0;
        mu[size_t(i)] = i % 2 ? 0.2 * double(i) - 0.5 : 0.0;
        var[size_t(i)] = i % 2 ? 0.3 + 0.1 * double(i) : 0.0;
      }
      const Tensor count = Tensor::from_vector(cnt, {g.C}, dt), mean = Tensor::from_vector(mu, {g.C}, dt),
                   vr = Tensor::from_vector(var, {g.C}, dt);
      MemelPass p;
      p.blocks = g.blocks;
      p.C = g.C;
      p.inner = g.inner;
      p.moments = g.moments;
      p.score = g.score;
      p.window = g.window;
      p.bins = &bins;
      auto fresh = [&] {
        return std::vector<Tensor>{Tensor::zeros({g.C}, DType::F64), Tensor::zeros({g.C}, DType::F64),
                                   Tensor::zeros({g.C}, DType::F64), Tensor::zeros(x.shape(), dt),
                                   Tensor::full({g.C}, 0.25, DType::F64), Tensor::full({g.C}, 3.0, DType::F64),
                                   Tensor::full({bins.count()}, 2.0, DType::F64)};
      };
      std::vector<Tensor> ref = fresh(), got = fresh();
      cpu_backend().memel_pass(x, mask, count, mean, vr, p, ref[0], ref[1], ref[2], ref[3], ref[4], ref[5], ref[6]);
      double sv = 0;
      for (double v : var) sv += double(dt == DType::F32 ? double(float(v)) : v);
      std::vector<unsigned int> counts(size_t(bins.count()), 0);
      const Tensor mask64 = mask.defined() ? mask.to_dtype(DType::F64) : Tensor();
      MEMEL_DISPATCH_FLOAT(dt, "test", [&] {
        using T = scalar_t;
        MemelPassF<T> f{x.data<T>(), got[3].data<T>(), mask64.defined() ? mask64.data<double>() : nullptr,
                        mask64.defined() ? x.numel() / mask64.numel() : 1, g.blocks, g.C, g.inner, count.data<T>(),
                        mean.data<T>(), vr.data<T>(), &sv, p.eps, g.moments, g.score, g.window,
                        got[0].data<double>(), got[1].data<double>(), got[2].data<double>(),
                        g.window ? got[4].data<double>() : nullptr, g.window ? got[5].data<double>() : nullptr,
                        counts.data(), bins.edges().data(), int64_t(bins.edges().size())};
        run_on_host(f, g.C);
      });
      run_on_host(MemelHistAddF{counts.data(), got[6].data<double>()}, bins.count());
      for (size_t i = 0; i < ref.size(); ++i) {
        INFO("output ", i);
        if (i == 0 || i == 5 || i == 6)  // counts
          CHECK(same(got[i], ref[i]));
        else
          CHECK(rel_err(got[i], ref[i]) <= (dt == DType::F64 ? 1e-13 : 1e-6));
      }
      if (g.window) CHECK(sum(ref[6]).item() > 2.0 * double(bins.count()));

      // The merge of these moments, and the inhibition of a few neurons.
      if (g.moments) {
        for (int64_t forget : {int64_t(0), int64_t(3)}) {
          Tensor c1 = count.contiguous_copy(), m1 = mean.contiguous_copy(), v1 = vr.contiguous_copy();
          Tensor c2 = count.contiguous_copy(), m2 = mean.contiguous_copy(), v2 = vr.contiguous_copy();
          cpu_backend().memel_merge(c1, m1, v1, ref[0], ref[1], ref[2], forget, forget > 0);
          MEMEL_DISPATCH_FLOAT(dt, "test", [&] {
            using T = scalar_t;
            run_on_host(MemelMergeF<T>{c2.data<T>(), m2.data<T>(), v2.data<T>(), ref[0].data<double>(),
                                       ref[1].data<double>(), ref[2].data<double>(), forget, forget > 0},
                        g.C);
          });
          CHECK(same(c1, c2));
          CHECK(same(m1, m2));
          CHECK(same(v1, v2));
        }
      }
      const Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 0, 1, g.C - 1}, {4});
      Tensor inh1 = Tensor::zeros({g.C}, DType::F64), inh2 = Tensor::zeros({g.C}, DType::F64);
      Tensor val1 = Tensor::zeros({4}, DType::F64), val2 = Tensor::zeros({4}, DType::F64);
      cpu_backend().memel_inhibit(ids, mean, inh1, val1);
      MEMEL_DISPATCH_FLOAT(dt, "test", [&] {
        using T = scalar_t;
        run_on_host(MemelInhibitF<T>{ids.data<int64_t>(), mean.data<T>(), inh2.data<double>(), val2.data<double>()}, 4);
      });
      CHECK(same(inh1, inh2));
      CHECK(same(val1, val2));
    }
}

TEST_CASE("cuda memel top-1 comparison: the CPU's choice in any combining order") {
  const std::vector<double> phi{0.5, 2.0, -1, std::nan(""), 2.0, 0.25, 1.0, 2.0};
  MemelSelectSpec s;
  s.scopes = 1;
  s.n = int64_t(phi.size());
  const std::vector<int64_t> ref = cpu_backend().memel_select(Tensor::from_vector(phi, {8}, DType::F64), s);
  REQUIRE(ref == std::vector<int64_t>{1});
  // Left to right, right to left, and a tree of pairs (as the block reduction) agree.
  double bv = 0;
  int64_t bi = -1;
  for (int64_t i = 0; i < 8; ++i) memel_better(phi[size_t(i)], i, &bv, &bi);
  CHECK(bi == 1);
  bv = 0;
  bi = -1;
  for (int64_t i = 7; i >= 0; --i) memel_better(phi[size_t(i)], i, &bv, &bi);
  CHECK(bi == 1);
  std::vector<double> v(phi);
  std::vector<int64_t> ix{0, 1, 2, 3, 4, 5, 6, 7};
  for (size_t i = 0; i < 8; ++i)
    if (!(v[i] >= 0)) ix[i] = -1;
  for (size_t w = 4; w > 0; w /= 2)
    for (size_t t = 0; t < w; ++t) memel_better(v[t + w], ix[t + w], &v[t], &ix[t]);
  CHECK(ix[0] == 1);
}
