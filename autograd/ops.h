#pragma once
// Differentiable operations. Each op checks its inputs and names itself in errors,
// runs the kernel of its inputs' backend, and records its backward when an input
// requires grad. Shapes follow numpy/PyTorch conventions (broadcasting, negative axes).
#include <cstdint>
#include <vector>

#include "autograd/node.h"
#include "core/rng.h"
#include "tensor/tensor.h"

namespace memel {

using Axes = std::vector<int64_t>;

// --- views and shape (no copy where the layout allows) -----------------------------
Tensor reshape(const Tensor& x, const Shape& shape);  // one -1 allowed; copies only if needed
Tensor flatten(const Tensor& x, int64_t start_axis = 0, int64_t end_axis = -1);
Tensor permute(const Tensor& x, const Axes& order);
Tensor transpose(const Tensor& x, int64_t a, int64_t b);
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step = 1);  // view
Tensor select(const Tensor& x, int64_t axis, int64_t index);  // drops the axis; view
Tensor squeeze(const Tensor& x, int64_t axis);
Tensor unsqueeze(const Tensor& x, int64_t axis);
Tensor expand(const Tensor& x, const Shape& shape);  // -1 keeps a size; view with stride 0
Tensor contiguous(const Tensor& x);                   // x itself when already contiguous
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
Tensor stack(const std::vector<Tensor>& xs, int64_t axis);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis);
// The views x[..., i, ...] along `axis`, as select for every i, recorded as one node whose
// backward stacks their gradients once (select in a loop would zero-fill x's whole shape
// for every i).
std::vector<Tensor> unbind(const Tensor& x, int64_t axis);
Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts, const Axes& axes);  // cyclic shift
// Constant padding of the last axes: pads = {last_lo, last_hi, prev_lo, prev_hi, ...}.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0);

// --- elementwise (broadcasting) --------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double exponent);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor square(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);       // exact: x * Phi(x) (erf form, as BERT)
Tensor gelu_tanh(const Tensor& x);  // tanh approximation
Tensor leaky_relu(const Tensor& x, double slope = 0.01);
Tensor clamp(const Tensor& x, double lo, double hi);
// out = cond ? a : b (cond nonzero); gradients flow to a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// Comparisons: not differentiable, return x's dtype with 1/0.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }

// --- reductions (empty axes = all axes) ---------------------------------------------
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const Axes& axes = {}, bool keepdim = false);  // ties share the gradient
Tensor amin(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor var(const Tensor& x, const Axes& axes = {}, bool unbiased = true, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim = false);  // I64, first max wins; no grad
// Sums a broadcast gradient back to `shape` (used by broadcasting backwards).
Tensor sum_to(const Tensor& x, const Shape& shape);

// --- linear algebra -------------------------------------------------------------
// Matrix product with numpy semantics: 1-d operands are promoted, leading batch axes
// broadcast. (..., M, K) x (..., K, N) -> (..., M, N).
Tensor matmul(const Tensor& a, const Tensor& b);
// y = x W^T + b with W (out, in) as PyTorch's Linear; b may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// --- normalisation, activation helpers -----------------------------------------------
Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// Inverted dropout: in training, zeroes each element with probability p and scales the
// rest by 1/(1-p); the mask depends only on the generator state and element index.
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);
Tensor embedding(const Tensor& weight, const Tensor& ids);  // ids (...) -> (..., d)

// --- attention --------------------------------------------------------------------------
// Fused scaled-dot-product attention (op "attention"): softmax(scale * q k^T + mask) over
// the keys, dropout on those probabilities (training and dropout_p > 0, counter-based
// masks from `gen`, identical to dropout() on the contiguous (B, H, Tq, Tk) probabilities),
// times v. q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv) -> (B, H, Tq, Dv), a view of
// contiguous (B, Tq, H, Dv) memory. mask: additive, broadcastable to (B, H, Tq, Tk) (e.g.
// (B, 1, 1, Tk) with 0 = keep and a very negative value = skip), or undefined; it gets no
// gradient. scale <= 0 means 1/sqrt(D). Backward recomputes the probabilities per head
// from the saved row log-sum-exp, so memory beyond the inputs is O(B H Tq).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = Tensor(),
                                    double dropout_p = 0.0, bool training = false, Generator* gen = nullptr,
                                    double scale = 0.0);

// --- convolution and pooling (N, C, H, W) ---------------------------------------------
// How conv2d computes. Gemm: im2col and matrix products, for every convolution.
// Winograd: fewer multiplications in a transformed domain (F(4x4, 3x3), F(2x2, 5x5)), for
// groups 1, stride 1, dilation 1 and a square kernel the backend has an algorithm for;
// results differ from Gemm by rounding only. Auto: the backend's direct convolution where
// it has one (cuDNN on CUDA; conv_transpose2d too), else Winograd where it applies and the
// channels and the image are large enough for it to be faster, Gemm otherwise.
enum class ConvAlgorithm : uint8_t { Auto, Gemm, Winograd };

struct Conv2dOptions {
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
  int out_pad_h = 0, out_pad_w = 0;  // transposed convolution only
  ConvAlgorithm algorithm = ConvAlgorithm::Auto;  // conv2d only
};
// weight (Cout, Cin/groups, kh, kw); bias (Cout) or undefined. `prepared`: the kernel from
// conv2d_prepare (Winograd's transformed weight), or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o = {},
              const Tensor& prepared = Tensor());
// A kernel prepared for many applications of the same weight (a recurrent cell applies
// its h2h kernel at every step): Winograd's transformed weight when conv2d with these
// options on H x W inputs runs Winograd, else undefined. The caller owns it and passes it
// to conv2d; it is a differentiable function of the weight, so the weight's gradient is
// transformed back once for all the applications. Make it again after the weight changes.
Tensor conv2d_prepare(const Tensor& weight, const Conv2dOptions& o, int64_t H, int64_t W);
// The two halves of a Winograd convolution (groups 1, stride 1, dilation 1, square
// kernel of a size the backend supports): U (P, Co, C) = the transformed weight
// (Co, C, k, k), and the convolution of x (N, C, H, W) with it.
Tensor winograd_weight(const Tensor& weight);
Tensor winograd_conv2d(const Tensor& x, const Tensor& U, int64_t kernel, int pad_h, int pad_w);
// weight (Cin, Cout/groups, kh, kw) as PyTorch's ConvTranspose2d.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o = {});
Tensor max_pool2d(const Tensor& x, int kh, int kw, int sh, int sw, int ph = 0, int pw = 0);
Tensor avg_pool2d(const Tensor& x, int kh, int kw, int sh, int sw, int ph = 0, int pw = 0, bool count_pad = true);

// --- recurrent cells -------------------------------------------------------------------
// ConvGRU gates, fused (layers/convgru.cpp). xg and hg (B, 3C, ...) are the input and the
// state convolutions, each in thirds (reset, update, new) along axis 1; xg may be
// undefined (a cell without input: its terms are 0). With r = sigmoid(xg_r + hg_r) and
// z = sigmoid(xg_z + hg_z):
//   gru_candidate = act(xg_n + r * hg_n), act = tanh or leaky ReLU with `slope`
//   gru_update    = (1 - z) * cand + z * h
Tensor gru_candidate(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope);
Tensor gru_update(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h);

// --- losses ---------------------------------------------------------------------------
enum class Reduction { Mean, Sum, None };
// logits (N, C) or (N, C, ...) flattened to rows; target integer (N) / (N, ...).
// Mean divides by the number of non-ignored targets.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     double label_smoothing = 0.0, Reduction reduction = Reduction::Mean);
Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::Mean);

}  // namespace memel
