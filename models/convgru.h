#pragma once
// ConvGRU encoder-forecaster for precipitation nowcasting, as in the HKO-7 benchmark
// (Shi et al., "Deep Learning for Precipitation Nowcasting: A Benchmark and a New
// Model", NIPS 2017). Frames (B, T, C, H, W) in [0, 1], batch first.
//
// Encoder, level k = 1..L (L = rnn.size()):
//   stage k: conv (first_conv for k = 1, downsample[k-2] otherwise) + leaky ReLU,
//            run over all B*T frames at once
//   rnn k:   ConvGRU over the in_frames steps from a zero state; its last state is kept
// Forecaster, mirror order, k = L..1:
//   rnn k:   ConvGRU from the encoder's level-k state; the top cell (k = L) has no input
//            and unrolls out_frames steps on its state; the others take the stage above
//   stage k: deconv upsample[L-k] + leaky ReLU (k > 1); for k = 1: deconv last_deconv +
//            leaky, conv final_conv + leaky, conv 1x1 to the frame channels
//
// The "hko7" preset (480x480, 5 -> 20):
//   encoder conv(1->8, k7 s5 p1) -> ConvGRU 64 @96 -> conv(64->192, k5 s3 p1) -> ConvGRU 192 @32
//           -> conv(192->192, k3 s2 p1) -> ConvGRU 192 @16
//   forecaster ConvGRU 192 @16 -> deconv(192->192, k4 s2 p1) -> ConvGRU 192 @32
//           -> deconv(192->64, k5 s3 p1) -> ConvGRU 64 @96 -> deconv(64->8, k7 s5 p1)
//           -> conv(8->8, k3 p1) -> conv(8->1, k1)
// with ConvGRU i2h 3x3 (pad 1) and h2h 5x5, 5x5, 3x3 from the bottom level up, leaky
// ReLU 0.2 everywhere (HKO-7's CNN_ACT_TYPE and RNN_ACT_TYPE "leaky").
//
// Module names: "encoder.stage1.0.weight", "encoder.rnn1.i2h.weight", ...,
// "forecaster.rnn3.h2h.bias", "forecaster.stage1.4.weight" (stages are Sequential).
// Tap points: "encoder.rnnK:candidate", "forecaster.rnnK:candidate".
//
// JSON (every key optional; "preset" first fills the defaults from a named preset):
//   {"preset": "hko7", "in_frames": 5, "out_frames": 20, "frame_size": [480, 480],
//    "frame_channels": 1,
//    "first_conv":  {"channels": 8, "kernel": 7, "stride": 5, "padding": 1},
//    "downsample":  [{"channels": 192, "kernel": 5, "stride": 3, "padding": 1}, ...],
//    "rnn":         [{"channels": 64, "i2h_kernel": 3, "i2h_stride": 1, "i2h_padding": 1,
//                     "i2h_dilation": 1, "h2h_kernel": 5, "h2h_dilation": 1}, ...],
//    "upsample":    [{"channels": 192, "kernel": 4, "stride": 2, "padding": 1,
//                     "output_padding": 0}, ...],            (top level first)
//    "last_deconv": {"channels": 8, "kernel": 7, "stride": 5, "padding": 1},
//    "final_conv":  {"channels": 8, "kernel": 3, "stride": 1, "padding": 1},
//    "rnn_activation": "leaky" | "tanh", "cnn_activation": "leaky" | "relu" | "tanh",
//    "leaky_slope": 0.2}
// Kernel, stride, padding and dilation take an int or [h, w].
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layers/conv.h"
#include "layers/convgru.h"
#include "layers/module.h"

namespace memel {

// One convolution or transposed convolution of the encoder-forecaster.
struct NowcastConvSpec {
  int64_t channels = 0;  // output channels
  Size2 kernel{3}, stride{1}, padding{0}, output_padding{0};
};

// The recurrent cell of one level (hidden channels and kernels).
struct NowcastRnnSpec {
  int64_t channels = 0;
  Size2 i2h_kernel{3}, i2h_stride{1}, i2h_padding{1}, i2h_dilation{1};
  Size2 h2h_kernel{5}, h2h_dilation{1};
};

struct ConvGRUConfig {
  std::string name = "custom";
  int64_t in_frames = 5, out_frames = 20;
  Size2 frame_size{480};
  int64_t frame_channels = 1;
  NowcastConvSpec first_conv;
  std::vector<NowcastConvSpec> downsample;  // L - 1 entries, bottom level up
  std::vector<NowcastRnnSpec> rnn;          // L entries, bottom level up
  std::vector<NowcastConvSpec> upsample;    // L - 1 entries, top level first (forecaster order)
  NowcastConvSpec last_deconv, final_conv;
  std::string rnn_activation = "leaky", cnn_activation = "leaky";
  double leaky_slope = 0.2;

  // "hko7" (480x480, 5 -> 20), "convgru-w4" (240x240, 5 -> 20, same architecture),
  // "convgru-mmnist" (64x64, 10 -> 10, small), "convgru-radar" (96x96, 5 -> 10, small).
  static ConvGRUConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();
  static ConvGRUConfig from_json(const nlohmann::json& j, const std::string& where = "model");
  nlohmann::json to_json() const;
  // Checks counts and that the forecaster's sizes mirror the encoder's exactly (every
  // level and the output frame); the error lists the sizes it computed.
  void validate() const;
  // Feature-map size at each level, bottom up ({96, 32, 16} for hko7).
  std::vector<Size2> feature_sizes() const;
};

class EncoderForecaster : public Module {
 public:
  explicit EncoderForecaster(const ConvGRUConfig& cfg);
  // x (B, in_frames, C, H, W) -> prediction (B, out_frames, C, H, W)
  Tensor forward(const Tensor& x) override;
  // The encoder alone: the last state of every level, bottom up.
  std::vector<Tensor> encode(const Tensor& x);
  // The forecaster alone, from the encoder states.
  Tensor forecast(const std::vector<Tensor>& states);

  const ConvGRUConfig& config() const { return cfg_; }
  // The paper's placement (the free function paper_memel_targets(config()) below).
  std::vector<std::string> paper_memel_targets() const override;
  std::string extra_repr() const override;

 private:
  ConvGRUConfig cfg_;
  std::shared_ptr<Module> encoder_, forecaster_;
  std::vector<std::shared_ptr<Sequential>> enc_stages_, fc_stages_;  // index k-1 for level k
  std::vector<std::shared_ptr<ConvGRUCell>> enc_rnns_, fc_rnns_;
};

// The paper's memel placement ("at": "paper"): the candidate state of every cell,
// encoder bottom up then forecaster top down: "encoder.rnn1:candidate", ...,
// "forecaster.rnn1:candidate" (six points for the three-level models).
std::vector<std::string> paper_memel_targets(const ConvGRUConfig& cfg);
std::vector<std::string> paper_memel_targets(const EncoderForecaster& model);

}  // namespace memel
