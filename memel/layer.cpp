#include "memel/layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <numeric>
#include <mutex>
#include <sstream>

#include "autograd/ops_util.h"
#include "core/thread_pool.h"

namespace memel {

// The gradient of reverse deactivation is a rule, not the derivative of the forward
// (the forward is constant at selected elements), so finite differences cannot check
// it; tests/memel checks the rule exactly. Hence registered as "no finite-difference
// gradient".
MEMEL_REGISTER_NONDIFF_OP("memel_rd");

namespace {

// Where neurons sit in the per-sample layout: element index i (within a sample) belongs
// to neuron (i / inner) % C; `outer` blocks of C * inner elements make up a sample.
struct Geometry {
  int64_t B = 0, n = 0, outer = 1, C = 1, inner = 1;
  int64_t neuron(int64_t i) const { return (i / inner) % C; }
};

Geometry geometry(const Tensor& x, const MemelOptions& o, Shape* neuron_shape) {
  MEMEL_CHECK(x.dim() >= 2, "[memel] input must be (B, ...) with at least one axis after the batch, got ",
              shape_str(x.shape()));
  Geometry g;
  g.B = x.shape()[0];
  Shape s(x.shape().begin() + 1, x.shape().end());
  g.n = shape_numel(s);
  if (o.neurons == MemelNeurons::Element) {
    g.C = g.n;
    *neuron_shape = s;
  } else {
    const int64_t a = wrap_axis(o.channel_axis < 0 ? o.channel_axis : o.channel_axis - 1, static_cast<int64_t>(s.size()),
                                "memel channel_axis");
    g.C = s[a];
    for (int64_t i = 0; i < a; ++i) g.outer *= s[i];
    for (int64_t i = a + 1; i < static_cast<int64_t>(s.size()); ++i) g.inner *= s[i];
    *neuron_shape = {g.C};
  }
  return g;
}

// The padding mask on x's device, checked to cover leading axes of x (undefined: none).
Tensor check_mask(const Tensor& mask, const Tensor& x) {
  if (!mask.defined()) return mask;
  MEMEL_CHECK(mask.dim() >= 1 && mask.dim() <= x.dim(), "[memel] mask ", shape_str(mask.shape()),
              " must cover leading axes of the input ", shape_str(x.shape()));
  for (int64_t i = 0; i < mask.dim(); ++i)
    MEMEL_CHECK(mask.shape()[i] == x.shape()[i], "[memel] mask ", shape_str(mask.shape()),
                " does not match the leading axes of the input ", shape_str(x.shape()));
  Tensor m = mask.to(x.device());
  return m.is_contiguous() ? m : m.contiguous_copy();
}

MemelSelectSpec select_spec(const MemelOptions& o, int64_t scopes, int64_t n) {
  MemelSelectSpec s;
  s.scopes = scopes;
  s.n = n;
  s.rule = o.select == MemelSelect::TopK ? 0 : o.select == MemelSelect::TopLog ? 1 : o.select == MemelSelect::Ratio ? 2 : 3;
  s.k = o.k;
  s.ratio = o.ratio;
  s.threshold = o.threshold;
  s.all_ties = o.ties == MemelTies::All;
  return s;
}

}  // namespace

MemelLayer::MemelLayer(MemelOptions opts) : Module("MemelLayer"), opts_(std::move(opts)) {
  opts_.validate();
  bins_ = MsHistBins(opts_.hist_bins, opts_.hist_min, opts_.hist_max);
  // Registered empty; shaped on the first batch (or from a checkpoint).
  register_buffer("count", Tensor::empty({0}));
  register_buffer("mean", Tensor::empty({0}));
  register_buffer("var", Tensor::empty({0}));
  register_buffer("inhibited", Tensor::empty({0}));
  register_buffer("ms_sum", Tensor::empty({0}));
  register_buffer("ms_n", Tensor::empty({0}));
  batches_ = register_buffer("batches", Tensor::zeros({1}, DType::F64));
  ms_hist_ = register_buffer("ms_hist", Tensor::zeros({opts_.hist_bins}, DType::F64));
}

std::string MemelLayer::extra_repr() const {
  std::ostringstream os;
  os << "mode=" << to_string(opts_.mode) << ", select=" << to_string(opts_.select);
  if (opts_.select == MemelSelect::TopK) os << "(k=" << opts_.k << ")";
  os << ", scope=" << to_string(opts_.scope) << ", neurons=" << to_string(opts_.neurons);
  if (!neuron_shape_.empty()) os << ", neuron_shape=" << shape_str(neuron_shape_);
  return os.str();
}

int64_t MemelLayer::batches_seen() const { return static_cast<int64_t>(batches_.item()); }

void MemelLayer::set_state(const std::string& name, Tensor t) { *find_tensor(name) = t; }

Tensor MemelLayer::work_input(const Tensor& x) const {
  if (opts_.stats_dtype == MemelStatsDType::Float32 && x.dtype() != DType::F32) return x.detach().to_dtype(DType::F32);
  return x;
}

void MemelLayer::materialize(const Shape& ns, DType dtype) {
  neuron_shape_ = ns;
  const Device dev = batches_.device();  // the layer's device (Module::to moves its buffers)
  stats_ = NeuronStats::zeros(ns, dtype, dev);
  inhibited_ = Tensor::zeros(ns, DType::F64, dev);
  ms_sum_ = Tensor::zeros(ns, DType::F64, dev);
  ms_n_ = Tensor::zeros(ns, DType::F64, dev);
  set_state("count", stats_.count);
  set_state("mean", stats_.mean);
  set_state("var", stats_.var);
  set_state("inhibited", inhibited_);
  set_state("ms_sum", ms_sum_);
  set_state("ms_n", ms_n_);
}

void MemelLayer::reset_window() {
  if (ms_sum_.defined()) {
    ms_sum_.zero_();
    ms_n_.zero_();
  }
  ms_hist_.zero_();
}

void MemelLayer::set_options(const MemelOptions& o) {
  o.validate();
  opts_ = o;
  bins_ = MsHistBins(opts_.hist_bins, opts_.hist_min, opts_.hist_max);
}

Tensor MemelLayer::score(const Tensor& x_in) const {
  MEMEL_CHECK(initialized(), "[memel] score() before the layer has seen any data");
  Shape ns;
  Tensor x = detail::cont(work_input(x_in));
  Geometry g = geometry(x, opts_, &ns);
  MEMEL_CHECK(ns == neuron_shape_, "[memel] input per-sample shape gives neurons ", shape_str(ns), ", layer has ",
              shape_str(neuron_shape_));
  MEMEL_CHECK(x.dtype() == stats_.mean.dtype(), "[memel] input dtype ", dtype_name(x.dtype()),
              " differs from the statistics dtype ", dtype_name(stats_.mean.dtype()));
  Tensor phi = Tensor::empty(x.shape(), x.dtype(), x.device());
  MemelPass ps;
  ps.blocks = g.B * g.outer;
  ps.C = g.C;
  ps.inner = g.inner;
  ps.score = true;
  ps.eps = opts_.eps;
  Tensor none;
  backend_for(x).memel_pass(x, Tensor(), stats_.count, stats_.mean, stats_.var, ps, none, none, none, phi, none, none,
                            none);
  return phi;
}

Tensor MemelLayer::forward(const Tensor& x_in) {
  const bool training = is_training();
  if (capture_) last_input_ = x_in.detach();
  penalty_ = Tensor();
  if (training && opts_.regularizer == "decorrelation") penalty_ = decorrelation_penalty(x_in, opts_.lambda);
  if (!training && !opts_.active_at_eval) {
    // Eval is the identity: nothing is selected, no scores.
    last_selected_.clear();
    last_scores_ = Tensor();
    return x_in;
  }
  detail::check_float(x_in, "memel");
  Tensor x = detail::cont(work_input(x_in));
  Shape ns;
  Geometry g = geometry(x, opts_, &ns);
  if (!initialized()) {
    if (!training) {  // nothing known yet: eval is the identity
      last_selected_.clear();
      last_scores_ = Tensor();
      return x_in;
    }
    materialize(ns, x.dtype());
  }
  MEMEL_CHECK(ns == neuron_shape_, "[memel] input ", shape_str(x.shape()), " gives neurons ", shape_str(ns),
              " but this layer tracks neurons ", shape_str(neuron_shape_),
              " (element neurons need a fixed per-sample shape, e.g. padding to a fixed length)");
  MEMEL_CHECK(x.dtype() == stats_.mean.dtype(), "[memel] input dtype ", dtype_name(x.dtype()),
              " differs from the statistics dtype ", dtype_name(stats_.mean.dtype()));
  if (opts_.select == MemelSelect::TopK) {
    const int64_t scope_n = opts_.scope == MemelScope::Sample ? g.n : g.n * g.B;
    MEMEL_CHECK(opts_.k <= scope_n, "[memel] k = ", opts_.k, " is larger than the ", scope_n, " elements in each ",
                to_string(opts_.scope), " scope");
  }
  const Tensor mask = check_mask(mask_, x);
  const bool update = training;
  const int64_t seen = batches_seen();
  const bool warm = seen >= opts_.warmup;
  const Device dev = x.device();
  Backend& be = backend_for(x);
  const int64_t C = g.C;
  Tensor phi = Tensor::empty(x.shape(), x.dtype(), dev);
  MemelPass ps;
  ps.blocks = g.B * g.outer;
  ps.C = C;
  ps.inner = g.inner;
  ps.eps = opts_.eps;
  ps.bins = &bins_;
  if (update && (!bcount_.defined() || bcount_.numel() != C || bcount_.device() != dev)) {
    bcount_ = Tensor::empty({C}, DType::F64, dev);
    bmean_ = Tensor::empty({C}, DType::F64, dev);
    bvar_ = Tensor::empty({C}, DType::F64, dev);
  }
  Tensor none;
  // The batch's moments, then their merge into the running statistics.
  auto merge_batch = [&] {
    // Here the batch moments (bcount_, bmean_, bvar_: count, mean, biased variance per
    // neuron) are complete and not yet merged. Data-parallel training (issue 24) replaces
    // them by the global batch's (Lemma 3.2 across processes, on host copies).
    if (memel_cross_rank().reduce_moments) {
      Tensor hc = bcount_.to(Device::cpu()).contiguous_copy(), hm = bmean_.to(Device::cpu()).contiguous_copy(),
             hv = bvar_.to(Device::cpu()).contiguous_copy();
      memel_cross_rank().reduce_moments(C, hc.data<double>(), hm.data<double>(), hv.data<double>());
      bcount_.copy_from(hc);
      bmean_.copy_from(hm);
      bvar_.copy_from(hv);
    }
    stats_.merge(bcount_, bmean_, bvar_, MergeRule{opts_.forget_batches, opts_.count_ahead});
    batches_.fill_(double(seen + 1));
  };
  // One read of the activation: batch moments, and unless scoring after the update, the
  // scores against the history together with the dump window.
  const bool score_now = !opts_.score_after_update || !update;
  ps.moments = update;
  ps.score = score_now;
  ps.window = update && score_now;
  Tensor& bc = update ? bcount_ : none;
  Tensor& bm = update ? bmean_ : none;
  Tensor& bv = update ? bvar_ : none;
  be.memel_pass(x, mask, stats_.count, stats_.mean, stats_.var, ps, bc, bm, bv, phi, ms_sum_, ms_n_, ms_hist_);
  if (!score_now) {
    // Authors' order: score against the statistics that include this batch.
    merge_batch();
    ps.moments = false;
    ps.score = ps.window = true;
    be.memel_pass(x, mask, stats_.count, stats_.mean, stats_.var, ps, none, none, none, phi, ms_sum_, ms_n_,
                  ms_hist_);
  }
  // Selection (the indices come back to the host).
  std::vector<int64_t> selected;
  if (opts_.inhibits() && warm) {
    if (opts_.scope == MemelScope::Batch && update && memel_cross_rank().gather_scores) {
      // Data-parallel training (issue 24): selected among the global batch's scores; this
      // process keeps its own (an evaluation runs on rank 0 alone, on its whole batch).
      // The scores go through double, which holds every float exactly: same order, same ties.
      int64_t first = 0;
      const std::vector<double> all = memel_cross_rank().gather_scores(phi.to_vector(), first);
      const int64_t n_all = static_cast<int64_t>(all.size());
      const Tensor scores = Tensor::from_vector(all, {n_all}).to_dtype(phi.dtype());
      for (int64_t i : backend_for(scores).memel_select(scores, select_spec(opts_, 1, n_all)))
        if (i >= first && i < first + x.numel()) selected.push_back(i - first);
    } else {
      selected = opts_.scope == MemelScope::Batch ? be.memel_select(phi, select_spec(opts_, 1, x.numel()))
                                                  : be.memel_select(phi, select_spec(opts_, g.B, g.n));
    }
  }
  // Replacement values: the mean each selected element was scored against (the pre-merge
  // mean when scoring before the merge, the paper's Algorithm 2), and the inhibition counts.
  Tensor vals = Tensor::empty({int64_t(selected.size())}, DType::F64, dev);
  if (!selected.empty()) {
    std::vector<int64_t> neuron(selected.size());
    for (size_t j = 0; j < selected.size(); ++j) neuron[j] = g.neuron(selected[j] % g.n);
    const Tensor ids = Tensor::from_vector(neuron, {int64_t(neuron.size())}).to(dev);
    be.memel_inhibit(ids, stats_.mean, update ? inhibited_ : none, vals);
  }
  if (update && score_now) merge_batch();
  last_scores_ = phi;
  last_selected_ = selected;
  if (selected.empty()) return x_in;
  return reverse_deactivate(x_in, selected, vals, opts_.effective_delta());
}

Tensor reverse_deactivate(const Tensor& x_in, const std::vector<int64_t>& indices, const Tensor& values, double delta) {
  detail::check_float(x_in, "memel_rd");
  MEMEL_CHECK(values.numel() == static_cast<int64_t>(indices.size()), "[memel_rd] ", values.numel(), " values for ",
              indices.size(), " indices");
  Tensor y = x_in.contiguous_copy();
  const int64_t n = y.numel(), k = static_cast<int64_t>(indices.size());
  for (int64_t i : indices)
    MEMEL_CHECK(i >= 0 && i < n, "[memel_rd] index ", i, " out of range for ", n, " elements");
  Backend& be = backend_for(y);
  const Tensor idx = Tensor::from_vector(indices, {k}).to(y.device());
  // y[idx] = values (in y's dtype)
  Tensor yf = y.as_strided({n, 1}, {1, 1}, y.offset());
  const Tensor vals = values.to(y.device()).to_dtype(y.dtype()).contiguous_copy();
  be.index_put(vals.as_strided({k, 1}, {1, 1}, vals.offset()), idx, yf, "memel_rd");
  return autograd::record("memel_rd", y, {x_in}, [idx, k, delta](const autograd::TensorList& g) -> autograd::TensorList {
    // gx = g, except gx[idx] = -delta * g[idx]
    Tensor gx = g[0].contiguous_copy();
    Backend& b = backend_for(gx);
    Tensor gf = gx.as_strided({gx.numel(), 1}, {1, 1}, gx.offset());
    Tensor picked = Tensor::empty({k, 1}, gx.dtype(), gx.device());
    b.index_select(gf, idx, picked, "memel_rd");
    b.unary(UnaryOp::MulScalar, picked, picked, -delta);
    b.index_put(picked, idx, gf, "memel_rd");
    return {gx};
  });
}

Tensor decorrelation_penalty(const Tensor& x, double lambda, double eps) {
  MEMEL_CHECK(x.dim() >= 2, "[decorrelation] input must have rank >= 2, got ", shape_str(x.shape()));
  const int64_t C = x.shape().back();
  Tensor z = reshape(x, {-1, C});                                   // (M, C)
  Tensor zc = sub(z, mean(z, {0}, true));
  Tensor norm = sqrt(add(sum(square(zc), {0}, true), eps));          // (1, C)
  Tensor zn = div(zc, norm);
  Tensor corr = matmul(transpose(zn, 0, 1), zn);                     // (C, C)
  std::vector<double> e(static_cast<size_t>(C * C), 0.0);
  for (int64_t i = 0; i < C; ++i) e[i * C + i] = 1.0;
  Tensor eye = Tensor::from_vector(e, {C, C}, x.dtype());
  return mul(sum(square(sub(corr, eye))), lambda);
}

Tensor memel_regularization(const Module& root) {
  Tensor total;
  for (auto& [name, layer] : memel_layers(root)) {
    const Tensor& p = layer->penalty();
    if (!p.defined()) continue;
    total = total.defined() ? add(total, p) : p;
  }
  if (total.defined()) return total;
  // No penalty: a zero where the model is (the loss it is added to is there).
  const std::vector<Tensor> params = root.parameters();
  return Tensor::zeros({}, DType::F32, params.empty() ? Device::cpu() : params.front().device());
}

void prepare_memel_layers_for_load(Module& root, const StateDict& sd) {
  for (auto& [name, layer] : memel_layers(root)) {
    auto it = sd.find(name + ".mean");
    if (it == sd.end() || it->second.numel() == 0) continue;
    if (layer->initialized() && layer->neuron_shape() == it->second.shape()) continue;
    // Shape the buffers like the checkpoint; load_state_dict then copies the values.
    layer->load_neuron_shape(it->second.shape(), it->second.dtype());
  }
}

std::vector<std::pair<std::string, std::shared_ptr<MemelLayer>>> memel_layers(const Module& root) {
  std::vector<std::pair<std::string, std::shared_ptr<MemelLayer>>> r;
  for (auto& [name, m] : root.named_modules())
    if (auto l = std::dynamic_pointer_cast<MemelLayer>(m)) r.emplace_back(name, l);
  return r;
}

std::vector<std::string> attach_memel(Module& root, const MemelOptions& opts,
                                      const std::vector<std::string>& paper_targets) {
  // No targets passed: the model's own placement (Module::paper_memel_targets).
  const std::vector<std::string> paper = paper_targets.empty() ? root.paper_memel_targets() : paper_targets;
  std::vector<std::string> targets;
  std::vector<bool> from_paper;  // per target: it came from the "paper" placement
  for (const std::string& t : opts.at) {
    if (t == "paper") {
      MEMEL_CHECK(!paper.empty(), "[memel] \"at\": \"paper\" but this model (", root.type_name(),
                  ") has no published placement; list module names instead");
      targets.insert(targets.end(), paper.begin(), paper.end());
      from_paper.insert(from_paper.end(), paper.size(), true);
    } else {
      targets.push_back(t);
      from_paper.push_back(false);
    }
  }
  MEMEL_CHECK(!targets.empty(), "[memel] \"at\" names no insertion point");
  // A target given twice would wrap one module twice ("child 'memel' registered twice").
  for (size_t i = 0; i < targets.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      MEMEL_CHECK(targets[i] != targets[j], "[memel] memel.at lists '", targets[i], "' twice",
                  from_paper[i] || from_paper[j] ? " (\"paper\" includes it)" : "");
  std::vector<std::string> names;
  for (const std::string& t : targets) {
    const size_t colon = t.find(':');
    const std::string name = colon == std::string::npos
                                 ? (t.empty() ? "memel" : t + ".memel")
                                 : t.substr(0, colon) + (colon ? "." : "") + "memel_" + t.substr(colon + 1);
    // Attached by an earlier call (e.g. memel.at, then memel.monitor_at).
    for (auto& [existing, layer] : memel_layers(root))
      MEMEL_CHECK(existing != name, "[memel] '", t, "' already has a memel layer (", name,
                  "); a target may be listed only once across memel.at and memel.monitor_at");
    root.wrap(t, std::make_shared<MemelLayer>(opts));
    names.push_back(name);
  }
  return names;
}

void set_memel_mask(const Module& root, const Tensor& mask) {
  for (auto& [name, layer] : memel_layers(root)) layer->set_mask(mask);
}

namespace {
MemelCrossRank& cross_rank_slot() {
  static MemelCrossRank r;
  return r;
}
}  // namespace

void set_memel_cross_rank(MemelCrossRank r) { cross_rank_slot() = std::move(r); }
const MemelCrossRank& memel_cross_rank() { return cross_rank_slot(); }

}  // namespace memel
