#include "layers/swin.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/function.h"
#include "core/thread_pool.h"
#include "layers/init.h"
#include "layers/layer_util.h"
#include "tensor/backend.h"

namespace memel {

MEMEL_REGISTER_OP("swin_window_attention");

// --- window helpers --------------------------------------------------------------------

Tensor window_partition(const Tensor& x, int64_t w) {
  MEMEL_CHECK(x.dim() == 4, "[window_partition] expected (B, H, W, C), got ", shape_str(x.shape()));
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  MEMEL_CHECK(w > 0 && H % w == 0 && W % w == 0, "[window_partition] H=", H, " and W=", W,
              " must be multiples of the window ", w);
  Tensor t = reshape(x, {B, H / w, w, W / w, w, C});
  t = permute(t, {0, 1, 3, 2, 4, 5});         // (B, H/w, W/w, w, w, C)
  return reshape(t, {B * (H / w) * (W / w), w * w, C});  // (BW, N, C)
}

Tensor window_reverse(const Tensor& windows, int64_t w, int64_t H, int64_t W) {
  MEMEL_CHECK(windows.dim() == 3 && windows.size(1) == w * w, "[window_reverse] expected (BW, ", w * w,
              ", C), got ", shape_str(windows.shape()));
  MEMEL_CHECK(H % w == 0 && W % w == 0, "[window_reverse] H=", H, " and W=", W, " must be multiples of the window ",
              w);
  const int64_t nw = (H / w) * (W / w), C = windows.size(2);
  MEMEL_CHECK(windows.size(0) % nw == 0, "[window_reverse] ", windows.size(0), " windows is not a multiple of ", nw,
              " windows per image");
  const int64_t B = windows.size(0) / nw;
  Tensor t = reshape(windows, {B, H / w, W / w, w, w, C});
  t = permute(t, {0, 1, 3, 2, 4, 5});  // (B, H/w, w, W/w, w, C)
  return reshape(t, {B, H, W, C});
}

namespace {

void check_window_args(const char* op, int64_t H, int64_t W, int64_t w, int64_t sh, int64_t sw) {
  MEMEL_CHECK(w > 0 && H % w == 0 && W % w == 0, "[", op, "] H=", H, " and W=", W,
              " must be multiples of the window ", w);
  MEMEL_CHECK(sh >= 0 && sh < H && sw >= 0 && sw < W, "[", op, "] shifts (", sh, ", ", sw,
              ") must be in [0, H) x [0, W)");
}

Tensor window_scatter_impl(const Tensor& windows, int64_t w, int64_t sh, int64_t sw, int64_t H, int64_t W);

Tensor window_gather_impl(const Tensor& x, int64_t w, int64_t sh, int64_t sw) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const Tensor xc = x.is_contiguous() ? x.detach() : x.contiguous_copy();
  Tensor out = Tensor::empty({B * (H / w) * (W / w), w * w, C}, x.dtype(), x.device());  // (BW, N, C)
  backend_for(x).window_gather(xc, WindowGeometry{B, H, W, C, w, sh, sw}, out);
  return autograd::record("swin_window_gather", out, {x}, [=](const autograd::TensorList& g) -> autograd::TensorList {
    return {window_scatter_impl(g[0], w, sh, sw, H, W)};
  });
}

Tensor window_scatter_impl(const Tensor& windows, int64_t w, int64_t sh, int64_t sw, int64_t H, int64_t W) {
  const int64_t C = windows.size(2), B = windows.size(0) / ((H / w) * (W / w));
  const Tensor wc = windows.is_contiguous() ? windows.detach() : windows.contiguous_copy();
  Tensor out = Tensor::empty({B, H, W, C}, windows.dtype(), windows.device());  // (B, H, W, C)
  backend_for(windows).window_scatter(wc, WindowGeometry{B, H, W, C, w, sh, sw}, out);
  return autograd::record("swin_window_scatter", out, {windows},
                          [=](const autograd::TensorList& g) -> autograd::TensorList {
                            return {window_gather_impl(g[0], w, sh, sw)};
                          });
}

}  // namespace

MEMEL_REGISTER_OP("swin_window_gather");
MEMEL_REGISTER_OP("swin_window_scatter");

Tensor swin_window_gather(const Tensor& x, int64_t w, int64_t sh, int64_t sw) {
  MEMEL_CHECK(x.defined() && x.dim() == 4, "[swin_window_gather] expected (B, H, W, C), got ",
              x.defined() ? shape_str(x.shape()) : "undefined");
  check_window_args("swin_window_gather", x.size(1), x.size(2), w, sh, sw);
  return window_gather_impl(x, w, sh, sw);
}

Tensor swin_window_scatter(const Tensor& windows, int64_t w, int64_t sh, int64_t sw, int64_t H, int64_t W) {
  check_window_args("swin_window_scatter", H, W, w, sh, sw);
  MEMEL_CHECK(windows.defined() && windows.dim() == 3 && windows.size(1) == w * w &&
                  windows.size(0) % ((H / w) * (W / w)) == 0,
              "[swin_window_scatter] expected windows (B * ", (H / w) * (W / w), ", ", w * w, ", C), got ",
              windows.defined() ? shape_str(windows.shape()) : "undefined");
  return window_scatter_impl(windows, w, sh, sw, H, W);
}

Tensor swin_relative_position_index(int64_t w) {
  MEMEL_CHECK(w > 0, "[swin_relative_position_index] window must be positive, got ", w);
  const int64_t N = w * w;
  std::vector<int64_t> idx(static_cast<size_t>(N * N));
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) {
      const int64_t dy = i / w - j / w, dx = i % w - j % w;
      idx[i * N + j] = (dy + w - 1) * (2 * w - 1) + (dx + w - 1);
    }
  return Tensor::from_vector(idx, {N, N});
}

Tensor swin_attention_mask(int64_t Hp, int64_t Wp, int64_t w, int64_t sh, int64_t sw, DType dtype,
                           double masked_value) {
  MEMEL_CHECK(w > 0 && Hp % w == 0 && Wp % w == 0, "[swin_attention_mask] padded map ", Hp, "x", Wp,
              " must be a multiple of the window ", w);
  MEMEL_CHECK(sh >= 0 && sh < w && sw >= 0 && sw < w, "[swin_attention_mask] shifts (", sh, ", ", sw,
              ") must be in [0, window ", w, ")");
  // Region of a row (column) of the shifted map: [0, H-w), [H-w, H-s), [H-s, H).
  auto region = [w](int64_t p, int64_t n, int64_t s) -> int64_t {
    if (s == 0) return 0;
    return p < n - w ? 0 : (p < n - s ? 1 : 2);
  };
  const int64_t gh = Hp / w, gw = Wp / w, N = w * w;
  std::vector<double> m(static_cast<size_t>(gh * gw * N * N));
  std::vector<int64_t> lab(static_cast<size_t>(N));
  for (int64_t a = 0; a < gh; ++a)
    for (int64_t b = 0; b < gw; ++b) {
      for (int64_t t = 0; t < N; ++t)
        lab[t] = 3 * region(a * w + t / w, Hp, sh) + region(b * w + t % w, Wp, sw);
      double* dst = m.data() + (a * gw + b) * N * N;
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) dst[i * N + j] = lab[i] == lab[j] ? 0.0 : masked_value;
    }
  return Tensor::from_vector(m, {gh * gw, N, N}).to_dtype(dtype);
}

Tensor drop_path(const Tensor& x, double p, bool training, Generator* gen) {
  MEMEL_CHECK(p >= 0.0 && p <= 1.0, "[drop_path] probability must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  MEMEL_CHECK(x.dim() >= 1, "[drop_path] expects a batch axis, got a scalar");
  Shape s(static_cast<size_t>(x.dim()), 1);
  s[0] = x.size(0);
  // dropout of ones: (u >= p) / (1 - p) per sample, from gen.
  Tensor keep = dropout(Tensor::ones(s, x.dtype(), x.device()), p, true, gen);  // (B, 1, ...)
  return mul(x, keep);
}

// --- fused window attention (CPU kernel; other devices take the op path) -------------

namespace {

// Fused window attention (Backend::window_attention): heads and scale are attributes.
struct WindowAttentionFn : autograd::Function<WindowAttentionFn> {
  static constexpr const char* kName = "swin_window_attention";

  static autograd::TensorList forward(autograd::FunctionCtx& ctx, const autograd::TensorList& in) {
    const int64_t heads = static_cast<int64_t>(ctx.scalars.at("heads"));
    const Tensor qkv = contiguous(in[0]), bias = contiguous(in[1]);
    const Tensor mask = in[2].defined() ? contiguous(in[2]) : Tensor();
    const int64_t BW = qkv.size(0), N = qkv.size(1), C = qkv.size(2) / 3;
    Tensor out = Tensor::empty({BW, N, C}, qkv.dtype(), qkv.device());
    Tensor probs = Tensor::empty({BW, heads, N, N}, qkv.dtype(), qkv.device());
    backend_for(qkv).window_attention(qkv, bias, mask, heads, ctx.scalars.at("scale"), out, probs);
    ctx.save_for_backward({qkv, probs});
    return {out};
  }

  static autograd::TensorList backward(autograd::FunctionCtx& ctx, const autograd::TensorList& g) {
    const Tensor& qkv = ctx.saved[0];
    const Tensor& probs = ctx.saved[1];
    Tensor gout = g[0].is_contiguous() ? g[0].detach() : g[0].contiguous_copy();
    Tensor gqkv = Tensor::empty(qkv.shape(), qkv.dtype(), qkv.device());
    Tensor gbias;
    if (ctx.needs_input_grad[1])
      gbias = Tensor::empty({probs.size(1), qkv.size(1), qkv.size(1)}, qkv.dtype(), qkv.device());  // (H, N, N)
    backend_for(qkv).window_attention_backward(qkv, probs, gout, static_cast<int64_t>(ctx.scalars.at("heads")),
                                               ctx.scalars.at("scale"), gqkv, gbias);
    return {gqkv, gbias, Tensor()};
  }
};

void check_wa_inputs(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads) {
  const char* op = "swin_window_attention";
  MEMEL_CHECK(qkv.defined() && qkv.dim() == 3 && qkv.size(2) % 3 == 0, "[", op,
              "] qkv must be (BW, N, 3C), got ", qkv.defined() ? shape_str(qkv.shape()) : "undefined");
  const int64_t BW = qkv.size(0), N = qkv.size(1), C = qkv.size(2) / 3;
  MEMEL_CHECK(heads > 0 && C % heads == 0, "[", op, "] ", C, " channels do not split into ", heads, " heads");
  MEMEL_CHECK(is_floating(qkv.dtype()), "[", op, "] expects a floating qkv, got ", dtype_name(qkv.dtype()));
  MEMEL_CHECK(bias.defined() && bias.shape() == Shape({heads, N, N}), "[", op, "] bias must be (", heads, ", ", N,
              ", ", N, "), got ", bias.defined() ? shape_str(bias.shape()) : "undefined");
  MEMEL_CHECK(bias.dtype() == qkv.dtype() && bias.device() == qkv.device(), "[", op,
              "] bias must have qkv's dtype and device");
  if (mask.defined()) {
    MEMEL_CHECK(mask.dim() == 3 && mask.size(1) == N && mask.size(2) == N && mask.size(0) > 0 &&
                    BW % mask.size(0) == 0,
                "[", op, "] mask must be (nW, ", N, ", ", N, ") with nW dividing ", BW, ", got ",
                shape_str(mask.shape()));
    MEMEL_CHECK(mask.dtype() == qkv.dtype() && mask.device() == qkv.device(), "[", op,
                "] mask must have qkv's dtype and device");
  }
}

Tensor window_attention_ops(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale,
                            double attn_drop, bool training, Generator* gen) {
  const int64_t BW = qkv.size(0), N = qkv.size(1), C = qkv.size(2) / 3, d = C / heads;
  Tensor t = permute(reshape(qkv, {BW, N, 3, heads, d}), {2, 0, 3, 1, 4});  // (3, BW, h, N, d)
  Tensor q = select(t, 0, 0), k = select(t, 0, 1), v = select(t, 0, 2);   // (BW, h, N, d)
  Tensor attn = matmul(mul(q, scale), transpose(k, -2, -1));              // (BW, h, N, N)
  attn = add(attn, bias);
  if (mask.defined()) {
    const int64_t nW = mask.size(0);
    attn = add(reshape(attn, {BW / nW, nW, heads, N, N}), reshape(mask, {1, nW, 1, N, N}));
    attn = reshape(attn, {BW, heads, N, N});
  }
  attn = softmax(attn, -1);
  attn = dropout(attn, attn_drop, training, gen);
  Tensor o = matmul(attn, v);                         // (BW, h, N, d)
  return reshape(transpose(o, 1, 2), {BW, N, C});     // (BW, N, C)
}

}  // namespace

Tensor swin_window_attention(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale) {
  check_wa_inputs(qkv, bias, mask, heads);
  return WindowAttentionFn::apply({qkv, bias, mask}, {{"heads", static_cast<double>(heads)}, {"scale", scale}})[0];
}

Tensor swin_window_attention_unfused(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads,
                                     double scale) {
  check_wa_inputs(qkv, bias, mask, heads);
  return window_attention_ops(qkv, bias, mask, heads, scale, 0.0, false, nullptr);
}

// --- PatchEmbed ------------------------------------------------------------------------

PatchEmbed::PatchEmbed(int64_t in_chans, int64_t dim, int64_t patch, bool with_norm, double eps)
    : Module("PatchEmbed"), patch_(patch) {
  MEMEL_CHECK(in_chans > 0 && dim > 0 && patch > 0, "[PatchEmbed] in_chans, dim and patch must be positive, got ",
              in_chans, ", ", dim, ", ", patch);
  proj = register_module("proj", std::make_shared<Conv2d>(in_chans, dim, Size2(static_cast<int>(patch)),
                                                          ConvArgs().with_stride(Size2(static_cast<int>(patch)))));
  if (with_norm) norm = register_module("norm", std::make_shared<LayerNorm>(dim, eps));
}

Tensor PatchEmbed::forward(const Tensor& x) {
  MEMEL_CHECK(x.dim() == 4, "[PatchEmbed] expected images (B, C, H, W), got ", shape_str(x.shape()));
  MEMEL_CHECK(x.size(2) >= patch_ && x.size(3) >= patch_, "[PatchEmbed] image ", x.size(2), "x", x.size(3),
              " is smaller than one patch (", patch_, ")");
  Tensor y = (*proj)(x);                         // (B, dim, H/p, W/p)
  y = contiguous(permute(y, {0, 2, 3, 1}));      // (B, H/p, W/p, dim)
  if (norm) y = (*norm)(y);
  return y;
}

std::string PatchEmbed::extra_repr() const { return str_cat("patch_size=", patch_); }

// --- WindowAttention -------------------------------------------------------------------

WindowAttention::WindowAttention(int64_t dim, int64_t num_heads, int64_t window, bool qkv_bias, double attn_drop,
                                 double proj_drop, Generator* gen)
    : Module("WindowAttention"),
      dim_(dim),
      heads_(num_heads),
      window_(window),
      attn_drop_(attn_drop),
      proj_drop_(proj_drop),
      gen_(gen) {
  MEMEL_CHECK(dim > 0 && num_heads > 0 && dim % num_heads == 0, "[WindowAttention] dim ", dim,
              " must be a positive multiple of num_heads ", num_heads);
  MEMEL_CHECK(window > 0, "[WindowAttention] window must be positive, got ", window);
  scale_ = 1.0 / std::sqrt(static_cast<double>(dim / num_heads));
  table_ = register_parameter("relative_position_bias_table",
                              Tensor::zeros({(2 * window - 1) * (2 * window - 1), num_heads}));
  init::trunc_normal_(table_, 0.02);
  index_ = register_buffer("relative_position_index", swin_relative_position_index(window), /*persistent=*/false);
  qkv = register_module("qkv", std::make_shared<Linear>(dim, 3 * dim, qkv_bias));
  proj = register_module("proj", std::make_shared<Linear>(dim, dim));
}

Tensor WindowAttention::relative_position_bias() const {
  const int64_t N = window_ * window_;
  Tensor b = embedding(table_, reshape(index_, {N * N}));      // (N*N, h)
  return contiguous(permute(reshape(b, {N, N, heads_}), {2, 0, 1}));  // (h, N, N)
}

Tensor WindowAttention::forward_windows(const Tensor& windows, const Tensor& mask) {
  const int64_t N = window_ * window_;
  MEMEL_CHECK(windows.dim() == 3 && windows.size(1) == N && windows.size(2) == dim_,
              "[WindowAttention] expected windows (BW, ", N, ", ", dim_, "), got ", shape_str(windows.shape()));
  Tensor q = (*qkv)(windows);  // (BW, N, 3C)
  Tensor bias = relative_position_bias();  // (h, N, N)
  const Tensor& m = mask;
  Tensor o;
  const bool attn_dropout = is_training() && attn_drop_ > 0.0;
  if (fused_ && !attn_dropout) o = swin_window_attention(q, bias, m, heads_, scale_);
  else {
    check_wa_inputs(q, bias, m, heads_);
    o = window_attention_ops(q, bias, m, heads_, scale_, attn_drop_, is_training(), gen_);
  }
  o = (*proj)(o);
  o = dropout(o, proj_drop_, is_training(), gen_);
  return output(o);
}

std::string WindowAttention::extra_repr() const {
  return str_cat("dim=", dim_, ", window_size=(", window_, ", ", window_, "), num_heads=", heads_);
}

// --- Mlp -------------------------------------------------------------------------------

SwinMlp::SwinMlp(int64_t dim, int64_t hidden, double drop, Generator* gen) : Module("Mlp"), drop_(drop), gen_(gen) {
  fc1 = register_module("fc1", std::make_shared<Linear>(dim, hidden));
  register_module("act", std::make_shared<GELU>());
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, dim));
}

Tensor SwinMlp::forward(const Tensor& x) {
  Tensor h = gelu((*fc1)(x));
  h = dropout(h, drop_, is_training(), gen_);
  h = (*fc2)(h);
  return dropout(h, drop_, is_training(), gen_);
}

// --- SwinBlock -------------------------------------------------------------------------

SwinBlock::SwinBlock(const SwinBlockOptions& o, Generator* gen) : Module("SwinTransformerBlock"), o_(o), gen_(gen) {
  MEMEL_CHECK(o.window > 0 && o.shift >= 0 && o.shift < o.window, "[SwinBlock] shift ", o.shift,
              " must be in [0, window ", o.window, ")");
  MEMEL_CHECK(o.mlp_ratio > 0, "[SwinBlock] mlp_ratio must be positive, got ", o.mlp_ratio);
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(o.dim, o.eps));
  attn = register_module("attn", std::make_shared<WindowAttention>(o.dim, o.num_heads, o.window, o.qkv_bias,
                                                                   o.attn_drop, o.drop, gen));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(o.dim, o.eps));
  mlp = register_module("mlp", std::make_shared<SwinMlp>(o.dim, static_cast<int64_t>(o.dim * o.mlp_ratio), o.drop,
                                                         gen));
}

const Tensor& SwinBlock::mask_for(int64_t Hp, int64_t Wp, int64_t sh, int64_t sw, DType dtype) {
  auto key = std::make_tuple(Hp, Wp, sh, sw, static_cast<int>(dtype));
  auto it = masks_.find(key);
  if (it == masks_.end()) it = masks_.emplace(key, swin_attention_mask(Hp, Wp, o_.window, sh, sw, dtype)).first;
  return it->second;
}

Tensor SwinBlock::forward(const Tensor& x) {
  MEMEL_CHECK(x.dim() == 4 && x.size(3) == o_.dim, "[SwinBlock] expected (B, H, W, ", o_.dim, "), got ",
              shape_str(x.shape()));
  const int64_t H = x.size(1), W = x.size(2), w = o_.window;
  Tensor h = (*norm1)(x);  // (B, H, W, C)
  const int64_t pad_b = (w - H % w) % w, pad_r = (w - W % w) % w;
  if (pad_b || pad_r) h = pad(h, {0, 0, 0, pad_r, 0, pad_b});  // (B, Hp, Wp, C)
  const int64_t Hp = H + pad_b, Wp = W + pad_r;
  // No shift along an axis the window already covers (as the references).
  const int64_t sh = w < Hp ? o_.shift : 0, sw = w < Wp ? o_.shift : 0;
  const bool shifted = sh > 0 || sw > 0;
  Tensor win = swin_window_gather(h, w, sh, sw);  // (BW, N, C): shifted by (-sh, -sw), partitioned
  // The cached mask is built on the host; Tensor::to moves it where the windows are (no
  // copy when it is there already).
  Tensor mask = shifted ? mask_for(Hp, Wp, sh, sw, win.dtype()).to(win.device()) : Tensor();
  Tensor a = attn->forward_windows(win, mask);  // (BW, N, C)
  h = swin_window_scatter(a, w, sh, sw, Hp, Wp);  // (B, Hp, Wp, C), shifted back
  if (pad_b || pad_r) h = slice(slice(h, 1, 0, H), 2, 0, W);  // (B, H, W, C)
  Tensor y = add(x, drop_path(h, o_.drop_path, is_training(), gen_));
  return add(y, drop_path((*mlp)((*norm2)(y)), o_.drop_path, is_training(), gen_));
}

std::string SwinBlock::extra_repr() const {
  return str_cat("dim=", o_.dim, ", num_heads=", o_.num_heads, ", window_size=", o_.window,
                 ", shift_size=", o_.shift, ", mlp_ratio=", detail::py_float(o_.mlp_ratio),
                 ", drop_path=", detail::py_float(o_.drop_path));
}

// --- PatchMerging ----------------------------------------------------------------------

PatchMerging::PatchMerging(int64_t dim, double eps) : Module("PatchMerging"), dim_(dim) {
  reduction = register_module("reduction", std::make_shared<Linear>(4 * dim, 2 * dim, false));
  norm = register_module("norm", std::make_shared<LayerNorm>(4 * dim, eps));
}

Tensor PatchMerging::forward(const Tensor& x) {
  MEMEL_CHECK(x.dim() == 4 && x.size(3) == dim_, "[PatchMerging] expected (B, H, W, ", dim_, "), got ",
              shape_str(x.shape()));
  Tensor t = x;
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = dim_;
  if (H % 2 || W % 2) t = pad(t, {0, 0, 0, W % 2, 0, H % 2});
  const int64_t H2 = (H + 1) / 2, W2 = (W + 1) / 2;
  t = reshape(t, {B, H2, 2, W2, 2, C});     // (B, H2, dh, W2, dw, C)
  t = permute(t, {0, 1, 3, 4, 2, 5});       // (B, H2, W2, dw, dh, C): x0, x1, x2, x3
  t = reshape(t, {B, H2, W2, 4 * C});       // (B, H2, W2, 4C)
  return (*reduction)((*norm)(t));          // (B, H2, W2, 2C)
}

// --- SwinStage -------------------------------------------------------------------------

Tensor SwinStage::forward(const Tensor& x) {
  Tensor y = (*blocks)(x);
  if (downsample) y = (*downsample)(y);
  return y;
}

}  // namespace memel
