// Reductions on the GPU: Backend::reduce over any axes of a strided view, argmax over
// rows, and the sum of squares of many tensors (gradient clipping). One block per output
// element for long reductions, one thread per output for short ones; every sum is in a
// fixed order (tensor/cuda/block.cuh), floats accumulate in double as on the CPU.
#include <limits>
#include <type_traits>

#include "tensor/cuda/block.cuh"
#include "tensor/cuda/check.h"
#include "tensor/cuda/functors.h"
#include "tensor/cuda/kernels.h"
#include "tensor/cuda/multi_launch.cuh"
#include "tensor/cuda/launch.cuh"

namespace memel::cuda {
namespace {

template <typename T>
using AccOf = typename std::conditional<std::is_floating_point<T>::value, double, int64_t>::type;

template <typename A>
struct Comb {
  ReduceOp op;
  __device__ A init() const {
    switch (op) {
      case ReduceOp::Sum: return A(0);
      case ReduceOp::Prod: return A(1);
      case ReduceOp::Max: return std::numeric_limits<A>::lowest();
      case ReduceOp::Min: return std::numeric_limits<A>::max();
    }
    return A(0);
  }
  __device__ A operator()(A a, A v) const {
    switch (op) {
      case ReduceOp::Sum: return a + v;
      case ReduceOp::Prod: return a * v;
      case ReduceOp::Max: return v > a || v != v ? v : a;
      case ReduceOp::Min: return v < a || v != v ? v : a;
    }
    return a;
  }
};

// Output o (kept index over `kept`) reduces the elements at kept offset + reduced offsets.
template <typename T>
struct ReduceArgs {
  Strided<2> kept;     // x, out over the kept axes
  Strided<1> reduced;  // x over the reduced axes
  int64_t nred;
  const T* x;
  T* out;
  ReduceOp op;
};

template <typename T>
__global__ void reduce_block_kernel(ReduceArgs<T> a) {
  using A = AccOf<T>;
  __shared__ A scratch[kBlock];
  const Comb<A> comb{a.op};
  const int64_t o = blockIdx.x;
  int64_t ko[2];
  a.kept.offsets(o, ko);
  A acc = comb.init();
  for (int64_t r = threadIdx.x; r < a.nred; r += kBlock) {
    int64_t ro[1];
    a.reduced.offsets(r, ro);
    acc = comb(acc, A(a.x[ko[0] + ro[0]]));
  }
  acc = block_reduce(acc, scratch, [&](A u, A v) { return comb(u, v); });
  if (threadIdx.x == 0) a.out[ko[1]] = T(acc);
}

template <typename T>
struct ReduceThreadF {
  ReduceArgs<T> a;
  __device__ void operator()(int64_t o) const {
    using A = AccOf<T>;
    const Comb<A> comb{a.op};
    int64_t ko[2];
    a.kept.offsets(o, ko);
    A acc = comb.init();
    for (int64_t r = 0; r < a.nred; ++r) {
      int64_t ro[1];
      a.reduced.offsets(r, ro);
      acc = comb(acc, A(a.x[ko[0] + ro[0]]));
    }
    a.out[ko[1]] = T(acc);
  }
};

// partial[c] = the sum of squares of chunk c (multi_tensor.h) of the tensors xs, for the
// chunks of this block; the block's threads combine in a fixed order.
template <typename T>
__global__ void sum_squares_chunks_kernel(const Chunk* chunks, int64_t n, const T* const* xs, double* partial) {
  __shared__ double scratch[kBlock];
  for (int64_t c = blockIdx.x; c < n; c += gridDim.x) {
    const Chunk ch = chunks[c];
    const T* x = xs[ch.tensor];
    double acc = 0;
    for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += kBlock) acc += double(x[i]) * double(x[i]);
    acc = block_reduce(acc, scratch, SumOp{});
    if (threadIdx.x == 0) partial[c] = acc;
  }
}

// out += sum of the partials, in order (one thread).
__global__ void add_partials_kernel(const double* partial, int n, double* out) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += partial[i];
  *out += s;
}

}  // namespace

void reduce(const Context& c, ReduceOp op, const Tensor& x, Tensor& out) {
  MEMEL_CHECK(x.dim() == out.dim(), "[reduce] rank mismatch ", shape_str(x.shape()), " -> ", shape_str(out.shape()));
  Shape kshape, kxs, kos, rshape, rxs;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (out.shape()[d] == x.shape()[d]) {
      kshape.push_back(x.shape()[d]);
      kxs.push_back(x.strides()[d]);
      kos.push_back(out.strides()[d]);
    } else {
      MEMEL_CHECK(out.shape()[d] == 1, "[reduce] output shape ", shape_str(out.shape()), " does not match input ",
                  shape_str(x.shape()));
      rshape.push_back(x.shape()[d]);
      rxs.push_back(x.strides()[d]);
    }
  }
  const int64_t nout = shape_numel(kshape), nred = shape_numel(rshape);
  if (nout == 0) return;
  MEMEL_DISPATCH_ALL(x.dtype(), "reduce", [&] {
    using T = scalar_t;
    ReduceArgs<T> a{make_strided<2>(kshape, {&kxs, &kos}), make_strided<1>(rshape, {&rxs}), nred, ptr<T>(x),
                    ptr<T>(out), op};
    if (nred >= 128 && nout <= (int64_t(1) << 31) - 1) {
      reduce_block_kernel<T><<<unsigned(nout), kBlock, 0, c.stream>>>(a);
      MEMEL_CUDA_LAUNCH_CHECK(reduce_block_kernel);
    } else {
      for_each(ReduceThreadF<T>{a}, nout, c.stream);
    }
  });
}

void argmax_last(const Context& c, const Tensor& x, Tensor& out) {
  const int64_t n = x.shape().back(), rows = x.numel() / std::max<int64_t>(n, 1);
  MEMEL_DISPATCH_ALL(x.dtype(), "argmax", [&] {
    using T = scalar_t;
    for_each(ArgmaxRowF<T>{ptr<T>(x), n, ptr<int64_t>(out)}, rows, c.stream);
  });
}

// All tensors of one dtype in one launch over their chunks, then the partials added in
// chunk order by one thread: two launches per dtype, the same bits on every run.
void sum_squares(const Context& c, const std::vector<Tensor>& ts, Tensor& out) {
  MEMEL_CUDA_CHECK(cudaMemsetAsync(out.device_data(), 0, sizeof(double), c.stream));
  for (const Tensor& t : ts)
    MEMEL_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, "[sum_squares] float tensors expected, got ",
                dtype_name(t.dtype()));
  for (DType dt : {DType::F32, DType::F64})
    MEMEL_DISPATCH_FLOAT(dt, "sum_squares", [&] {
      using T = scalar_t;
      std::vector<const T*> xs;
      std::vector<int64_t> sizes;
      for (const Tensor& t : ts)
        if (t.dtype() == dt) {
          xs.push_back(ptr<const T>(t));
          sizes.push_back(t.numel());
        }
      const std::vector<Chunk> chunks = make_chunks(sizes);
      if (chunks.empty()) return;
      const Chunk* dchunks = nullptr;
      const T* const* dxs = nullptr;
      Tensor keep = upload_tables(c, out.device(), chunks, xs, dchunks, dxs);
      const int64_t n = int64_t(chunks.size());
      Tensor partial = Tensor::empty({n}, DType::F64, out.device());
      const unsigned blocks = unsigned(std::min<int64_t>(n, int64_t(1) << 20));
      sum_squares_chunks_kernel<T><<<blocks, kBlock, 0, c.stream>>>(dchunks, n, dxs, ptr<double>(partial));
      MEMEL_CUDA_LAUNCH_CHECK(sum_squares_chunks_kernel);
      add_partials_kernel<<<1, 1, 0, c.stream>>>(ptr<double>(partial), int(n), ptr<double>(out));
      MEMEL_CUDA_LAUNCH_CHECK(add_partials_kernel);
    });
}

}  // namespace memel::cuda
