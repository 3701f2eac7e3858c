#pragma once
// Pooling layers on (N, C, H, W), as their torch.nn namesakes. A stride of 0 (the
// default) means "equal to the kernel", PyTorch's default.
#include "layers/conv.h"

namespace memel {

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

 private:
  Size2 kernel_, stride_, padding_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0, bool count_include_pad = true);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

 private:
  Size2 kernel_, stride_, padding_;
  bool count_pad_;
};

// Average pooling to a fixed output size; (1, 1) is global average pooling. Bins as
// PyTorch: rows [floor(i*H/oh), ceil((i+1)*H/oh)).
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size = 1);
  Tensor forward(const Tensor& x) override;  // (N, C, H, W) -> (N, C, oh, ow)
  std::string extra_repr() const override;

 private:
  Size2 out_;
};

}  // namespace memel
