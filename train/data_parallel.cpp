#include "train/data_parallel.h"

#include <cmath>

#include "autograd/ops.h"
#include "core/error.h"
#include "core/sample_shard.h"
#include "memel/layer.h"

namespace memel::train {

using Clock = std::chrono::steady_clock;

BatchShard BatchShard::of(int64_t global, int rank, int size) {
  MEMEL_CHECK(size >= 1 && rank >= 0 && rank < size, "[dist] rank ", rank, " of ", size);
  MEMEL_CHECK(global % size == 0, "[dist] train.batch_size ", global, " is the global batch: it must divide evenly over the ",
              size, " ranks");
  return {global, global / size * rank, global / size};
}

Example BatchShard::take(const Example& batch) const {
  if (local == global) return batch;
  Example out;
  for (const auto& [name, t] : batch)
    out[name] = t.defined() && t.dim() > 0 && t.shape()[0] == global ? slice(t, 0, start, start + local).contiguous_copy()
                                                                       : t;
  return out;
}

ScopedSampleShard::ScopedSampleShard(const BatchShard& s, bool active) : active_(active) {
  if (active_) set_sample_shard(SampleShard{s.global, s.start, s.local});
}
ScopedSampleShard::~ScopedSampleShard() {
  if (active_) set_sample_shard(SampleShard{});
}

// --- gradients ----------------------------------------------------------------------------

GradSync::GradSync(const dist::Group& g, const std::vector<Tensor>& params, int64_t bucket_bytes)
    : g_(g), params_(params), queued_(params.size(), 0), cap_(bucket_bytes) {
  for (size_t i = 0; i < params_.size(); ++i) index_[params_[i].impl_ptr().get()] = i;
}

std::unique_ptr<autograd::OnGradReady> GradSync::arm() {
  std::fill(queued_.begin(), queued_.end(), 0);
  open_.clear();
  open_bytes_ = 0;
  buckets_.clear();
  if (g_.size() == 1) return nullptr;
  return std::make_unique<autograd::OnGradReady>([this](const Tensor& leaf) { on_ready(leaf); });
}

void GradSync::on_ready(const Tensor& leaf) {
  for (Bucket& b : buckets_) b.pending.progress();  // MPI moves started sums on inside its calls
  auto it = index_.find(leaf.impl_ptr().get());
  if (it == index_.end() || queued_[it->second]) return;
  const Tensor gr = params_[it->second].grad();
  if (!gr.defined()) return;
  // A bucket holds one dtype.
  if (!open_.empty() && params_[open_.front()].grad().dtype() != gr.dtype()) launch();
  queued_[it->second] = 1;
  open_.push_back(it->second);
  open_bytes_ += gr.numel() * int64_t(dtype_size(gr.dtype()));
  if (open_bytes_ >= cap_) launch();
}

void GradSync::launch() {
  if (open_.empty()) return;
  Bucket b;
  b.params = std::move(open_);
  open_.clear();
  open_bytes_ = 0;
  int64_t n = 0;
  for (size_t i : b.params) n += params_[i].grad().numel();
  b.buf = Tensor::empty({n}, params_[b.params.front()].grad().dtype());
  int64_t at = 0;
  for (size_t i : b.params) {
    const Tensor gr = params_[i].grad();
    b.buf.as_strided(gr.shape(), contiguous_strides(gr.shape()), at).copy_from(gr);
    at += gr.numel();
  }
  b.pending = g_.start_allreduce_sum(b.buf);
  buckets_.push_back(std::move(b));
}

void GradSync::finish() {
  if (g_.size() == 1) return;
  // Parameters the armed backward did not report (a gradient from an earlier
  // micro-batch only), in parameter order: the same on every rank.
  for (size_t i = 0; i < params_.size(); ++i)
    if (!queued_[i] && params_[i].grad().defined()) {
      queued_[i] = 1;
      open_.push_back(i);
    }
  launch();
  const auto t0 = Clock::now();
  for (Bucket& b : buckets_) b.pending.wait();
  comm_ms_ += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const double inv = 1.0 / double(g_.size());
  for (Bucket& b : buckets_) {
    int64_t at = 0;
    for (size_t i : b.params) {
      Tensor gr = params_[i].grad();
      gr.copy_from(mul(b.buf.as_strided(gr.shape(), contiguous_strides(gr.shape()), at), inv));
      at += gr.numel();
    }
  }
  buckets_last_ = int64_t(buckets_.size());
  buckets_.clear();
}

double GradSync::mean(double v) const {
  if (g_.size() == 1) return v;
  std::vector<double> x{v};
  g_.allreduce_sum(x);
  return x[0] / double(g_.size());
}

double GradSync::take_comm_ms() {
  const double v = comm_ms_;
  comm_ms_ = 0;
  return v;
}

// --- memel statistics ---------------------------------------------------------------------

void install_memel_cross_rank(const dist::Group& g) {
  if (g.size() == 1) {
    set_memel_cross_rank({});
    return;
  }
  const dist::Group* gp = &g;
  MemelCrossRank r;
  r.reduce_moments = [gp](int64_t C, double* cnt, double* mean, double* var) {
    // Every rank's (count, mean, biased variance), merged in rank order with the exact
    // pairwise rule (Lemma 3.2 with no history weighting): the same bits on every rank.
    std::vector<double> mine(size_t(3 * C));
    for (int64_t c = 0; c < C; ++c) {
      mine[size_t(c)] = cnt[c];
      mine[size_t(C + c)] = mean[c];
      mine[size_t(2 * C + c)] = var[c];
    }
    const std::vector<double> all = gp->allgather(mine);
    for (int64_t c = 0; c < C; ++c) {
      double n = 0, mu = 0, m2 = 0;  // m2: centred sum of squares
      for (int r = 0; r < gp->size(); ++r) {
        const double* p = all.data() + size_t(r) * size_t(3 * C);
        const double nb = p[c];
        if (nb <= 0) continue;
        const double mb = p[C + c], m2b = p[2 * C + c] * nb;
        const double tot = n + nb, d = mb - mu;
        mu += d * (nb / tot);
        m2 += m2b + d * d * (n * nb / tot);
        n = tot;
      }
      cnt[c] = n;
      mean[c] = n > 0 ? mu : 0.0;
      var[c] = n > 0 ? m2 / n : 0.0;
    }
  };
  r.gather_scores = [gp](const std::vector<double>& local, int64_t& first) {
    first = int64_t(local.size()) * gp->rank();
    return gp->allgather(local);
  };
  set_memel_cross_rank(std::move(r));
}

namespace {
const char* const kWindowKeys[] = {"inhibited", "ms_sum", "ms_n", "ms_hist"};
}

void MemelWindowSync::sync(const Module& root, const dist::Group& g) {
  if (g.size() == 1) return;
  for (auto& [name, layer] : memel_layers(root)) {
    const StateDict sd = layer->state_dict();
    for (const char* k : kWindowKeys) {
      auto it = sd.find(k);
      if (it == sd.end() || !it->second.defined() || it->second.numel() == 0) continue;
      Tensor t = it->second;
      std::vector<double> now = t.to_vector();
      std::vector<double>& base = synced_[name + "." + k];
      if (base.size() != now.size()) base.assign(now.size(), 0.0);
      std::vector<double> delta(now.size());
      for (size_t i = 0; i < now.size(); ++i) delta[i] = now[i] - base[i];
      g.allreduce_sum(delta);
      for (size_t i = 0; i < now.size(); ++i) now[i] = base[i] + delta[i];
      t.copy_from(Tensor::from_vector(now, t.shape()));
      base = now;
    }
  }
}

void MemelWindowSync::mark(const Module& root) {
  for (auto& [name, layer] : memel_layers(root)) {
    const StateDict sd = layer->state_dict();
    for (const char* k : kWindowKeys) {
      auto it = sd.find(k);
      if (it == sd.end() || !it->second.defined()) continue;
      synced_[name + "." + k] = it->second.to_vector();
    }
  }
}

void broadcast_module(Module& m, const dist::Group& g) {
  if (g.size() == 1) return;
  for (auto& [name, t] : m.state_dict()) {
    if (!t.defined() || t.numel() == 0) continue;
    Tensor x = t;
    g.broadcast(x, 0);
  }
}

}  // namespace memel::train
