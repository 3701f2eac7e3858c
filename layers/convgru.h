#pragma once
// ConvGRU cell as in the HKO-7 benchmark code (Shi et al. 2017, nowcasting/operators/
// conv_rnn.py), gates in its order (reset, update, new):
//
//   [i_r, i_z, i_h] = split(i2h(x_t), 3)       i2h: conv, kernel/stride/pad/dilation from options
//   [s_r, s_z, s_h] = split(h2h(h_{t-1}), 3)   h2h: conv, stride 1, "same" padding d*(k-1)/2
//   r = sigmoid(i_r + s_r)                     reset gate
//   z = sigmoid(i_z + s_z)                     update gate
//   h_cand = act(i_h + r * s_h)                candidate state; act = leaky ReLU(0.2) or tanh
//   h_cand = tap("candidate", h_cand)          where a memel layer can sit
//   h_t = (1 - z) * h_cand + z * h_{t-1}
//
// Parameters (PyTorch-style names of a port with nn.Conv2d children): "i2h.weight"
// (3C, Cin, kh, kw), "i2h.bias" (3C), "h2h.weight" (3C, C, kh, kw), "h2h.bias" (3C).
// The initial state is zeros. A cell with input_channels = 0 has no i2h at all and runs
// on its state alone (the top cell of the HKO-7 forecaster): r = sigmoid(s_r), z =
// sigmoid(s_z), h_cand = act(r * s_h).
//
// Every time step passes through the same "candidate" tap, so one memel layer attached
// there ("path:candidate") is shared by all steps.
#include <string>

#include "layers/conv.h"
#include "layers/module.h"

namespace memel {

struct ConvGRUOptions {
  int64_t input_channels = 0;  // 0: no input-to-state convolution
  int64_t hidden_channels = 0;
  Size2 i2h_kernel{3}, i2h_stride{1}, i2h_padding{1}, i2h_dilation{1};
  Size2 h2h_kernel{5}, h2h_dilation{1};  // odd kernel; padding = dilation * (kernel - 1) / 2
  std::string activation = "leaky";      // "leaky" (leaky ReLU) or "tanh"
  double leaky_slope = 0.2;              // HKO-7's leaky ReLU slope
};

class ConvGRUCell : public Module {
 public:
  explicit ConvGRUCell(const ConvGRUOptions& o);

  // One step. x (B, Cin, H, W), or undefined for a cell without input; h (B, C, H', W'),
  // or undefined for the zero initial state (then x must be given). -> h_t (B, C, H', W').
  Tensor step(const Tensor& x, const Tensor& h);
  // A whole sequence: x (B, T, Cin, H, W) -> hidden states (B, T, C, H', W'); the last
  // step is the final state. h0 (B, C, H', W') or undefined (zeros). The input-to-state
  // convolution runs once over all B*T frames.
  Tensor forward_sequence(const Tensor& x, const Tensor& h0 = Tensor());
  // `steps` steps without input from h0 (B, C, H, W) -> (B, steps, C, H, W).
  Tensor unroll(const Tensor& h0, int64_t steps);
  // forward_sequence(x) with a zero initial state, then the output wrappers.
  Tensor forward(const Tensor& x) override;

  // State height/width for an input of the given size (the i2h output size).
  Size2 state_size(Size2 input_size) const;
  const ConvGRUOptions& options() const { return opt_; }
  bool has_input() const { return opt_.input_channels > 0; }
  std::string extra_repr() const override;

 private:
  // One step from precomputed input gates ig (B, 3C, H, W) or undefined.
  // h2h_kernel: null for a single step; over a sequence, the h2h kernel prepared at the
  // first step (layers/conv.h Conv2d::prepare) and reused.
  Tensor step_from_gates(const Tensor& ig, const Tensor& h, Tensor* h2h_kernel);

  ConvGRUOptions opt_;
  std::shared_ptr<Conv2d> i2h_, h2h_;
};

}  // namespace memel
