#include "layers/pool.h"

#include <vector>

namespace memel {

namespace {

void check_pool(const char* layer, Size2 k, Size2 s, Size2 p) {
  MEMEL_CHECK(k.h > 0 && k.w > 0, "[", layer, "] kernel_size must be positive, got ", k.str());
  MEMEL_CHECK(s.h > 0 && s.w > 0, "[", layer, "] stride must be positive, got ", s.str());
  MEMEL_CHECK(p.h >= 0 && p.w >= 0 && 2 * p.h <= k.h && 2 * p.w <= k.w, "[", layer, "] padding ", p.str(),
              " must be non-negative and at most half the kernel ", k.str());
}

void check_input(const char* layer, const Tensor& x) {
  MEMEL_CHECK(x.dim() == 4, "[", layer, "] expected input (N, C, H, W), got ", shape_str(x.shape()));
}

Size2 default_stride(Size2 stride, Size2 kernel) { return stride == Size2(0) ? kernel : stride; }

}  // namespace

MaxPool2d::MaxPool2d(Size2 kernel_size, Size2 stride, Size2 padding)
    : Module("MaxPool2d"), kernel_(kernel_size), stride_(default_stride(stride, kernel_size)), padding_(padding) {
  check_pool("MaxPool2d", kernel_, stride_, padding_);
}

Tensor MaxPool2d::forward(const Tensor& x) {
  check_input("MaxPool2d", x);
  return max_pool2d(x, kernel_.h, kernel_.w, stride_.h, stride_.w, padding_.h, padding_.w);
}

std::string MaxPool2d::extra_repr() const {
  return str_cat("kernel_size=", kernel_.str(), ", stride=", stride_.str(), ", padding=", padding_.str());
}

AvgPool2d::AvgPool2d(Size2 kernel_size, Size2 stride, Size2 padding, bool count_include_pad)
    : Module("AvgPool2d"),
      kernel_(kernel_size),
      stride_(default_stride(stride, kernel_size)),
      padding_(padding),
      count_pad_(count_include_pad) {
  check_pool("AvgPool2d", kernel_, stride_, padding_);
}

Tensor AvgPool2d::forward(const Tensor& x) {
  check_input("AvgPool2d", x);
  return avg_pool2d(x, kernel_.h, kernel_.w, stride_.h, stride_.w, padding_.h, padding_.w, count_pad_);
}

std::string AvgPool2d::extra_repr() const {
  std::string s = str_cat("kernel_size=", kernel_.str(), ", stride=", stride_.str(), ", padding=", padding_.str());
  if (!count_pad_) s += ", count_include_pad=False";
  return s;
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Size2 output_size) : Module("AdaptiveAvgPool2d"), out_(output_size) {
  MEMEL_CHECK(out_.h > 0 && out_.w > 0, "[AdaptiveAvgPool2d] output_size must be positive, got ", out_.str());
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  check_input("AdaptiveAvgPool2d", x);
  const int64_t H = x.shape()[2], W = x.shape()[3];
  MEMEL_CHECK(H > 0 && W > 0, "[AdaptiveAvgPool2d] empty spatial size in input ", shape_str(x.shape()));
  if (out_ == Size2(1)) return mean(x, {2, 3}, true);  // (N, C, 1, 1)
  if (H % out_.h == 0 && W % out_.w == 0) {
    const int kh = static_cast<int>(H / out_.h), kw = static_cast<int>(W / out_.w);
    return avg_pool2d(x, kh, kw, kh, kw);
  }
  // Uneven bins: one mean per output cell.
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < out_.h; ++i) {
    const int64_t h0 = i * H / out_.h, h1 = ((i + 1) * H + out_.h - 1) / out_.h;
    Tensor band = slice(x, 2, h0, h1);
    std::vector<Tensor> cells;
    for (int64_t j = 0; j < out_.w; ++j) {
      const int64_t w0 = j * W / out_.w, w1 = ((j + 1) * W + out_.w - 1) / out_.w;
      cells.push_back(mean(slice(band, 3, w0, w1), {2, 3}, true));  // (N, C, 1, 1)
    }
    rows.push_back(concat(cells, 3));  // (N, C, 1, ow)
  }
  return concat(rows, 2);  // (N, C, oh, ow)
}

std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + out_.str(); }

}  // namespace memel
