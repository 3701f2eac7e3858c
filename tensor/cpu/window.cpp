// Swin's windows on the CPU: the shifted-window copies (one memcpy per pixel row of C
// channels) and the fused window attention. Windows are split into a fixed number of
// chunks (independent of the thread count), so the bias gradient, summed over chunks in
// order, is the same with any number of threads.
#include "tensor/cpu/window.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"

namespace memel::cpu {

namespace {

struct WaDims {
  int64_t BW, N, C, H, d, nW;
  double scale;
};

// --- small dense products for one (window, head) --------------------------------------
// C[i, j] = alpha * sum_c A(i, c) B[c, j] (+ C[i, j] when accumulate), for i < m, j < n,
// with A(i, c) = A[i * ars + c * acs] (any layout, so A^T costs nothing) and B row-major
// with unit column stride. Tiles of 4 rows x one 64-byte vector of columns keep their
// accumulators in registers (GCC/Clang vector extensions: 16 floats or 8 doubles).
template <typename T>
struct Vec64 {
  static constexpr int L = 64 / static_cast<int>(sizeof(T));
  typedef T type __attribute__((vector_size(64)));
};

template <typename T>
inline typename Vec64<T>::type vload(const T* p) {
  typename Vec64<T>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void vstore(T* p, typename Vec64<T>::type v, T alpha, bool accumulate) {
  v *= alpha;
  if (accumulate) v += vload(p);
  std::memcpy(p, &v, sizeof(v));
}

template <typename T>
void tile_gemm(int m, int n, int k, T alpha, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
               int64_t ldc, bool accumulate) {
  using V = typename Vec64<T>::type;
  constexpr int L = Vec64<T>::L;
  int j0 = 0;
  for (; j0 + L <= n; j0 += L) {
    int i0 = 0;
    for (; i0 + 4 <= m; i0 += 4) {
      V c0 = {}, c1 = {}, c2 = {}, c3 = {};
      const T* a = A + i0 * ars;
      for (int c = 0; c < k; ++c) {
        const V b = vload(B + c * ldb + j0);
        const T* ac = a + c * acs;
        c0 += ac[0] * b;
        c1 += ac[ars] * b;
        c2 += ac[2 * ars] * b;
        c3 += ac[3 * ars] * b;
      }
      vstore(C + (i0 + 0) * ldc + j0, c0, alpha, accumulate);
      vstore(C + (i0 + 1) * ldc + j0, c1, alpha, accumulate);
      vstore(C + (i0 + 2) * ldc + j0, c2, alpha, accumulate);
      vstore(C + (i0 + 3) * ldc + j0, c3, alpha, accumulate);
    }
    for (; i0 < m; ++i0) {
      V c0 = {};
      for (int c = 0; c < k; ++c) c0 += A[i0 * ars + c * acs] * vload(B + c * ldb + j0);
      vstore(C + i0 * ldc + j0, c0, alpha, accumulate);
    }
  }
  if (j0 < n) {  // the last n % L columns
    T acc[Vec64<T>::L];
    for (int i = 0; i < m; ++i) {
      for (int j = j0; j < n; ++j) acc[j - j0] = 0;
      for (int c = 0; c < k; ++c) {
        const T av = A[i * ars + c * acs];
        const T* bc = B + c * ldb;
        for (int j = j0; j < n; ++j) acc[j - j0] += av * bc[j];
      }
      for (int j = j0; j < n; ++j) C[i * ldc + j] = alpha * acc[j - j0] + (accumulate ? C[i * ldc + j] : T(0));
    }
  }
}

// exp(x) for x <= 0 (softmax after subtracting the row maximum): Cephes' expf
// polynomial, relative error ~2e-7, with 2^n built from the exponent bits; arguments
// below -87 give ~1.6e-38 instead of an underflow (a masked logit, -100 below the row
// maximum, contributes nothing either way). The vector form handles 16 floats at once.
typedef float VF16 __attribute__((vector_size(64)));
typedef int32_t VI16 __attribute__((vector_size(64)));

template <typename V, typename S>
inline V exp_nonpos_poly(V x, V n) {
  const V r = x - n * S(0.693359375f) + n * S(2.12194440e-4f);
  V p = S(1.9875691500E-4f) + V{} * r;
  p = p * r + S(1.3981999507E-3f);
  p = p * r + S(8.3334519073E-3f);
  p = p * r + S(4.1665795894E-2f);
  p = p * r + S(1.6666665459E-1f);
  p = p * r + S(5.0000001201E-1f);
  return p * r * r + r + S(1.0f);
}

inline VF16 exp_nonpos(VF16 x) {
  const VF16 lo = VF16{} - 87.0f;
  x = x < lo ? lo : x;
  // Round x * log2(e) to the nearest integer with the 1.5 * 2^23 trick: the integer
  // then sits in the low mantissa bits of t.
  const VF16 t = x * 1.44269504088896341f + 12582912.0f;
  const VF16 n = t - 12582912.0f;
  const VI16 e = (((VI16)t - 0x4B400000) + 127) << 23;  // vector casts reinterpret the bits
  return exp_nonpos_poly<VF16, float>(x, n) * (VF16)e;
}

inline float exp_nonpos(float x) {
  x = std::max(x, -87.0f);
  const float t = x * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &t, sizeof(bits));
  bits = ((bits - 0x4B400000) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return exp_nonpos_poly<float, float>(x, n) * scale;
}
inline double exp_nonpos(double x) { return std::exp(x); }

// Row softmax of s + bias (+ mask), in place in s: (n) values.
template <typename T>
inline void softmax_row(T* __restrict s, const T* __restrict bias, const T* __restrict mask, int64_t n) {
  for (int64_t j = 0; j < n; ++j) s[j] += bias[j] + (mask ? mask[j] : T(0));
  T mx = s[0];
  for (int64_t j = 1; j < n; ++j) mx = s[j] > mx ? s[j] : mx;
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = exp_nonpos(s[j] - mx);
    sum += s[j];
  }
  const T inv = T(1) / sum;
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

// The float version, 16 lanes at a time.
template <>
inline void softmax_row<float>(float* __restrict s, const float* __restrict bias, const float* __restrict mask,
                               int64_t n) {
  const int64_t nv = n / 16 * 16;
  for (int64_t j = 0; j < n; ++j) s[j] += bias[j] + (mask ? mask[j] : 0.0f);
  float mx = s[0];
  int64_t j = 0;
  if (nv) {
    VF16 m = vload(s);
    for (j = 16; j < nv; j += 16) {
      const VF16 v = vload(s + j);
      m = v > m ? v : m;
    }
    for (int l = 0; l < 16; ++l) mx = std::max(mx, m[l]);
  }
  for (; j < n; ++j) mx = std::max(mx, s[j]);
  VF16 acc = {};
  for (j = 0; j < nv; j += 16) {
    const VF16 e = exp_nonpos(vload(s + j) - mx);
    acc += e;
    std::memcpy(s + j, &e, sizeof(e));
  }
  float sum = 0;
  for (int l = 0; l < 16; ++l) sum += acc[l];
  for (; j < n; ++j) {
    s[j] = exp_nonpos(s[j] - mx);
    sum += s[j];
  }
  const float inv = 1.0f / sum;
  for (j = 0; j < n; ++j) s[j] *= inv;
}

// dst (d, n) = src (n, d) with row stride ld: a transpose of K or V (all heads).
template <typename T>
inline void transpose_head(const T* __restrict src, int64_t ld, int n, int d, T* __restrict dst) {
  for (int c = 0; c < d; ++c) {  // contiguous writes, strided reads
    T* __restrict out = dst + c * n;
    for (int j = 0; j < n; ++j) out[j] = src[j * ld + c];
  }
}

// Forward for windows [b0, b1): out (BW, N, C), probs (BW, H, N, N).
template <typename T>
void wa_forward_range(const WaDims& D, const T* qkv, const T* bias, const T* mask, T* out, T* probs, int64_t b0,
                      int64_t b1) {
  const int n = static_cast<int>(D.N), d = static_cast<int>(D.d);
  const int64_t C = D.C, ld = 3 * C, NN = D.N * D.N;
  std::vector<T> kt(static_cast<size_t>(C * D.N));
  for (int64_t b = b0; b < b1; ++b) {
    const T* base = qkv + b * D.N * ld;
    const T* mk = mask ? mask + (b % D.nW) * NN : nullptr;
    transpose_head(base + C, ld, n, static_cast<int>(C), kt.data());  // K^T (C, N)
    for (int64_t h = 0; h < D.H; ++h) {
      const T* q = base + h * d;
      const T* v = base + 2 * C + h * d;
      T* P = probs + (b * D.H + h) * NN;
      // P = softmax(scale Q K^T + bias + mask)                           (N, N)
      tile_gemm<T>(n, n, d, static_cast<T>(D.scale), q, ld, 1, kt.data() + h * d * n, n, P, n, false);
      for (int64_t i = 0; i < D.N; ++i)
        softmax_row(P + i * D.N, bias + h * NN + i * D.N, mk ? mk + i * D.N : nullptr, D.N);
      // O = P V                                                           (N, d)
      tile_gemm<T>(n, d, n, T(1), P, n, 1, v, ld, out + b * D.N * C + h * d, C, false);
    }
  }
}

// Backward for windows [b0, b1): gqkv (BW, N, 3C) (fully written), gbias (H, N, N)
// accumulated (+=).
template <typename T>
void wa_backward_range(const WaDims& D, const T* qkv, const T* probs, const T* gout, T* gqkv, T* gbias, int64_t b0,
                       int64_t b1) {
  const int n = static_cast<int>(D.N), d = static_cast<int>(D.d);
  const int64_t C = D.C, ld = 3 * C, NN = D.N * D.N;
  const T scale = static_cast<T>(D.scale);
  std::vector<T> ds(static_cast<size_t>(NN)), vt(static_cast<size_t>(C * D.N));
  for (int64_t b = b0; b < b1; ++b) {
    const T* base = qkv + b * D.N * ld;
    T* gbase = gqkv + b * D.N * ld;
    const T* go = gout + b * D.N * C;
    transpose_head(base + 2 * C, ld, n, static_cast<int>(C), vt.data());  // V^T (C, N)
    for (int64_t h = 0; h < D.H; ++h) {
      const T* q = base + h * d;
      const T* k = base + C + h * d;
      const T* P = probs + (b * D.H + h) * NN;
      T* dS = ds.data();
      // dP = dO V^T                                                       (N, N)
      tile_gemm<T>(n, n, d, T(1), go + h * d, C, 1, vt.data() + h * d * n, n, dS, n, false);
      // dV = P^T dO                                                       (N, d)
      tile_gemm<T>(n, d, n, T(1), P, 1, n, go + h * d, C, gbase + 2 * C + h * d, ld, false);
      // dS = P * (dP - rowsum(P * dP)); the bias gradient sums dS over windows
      T* __restrict gb = gbias + h * NN;
      for (int64_t i = 0; i < D.N; ++i) {
        const T* __restrict pi = P + i * D.N;
        T* __restrict si = dS + i * D.N;
        T dot = 0;
        for (int64_t j = 0; j < D.N; ++j) dot += pi[j] * si[j];
        T* __restrict gbi = gb + i * D.N;
        for (int64_t j = 0; j < D.N; ++j) {
          si[j] = pi[j] * (si[j] - dot);
          gbi[j] += si[j];
        }
      }
      // dQ = scale dS K, dK = scale dS^T Q                                 (N, d)
      tile_gemm<T>(n, d, n, scale, dS, n, 1, k, ld, gbase + h * d, ld, false);
      tile_gemm<T>(n, d, n, scale, dS, 1, n, q, ld, gbase + C + h * d, ld, false);
    }
  }
}

// Fixed chunking of the windows, independent of the thread count, so the bias
// gradient (summed over chunks in order) is the same with any number of threads.
int64_t wa_chunks(int64_t BW) { return std::min<int64_t>(BW, 32); }


}  // namespace


// Copies between an image (B, H, W, C) and its windows (B * H/w * W/w, w*w, C) after
// a cyclic shift: window position (y, x) of the shifted map holds image pixel
// ((y + sh) % H, (x + sw) % W). to_windows: image -> windows, else windows -> image.
void window_copy(const Tensor& src, Tensor& dst, const WindowGeometry& g, bool to_windows) {
  const int64_t B = g.B, H = g.H, W = g.W, C = g.C, w = g.w, sh = g.sh, sw = g.sw;
  const int64_t gw = W / w, nw = (H / w) * gw, esz = static_cast<int64_t>(dtype_size(src.dtype()));
  const char* ps = static_cast<const char*>(src.raw_data());
  char* pd = static_cast<char*>(dst.raw_data());
  const size_t row = static_cast<size_t>(C * esz);
  parallel_for(B * H, std::max<int64_t>(1, 16384 / std::max<int64_t>(W * C, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / H, y = r % H;            // y: row of the shifted map
      const int64_t iy = (y + sh) % H;               // image row
      const int64_t win0 = b * nw + (y / w) * gw, tok0 = (y % w) * w;
      for (int64_t x = 0; x < W; ++x) {
        const int64_t ix = (x + sw) % W;
        const int64_t img = ((b * H + iy) * W + ix) * C * esz;
        const int64_t wnd = (((win0 + x / w) * w * w) + tok0 + x % w) * C * esz;
        if (to_windows) std::memcpy(pd + wnd, ps + img, row);
        else std::memcpy(pd + img, ps + wnd, row);
      }
    }
  });
}


void window_attention(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale,
                      Tensor& out, Tensor& probs) {
  WaDims D{qkv.size(0), qkv.size(1), qkv.size(2) / 3, heads, 0, mask.defined() ? mask.size(0) : 1, scale};
  D.d = D.C / D.H;
  MEMEL_DISPATCH_FLOAT(qkv.dtype(), "window_attention", [&] {
    using T = scalar_t;
    const T* pq = qkv.data<T>();
    const T* pb = bias.data<T>();
    const T* pm = mask.defined() ? mask.data<T>() : nullptr;
    T* po = out.data<T>();
    T* pp = probs.data<T>();
    parallel_for(D.BW, 1, [&](int64_t b0, int64_t b1) { wa_forward_range<T>(D, pq, pb, pm, po, pp, b0, b1); });
  });
}

void window_attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& gout, int64_t heads, double scale,
                               Tensor& gqkv, Tensor& gbias) {
  WaDims D{qkv.size(0), qkv.size(1), qkv.size(2) / 3, heads, 0, 1, scale};
  D.d = D.C / D.H;
  const int64_t K = wa_chunks(D.BW);
  Tensor gparts = Tensor::zeros({K, D.H, D.N, D.N}, qkv.dtype());
  MEMEL_DISPATCH_FLOAT(qkv.dtype(), "window_attention_backward", [&] {
    using T = scalar_t;
    const T* pq = qkv.data<T>();
    const T* pp = probs.data<T>();
    const T* pg = gout.data<T>();
    T* pgq = gqkv.data<T>();
    T* pgb = gparts.data<T>();
    parallel_for(K, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t b0 = D.BW * k / K, b1 = D.BW * (k + 1) / K;
        wa_backward_range<T>(D, pq, pp, pg, pgq, pgb + k * D.H * D.N * D.N, b0, b1);
      }
    });
    if (!gbias.defined()) return;
    // gbias = the chunks' partial sums, added in chunk order
    const int64_t n = D.H * D.N * D.N;
    std::vector<double> acc(static_cast<size_t>(n), 0.0);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t i = 0; i < n; ++i) acc[i] += double(pgb[k * n + i]);
    T* out = gbias.data<T>();
    for (int64_t i = 0; i < n; ++i) out[i] = T(acc[i]);
  });
}

}  // namespace memel::cpu
