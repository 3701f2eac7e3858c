#pragma once
// The composed forms of the fused kernels (Backend's fused entry points, tensor/backend.h):
// each computes what the fused kernel computes from the backend's core kernels only, on
// the backend's own device, without reading tensor memory from the host. A backend
// without a fused kernel runs these; tests compare them with every fused kernel.
#include <vector>

#include "tensor/backend.h"

namespace memel::fallback {

void softmax(Backend& b, const Tensor& x, Tensor& y, bool log);
void softmax_backward(Backend& b, const Tensor& y, const Tensor& gy, Tensor& gx, bool log);
void layer_norm(Backend& b, const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y, Tensor& mean, Tensor& rstd);
void layer_norm_backward(Backend& b, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd, const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb);
void dropout_mask(Backend& b, uint64_t seed, uint64_t offset, double p, Tensor& mask);
void im2col(Backend& b, const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& cols);
void col2im(Backend& b, const Tensor& cols, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& x);
void max_pool2d(Backend& b, const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor& y, Tensor& argmax);
void max_pool2d_backward(Backend& b, const Tensor& gy, const Tensor& argmax, Tensor& gx);
void avg_pool2d(Backend& b, const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad, Tensor& y);
void avg_pool2d_backward(Backend& b, const Tensor& gy, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad, Tensor& gx);
void attention(Backend& b, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale, double p, uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse);
void attention_backward(Backend& b, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& lse, const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset, Tensor& gq, Tensor& gk, Tensor& gv);
void window_attention(Backend& b, const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale, Tensor& out, Tensor& probs);
void window_attention_backward(Backend& b, const Tensor& qkv, const Tensor& probs, const Tensor& gout, int64_t heads, double scale, Tensor& gqkv, Tensor& gbias);
void window_gather(Backend& b, const Tensor& image, const WindowGeometry& g, Tensor& windows);
void window_scatter(Backend& b, const Tensor& windows, const WindowGeometry& g, Tensor& image);
void gru_candidate(Backend& b, const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand);
void gru_candidate_backward(Backend& b, const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand, bool tanh_act, double slope, Tensor& gxg, Tensor& ghg);
void gru_update(Backend& b, const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, Tensor& out);
void gru_update_backward(Backend& b, const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh);
void cross_entropy(Backend& b, const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing, Tensor& loss, Tensor& lse);
void cross_entropy_backward(Backend& b, const Tensor& logits, const Tensor& target, const Tensor& lse, const Tensor& grow, int64_t ignore_index, double smoothing, Tensor& glogits);
void adam_step(Backend& b, const std::vector<AdamSlot>& slots, const AdamHyper& h);
void sgd_step(Backend& b, const std::vector<SgdSlot>& slots, const SgdHyper& h);
void sum_squares(Backend& b, const std::vector<Tensor>& ts, Tensor& out);
void memel_pass(Backend& b, const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean, const Tensor& var, const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar, Tensor& phi, Tensor& ms_sum, Tensor& ms_n, Tensor& ms_hist);
void memel_merge(Backend& b, Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount, const Tensor& bmean, const Tensor& bvar, int64_t forget_batches, bool count_ahead);
std::vector<int64_t> memel_select(Backend& b, const Tensor& phi, const MemelSelectSpec& s);
void memel_inhibit(Backend& b, const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values);

}  // namespace memel::fallback
