// CPU backend: the Backend interface over host memory, with the shared thread pool.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen's AVX-512 packet code
#include <unsupported/Eigen/SpecialFunctions>
#pragma GCC diagnostic pop

#include "core/rng.h"
#include "tensor/allocator.h"
#include "tensor/backend.h"
#include "tensor/kernel_math.h"
#include "tensor/cpu/attention.h"
#include "tensor/cpu/blas.h"
#include "tensor/cpu/gru.h"
#include "tensor/cpu/optim.h"
#include "tensor/cpu/strided.h"
#include "tensor/cpu/vec_math.h"
#include "tensor/cpu/window.h"
#include "tensor/cpu/winograd.h"

namespace memel {
namespace cpu {
namespace {

// Instantiates a loop with the op fixed at compile time so the compiler vectorises it.
template <typename T, typename F>
void map_unary(const Tensor& x, Tensor& out, F f) {
  const T* px = x.data<T>();
  T* po = out.data<T>();
  if (x.is_contiguous() && out.is_contiguous()) {
    parallel_for(out.numel(), 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) po[i] = f(px[i]);
    });
    return;
  }
  strided_for<2>(out.shape(), {&x.strides(), &out.strides()}, [&](const std::array<int64_t, 2>& off, int64_t n,
                                                                   const std::array<int64_t, 2>& st) {
    for (int64_t i = 0; i < n; ++i) po[off[1] + i * st[1]] = f(px[off[0] + i * st[0]]);
  });
}

// Calls f with the op as a compile-time constant, so that the per-element switch in
// unary_fn / unary_grad folds away and simple ops vectorise.
template <typename F>
void with_unary_op(UnaryOp op, F f) {
#define MEMEL_UNARY_CASE(name) \
  case UnaryOp::name:          \
    f(std::integral_constant<UnaryOp, UnaryOp::name>()); \
    return;
  switch (op) {
    MEMEL_UNARY_CASE(Neg) MEMEL_UNARY_CASE(Exp) MEMEL_UNARY_CASE(Log) MEMEL_UNARY_CASE(Sqrt)
    MEMEL_UNARY_CASE(Rsqrt) MEMEL_UNARY_CASE(Abs) MEMEL_UNARY_CASE(Sign) MEMEL_UNARY_CASE(Square)
    MEMEL_UNARY_CASE(Reciprocal) MEMEL_UNARY_CASE(Sin) MEMEL_UNARY_CASE(Cos) MEMEL_UNARY_CASE(Tanh)
    MEMEL_UNARY_CASE(Sigmoid) MEMEL_UNARY_CASE(Relu) MEMEL_UNARY_CASE(Gelu) MEMEL_UNARY_CASE(GeluTanh)
    MEMEL_UNARY_CASE(LeakyRelu) MEMEL_UNARY_CASE(AddScalar) MEMEL_UNARY_CASE(MulScalar)
    MEMEL_UNARY_CASE(PowScalar) MEMEL_UNARY_CASE(ClampMin) MEMEL_UNARY_CASE(ClampMax) MEMEL_UNARY_CASE(Step)
  }
#undef MEMEL_UNARY_CASE
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen's AVX-512 packet code
// Exact GELU on float runs of n elements with Eigen's vectorised erf and exp (float32
// accuracy); forward y = x/2 (1 + erf(x/sqrt2)), backward gx = g (Phi(x) + x phi(x)).
void gelu_f32(const float* x, float* y, int64_t n) {
  Eigen::Map<const Eigen::ArrayXf> xv(x, n);
  Eigen::Map<Eigen::ArrayXf> yv(y, n);
  yv = 0.5f * xv * (1.0f + (xv * float(kInvSqrt2)).erf());
}
void gelu_grad_f32(const float* x, const float* g, float* gx, int64_t n) {
  Eigen::Map<const Eigen::ArrayXf> xv(x, n), gv(g, n);
  Eigen::Map<Eigen::ArrayXf> ov(gx, n);
  ov = gv * (0.5f * (1.0f + (xv * float(kInvSqrt2)).erf()) + xv * float(kInvSqrt2Pi) * (-0.5f * xv.square()).exp());
}
#pragma GCC diagnostic pop

// LayerNorm on float rows whose length is a multiple of 16, 16 lanes at a time (two
// passes over the row for mean and variance, so no cancellation). w/b may be null.
void layer_norm_rows_f32(const float* x, const float* w, const float* b, float eps, float* y, float* mean,
                         float* rstd, int64_t r0, int64_t r1, int64_t n) {
  const float inv_n = 1.0f / float(n);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    VF16 acc = {};
    for (int64_t i = 0; i < n; i += 16) acc += vload16(xr + i);
    const float mu = hsum16(acc) * inv_n;
    VF16 var = {};
    for (int64_t i = 0; i < n; i += 16) {
      const VF16 d = vload16(xr + i) - mu;
      var += d * d;
    }
    const float rs = 1.0f / std::sqrt(hsum16(var) * inv_n + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (int64_t i = 0; i < n; i += 16) {
      VF16 h = (vload16(xr + i) - mu) * rs;
      if (w) h *= vload16(w + i);
      if (b) h += vload16(b + i);
      vstore16(yr + i, h);
    }
  }
}

// LayerNorm backward on float rows (n a multiple of 16) for rows [r0, r1): gx, and the
// parameter-gradient sums of these rows into pw (sum g * xhat) and pb (sum g) when
// given (overwritten, not accumulated).
void layer_norm_backward_rows_f32(const float* x, const float* w, const float* mean, const float* rstd,
                                  const float* g, float* gx, float* pw, float* pb, int64_t r0, int64_t r1,
                                  int64_t n) {
  const float inv_n = 1.0f / float(n);
  if (pw) std::fill(pw, pw + n, 0.0f);
  if (pb) std::fill(pb, pb + n, 0.0f);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    const float* gr = g + r * n;
    float* orow = gx + r * n;
    const float m = mean[r], rs = rstd[r];
    VF16 s1 = {}, s2 = {};  // sum(g*w), sum(g*w*xhat)
    for (int64_t i = 0; i < n; i += 16) {
      const VF16 xh = (vload16(xr + i) - m) * rs;
      VF16 gw = vload16(gr + i);
      if (pw) vstore16(pw + i, vload16(pw + i) + gw * xh);
      if (pb) vstore16(pb + i, vload16(pb + i) + gw);
      if (w) gw *= vload16(w + i);
      s1 += gw;
      s2 += gw * xh;
    }
    const float a1 = hsum16(s1) * inv_n, a2 = hsum16(s2) * inv_n;
    for (int64_t i = 0; i < n; i += 16) {
      const VF16 xh = (vload16(xr + i) - m) * rs;
      VF16 gw = vload16(gr + i);
      if (w) gw *= vload16(w + i);
      vstore16(orow + i, rs * (gw - a1 - xh * a2));
    }
  }
}

class CpuBackend final : public Backend {
 public:
  CpuBackend() { openblas_set_num_threads(1); }
  Device device() const override { return Device::cpu(); }
  Allocator& allocator() override { return cpu_allocator(); }
  std::string describe() const override {
    // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64" -> version and core
    std::string cfg = openblas_get_config();
    const size_t sp = cfg.find(' ', 9);
    std::string s = "OpenBLAS " + cfg.substr(9, sp == std::string::npos ? std::string::npos : sp - 9) + " (" +
                    openblas_get_corename() + " kernels)";
    if (cpu::gemm_library() == cpu::GemmLibrary::OneDNN) {
      s = cpu::onednn_version() + " for float GEMM, " + s + " for double";
      if (cpu::openblas_kernels_generic()) s += " (OpenBLAS's kernels are generic on this processor)";
    } else if (cpu::openblas_kernels_generic()) {
      // A DYNAMIC_ARCH OpenBLAS that does not know the processor falls back to its oldest
      // x86-64 kernels (issue 22: Debian's 0.3.21 on Sapphire Rapids Xeons): say so.
      s += " [generic kernels on a processor with AVX2/AVX-512: matrix products run several times slower than they "
           "can; MEMEL_CPU_GEMM=onednn (a build with libdnnl-dev) or OPENBLAS_CORETYPE=Haswell/SkylakeX fixes it]";
    }
    return s;
  }

  void copy(const Tensor& src, Tensor& dst) override {
    MEMEL_CHECK(src.shape() == dst.shape(), "[copy] shapes ", shape_str(src.shape()), " and ",
                shape_str(dst.shape()), " differ");
    MEMEL_DISPATCH_ALL(src.dtype(), "copy", [&] {
      using S = scalar_t;
      MEMEL_DISPATCH_ALL(dst.dtype(), "copy", [&] {
        using D = scalar_t;
        const S* ps = src.data<S>();
        D* pd = dst.data<D>();
        if (src.is_contiguous() && dst.is_contiguous()) {
          if constexpr (std::is_same<S, D>::value) {
            std::memcpy(pd, ps, static_cast<size_t>(src.numel()) * sizeof(S));
          } else {
            parallel_for(src.numel(), 65536, [&](int64_t b, int64_t e) {
              for (int64_t i = b; i < e; ++i) pd[i] = static_cast<D>(ps[i]);
            });
          }
          return;
        }
        strided_for<2>(dst.shape(), {&src.strides(), &dst.strides()},
                       [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                         for (int64_t i = 0; i < n; ++i) pd[off[1] + i * st[1]] = static_cast<D>(ps[off[0] + i * st[0]]);
                       });
      });
    });
  }

  void fill(Tensor& dst, double value) override {
    MEMEL_DISPATCH_ALL(dst.dtype(), "fill", [&] {
      scalar_t v = static_cast<scalar_t>(value);
      scalar_t* p = dst.data<scalar_t>();
      if (dst.is_contiguous()) {
        std::fill(p, p + dst.numel(), v);
        return;
      }
      strided_for<1>(dst.shape(), {&dst.strides()},
                     [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
                       for (int64_t i = 0; i < n; ++i) p[off[0] + i * st[0]] = v;
                     });
    });
  }

  void memcpy_host(void* dst, const void* src, size_t nbytes, bool) override { std::memcpy(dst, src, nbytes); }

  void unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) override {
    MEMEL_DISPATCH_FLOAT(x.dtype(), "unary", [&] {
      using T = scalar_t;
      switch (op) {
        case UnaryOp::Relu: map_unary<T>(x, out, [](T v) { return v > T(0) ? v : T(0); }); break;
        case UnaryOp::AddScalar: map_unary<T>(x, out, [a = T(alpha)](T v) { return v + a; }); break;
        case UnaryOp::MulScalar: map_unary<T>(x, out, [a = T(alpha)](T v) { return v * a; }); break;
        case UnaryOp::Neg: map_unary<T>(x, out, [](T v) { return -v; }); break;
        case UnaryOp::Square: map_unary<T>(x, out, [](T v) { return v * v; }); break;
        default:
          if (std::is_same<T, float>::value && op == UnaryOp::Gelu && x.is_contiguous() && out.is_contiguous()) {
            const float* px = reinterpret_cast<const float*>(x.data<T>());
            float* po = reinterpret_cast<float*>(out.data<T>());
            parallel_for(out.numel(), 16384, [&](int64_t b, int64_t e) { gelu_f32(px + b, po + b, e - b); });
            break;
          }
          with_unary_op(op, [&](auto k) {
            map_unary<T>(x, out, [alpha](T v) { return unary_fn<T>(decltype(k)::value, v, alpha); });
          });
          break;
      }
    });
  }

  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                      double alpha) override {
    MEMEL_DISPATCH_FLOAT(gy.dtype(), "unary_backward", [&] {
      using T = scalar_t;
      const T* px = x.data<T>();
      const T* py = y.defined() ? y.data<T>() : nullptr;
      const T* pg = gy.data<T>();
      T* po = gx.data<T>();
      if (std::is_same<T, float>::value && op == UnaryOp::Gelu) {
        parallel_for(gx.numel(), 8192, [&](int64_t b, int64_t e) {
          gelu_grad_f32(reinterpret_cast<const float*>(px) + b, reinterpret_cast<const float*>(pg) + b,
                        reinterpret_cast<float*>(po) + b, e - b);
        });
        return;
      }
      with_unary_op(op, [&](auto k) {
        parallel_for(gx.numel(), 8192, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            po[i] = pg[i] * unary_grad<T>(decltype(k)::value, px[i], py ? py[i] : T(0), alpha);
        });
      });
    });
  }

  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override {
    MEMEL_DISPATCH_ALL(out.dtype(), "binary", [&] {
      using T = scalar_t;
      MEMEL_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "[binary] dtype mismatch: ",
                  dtype_name(a.dtype()), ", ", dtype_name(b.dtype()), " -> ", dtype_name(out.dtype()));
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* po = out.data<T>();
      auto run = [&](auto f) {
        if (a.is_contiguous() && b.is_contiguous() && out.is_contiguous() && a.strides() == out.strides() &&
            b.strides() == out.strides()) {
          parallel_for(out.numel(), 16384, [&](int64_t s, int64_t e) {
            for (int64_t i = s; i < e; ++i) po[i] = f(pa[i], pb[i]);
          });
          return;
        }
        strided_for<3>(out.shape(), {&a.strides(), &b.strides(), &out.strides()},
                       [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
                         const T* xa = pa + off[0];
                         const T* xb = pb + off[1];
                         T* xo = po + off[2];
                         if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
                           for (int64_t i = 0; i < n; ++i) xo[i] = f(xa[i], xb[i]);
                         } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
                           T vb = xb[0];
                           for (int64_t i = 0; i < n; ++i) xo[i] = f(xa[i], vb);
                         } else if (st[0] == 0 && st[1] == 1 && st[2] == 1) {
                           T va = xa[0];
                           for (int64_t i = 0; i < n; ++i) xo[i] = f(va, xb[i]);
                         } else {
                           for (int64_t i = 0; i < n; ++i) xo[i * st[2]] = f(xa[i * st[0]], xb[i * st[1]]);
                         }
                       });
      };
      switch (op) {
        case BinaryOp::Add: run([](T u, T v) { return u + v; }); break;
        case BinaryOp::Sub: run([](T u, T v) { return u - v; }); break;
        case BinaryOp::Mul: run([](T u, T v) { return u * v; }); break;
        case BinaryOp::Div: run([](T u, T v) { return u / v; }); break;
        default: run([op](T u, T v) { return binary_fn<T>(op, u, v); }); break;
      }
    });
  }

  void reduce(ReduceOp op, const Tensor& x, Tensor& out) override {
    MEMEL_CHECK(x.dim() == out.dim(), "[reduce] rank mismatch ", shape_str(x.shape()), " -> ",
                shape_str(out.shape()));
    // Order axes: kept ones first, reduced ones last; iterate reduced axes per output.
    Shape kshape, kstr, rshape, rstr;
    for (int64_t d = 0; d < x.dim(); ++d) {
      if (out.shape()[d] == x.shape()[d]) {
        kshape.push_back(x.shape()[d]);
        kstr.push_back(x.strides()[d]);
      } else {
        MEMEL_CHECK(out.shape()[d] == 1, "[reduce] output shape ", shape_str(out.shape()), " does not match input ",
                    shape_str(x.shape()));
        if (!rshape.empty() && rstr.back() == x.strides()[d] * x.shape()[d] && d > 0 &&
            out.shape()[d - 1] != x.shape()[d - 1]) {
          // Adjacent reduced axes that are contiguous with each other iterate as one
          // (same order), e.g. a full reduction of a contiguous tensor.
          rshape.back() *= x.shape()[d];
          rstr.back() = x.strides()[d];
        } else {
          rshape.push_back(x.shape()[d]);
          rstr.push_back(x.strides()[d]);
        }
      }
    }
    MEMEL_DISPATCH_ALL(x.dtype(), "reduce", [&] {
      using T = scalar_t;
      using Acc = typename std::conditional<std::is_floating_point<T>::value, double, int64_t>::type;
      const T* px = x.data<T>();
      const int64_t nout = shape_numel(kshape);
      const int64_t nred = shape_numel(rshape);
      Tensor outc = out.is_contiguous() ? out : Tensor::empty(out.shape(), out.dtype());
      T* pc = outc.data<T>();
      Acc init = op == ReduceOp::Sum ? Acc(0)
                 : op == ReduceOp::Prod ? Acc(1)
                 : op == ReduceOp::Max ? static_cast<Acc>(std::numeric_limits<T>::lowest())
                                       : static_cast<Acc>(std::numeric_limits<T>::max());
      auto comb = [op](Acc a, Acc v) -> Acc {
        switch (op) {
          case ReduceOp::Sum: return a + v;
          case ReduceOp::Prod: return a * v;
          case ReduceOp::Max: return v > a || std::isnan(static_cast<double>(v)) ? v : a;
          case ReduceOp::Min: return v < a || std::isnan(static_cast<double>(v)) ? v : a;
        }
        return a;
      };
      // Fast path: contiguous x with all reduced axes leading (e.g. bias gradients):
      // accumulate rows into a buffer, vectorised over the kept axis.
      bool leading = x.is_contiguous() && !rshape.empty() && op == ReduceOp::Sum;
      for (int64_t d = 0; leading && d < static_cast<int64_t>(rshape.size()); ++d)
        leading = out.shape()[d] == 1 && x.shape()[d] != 1;
      if (leading && nred > 1 && nout >= 16) {
        parallel_for(nout, 256, [&](int64_t b, int64_t e) {
          std::vector<Acc> acc(static_cast<size_t>(e - b), Acc(0));
          for (int64_t r = 0; r < nred; ++r) {
            const T* row = px + r * nout;
            for (int64_t j = b; j < e; ++j) acc[j - b] += row[j];
          }
          for (int64_t j = b; j < e; ++j) pc[j] = static_cast<T>(acc[j - b]);
        });
      } else {
        Shape kst = contiguous_strides(kshape);
        parallel_for(nout, std::max<int64_t>(1, 16384 / std::max<int64_t>(nred, 1)), [&](int64_t b, int64_t e) {
          std::vector<int64_t> ridx(rshape.size());
          for (int64_t o = b; o < e; ++o) {
            int64_t base = 0, rem = o;
            for (size_t d = 0; d < kshape.size(); ++d) {
              base += (rem / kst[d]) * kstr[d];
              rem %= kst[d];
            }
            Acc acc = init;
            if (rshape.size() == 1 && rstr[0] == 1) {
              const T* p = px + base;
              if (op == ReduceOp::Sum) {
                // Eight running sums (a fixed order, so results do not depend on threads)
                // keep the adds independent; they vectorise.
                Acc part[8] = {};
                int64_t i = 0;
                for (; i + 8 <= nred; i += 8)
                  for (int64_t l = 0; l < 8; ++l) part[l] += p[i + l];
                for (; i < nred; ++i) acc += p[i];
                acc += ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
              } else
                for (int64_t i = 0; i < nred; ++i) acc = comb(acc, p[i]);
            } else if (op == ReduceOp::Sum && !rshape.empty() && rstr.back() == 1 && rshape.back() >= 8) {
              // Contiguous innermost run (e.g. the bias gradient of a convolution, summed
              // over N and H*W): eight running sums per run, runs in index order.
              const int64_t inner = rshape.back(), outer = nred / inner, nd = static_cast<int64_t>(rshape.size()) - 1;
              std::fill(ridx.begin(), ridx.end(), 0);
              int64_t off = base;
              for (int64_t q = 0; q < outer; ++q) {
                const T* p = px + off;
                Acc part[8] = {};
                int64_t i = 0;
                for (; i + 8 <= inner; i += 8)
                  for (int64_t l = 0; l < 8; ++l) part[l] += p[i + l];
                Acc run = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
                for (; i < inner; ++i) run += p[i];
                acc += run;
                for (int64_t d = nd - 1; d >= 0; --d) {
                  ++ridx[d];
                  off += rstr[d];
                  if (ridx[d] < rshape[d]) break;
                  off -= rstr[d] * rshape[d];
                  ridx[d] = 0;
                }
              }
            } else {
              std::fill(ridx.begin(), ridx.end(), 0);
              int64_t off = base;
              for (int64_t i = 0; i < nred; ++i) {
                acc = comb(acc, px[off]);
                for (int64_t d = static_cast<int64_t>(rshape.size()) - 1; d >= 0; --d) {
                  ++ridx[d];
                  off += rstr[d];
                  if (ridx[d] < rshape[d]) break;
                  off -= rstr[d] * rshape[d];
                  ridx[d] = 0;
                }
              }
            }
            pc[o] = static_cast<T>(acc);
          }
        });
      }
      if (!out.is_contiguous()) copy(outc, out);
    });
  }

  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override {
    MEMEL_DISPATCH_ALL(out.dtype(), "where", [&] {
      using T = scalar_t;
      MEMEL_DISPATCH_ALL(cond.dtype(), "where", [&] {
        using C = scalar_t;
        const C* pc = cond.data<C>();
        const T* pa = a.data<T>();
        const T* pb = b.data<T>();
        T* po = out.data<T>();
        strided_for<4>(out.shape(), {&cond.strides(), &a.strides(), &b.strides(), &out.strides()},
                       [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
                         for (int64_t i = 0; i < n; ++i)
                           po[off[3] + i * st[3]] = pc[off[0] + i * st[0]] != C(0) ? pa[off[1] + i * st[1]]
                                                                                   : pb[off[2] + i * st[2]];
                       });
      });
    });
  }

  void argmax_last(const Tensor& x, Tensor& out) override {
    const int64_t n = x.shape().back(), rows = x.numel() / std::max<int64_t>(n, 1);
    MEMEL_DISPATCH_ALL(x.dtype(), "argmax", [&] {
      using T = scalar_t;
      const T* px = x.data<T>();
      int64_t* po = out.data<int64_t>();
      parallel_for(rows, 256, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* row = px + r * n;
          int64_t best = 0;
          for (int64_t i = 1; i < n; ++i)
            if (row[i] > row[best]) best = i;
          po[r] = best;
        }
      });
    });
  }

  void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c) override {
    MEMEL_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3, "[gemm] expects 3-d operands");
    MEMEL_CHECK(a.strides()[2] == 1 && b.strides()[2] == 1 && c.strides()[2] == 1,
                "[gemm] operands need unit stride in the last axis");
    const int64_t batch = c.shape()[0], m = c.shape()[1], n = c.shape()[2];
    const int64_t k = ta ? a.shape()[1] : a.shape()[2];
    const int64_t lda = a.shape()[1] == 1 ? std::max<int64_t>(a.shape()[2], 1) : a.strides()[1];
    const int64_t ldb = b.shape()[1] == 1 ? std::max<int64_t>(b.shape()[2], 1) : b.strides()[1];
    const int64_t ldc = c.shape()[1] == 1 ? std::max<int64_t>(c.shape()[2], 1) : c.strides()[1];
    const int64_t sa = a.shape()[0] == 1 ? 0 : a.strides()[0];
    const int64_t sb = b.shape()[0] == 1 ? 0 : b.strides()[0];
    const int64_t sc = c.strides()[0];
    if (m == 0 || n == 0) return;
    MEMEL_DISPATCH_FLOAT(c.dtype(), "gemm", [&] {
      using T = scalar_t;
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* pc = c.data<T>();
      auto one = [&](int64_t bi, int64_t m0, int64_t m1) {
        // Rows [m0, m1) of C: op(A) rows m0..m1.
        const T* ap = pa + bi * sa + (ta ? m0 : m0 * lda);
        T* cp = pc + bi * sc + m0 * ldc;
        if (k == 0) {
          for (int64_t i = 0; i < m1 - m0; ++i)
            for (int64_t j = 0; j < n; ++j) cp[i * ldc + j] = beta == 0 ? T(0) : T(beta) * cp[i * ldc + j];
          return;
        }
        blas_gemm(ta, tb, int(m1 - m0), int(n), int(k), T(alpha), ap, int(lda), pb + bi * sb, int(ldb), T(beta), cp,
                  int(ldc));
      };
      // Each product is cut into row blocks of a size that follows from the shapes alone, one
      // BLAS call per block: a library kernel may round a row differently by where it falls
      // in a call, so the cut must never follow the thread count. Blocks have at least 64
      // rows (each call packs B again) and there are about 16 tasks in all.
      const double flops = 2.0 * double(m) * double(n) * double(k) * double(batch);
      const bool small = flops < 2e5;
      int64_t blocks = small || batch >= 16 ? 1 : std::min((m + 63) / 64, (16 + batch - 1) / batch);
      blocks = std::max<int64_t>(blocks, 1);
      const int64_t rb = ((m + blocks - 1) / blocks + 15) / 16 * 16;
      blocks = (m + rb - 1) / rb;
      parallel_for(batch * blocks, small ? batch * blocks : 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t bi = t / blocks, r0 = (t % blocks) * rb;
          one(bi, r0, std::min(m, r0 + rb));
        }
      });
    });
  }

  void uniform(uint64_t seed, uint64_t offset, Tensor& out) override {
    MEMEL_DISPATCH_FLOAT(out.dtype(), "uniform", [&] {
      using T = scalar_t;
      T* po = out.data<T>();
      parallel_for(out.numel(), 16384, [&](int64_t b, int64_t e) {
        T* o = po + b;
        philox_uniform_for(seed, offset, static_cast<uint64_t>(b), e - b, [&](int64_t j, float u) { o[j] = T(u); });
      });
    });
  }

  template <typename I>
  static void check_ids(const I* ids, int64_t n, int64_t v, const char* op) {
    for (int64_t i = 0; i < n; ++i)
      MEMEL_CHECK(ids[i] >= 0 && ids[i] < v, "[", op, "] index ", int64_t(ids[i]), " at position ", i,
                  " is out of range [0, ", v, ")");
  }

  void index_select(const Tensor& x, const Tensor& ids, Tensor& out, const char* op) override {
    const int64_t v = x.shape()[0], d = x.numel() / std::max<int64_t>(v, 1), n = ids.numel();
    MEMEL_DISPATCH_ALL(x.dtype(), op, [&] {
      using T = scalar_t;
      const T* px = x.data<T>();
      T* po = out.data<T>();
      auto run = [&](auto* pid) {
        check_ids(pid, n, v, op);
        parallel_for(n, std::max<int64_t>(1, 8192 / std::max<int64_t>(d, 1)), [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) std::memcpy(po + i * d, px + int64_t(pid[i]) * d, sizeof(T) * size_t(d));
        });
      };
      if (ids.dtype() == DType::I64) run(ids.data<int64_t>());
      else run(ids.data<int32_t>());
    });
  }

  void index_add(const Tensor& src, const Tensor& ids, Tensor& out, const char* op) override {
    const int64_t v = out.shape()[0], d = out.numel() / std::max<int64_t>(v, 1), n = ids.numel();
    MEMEL_DISPATCH_ALL(out.dtype(), op, [&] {
      using T = scalar_t;
      const T* ps = src.data<T>();
      T* po = out.data<T>();
      auto run = [&](auto* pid) {
        check_ids(pid, n, v, op);
        if (d == 1) {  // element scatter: in order on one thread (targets may repeat anywhere)
          for (int64_t i = 0; i < n; ++i) po[pid[i]] += ps[i];
          return;
        }
        // Split over columns so no two threads write the same row element; rows are
        // visited in order, so the sum order is fixed.
        parallel_for(d, 16, [&](int64_t c0, int64_t c1) {
          for (int64_t i = 0; i < n; ++i) {
            T* dst = po + int64_t(pid[i]) * d;
            const T* s = ps + i * d;
            for (int64_t c = c0; c < c1; ++c) dst[c] += s[c];
          }
        });
      };
      if (ids.dtype() == DType::I64) run(ids.data<int64_t>());
      else run(ids.data<int32_t>());
    });
  }

  void index_put(const Tensor& src, const Tensor& ids, Tensor& out, const char* op) override {
    const int64_t v = out.shape()[0], d = out.numel() / std::max<int64_t>(v, 1), n = ids.numel();
    MEMEL_DISPATCH_ALL(out.dtype(), op, [&] {
      using T = scalar_t;
      const T* ps = src.data<T>();
      T* po = out.data<T>();
      auto run = [&](auto* pid) {
        check_ids(pid, n, v, op);
        for (int64_t i = 0; i < n; ++i) std::memcpy(po + int64_t(pid[i]) * d, ps + i * d, sizeof(T) * size_t(d));
      };
      if (ids.dtype() == DType::I64) run(ids.data<int64_t>());
      else run(ids.data<int32_t>());
    });
  }

  bool winograd_supported(int64_t kernel) const override { return cpu::winograd_supported(kernel); }
  int64_t winograd_points(int64_t kernel) const override { return cpu::winograd_points(kernel); }
  void winograd_weight(const Tensor& w, Tensor& U) override { cpu::winograd_weight(w, U); }
  void winograd_weight_backward(const Tensor& gU, Tensor& gw) override { cpu::winograd_weight_backward(gU, gw); }
  void winograd_conv2d(const Tensor& x, const Tensor& U, int64_t kernel, int ph, int pw, Tensor& y) override {
    cpu::winograd_conv2d_forward(x, U, kernel, ph, pw, y);
  }
  void winograd_conv2d_backward(const Tensor& x, const Tensor& U, const Tensor& gy, int64_t kernel, int ph, int pw,
                                Tensor& gx, Tensor& gU) override {
    cpu::winograd_conv2d_backward(x, U, gy, kernel, ph, pw, gx, gU);
  }

 protected:
  // --- fused kernels ---------------------------------------------------------------

  void softmax_fused(const Tensor& x, Tensor& y, bool log) override {
    const int64_t n = x.shape().back(), rows = x.numel() / std::max<int64_t>(n, 1);
    MEMEL_DISPATCH_FLOAT(x.dtype(), "softmax", [&] {
      using T = scalar_t;
      const T* px = x.data<T>();
      T* py = y.data<T>();
      parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* xr = px + r * n;
          T* yr = py + r * n;
          T mx = -std::numeric_limits<T>::infinity();
          for (int64_t i = 0; i < n; ++i) mx = std::max(mx, xr[i]);
          if (mx == -std::numeric_limits<T>::infinity()) mx = 0;  // fully masked row
          T s = 0;
          for (int64_t i = 0; i < n; ++i) {
            T v = std::exp(xr[i] - mx);
            yr[i] = v;
            s += v;
          }
          if (log) {
            T ls = std::log(s) + mx;
            for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - ls;
          } else {
            T inv = s > 0 ? T(1) / s : T(0);
            for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
          }
        }
      });
    });
  }

  void softmax_backward_fused(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) override {
    const int64_t n = y.shape().back(), rows = y.numel() / std::max<int64_t>(n, 1);
    MEMEL_DISPATCH_FLOAT(y.dtype(), "softmax_backward", [&] {
      using T = scalar_t;
      const T* py = y.data<T>();
      const T* pg = gy.data<T>();
      T* po = gx.data<T>();
      parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* yr = py + r * n;
          const T* gr = pg + r * n;
          T* orow = po + r * n;
          T s = 0;
          if (log) {
            for (int64_t i = 0; i < n; ++i) s += gr[i];
            for (int64_t i = 0; i < n; ++i) orow[i] = gr[i] - std::exp(yr[i]) * s;
          } else {
            for (int64_t i = 0; i < n; ++i) s += gr[i] * yr[i];
            for (int64_t i = 0; i < n; ++i) orow[i] = yr[i] * (gr[i] - s);
          }
        }
      });
    });
  }

  void layer_norm_fused(const Tensor& x, const Tensor& w, const Tensor& bias, double eps, Tensor& y, Tensor& mean,
                  Tensor& rstd) override {
    const int64_t n = x.shape().back(), rows = x.numel() / std::max<int64_t>(n, 1);
    if (x.dtype() == DType::F32 && n % 16 == 0 && n > 0) {
      const float* pw = w.defined() ? w.data<float>() : nullptr;
      const float* pb = bias.defined() ? bias.data<float>() : nullptr;
      parallel_for(rows, std::max<int64_t>(1, 4096 / n), [&](int64_t b, int64_t e) {
        layer_norm_rows_f32(x.data<float>(), pw, pb, float(eps), y.data<float>(), mean.data<float>(),
                            rstd.data<float>(), b, e, n);
      });
      return;
    }
    MEMEL_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
      using T = scalar_t;
      const T* px = x.data<T>();
      const T* pw = w.defined() ? w.data<T>() : nullptr;
      const T* pb = bias.defined() ? bias.data<T>() : nullptr;
      T* py = y.data<T>();
      T* pm = mean.data<T>();
      T* pr = rstd.data<T>();
      parallel_for(rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* xr = px + r * n;
          T* yr = py + r * n;
          double s = 0;
          for (int64_t i = 0; i < n; ++i) s += xr[i];
          const double mu = s / double(n);
          double v = 0;
          for (int64_t i = 0; i < n; ++i) v += (double(xr[i]) - mu) * (double(xr[i]) - mu);
          const T rs = T(1.0 / std::sqrt(v / double(n) + eps));
          const T m = T(mu);
          pm[r] = m;
          pr[r] = rs;
          for (int64_t i = 0; i < n; ++i) {
            T h = (xr[i] - m) * rs;
            if (pw) h *= pw[i];
            if (pb) h += pb[i];
            yr[i] = h;
          }
        }
      });
    });
  }

  void layer_norm_backward_fused(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                           const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) override {
    const int64_t n = x.shape().back(), rows = x.numel() / std::max<int64_t>(n, 1);
    if (x.dtype() == DType::F32 && n % 16 == 0 && n > 0) {
      // Rows in fixed blocks (independent of the thread count); each block sums its
      // parameter gradients in float, and the blocks are added in order in double.
      const int64_t rb = 64, nb = (rows + rb - 1) / rb;
      const bool want_w = gw.defined(), want_b = gb.defined();
      std::vector<float> part(static_cast<size_t>((want_w || want_b) ? nb * 2 * n : 0));
      const float* pwt = w.defined() ? w.data<float>() : nullptr;
      parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t blk = b0; blk < b1; ++blk) {
          float* pp = part.empty() ? nullptr : part.data() + blk * 2 * n;
          layer_norm_backward_rows_f32(x.data<float>(), pwt, mean.data<float>(), rstd.data<float>(),
                                       gy.data<float>(), gx.data<float>(), want_w ? pp : nullptr,
                                       want_b ? pp + n : nullptr, blk * rb, std::min(rows, (blk + 1) * rb), n);
        }
      });
      if (want_w || want_b) {
        std::vector<double> aw(static_cast<size_t>(n), 0.0), ab(static_cast<size_t>(n), 0.0);
        for (int64_t blk = 0; blk < nb; ++blk) {
          const float* pp = part.data() + blk * 2 * n;
          for (int64_t i = 0; i < n; ++i) {
            aw[i] += pp[i];
            ab[i] += pp[n + i];
          }
        }
        if (want_w) {
          float* o = gw.data<float>();
          for (int64_t i = 0; i < n; ++i) o[i] = float(aw[i]);
        }
        if (want_b) {
          float* o = gb.data<float>();
          for (int64_t i = 0; i < n; ++i) o[i] = float(ab[i]);
        }
      }
      return;
    }
    MEMEL_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward", [&] {
      using T = scalar_t;
      const T* px = x.data<T>();
      const T* pw = w.defined() ? w.data<T>() : nullptr;
      const T* pm = mean.data<T>();
      const T* pr = rstd.data<T>();
      const T* pg = gy.data<T>();
      T* po = gx.data<T>();
      parallel_for(rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* xr = px + r * n;
          const T* gr = pg + r * n;
          T* orow = po + r * n;
          const T m = pm[r], rs = pr[r];
          double s1 = 0, s2 = 0;  // sum(g*w), sum(g*w*xhat)
          for (int64_t i = 0; i < n; ++i) {
            double gw_ = double(gr[i]) * (pw ? double(pw[i]) : 1.0);
            s1 += gw_;
            s2 += gw_ * double((xr[i] - m) * rs);
          }
          const T a1 = T(s1 / double(n)), a2 = T(s2 / double(n));
          for (int64_t i = 0; i < n; ++i) {
            T xh = (xr[i] - m) * rs;
            T gw_ = gr[i] * (pw ? pw[i] : T(1));
            orow[i] = rs * (gw_ - a1 - xh * a2);
          }
        }
      });
      // Parameter gradients: reduce over rows, split over columns.
      if (gw.defined() || gb.defined()) {
        T* pgw = gw.defined() ? gw.data<T>() : nullptr;
        T* pgb = gb.defined() ? gb.data<T>() : nullptr;
        parallel_for(n, 64, [&](int64_t c0, int64_t c1) {
          std::vector<double> aw(static_cast<size_t>(c1 - c0), 0.0), ab(static_cast<size_t>(c1 - c0), 0.0);
          for (int64_t r = 0; r < rows; ++r) {
            const T* xr = px + r * n;
            const T* gr = pg + r * n;
            const T m = pm[r], rs = pr[r];
            for (int64_t i = c0; i < c1; ++i) {
              aw[i - c0] += double(gr[i]) * double((xr[i] - m) * rs);
              ab[i - c0] += double(gr[i]);
            }
          }
          for (int64_t i = c0; i < c1; ++i) {
            if (pgw) pgw[i] = T(aw[i - c0]);
            if (pgb) pgb[i] = T(ab[i - c0]);
          }
        });
      }
    });
  }

  void attention_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale, double p,
                 uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse) override {
    attention_forward(q, k, v, mask, scale, p, seed, offset, out, lse);  // tensor/cpu/attention.cpp
  }
  void attention_backward_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& lse,
                          const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset, Tensor& gq,
                          Tensor& gk, Tensor& gv) override {
    cpu::attention_backward(q, k, v, mask, lse, gout, scale, p, seed, offset, gq, gk, gv);
  }

  void dropout_mask_fused(uint64_t seed, uint64_t offset, double p, Tensor& mask) override {
    MEMEL_DISPATCH_FLOAT(mask.dtype(), "dropout", [&] {
      using T = scalar_t;
      T* pm = mask.data<T>();
      const T keep = T(1.0 / (1.0 - p));
      const float pf = static_cast<float>(p);
      parallel_for(mask.numel(), 16384, [&](int64_t b, int64_t e) {
        T* out = pm + b;
        philox_uniform_for(seed, offset, static_cast<uint64_t>(b), e - b,
                           [&](int64_t j, float u) { out[j] = u >= pf ? keep : T(0); });
      });
    });
  }

  void gru_candidate_fused(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand) override {
    cpu::gru_candidate(xg, hg, tanh_act, slope, cand);
  }
  void gru_candidate_backward_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand,
                              bool tanh_act, double slope, Tensor& gxg, Tensor& ghg) override {
    cpu::gru_candidate_backward(xg, hg, cand, gcand, tanh_act, slope, gxg, ghg);
  }
  void gru_update_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, Tensor& out) override {
    cpu::gru_update(xg, hg, cand, h, out);
  }
  void gru_update_backward_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                           const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh) override {
    cpu::gru_update_backward(xg, hg, cand, h, gout, gxg, ghg, gcand, gh);
  }

  void window_attention_fused(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale,
                              Tensor& out, Tensor& probs) override {
    cpu::window_attention(qkv, bias, mask, heads, scale, out, probs);
  }
  void window_attention_backward_fused(const Tensor& qkv, const Tensor& probs, const Tensor& gout, int64_t heads,
                                       double scale, Tensor& gqkv, Tensor& gbias) override {
    cpu::window_attention_backward(qkv, probs, gout, heads, scale, gqkv, gbias);
  }
  void window_gather_fused(const Tensor& image, const WindowGeometry& g, Tensor& windows) override {
    cpu::window_copy(image, windows, g, true);
  }
  void window_scatter_fused(const Tensor& windows, const WindowGeometry& g, Tensor& image) override {
    cpu::window_copy(windows, image, g, false);
  }
  void adam_step_fused(const std::vector<AdamSlot>& slots, const AdamHyper& h) override { cpu::adam_step(slots, h); }
  void sgd_step_fused(const std::vector<SgdSlot>& slots, const SgdHyper& h) override { cpu::sgd_step(slots, h); }
  void sum_squares_fused(const std::vector<Tensor>& ts, Tensor& out) override { cpu::sum_squares(ts, out); }

  void im2col_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& cols) override {
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const int64_t OH = (H + 2 * ph - dh * (kh - 1) - 1) / sh + 1, OW = (W + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
    MEMEL_DISPATCH_FLOAT(x.dtype(), "im2col", [&] {
      using T = scalar_t;
      const T* px = x.data<T>();
      T* pc = cols.data<T>();
      const int64_t rows = C * kh * kw;
      parallel_for(N * rows, 4, [&](int64_t b, int64_t e) {
        for (int64_t nr = b; nr < e; ++nr) {
          const int64_t n = nr / rows, r = nr % rows;
          const int64_t c = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw;
          const T* xc = px + (n * C + c) * H * W;
          T* dst = pc + nr * OH * OW;
          for (int64_t oy = 0; oy < OH; ++oy) {
            const int64_t iy = oy * sh - ph + ki * dh;
            T* drow = dst + oy * OW;
            if (iy < 0 || iy >= H) {
              std::fill(drow, drow + OW, T(0));
              continue;
            }
            const T* srow = xc + iy * W;
            // Columns ox with ix = ox * sw - pw + kj * dw inside [0, W): [lo, hi).
            const int64_t x0 = kj * dw - pw;
            const int64_t lo = std::min<int64_t>(OW, x0 >= 0 ? 0 : (-x0 + sw - 1) / sw);
            const int64_t hi = std::max<int64_t>(lo, std::min<int64_t>(OW, W - x0 > 0 ? (W - x0 + sw - 1) / sw : 0));
            std::fill(drow, drow + lo, T(0));
            if (sw == 1) {
              std::memcpy(drow + lo, srow + x0 + lo, sizeof(T) * size_t(hi - lo));
            } else {
              for (int64_t ox = lo; ox < hi; ++ox) drow[ox] = srow[ox * sw + x0];
            }
            std::fill(drow + hi, drow + OW, T(0));
          }
        }
      });
    });
  }

  void col2im_fused(const Tensor& cols, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& x) override {
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const int64_t OH = (H + 2 * ph - dh * (kh - 1) - 1) / sh + 1, OW = (W + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
    MEMEL_DISPATCH_FLOAT(x.dtype(), "col2im", [&] {
      using T = scalar_t;
      const T* pc = cols.data<T>();
      T* px = x.data<T>();
      // Each (n, c) plane is owned by one thread: no write conflicts.
      parallel_for(N * C, 1, [&](int64_t b, int64_t e) {
        for (int64_t nc = b; nc < e; ++nc) {
          T* xc = px + nc * H * W;
          std::fill(xc, xc + H * W, T(0));
          const int64_t n = nc / C, c = nc % C;
          for (int64_t ki = 0; ki < kh; ++ki)
            for (int64_t kj = 0; kj < kw; ++kj) {
              const T* src = pc + ((n * C + c) * kh * kw + ki * kw + kj) * OH * OW;
              const int64_t x0 = kj * dw - pw;
              const int64_t lo = std::min<int64_t>(OW, x0 >= 0 ? 0 : (-x0 + sw - 1) / sw);
              const int64_t hi =
                  std::max<int64_t>(lo, std::min<int64_t>(OW, W - x0 > 0 ? (W - x0 + sw - 1) / sw : 0));
              for (int64_t oy = 0; oy < OH; ++oy) {
                const int64_t iy = oy * sh - ph + ki * dh;
                if (iy < 0 || iy >= H) continue;
                T* __restrict xp = xc + iy * W;
                const T* __restrict sp = src + oy * OW;
                if (sw == 1) {
                  if (hi > lo) {
                    T* __restrict xq = xp + (lo + x0);
                    const T* __restrict sq = sp + lo;
                    for (int64_t i = 0; i < hi - lo; ++i) xq[i] += sq[i];
                  }
                } else {
                  for (int64_t ox = lo; ox < hi; ++ox) xp[ox * sw + x0] += sp[ox];
                }
              }
            }
        }
      });
    });
  }

  void max_pool2d_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor& y, Tensor& argmax) override {
    const int64_t NC = x.shape()[0] * x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const int64_t OH = y.shape()[2], OW = y.shape()[3];
    MEMEL_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
      using T = scalar_t;
      const T* px = x.data<T>();
      T* py = y.data<T>();
      int64_t* pa = argmax.data<int64_t>();
      parallel_for(NC, 1, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p)
          for (int64_t oy = 0; oy < OH; ++oy)
            for (int64_t ox = 0; ox < OW; ++ox) {
              T best = -std::numeric_limits<T>::infinity();
              int64_t bi = -1;
              for (int64_t i = 0; i < kh; ++i)
                for (int64_t j = 0; j < kw; ++j) {
                  const int64_t iy = oy * sh - ph + i, ix = ox * sw - pw + j;
                  if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                  const T v = px[p * H * W + iy * W + ix];
                  if (bi < 0 || v > best || std::isnan(v)) {
                    best = v;
                    bi = iy * W + ix;
                  }
                }
              py[(p * OH + oy) * OW + ox] = best;
              pa[(p * OH + oy) * OW + ox] = bi;
            }
      });
    });
  }

  void max_pool2d_backward_fused(const Tensor& gy, const Tensor& argmax, Tensor& gx) override {
    const int64_t NC = gx.shape()[0] * gx.shape()[1], HW = gx.shape()[2] * gx.shape()[3];
    const int64_t OHW = gy.shape()[2] * gy.shape()[3];
    MEMEL_DISPATCH_FLOAT(gx.dtype(), "max_pool2d_backward", [&] {
      using T = scalar_t;
      const T* pg = gy.data<T>();
      const int64_t* pa = argmax.data<int64_t>();
      T* px = gx.data<T>();
      parallel_for(NC, 1, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          std::fill(px + p * HW, px + (p + 1) * HW, T(0));
          for (int64_t o = 0; o < OHW; ++o) {
            const int64_t a = pa[p * OHW + o];
            if (a >= 0) px[p * HW + a] += pg[p * OHW + o];
          }
        }
      });
    });
  }

  void avg_pool2d_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad, Tensor& y) override {
    const int64_t NC = x.shape()[0] * x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const int64_t OH = y.shape()[2], OW = y.shape()[3];
    MEMEL_DISPATCH_FLOAT(x.dtype(), "avg_pool2d", [&] {
      using T = scalar_t;
      const T* px = x.data<T>();
      T* py = y.data<T>();
      parallel_for(NC, 1, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p)
          for (int64_t oy = 0; oy < OH; ++oy)
            for (int64_t ox = 0; ox < OW; ++ox) {
              T s = 0;
              int64_t cnt = 0;
              const int64_t y0 = oy * sh - ph, x0 = ox * sw - pw;
              for (int64_t i = 0; i < kh; ++i)
                for (int64_t j = 0; j < kw; ++j) {
                  const int64_t iy = y0 + i, ix = x0 + j;
                  if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                  s += px[p * H * W + iy * W + ix];
                  ++cnt;
                }
              const int64_t div = count_pad ? (std::min<int64_t>(y0 + kh, H + ph) - y0) * (std::min<int64_t>(x0 + kw, W + pw) - x0) : cnt;
              py[(p * OH + oy) * OW + ox] = div > 0 ? s / T(div) : T(0);
            }
      });
    });
  }

  void avg_pool2d_backward_fused(const Tensor& gy, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad,
                           Tensor& gx) override {
    const int64_t NC = gx.shape()[0] * gx.shape()[1], H = gx.shape()[2], W = gx.shape()[3];
    const int64_t OH = gy.shape()[2], OW = gy.shape()[3];
    MEMEL_DISPATCH_FLOAT(gx.dtype(), "avg_pool2d_backward", [&] {
      using T = scalar_t;
      const T* pg = gy.data<T>();
      T* px = gx.data<T>();
      parallel_for(NC, 1, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
          std::fill(px + p * H * W, px + (p + 1) * H * W, T(0));
          for (int64_t oy = 0; oy < OH; ++oy)
            for (int64_t ox = 0; ox < OW; ++ox) {
              const int64_t y0 = oy * sh - ph, x0 = ox * sw - pw;
              int64_t cnt = 0;
              for (int64_t i = 0; i < kh; ++i)
                for (int64_t j = 0; j < kw; ++j) {
                  const int64_t iy = y0 + i, ix = x0 + j;
                  cnt += (iy >= 0 && iy < H && ix >= 0 && ix < W);
                }
              const int64_t div = count_pad ? (std::min<int64_t>(y0 + kh, H + ph) - y0) * (std::min<int64_t>(x0 + kw, W + pw) - x0) : cnt;
              if (div <= 0) continue;
              const T g = pg[(p * OH + oy) * OW + ox] / T(div);
              for (int64_t i = 0; i < kh; ++i)
                for (int64_t j = 0; j < kw; ++j) {
                  const int64_t iy = y0 + i, ix = x0 + j;
                  if (iy >= 0 && iy < H && ix >= 0 && ix < W) px[p * H * W + iy * W + ix] += g;
                }
            }
        }
      });
    });
  }

  template <typename I>
  static int64_t target_at(const Tensor& t, int64_t i) {
    return static_cast<int64_t>(t.data<I>()[i]);
  }

  void cross_entropy_fused(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing, Tensor& loss,
                     Tensor& lse) override {
    const int64_t rows = logits.shape()[0], C = logits.shape()[1];
    MEMEL_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
      using T = scalar_t;
      const T* pl = logits.data<T>();
      T* pls = loss.data<T>();
      T* pz = lse.data<T>();
      const bool i64 = target.dtype() == DType::I64;
      for (int64_t r = 0; r < rows; ++r) {
        int64_t t = i64 ? target_at<int64_t>(target, r) : target_at<int32_t>(target, r);
        MEMEL_CHECK(t == ignore_index || (t >= 0 && t < C), "[cross_entropy] target ", t, " at row ", r,
                    " is out of range [0, ", C, ")");
      }
      parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* lr = pl + r * C;
          T mx = lr[0];
          for (int64_t i = 1; i < C; ++i) mx = std::max(mx, lr[i]);
          double s = 0, sum_logit = 0;
          for (int64_t i = 0; i < C; ++i) {
            s += std::exp(double(lr[i] - mx));
            sum_logit += double(lr[i]);
          }
          const double z = std::log(s) + double(mx);
          pz[r] = T(z);
          const int64_t t = i64 ? target_at<int64_t>(target, r) : target_at<int32_t>(target, r);
          if (t == ignore_index) {
            pls[r] = 0;
            continue;
          }
          // (1 - eps) * (-log p_t) + eps * mean_i(-log p_i)
          const double nll = z - double(lr[t]);
          const double smooth = z - sum_logit / double(C);
          pls[r] = T((1.0 - smoothing) * nll + smoothing * smooth);
        }
      });
    });
  }

  void cross_entropy_backward_fused(const Tensor& logits, const Tensor& target, const Tensor& lse, const Tensor& grow,
                              int64_t ignore_index, double smoothing, Tensor& glogits) override {
    const int64_t rows = logits.shape()[0], C = logits.shape()[1];
    MEMEL_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_backward", [&] {
      using T = scalar_t;
      const T* pl = logits.data<T>();
      const T* pz = lse.data<T>();
      const T* pgr = grow.data<T>();
      T* po = glogits.data<T>();
      const bool i64 = target.dtype() == DType::I64;
      parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t t = i64 ? target_at<int64_t>(target, r) : target_at<int32_t>(target, r);
          T* orow = po + r * C;
          if (t == ignore_index) {
            std::fill(orow, orow + C, T(0));
            continue;
          }
          const T g = pgr[r];
          const T* lr = pl + r * C;
          for (int64_t i = 0; i < C; ++i) {
            T p = std::exp(lr[i] - pz[r]);
            T tgt = T(smoothing / double(C)) + (i == t ? T(1.0 - smoothing) : T(0));
            orow[i] = g * (p - tgt);
          }
        }
      });
    });
  }
};

}  // namespace
}  // namespace cpu

Backend& cpu_backend() {
  static cpu::CpuBackend b;
  return b;
}

}  // namespace memel
