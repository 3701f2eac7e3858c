// Neural-network ops: softmax, LayerNorm, dropout, embedding, convolution, pooling, losses.
#include "autograd/ops_util.h"
#include "core/sample_shard.h"

namespace memel {
using namespace detail;

MEMEL_REGISTER_OP("softmax");
MEMEL_REGISTER_OP("log_softmax");
MEMEL_REGISTER_OP("layer_norm");
MEMEL_REGISTER_OP("dropout");
MEMEL_REGISTER_OP("embedding");
MEMEL_REGISTER_OP("conv2d");
MEMEL_REGISTER_OP("winograd_weight");
MEMEL_REGISTER_OP("winograd_conv2d");
MEMEL_REGISTER_OP("conv_transpose2d");
MEMEL_REGISTER_OP("max_pool2d");
MEMEL_REGISTER_OP("avg_pool2d");
MEMEL_REGISTER_OP("cross_entropy");
MEMEL_REGISTER_OP("gru_candidate");
MEMEL_REGISTER_OP("gru_update");

namespace {

Tensor softmax_impl(const Tensor& x, int64_t axis, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_float(x, name);
  if (x.dim() == 0) return reshape(softmax_impl(reshape(x, {1}), 0, log), {});  // keeps the history
  axis = wrap_axis(axis, x.dim(), name);
  const bool last = axis == x.dim() - 1;
  Tensor xl = last ? cont(x) : cont(transpose(x.detach(), axis, -1));
  Tensor yl = empty_like(xl);
  if (yl.numel() > 0) backend_for(x).softmax(xl, yl, log);
  Tensor y = last ? yl : transpose(yl, axis, -1);
  Tensor yd = yl.detach();  // y may share yl's handle: never let the node own its output
  return autograd::record(name, y, {x}, [=](const TensorList& g) -> TensorList {
    Tensor gl = last ? cont(g[0]) : cont(transpose(g[0], axis, -1));
    Tensor gx = empty_like(gl);
    if (gx.numel() > 0) backend_for(gl).softmax_backward(yd, gl, gx, log);
    return {last ? gx : transpose(gx, axis, -1)};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t axis) { return softmax_impl(x, axis, false); }
Tensor log_softmax(const Tensor& x, int64_t axis) { return softmax_impl(x, axis, true); }

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  check_float(x, "layer_norm");
  MEMEL_CHECK(x.dim() >= 1, "[layer_norm] input must have rank >= 1");
  const int64_t n = x.shape().back();
  for (const Tensor* p : {&weight, &bias})
    if (p->defined())
      MEMEL_CHECK(p->dim() == 1 && p->shape()[0] == n, "[layer_norm] parameter of shape ", shape_str(p->shape()),
                  " does not match normalized size ", n, " of input ", shape_str(x.shape()));
  Tensor xc = cont(x);
  Shape rs(x.shape().begin(), x.shape().end() - 1);
  Tensor y = empty_like(x), mean = Tensor::empty(rs, x.dtype(), x.device()), rstd = Tensor::empty(rs, x.dtype(), x.device());
  Tensor wd = weight.defined() ? cont(weight) : Tensor(), bd = bias.defined() ? cont(bias) : Tensor();
  if (x.numel() > 0) backend_for(x).layer_norm(xc, wd, bd, eps, y, mean, rstd);
  bool gw = weight.defined() && weight.requires_grad(), gb = bias.defined() && bias.requires_grad();
  return autograd::record("layer_norm", y, {x, weight, bias}, [=](const TensorList& g) -> TensorList {
    Tensor gx = empty_like(xc);
    Tensor gwt = gw ? empty_like(wd) : Tensor(), gbt = gb ? empty_like(bd) : Tensor();
    backend_for(xc).layer_norm_backward(xc, wd, mean, rstd, cont(g[0]), gx, gwt, gbt);
    return {gx, gwt, gbt};
  });
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  MEMEL_CHECK(p >= 0.0 && p <= 1.0, "[dropout] probability must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  check_float(x, "dropout");
  Tensor mask = empty_like(x);
  if (p >= 1.0) {
    mask.zero_();
  } else {
    Generator& g = gen ? *gen : default_generator();
    // Keyed by the global sample index in a data-parallel run (core/rng.h SampleShard).
    const PerSampleDraw d = reserve_per_sample(g, x.dim() > 0 ? x.shape()[0] : 0, static_cast<uint64_t>(x.numel()));
    if (d.first_index % 4 == 0) {
      backend_for(x).dropout_mask(g.seed(), d.offset + d.first_index / 4, p, mask);
    } else {  // a shard starting inside a Philox block: the same numbers, drawn on the host
      std::vector<double> m(static_cast<size_t>(x.numel()));
      const float pf = static_cast<float>(p);
      const double keep = 1.0 / (1.0 - p);
      philox_uniform_for(g.seed(), d.offset, d.first_index, x.numel(),
                         [&](int64_t j, float u) { m[static_cast<size_t>(j)] = u >= pf ? keep : 0.0; });
      mask.copy_from(Tensor::from_vector(m, x.shape()).to_dtype(x.dtype()).to(x.device()));
    }
  }
  Tensor y = empty_like(x);
  backend_for(x).binary(BinaryOp::Mul, x, mask, y);
  return autograd::record("dropout", y, {x}, [mask](const TensorList& g) -> TensorList {
    Tensor gx = empty_like(mask);
    backend_for(mask).binary(BinaryOp::Mul, cont(g[0]), mask, gx);
    return {gx};
  });
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  MEMEL_CHECK(weight.dim() == 2, "[embedding] weight must be 2-d (num, dim), got ", shape_str(weight.shape()));
  MEMEL_CHECK(ids.dtype() == DType::I64 || ids.dtype() == DType::I32, "[embedding] ids must be int32 or int64, got ",
              dtype_name(ids.dtype()));
  const int64_t d = weight.shape()[1];
  Shape os = ids.shape();
  os.push_back(d);
  Tensor y = Tensor::empty(os, weight.dtype(), weight.device());
  check_same_device(weight, ids, "embedding");
  Tensor idc = cont(ids), wc = cont(weight);
  const int64_t n = idc.numel();
  Tensor y2 = y.as_strided({n, d}, {d, 1}, 0);  // (n, d) view of y
  backend_for(weight).index_select(wc, idc, y2, "embedding");
  Shape ws = weight.shape();
  return autograd::record("embedding", y, {weight}, [=](const TensorList& g) -> TensorList {
    Tensor gw = Tensor::zeros(ws, g[0].dtype(), g[0].device());
    const Tensor gc = cont(g[0]);
    backend_for(gw).index_add(gc.as_strided({n, d}, {d, 1}, gc.offset()), idc, gw, "embedding");
    return {gw};
  });
}

// --- convolution ------------------------------------------------------------------

namespace {

// Output size of a convolution/pooling window sweep; 0 when the window does not fit
// (C++ division truncates toward zero, so a negative span must not reach it).
int64_t conv_out(int64_t in, int64_t k, int s, int p, int d) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

// Batched per-group product helper over (N, G, rows, cols) views built with as_strided.
// c[n, g] = alpha * op(a[g or n,g]) @ op(b[n, g]) + beta * c[n, g]
void grouped_gemm(bool ta, bool tb, const Tensor& a, const Shape& a_shape, const Shape& a_strides, int64_t a_goff,
                  const Tensor& b, const Shape& b_shape, const Shape& b_strides, int64_t b_goff, Tensor& c,
                  const Shape& c_shape, const Shape& c_strides, int64_t c_goff, int64_t G, double beta) {
  for (int64_t g = 0; g < G; ++g) {
    Tensor av = a.as_strided(a_shape, a_strides, a.offset() + g * a_goff);
    Tensor bv = b.as_strided(b_shape, b_strides, b.offset() + g * b_goff);
    Tensor cv = c.as_strided(c_shape, c_strides, c.offset() + g * c_goff);
    backend_for(c).gemm(ta, tb, 1.0, av, bv, beta, cv);
  }
}

void check_conv_args(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& o, const char* op,
                     bool transposed) {
  check_same(x, w, op);
  MEMEL_CHECK(x.dim() == 4, "[", op, "] input must be (N, C, H, W), got ", shape_str(x.shape()));
  MEMEL_CHECK(w.dim() == 4, "[", op, "] weight must be 4-d, got ", shape_str(w.shape()));
  MEMEL_CHECK(o.groups >= 1 && o.stride_h >= 1 && o.stride_w >= 1 && o.dil_h >= 1 && o.dil_w >= 1 && o.pad_h >= 0 &&
                  o.pad_w >= 0,
              "[", op, "] stride, dilation and groups must be positive and padding non-negative");
  const int64_t cin = x.shape()[1];
  MEMEL_CHECK(cin % o.groups == 0, "[", op, "] ", cin, " input channels are not divisible by groups=", o.groups);
  if (!transposed) {
    MEMEL_CHECK(w.shape()[1] * o.groups == cin, "[", op, "] weight ", shape_str(w.shape()), " expects ",
                w.shape()[1] * o.groups, " input channels, input ", shape_str(x.shape()), " has ", cin);
    MEMEL_CHECK(w.shape()[0] % o.groups == 0, "[", op, "] ", w.shape()[0], " output channels not divisible by groups=",
                o.groups);
  } else {
    MEMEL_CHECK(w.shape()[0] == cin, "[", op, "] weight ", shape_str(w.shape()), " expects ", w.shape()[0],
                " input channels, input ", shape_str(x.shape()), " has ", cin);
    MEMEL_CHECK(o.out_pad_h < std::max(o.stride_h, o.dil_h) && o.out_pad_w < std::max(o.stride_w, o.dil_w),
                "[", op, "] output padding must be smaller than stride or dilation");
  }
  if (bias.defined()) {
    const int64_t co = transposed ? w.shape()[1] * o.groups : w.shape()[0];
    MEMEL_CHECK(bias.dim() == 1 && bias.shape()[0] == co, "[", op, "] bias ", shape_str(bias.shape()),
                " does not match ", co, " output channels");
  }
}

// y (N, C, L) += bias (C) broadcast
void add_channel_bias(Tensor& y, const Tensor& bias) {
  Shape s = y.shape();
  Tensor bv = bias.as_strided({s[0], s[1], s[2] * s[3]}, {0, bias.strides()[0], 0}, bias.offset());
  Tensor y3 = y.as_strided({s[0], s[1], s[2] * s[3]}, {s[1] * s[2] * s[3], s[2] * s[3], 1}, y.offset());
  backend_for(y).binary(BinaryOp::Add, y3, bv, y3);
}

// Whether conv2d runs the Winograd algorithm for these shapes (see ConvAlgorithm).
bool use_winograd(const Tensor& x, int64_t C, int64_t Co, int64_t kh, int64_t kw, int64_t OH, int64_t OW,
                  const Conv2dOptions& o) {
  if (o.algorithm == ConvAlgorithm::Gemm) return false;
  const bool applies = o.groups == 1 && o.stride_h == 1 && o.stride_w == 1 && o.dil_h == 1 && o.dil_w == 1 &&
                       kh == kw && backend_for(x).winograd_supported(kh);
  if (o.algorithm == ConvAlgorithm::Winograd) {
    MEMEL_CHECK(applies, "[conv2d] the Winograd algorithm needs groups 1, stride 1, dilation 1 and a square kernel "
                "of a size the ", x.device().str(), " backend supports; got a ", kh, "x", kw, " kernel, stride (",
                o.stride_h, ", ", o.stride_w, "), dilation (", o.dil_h, ", ", o.dil_w, "), groups ", o.groups);
    return true;
  }
  return applies && C >= 16 && Co >= 16 && OH * OW >= 64;
}

// The backend's direct convolution (Backend::conv_forward) for these options, if it has
// one and fallbacks are not forced.
bool use_direct(const Tensor& x, const Conv2dOptions& o, ConvGeometry& g) {
  if (o.algorithm != ConvAlgorithm::Auto || fallbacks_forced()) return false;
  g = {o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w, o.groups};
  return backend_for(x).conv_supported(x, g);
}

// conv2d through the backend's direct convolution: y = conv(x, w) + bias.
Tensor direct_conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias, const ConvGeometry& g,
                     const Shape& yshape) {
  Tensor x = cont(x_in), w = cont(w_in);
  Tensor y = Tensor::empty(yshape, x.dtype(), x.device());
  backend_for(x).conv_forward(x, w, g, y);
  if (bias.defined()) add_channel_bias(y, cont(bias));
  const bool gx = x_in.requires_grad(), gw = w_in.requires_grad(), gb = bias.defined() && bias.requires_grad();
  return autograd::record("conv2d", y, {x_in, w_in, bias}, [=](const TensorList& gl) -> TensorList {
    Tensor gy = cont(gl[0]);
    Tensor gxt, gwt, gbt;
    if (gx) {
      gxt = empty_like(x);
      backend_for(gy).conv_backward_data(gy, w, g, gxt);
    }
    if (gw) {
      gwt = empty_like(w);
      backend_for(gy).conv_backward_filter(x, gy, g, gwt);
    }
    if (gb) gbt = sum(gy, {0, 2, 3});
    return {gxt, gwt, gbt};
  });
}

// conv_transpose2d through the direct convolution: the transposed convolution of x with w
// (Ci, Co / groups, kh, kw) is the adjoint (backward data) of the convolution y -> x.
Tensor direct_conv_transpose2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias, const ConvGeometry& g,
                               const Shape& yshape) {
  Tensor x = cont(x_in), w = cont(w_in);
  Tensor y = Tensor::empty(yshape, x.dtype(), x.device());
  backend_for(x).conv_backward_data(x, w, g, y);
  if (bias.defined()) add_channel_bias(y, cont(bias));
  const bool gx = x_in.requires_grad(), gw = w_in.requires_grad(), gb = bias.defined() && bias.requires_grad();
  return autograd::record("conv_transpose2d", y, {x_in, w_in, bias}, [=](const TensorList& gl) -> TensorList {
    Tensor gy = cont(gl[0]);
    Tensor gxt, gwt, gbt;
    if (gx) {
      gxt = empty_like(x);
      backend_for(gy).conv_forward(gy, w, g, gxt);
    }
    if (gw) {
      gwt = empty_like(w);
      backend_for(gy).conv_backward_filter(gy, x, g, gwt);
    }
    if (gb) gbt = sum(gy, {0, 2, 3});
    return {gxt, gwt, gbt};
  });
}

}  // namespace

Tensor winograd_weight(const Tensor& w_in) {
  MEMEL_CHECK(w_in.dim() == 4 && w_in.shape()[2] == w_in.shape()[3], "[winograd_weight] weight must be (Co, C, k, k), got ",
              shape_str(w_in.shape()));
  check_float(w_in, "winograd_weight");
  Backend& be = backend_for(w_in);
  const int64_t k = w_in.shape()[2];
  MEMEL_CHECK(be.winograd_supported(k), "[winograd_weight] the ", w_in.device().str(),
              " backend has no Winograd algorithm for a ", k, "x", k, " kernel");
  Tensor w = cont(w_in);
  Tensor U = Tensor::empty({be.winograd_points(k), w.shape()[0], w.shape()[1]}, w.dtype(), w.device());
  be.winograd_weight(w, U);
  const Shape ws = w.shape();
  return autograd::record("winograd_weight", U, {w_in}, [ws](const TensorList& g) -> TensorList {
    Tensor gw = Tensor::empty(ws, g[0].dtype(), g[0].device());
    backend_for(gw).winograd_weight_backward(cont(g[0]), gw);
    return {gw};
  });
}

Tensor winograd_conv2d(const Tensor& x_in, const Tensor& U_in, int64_t kernel, int pad_h, int pad_w) {
  check_same(x_in, U_in, "winograd_conv2d");
  MEMEL_CHECK(x_in.dim() == 4 && U_in.dim() == 3 && U_in.shape()[2] == x_in.shape()[1],
              "[winograd_conv2d] input (N, C, H, W) and transformed kernel (P, Co, C) expected, got ",
              shape_str(x_in.shape()), " and ", shape_str(U_in.shape()));
  Backend& be = backend_for(x_in);
  MEMEL_CHECK(be.winograd_supported(kernel) && U_in.shape()[0] == be.winograd_points(kernel),
              "[winograd_conv2d] ", shape_str(U_in.shape()), " is not a transformed ", kernel, "x", kernel,
              " kernel of the ", x_in.device().str(), " backend");
  Tensor x = cont(x_in), U = cont(U_in);
  const int64_t OH = x.shape()[2] + 2 * pad_h - kernel + 1, OW = x.shape()[3] + 2 * pad_w - kernel + 1;
  MEMEL_CHECK(OH > 0 && OW > 0, "[winograd_conv2d] input ", shape_str(x.shape()), " is too small for a ", kernel, "x",
              kernel, " kernel with padding (", pad_h, ", ", pad_w, ")");
  Tensor y = Tensor::empty({x.shape()[0], U.shape()[1], OH, OW}, x.dtype(), x.device());
  be.winograd_conv2d(x, U, kernel, pad_h, pad_w, y);
  const bool gx = x_in.requires_grad(), gU = U_in.requires_grad();
  return autograd::record("winograd_conv2d", y, {x_in, U_in}, [=](const TensorList& gl) -> TensorList {
    Tensor gxt = gx ? empty_like(x) : Tensor(), gUt = gU ? empty_like(U) : Tensor();
    backend_for(x).winograd_conv2d_backward(x, U, cont(gl[0]), kernel, pad_h, pad_w, gxt, gUt);
    return {gxt, gUt};
  });
}

Tensor conv2d_prepare(const Tensor& w, const Conv2dOptions& o, int64_t H, int64_t W) {
  MEMEL_CHECK(w.dim() == 4, "[conv2d_prepare] weight must be 4-d, got ", shape_str(w.shape()));
  const int64_t kh = w.shape()[2], kw = w.shape()[3];
  const int64_t OH = conv_out(H, kh, o.stride_h, o.pad_h, o.dil_h), OW = conv_out(W, kw, o.stride_w, o.pad_w, o.dil_w);
  if (!use_winograd(w, w.shape()[1] * o.groups, w.shape()[0], kh, kw, OH, OW, o)) return Tensor();
  return winograd_weight(w);
}

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias, const Conv2dOptions& o,
              const Tensor& prepared) {
  check_conv_args(x_in, w_in, bias, o, "conv2d", false);
  Tensor x = cont(x_in), w = cont(w_in);
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t Co = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3], G = o.groups;
  const int64_t OH = conv_out(H, kh, o.stride_h, o.pad_h, o.dil_h), OW = conv_out(W, kw, o.stride_w, o.pad_w, o.dil_w);
  MEMEL_CHECK(OH > 0 && OW > 0, "[conv2d] input ", shape_str(x.shape()), " is too small for kernel (", kh, ", ", kw,
              ") with padding (", o.pad_h, ", ", o.pad_w, ") and dilation (", o.dil_h, ", ", o.dil_w, ")");
  const int64_t L = OH * OW, Cg = C / G, Cog = Co / G, K = Cg * kh * kw;
  ConvGeometry direct;
  if (!prepared.defined() && use_direct(x, o, direct)) return direct_conv2d(x_in, w_in, bias, direct, {N, Co, OH, OW});
  if (prepared.defined() || use_winograd(x, C, Co, kh, kw, OH, OW, o)) {
    // Winograd, from the caller's transformed kernel or one made here.
    Tensor y = winograd_conv2d(x_in, prepared.defined() ? prepared : winograd_weight(w_in), kh, o.pad_h, o.pad_w);
    return bias.defined() ? add(y, reshape(bias, {1, Co, 1, 1})) : y;
  }
  Tensor y = Tensor::empty({N, Co, OH, OW}, x.dtype(), x.device());
  // Not saved: the backward rebuilds the columns from x (kh*kw times smaller).
  Tensor cols = Tensor::empty({N, C * kh * kw, L}, x.dtype(), x.device());
  backend_for(x).im2col(x, int(kh), int(kw), o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w, cols);
  // y[n, g] (Cog, L) = w[g] (Cog, K) @ cols[n, g] (K, L)
  grouped_gemm(false, false, w, {1, Cog, K}, {0, K, 1}, Cog * K, cols, {N, K, L}, {C * kh * kw * L, L, 1}, K * L, y,
               {N, Cog, L}, {Co * L, L, 1}, Cog * L, G, 0.0);
  if (bias.defined()) add_channel_bias(y, cont(bias));
  bool gx = x_in.requires_grad(), gw = w_in.requires_grad(), gb = bias.defined() && bias.requires_grad();
  return autograd::record("conv2d", y, {x_in, w_in, bias}, [=](const TensorList& gl) -> TensorList {
    Tensor gy = cont(gl[0]);
    Tensor gxt, gwt, gbt;
    if (gw) {
      Tensor xcols = Tensor::empty({N, C * kh * kw, L}, x.dtype(), x.device());
      backend_for(x).im2col(x, int(kh), int(kw), o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w, xcols);
      // gw[g] (Cog, K) = sum_n gy[n, g] (Cog, L) @ cols[n, g]^T (L, K)
      // The first image writes gw (beta 0); no images: zeros.
      gwt = N > 0 ? Tensor::empty(w.shape(), w.dtype(), w.device())
                  : Tensor::zeros(w.shape(), w.dtype(), w.device());
      for (int64_t n = 0; n < N; ++n) {
        Tensor gn = gy.as_strided({1, Co, L}, {0, L, 1}, gy.offset() + n * Co * L);
        Tensor cn = xcols.as_strided({1, C * kh * kw, L}, {0, L, 1}, xcols.offset() + n * C * kh * kw * L);
        grouped_gemm(false, true, gn, {1, Cog, L}, {0, L, 1}, Cog * L, cn, {1, K, L}, {0, L, 1}, K * L, gwt,
                     {1, Cog, K}, {0, K, 1}, Cog * K, G, n == 0 ? 0.0 : 1.0);
      }
    }
    if (gx) {
      // gcols[n, g] (K, L) = w[g]^T (K, Cog) @ gy[n, g] (Cog, L)
      Tensor gcols = Tensor::empty({N, C * kh * kw, L}, x.dtype(), x.device());
      grouped_gemm(true, false, w, {1, Cog, K}, {0, K, 1}, Cog * K, gy, {N, Cog, L}, {Co * L, L, 1}, Cog * L, gcols,
                   {N, K, L}, {C * kh * kw * L, L, 1}, K * L, G, 0.0);
      gxt = empty_like(x);
      backend_for(x).col2im(gcols, int(kh), int(kw), o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w, gxt);
    }
    if (gb) gbt = sum(gy, {0, 2, 3});
    return {gxt, gwt, gbt};
  });
}

// --- recurrent cells ---------------------------------------------------------------------

namespace {

// Checks the gate tensors of gru_candidate / gru_update and returns the state shape.
Shape gru_state_shape(const Tensor& xg, const Tensor& hg, const char* op) {
  check_float(hg, op);
  MEMEL_CHECK(hg.dim() >= 2 && hg.shape()[1] % 3 == 0, "[", op, "] state gates must be (B, 3C, ...), got ",
              shape_str(hg.shape()));
  if (xg.defined()) {
    check_same(xg, hg, op);
    MEMEL_CHECK(xg.shape() == hg.shape(), "[", op, "] input gates ", shape_str(xg.shape()),
                " do not match state gates ", shape_str(hg.shape()));
  }
  Shape s = hg.shape();
  s[1] /= 3;
  return s;
}

}  // namespace

Tensor gru_candidate(const Tensor& xg_in, const Tensor& hg_in, bool tanh_act, double slope) {
  const Shape cs = gru_state_shape(xg_in, hg_in, "gru_candidate");
  Tensor xg = xg_in.defined() ? cont(xg_in) : Tensor(), hg = cont(hg_in);
  Tensor cand = Tensor::empty(cs, hg.dtype(), hg.device());
  backend_for(hg).gru_candidate(xg, hg, tanh_act, slope, cand);
  Tensor cd = cand.detach();
  return autograd::record("gru_candidate", cand, {xg_in, hg_in}, [=](const TensorList& g) -> TensorList {
    Tensor gx = xg.defined() ? empty_like(xg) : Tensor(), gh = empty_like(hg);
    backend_for(hg).gru_candidate_backward(xg, hg, cd, cont(g[0]), tanh_act, slope, gx, gh);
    return {gx, gh};
  });
}

Tensor gru_update(const Tensor& xg_in, const Tensor& hg_in, const Tensor& cand_in, const Tensor& h_in) {
  const Shape cs = gru_state_shape(xg_in, hg_in, "gru_update");
  for (const Tensor* t : {&cand_in, &h_in}) {
    check_same(*t, hg_in, "gru_update");
    MEMEL_CHECK(t->shape() == cs, "[gru_update] candidate and state must be ", shape_str(cs), " for gates ",
                shape_str(hg_in.shape()), ", got ", shape_str(t->shape()));
  }
  Tensor xg = xg_in.defined() ? cont(xg_in) : Tensor(), hg = cont(hg_in), cand = cont(cand_in), h = cont(h_in);
  Tensor out = Tensor::empty(cs, hg.dtype(), hg.device());
  backend_for(hg).gru_update(xg, hg, cand, h, out);
  return autograd::record("gru_update", out, {xg_in, hg_in, cand_in, h_in}, [=](const TensorList& g) -> TensorList {
    Tensor gx = xg.defined() ? empty_like(xg) : Tensor(), gh = empty_like(hg), gc = empty_like(cand),
           gs = empty_like(h);
    backend_for(hg).gru_update_backward(xg, hg, cand, h, cont(g[0]), gx, gh, gc, gs);
    return {gx, gh, gc, gs};
  });
}

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias, const Conv2dOptions& o) {
  check_conv_args(x_in, w_in, bias, o, "conv_transpose2d", true);
  if (o.out_pad_h >= o.stride_h || o.out_pad_w >= o.stride_w) {
    // im2col/col2im pair an output of height OH with exactly H input rows only when
    // out_pad < stride. A larger out_pad (allowed up to the dilation) is the same as
    // out_pad / stride extra zero input rows (cols) and out_pad % stride.
    Conv2dOptions o2 = o;
    o2.out_pad_h = o.out_pad_h % o.stride_h;
    o2.out_pad_w = o.out_pad_w % o.stride_w;
    return conv_transpose2d(pad(x_in, {0, o.out_pad_w / o.stride_w, 0, o.out_pad_h / o.stride_h}), w_in, bias, o2);
  }
  Tensor x = cont(x_in), w = cont(w_in);
  const int64_t N = x.shape()[0], Ci = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t G = o.groups, Cig = Ci / G, Cog = w.shape()[1], Co = Cog * G, kh = w.shape()[2], kw = w.shape()[3];
  const int64_t OH = (H - 1) * o.stride_h - 2 * o.pad_h + o.dil_h * (kh - 1) + o.out_pad_h + 1;
  const int64_t OW = (W - 1) * o.stride_w - 2 * o.pad_w + o.dil_w * (kw - 1) + o.out_pad_w + 1;
  MEMEL_CHECK(OH > 0 && OW > 0, "[conv_transpose2d] output size (", OH, ", ", OW, ") is not positive");
  ConvGeometry direct;
  if (use_direct(x, o, direct)) return direct_conv_transpose2d(x_in, w_in, bias, direct, {N, Co, OH, OW});
  const int64_t L = H * W, K = Cog * kh * kw;
  // cols[n, g] (K, L) = w[g]^T (K, Cig) @ x[n, g] (Cig, L); then col2im onto the output.
  Tensor cols = Tensor::empty({N, Co * kh * kw, L}, x.dtype(), x.device());
  grouped_gemm(true, false, w, {1, Cig, K}, {0, K, 1}, Cig * K, x, {N, Cig, L}, {Ci * L, L, 1}, Cig * L, cols,
               {N, K, L}, {Co * kh * kw * L, L, 1}, K * L, G, 0.0);
  Tensor y = Tensor::empty({N, Co, OH, OW}, x.dtype(), x.device());
  backend_for(x).col2im(cols, int(kh), int(kw), o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w, y);
  if (bias.defined()) add_channel_bias(y, cont(bias));
  bool gx = x_in.requires_grad(), gw = w_in.requires_grad(), gb = bias.defined() && bias.requires_grad();
  return autograd::record("conv_transpose2d", y, {x_in, w_in, bias}, [=](const TensorList& gl) -> TensorList {
    Tensor gy = cont(gl[0]);
    Tensor gcols = Tensor::empty({N, Co * kh * kw, L}, x.dtype(), x.device());
    backend_for(gy).im2col(gy, int(kh), int(kw), o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w, gcols);
    Tensor gxt, gwt, gbt;
    if (gx) {
      // gx[n, g] (Cig, L) = w[g] (Cig, K) @ gcols[n, g] (K, L)
      gxt = empty_like(x);
      grouped_gemm(false, false, w, {1, Cig, K}, {0, K, 1}, Cig * K, gcols, {N, K, L}, {Co * kh * kw * L, L, 1}, K * L,
                   gxt, {N, Cig, L}, {Ci * L, L, 1}, Cig * L, G, 0.0);
    }
    if (gw) {
      // gw[g] (Cig, K) = sum_n x[n, g] (Cig, L) @ gcols[n, g]^T (L, K)
      // The first image writes gw (beta 0); no images: zeros.
      gwt = N > 0 ? Tensor::empty(w.shape(), w.dtype(), w.device())
                  : Tensor::zeros(w.shape(), w.dtype(), w.device());
      for (int64_t n = 0; n < N; ++n) {
        Tensor xn = x.as_strided({1, Ci, L}, {0, L, 1}, x.offset() + n * Ci * L);
        Tensor gn = gcols.as_strided({1, Co * kh * kw, L}, {0, L, 1}, gcols.offset() + n * Co * kh * kw * L);
        grouped_gemm(false, true, xn, {1, Cig, L}, {0, L, 1}, Cig * L, gn, {1, K, L}, {0, L, 1}, K * L, gwt,
                     {1, Cig, K}, {0, K, 1}, Cig * K, G, n == 0 ? 0.0 : 1.0);
      }
    }
    if (gb) gbt = sum(gy, {0, 2, 3});
    return {gxt, gwt, gbt};
  });
}

Tensor max_pool2d(const Tensor& x_in, int kh, int kw, int sh, int sw, int ph, int pw) {
  MEMEL_CHECK(x_in.dim() == 4, "[max_pool2d] input must be (N, C, H, W), got ", shape_str(x_in.shape()));
  MEMEL_CHECK(kh > 0 && kw > 0 && sh > 0 && sw > 0 && ph >= 0 && pw >= 0 && 2 * ph <= kh && 2 * pw <= kw,
              "[max_pool2d] bad kernel/stride/padding (padding must be at most half the kernel)");
  Tensor x = cont(x_in);
  const int64_t OH = conv_out(x.shape()[2], kh, sh, ph, 1), OW = conv_out(x.shape()[3], kw, sw, pw, 1);
  MEMEL_CHECK(OH > 0 && OW > 0, "[max_pool2d] input ", shape_str(x.shape()), " is smaller than the kernel");
  Tensor y = Tensor::empty({x.shape()[0], x.shape()[1], OH, OW}, x.dtype(), x.device());
  Tensor am = Tensor::empty(y.shape(), DType::I64, x.device());
  backend_for(x).max_pool2d(x, kh, kw, sh, sw, ph, pw, y, am);
  Shape xs = x.shape();
  return autograd::record("max_pool2d", y, {x_in}, [=](const TensorList& g) -> TensorList {
    Tensor gx = Tensor::empty(xs, g[0].dtype(), g[0].device());
    backend_for(gx).max_pool2d_backward(cont(g[0]), am, gx);
    return {gx};
  });
}

Tensor avg_pool2d(const Tensor& x_in, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad) {
  MEMEL_CHECK(x_in.dim() == 4, "[avg_pool2d] input must be (N, C, H, W), got ", shape_str(x_in.shape()));
  MEMEL_CHECK(kh > 0 && kw > 0 && sh > 0 && sw > 0 && ph >= 0 && pw >= 0 && 2 * ph <= kh && 2 * pw <= kw,
              "[avg_pool2d] bad kernel/stride/padding (padding must be at most half the kernel)");
  Tensor x = cont(x_in);
  const int64_t OH = conv_out(x.shape()[2], kh, sh, ph, 1), OW = conv_out(x.shape()[3], kw, sw, pw, 1);
  MEMEL_CHECK(OH > 0 && OW > 0, "[avg_pool2d] input ", shape_str(x.shape()), " is smaller than the kernel");
  Tensor y = Tensor::empty({x.shape()[0], x.shape()[1], OH, OW}, x.dtype(), x.device());
  backend_for(x).avg_pool2d(x, kh, kw, sh, sw, ph, pw, count_pad, y);
  Shape xs = x.shape();
  return autograd::record("avg_pool2d", y, {x_in}, [=](const TensorList& g) -> TensorList {
    Tensor gx = Tensor::empty(xs, g[0].dtype(), g[0].device());
    backend_for(gx).avg_pool2d_backward(cont(g[0]), kh, kw, sh, sw, ph, pw, count_pad, gx);
    return {gx};
  });
}

// --- losses -----------------------------------------------------------------------

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                     Reduction reduction) {
  check_float(logits, "cross_entropy");
  MEMEL_CHECK(target.dtype() == DType::I64 || target.dtype() == DType::I32,
              "[cross_entropy] target must be int32 or int64 class indices, got ", dtype_name(target.dtype()));
  MEMEL_CHECK(logits.dim() >= 2, "[cross_entropy] logits must be (N, C, ...), got ", shape_str(logits.shape()));
  MEMEL_CHECK(smoothing >= 0.0 && smoothing <= 1.0, "[cross_entropy] label smoothing must be in [0, 1], got ",
              smoothing);
  Shape ts = logits.shape();
  ts.erase(ts.begin() + 1);
  MEMEL_CHECK(target.shape() == ts, "[cross_entropy] target shape ", shape_str(target.shape()), " does not match logits ",
              shape_str(logits.shape()), " (expected ", shape_str(ts), ")");
  const int64_t C = logits.shape()[1];
  // Rows = every position, classes last.
  Tensor l2 = logits.dim() == 2 ? logits : reshape(transpose(flatten(logits, 2), 1, 2), {-1, C});
  Tensor lc = cont(l2);
  Tensor tc = cont(target);
  const int64_t rows = lc.shape()[0];
  Tensor loss = Tensor::empty({rows}, lc.dtype(), lc.device()), lse = Tensor::empty({rows}, lc.dtype(), lc.device());
  if (rows > 0) backend_for(lc).cross_entropy(lc, tc, ignore_index, smoothing, loss, lse);
  int64_t count = rows;
  if (reduction == Reduction::Mean) {
    std::vector<int64_t> t = tc.to_vector_as<int64_t>();
    count = 0;
    for (int64_t v : t) count += v != ignore_index;
  }
  Tensor y;
  if (reduction == Reduction::None)
    y = reshape(loss, ts).detach();
  else {
    NoGradGuard ng;
    y = sum(loss);
    if (reduction == Reduction::Mean) y = mul(y, 1.0 / static_cast<double>(std::max<int64_t>(count, 1)));
    y = y.detach();
  }
  Tensor out = autograd::record("cross_entropy", y, {l2}, [=](const TensorList& g) -> TensorList {
    Tensor grow;
    if (reduction == Reduction::None)
      grow = cont(reshape(g[0], {rows}));
    else {
      double scale = reduction == Reduction::Mean ? 1.0 / static_cast<double>(std::max<int64_t>(count, 1)) : 1.0;
      grow = contiguous(expand(reshape(mul(g[0], scale), {1}), {rows}));
    }
    Tensor gl = empty_like(lc);
    if (rows > 0) backend_for(lc).cross_entropy_backward(lc, tc, lse, grow, ignore_index, smoothing, gl);
    return {gl};
  });
  return out;
}

namespace {
Tensor reduce_loss(const Tensor& per, Reduction r) {
  if (r == Reduction::None) return per;
  if (r == Reduction::Sum) return sum(per);
  return mean(per);
}
}  // namespace

Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction r) {
  MEMEL_CHECK(pred.shape() == target.shape(), "[mse_loss] prediction ", shape_str(pred.shape()), " and target ",
              shape_str(target.shape()), " differ in shape");
  return reduce_loss(square(sub(pred, target)), r);
}

Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction r) {
  MEMEL_CHECK(pred.shape() == target.shape(), "[l1_loss] prediction ", shape_str(pred.shape()), " and target ",
              shape_str(target.shape()), " differ in shape");
  return reduce_loss(abs(sub(pred, target)), r);
}

}  // namespace memel
