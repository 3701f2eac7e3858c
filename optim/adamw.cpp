#include "optim/adamw.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <type_traits>

#include "core/thread_pool.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen's AVX-512 packet code
#include <Eigen/Core>
#pragma GCC diagnostic pop

namespace memel {

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

Tensor buffer(std::map<std::string, Tensor>& bufs, const std::string& name, const Tensor& p) {
  auto it = bufs.find(name);
  if (it != bufs.end()) return it->second;
  Tensor t = Tensor::zeros(p.shape(), p.dtype(), p.device());
  bufs[name] = t;
  return t;
}

void check_adam_group(const char* T, const ParamGroup& g) {
  const double b1 = g.option("beta1"), b2 = g.option("beta2"), eps = g.option("eps"), ams = g.option("amsgrad");
  MEMEL_CHECK(b1 >= 0.0 && b1 < 1.0, "[", T, "] beta1 must be in [0, 1), got ", b1);
  MEMEL_CHECK(b2 >= 0.0 && b2 < 1.0, "[", T, "] beta2 must be in [0, 1), got ", b2);
  MEMEL_CHECK(eps >= 0.0, "[", T, "] eps must be non-negative, got ", eps);
  MEMEL_CHECK(ams == 0.0 || ams == 1.0, "[", T, "] amsgrad must be 0 or 1, got ", ams);
}

void run_adam(const ParamGroup& group, Tensor& p, const Tensor& g,
              std::map<std::string, Tensor>& bufs, int64_t step, bool decoupled) {
  Tensor m = buffer(bufs, "exp_avg", p), v = buffer(bufs, "exp_avg_sq", p);
  Tensor vmax;
  if (group.option("amsgrad") != 0.0) vmax = buffer(bufs, "max_exp_avg_sq", p);
  MEMEL_DISPATCH_FLOAT(p.dtype(), decoupled ? "AdamW" : "Adam", [&] {
    adam_update<scalar_t>(p.data<scalar_t>(), g.data<scalar_t>(), m.data<scalar_t>(), v.data<scalar_t>(),
                          vmax.defined() ? vmax.data<scalar_t>() : nullptr, p.numel(), step, *group.lr,
                          *group.weight_decay, group.option("beta1"), group.option("beta2"), group.option("eps"),
                          decoupled);
  });
}

template <typename O>
std::map<std::string, double> adam_options(const O& o) {
  return {{"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps}, {"amsgrad", o.amsgrad ? 1.0 : 0.0}};
}

}  // namespace

// --- AdamW ------------------------------------------------------------------------

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& o)
    : AdamW(std::vector<ParamGroup>{ParamGroup(std::move(params))}, o) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o)
    : Optimizer("AdamW", std::move(groups), Defaults{o.lr, o.weight_decay, adam_options(o)}) {
  for (auto& g : param_groups()) check_group(g);
}

void AdamW::check_group(const ParamGroup& g) const { check_adam_group("AdamW", g); }

void AdamW::update(const ParamGroup& group, Tensor& p, const Tensor& g, ParamState& st) {
  run_adam(group, p, g, st.buffers, st.step, true);
}

// --- Adam -------------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> params, const AdamOptions& o)
    : Adam(std::vector<ParamGroup>{ParamGroup(std::move(params))}, o) {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& o)
    : Optimizer("Adam", std::move(groups), Defaults{o.lr, o.weight_decay, adam_options(o)}) {
  for (auto& g : param_groups()) check_group(g);
}

void Adam::check_group(const ParamGroup& g) const { check_adam_group("Adam", g); }

void Adam::update(const ParamGroup& group, Tensor& p, const Tensor& g, ParamState& st) {
  run_adam(group, p, g, st.buffers, st.step, false);
}

// --- parameter groups --------------------------------------------------------------

bool is_no_decay_param(const std::string& name, const Tensor& p) {
  if (p.dim() <= 1) return true;
  const std::string suffix = "bias";
  if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return true;
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find("norm") != std::string::npos;  // LayerNorm, layernorm, norm1, ...
}

std::vector<ParamGroup> param_groups_with_decay(const Module& module, double weight_decay) {
  MEMEL_CHECK(weight_decay >= 0.0, "[param_groups_with_decay] weight_decay must be non-negative, got ", weight_decay);
  ParamGroup decay, no_decay;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = 0.0;
  for (auto& np : module.named_parameters()) {
    if (!np.second.requires_grad()) continue;
    ParamGroup& g = is_no_decay_param(np.first, np.second) ? no_decay : decay;
    g.params.push_back(np.second);
    g.names.push_back(np.first);
  }
  return {decay, no_decay};
}

}  // namespace memel
