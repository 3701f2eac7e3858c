#pragma once
// The kernel contract and the device registry (docs/backends.md).
//
// A backend runs kernels on one device's memory. The contract has two levels:
//   core   every backend implements these (pure virtual): copies and fills, host
//          transfers, elementwise unary/binary/where with broadcasting and strides,
//          reductions, argmax, GEMM, counter-based uniform numbers, row gather/scatter-add.
//   fused  kernels a backend may offer (softmax, LayerNorm, attention, convolution paths,
//          pooling, GRU gates, cross-entropy, dropout, optimizer updates, the memel pass,
//          ...). Each is a public non-virtual entry point; a backend overrides the
//          protected `*_fused` hook of the ones it has, and the base hook composes the
//          kernel from core calls (tensor/fallback.cpp). FallbackScope makes every entry
//          point take the composed form, so tests compare both on every backend.
//
// Ops in autograd/ and layers pick the backend of their inputs' device with backend_for()
// and never test which device they are on. Unless a kernel says otherwise, tensor
// arguments are on the backend's device, contiguous, and outputs are preallocated with
// the right shape and dtype.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "tensor/tensor.h"

namespace memel {

class Allocator;
class MsHistBins;  // tensor/ms_hist.h

enum class UnaryOp : uint8_t {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sign, Square, Reciprocal, Sin, Cos,
  Tanh, Sigmoid, Relu, Gelu, GeluTanh, LeakyRelu,  // LeakyRelu slope = alpha
  AddScalar, MulScalar, PowScalar,                 // x + alpha, x * alpha, x ^ alpha
  ClampMin, ClampMax,                              // max(x, alpha), min(x, alpha)
  Step,                                            // x > alpha ? 1 : 0
};

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Max, Min, Pow, Eq, Ne, Gt, Ge, Lt, Le };

enum class ReduceOp : uint8_t { Sum, Max, Min, Prod };

// Hyper-parameters of one Adam(W) update (optim/adamw.h has the formulas).
struct AdamHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = true;  // AdamW: decay the weights; Adam: add weight_decay * p to the gradient
};
// One parameter's Adam state: p, g, m, v (and vmax with amsgrad, else undefined), all of
// p's shape and dtype; `step` counts this update (1 on the first).
struct AdamSlot {
  Tensor p, g, m, v, vmax;
  int64_t step = 1;
};
struct SgdHyper {
  double lr = 1e-3, weight_decay = 0.0, momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
};
// buf undefined without momentum; `first`: the buffer is set to the gradient, not mixed.
struct SgdSlot {
  Tensor p, g, buf;
  bool first = false;
};

// Geometry of Swin's windows over an image (B, H, W, C), window w, cyclic shift (sh, sw):
// window position (y, x) of the shifted map holds image pixel ((y + sh) % H, (x + sw) % W).
struct WindowGeometry {
  int64_t B = 0, H = 0, W = 0, C = 0, w = 1, sh = 0, sw = 0;
};

// Strides, padding, dilation and groups of a 2-d convolution (Backend::conv_forward).
struct ConvGeometry {
  int sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;
};

// The memel layer's pass over an activation x viewed as (blocks, C, inner), contiguous:
// element (b, c, t) belongs to neuron c (memel/layer.cpp). What one call does:
//   moments  the batch moments of every neuron over its valid elements: count (F64),
//            mean (F64) and biased variance (F64), from sums shifted by the running mean
//            (or, for a neuron without history, its first valid value in the batch);
//            a neuron without valid elements gets 0, 0, 0;
//   score    phi = (x - mean)^2 / (var + eps * mean over neurons of var) against the
//            running statistics (memel_denom in tensor/memel_math.h), -1 where invalid;
//   window   (with score) adds phi to the dump window: ms_sum += sum of phi (as computed,
//            in double), ms_n += count of valid elements, ms_hist[bin(float phi)] += 1.
struct MemelPass {
  int64_t blocks = 0, C = 0, inner = 1;
  bool moments = false, score = false, window = false;
  double eps = 0.01;
  const MsHistBins* bins = nullptr;  // with window
};
// Selection over the scores phi of `scopes` consecutive runs of n elements (-1 or NaN:
// not a candidate): rule 0 top_k (k), 1 top_log, 2 ratio, 3 threshold (phi > threshold);
// the count of the others from the scope's candidates (memel_select_count); order phi
// descending, ties toward the lower index; all_ties adds every candidate equal to the
// last one taken.
struct MemelSelectSpec {
  int64_t scopes = 0, n = 0;
  int rule = 0;
  int64_t k = 1;
  double ratio = 0.0, threshold = 0.0;
  bool all_ties = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual Allocator& allocator() = 0;
  // One line on the kernels in use, for logs and memel-bench ("OpenBLAS 0.3.21 (Zen)").
  virtual std::string describe() const = 0;

  // ===== core: every backend implements these =========================================

  // dst = src elementwise for any strides of either; converts dtype.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void fill(Tensor& dst, double value) = 0;  // any strides
  // Copies bytes between host memory and this device's memory.
  virtual void memcpy_host(void* dst, const void* src, size_t nbytes, bool to_device) = 0;

  // out = op(x); x and out have the same shape (x may be strided). out may be x itself.
  virtual void unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) = 0;
  // gx = gy * d op(x)/dx (uses x, or y = op(x) where cheaper; y may be undefined for ops
  // that do not use it).
  virtual void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                              double alpha) = 0;
  // out = a op b; a and b are views already expanded to out's shape (stride 0 on
  // broadcast axes), of out's dtype. Comparison ops write 1/0. out may be a or b itself.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out (keepdim shape: 1 on reduced axes) = reduce over the axes where out has size 1
  // and x does not. x may be strided. Sums of floats accumulate in double.
  virtual void reduce(ReduceOp op, const Tensor& x, Tensor& out) = 0;
  // out = where(cond != 0, a, b), all expanded to out's shape (cond of any dtype).
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out (rows) I64 = index of the first maximum of each row of x (rows, n), by strict >
  // against the best so far (a NaN never replaces an earlier value).
  virtual void argmax_last(const Tensor& x, Tensor& out) = 0;
  // C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] for b in [0, batch). A, B, C are
  // 3-d (batch, rows, cols) views with unit stride in the last axis; a batch stride
  // of 0 broadcasts. op(A) is (M, K), op(B) is (K, N), C is (M, N).
  virtual void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
                    Tensor& c) = 0;
  // out[i] = philox_uniform(seed, offset, i) (core/rng.h, a float in [0, 1)) converted to
  // out's floating dtype, for the flat index i of contiguous out.
  virtual void uniform(uint64_t seed, uint64_t offset, Tensor& out) = 0;
  // out (n, d) = x (v, d) rows ids (n) (I32/I64). Throws, naming `op`, on an id outside [0, v).
  virtual void index_select(const Tensor& x, const Tensor& ids, Tensor& out, const char* op) = 0;
  // out (v, d) += src (n, d) rows to rows ids (n), in the order of i (fixed sums).
  virtual void index_add(const Tensor& src, const Tensor& ids, Tensor& out, const char* op) = 0;
  // out (v, d) rows ids (n) = src (n, d) rows (ids distinct).
  virtual void index_put(const Tensor& src, const Tensor& ids, Tensor& out, const char* op) = 0;

  // ===== fused: public entry points; hooks below =======================================

  // Softmax / log-softmax over the last axis of a (rows, n) tensor.
  void softmax(const Tensor& x, Tensor& y, bool log);
  void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log);
  // LayerNorm over the last axis: x (rows, n); weight/bias (n) or undefined.
  // mean/rstd (rows) are saved for the backward; gw/gb may be undefined.
  void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y, Tensor& mean,
                  Tensor& rstd);
  void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                           const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb);
  // mask[i] = (u_i >= float(p)) / (1 - p) with u = uniform(seed, offset), in mask's dtype.
  void dropout_mask(uint64_t seed, uint64_t offset, double p, Tensor& mask);
  // im2col for one image batch: x (N, C, H, W) -> cols (N, C*kh*kw, OH*OW).
  void im2col(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& cols);
  // col2im: x (N, C, H, W) = the sum of cols (N, C*kh*kw, OH*OW) placed at their windows.
  void col2im(const Tensor& cols, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& x);
  // Pooling over (N, C, H, W). Max pooling records the argmax (I64, flat index in H*W;
  // the first maximum of the window in row-major order; NaN wins).
  void max_pool2d(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor& y, Tensor& argmax);
  void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, Tensor& gx);
  void avg_pool2d(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad, Tensor& y);
  void avg_pool2d_backward(const Tensor& gy, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad,
                           Tensor& gx);
  // Scaled-dot-product attention: P = softmax(scale * q k^T + mask) over keys, dropout on
  // P, out = P v. q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv), out (B, H, Tq, Dv):
  // views with unit stride in the last axis; mask additive, a view expanded to
  // (B, H, Tq, Tk), or undefined. lse (B, H, Tq) contiguous receives each row's
  // log-sum-exp (-inf for a row whose every key is -inf). Dropout (p > 0) keeps element
  // (b, h, i, j) when uniform(seed, offset) at its flat index in (B, H, Tq, Tk) >= float(p),
  // scaled by 1/(1-p).
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale, double p,
                 uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse);
  // Gradients for gout (B, H, Tq, Dv); gq, gk, gv are views like q, k, v.
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& lse,
                          const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset, Tensor& gq,
                          Tensor& gk, Tensor& gv);
  // Swin window attention without dropout: qkv (BW, N, 3C) with heads of d = C / heads,
  // bias (heads, N, N), mask (nW, N, N) added to window b's scores as mask[b % nW], or
  // undefined. out (BW, N, C); probs (BW, heads, N, N) saved for the backward.
  void window_attention(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale,
                        Tensor& out, Tensor& probs);
  // gqkv (BW, N, 3C) and gbias (heads, N, N) (undefined: not computed).
  void window_attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& gout, int64_t heads,
                                 double scale, Tensor& gqkv, Tensor& gbias);
  // Image (B, H, W, C) <-> its shifted windows (B * H/w * W/w, w*w, C) (WindowGeometry).
  void window_gather(const Tensor& image, const WindowGeometry& g, Tensor& windows);
  void window_scatter(const Tensor& windows, const WindowGeometry& g, Tensor& image);
  // ConvGRU gates (autograd/ops.h gru_candidate / gru_update): xg (undefined for a cell
  // without input) and hg (B, 3C, L) in thirds (reset, update, new); cand, h, out (B, C, L).
  void gru_candidate(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand);
  // gxg (undefined when xg is) and ghg from gcand; their update thirds are set to 0.
  void gru_candidate_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand,
                              bool tanh_act, double slope, Tensor& gxg, Tensor& ghg);
  void gru_update(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, Tensor& out);
  // gxg and ghg get their update thirds (the others set to 0); gcand and gh.
  void gru_update_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                           const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh);
  // Cross-entropy on logits (rows, classes) with integer targets (rows). Per-row loss
  // written to `loss` (0 for ignored rows); `lse` (rows) saved for the backward. Throws on
  // a target outside [0, classes) that is not ignore_index.
  void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                     Tensor& loss, Tensor& lse);
  // glogits = d(sum_i grow_i * loss_i)/dlogits.
  void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse, const Tensor& grow,
                              int64_t ignore_index, double smoothing, Tensor& glogits);
  // Optimizer updates of many parameters in one call (in place).
  void adam_step(const std::vector<AdamSlot>& slots, const AdamHyper& h);
  void sgd_step(const std::vector<SgdSlot>& slots, const SgdHyper& h);
  // out (scalar, F64) = sum over the tensors of the sum of their squared elements.
  void sum_squares(const std::vector<Tensor>& ts, Tensor& out);
  // The memel layer (memel/layer.cpp). memel_pass: x as MemelPass says (floating dtype T);
  // mask undefined or of any dtype with x.numel() a multiple of its numel m (element i is
  // valid when mask[i / (x.numel() / m)] != 0); count, mean, var (C) in T, the running
  // statistics; bcount, bmean, bvar (C) F64 written with moments; phi (x's shape, T)
  // written with score; ms_sum, ms_n (C) and ms_hist (bins) F64 accumulated with window.
  // Tensors a call does not use may be undefined.
  void memel_pass(const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean, const Tensor& var,
                  const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar, Tensor& phi, Tensor& ms_sum,
                  Tensor& ms_n, Tensor& ms_hist);
  // Merges batch moments (bcount, bmean, bvar: F64) into the running statistics (count,
  // mean, var, in place; memel/stats.h has the rule).
  void memel_merge(Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount, const Tensor& bmean,
                   const Tensor& bvar, int64_t forget_batches, bool count_ahead);
  // The selected flat indices of phi (contiguous (scopes * n)), ascending within each
  // scope, scopes in order: a host vector (the selection leaves the device).
  std::vector<int64_t> memel_select(const Tensor& phi, const MemelSelectSpec& s);
  // For selected elements of neurons ids (k, I64): values (k, F64) = mean[ids] (mean in
  // the statistics' dtype), and inhibited (C, F64; undefined: not counted) += 1 per id.
  void memel_inhibit(const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values);

  // Winograd convolution, an algorithm a backend may have (no composed form: conv2d picks
  // im2col + GEMM where a backend has none). Groups 1, stride 1, dilation 1, a square
  // kernel of a size winograd_supported() accepts. U = the weight w (Co, C, k, k) in the
  // transformed domain (P, Co, C); the convolution x (N, C, H, W) -> y (N, Co, OH, OW)
  // with OH = H + 2 ph - k + 1 takes U; the backward writes gx and/or gU (undefined: not
  // computed); winograd_weight_backward maps gU back to gw (the adjoint transform).
  virtual bool winograd_supported(int64_t kernel) const { return false; }
  virtual int64_t winograd_points(int64_t kernel) const { return 0; }  // P
  virtual void winograd_weight(const Tensor& w, Tensor& U) { no_winograd(); }
  virtual void winograd_weight_backward(const Tensor& gU, Tensor& gw) { no_winograd(); }
  virtual void winograd_conv2d(const Tensor& x, const Tensor& U, int64_t kernel, int ph, int pw, Tensor& y) {
    no_winograd();
  }
  virtual void winograd_conv2d_backward(const Tensor& x, const Tensor& U, const Tensor& gy, int64_t kernel, int ph,
                                        int pw, Tensor& gx, Tensor& gU) {
    no_winograd();
  }

  // Direct convolution, an algorithm a backend may have (cuDNN on CUDA; no composed form:
  // conv2d and conv_transpose2d use im2col + GEMM where a backend has none, and whenever
  // fallbacks are forced). The convolution x (N, C, H, W) * w (Co, C / groups, kh, kw) ->
  // y (N, Co, OH, OW) of ConvGeometry's strides, padding, dilation and groups, no bias, all
  // contiguous. conv_supported says whether the backend runs it for x's dtype.
  virtual bool conv_supported(const Tensor& x, const ConvGeometry& g) const { return false; }
  virtual void conv_forward(const Tensor& x, const Tensor& w, const ConvGeometry& g, Tensor& y) { no_conv(); }
  // gx (N, C, H, W) = the adjoint in x of conv_forward applied to gy (N, Co, OH, OW); the
  // transposed convolution's forward.
  virtual void conv_backward_data(const Tensor& gy, const Tensor& w, const ConvGeometry& g, Tensor& gx) {
    no_conv();
  }
  // gw (Co, C / groups, kh, kw) = d(sum gy * conv_forward(x, w)) / dw.
  virtual void conv_backward_filter(const Tensor& x, const Tensor& gy, const ConvGeometry& g, Tensor& gw) {
    no_conv();
  }

 protected:
  // Hooks of the fused kernels: the base versions call the composed fallbacks.
  virtual void softmax_fused(const Tensor& x, Tensor& y, bool log);
  virtual void softmax_backward_fused(const Tensor& y, const Tensor& gy, Tensor& gx, bool log);
  virtual void layer_norm_fused(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                                Tensor& mean, Tensor& rstd);
  virtual void layer_norm_backward_fused(const Tensor& x, const Tensor& weight, const Tensor& mean,
                                         const Tensor& rstd, const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb);
  virtual void dropout_mask_fused(uint64_t seed, uint64_t offset, double p, Tensor& mask);
  virtual void im2col_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                            Tensor& cols);
  virtual void col2im_fused(const Tensor& cols, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                            Tensor& x);
  virtual void max_pool2d_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor& y,
                                Tensor& argmax);
  virtual void max_pool2d_backward_fused(const Tensor& gy, const Tensor& argmax, Tensor& gx);
  virtual void avg_pool2d_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad,
                                Tensor& y);
  virtual void avg_pool2d_backward_fused(const Tensor& gy, int kh, int kw, int sh, int sw, int ph, int pw,
                                         bool count_pad, Tensor& gx);
  virtual void attention_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                               double p, uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse);
  virtual void attention_backward_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                        const Tensor& lse, const Tensor& gout, double scale, double p, uint64_t seed,
                                        uint64_t offset, Tensor& gq, Tensor& gk, Tensor& gv);
  virtual void window_attention_fused(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads,
                                      double scale, Tensor& out, Tensor& probs);
  virtual void window_attention_backward_fused(const Tensor& qkv, const Tensor& probs, const Tensor& gout,
                                               int64_t heads, double scale, Tensor& gqkv, Tensor& gbias);
  virtual void window_gather_fused(const Tensor& image, const WindowGeometry& g, Tensor& windows);
  virtual void window_scatter_fused(const Tensor& windows, const WindowGeometry& g, Tensor& image);
  virtual void gru_candidate_fused(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand);
  virtual void gru_candidate_backward_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand,
                                            const Tensor& gcand, bool tanh_act, double slope, Tensor& gxg,
                                            Tensor& ghg);
  virtual void gru_update_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                                Tensor& out);
  virtual void gru_update_backward_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                                         const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh);
  virtual void cross_entropy_fused(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                   double smoothing, Tensor& loss, Tensor& lse);
  virtual void cross_entropy_backward_fused(const Tensor& logits, const Tensor& target, const Tensor& lse,
                                            const Tensor& grow, int64_t ignore_index, double smoothing,
                                            Tensor& glogits);
  virtual void adam_step_fused(const std::vector<AdamSlot>& slots, const AdamHyper& h);
  virtual void sgd_step_fused(const std::vector<SgdSlot>& slots, const SgdHyper& h);
  virtual void sum_squares_fused(const std::vector<Tensor>& ts, Tensor& out);
  virtual void memel_pass_fused(const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean,
                                const Tensor& var, const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar,
                                Tensor& phi, Tensor& ms_sum, Tensor& ms_n, Tensor& ms_hist);
  virtual void memel_merge_fused(Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount, const Tensor& bmean,
                                 const Tensor& bvar, int64_t forget_batches, bool count_ahead);
  virtual std::vector<int64_t> memel_select_fused(const Tensor& phi, const MemelSelectSpec& s);
  virtual void memel_inhibit_fused(const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values);

 private:
  [[noreturn]] void no_winograd() const;
  [[noreturn]] void no_conv() const;
};

// The precision of float32 matrix products (GEMM) on backends that have a choice, as
// torch.set_float32_matmul_precision: Highest = float32 products; High = TF32 operands;
// Medium = bfloat16 operands. Accumulation and results stay float32 (the CPU always
// computes in float32). Process-wide.
enum class MatmulPrecision : uint8_t { Highest, High, Medium };
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
// "fp32" / "highest", "tf32" / "high", "bf16" / "medium" (errors name the accepted values).
MatmulPrecision parse_matmul_precision(const std::string& s);

// While one lives, every fused entry point of every backend runs its composed fallback
// (tests compare the two forms; scopes nest; process-wide).
class FallbackScope {
 public:
  FallbackScope();
  ~FallbackScope();
  FallbackScope(const FallbackScope&) = delete;
  FallbackScope& operator=(const FallbackScope&) = delete;
};
bool fallbacks_forced();

// --- the registry (tensor/registry.cpp) -------------------------------------------------
// The backend of a device: cpu and sim always; cuda:N when memel was built with CUDA and
// GPU N exists. Throws a clear error otherwise ("no CUDA device found", "built without
// CUDA", "no GPU 3: 2 found").
Backend& backend_for(Device d);
inline Backend& backend_for(const Tensor& t) { return backend_for(t.device()); }
Backend& cpu_backend();
// Every device with a working backend on this machine: cpu, sim, then cuda:0.. .
std::vector<Device> available_devices();

}  // namespace memel
