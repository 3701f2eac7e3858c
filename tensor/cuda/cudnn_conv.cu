// Direct convolution through cuDNN (Backend::conv_forward, conv_backward_data,
// conv_backward_filter; built with MEMEL_WITH_CUDNN when CMake finds cudnn.h and the
// library). Each call is checked (MEMEL_CUDNN_CHECK: the call, cuDNN's message, file and
// line). The algorithm of each (direction, shapes, geometry, dtype, math mode) is chosen
// once, from cuDNN's heuristics (the first deterministic algorithm that succeeds and fits
// the workspace limit, so that runs repeat bit for bit), and cached; workspaces come from
// the caching allocator on the backend's stream. Math: float32 data under matmul
// precision Highest uses FMA math (no TF32); High and Medium allow TF32 tensor cores.
#include "tensor/cuda/kernels.h"

#ifdef MEMEL_WITH_CUDNN
#include <cudnn.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "tensor/cuda/check.h"

#define MEMEL_CUDNN_CHECK(call)                                                                               \
  do {                                                                                                        \
    const cudnnStatus_t memel_d_ = (call);                                                                    \
    if (memel_d_ != CUDNN_STATUS_SUCCESS)                                                                     \
      ::memel::cuda::fail_call(#call, cudnnGetErrorString(memel_d_), __FILE__, __LINE__);                     \
  } while (0)

namespace memel::cuda {

namespace {

constexpr size_t kWorkspaceLimit = size_t(1) << 30;  // the largest workspace an algorithm may ask for

cudnnHandle_t handle(const Context& c) {
  static std::mutex mu;
  static std::map<int, cudnnHandle_t> handles;
  std::lock_guard<std::mutex> lk(mu);
  auto it = handles.find(c.device);
  if (it == handles.end()) {
    cudnnHandle_t h = nullptr;
    MEMEL_CUDNN_CHECK(cudnnCreate(&h));
    it = handles.emplace(c.device, h).first;
  }
  MEMEL_CUDNN_CHECK(cudnnSetStream(it->second, c.stream));
  return it->second;
}

cudnnDataType_t dnn_type(DType t) {
  if (t == DType::F32) return CUDNN_DATA_FLOAT;
  if (t == DType::F64) return CUDNN_DATA_DOUBLE;
  MEMEL_FAIL("[conv2d] cuDNN convolution of ", dtype_name(t), " tensors is not supported");
}

cudnnMathType_t math_type(DType t) {
  if (t != DType::F32 || matmul_precision() == MatmulPrecision::Highest) return CUDNN_FMA_MATH;
  return CUDNN_DEFAULT_MATH;  // TF32 tensor cores allowed
}

// The descriptors of one convolution: x (N, C, H, W), w (K, C / groups, kh, kw), y (N, K,
// OH, OW), all contiguous.
struct Descs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Descs(const Shape& xs, const Shape& ws, const Shape& ys, const ConvGeometry& g, DType t) {
    const cudnnDataType_t dt = dnn_type(t);
    MEMEL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    MEMEL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    MEMEL_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    MEMEL_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    MEMEL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dt, int(xs[0]), int(xs[1]), int(xs[2]),
                                                 int(xs[3])));
    MEMEL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, dt, int(ys[0]), int(ys[1]), int(ys[2]),
                                                 int(ys[3])));
    MEMEL_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, dt, CUDNN_TENSOR_NCHW, int(ws[0]), int(ws[1]), int(ws[2]),
                                                 int(ws[3])));
    MEMEL_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, g.ph, g.pw, g.sh, g.sw, g.dh, g.dw,
                                                      CUDNN_CROSS_CORRELATION, dt));
    MEMEL_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, g.groups));
    MEMEL_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math_type(t)));
  }
  ~Descs() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  Descs(const Descs&) = delete;
  Descs& operator=(const Descs&) = delete;
};

enum class Dir : int { Forward, BackwardData, BackwardFilter };
const char* dir_name(Dir d) {
  return d == Dir::Forward ? "forward" : d == Dir::BackwardData ? "backward data" : "backward filter";
}

struct Choice {
  int algo = 0;
  size_t workspace = 0;
};

std::string key_of(Dir d, int device, const Shape& xs, const Shape& ws, const Shape& ys, const ConvGeometry& g,
                   DType t) {
  return str_cat(int(d), "|", device, "|", shape_str(xs), shape_str(ws), shape_str(ys), "|", g.sh, ",", g.sw, ",",
                 g.ph, ",", g.pw, ",", g.dh, ",", g.dw, ",", g.groups, "|", int(t), "|", int(math_type(t)));
}

// The first deterministic algorithm of cuDNN's ranked list that works and fits the limit
// (else the first that works and fits: the result may then vary in the last bits).
template <typename Perf>
Choice pick(const std::vector<Perf>& perf, int n, Dir d, const std::string& key) {
  for (bool deterministic : {true, false})
    for (int i = 0; i < n; ++i)
      if (perf[size_t(i)].status == CUDNN_STATUS_SUCCESS && perf[size_t(i)].memory <= kWorkspaceLimit &&
          (!deterministic || perf[size_t(i)].determinism == CUDNN_DETERMINISTIC))
        return {int(perf[size_t(i)].algo), perf[size_t(i)].memory};
  MEMEL_FAIL("[conv2d] cuDNN offers no ", dir_name(d), " algorithm within ", kWorkspaceLimit,
             " bytes of workspace for ", key);
}

// The algorithm of this convolution, chosen once per key.
Choice choose(const Context& c, Dir d, const Descs& ds, const std::string& key) {
  static std::mutex mu;
  static std::map<std::string, Choice> cache;
  {
    std::lock_guard<std::mutex> lk(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  cudnnHandle_t h = handle(c);
  Choice ch;
  if (d == Dir::Forward) {
    int max = 0, n = 0;
    MEMEL_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(size_t(std::max(max, 1)));
    MEMEL_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, ds.x, ds.w, ds.conv, ds.y, max, &n, perf.data()));
    ch = pick(perf, n, d, key);
  } else if (d == Dir::BackwardData) {
    int max = 0, n = 0;
    MEMEL_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(size_t(std::max(max, 1)));
    MEMEL_CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataAlgorithm_v7(h, ds.w, ds.y, ds.conv, ds.x, max, &n, perf.data()));
    ch = pick(perf, n, d, key);
  } else {
    int max = 0, n = 0;
    MEMEL_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(size_t(std::max(max, 1)));
    MEMEL_CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, ds.x, ds.y, ds.conv, ds.w, max, &n, perf.data()));
    ch = pick(perf, n, d, key);
  }
  std::lock_guard<std::mutex> lk(mu);
  cache.emplace(key, ch);
  return ch;
}

// Workspace from the caching allocator (stream-ordered like every tensor of the backend).
Tensor workspace(size_t bytes, Device dev) {
  return Tensor::empty({int64_t((bytes + 7) / 8) + 1}, DType::F64, dev);
}

template <typename T>
struct Scalars {
  T one = 1, zero = 0;
};

void check_args(const Tensor& x, const Tensor& w, const Tensor& y, const char* what) {
  for (const Tensor* t : {&x, &w, &y})
    MEMEL_CHECK(t->dim() == 4 && t->is_contiguous() && t->dtype() == x.dtype(), "[conv2d] cuDNN ", what,
                ": contiguous 4-d tensors of one dtype expected, got ", shape_str(t->shape()), " ",
                dtype_name(t->dtype()));
}

}  // namespace

// float32 only: float64 convolutions (tests, gradient checks) take im2col + GEMM, whose
// cuBLAS products are exact in double.
bool cudnn_conv_supported(const Tensor& x, const ConvGeometry& g) {
  return x.dtype() == DType::F32 && x.dim() == 4 && g.groups >= 1;
}

void cudnn_conv_forward(const Context& c, const Tensor& x, const Tensor& w, const ConvGeometry& g, Tensor& y) {
  check_args(x, w, y, "forward");
  if (y.numel() == 0) return;
  const Descs ds(x.shape(), w.shape(), y.shape(), g, x.dtype());
  const std::string key = key_of(Dir::Forward, c.device, x.shape(), w.shape(), y.shape(), g, x.dtype());
  const Choice ch = choose(c, Dir::Forward, ds, key);
  Tensor ws = workspace(ch.workspace, x.device());
  MEMEL_DISPATCH_FLOAT(x.dtype(), "conv2d", [&] {
    const Scalars<scalar_t> s;
    MEMEL_CUDNN_CHECK(cudnnConvolutionForward(handle(c), &s.one, ds.x, x.device_data(), ds.w, w.device_data(), ds.conv,
                                              cudnnConvolutionFwdAlgo_t(ch.algo), ws.device_data(), ch.workspace,
                                              &s.zero, ds.y, y.device_data()));
  });
}

void cudnn_conv_backward_data(const Context& c, const Tensor& gy, const Tensor& w, const ConvGeometry& g, Tensor& gx) {
  check_args(gx, w, gy, "backward data");
  if (gx.numel() == 0) return;
  if (gy.numel() == 0) {
    MEMEL_CUDA_CHECK(cudaMemsetAsync(gx.device_data(), 0, gx.nbytes(), c.stream));
    return;
  }
  const Descs ds(gx.shape(), w.shape(), gy.shape(), g, gx.dtype());
  const std::string key = key_of(Dir::BackwardData, c.device, gx.shape(), w.shape(), gy.shape(), g, gx.dtype());
  const Choice ch = choose(c, Dir::BackwardData, ds, key);
  Tensor ws = workspace(ch.workspace, gx.device());
  MEMEL_DISPATCH_FLOAT(gx.dtype(), "conv2d", [&] {
    const Scalars<scalar_t> s;
    MEMEL_CUDNN_CHECK(cudnnConvolutionBackwardData(handle(c), &s.one, ds.w, w.device_data(), ds.y, gy.device_data(),
                                                   ds.conv, cudnnConvolutionBwdDataAlgo_t(ch.algo), ws.device_data(),
                                                   ch.workspace, &s.zero, ds.x, gx.device_data()));
  });
}

void cudnn_conv_backward_filter(const Context& c, const Tensor& x, const Tensor& gy, const ConvGeometry& g,
                                Tensor& gw) {
  check_args(x, gw, gy, "backward filter");
  if (gw.numel() == 0) return;
  if (x.numel() == 0 || gy.numel() == 0) {
    MEMEL_CUDA_CHECK(cudaMemsetAsync(gw.device_data(), 0, gw.nbytes(), c.stream));
    return;
  }
  const Descs ds(x.shape(), gw.shape(), gy.shape(), g, x.dtype());
  const std::string key = key_of(Dir::BackwardFilter, c.device, x.shape(), gw.shape(), gy.shape(), g, x.dtype());
  const Choice ch = choose(c, Dir::BackwardFilter, ds, key);
  Tensor ws = workspace(ch.workspace, x.device());
  MEMEL_DISPATCH_FLOAT(x.dtype(), "conv2d", [&] {
    const Scalars<scalar_t> s;
    MEMEL_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle(c), &s.one, ds.x, x.device_data(), ds.y, gy.device_data(),
                                                     ds.conv, cudnnConvolutionBwdFilterAlgo_t(ch.algo),
                                                     ws.device_data(), ch.workspace, &s.zero, ds.w,
                                                     gw.device_data()));
  });
}

}  // namespace memel::cuda

#endif  // MEMEL_WITH_CUDNN
