#pragma once
// The memel layer (../shared/design/memel-method.md): sits on a module output or a tap
// point, tracks per-neuron running statistics, scores every element with the
// Monosemantic Scale
//     phi(z) = (z - mu_i)^2 / (v_i + eps * mean_over_neurons(v))
// selects elements to inhibit and applies reverse deactivation as an autograd node:
// forward writes into each selected element the mean its score used (the statistics before
// this batch by default, the paper's Algorithms 1-2; after it with score_after_update),
// backward multiplies their incoming gradient by -delta. Everything else passes through
// unchanged. Options and presets: memel/options.h, docs/fidelity.md.
//
// Input (B, ...) with the batch first. Neurons: `element` = every index of the
// per-sample shape; `channel` = one axis (channel_axis, default last) pooled over the
// batch and all other positions. A padding mask set with set_mask() (shape (B, d1, ...),
// a prefix of the input shape; nonzero = valid) keeps padded positions out of the
// statistics, the scores and the selection.
//
// State (buffers, saved in checkpoints): count, mean, var (neuron shape), batches (the
// number of training batches seen), inhibited (per neuron), and the MS accumulators of
// the current dump window: ms_sum, ms_n (per neuron) and ms_hist (log-spaced bins, the
// first bin counts MS below hist_min, the last MS at or above hist_max).
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "layers/module.h"
#include "memel/options.h"
#include "memel/stats.h"
#include "tensor/ms_hist.h"

namespace memel {

class MemelLayer : public Module {
 public:
  explicit MemelLayer(MemelOptions opts);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  const MemelOptions& options() const { return opts_; }
  // Padding mask for the next forward calls (undefined = no mask).
  void set_mask(const Tensor& mask) { mask_ = mask; }

  bool initialized() const { return stats_.defined(); }
  const Shape& neuron_shape() const { return neuron_shape_; }
  NeuronStats stats() const { return stats_; }
  int64_t batches_seen() const;
  // Flat (batch-major) indices selected in the last forward (an eval forward that is the
  // identity clears them, and last_scores()).
  const std::vector<int64_t>& last_selected() const { return last_selected_; }
  // MS of every element in the last forward (-1 where masked), shape of the input.
  const Tensor& last_scores() const { return last_scores_; }
  // Clears the dump window (ms_sum, ms_n, ms_hist).
  void reset_window();
  // Histogram bin edges (hist_bins - 1 inner edges, log-spaced from hist_min to hist_max).
  const std::vector<double>& hist_edges() const { return bins_.edges(); }

  // Shapes the (still empty) state for `neuron_shape`, e.g. before loading a checkpoint.
  void load_neuron_shape(const Shape& neuron_shape, DType dtype) { materialize(neuron_shape, dtype); }

  // The decorrelation penalty of the last training forward (undefined when the
  // regularizer is off); memel_regularization() sums them over a model.
  const Tensor& penalty() const { return penalty_; }
  // Keep the last input (detached) for inspection tools.
  void set_capture(bool on) { capture_ = on; }
  const Tensor& last_input() const { return last_input_; }
  // Replaces the options (e.g. the validation tool switches modes); validated.
  void set_options(const MemelOptions& o);

  // Scores x against the current statistics without changing anything (used by the
  // validation tool): returns phi of the same shape.
  Tensor score(const Tensor& x) const;

 private:
  void materialize(const Shape& neuron_shape, DType dtype);
  void set_state(const std::string& name, Tensor t);
  // The tensor statistics and scores are computed from: x, or x in float32 (stats_dtype).
  Tensor work_input(const Tensor& x) const;

  MemelOptions opts_;
  MsHistBins bins_;
  Tensor bcount_, bmean_, bvar_;  // the last training batch's moments per neuron (F64, on the device)
  Shape neuron_shape_;
  NeuronStats stats_;
  Tensor batches_, inhibited_, ms_sum_, ms_n_, ms_hist_;
  Tensor mask_;
  std::vector<int64_t> last_selected_;
  Tensor last_scores_;
  Tensor penalty_;
  bool capture_ = false;
  Tensor last_input_;
};

// lambda * ||Zn^T Zn - I||_F^2 where Z is x as (positions, channels) with channels on
// the last axis, and Zn its columns centred and scaled to unit norm (eps guards dead
// channels). Differentiable; composed from registered ops.
Tensor decorrelation_penalty(const Tensor& x, double lambda, double eps = 1e-5);
// Sum of the penalties of every memel layer's last training forward (a zero scalar
// when there are none). Add it to the loss.
Tensor memel_regularization(const Module& root);

// Applies reverse deactivation: y = x except y[idx] = values[j] for idx = indices[j];
// backward: grad_x = grad_y except grad_x[idx] = -delta * grad_y[idx].
// Indices are flat, into the contiguous layout of x.
Tensor reverse_deactivate(const Tensor& x, const std::vector<int64_t>& indices, const Tensor& values, double delta);

// Brings a layer that has not seen data yet to the shapes of a checkpoint, so that
// load_state_dict can restore it before the first forward.
void prepare_memel_layers_for_load(Module& root, const StateDict& sd);

// All memel layers in a model, with their full names ("encoder.layer.4.memel").
std::vector<std::pair<std::string, std::shared_ptr<MemelLayer>>> memel_layers(const Module& root);

// Attaches one memel layer per target (module path or "path:point"). A "paper" entry
// expands to `paper_targets`, or when none are passed to root.paper_memel_targets() (the
// placement the model publishes: BERT, Swin, the ConvGRU, the small models). Returns the
// created layers' names.
std::vector<std::string> attach_memel(Module& root, const MemelOptions& opts,
                                      const std::vector<std::string>& paper_targets = {});

// Data-parallel runs (issue 24): how every memel layer combines its per-batch quantities
// across processes. Unset (the default), a layer sees only its own batch: one process.
// Set once by the trainer (train/data_parallel.h); both run collectives, so every rank's
// layers must call them in the same order.
struct MemelCrossRank {
  // Replaces this process's batch moments (per neuron: count, mean, biased variance; C
  // values each) with those of the global batch, before they are merged into the running
  // statistics (Lemma 3.2 across processes).
  std::function<void(int64_t C, double* count, double* mean, double* var_biased)> reduce_moments;
  // scope "batch": the scores of the global batch in one-process order; `first` is where
  // this process's scores begin in it.
  std::function<std::vector<double>(const std::vector<double>& local, int64_t& first)> gather_scores;
};
void set_memel_cross_rank(MemelCrossRank r);
const MemelCrossRank& memel_cross_rank();

// Sets the padding mask of every memel layer in the model.
void set_memel_mask(const Module& root, const Tensor& mask);

}  // namespace memel
