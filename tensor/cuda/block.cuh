#pragma once
// Block-wide reductions in a fixed order (a shared-memory tree over the threads), so a
// kernel's sums do not depend on scheduling: the same inputs give the same bits.
namespace memel::cuda {

constexpr int kBlock = 256;  // threads of the block kernels

// Combines every thread's v with f; all threads get the result. Needs kBlock threads and
// a __shared__ scratch of kBlock values.
template <typename A, typename F>
__device__ A block_reduce(A v, A* scratch, F f) {
  const int t = threadIdx.x;
  scratch[t] = v;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s >>= 1) {
    if (t < s) scratch[t] = f(scratch[t], scratch[t + s]);
    __syncthreads();
  }
  const A r = scratch[0];
  __syncthreads();
  return r;
}

struct SumOp {
  template <typename A>
  __device__ A operator()(A a, A b) const { return a + b; }
};
struct MaxOp {
  template <typename A>
  __device__ A operator()(A a, A b) const { return b > a || b != b ? b : a; }
};

}  // namespace memel::cuda
