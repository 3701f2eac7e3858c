#include "layers/conv.h"

#include <cmath>

#include "layers/init.h"
#include "layers/layer_util.h"

namespace memel {

std::string Size2::str() const { return str_cat("(", h, ", ", w, ")"); }

namespace {

void check_args(const char* layer, int64_t in, int64_t out, Size2 k, const ConvArgs& a, bool transposed) {
  MEMEL_CHECK(in > 0 && out > 0, "[", layer, "] channel counts must be positive, got in_channels=", in,
              " out_channels=", out);
  MEMEL_CHECK(k.h > 0 && k.w > 0, "[", layer, "] kernel_size must be positive, got ", k.str());
  MEMEL_CHECK(a.stride.h > 0 && a.stride.w > 0, "[", layer, "] stride must be positive, got ", a.stride.str());
  MEMEL_CHECK(a.dilation.h > 0 && a.dilation.w > 0, "[", layer, "] dilation must be positive, got ",
              a.dilation.str());
  MEMEL_CHECK(a.padding.h >= 0 && a.padding.w >= 0, "[", layer, "] padding must be non-negative, got ",
              a.padding.str());
  MEMEL_CHECK(a.groups > 0, "[", layer, "] groups must be positive, got ", a.groups);
  MEMEL_CHECK(in % a.groups == 0, "[", layer, "] in_channels=", in, " is not divisible by groups=", a.groups);
  MEMEL_CHECK(out % a.groups == 0, "[", layer, "] out_channels=", out, " is not divisible by groups=", a.groups);
  if (transposed) {
    MEMEL_CHECK(a.output_padding.h >= 0 && a.output_padding.w >= 0 &&
                    a.output_padding.h < std::max(a.stride.h, a.dilation.h) &&
                    a.output_padding.w < std::max(a.stride.w, a.dilation.w),
                "[", layer, "] output_padding ", a.output_padding.str(),
                " must be non-negative and smaller than stride or dilation");
  } else {
    MEMEL_CHECK(a.output_padding == Size2(0), "[", layer, "] output_padding applies to ConvTranspose2d only");
  }
}

Conv2dOptions op_options(const ConvArgs& a) {
  Conv2dOptions o;
  o.stride_h = a.stride.h;
  o.stride_w = a.stride.w;
  o.pad_h = a.padding.h;
  o.pad_w = a.padding.w;
  o.dil_h = a.dilation.h;
  o.dil_w = a.dilation.w;
  o.groups = a.groups;
  o.out_pad_h = a.output_padding.h;
  o.out_pad_w = a.output_padding.w;
  return o;
}

void default_init(const Tensor& weight, const Tensor& bias) {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double b = init::default_bias_bound(weight);
    init::uniform_(bias, -b, b);
  }
}

// PyTorch's printout: "3, 16, kernel_size=(3, 3), stride=(1, 1)" and the non-default rest.
std::string conv_repr(int64_t in, int64_t out, Size2 k, const ConvArgs& a, bool transposed) {
  std::string s = str_cat(in, ", ", out, ", kernel_size=", k.str(), ", stride=", a.stride.str());
  if (a.padding != Size2(0)) s += ", padding=" + a.padding.str();
  if (a.dilation != Size2(1)) s += ", dilation=" + a.dilation.str();
  if (transposed && a.output_padding != Size2(0)) s += ", output_padding=" + a.output_padding.str();
  if (a.groups != 1) s += str_cat(", groups=", a.groups);
  if (!a.bias) s += ", bias=False";
  return s;
}

void check_input(const char* layer, const Tensor& x, int64_t in) {
  MEMEL_CHECK(x.dim() == 4 && x.shape()[1] == in, "[", layer, "] expected input (N, ", in, ", H, W), got ",
              shape_str(x.shape()));
}

}  // namespace

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, const ConvArgs& args)
    : Module("Conv2d"), in_(in_channels), out_(out_channels), kernel_(kernel_size), args_(args) {
  check_args("Conv2d", in_, out_, kernel_, args_, false);
  weight_ = register_parameter("weight", Tensor::empty({out_, in_ / args_.groups, kernel_.h, kernel_.w}));
  if (args_.bias) bias_ = register_parameter("bias", Tensor::empty({out_}));
  reset_parameters();
}

void Conv2d::reset_parameters() { default_init(weight_, bias_); }

Tensor Conv2d::forward(const Tensor& x) {
  check_input("Conv2d", x, in_);
  return conv2d(x, weight_, bias_, op_options(args_));
}

Tensor Conv2d::prepare(int64_t H, int64_t W) const { return conv2d_prepare(weight_, op_options(args_), H, W); }

Tensor Conv2d::apply_prepared(const Tensor& x, const Tensor& prepared) {
  check_input("Conv2d", x, in_);
  return output(conv2d(x, weight_, bias_, op_options(args_), prepared));
}

std::string Conv2d::extra_repr() const { return conv_repr(in_, out_, kernel_, args_, false); }

ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, const ConvArgs& args)
    : Module("ConvTranspose2d"), in_(in_channels), out_(out_channels), kernel_(kernel_size), args_(args) {
  check_args("ConvTranspose2d", in_, out_, kernel_, args_, true);
  weight_ = register_parameter("weight", Tensor::empty({in_, out_ / args_.groups, kernel_.h, kernel_.w}));
  if (args_.bias) bias_ = register_parameter("bias", Tensor::empty({out_}));
  reset_parameters();
}

void ConvTranspose2d::reset_parameters() { default_init(weight_, bias_); }

Tensor ConvTranspose2d::forward(const Tensor& x) {
  check_input("ConvTranspose2d", x, in_);
  return conv_transpose2d(x, weight_, bias_, op_options(args_));
}

std::string ConvTranspose2d::extra_repr() const { return conv_repr(in_, out_, kernel_, args_, true); }

}  // namespace memel
