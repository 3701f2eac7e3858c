// The fused kernels' entry points: the backend's own kernel, or the composed fallback
// (tensor/fallback.h) under a FallbackScope and for backends without one.
#include "tensor/backend.h"

#include "tensor/fallback.h"

namespace memel {

void Backend::softmax(const Tensor& x, Tensor& y, bool log) {
  if (fallbacks_forced())
    fallback::softmax(*this, x, y, log);
  else
    softmax_fused(x, y, log);
}
void Backend::softmax_fused(const Tensor& x, Tensor& y, bool log) { fallback::softmax(*this, x, y, log); }

void Backend::softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) {
  if (fallbacks_forced())
    fallback::softmax_backward(*this, y, gy, gx, log);
  else
    softmax_backward_fused(y, gy, gx, log);
}
void Backend::softmax_backward_fused(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) { fallback::softmax_backward(*this, y, gy, gx, log); }

void Backend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y, Tensor& mean, Tensor& rstd) {
  if (fallbacks_forced())
    fallback::layer_norm(*this, x, weight, bias, eps, y, mean, rstd);
  else
    layer_norm_fused(x, weight, bias, eps, y, mean, rstd);
}
void Backend::layer_norm_fused(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y, Tensor& mean, Tensor& rstd) { fallback::layer_norm(*this, x, weight, bias, eps, y, mean, rstd); }

void Backend::layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd, const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) {
  if (fallbacks_forced())
    fallback::layer_norm_backward(*this, x, weight, mean, rstd, gy, gx, gw, gb);
  else
    layer_norm_backward_fused(x, weight, mean, rstd, gy, gx, gw, gb);
}
void Backend::layer_norm_backward_fused(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd, const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) { fallback::layer_norm_backward(*this, x, weight, mean, rstd, gy, gx, gw, gb); }

void Backend::dropout_mask(uint64_t seed, uint64_t offset, double p, Tensor& mask) {
  if (fallbacks_forced())
    fallback::dropout_mask(*this, seed, offset, p, mask);
  else
    dropout_mask_fused(seed, offset, p, mask);
}
void Backend::dropout_mask_fused(uint64_t seed, uint64_t offset, double p, Tensor& mask) { fallback::dropout_mask(*this, seed, offset, p, mask); }

void Backend::im2col(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& cols) {
  if (fallbacks_forced())
    fallback::im2col(*this, x, kh, kw, sh, sw, ph, pw, dh, dw, cols);
  else
    im2col_fused(x, kh, kw, sh, sw, ph, pw, dh, dw, cols);
}
void Backend::im2col_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& cols) { fallback::im2col(*this, x, kh, kw, sh, sw, ph, pw, dh, dw, cols); }

void Backend::col2im(const Tensor& cols, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& x) {
  if (fallbacks_forced())
    fallback::col2im(*this, cols, kh, kw, sh, sw, ph, pw, dh, dw, x);
  else
    col2im_fused(cols, kh, kw, sh, sw, ph, pw, dh, dw, x);
}
void Backend::col2im_fused(const Tensor& cols, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, Tensor& x) { fallback::col2im(*this, cols, kh, kw, sh, sw, ph, pw, dh, dw, x); }

void Backend::max_pool2d(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor& y, Tensor& argmax) {
  if (fallbacks_forced())
    fallback::max_pool2d(*this, x, kh, kw, sh, sw, ph, pw, y, argmax);
  else
    max_pool2d_fused(x, kh, kw, sh, sw, ph, pw, y, argmax);
}
void Backend::max_pool2d_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor& y, Tensor& argmax) { fallback::max_pool2d(*this, x, kh, kw, sh, sw, ph, pw, y, argmax); }

void Backend::max_pool2d_backward(const Tensor& gy, const Tensor& argmax, Tensor& gx) {
  if (fallbacks_forced())
    fallback::max_pool2d_backward(*this, gy, argmax, gx);
  else
    max_pool2d_backward_fused(gy, argmax, gx);
}
void Backend::max_pool2d_backward_fused(const Tensor& gy, const Tensor& argmax, Tensor& gx) { fallback::max_pool2d_backward(*this, gy, argmax, gx); }

void Backend::avg_pool2d(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad, Tensor& y) {
  if (fallbacks_forced())
    fallback::avg_pool2d(*this, x, kh, kw, sh, sw, ph, pw, count_pad, y);
  else
    avg_pool2d_fused(x, kh, kw, sh, sw, ph, pw, count_pad, y);
}
void Backend::avg_pool2d_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad, Tensor& y) { fallback::avg_pool2d(*this, x, kh, kw, sh, sw, ph, pw, count_pad, y); }

void Backend::avg_pool2d_backward(const Tensor& gy, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad, Tensor& gx) {
  if (fallbacks_forced())
    fallback::avg_pool2d_backward(*this, gy, kh, kw, sh, sw, ph, pw, count_pad, gx);
  else
    avg_pool2d_backward_fused(gy, kh, kw, sh, sw, ph, pw, count_pad, gx);
}
void Backend::avg_pool2d_backward_fused(const Tensor& gy, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad, Tensor& gx) { fallback::avg_pool2d_backward(*this, gy, kh, kw, sh, sw, ph, pw, count_pad, gx); }

void Backend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale, double p, uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse) {
  if (fallbacks_forced())
    fallback::attention(*this, q, k, v, mask, scale, p, seed, offset, out, lse);
  else
    attention_fused(q, k, v, mask, scale, p, seed, offset, out, lse);
}
void Backend::attention_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale, double p, uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse) { fallback::attention(*this, q, k, v, mask, scale, p, seed, offset, out, lse); }

void Backend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& lse, const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset, Tensor& gq, Tensor& gk, Tensor& gv) {
  if (fallbacks_forced())
    fallback::attention_backward(*this, q, k, v, mask, lse, gout, scale, p, seed, offset, gq, gk, gv);
  else
    attention_backward_fused(q, k, v, mask, lse, gout, scale, p, seed, offset, gq, gk, gv);
}
void Backend::attention_backward_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& lse, const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset, Tensor& gq, Tensor& gk, Tensor& gv) { fallback::attention_backward(*this, q, k, v, mask, lse, gout, scale, p, seed, offset, gq, gk, gv); }

void Backend::window_attention(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale, Tensor& out, Tensor& probs) {
  if (fallbacks_forced())
    fallback::window_attention(*this, qkv, bias, mask, heads, scale, out, probs);
  else
    window_attention_fused(qkv, bias, mask, heads, scale, out, probs);
}
void Backend::window_attention_fused(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale, Tensor& out, Tensor& probs) { fallback::window_attention(*this, qkv, bias, mask, heads, scale, out, probs); }

void Backend::window_attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& gout, int64_t heads, double scale, Tensor& gqkv, Tensor& gbias) {
  if (fallbacks_forced())
    fallback::window_attention_backward(*this, qkv, probs, gout, heads, scale, gqkv, gbias);
  else
    window_attention_backward_fused(qkv, probs, gout, heads, scale, gqkv, gbias);
}
void Backend::window_attention_backward_fused(const Tensor& qkv, const Tensor& probs, const Tensor& gout, int64_t heads, double scale, Tensor& gqkv, Tensor& gbias) { fallback::window_attention_backward(*this, qkv, probs, gout, heads, scale, gqkv, gbias); }

void Backend::window_gather(const Tensor& image, const WindowGeometry& g, Tensor& windows) {
  if (fallbacks_forced())
    fallback::window_gather(*this, image, g, windows);
  else
    window_gather_fused(image, g, windows);
}
void Backend::window_gather_fused(const Tensor& image, const WindowGeometry& g, Tensor& windows) { fallback::window_gather(*this, image, g, windows); }

void Backend::window_scatter(const Tensor& windows, const WindowGeometry& g, Tensor& image) {
  if (fallbacks_forced())
    fallback::window_scatter(*this, windows, g, image);
  else
    window_scatter_fused(windows, g, image);
}
void Backend::window_scatter_fused(const Tensor& windows, const WindowGeometry& g, Tensor& image) { fallback::window_scatter(*this, windows, g, image); }

void Backend::gru_candidate(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand) {
  if (fallbacks_forced())
    fallback::gru_candidate(*this, xg, hg, tanh_act, slope, cand);
  else
    gru_candidate_fused(xg, hg, tanh_act, slope, cand);
}
void Backend::gru_candidate_fused(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand) { fallback::gru_candidate(*this, xg, hg, tanh_act, slope, cand); }

void Backend::gru_candidate_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand, bool tanh_act, double slope, Tensor& gxg, Tensor& ghg) {
  if (fallbacks_forced())
    fallback::gru_candidate_backward(*this, xg, hg, cand, gcand, tanh_act, slope, gxg, ghg);
  else
    gru_candidate_backward_fused(xg, hg, cand, gcand, tanh_act, slope, gxg, ghg);
}
void Backend::gru_candidate_backward_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand, bool tanh_act, double slope, Tensor& gxg, Tensor& ghg) { fallback::gru_candidate_backward(*this, xg, hg, cand, gcand, tanh_act, slope, gxg, ghg); }

void Backend::gru_update(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, Tensor& out) {
  if (fallbacks_forced())
    fallback::gru_update(*this, xg, hg, cand, h, out);
  else
    gru_update_fused(xg, hg, cand, h, out);
}
void Backend::gru_update_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, Tensor& out) { fallback::gru_update(*this, xg, hg, cand, h, out); }

void Backend::gru_update_backward(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh) {
  if (fallbacks_forced())
    fallback::gru_update_backward(*this, xg, hg, cand, h, gout, gxg, ghg, gcand, gh);
  else
    gru_update_backward_fused(xg, hg, cand, h, gout, gxg, ghg, gcand, gh);
}
void Backend::gru_update_backward_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h, const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh) { fallback::gru_update_backward(*this, xg, hg, cand, h, gout, gxg, ghg, gcand, gh); }

void Backend::cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing, Tensor& loss, Tensor& lse) {
  if (fallbacks_forced())
    fallback::cross_entropy(*this, logits, target, ignore_index, smoothing, loss, lse);
  else
    cross_entropy_fused(logits, target, ignore_index, smoothing, loss, lse);
}
void Backend::cross_entropy_fused(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing, Tensor& loss, Tensor& lse) { fallback::cross_entropy(*this, logits, target, ignore_index, smoothing, loss, lse); }

void Backend::cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& lse, const Tensor& grow, int64_t ignore_index, double smoothing, Tensor& glogits) {
  if (fallbacks_forced())
    fallback::cross_entropy_backward(*this, logits, target, lse, grow, ignore_index, smoothing, glogits);
  else
    cross_entropy_backward_fused(logits, target, lse, grow, ignore_index, smoothing, glogits);
}
void Backend::cross_entropy_backward_fused(const Tensor& logits, const Tensor& target, const Tensor& lse, const Tensor& grow, int64_t ignore_index, double smoothing, Tensor& glogits) { fallback::cross_entropy_backward(*this, logits, target, lse, grow, ignore_index, smoothing, glogits); }

void Backend::adam_step(const std::vector<AdamSlot>& slots, const AdamHyper& h) {
  if (fallbacks_forced())
    fallback::adam_step(*this, slots, h);
  else
    adam_step_fused(slots, h);
}
void Backend::adam_step_fused(const std::vector<AdamSlot>& slots, const AdamHyper& h) { fallback::adam_step(*this, slots, h); }

void Backend::sgd_step(const std::vector<SgdSlot>& slots, const SgdHyper& h) {
  if (fallbacks_forced())
    fallback::sgd_step(*this, slots, h);
  else
    sgd_step_fused(slots, h);
}
void Backend::sgd_step_fused(const std::vector<SgdSlot>& slots, const SgdHyper& h) { fallback::sgd_step(*this, slots, h); }

void Backend::sum_squares(const std::vector<Tensor>& ts, Tensor& out) {
  if (fallbacks_forced())
    fallback::sum_squares(*this, ts, out);
  else
    sum_squares_fused(ts, out);
}
void Backend::sum_squares_fused(const std::vector<Tensor>& ts, Tensor& out) { fallback::sum_squares(*this, ts, out); }

void Backend::memel_pass(const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean,
                         const Tensor& var, const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar,
                         Tensor& phi, Tensor& ms_sum, Tensor& ms_n, Tensor& ms_hist) {
  MEMEL_CHECK(x.numel() == s.blocks * s.C * s.inner, "[memel_pass] x of ", x.numel(), " elements for ", s.blocks,
              " blocks of ", s.C, " neurons x ", s.inner);
  MEMEL_CHECK(!s.window || (s.score && s.bins), "[memel_pass] the dump window needs the scores and the bins");
  if (mask.defined())
    MEMEL_CHECK(mask.numel() > 0 && x.numel() % mask.numel() == 0, "[memel_pass] mask of ", mask.numel(),
                " elements for an input of ", x.numel());
  if (fallbacks_forced())
    fallback::memel_pass(*this, x, mask, count, mean, var, s, bcount, bmean, bvar, phi, ms_sum, ms_n, ms_hist);
  else
    memel_pass_fused(x, mask, count, mean, var, s, bcount, bmean, bvar, phi, ms_sum, ms_n, ms_hist);
}
void Backend::memel_pass_fused(const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean,
                               const Tensor& var, const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar,
                               Tensor& phi, Tensor& ms_sum, Tensor& ms_n, Tensor& ms_hist) {
  fallback::memel_pass(*this, x, mask, count, mean, var, s, bcount, bmean, bvar, phi, ms_sum, ms_n, ms_hist);
}

void Backend::memel_merge(Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount, const Tensor& bmean,
                          const Tensor& bvar, int64_t forget_batches, bool count_ahead) {
  MEMEL_CHECK(bcount.numel() == count.numel() && bmean.numel() == count.numel() && bvar.numel() == count.numel(),
              "[memel_merge] batch moments of ", bcount.numel(), " neurons for statistics of ", count.numel());
  if (fallbacks_forced())
    fallback::memel_merge(*this, count, mean, var, bcount, bmean, bvar, forget_batches, count_ahead);
  else
    memel_merge_fused(count, mean, var, bcount, bmean, bvar, forget_batches, count_ahead);
}
void Backend::memel_merge_fused(Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount, const Tensor& bmean,
                                const Tensor& bvar, int64_t forget_batches, bool count_ahead) {
  fallback::memel_merge(*this, count, mean, var, bcount, bmean, bvar, forget_batches, count_ahead);
}

std::vector<int64_t> Backend::memel_select(const Tensor& phi, const MemelSelectSpec& s) {
  MEMEL_CHECK(phi.numel() == s.scopes * s.n, "[memel_select] scores of ", phi.numel(), " elements for ", s.scopes,
              " scopes of ", s.n);
  if (fallbacks_forced()) return fallback::memel_select(*this, phi, s);
  return memel_select_fused(phi, s);
}
std::vector<int64_t> Backend::memel_select_fused(const Tensor& phi, const MemelSelectSpec& s) {
  return fallback::memel_select(*this, phi, s);
}

void Backend::memel_inhibit(const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values) {
  MEMEL_CHECK(values.numel() == ids.numel(), "[memel_inhibit] ", values.numel(), " values for ", ids.numel(), " ids");
  if (fallbacks_forced())
    fallback::memel_inhibit(*this, ids, mean, inhibited, values);
  else
    memel_inhibit_fused(ids, mean, inhibited, values);
}
void Backend::memel_inhibit_fused(const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values) {
  fallback::memel_inhibit(*this, ids, mean, inhibited, values);
}

void Backend::no_winograd() const { MEMEL_FAIL("[winograd_conv2d] no Winograd algorithm on ", device().str()); }
void Backend::no_conv() const { MEMEL_FAIL("[conv2d] no direct convolution algorithm on ", device().str()); }

}  // namespace memel
