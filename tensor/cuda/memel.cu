// The memel layer's kernels on the GPU (tensor/cuda/memel.h): one thread per neuron for
// the pass (the neuron's elements in the CPU kernel's order, so the moments and scores are
// the CPU's), one per neuron for the merge, one per selected element for the inhibition,
// one block per scope for top-1 selection. Functors: tensor/cuda/memel_functors.h.
#include <vector>

#include "tensor/cuda/block.cuh"
#include "tensor/cuda/check.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/cuda/memel.h"
#include "tensor/cuda/memel_functors.h"
#include "tensor/ms_hist.h"

namespace memel::cuda {
namespace {

template <typename T>
T* opt_ptr(const Tensor& t) {
  return t.defined() ? ptr<T>(t) : nullptr;
}

// out[0] = the sum of v (n) in a fixed order: one block, a strided partial per thread, then
// the block's tree.
template <typename T>
__global__ void sum_kernel(const T* v, int64_t n, double* out) {
  __shared__ double scratch[kBlock];
  double a = 0;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) a += double(v[i]);
  const double s = block_reduce(a, scratch, SumOp{});
  if (threadIdx.x == 0) out[0] = s;
}

// The first largest candidate of each scope (blockIdx.x) of n scores; -1 when none.
template <typename T>
__global__ void top1_kernel(const T* phi, int64_t n, int64_t* out) {
  __shared__ double sv[kBlock];
  __shared__ int64_t si[kBlock];
  const T* p = phi + int64_t(blockIdx.x) * n;
  double bv = 0;
  int64_t bi = -1;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) memel_better(double(p[i]), i, &bv, &bi);
  const int t = threadIdx.x;
  sv[t] = bv;
  si[t] = bi;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s >>= 1) {
    if (t < s) {
      double v = sv[t];
      int64_t i = si[t];
      memel_better(sv[t + s], si[t + s], &v, &i);
      sv[t] = v;
      si[t] = i;
    }
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = si[0] < 0 ? -1 : int64_t(blockIdx.x) * n + si[0];
}

}  // namespace

void memel_pass(const Context& c, const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean,
                const Tensor& var, const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar, Tensor& phi,
                Tensor& ms_sum, Tensor& ms_n, Tensor& ms_hist) {
  c.activate();
  const Device dev = x.device();
  Tensor m;
  if (mask.defined()) m = mask.to_dtype(DType::F64).contiguous_copy();
  Tensor sum_var, counts, edges;
  if (s.score) {
    sum_var = Tensor::empty({1}, DType::F64, dev);
    MEMEL_DISPATCH_FLOAT(var.dtype(), "memel_pass", [&] {
      using T = scalar_t;
      sum_kernel<T><<<1, kBlock, 0, c.stream>>>(ptr<T>(var), var.numel(), ptr<double>(sum_var));
      MEMEL_CUDA_LAUNCH_CHECK(sum_kernel);
    });
  }
  const int64_t nb = s.window ? s.bins->count() : 0;
  if (s.window) {
    counts = Tensor::zeros({nb}, DType::I32, dev);
    edges = Tensor::from_vector(s.bins->edges(), {nb - 1}, DType::F64).to(dev);
  }
  MEMEL_DISPATCH_FLOAT(x.dtype(), "memel_pass", [&] {
    using T = scalar_t;
    MemelPassF<T> f{ptr<T>(x),
                    s.score ? ptr<T>(phi) : nullptr,
                    m.defined() ? ptr<double>(m) : nullptr,
                    m.defined() ? x.numel() / m.numel() : 1,
                    s.blocks,
                    s.C,
                    s.inner,
                    opt_ptr<T>(count),
                    opt_ptr<T>(mean),
                    opt_ptr<T>(var),
                    s.score ? ptr<double>(sum_var) : nullptr,
                    s.eps,
                    s.moments,
                    s.score,
                    s.window,
                    s.moments ? ptr<double>(bcount) : nullptr,
                    s.moments ? ptr<double>(bmean) : nullptr,
                    s.moments ? ptr<double>(bvar) : nullptr,
                    s.window ? ptr<double>(ms_sum) : nullptr,
                    s.window ? ptr<double>(ms_n) : nullptr,
                    s.window ? reinterpret_cast<unsigned int*>(ptr<int32_t>(counts)) : nullptr,
                    s.window && nb > 1 ? ptr<double>(edges) : nullptr,
                    nb - 1};
    for_each(f, s.C, c.stream);
  });
  if (s.window)
    for_each(MemelHistAddF{reinterpret_cast<const unsigned int*>(ptr<int32_t>(counts)), ptr<double>(ms_hist)}, nb,
             c.stream);
  // The temporaries above are freed when this returns: the stream keeps the order.
}

void memel_merge(const Context& c, Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount,
                 const Tensor& bmean, const Tensor& bvar, int64_t forget_batches, bool count_ahead) {
  c.activate();
  MEMEL_DISPATCH_FLOAT(mean.dtype(), "memel_merge", [&] {
    using T = scalar_t;
    for_each(MemelMergeF<T>{ptr<T>(count), ptr<T>(mean), ptr<T>(var), ptr<double>(bcount), ptr<double>(bmean),
                            ptr<double>(bvar), forget_batches, count_ahead},
             count.numel(), c.stream);
  });
}

bool memel_select(const Context& c, const Tensor& phi, const MemelSelectSpec& s, std::vector<int64_t>& out) {
  if (!(s.rule == 0 && s.k == 1 && !s.all_ties) || s.scopes == 0 || s.n == 0) return false;
  c.activate();
  Tensor best = Tensor::empty({s.scopes}, DType::I64, phi.device());
  MEMEL_DISPATCH_FLOAT(phi.dtype(), "memel_select", [&] {
    using T = scalar_t;
    top1_kernel<T><<<static_cast<unsigned>(s.scopes), kBlock, 0, c.stream>>>(ptr<T>(phi), s.n, ptr<int64_t>(best));
    MEMEL_CUDA_LAUNCH_CHECK(top1_kernel);
  });
  out.clear();
  for (int64_t i : best.to(Device::cpu()).to_vector_as<int64_t>())
    if (i >= 0) out.push_back(i);
  return true;
}

void memel_inhibit(const Context& c, const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values) {
  c.activate();
  MEMEL_DISPATCH_FLOAT(mean.dtype(), "memel_inhibit", [&] {
    using T = scalar_t;
    for_each(MemelInhibitF<T>{ptr<int64_t>(ids), ptr<T>(mean), inhibited.defined() ? ptr<double>(inhibited) : nullptr,
                              ptr<double>(values)},
             ids.numel(), c.stream);
  });
}

}  // namespace memel::cuda
