#pragma once
// The kernel interface. Every device implements it once (tensor/cpu, tensor/cuda);
// ops in autograd/ pick the backend of their inputs' device with backend_for() and
// never test which device they are on. Unless a kernel says otherwise, tensor
// arguments are contiguous and outputs are preallocated with the right shape/dtype.
#include <cstdint>

#include "core/error.h"
#include "tensor/tensor.h"

namespace memel {

enum class UnaryOp : uint8_t {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sign, Square, Reciprocal, Sin, Cos,
  Tanh, Sigmoid, Relu, Gelu, GeluTanh, LeakyRelu,  // LeakyRelu slope = alpha
  AddScalar, MulScalar, PowScalar,                 // x + alpha, x * alpha, x ^ alpha
  ClampMin, ClampMax,                              // max(x, alpha), min(x, alpha)
  Step,                                            // x > alpha ? 1 : 0
};

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Max, Min, Pow, Eq, Ne, Gt, Ge, Lt, Le };

enum class ReduceOp : uint8_t { Sum, Max, Min, Prod };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // dst = src elementwise for any strides of either; converts dtype.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void fill(Tensor& dst, double value) = 0;  // any strides
  // Copy bytes between host and this device (dst/src may be on either side).
  virtual void memcpy_host(void* dst, const void* src, size_t nbytes, bool to_device) = 0;

  // out = op(x); x and out have the same shape (x may be strided).
  virtual void unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) = 0;
  // gx = gy * d op(x)/dx (uses x, or y = op(x) where cheaper).
  virtual void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                              double alpha) = 0;
  // out = a op b; a and b are views already expanded to out's shape (stride 0 on
  // broadcast axes). Comparison ops write 1/0 in out's dtype.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out (keepdim shape: 1 on reduced axes) = reduce over the axes where out has size 1
  // and x does not. x may be strided.
  virtual void reduce(ReduceOp op, const Tensor& x, Tensor& out) = 0;
  // out = where(cond != 0, a, b), all expanded to out's shape.
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) = 0;

  // out (rows) I64 = index of the first maximum of each row of x (rows, n).
  virtual void argmax_last(const Tensor& x, Tensor& out) = 0;

  // C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] for b in [0, batch). A, B, C are
  // 3-d (batch, rows, cols) views with unit stride in the last axis; a batch stride
  // of 0 broadcasts. op(A) is (M, K), op(B) is (K, N), C is (M, N).
  virtual void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
                    Tensor& c) = 0;

  // Softmax / log-softmax over the last axis of a contiguous (rows, n) tensor.
  virtual void softmax(const Tensor& x, Tensor& y, bool log) = 0;
  virtual void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) = 0;

  // LayerNorm over the last axis: x (rows, n); weight/bias (n) or undefined.
  // mean/rstd (rows) are saved for the backward.
  virtual void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                          Tensor& mean, Tensor& rstd) = 0;
  // gw/gb may be undefined when weight/bias are.
  virtual void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                   const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) = 0;

  // mask[i] = (philox_uniform(seed, offset, i) >= p) / (1 - p), in x's float dtype.
  virtual void dropout_mask(uint64_t seed, uint64_t offset, double p, Tensor& mask) = 0;

  // out (n, d) = weight (v, d) rows picked by ids (n) (I32/I64). Throws on an id
  // outside [0, v).
  virtual void embedding(const Tensor& weight, const Tensor& ids, Tensor& out) = 0;
  // gw (v, d) += scatter of gout (n, d) rows to ids.
  virtual void embedding_backward(const Tensor& gout, const Tensor& ids, Tensor& gw) = 0;

  // im2col for one image batch: x (N, C, H, W) -> cols (N, C*kh*kw, OH*OW).
  virtual void im2col(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                      Tensor& cols) = 0;
  // col2im: accumulates cols (N, C*kh*kw, OH*OW) into x (N, C, H, W) (x is zeroed first).
  virtual void col2im(const Tensor& cols, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                      Tensor& x) = 0;
  // Winograd convolution (CPU: tensor/cpu/winograd.cpp) for groups 1, stride 1, dilation 1
  // and a square kernel: x (N, C, H, W), w (Co, C, k, k), y (N, Co, OH, OW) with
  // OH = H + 2 ph - k + 1. Ops call it only for a kernel size the backend reports.
  // winograd_weight returns w in the transformed domain; the convolution takes both. The
  // backward writes gx and/or gw from gy; an undefined one is not computed.
  virtual bool winograd_supported(int64_t kernel) const { return false; }
  virtual Tensor winograd_weight(const Tensor& w) {
    MEMEL_FAIL("[winograd_conv2d] no Winograd algorithm on ", device().str());
  }
  virtual void winograd_conv2d(const Tensor& x, const Tensor& w, const Tensor& U, int ph, int pw, Tensor& y) {
    MEMEL_FAIL("[winograd_conv2d] no Winograd algorithm on ", device().str());
  }
  virtual void winograd_conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& U, const Tensor& gy, int ph,
                                        int pw, Tensor& gx, Tensor& gw) {
    MEMEL_FAIL("[winograd_conv2d] no Winograd algorithm on ", device().str());
  }

  // Pooling over (N, C, H, W). Max pooling records the argmax (I64, flat index in H*W).
  virtual void max_pool2d(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor& y,
                          Tensor& argmax) = 0;
  virtual void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, Tensor& gx) = 0;
  virtual void avg_pool2d(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad,
                          Tensor& y) = 0;
  virtual void avg_pool2d_backward(const Tensor& gy, int kh, int kw, int sh, int sw, int ph, int pw,
                                   bool count_pad, Tensor& gx) = 0;

  // Fused scaled-dot-product attention (tensor/cpu/attention.cpp), one (batch, head) at a
  // time: P = softmax(scale * q k^T + mask) over keys, optional dropout on P, out = P v.
  // q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv) and out (B, H, Tq, Dv) are views
  // with unit stride in the last axis; mask is additive, a view expanded to (B, H, Tq, Tk)
  // (any strides), or undefined. lse (B, H, Tq) contiguous receives each row's
  // log-sum-exp (-inf for a row whose every key is -inf), so the backward recomputes P
  // instead of saving it. Dropout (p > 0) keeps element (b, h, i, j) when
  // philox_uniform(seed, offset, flat index in (B, H, Tq, Tk)) >= p and scales by 1/(1-p).
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                         double p, uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse) = 0;
  // Gradients of the above for gout (B, H, Tq, Dv); gq, gk, gv are views like q, k, v.
  virtual void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                  const Tensor& lse, const Tensor& gout, double scale, double p, uint64_t seed,
                                  uint64_t offset, Tensor& gq, Tensor& gk, Tensor& gv) = 0;

  // Fused ConvGRU gates (see gru_candidate / gru_update in autograd/ops.h): gate tensors
  // xg (undefined for a cell without input) and hg (B, 3C, L) with thirds (reset, update,
  // new); cand, h, out (B, C, L). tanh_act picks tanh over leaky ReLU with `slope`.
  virtual void gru_candidate(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand) = 0;
  // gxg (undefined when xg is) and ghg from gcand; their update thirds are set to 0.
  virtual void gru_candidate_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand,
                                      bool tanh_act, double slope, Tensor& gxg, Tensor& ghg) = 0;
  virtual void gru_update(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, Tensor& out) = 0;
  // gxg and ghg get their update thirds (the others set to 0); gcand and gh.
  virtual void gru_update_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                                   const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh) = 0;

  // Cross-entropy on logits (rows, classes) with integer targets (rows). Per-row loss
  // written to `loss` (0 for ignored rows); `lse` (rows) saved for the backward.
  virtual void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                             Tensor& loss, Tensor& lse) = 0;
  // glogits = d(sum_i scale_i * loss_i)/dlogits with scale = grow (rows).
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse,
                                      const Tensor& grow, int64_t ignore_index, double smoothing,
                                      Tensor& glogits) = 0;
};

Backend& backend_for(Device d);
Backend& cpu_backend();
inline Backend& backend_for(const Tensor& t) { return backend_for(t.device()); }

}  // namespace memel
