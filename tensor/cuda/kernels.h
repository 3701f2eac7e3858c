#pragma once
// Launchers of the CUDA backend's kernels that cooperate within a block (reductions, row
// kernels, attention), defined in the tensor/cuda/*.cu files and called by CudaBackend.
// Arguments follow the Backend contract (tensor/backend.h).
#include <vector>

#include "tensor/backend.h"
#include "tensor/cuda/context.h"

namespace memel::cuda {

// reductions.cu
void reduce(const Context& c, ReduceOp op, const Tensor& x, Tensor& out);
void argmax_last(const Context& c, const Tensor& x, Tensor& out);
void sum_squares(const Context& c, const std::vector<Tensor>& ts, Tensor& out);

// rows.cu
void softmax(const Context& c, const Tensor& x, Tensor& y, bool log);
void softmax_backward(const Context& c, const Tensor& y, const Tensor& gy, Tensor& gx, bool log);
void layer_norm(const Context& c, const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y,
                Tensor& mean, Tensor& rstd);
void layer_norm_backward(const Context& c, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                         const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb);
void cross_entropy(const Context& c, const Tensor& logits, const Tensor& target, int64_t ignore_index,
                   double smoothing, Tensor& loss, Tensor& lse);
void cross_entropy_backward(const Context& c, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            const Tensor& grow, int64_t ignore_index, double smoothing, Tensor& glogits);

// attention.cu: false when the shapes are outside what the kernels handle (the backend
// then runs the composed form).
bool attention(const Context& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
               double p, uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse);
bool attention_backward(const Context& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                        const Tensor& lse, const Tensor& gout, double scale, double p, uint64_t seed, uint64_t offset,
                        Tensor& gq, Tensor& gk, Tensor& gv);
bool window_attention(const Context& c, const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads,
                      double scale, Tensor& out, Tensor& probs);
bool window_attention_backward(const Context& c, const Tensor& qkv, const Tensor& probs, const Tensor& gout,
                               int64_t heads, double scale, Tensor& gqkv, Tensor& gbias);

#ifdef MEMEL_WITH_CUDNN
// cudnn_conv.cu: the direct convolution of the Backend contract through cuDNN.
bool cudnn_conv_supported(const Tensor& x, const ConvGeometry& g);
void cudnn_conv_forward(const Context& c, const Tensor& x, const Tensor& w, const ConvGeometry& g, Tensor& y);
void cudnn_conv_backward_data(const Context& c, const Tensor& gy, const Tensor& w, const ConvGeometry& g, Tensor& gx);
void cudnn_conv_backward_filter(const Context& c, const Tensor& x, const Tensor& gy, const ConvGeometry& g,
                                Tensor& gw);
#endif

}  // namespace memel::cuda
