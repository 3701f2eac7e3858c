// Attention on the GPU without the score matrix in memory (float32).
//
// Scaled-dot-product attention (Backend::attention): a block takes 16 query rows of one
// (batch, head), eight threads per row, and walks the keys in tiles of 32 with an online
// softmax (running maximum and sum per row), so only a 16 x 32 tile of scores exists at a
// time; dropout multipliers come from the same counter-based stream as the CPU's. The
// backward recomputes the probabilities from the saved row log-sum-exp: one kernel per
// query tile computes delta = rowsum(dP * P) and the query gradient, one kernel per key
// tile the key and value gradients, each summing in a fixed order (no atomics).
//
// Swin window attention (Backend::window_attention): one block per (window, head) with
// the window's queries, keys, values and scores in shared memory (windows of at most 64
// tokens); the bias gradient is a fixed-order reduction over windows of per-window parts.
//
// Shapes outside these limits (head size over 64, float64, windows that do not fit in
// shared memory) return false and the backend runs the composed form.
#include <cmath>
#include <limits>

#include "core/rng.h"
#include "tensor/cuda/check.h"
#include "tensor/cuda/kernels.h"

namespace memel::cuda {
namespace {

constexpr int kRows = 16;       // query (or key) rows per block
constexpr int kLanes = 8;       // threads per row
constexpr int kTile = 32;       // keys (or queries) per tile
constexpr int kMaxHead = 64;    // D, Dv
constexpr int kPer = kMaxHead / kLanes;  // head columns per lane
constexpr int kThreads = kRows * kLanes;

// A (B, H, rows, cols) view with unit column stride.
struct View4 {
  const float* p;
  int64_t s0, s1, s2;
  __device__ const float* row(int64_t b, int64_t h, int64_t i) const { return p + b * s0 + h * s1 + i * s2; }
};
struct MutView4 {
  float* p;
  int64_t s0, s1, s2;
  __device__ float* row(int64_t b, int64_t h, int64_t i) const { return p + b * s0 + h * s1 + i * s2; }
};
// The additive mask expanded to (B, H, Tq, Tk) (any strides), or none.
struct Mask4 {
  const float* p;
  int64_t s0, s1, s2, s3;
  __device__ float at(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return p ? p[b * s0 + h * s1 + i * s2 + j * s3] : 0.0f;
  }
};

struct Dims {
  int64_t B, H, Tq, Tk, D, Dv;
  float scale;
  bool drop;
  float pf, keep;
  uint64_t seed, offset;
  // Dropout multiplier of probability (b, h, i, j): keep or 0.
  __device__ float drop_factor(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (!drop) return 1.0f;
    const uint64_t idx = uint64_t(((b * H + h) * Tq + i) * Tk + j);
    return philox_uniform(seed, offset, idx) >= pf ? keep : 0.0f;
  }
};

__device__ float group_max(float v) {
  for (int o = kLanes / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o, kLanes));
  return v;
}
__device__ float group_sum(float v) {
  for (int o = kLanes / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o, kLanes);
  return v;
}

constexpr float kNegInf = -INFINITY;

__global__ void __launch_bounds__(kThreads) attention_forward_kernel(View4 q, View4 k, View4 v, Mask4 mask,
                                                                      MutView4 out, float* lse, Dims d) {
  __shared__ float Qs[kRows][kMaxHead];
  __shared__ float Ks[kTile][kMaxHead];
  __shared__ float Vs[kTile][kMaxHead];
  __shared__ float Ss[kRows][kTile];
  const int t = threadIdx.x, r = t / kLanes, lane = t % kLanes;
  const int64_t bh = blockIdx.y, b = bh / d.H, h = bh % d.H;
  const int64_t i0 = int64_t(blockIdx.x) * kRows, i = i0 + r;
  const bool row_ok = i < d.Tq;
  for (int idx = t; idx < kRows * d.D; idx += kThreads) {
    const int rr = idx / int(d.D), c = idx % int(d.D);
    Qs[rr][c] = i0 + rr < d.Tq ? q.row(b, h, i0 + rr)[c] : 0.0f;
  }
  float m = kNegInf, l = 0.0f, o[kPer];
  for (int j = 0; j < kPer; ++j) o[j] = 0.0f;
  for (int64_t j0 = 0; j0 < d.Tk; j0 += kTile) {
    __syncthreads();
    for (int idx = t; idx < kTile * d.D; idx += kThreads) {
      const int rr = idx / int(d.D), c = idx % int(d.D);
      Ks[rr][c] = j0 + rr < d.Tk ? k.row(b, h, j0 + rr)[c] : 0.0f;
    }
    for (int idx = t; idx < kTile * d.Dv; idx += kThreads) {
      const int rr = idx / int(d.Dv), c = idx % int(d.Dv);
      Vs[rr][c] = j0 + rr < d.Tk ? v.row(b, h, j0 + rr)[c] : 0.0f;
    }
    __syncthreads();
    float s[kTile / kLanes];
    float tmax = kNegInf;
    for (int jj = 0; jj < kTile / kLanes; ++jj) {
      const int c = lane + jj * kLanes;
      const int64_t j = j0 + c;
      float acc = kNegInf;
      if (row_ok && j < d.Tk) {
        acc = 0.0f;
        for (int e = 0; e < d.D; ++e) acc += Qs[r][e] * Ks[c][e];
        acc = acc * d.scale + mask.at(b, h, i, j);
      }
      s[jj] = acc;
      tmax = fmaxf(tmax, acc);
    }
    tmax = group_max(tmax);
    const float m_new = fmaxf(m, tmax);
    float corr = 1.0f, psum = 0.0f;
    if (m_new != kNegInf) {
      corr = m == kNegInf ? 0.0f : expf(m - m_new);
      for (int jj = 0; jj < kTile / kLanes; ++jj) {
        const int c = lane + jj * kLanes;
        const float p = s[jj] == kNegInf ? 0.0f : expf(s[jj] - m_new);
        psum += p;
        Ss[r][c] = row_ok && j0 + c < d.Tk ? p * d.drop_factor(b, h, i, j0 + c) : 0.0f;
      }
    } else {
      for (int jj = 0; jj < kTile / kLanes; ++jj) Ss[r][lane + jj * kLanes] = 0.0f;
    }
    psum = group_sum(psum);
    l = l * corr + psum;
    m = m_new;
    __syncwarp();
    for (int jj = 0; jj < kPer; ++jj) {
      const int e = lane + jj * kLanes;
      if (e >= d.Dv) break;
      float acc = o[jj] * corr;
      for (int c = 0; c < kTile; ++c) acc += Ss[r][c] * Vs[c][e];
      o[jj] = acc;
    }
    __syncwarp();
  }
  if (!row_ok) return;
  float* orow = out.row(b, h, i);
  const bool empty = m == kNegInf;
  for (int jj = 0; jj < kPer; ++jj) {
    const int e = lane + jj * kLanes;
    if (e < d.Dv) orow[e] = empty ? 0.0f : o[jj] / l;
  }
  if (lane == 0) lse[bh * d.Tq + i] = empty ? kNegInf : m + logf(l);
}

// Query tile: delta_i = sum_j dP_ij P_ij, then dQ_i = scale sum_j P_ij (dP_ij - delta_i) K_j.
__global__ void __launch_bounds__(kThreads) attention_dq_kernel(View4 q, View4 k, View4 v, Mask4 mask, View4 gout,
                                                                 const float* lse, MutView4 gq, float* delta, Dims d) {
  __shared__ float Qs[kRows][kMaxHead];
  __shared__ float Gs[kRows][kMaxHead];
  __shared__ float Ks[kTile][kMaxHead];
  __shared__ float Vs[kTile][kMaxHead];
  __shared__ float Ss[kRows][kTile];
  const int t = threadIdx.x, r = t / kLanes, lane = t % kLanes;
  const int64_t bh = blockIdx.y, b = bh / d.H, h = bh % d.H;
  const int64_t i0 = int64_t(blockIdx.x) * kRows, i = i0 + r;
  const bool row_ok = i < d.Tq;
  for (int idx = t; idx < kRows * d.D; idx += kThreads) {
    const int rr = idx / int(d.D), c = idx % int(d.D);
    Qs[rr][c] = i0 + rr < d.Tq ? q.row(b, h, i0 + rr)[c] : 0.0f;
  }
  for (int idx = t; idx < kRows * d.Dv; idx += kThreads) {
    const int rr = idx / int(d.Dv), c = idx % int(d.Dv);
    Gs[rr][c] = i0 + rr < d.Tq ? gout.row(b, h, i0 + rr)[c] : 0.0f;
  }
  const float li = row_ok ? lse[bh * d.Tq + i] : kNegInf;
  float dl = 0.0f, dq[kPer];
  for (int j = 0; j < kPer; ++j) dq[j] = 0.0f;
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) dl = group_sum(dl);
    for (int64_t j0 = 0; j0 < d.Tk; j0 += kTile) {
      __syncthreads();
      for (int idx = t; idx < kTile * d.D; idx += kThreads) {
        const int rr = idx / int(d.D), c = idx % int(d.D);
        Ks[rr][c] = j0 + rr < d.Tk ? k.row(b, h, j0 + rr)[c] : 0.0f;
      }
      for (int idx = t; idx < kTile * d.Dv; idx += kThreads) {
        const int rr = idx / int(d.Dv), c = idx % int(d.Dv);
        Vs[rr][c] = j0 + rr < d.Tk ? v.row(b, h, j0 + rr)[c] : 0.0f;
      }
      __syncthreads();
      for (int jj = 0; jj < kTile / kLanes; ++jj) {
        const int c = lane + jj * kLanes;
        const int64_t j = j0 + c;
        float ds = 0.0f;
        if (row_ok && j < d.Tk && li != kNegInf) {
          float s = 0.0f, dpd = 0.0f;
          for (int e = 0; e < d.D; ++e) s += Qs[r][e] * Ks[c][e];
          for (int e = 0; e < d.Dv; ++e) dpd += Gs[r][e] * Vs[c][e];
          const float p = expf(s * d.scale + mask.at(b, h, i, j) - li);
          const float dp = dpd * d.drop_factor(b, h, i, j);
          if (pass == 0)
            dl += dp * p;
          else
            ds = p * (dp - dl);
        }
        Ss[r][c] = ds;
      }
      if (pass == 0) continue;
      __syncwarp();
      for (int jj = 0; jj < kPer; ++jj) {
        const int e = lane + jj * kLanes;
        if (e >= d.D) break;
        float acc = dq[jj];
        for (int c = 0; c < kTile; ++c) acc += Ss[r][c] * Ks[c][e];
        dq[jj] = acc;
      }
      __syncwarp();
    }
  }
  if (!row_ok) return;
  float* g = gq.row(b, h, i);
  for (int jj = 0; jj < kPer; ++jj) {
    const int e = lane + jj * kLanes;
    if (e < d.D) g[e] = dq[jj] * d.scale;
  }
  if (lane == 0) delta[bh * d.Tq + i] = dl;
}

// Key tile: dV_j = sum_i Pd_ij dO_i, dK_j = scale sum_i dS_ij Q_i.
__global__ void __launch_bounds__(kThreads) attention_dkv_kernel(View4 q, View4 k, View4 v, Mask4 mask, View4 gout,
                                                                  const float* lse, const float* delta, MutView4 gk,
                                                                  MutView4 gv, Dims d) {
  __shared__ float Ks[kRows][kMaxHead];
  __shared__ float Vs[kRows][kMaxHead];
  __shared__ float Qs[kTile][kMaxHead];
  __shared__ float Gs[kTile][kMaxHead];
  __shared__ float Ps[kRows][kTile];
  __shared__ float Ds[kRows][kTile];
  const int t = threadIdx.x, r = t / kLanes, lane = t % kLanes;
  const int64_t bh = blockIdx.y, b = bh / d.H, h = bh % d.H;
  const int64_t j0k = int64_t(blockIdx.x) * kRows, j = j0k + r;
  const bool key_ok = j < d.Tk;
  for (int idx = t; idx < kRows * d.D; idx += kThreads) {
    const int rr = idx / int(d.D), c = idx % int(d.D);
    Ks[rr][c] = j0k + rr < d.Tk ? k.row(b, h, j0k + rr)[c] : 0.0f;
  }
  for (int idx = t; idx < kRows * d.Dv; idx += kThreads) {
    const int rr = idx / int(d.Dv), c = idx % int(d.Dv);
    Vs[rr][c] = j0k + rr < d.Tk ? v.row(b, h, j0k + rr)[c] : 0.0f;
  }
  float dk[kPer], dv[kPer];
  for (int x = 0; x < kPer; ++x) dk[x] = dv[x] = 0.0f;
  for (int64_t q0 = 0; q0 < d.Tq; q0 += kTile) {
    __syncthreads();
    for (int idx = t; idx < kTile * d.D; idx += kThreads) {
      const int rr = idx / int(d.D), c = idx % int(d.D);
      Qs[rr][c] = q0 + rr < d.Tq ? q.row(b, h, q0 + rr)[c] : 0.0f;
    }
    for (int idx = t; idx < kTile * d.Dv; idx += kThreads) {
      const int rr = idx / int(d.Dv), c = idx % int(d.Dv);
      Gs[rr][c] = q0 + rr < d.Tq ? gout.row(b, h, q0 + rr)[c] : 0.0f;
    }
    __syncthreads();
    for (int ii = 0; ii < kTile / kLanes; ++ii) {
      const int c = lane + ii * kLanes;
      const int64_t i = q0 + c;
      float pd = 0.0f, ds = 0.0f;
      const float li = i < d.Tq ? lse[bh * d.Tq + i] : kNegInf;
      if (key_ok && i < d.Tq && li != kNegInf) {
        float s = 0.0f, dpd = 0.0f;
        for (int e = 0; e < d.D; ++e) s += Qs[c][e] * Ks[r][e];
        for (int e = 0; e < d.Dv; ++e) dpd += Gs[c][e] * Vs[r][e];
        const float p = expf(s * d.scale + mask.at(b, h, i, j) - li);
        const float f = d.drop_factor(b, h, i, j);
        pd = p * f;
        ds = p * (dpd * f - delta[bh * d.Tq + i]);
      }
      Ps[r][c] = pd;
      Ds[r][c] = ds;
    }
    __syncwarp();
    for (int x = 0; x < kPer; ++x) {
      const int e = lane + x * kLanes;
      if (e < d.Dv) {
        float acc = dv[x];
        for (int c = 0; c < kTile; ++c) acc += Ps[r][c] * Gs[c][e];
        dv[x] = acc;
      }
      if (e < d.D) {
        float acc = dk[x];
        for (int c = 0; c < kTile; ++c) acc += Ds[r][c] * Qs[c][e];
        dk[x] = acc;
      }
    }
    __syncwarp();
  }
  if (!key_ok) return;
  float* gkr = gk.row(b, h, j);
  float* gvr = gv.row(b, h, j);
  for (int x = 0; x < kPer; ++x) {
    const int e = lane + x * kLanes;
    if (e < d.D) gkr[e] = dk[x] * d.scale;
    if (e < d.Dv) gvr[e] = dv[x];
  }
}

View4 view4(const Tensor& t) { return {ptr<const float>(t), t.strides()[0], t.strides()[1], t.strides()[2]}; }
MutView4 mview4(const Tensor& t) { return {ptr<float>(t), t.strides()[0], t.strides()[1], t.strides()[2]}; }
Mask4 mask4(const Tensor& m) {
  if (!m.defined()) return {nullptr, 0, 0, 0, 0};
  return {ptr<const float>(m), m.strides()[0], m.strides()[1], m.strides()[2], m.strides()[3]};
}

bool fits(const Tensor& q, const Tensor& v, const Tensor& mask) {
  return q.dtype() == DType::F32 && q.shape()[3] <= kMaxHead && v.shape()[3] <= kMaxHead &&
         (!mask.defined() || mask.dtype() == DType::F32);
}

Dims dims(const Tensor& q, const Tensor& k, const Tensor& v, double scale, double p, uint64_t seed, uint64_t offset) {
  return {q.shape()[0], q.shape()[1], q.shape()[2], k.shape()[2], q.shape()[3], v.shape()[3], float(scale), p > 0.0,
          float(p), float(1.0 / (1.0 - p)), seed, offset};
}

// --- Swin window attention ------------------------------------------------------------

constexpr int kWinThreads = 128;
constexpr size_t kSharedLimit = 48 * 1024;

struct WinDims {
  int64_t BW, N, C, H, d, nW;
  float scale;
};

size_t win_forward_shared(const WinDims& w) { return sizeof(float) * size_t(3 * w.N * w.d + w.N * w.N); }
size_t win_backward_shared(const WinDims& w) { return sizeof(float) * size_t(4 * w.N * w.d + 2 * w.N * w.N); }

__global__ void window_forward_kernel(const float* qkv, const float* bias, const float* mask, float* out, float* probs,
                                      WinDims w) {
  extern __shared__ float sh[];
  const int64_t bw = blockIdx.x / w.H, h = blockIdx.x % w.H;
  const int64_t N = w.N, d = w.d, ld = 3 * w.C;
  float *q = sh, *k = q + N * d, *v = k + N * d, *S = v + N * d;
  for (int64_t idx = threadIdx.x; idx < N * d; idx += kWinThreads) {
    const int64_t n = idx / d, e = idx % d;
    const float* row = qkv + (bw * N + n) * ld + h * d + e;
    q[idx] = row[0];
    k[idx] = row[w.C];
    v[idx] = row[2 * w.C];
  }
  __syncthreads();
  const float* bh = bias + h * N * N;
  const float* mk = mask ? mask + (bw % w.nW) * N * N : nullptr;
  for (int64_t idx = threadIdx.x; idx < N * N; idx += kWinThreads) {
    const int64_t i = idx / N, j = idx % N;
    float acc = 0.0f;
    for (int64_t e = 0; e < d; ++e) acc += q[i * d + e] * k[j * d + e];
    S[idx] = acc * w.scale + bh[idx] + (mk ? mk[idx] : 0.0f);
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < N; i += kWinThreads) {  // one thread per row
    float* s = S + i * N;
    float mx = s[0];
    for (int64_t j = 1; j < N; ++j) mx = fmaxf(mx, s[j]);
    float sum = 0.0f;
    for (int64_t j = 0; j < N; ++j) {
      s[j] = expf(s[j] - mx);
      sum += s[j];
    }
    const float inv = 1.0f / sum;
    float* pr = probs + (bw * w.H + h) * N * N + i * N;
    for (int64_t j = 0; j < N; ++j) pr[j] = s[j] = s[j] * inv;
  }
  __syncthreads();
  for (int64_t idx = threadIdx.x; idx < N * d; idx += kWinThreads) {
    const int64_t i = idx / d, e = idx % d;
    float acc = 0.0f;
    for (int64_t j = 0; j < N; ++j) acc += S[i * N + j] * v[j * d + e];
    out[(bw * N + i) * w.C + h * d + e] = acc;
  }
}

__global__ void window_backward_kernel(const float* qkv, const float* probs, const float* gout, float* gqkv,
                                       float* dS_all, WinDims w) {
  extern __shared__ float sh[];
  const int64_t bw = blockIdx.x / w.H, h = blockIdx.x % w.H;
  const int64_t N = w.N, d = w.d, ld = 3 * w.C;
  float *q = sh, *k = q + N * d, *v = k + N * d, *go = v + N * d, *P = go + N * d, *dS = P + N * N;
  for (int64_t idx = threadIdx.x; idx < N * d; idx += kWinThreads) {
    const int64_t n = idx / d, e = idx % d;
    const float* row = qkv + (bw * N + n) * ld + h * d + e;
    q[idx] = row[0];
    k[idx] = row[w.C];
    v[idx] = row[2 * w.C];
    go[idx] = gout[(bw * N + n) * w.C + h * d + e];
  }
  const float* pg = probs + (bw * w.H + h) * N * N;
  for (int64_t idx = threadIdx.x; idx < N * N; idx += kWinThreads) P[idx] = pg[idx];
  __syncthreads();
  // dP = dO V^T; dV = P^T dO
  for (int64_t idx = threadIdx.x; idx < N * N; idx += kWinThreads) {
    const int64_t i = idx / N, j = idx % N;
    float acc = 0.0f;
    for (int64_t e = 0; e < d; ++e) acc += go[i * d + e] * v[j * d + e];
    dS[idx] = acc;
  }
  for (int64_t idx = threadIdx.x; idx < N * d; idx += kWinThreads) {
    const int64_t j = idx / d, e = idx % d;
    float acc = 0.0f;
    for (int64_t i = 0; i < N; ++i) acc += P[i * N + j] * go[i * d + e];
    gqkv[(bw * N + j) * ld + 2 * w.C + h * d + e] = acc;
  }
  __syncthreads();
  // dS = P (dP - rowsum(P dP))
  for (int64_t i = threadIdx.x; i < N; i += kWinThreads) {
    float dot = 0.0f;
    for (int64_t j = 0; j < N; ++j) dot += P[i * N + j] * dS[i * N + j];
    float* part = dS_all + (bw * w.H + h) * N * N + i * N;
    for (int64_t j = 0; j < N; ++j) part[j] = dS[i * N + j] = P[i * N + j] * (dS[i * N + j] - dot);
  }
  __syncthreads();
  // dQ = scale dS K, dK = scale dS^T Q
  for (int64_t idx = threadIdx.x; idx < N * d; idx += kWinThreads) {
    const int64_t i = idx / d, e = idx % d;
    float aq = 0.0f, ak = 0.0f;
    for (int64_t j = 0; j < N; ++j) {
      aq += dS[i * N + j] * k[j * d + e];
      ak += dS[j * N + i] * q[j * d + e];
    }
    gqkv[(bw * N + i) * ld + h * d + e] = aq * w.scale;
    gqkv[(bw * N + i) * ld + w.C + h * d + e] = ak * w.scale;
  }
}

WinDims win_dims(const Tensor& qkv, int64_t heads, int64_t nW, double scale) {
  const int64_t C = qkv.shape()[2] / 3;
  return {qkv.shape()[0], qkv.shape()[1], C, heads, C / heads, nW, float(scale)};
}

}  // namespace

bool attention(const Context& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
               double p, uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse) {
  if (!fits(q, v, mask)) return false;
  const Dims d = dims(q, k, v, scale, p, seed, offset);
  if (d.B * d.H == 0 || d.Tq == 0) return true;
  const dim3 grid(unsigned((d.Tq + kRows - 1) / kRows), unsigned(d.B * d.H));
  attention_forward_kernel<<<grid, kThreads, 0, c.stream>>>(view4(q), view4(k), view4(v), mask4(mask), mview4(out),
                                                           ptr<float>(lse), d);
  MEMEL_CUDA_LAUNCH_CHECK(attention_forward_kernel);
  return true;
}

bool attention_backward(const Context& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                        const Tensor& lse, const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset,
                        Tensor& gq, Tensor& gk, Tensor& gv) {
  if (!fits(q, v, mask)) return false;
  const Dims d = dims(q, k, v, scale, p, seed, offset);
  if (d.B * d.H == 0) return true;
  Tensor delta = Tensor::empty({d.B * d.H * std::max<int64_t>(d.Tq, 1)}, DType::F32, q.device());
  if (d.Tq > 0) {
    const dim3 grid(unsigned((d.Tq + kRows - 1) / kRows), unsigned(d.B * d.H));
    attention_dq_kernel<<<grid, kThreads, 0, c.stream>>>(view4(q), view4(k), view4(v), mask4(mask), view4(gout),
                                                        ptr<float>(lse), mview4(gq), ptr<float>(delta), d);
    MEMEL_CUDA_LAUNCH_CHECK(attention_dq_kernel);
  }
  if (d.Tk > 0) {
    const dim3 grid(unsigned((d.Tk + kRows - 1) / kRows), unsigned(d.B * d.H));
    attention_dkv_kernel<<<grid, kThreads, 0, c.stream>>>(view4(q), view4(k), view4(v), mask4(mask), view4(gout),
                                                         ptr<float>(lse), ptr<float>(delta), mview4(gk), mview4(gv),
                                                         d);
    MEMEL_CUDA_LAUNCH_CHECK(attention_dkv_kernel);
  }
  return true;
}

bool window_attention(const Context& c, const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads,
                      double scale, Tensor& out, Tensor& probs) {
  const WinDims w = win_dims(qkv, heads, mask.defined() ? mask.shape()[0] : 1, scale);
  if (qkv.dtype() != DType::F32 || win_forward_shared(w) > kSharedLimit) return false;
  if (w.BW * w.H == 0) return true;
  window_forward_kernel<<<unsigned(w.BW * w.H), kWinThreads, win_forward_shared(w), c.stream>>>(
      ptr<float>(qkv), ptr<float>(bias), mask.defined() ? ptr<float>(mask) : nullptr, ptr<float>(out),
      ptr<float>(probs), w);
  MEMEL_CUDA_LAUNCH_CHECK(window_forward_kernel);
  return true;
}

bool window_attention_backward(const Context& c, const Tensor& qkv, const Tensor& probs, const Tensor& gout,
                               int64_t heads, double scale, Tensor& gqkv, Tensor& gbias) {
  const WinDims w = win_dims(qkv, heads, 1, scale);
  if (qkv.dtype() != DType::F32 || win_backward_shared(w) > kSharedLimit) return false;
  if (w.BW * w.H == 0) return true;
  Tensor parts = Tensor::empty({w.BW, w.H * w.N * w.N}, DType::F32, qkv.device());
  window_backward_kernel<<<unsigned(w.BW * w.H), kWinThreads, win_backward_shared(w), c.stream>>>(
      ptr<float>(qkv), ptr<float>(probs), ptr<float>(gout), ptr<float>(gqkv), ptr<float>(parts), w);
  MEMEL_CUDA_LAUNCH_CHECK(window_backward_kernel);
  if (gbias.defined()) {
    Tensor gb = gbias.as_strided({1, w.H * w.N * w.N}, {w.H * w.N * w.N, 1}, gbias.offset());
    reduce(c, ReduceOp::Sum, parts, gb);
  }
  return true;
}

}  // namespace memel::cuda
