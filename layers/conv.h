#pragma once
// Conv2d and ConvTranspose2d, as their torch.nn namesakes, on (N, C, H, W) inputs.
//
//   Conv2d conv(3, 16, 3, ConvArgs().with_padding(1));           // 3x3, same size
//   ConvTranspose2d up(16, 8, 4, ConvArgs().with_stride(2).with_padding(1));  // doubles H, W
//
// Parameters: Conv2d "weight" (out, in/groups, kh, kw); ConvTranspose2d "weight"
// (in, out/groups, kh, kw); "bias" (out). Default init as PyTorch: weight
// kaiming_uniform(a = sqrt 5) and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with fan_in
// = size(1) * kh * kw of the weight as laid out (so out/groups * kh * kw for the
// transposed convolution).
#include <string>

#include "layers/module.h"

namespace memel {

// A (height, width) pair; an int gives both.
struct Size2 {
  int h = 0, w = 0;
  Size2(int both) : h(both), w(both) {}  // NOLINT: implicit on purpose
  Size2(int h_, int w_) : h(h_), w(w_) {}
  bool operator==(const Size2& o) const { return h == o.h && w == o.w; }
  bool operator!=(const Size2& o) const { return !(*this == o); }
  std::string str() const;  // "(h, w)"
};

// Options shared by both convolutions (output_padding: transposed only).
struct ConvArgs {
  Size2 stride{1}, padding{0}, dilation{1}, output_padding{0};
  int groups = 1;
  bool bias = true;
  ConvArgs& with_stride(Size2 s) { stride = s; return *this; }
  ConvArgs& with_padding(Size2 p) { padding = p; return *this; }
  ConvArgs& with_dilation(Size2 d) { dilation = d; return *this; }
  ConvArgs& with_output_padding(Size2 p) { output_padding = p; return *this; }
  ConvArgs& with_groups(int g) { groups = g; return *this; }
  ConvArgs& with_bias(bool b) { bias = b; return *this; }
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, const ConvArgs& args = {});
  Tensor forward(const Tensor& x) override;  // (N, in, H, W) -> (N, out, OH, OW)
  // The kernel prepared for many inputs of H x W (conv2d_prepare, autograd/ops.h), and the
  // convolution with it (output wrappers applied, as operator()).
  Tensor prepare(int64_t H, int64_t W) const;
  Tensor apply_prepared(const Tensor& x, const Tensor& prepared);
  std::string extra_repr() const override;
  void reset_parameters();

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const ConvArgs& args() const { return args_; }

 private:
  int64_t in_, out_;
  Size2 kernel_;
  ConvArgs args_;
  Tensor weight_, bias_;
};

class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, const ConvArgs& args = {});
  // (N, in, H, W) -> (N, out, (H-1)*stride - 2*pad + dil*(k-1) + output_padding + 1, ...)
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_parameters();

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const ConvArgs& args() const { return args_; }

 private:
  int64_t in_, out_;
  Size2 kernel_;
  ConvArgs args_;
  Tensor weight_, bias_;
};

}  // namespace memel
