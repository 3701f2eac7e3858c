#include "layers/convgru.h"

namespace memel {

ConvGRUCell::ConvGRUCell(const ConvGRUOptions& o) : Module("ConvGRUCell"), opt_(o) {
  MEMEL_CHECK(o.hidden_channels > 0, "[ConvGRUCell] hidden_channels must be positive, got ", o.hidden_channels);
  MEMEL_CHECK(o.input_channels >= 0, "[ConvGRUCell] input_channels must be >= 0 (0 = no input), got ",
              o.input_channels);
  MEMEL_CHECK(o.h2h_kernel.h % 2 == 1 && o.h2h_kernel.w % 2 == 1, "[ConvGRUCell] h2h_kernel must be odd, got ",
              o.h2h_kernel.str());
  MEMEL_CHECK(o.h2h_dilation.h > 0 && o.h2h_dilation.w > 0, "[ConvGRUCell] h2h_dilation must be positive, got ",
              o.h2h_dilation.str());
  MEMEL_CHECK(o.activation == "leaky" || o.activation == "tanh", "[ConvGRUCell] activation must be \"leaky\" or "
              "\"tanh\", got \"", o.activation, "\"");
  const int64_t C = o.hidden_channels;
  if (o.input_channels > 0) {
    i2h_ = register_module("i2h", std::make_shared<Conv2d>(o.input_channels, 3 * C, o.i2h_kernel,
                                                           ConvArgs()
                                                               .with_stride(o.i2h_stride)
                                                               .with_padding(o.i2h_padding)
                                                               .with_dilation(o.i2h_dilation)));
  }
  const Size2 pad(o.h2h_dilation.h * (o.h2h_kernel.h - 1) / 2, o.h2h_dilation.w * (o.h2h_kernel.w - 1) / 2);
  h2h_ = register_module("h2h", std::make_shared<Conv2d>(
                                    C, 3 * C, o.h2h_kernel, ConvArgs().with_padding(pad).with_dilation(o.h2h_dilation)));
  declare_tap("candidate");
}

Size2 ConvGRUCell::state_size(Size2 in) const {
  if (!has_input()) return in;
  auto out = [](int64_t n, int k, int s, int p, int d) { return (n + 2 * p - d * (k - 1) - 1) / s + 1; };
  return Size2(int(out(in.h, opt_.i2h_kernel.h, opt_.i2h_stride.h, opt_.i2h_padding.h, opt_.i2h_dilation.h)),
               int(out(in.w, opt_.i2h_kernel.w, opt_.i2h_stride.w, opt_.i2h_padding.w, opt_.i2h_dilation.w)));
}

Tensor ConvGRUCell::step_from_gates(const Tensor& ig, const Tensor& h_in, Tensor* h2h_kernel) {
  const int64_t C = opt_.hidden_channels;
  Tensor h = h_in;
  if (!h.defined()) {
    MEMEL_CHECK(ig.defined(), "[ConvGRUCell] a step needs an input or a state");
    h = Tensor::zeros({ig.size(0), C, ig.size(2), ig.size(3)}, ig.dtype(), ig.device());
  }
  Tensor hg;  // (B, 3C, H, W)
  if (h2h_kernel) {
    // Over a sequence: h2h's kernel prepared at the first step (Winograd's transform, made
    // once) and used for every step.
    if (!h2h_kernel->defined()) *h2h_kernel = h2h_->prepare(h.size(2), h.size(3));
    hg = h2h_->apply_prepared(h, *h2h_kernel);
  } else {
    hg = (*h2h_)(h);
  }
  MEMEL_CHECK(!ig.defined() || hg.shape() == ig.shape(), "[ConvGRUCell] state gates ", shape_str(hg.shape()),
              " do not match input gates ", shape_str(ig.shape()), " (state of the wrong size?)");
  Tensor cand = gru_candidate(ig, hg, opt_.activation == "tanh", opt_.leaky_slope);
  cand = tap("candidate", cand);  // (B, C, H, W)
  return gru_update(ig, hg, cand, h);  // (1 - z) * cand + z * h
}

Tensor ConvGRUCell::step(const Tensor& x, const Tensor& h) {
  Tensor ig;
  if (x.defined()) {
    MEMEL_CHECK(has_input(), "[ConvGRUCell] this cell has no input (input_channels = 0) but got one of shape ",
                shape_str(x.shape()));
    MEMEL_CHECK(x.dim() == 4 && x.size(1) == opt_.input_channels, "[ConvGRUCell] step input must be (B, ",
                opt_.input_channels, ", H, W), got ", shape_str(x.shape()));
    ig = (*i2h_)(x);
  } else {
    MEMEL_CHECK(h.defined(), "[ConvGRUCell] a step needs an input or a state");
  }
  if (h.defined())
    MEMEL_CHECK(h.dim() == 4 && h.size(1) == opt_.hidden_channels, "[ConvGRUCell] state must be (B, ",
                opt_.hidden_channels, ", H, W), got ", shape_str(h.shape()));
  return step_from_gates(ig, h, nullptr);
}

Tensor ConvGRUCell::forward_sequence(const Tensor& x, const Tensor& h0) {
  MEMEL_CHECK(has_input(), "[ConvGRUCell] forward_sequence on a cell without input; use unroll(h0, steps)");
  MEMEL_CHECK(x.dim() == 5 && x.size(2) == opt_.input_channels, "[ConvGRUCell] sequence input must be (B, T, ",
              opt_.input_channels, ", H, W), got ", shape_str(x.shape()));
  const int64_t B = x.size(0), T = x.size(1);
  MEMEL_CHECK(T > 0, "[ConvGRUCell] empty sequence ", shape_str(x.shape()));
  if (h0.defined())
    MEMEL_CHECK(h0.dim() == 4 && h0.size(0) == B && h0.size(1) == opt_.hidden_channels,
                "[ConvGRUCell] initial state must be (", B, ", ", opt_.hidden_channels, ", H, W), got ",
                shape_str(h0.shape()));
  Tensor h2h_kernel;
  // All input gates at once: (B*T, Cin, H, W) -> (B*T, 3C, H', W') -> (B, T, 3C, H', W')
  Tensor g = (*i2h_)(reshape(x, {B * T, x.size(2), x.size(3), x.size(4)}));
  std::vector<Tensor> gs = unbind(reshape(g, {B, T, g.size(1), g.size(2), g.size(3)}), 1);
  std::vector<Tensor> hs;
  hs.reserve(size_t(T));
  Tensor h = h0;
  for (int64_t t = 0; t < T; ++t) {
    h = step_from_gates(gs[size_t(t)], h, &h2h_kernel);
    hs.push_back(h);
  }
  return stack(hs, 1);  // (B, T, C, H', W')
}

Tensor ConvGRUCell::unroll(const Tensor& h0, int64_t steps) {
  MEMEL_CHECK(h0.defined() && h0.dim() == 4 && h0.size(1) == opt_.hidden_channels,
              "[ConvGRUCell] unroll needs a state (B, ", opt_.hidden_channels, ", H, W), got ",
              h0.defined() ? shape_str(h0.shape()) : std::string("none"));
  MEMEL_CHECK(steps > 0, "[ConvGRUCell] unroll steps must be positive, got ", steps);
  Tensor h2h_kernel;
  std::vector<Tensor> hs;
  hs.reserve(size_t(steps));
  Tensor h = h0;
  for (int64_t t = 0; t < steps; ++t) {
    h = step_from_gates(Tensor(), h, &h2h_kernel);
    hs.push_back(h);
  }
  return stack(hs, 1);
}

Tensor ConvGRUCell::forward(const Tensor& x) { return forward_sequence(x); }

std::string ConvGRUCell::extra_repr() const {
  return str_cat(opt_.input_channels, ", ", opt_.hidden_channels, ", i2h_kernel=", opt_.i2h_kernel.str(),
                 ", i2h_stride=", opt_.i2h_stride.str(), ", i2h_padding=", opt_.i2h_padding.str(),
                 ", h2h_kernel=", opt_.h2h_kernel.str(), ", h2h_dilation=", opt_.h2h_dilation.str(),
                 ", activation=", opt_.activation);
}

}  // namespace memel
