// Winograd convolution on the CPU: stride 1, dilation 1, groups 1, a square kernel of
// size 3 (F(4x4, 3x3)) or 5 (F(2x2, 5x5)), both on 6x6 input tiles.
//
// With the output cut into m x m tiles (t over images and tile positions) and e over the
// n x n = 36 points of the transformed domain:
//   U[e] (Co, C) = (G g G^T)[e] for every kernel g = w[co, ci]
//   V[e] (C, T)  = (BT d BT^T)[e] for every input tile d = x[img, ci] (zero-padded)
//   M[e] (Co, T) = U[e] V[e]                       36 GEMMs
//   y tile       = AT M AT^T
// so the products take 36 multiply-adds per m x m outputs and (co, ci) pair instead of
// m*m*r*r: 2.8x fewer for 5x5 (36 against 100), 4x fewer for 3x3 (36 against 144). The backward stays in the same domain:
// dM = AT^T gy AT per output tile, then dV[e] = U[e]^T dM[e] (input gradient, through
// BT^T dV BT added onto the overlapping input tiles) and dU[e] = dM[e] V[e]^T (weight
// gradient, through G^T dU G). Every GEMM runs whole on one thread and every tile
// transform is independent of the thread split, so results do not depend on it.
#include "tensor/cpu/winograd.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "core/error.h"
#include "core/thread_pool.h"
#include "tensor/cpu/blas.h"

namespace memel::cpu {

WinogradMatrices winograd_matrices(int m, int r) {
  const int n = m + r - 1;
  static const double kNodes[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
  MEMEL_CHECK(m >= 1 && r >= 1 && n >= 2 && n - 1 <= int(std::size(kNodes)),
              "[winograd] no point set for F(", m, ", ", r, ")");
  WinogradMatrices w;
  w.m = m;
  w.r = r;
  w.n = n;
  const int f = n - 1;  // finite points; the last row/column is the point at infinity
  std::vector<double> scale(size_t(f), 1.0);  // prod_{l != j} (p_j - p_l)
  for (int j = 0; j < f; ++j)
    for (int l = 0; l < f; ++l)
      if (l != j) scale[size_t(j)] *= kNodes[j] - kNodes[l];
  // AT: evaluation of the m-term output polynomial, transposed.
  w.AT.assign(size_t(m * n), 0.0);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < f; ++j) w.AT[size_t(i * n + j)] = std::pow(kNodes[j], i);
    w.AT[size_t(i * n + f)] = i == m - 1 ? 1.0 : 0.0;
  }
  // G: evaluation of the kernel polynomial, divided by the scale.
  w.G.assign(size_t(n * r), 0.0);
  for (int j = 0; j < f; ++j)
    for (int k = 0; k < r; ++k) w.G[size_t(j * r + k)] = std::pow(kNodes[j], k) / scale[size_t(j)];
  w.G[size_t(f * r + r - 1)] = 1.0;
  // BT: the inverse of the n-point evaluation (Vandermonde with the leading coefficient for
  // infinity), transposed and multiplied by the scale, which keeps its entries integers.
  std::vector<double> V(size_t(n * n), 0.0), inv(size_t(n * n), 0.0);
  for (int j = 0; j < f; ++j)
    for (int k = 0; k < n; ++k) V[size_t(j * n + k)] = std::pow(kNodes[j], k);
  V[size_t(f * n + n - 1)] = 1.0;
  for (int i = 0; i < n; ++i) inv[size_t(i * n + i)] = 1.0;
  for (int c = 0; c < n; ++c) {  // Gauss-Jordan with partial pivoting
    int piv = c;
    for (int i = c + 1; i < n; ++i)
      if (std::abs(V[size_t(i * n + c)]) > std::abs(V[size_t(piv * n + c)])) piv = i;
    for (int k = 0; k < n; ++k) {
      std::swap(V[size_t(c * n + k)], V[size_t(piv * n + k)]);
      std::swap(inv[size_t(c * n + k)], inv[size_t(piv * n + k)]);
    }
    const double d = V[size_t(c * n + c)];
    for (int k = 0; k < n; ++k) {
      V[size_t(c * n + k)] /= d;
      inv[size_t(c * n + k)] /= d;
    }
    for (int i = 0; i < n; ++i) {
      const double e = V[size_t(i * n + c)];
      if (i == c || e == 0.0) continue;
      for (int k = 0; k < n; ++k) {
        V[size_t(i * n + k)] -= e * V[size_t(c * n + k)];
        inv[size_t(i * n + k)] -= e * inv[size_t(c * n + k)];
      }
    }
  }
  w.BT.assign(size_t(n * n), 0.0);
  for (int j = 0; j < n; ++j)
    for (int k = 0; k < n; ++k)
      w.BT[size_t(j * n + k)] = (j < f ? scale[size_t(j)] : 1.0) * inv[size_t(k * n + j)];
  return w;
}

bool winograd_supported(int64_t kernel) { return kernel == 3 || kernel == 5; }

namespace {

constexpr int kTile = 6;    // n: 4 + 3 - 1 and 2 + 5 - 1
constexpr int kPoints = kTile * kTile;
constexpr int64_t kBlock = 64;  // tiles transformed together, one vector lane each

// Y[i][j][t] = sum_ab L[i][a] R[j][b] X[a][b][t] for nt tiles at once: X (p, q) rows of
// nt tiles, row k at X + k * xs; Y (P, Q) rows at Y + k * ys; tmp (P, q, nt). The tile
// index is innermost, so every step is a vector loop; zero entries of L and R (most of
// BT and AT) are skipped.
template <typename T>
void tile_transform(const T* L, int P, int p, const T* R, int Q, int q, const T* X, int64_t xs, T* __restrict tmp,
                    T* Y, int64_t ys, int64_t nt) {
  // o[t] = sum_k c[k] * rows[k][t] over the nonzero c[k]
  auto combine = [nt](T* __restrict o, const T* c, int n, auto row) {
    bool first = true;
    for (int k = 0; k < n; ++k) {
      const T ck = c[k];
      if (ck == T(0)) continue;
      const T* __restrict xk = row(k);
      if (first) {
        for (int64_t t = 0; t < nt; ++t) o[t] = ck * xk[t];
      } else {
        for (int64_t t = 0; t < nt; ++t) o[t] += ck * xk[t];
      }
      first = false;
    }
    if (first) std::fill(o, o + nt, T(0));
  };
  for (int i = 0; i < P; ++i)
    for (int b = 0; b < q; ++b)
      combine(tmp + (i * q + b) * nt, L + i * p, p, [&](int a) { return X + (a * q + b) * xs; });
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < Q; ++j)
      combine(Y + (i * Q + j) * ys, R + j * q, q, [&](int b) { return tmp + (i * q + b) * nt; });
}

// The matrices in T, and the shapes of one convolution.
template <typename T>
struct Plan {
  int m, r;
  T AT[kPoints], A[kPoints], BT[kPoints], B[kPoints];
  T GG[kPoints * 25];  // (36, r*r): kron(G, G), so that U[e] = sum_ab GG[e][ab] g[ab]
  int64_t N = 0, C, H = 0, W = 0, Co, OH = 0, OW = 0, ph = 0, pw = 0, tiles_h = 0, tiles_w = 0, tiles = 0;

  // Kernel size r, Co output and C input channels.
  Plan(int64_t kernel, int64_t co, int64_t c) : C(c), Co(co) {
    r = int(kernel);
    MEMEL_CHECK(winograd_supported(r), "[winograd] no algorithm for a ", kernel, "x", kernel, " kernel");
    m = kTile - r + 1;
    // Built once per kernel size (a small double-precision inversion), not per call.
    static const WinogradMatrices f43 = winograd_matrices(4, 3), f25 = winograd_matrices(2, 5);
    const WinogradMatrices& wm = r == 3 ? f43 : f25;
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < kTile; ++j) AT[i * kTile + j] = A[j * m + i] = T(wm.AT[size_t(i * kTile + j)]);
    for (int i = 0; i < kTile; ++i)
      for (int j = 0; j < kTile; ++j) BT[i * kTile + j] = B[j * kTile + i] = T(wm.BT[size_t(i * kTile + j)]);
    for (int i = 0; i < kTile; ++i)
      for (int j = 0; j < kTile; ++j)
        for (int a = 0; a < r; ++a)
          for (int b = 0; b < r; ++b)
            GG[(i * kTile + j) * r * r + a * r + b] = T(wm.G[size_t(i * r + a)] * wm.G[size_t(j * r + b)]);
  }

  // The input's shapes and the tiling of the output.
  Plan(const Tensor& x, const Tensor& U, int64_t kernel, int pad_h, int pad_w) : Plan(kernel, U.shape()[1], U.shape()[2]) {
    MEMEL_CHECK(x.shape()[1] == C, "[winograd] input has ", x.shape()[1], " channels, weight ", C);
    N = x.shape()[0], H = x.shape()[2], W = x.shape()[3];
    ph = pad_h, pw = pad_w;
    OH = H + 2 * ph - r + 1, OW = W + 2 * pw - r + 1;
    MEMEL_CHECK(OH > 0 && OW > 0, "[winograd] input ", H, "x", W, " too small for a ", r, "x", r, " kernel");
    tiles_h = (OH + m - 1) / m, tiles_w = (OW + m - 1) / m;
    tiles = N * tiles_h * tiles_w;
  }

  // Calls fn(ch, t0, nt, X, tmp, Y) for every channel in [0, channels) (in parallel) and
  // every block of nt <= kBlock tiles from t0, with this thread's buffers X, tmp and Y of
  // 36 x nt each.
  template <typename F>
  void for_channel_blocks(int64_t channels, F fn) const {
    parallel_for(channels, 1, [&](int64_t c0, int64_t c1) {
      std::vector<T> buf(size_t(3 * kPoints * kBlock));
      for (int64_t ch = c0; ch < c1; ++ch)
        for (int64_t t0 = 0; t0 < tiles; t0 += kBlock) {
          const int64_t nt = std::min(kBlock, tiles - t0);
          T* X = buf.data();
          fn(ch, t0, nt, X, X + kPoints * nt, X + 2 * kPoints * nt);
        }
    });
  }

  // Visits the tiles t0 .. t0 + nt - 1 as (image, first output row, first output column).
  template <typename F>
  void for_tiles(int64_t t0, int64_t nt, F fn) const {
    const int64_t per_img = tiles_h * tiles_w;
    for (int64_t k = 0; k < nt; ++k) {
      const int64_t t = t0 + k, img = t / per_img, th = (t % per_img) / tiles_w, tw = t % tiles_w;
      fn(k, img, th * m, tw * m);
    }
  }

  // V (36, C, tiles) from x (N, C, H, W).
  void input_transform(const T* x, T* V) const {
    for_channel_blocks(C, [&](int64_t ci, int64_t t0, int64_t nt, T* X, T* tmp, T*) {
      for_tiles(t0, nt, [&](int64_t k, int64_t img, int64_t oy, int64_t ox) {
        const T* xp = x + (img * C + ci) * H * W;
        const int64_t y0 = oy - ph, x0 = ox - pw;
        if (y0 >= 0 && y0 + kTile <= H && x0 >= 0 && x0 + kTile <= W) {  // inside: no bounds tests
          const T* src = xp + y0 * W + x0;
          for (int a = 0; a < kTile; ++a)
            for (int b = 0; b < kTile; ++b) X[(a * kTile + b) * nt + k] = src[a * W + b];
          return;
        }
        for (int a = 0; a < kTile; ++a) {
          const int64_t yy = y0 + a;
          for (int b = 0; b < kTile; ++b) {
            const int64_t xx = x0 + b;
            X[(a * kTile + b) * nt + k] = (yy >= 0 && yy < H && xx >= 0 && xx < W) ? xp[yy * W + xx] : T(0);
          }
        }
      });
      // BT d BT^T, straight into V
      tile_transform(BT, kTile, kTile, BT, kTile, kTile, X, nt, tmp, V + ci * tiles + t0, C * tiles, nt);
    });
  }

  // gx (N, C, H, W) = sum over the tiles of BT^T dV BT placed at each tile's input window.
  void input_transform_adjoint(const T* dV, T* gx) const {
    std::fill_n(gx, N * C * H * W, T(0));
    for_channel_blocks(C, [&](int64_t ci, int64_t t0, int64_t nt, T*, T* tmp, T* Y) {
      // BT^T dV BT, straight from dV
      tile_transform(B, kTile, kTile, B, kTile, kTile, dV + ci * tiles + t0, C * tiles, tmp, Y, nt, nt);
      for_tiles(t0, nt, [&](int64_t k, int64_t img, int64_t oy, int64_t ox) {
        T* gp = gx + (img * C + ci) * H * W;
        const int64_t y0 = oy - ph, x0 = ox - pw;
        if (y0 >= 0 && y0 + kTile <= H && x0 >= 0 && x0 + kTile <= W) {  // inside: no bounds tests
          T* dst = gp + y0 * W + x0;
          for (int a = 0; a < kTile; ++a)
            for (int b = 0; b < kTile; ++b) dst[a * W + b] += Y[(a * kTile + b) * nt + k];
          return;
        }
        for (int a = 0; a < kTile; ++a) {
          const int64_t yy = y0 + a;
          if (yy < 0 || yy >= H) continue;
          for (int b = 0; b < kTile; ++b) {
            const int64_t xx = x0 + b;
            if (xx >= 0 && xx < W) gp[yy * W + xx] += Y[(a * kTile + b) * nt + k];
          }
        }
      });
    });
  }

  // y (N, Co, OH, OW) from M (36, Co, tiles).
  void output_transform(const T* M, T* y) const {
    for_channel_blocks(Co, [&](int64_t co, int64_t t0, int64_t nt, T*, T* tmp, T* Y) {
      // AT M AT^T, straight from M
      tile_transform(AT, m, kTile, AT, m, kTile, M + co * tiles + t0, Co * tiles, tmp, Y, nt, nt);
      for_tiles(t0, nt, [&](int64_t k, int64_t img, int64_t oy, int64_t ox) {
        T* yp = y + (img * Co + co) * OH * OW;
        for (int a = 0; a < m && oy + a < OH; ++a)
          for (int b = 0; b < m && ox + b < OW; ++b) yp[(oy + a) * OW + ox + b] = Y[(a * m + b) * nt + k];
      });
    });
  }

  // dM (36, Co, tiles) = AT^T gy AT for every output tile of gy (N, Co, OH, OW).
  void output_transform_adjoint(const T* gy, T* dM) const {
    for_channel_blocks(Co, [&](int64_t co, int64_t t0, int64_t nt, T* X, T* tmp, T*) {
      for_tiles(t0, nt, [&](int64_t k, int64_t img, int64_t oy, int64_t ox) {
        const T* gp = gy + (img * Co + co) * OH * OW;
        for (int a = 0; a < m; ++a)
          for (int b = 0; b < m; ++b)
            X[(a * m + b) * nt + k] = (oy + a < OH && ox + b < OW) ? gp[(oy + a) * OW + ox + b] : T(0);
      });
      // AT^T gy AT, straight into dM
      tile_transform(A, kTile, m, A, kTile, m, X, nt, tmp, dM + co * tiles + t0, Co * tiles, nt);
    });
  }

  // U (36, Co * C) = GG (36, r*r) w^T, with w read as (Co * C, r*r).
  void weight_transform(const T* w, T* U) const {
    const int rr = r * r;
    const int64_t pairs = Co * C;
    parallel_for(pairs, 256, [&](int64_t p0, int64_t p1) {
      blas_gemm(false, true, kPoints, int(p1 - p0), rr, T(1), GG, rr, w + p0 * rr, rr, T(0), U + p0,
                int(pairs));
    });
  }

  // gw (Co * C, r*r) = dU^T (Co * C, 36) GG (36, r*r).
  void weight_transform_adjoint(const T* dU, T* gw) const {
    const int rr = r * r;
    const int64_t pairs = Co * C;
    parallel_for(pairs, 256, [&](int64_t p0, int64_t p1) {
      blas_gemm(true, false, int(p1 - p0), rr, kPoints, T(1), dU + p0, int(pairs), GG, rr, T(0), gw + p0 * rr,
                rr);
    });
  }

  // out[e] (rows, cols) = op(a[e]) op(b[e]) for the 36 points, one GEMM per task.
  static void batched(bool ta, bool tb, int64_t rows, int64_t cols, int64_t inner, const T* a, int64_t lda,
                      const T* b, int64_t ldb, T* out) {
    const int64_t sa = rows * inner, sb = inner * cols, so = rows * cols;
    parallel_for(kPoints, 1, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e)
        blas_gemm(ta, tb, int(rows), int(cols), int(inner), T(1), a + e * sa, int(lda), b + e * sb, int(ldb), T(0),
                  out + e * so, int(cols));
    });
  }
};

Tensor scratch(const Tensor& like, int64_t rows, int64_t cols) {
  return Tensor::empty({kPoints, rows, cols}, like.dtype(), like.device());
}

}  // namespace

int64_t winograd_points(int64_t kernel) { return winograd_supported(kernel) ? kPoints : 0; }

void winograd_weight(const Tensor& w, Tensor& U) {
  MEMEL_CHECK(w.shape()[2] == w.shape()[3], "[winograd] the kernel must be square, got ", shape_str(w.shape()));
  MEMEL_DISPATCH_FLOAT(w.dtype(), "winograd_weight", [&] {
    using T = scalar_t;
    Plan<T>(w.shape()[2], w.shape()[0], w.shape()[1]).weight_transform(w.data<T>(), U.data<T>());
  });
}

void winograd_weight_backward(const Tensor& gU, Tensor& gw) {
  MEMEL_DISPATCH_FLOAT(gw.dtype(), "winograd_weight_backward", [&] {
    using T = scalar_t;
    Plan<T>(gw.shape()[2], gw.shape()[0], gw.shape()[1]).weight_transform_adjoint(gU.data<T>(), gw.data<T>());
  });
}

void winograd_conv2d_forward(const Tensor& x, const Tensor& U, int64_t kernel, int ph, int pw, Tensor& y) {
  MEMEL_DISPATCH_FLOAT(x.dtype(), "winograd_conv2d", [&] {
    using T = scalar_t;
    const Plan<T> p(x, U, kernel, ph, pw);
    if (p.tiles == 0 || p.C == 0 || p.Co == 0) {  // nothing to sum over: zeros (no BLAS call with an empty inner size)
      std::fill(y.data<T>(), y.data<T>() + y.numel(), T(0));
      return;
    }
    Tensor V = scratch(x, p.C, p.tiles), M = scratch(x, p.Co, p.tiles);
    p.input_transform(x.data<T>(), V.data<T>());
    // M[e] (Co, tiles) = U[e] (Co, C) V[e] (C, tiles)
    Plan<T>::batched(false, false, p.Co, p.tiles, p.C, U.data<T>(), p.C, V.data<T>(), p.tiles, M.data<T>());
    p.output_transform(M.data<T>(), y.data<T>());
  });
}

void winograd_conv2d_backward(const Tensor& x, const Tensor& U, const Tensor& gy, int64_t kernel, int ph, int pw,
                              Tensor& gx, Tensor& gU) {
  if (!gx.defined() && !gU.defined()) return;
  MEMEL_DISPATCH_FLOAT(x.dtype(), "winograd_conv2d_backward", [&] {
    using T = scalar_t;
    const Plan<T> p(x, U, kernel, ph, pw);
    if (p.tiles == 0 || p.C == 0 || p.Co == 0) {
      for (Tensor* g : {&gx, &gU})
        if (g->defined()) std::fill(g->data<T>(), g->data<T>() + g->numel(), T(0));
      return;
    }
    Tensor dM = scratch(x, p.Co, p.tiles);
    p.output_transform_adjoint(gy.data<T>(), dM.data<T>());
    if (gx.defined()) {
      Tensor dV = scratch(x, p.C, p.tiles);
      // dV[e] (C, tiles) = U[e]^T (C, Co) dM[e] (Co, tiles)
      Plan<T>::batched(true, false, p.C, p.tiles, p.Co, U.data<T>(), p.C, dM.data<T>(), p.tiles, dV.data<T>());
      p.input_transform_adjoint(dV.data<T>(), gx.data<T>());
    }
    if (gU.defined()) {
      Tensor V = scratch(x, p.C, p.tiles);
      p.input_transform(x.data<T>(), V.data<T>());
      // gU[e] (Co, C) = dM[e] (Co, tiles) V[e]^T (tiles, C)
      Plan<T>::batched(false, true, p.Co, p.C, p.tiles, dM.data<T>(), p.tiles, V.data<T>(), p.tiles, gU.data<T>());
    }
  });
}

}  // namespace memel::cpu
