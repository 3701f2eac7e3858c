// Row kernels on the GPU: softmax, LayerNorm and cross-entropy, one block per row with
// fixed-order block reductions (tensor/cuda/block.cuh); LayerNorm's parameter gradients
// are summed over fixed chunks of rows, then over the chunks in order.
#include <cmath>
#include <limits>

#include "tensor/cuda/block.cuh"
#include "tensor/cuda/check.h"
#include "tensor/cuda/functors.h"
#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"

namespace memel::cuda {
namespace {

template <typename T>
__global__ void softmax_kernel(const T* x, T* y, int64_t n, bool log) {
  __shared__ T scratch[kBlock];
  const T* xr = x + int64_t(blockIdx.x) * n;
  T* yr = y + int64_t(blockIdx.x) * n;
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t i = threadIdx.x; i < n; i += kBlock) mx = xr[i] > mx ? xr[i] : mx;
  mx = block_reduce(mx, scratch, [](T a, T b) { return b > a ? b : a; });
  if (mx == -std::numeric_limits<T>::infinity()) mx = T(0);  // fully masked row
  T s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) {
    const T e = std::exp(xr[i] - mx);
    yr[i] = e;
    s += e;
  }
  s = block_reduce(s, scratch, SumOp{});
  if (log) {
    const T ls = std::log(s) + mx;
    for (int64_t i = threadIdx.x; i < n; i += kBlock) yr[i] = xr[i] - ls;
  } else {
    const T inv = s > T(0) ? T(1) / s : T(0);
    for (int64_t i = threadIdx.x; i < n; i += kBlock) yr[i] *= inv;
  }
}

template <typename T>
__global__ void softmax_backward_kernel(const T* y, const T* gy, T* gx, int64_t n, bool log) {
  __shared__ T scratch[kBlock];
  const int64_t off = int64_t(blockIdx.x) * n;
  T s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) s += log ? gy[off + i] : gy[off + i] * y[off + i];
  s = block_reduce(s, scratch, SumOp{});
  for (int64_t i = threadIdx.x; i < n; i += kBlock)
    gx[off + i] = log ? gy[off + i] - std::exp(y[off + i]) * s : y[off + i] * (gy[off + i] - s);
}

template <typename T>
__global__ void layer_norm_kernel(const T* x, const T* w, const T* b, T eps, T* y, T* mean, T* rstd, int64_t n) {
  __shared__ T scratch[kBlock];
  const int64_t off = int64_t(blockIdx.x) * n;
  T s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) s += x[off + i];
  const T mu = block_reduce(s, scratch, SumOp{}) / T(n);
  T v = 0;
  for (int64_t i = threadIdx.x; i < n; i += kBlock) v += (x[off + i] - mu) * (x[off + i] - mu);
  const T rs = T(1) / std::sqrt(block_reduce(v, scratch, SumOp{}) / T(n) + eps);
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = mu;
    rstd[blockIdx.x] = rs;
  }
  for (int64_t i = threadIdx.x; i < n; i += kBlock) {
    T h = (x[off + i] - mu) * rs;
    if (w) h *= w[i];
    if (b) h += b[i];
    y[off + i] = h;
  }
}

template <typename T>
__global__ void layer_norm_backward_kernel(const T* x, const T* w, const T* mean, const T* rstd, const T* g, T* gx,
                                           int64_t n) {
  __shared__ T scratch[kBlock];
  const int64_t off = int64_t(blockIdx.x) * n;
  const T m = mean[blockIdx.x], rs = rstd[blockIdx.x];
  T s1 = 0, s2 = 0;  // sum(g*w), sum(g*w*xhat)
  for (int64_t i = threadIdx.x; i < n; i += kBlock) {
    const T gw = g[off + i] * (w ? w[i] : T(1));
    s1 += gw;
    s2 += gw * (x[off + i] - m) * rs;
  }
  const T a1 = block_reduce(s1, scratch, SumOp{}) / T(n), a2 = block_reduce(s2, scratch, SumOp{}) / T(n);
  for (int64_t i = threadIdx.x; i < n; i += kBlock) {
    const T xh = (x[off + i] - m) * rs;
    const T gw = g[off + i] * (w ? w[i] : T(1));
    gx[off + i] = rs * (gw - a1 - xh * a2);
  }
}

constexpr int64_t kRowChunk = 64;

// part (chunks, 2, n): per chunk of rows, sum g*xhat and sum g per column.
template <typename T>
__global__ void ln_param_partial_kernel(const T* x, const T* mean, const T* rstd, const T* g, int64_t rows,
                                        int64_t n, double* part) {
  const int64_t j = int64_t(blockIdx.x) * kBlock + threadIdx.x, chunk = blockIdx.y;
  if (j >= n) return;
  double aw = 0, ab = 0;
  const int64_t r1 = min(rows, (chunk + 1) * kRowChunk);
  for (int64_t r = chunk * kRowChunk; r < r1; ++r) {
    const double gv = double(g[r * n + j]);
    aw += gv * double((x[r * n + j] - mean[r]) * rstd[r]);
    ab += gv;
  }
  part[(chunk * 2) * n + j] = aw;
  part[(chunk * 2 + 1) * n + j] = ab;
}

template <typename T>
struct LnParamFinalF {
  const double* part;
  int64_t chunks, n;
  T *gw, *gb;
  __device__ void operator()(int64_t j) const {
    double aw = 0, ab = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      aw += part[(c * 2) * n + j];
      ab += part[(c * 2 + 1) * n + j];
    }
    if (gw) gw[j] = T(aw);
    if (gb) gb[j] = T(ab);
  }
};

template <typename T, typename I>
__global__ void cross_entropy_kernel(const T* logits, const I* target, int64_t C, int64_t ignore_index,
                                     double smoothing, T* loss, T* lse, int64_t* bad) {
  __shared__ double scratch[kBlock];
  const int64_t r = blockIdx.x;
  const T* lr = logits + r * C;
  double mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < C; i += kBlock) mx = double(lr[i]) > mx ? double(lr[i]) : mx;
  mx = block_reduce(mx, scratch, [](double a, double b) { return b > a ? b : a; });
  double s = 0, sum_logit = 0;
  for (int64_t i = threadIdx.x; i < C; i += kBlock) {
    s += exp(double(lr[i]) - mx);
    sum_logit += double(lr[i]);
  }
  s = block_reduce(s, scratch, SumOp{});
  sum_logit = block_reduce(sum_logit, scratch, SumOp{});
  if (threadIdx.x != 0) return;
  const double z = log(s) + mx;
  lse[r] = T(z);
  const int64_t t = int64_t(target[r]);
  if (t == ignore_index) {
    loss[r] = T(0);
    return;
  }
  if (t < 0 || t >= C) {
    atomicMin(reinterpret_cast<unsigned long long*>(bad), static_cast<unsigned long long>(r));
    loss[r] = T(0);
    return;
  }
  loss[r] = T((1.0 - smoothing) * (z - double(lr[t])) + smoothing * (z - sum_logit / double(C)));
}

template <typename F>
void with_target(const Tensor& t, F f) {
  if (t.dtype() == DType::I64)
    f(ptr<const int64_t>(t));
  else
    f(ptr<const int32_t>(t));
}

int64_t row_len(const Tensor& x) { return x.shape().empty() ? 1 : x.shape().back(); }
int64_t rows_of(const Tensor& x) { return x.numel() / std::max<int64_t>(row_len(x), 1); }

}  // namespace

void softmax(const Context& c, const Tensor& x, Tensor& y, bool log) {
  const int64_t n = row_len(x), rows = rows_of(x);
  if (rows == 0 || n == 0) return;
  MEMEL_DISPATCH_FLOAT(x.dtype(), "softmax", [&] {
    using T = scalar_t;
    softmax_kernel<T><<<unsigned(rows), kBlock, 0, c.stream>>>(ptr<T>(x), ptr<T>(y), n, log);
    MEMEL_CUDA_LAUNCH_CHECK(softmax_kernel);
  });
}

void softmax_backward(const Context& c, const Tensor& y, const Tensor& gy, Tensor& gx, bool log) {
  const int64_t n = row_len(y), rows = rows_of(y);
  if (rows == 0 || n == 0) return;
  MEMEL_DISPATCH_FLOAT(y.dtype(), "softmax_backward", [&] {
    using T = scalar_t;
    softmax_backward_kernel<T><<<unsigned(rows), kBlock, 0, c.stream>>>(ptr<T>(y), ptr<T>(gy), ptr<T>(gx), n, log);
    MEMEL_CUDA_LAUNCH_CHECK(softmax_backward_kernel);
  });
}

void layer_norm(const Context& c, const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y,
                Tensor& mean, Tensor& rstd) {
  const int64_t n = row_len(x), rows = rows_of(x);
  if (rows == 0 || n == 0) return;
  MEMEL_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
    using T = scalar_t;
    layer_norm_kernel<T><<<unsigned(rows), kBlock, 0, c.stream>>>(
        ptr<T>(x), w.defined() ? ptr<T>(w) : nullptr, b.defined() ? ptr<T>(b) : nullptr, T(eps), ptr<T>(y),
        ptr<T>(mean), ptr<T>(rstd), n);
    MEMEL_CUDA_LAUNCH_CHECK(layer_norm_kernel);
  });
}

void layer_norm_backward(const Context& c, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                         const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) {
  const int64_t n = row_len(x), rows = rows_of(x);
  if (rows == 0 || n == 0) return;
  MEMEL_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward", [&] {
    using T = scalar_t;
    layer_norm_backward_kernel<T><<<unsigned(rows), kBlock, 0, c.stream>>>(
        ptr<T>(x), w.defined() ? ptr<T>(w) : nullptr, ptr<T>(mean), ptr<T>(rstd), ptr<T>(gy), ptr<T>(gx), n);
    MEMEL_CUDA_LAUNCH_CHECK(layer_norm_backward_kernel);
    if (!gw.defined() && !gb.defined()) return;
    const int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
    Tensor part = Tensor::empty({chunks, 2, n}, DType::F64, x.device());
    const dim3 grid(unsigned((n + kBlock - 1) / kBlock), unsigned(chunks));
    ln_param_partial_kernel<T><<<grid, kBlock, 0, c.stream>>>(ptr<T>(x), ptr<T>(mean), ptr<T>(rstd), ptr<T>(gy),
                                                             rows, n, ptr<double>(part));
    MEMEL_CUDA_LAUNCH_CHECK(ln_param_partial_kernel);
    for_each(LnParamFinalF<T>{ptr<double>(part), chunks, n, gw.defined() ? ptr<T>(gw) : nullptr,
                              gb.defined() ? ptr<T>(gb) : nullptr},
             n, c.stream);
  });
}

void cross_entropy(const Context& c, const Tensor& logits, const Tensor& target, int64_t ignore_index,
                   double smoothing, Tensor& loss, Tensor& lse) {
  const int64_t rows = logits.shape()[0], C = logits.shape()[1];
  if (rows == 0) return;
  constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  c.reset_flag(kNone);
  MEMEL_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    using T = scalar_t;
    with_target(target, [&](auto* pt) {
      using I = std::remove_const_t<std::remove_pointer_t<decltype(pt)>>;
      cross_entropy_kernel<T, I><<<unsigned(rows), kBlock, 0, c.stream>>>(
          ptr<T>(logits), pt, C, ignore_index, smoothing, ptr<T>(loss), ptr<T>(lse), c.flag);
      MEMEL_CUDA_LAUNCH_CHECK(cross_entropy_kernel);
    });
  });
  const int64_t bad = c.read_flag();
  if (bad == kNone) return;
  const int64_t t = int64_t(target.as_strided({1}, {1}, target.offset() + bad).to(Device::cpu()).item());
  MEMEL_FAIL("[cross_entropy] target ", t, " at row ", bad, " is out of range [0, ", C, ")");
}

void cross_entropy_backward(const Context& c, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            const Tensor& grow, int64_t ignore_index, double smoothing, Tensor& glogits) {
  const int64_t C = logits.shape()[1];
  MEMEL_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_backward", [&] {
    using T = scalar_t;
    with_target(target, [&](auto* pt) {
      using I = std::remove_const_t<std::remove_pointer_t<decltype(pt)>>;
      for_each(CrossEntropyBackwardF<T, I>{ptr<T>(logits), ptr<T>(lse), ptr<T>(grow), pt, C, ignore_index,
                                           T(smoothing), ptr<T>(glogits)},
               glogits.numel(), c.stream);
    });
  });
}

}  // namespace memel::cuda
