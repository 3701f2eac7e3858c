// Optimizer updates on the CPU, in the operation order of PyTorch's single-tensor
// implementations (the scalars rounded to the parameter's type).
#include "tensor/cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/thread_pool.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen's AVX-512 packet code
#include <Eigen/Core>
#pragma GCC diagnostic pop

namespace memel::cpu {

namespace {

// One Adam(W) step over n elements; the options that change the loop body are template
// parameters, and chunks run on the thread pool (elementwise, so the result does not
// depend on the split). Each chunk runs in blocks of kAdamBlock elements with Eigen array
// expressions (packet sqrt, IEEE-exact like std::sqrt).
constexpr int64_t kAdamBlock = 512;

template <typename T, bool Decoupled, bool Decay, bool AmsGrad>
void adam_loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
               int64_t n, T step_size, T bc2_sqrt, T b1, T b2, T omb1, T omb2, T eps_t, T decay, T wd_t) {
  using A = Eigen::Array<T, Eigen::Dynamic, 1>;
  parallel_for(n, 16384, [&](int64_t s, int64_t e) {
    T gbuf[kAdamBlock];
    for (int64_t b = s; b < e; b += kAdamBlock) {
      const Eigen::Index len = static_cast<Eigen::Index>(std::min<int64_t>(kAdamBlock, e - b));
      Eigen::Map<A> P(p + b, len), M(m + b, len), V(v + b, len);
      Eigen::Map<const A> G0(g + b, len);
      if (!Decoupled && Decay) Eigen::Map<A>(gbuf, len) = G0 + wd_t * P;  // L2 penalty in the gradient
      Eigen::Map<const A> G(!Decoupled && Decay ? gbuf : g + b, len);
      if (Decoupled && Decay) P *= decay;
      M = M * b1 + omb1 * G;
      V = V * b2 + omb2 * G * G;
      if (AmsGrad) {
        Eigen::Map<A> VM(vmax + b, len);
        VM = VM.max(V);
        P -= step_size * M / (VM.sqrt() / bc2_sqrt + eps_t);
      } else {
        P -= step_size * M / (V.sqrt() / bc2_sqrt + eps_t);
      }
    }
  });
}

template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, int64_t step, double lr, double wd, double beta1,
                 double beta2, double eps, bool decoupled) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const T step_size = static_cast<T>(lr / bc1);
  const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
  const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), omb1 = static_cast<T>(1.0 - beta1),
          omb2 = static_cast<T>(1.0 - beta2), eps_t = static_cast<T>(eps);
  const T decay = static_cast<T>(1.0 - lr * wd), wd_t = static_cast<T>(wd);
  const bool dec = wd != 0.0, ams = vmax != nullptr;
  auto run = [&](auto d, auto w, auto a) {
    adam_loop<T, decltype(d)::value, decltype(w)::value, decltype(a)::value>(p, g, m, v, vmax, n, step_size, bc2_sqrt,
                                                                            b1, b2, omb1, omb2, eps_t, decay, wd_t);
  };
  using Y = std::true_type;
  using N = std::false_type;
  if (decoupled) {
    if (dec) ams ? run(Y(), Y(), Y()) : run(Y(), Y(), N());
    else ams ? run(Y(), N(), Y()) : run(Y(), N(), N());
  } else {
    if (dec) ams ? run(N(), Y(), Y()) : run(N(), Y(), N());
    else ams ? run(N(), N(), Y()) : run(N(), N(), N());
  }
}

// One fused pass; buf is null without momentum. Same operation order as PyTorch's
// single-tensor SGD (the scalars rounded to the parameter's type).
template <typename T>
void sgd_update(T* p, const T* g, T* buf, bool first, int64_t n, double lr, double wd, double momentum,
                double dampening, bool nesterov) {
  const T wd_t = static_cast<T>(wd), mom = static_cast<T>(momentum), damp1 = static_cast<T>(1.0 - dampening);
  const T neg_lr = static_cast<T>(-lr);
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if (wd != 0.0) d = d + wd_t * p[i];
    if (buf) {
      const T b = first ? d : buf[i] * mom + damp1 * d;
      buf[i] = b;
      d = nesterov ? d + mom * b : b;
    }
    p[i] = p[i] + neg_lr * d;
  }
}

}  // namespace

void adam_step(const std::vector<AdamSlot>& slots, const AdamHyper& h) {
  for (const AdamSlot& s : slots)
    MEMEL_DISPATCH_FLOAT(s.p.dtype(), h.decoupled ? "AdamW" : "Adam", [&] {
      using T = scalar_t;
      adam_update<T>(s.p.data<T>(), s.g.data<T>(), s.m.data<T>(), s.v.data<T>(),
                     s.vmax.defined() ? s.vmax.data<T>() : nullptr, s.p.numel(), s.step, h.lr, h.weight_decay,
                     h.beta1, h.beta2, h.eps, h.decoupled);
    });
}

void sgd_step(const std::vector<SgdSlot>& slots, const SgdHyper& h) {
  for (const SgdSlot& s : slots)
    MEMEL_DISPATCH_FLOAT(s.p.dtype(), "SGD", [&] {
      using T = scalar_t;
      sgd_update<T>(s.p.data<T>(), s.g.data<T>(), s.buf.defined() ? s.buf.data<T>() : nullptr, s.first, s.p.numel(),
                    h.lr, h.weight_decay, h.momentum, h.dampening, h.nesterov);
    });
}

void sum_squares(const std::vector<Tensor>& ts, Tensor& out) {
  double total = 0.0;
  for (const Tensor& t : ts) {
    const Tensor c = t.is_contiguous() ? t : t.contiguous_copy();
    MEMEL_DISPATCH_FLOAT(c.dtype(), "sum_squares", [&] {
      const scalar_t* d = c.data<scalar_t>();
      const int64_t n = c.numel();
      // Eight running sums in a fixed order (independent adds that vectorise).
      double part[8] = {};
      int64_t i = 0;
      for (; i + 8 <= n; i += 8)
        for (int64_t l = 0; l < 8; ++l) part[l] += static_cast<double>(d[i + l]) * static_cast<double>(d[i + l]);
      double s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; i < n; ++i) s += static_cast<double>(d[i]) * static_cast<double>(d[i]);
      total += s;
    });
  }
  out.fill_(total);
}

}  // namespace memel::cpu
