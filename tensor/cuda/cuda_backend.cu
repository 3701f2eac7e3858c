// The CUDA backend: the kernel contract of tensor/backend.h on one GPU. Core kernels are
// the functors of tensor/cuda/functors.h (elementwise, gather/scatter) and the block
// kernels of reductions.cu; GEMM goes through cuBLAS (fp32, TF32 or bf16 operands by
// matmul_precision()); the fused kernels of rows.cu and attention.cu, the GRU gates, the
// convolution paths, pooling, dropout and the optimizer updates are the GPU's own. Memory
// comes from a caching allocator over cudaMalloc; all work runs on one stream per GPU.
#include "tensor/cuda/cuda_backend.h"

#include <cuda_bf16.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "tensor/cuda/check.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/device_info.h"
#include "tensor/cuda/functors.h"
#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/cuda/memel.h"
#include "tensor/cuda/multi_launch.cuh"

namespace memel {
namespace cuda {

void fail_call(const char* call, const char* what, const char* file, int line) {
  throw_error(file, line, str_cat("[cuda] ", call, " failed: ", what));
}

const char* cublas_error_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS could not allocate";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "not supported by this GPU";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "unknown cuBLAS status";
  }
}

namespace {

// The allocator's raw functions act on the current GPU (Context::activate runs first).
void* raw_alloc(size_t n) {
  void* p = nullptr;
  if (cudaMalloc(&p, n) != cudaSuccess) {
    cudaGetLastError();  // clear the error: the caching allocator retries or reports
    return nullptr;
  }
  return p;
}
void raw_free(void* p) { cudaFree(p); }
size_t free_bytes() {
  size_t f = 0, t = 0;
  return cudaMemGetInfo(&f, &t) == cudaSuccess ? f : 0;
}

}  // namespace

// A ring of pinned host buffers for uploads: a buffer is refilled only after the copy
// that last read it has finished (its event), and grows to the largest upload it served.
// At most kStagingSlots x kStagingMax bytes are pinned per GPU.
struct PinnedStaging {
  static constexpr int kStagingSlots = 4;
  static constexpr size_t kStagingMax = size_t(64) << 20;
  struct Slot {
    void* host = nullptr;
    size_t cap = 0;
    cudaEvent_t done = nullptr;
    bool pending = false;
  };
  std::mutex mu;
  Slot slots[kStagingSlots];
  int next = 0;
};

void Context::upload(void* dst, const void* src, size_t n) const {
  if (n == 0) return;
  if (n > PinnedStaging::kStagingMax) {  // large: straight from pageable memory, waited for
    MEMEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream));
    sync();
    return;
  }
  PinnedStaging& st = *staging;
  std::lock_guard<std::mutex> lk(st.mu);
  PinnedStaging::Slot& s = st.slots[st.next];
  st.next = (st.next + 1) % PinnedStaging::kStagingSlots;
  if (s.pending) MEMEL_CUDA_CHECK(cudaEventSynchronize(s.done));  // its last copy has read it
  s.pending = false;
  if (s.cap < n) {
    if (s.host) MEMEL_CUDA_CHECK(cudaFreeHost(s.host));
    s.host = nullptr;
    size_t cap = size_t(1) << 20;
    while (cap < n) cap <<= 1;
    MEMEL_CUDA_CHECK(cudaHostAlloc(&s.host, cap, cudaHostAllocDefault));
    s.cap = cap;
  }
  if (!s.done) MEMEL_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  std::memcpy(s.host, src, n);
  MEMEL_CUDA_CHECK(cudaMemcpyAsync(dst, s.host, n, cudaMemcpyHostToDevice, stream));
  MEMEL_CUDA_CHECK(cudaEventRecord(s.done, stream));
  s.pending = true;
}

void Context::activate() const { MEMEL_CUDA_CHECK(cudaSetDevice(device)); }
void Context::sync() const { MEMEL_CUDA_CHECK(cudaStreamSynchronize(stream)); }
void Context::reset_flag(int64_t none) const {
  MEMEL_CUDA_CHECK(cudaMemcpyAsync(flag, &none, sizeof(none), cudaMemcpyHostToDevice, stream));
}
int64_t Context::read_flag() const {
  int64_t v = 0;
  MEMEL_CUDA_CHECK(cudaMemcpyAsync(&v, flag, sizeof(v), cudaMemcpyDeviceToHost, stream));
  sync();
  return v;
}

Context& context(int device) {
  static std::mutex mu;
  static std::vector<std::unique_ptr<Context>> all;
  std::lock_guard<std::mutex> lk(mu);
  const int n = device_count();
  MEMEL_CHECK(n > 0, "[device] cuda:", device, " requested but no CUDA device found");
  MEMEL_CHECK(device >= 0 && device < n, "[device] cuda:", device, " requested but ", n, " CUDA device(s) found");
  if (all.size() < size_t(n)) all.resize(size_t(n));
  if (!all[size_t(device)]) {
    auto c = std::make_unique<Context>();
    c->device = device;
    c->activate();
    MEMEL_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    MEMEL_CUBLAS_CHECK(cublasCreate(&c->blas));
    MEMEL_CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
    // Cached blocks are kept up to 8 GiB; an allocation that fails releases them first.
    auto* a = new CachingAllocator(raw_alloc, raw_free, size_t(8) << 30, "cuda:" + std::to_string(device),
                                   free_bytes);
    // Varying batch shapes reuse cached blocks up to twice their size instead of growing;
    // MEMEL_CUDA_MEMORY_LIMIT_MB caps what memel takes from the GPU (in use + cached).
    a->set_reuse_slack(2.0);
    if (const char* mb = std::getenv("MEMEL_CUDA_MEMORY_LIMIT_MB")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(mb, &end, 10);
      MEMEL_CHECK(end != mb && *end == 0 && v > 0, "[device] MEMEL_CUDA_MEMORY_LIMIT_MB must be a positive integer, got '",
                  mb, "'");
      a->set_limit(size_t(v) << 20);
    }
    c->allocator = a;
    MEMEL_CUDA_CHECK(cudaMalloc(&c->flag, sizeof(int64_t)));
    c->staging = new PinnedStaging();
    all[size_t(device)] = std::move(c);
  }
  return *all[size_t(device)];
}

Context& context_of(const Tensor& t) { return context(t.device().index); }

namespace {

constexpr uint64_t kNone = ~uint64_t(0) >> 1;

// --- the checked index kernels --------------------------------------------------------

template <typename F>
void run_index_kernel(const Context& c, const F& f, int64_t n, const Tensor& ids, const char* op, int64_t v) {
  c.reset_flag(int64_t(kNone));
  for_each(f, n, c.stream);
  const int64_t bad = c.read_flag();
  if (bad == int64_t(kNone)) return;
  const Tensor id = ids.as_strided({1}, {1}, ids.offset() + bad).to(Device::cpu());
  MEMEL_FAIL("[", op, "] index ", int64_t(id.item()), " at position ", bad, " is out of range [0, ", v, ")");
}

// dst (B, R, C) contiguous bf16 = src, a (B, R, C) float view with strides (s0, s1, 1).
struct ToBf16F {
  const float* src;
  __nv_bfloat16* dst;
  int64_t R, C, s0, s1;
  __device__ void operator()(int64_t i) const {
    const int64_t col = i % C, row = (i / C) % R, b = i / (C * R);
    dst[i] = __float2bfloat16(src[b * s0 + row * s1 + col]);
  }
};

cudaDataType_t blas_type(DType t) { return t == DType::F64 ? CUDA_R_64F : CUDA_R_32F; }

// A 3-d (batch, rows, cols) view with unit column stride as bf16, contiguous per batch
// entry (one entry when the batch stride is 0).
Tensor to_bf16(const Context& c, const Tensor& a, int64_t& batch_stride) {
  const int64_t B = a.strides()[0] == 0 ? 1 : a.shape()[0], R = a.shape()[1], C = a.shape()[2];
  Tensor out = Tensor::empty({(B * R * C + 1) / 2}, DType::F32, a.device());  // room for B*R*C bf16
  auto* dst = static_cast<__nv_bfloat16*>(out.device_data());
  for_each(ToBf16F{ptr<float>(a), dst, R, C, a.strides()[0], a.strides()[1]}, B * R * C, c.stream);
  batch_stride = a.strides()[0] == 0 ? 0 : R * C;
  return out;
}

}  // namespace

// --- the backend ------------------------------------------------------------------------

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  Device device() const override { return Device::cuda(device_); }
  Allocator& allocator() override {
    const Context& c = ctx();
    c.activate();
    return *c.allocator;
  }
  std::string describe() const override {
    cudaDeviceProp p{};
    MEMEL_CUDA_CHECK(cudaGetDeviceProperties(&p, device_));
#ifdef MEMEL_WITH_CUDNN
    const char* dnn = ", cuDNN";
#else
    const char* dnn = "";
#endif
    return str_cat("CUDA ", p.name, " (sm_", p.major, p.minor, ", ", p.multiProcessorCount, " SMs), cuBLAS", dnn);
  }

  void copy(const Tensor& src, Tensor& dst) override {
    MEMEL_CHECK(src.shape() == dst.shape(), "[copy] shapes ", shape_str(src.shape()), " and ", shape_str(dst.shape()),
                " differ");
    const Context& c = ctx();
    if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
      MEMEL_CUDA_CHECK(cudaMemcpyAsync(dst.device_data(), src.device_data(), src.nbytes(), cudaMemcpyDeviceToDevice,
                                       c.stream));
      return;
    }
    const auto st = make_strided<2>(dst.shape(), {&src.strides(), &dst.strides()});
    MEMEL_DISPATCH_ALL(src.dtype(), "copy", [&] {
      using S = scalar_t;
      MEMEL_DISPATCH_ALL(dst.dtype(), "copy", [&] {
        using D = scalar_t;
        for_each(CopyF<S, D>{st, ptr<S>(src), ptr<D>(dst)}, dst.numel(), c.stream);
      });
    });
  }

  void fill(Tensor& dst, double value) override {
    const auto st = make_strided<1>(dst.shape(), {&dst.strides()});
    MEMEL_DISPATCH_ALL(dst.dtype(), "fill", [&] {
      using T = scalar_t;
      for_each(FillF<T>{st, static_cast<T>(value), ptr<T>(dst)}, dst.numel(), ctx().stream);
    });
  }

  void memcpy_host(void* dst, const void* src, size_t nbytes, bool to_device) override {
    const Context& c = ctx();
    if (to_device) {  // through a pinned buffer, not waited for (the caller may reuse src at once)
      c.upload(dst, src, nbytes);
      return;
    }
    MEMEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, c.stream));
    c.sync();  // the host reads dst next
  }

  void unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) override {
    const auto st = make_strided<2>(out.shape(), {&x.strides(), &out.strides()});
    MEMEL_DISPATCH_FLOAT(x.dtype(), "unary", [&] {
      using T = scalar_t;
      for_each(UnaryF<T>{op, alpha, st, ptr<T>(x), ptr<T>(out)}, out.numel(), ctx().stream);
    });
  }

  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                      double alpha) override {
    MEMEL_DISPATCH_FLOAT(gy.dtype(), "unary_backward", [&] {
      using T = scalar_t;
      for_each(UnaryGradF<T>{op, alpha, ptr<T>(x), y.defined() ? ptr<T>(y) : nullptr, ptr<T>(gy), ptr<T>(gx)},
               gx.numel(), ctx().stream);
    });
  }

  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override {
    MEMEL_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "[binary] dtype mismatch: ",
                dtype_name(a.dtype()), ", ", dtype_name(b.dtype()), " -> ", dtype_name(out.dtype()));
    const auto st = make_strided<3>(out.shape(), {&a.strides(), &b.strides(), &out.strides()});
    MEMEL_DISPATCH_ALL(out.dtype(), "binary", [&] {
      using T = scalar_t;
      for_each(BinaryF<T>{op, st, ptr<T>(a), ptr<T>(b), ptr<T>(out)}, out.numel(), ctx().stream);
    });
  }

  void reduce(ReduceOp op, const Tensor& x, Tensor& out) override { cuda::reduce(ctx(), op, x, out); }

  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override {
    const auto st = make_strided<4>(out.shape(), {&cond.strides(), &a.strides(), &b.strides(), &out.strides()});
    MEMEL_DISPATCH_ALL(out.dtype(), "where", [&] {
      using T = scalar_t;
      MEMEL_DISPATCH_ALL(cond.dtype(), "where", [&] {
        using C = scalar_t;
        for_each(WhereF<T, C>{st, ptr<C>(cond), ptr<T>(a), ptr<T>(b), ptr<T>(out)}, out.numel(), ctx().stream);
      });
    });
  }

  void argmax_last(const Tensor& x, Tensor& out) override { cuda::argmax_last(ctx(), x, out); }

  void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c) override {
    MEMEL_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3, "[gemm] expects 3-d operands");
    MEMEL_CHECK(a.strides()[2] == 1 && b.strides()[2] == 1 && c.strides()[2] == 1,
                "[gemm] operands need unit stride in the last axis");
    const int64_t batch = c.shape()[0], m = c.shape()[1], n = c.shape()[2];
    const int64_t k = ta ? a.shape()[1] : a.shape()[2];
    if (m == 0 || n == 0 || batch == 0) return;
    if (k == 0) {  // C = beta * C
      if (beta == 0.0)
        fill(c, 0.0);
      else
        unary(UnaryOp::MulScalar, c, c, beta);
      return;
    }
    auto ld = [](const Tensor& t) { return t.shape()[1] == 1 ? std::max<int64_t>(t.shape()[2], 1) : t.strides()[1]; };
    int64_t lda = ld(a), ldb = ld(b);
    const int64_t ldc = ld(c);
    int64_t sa = a.shape()[0] == 1 ? 0 : a.strides()[0], sb = b.shape()[0] == 1 ? 0 : b.strides()[0];
    const int64_t sc = c.strides()[0];
    const Context& cx = ctx();
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B first.
    const cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (c.dtype() == DType::F64) {
      MEMEL_CUBLAS_CHECK(cublasDgemmStridedBatched(cx.blas, opb, opa, int(n), int(m), int(k), &alpha, ptr<double>(b),
                                                   int(ldb), sb, ptr<double>(a), int(lda), sa, &beta, ptr<double>(c),
                                                   int(ldc), sc, int(batch)));
      return;
    }
    const float af = float(alpha), bf = float(beta);
    const MatmulPrecision prec = matmul_precision();
    if (prec == MatmulPrecision::Medium) {
      // bf16 operands, fp32 accumulation and output.
      Tensor a16 = to_bf16(cx, a, sa), b16 = to_bf16(cx, b, sb);
      const int64_t rows_a = a.shape()[1], cols_a = a.shape()[2], rows_b = b.shape()[1], cols_b = b.shape()[2];
      (void)rows_a;
      (void)rows_b;
      lda = cols_a;
      ldb = cols_b;
      MEMEL_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cx.blas, opb, opa, int(n), int(m), int(k), &af, b16.device_data(),
                                                    CUDA_R_16BF, int(ldb), sb, a16.device_data(), CUDA_R_16BF,
                                                    int(lda), sa, &bf, c.device_data(), CUDA_R_32F, int(ldc), sc,
                                                    int(batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return;
    }
    const cublasComputeType_t compute =
        prec == MatmulPrecision::High ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    MEMEL_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cx.blas, opb, opa, int(n), int(m), int(k), &af, b.device_data(),
                                                  blas_type(b.dtype()), int(ldb), sb, a.device_data(),
                                                  blas_type(a.dtype()), int(lda), sa, &bf, c.device_data(),
                                                  CUDA_R_32F, int(ldc), sc, int(batch), compute, CUBLAS_GEMM_DEFAULT));
  }

  void uniform(uint64_t seed, uint64_t offset, Tensor& out) override {
    MEMEL_DISPATCH_FLOAT(out.dtype(), "uniform", [&] {
      using T = scalar_t;
      for_each(UniformF<T>{seed, offset, ptr<T>(out)}, out.numel(), ctx().stream);
    });
  }

  void index_select(const Tensor& x, const Tensor& ids, Tensor& out, const char* op) override {
    const int64_t v = x.shape()[0], d = x.numel() / std::max<int64_t>(v, 1), n = ids.numel();
    const Context& c = ctx();
    MEMEL_DISPATCH_ALL(x.dtype(), op, [&] {
      using T = scalar_t;
      with_ids(ids, [&](auto* pid) {
        using I = std::remove_const_t<std::remove_pointer_t<decltype(pid)>>;
        run_index_kernel(c, IndexSelectF<T, I>{ptr<T>(x), pid, ptr<T>(out), v, d, c.flag}, n * d, ids, op, v);
      });
    });
  }

  void index_add(const Tensor& src, const Tensor& ids, Tensor& out, const char* op) override {
    const int64_t v = out.shape()[0], d = out.numel() / std::max<int64_t>(v, 1), n = ids.numel();
    const Context& c = ctx();
    MEMEL_DISPATCH_ALL(out.dtype(), op, [&] {
      using T = scalar_t;
      with_ids(ids, [&](auto* pid) {
        using I = std::remove_const_t<std::remove_pointer_t<decltype(pid)>>;
        run_index_kernel(c, IndexAddF<T, I>{ptr<T>(src), pid, ptr<T>(out), n, v, d, c.flag}, d, ids, op, v);
      });
    });
  }

#ifdef MEMEL_WITH_CUDNN
  // Direct convolution through cuDNN (cudnn_conv.cu).
  bool conv_supported(const Tensor& x, const ConvGeometry& g) const override {
    return cuda::cudnn_conv_supported(x, g);
  }
  void conv_forward(const Tensor& x, const Tensor& w, const ConvGeometry& g, Tensor& y) override {
    cuda::cudnn_conv_forward(ctx(), x, w, g, y);
  }
  void conv_backward_data(const Tensor& gy, const Tensor& w, const ConvGeometry& g, Tensor& gx) override {
    cuda::cudnn_conv_backward_data(ctx(), gy, w, g, gx);
  }
  void conv_backward_filter(const Tensor& x, const Tensor& gy, const ConvGeometry& g, Tensor& gw) override {
    cuda::cudnn_conv_backward_filter(ctx(), x, gy, g, gw);
  }
#endif

  void index_put(const Tensor& src, const Tensor& ids, Tensor& out, const char* op) override {
    const int64_t v = out.shape()[0], d = out.numel() / std::max<int64_t>(v, 1), n = ids.numel();
    const Context& c = ctx();
    MEMEL_DISPATCH_ALL(out.dtype(), op, [&] {
      using T = scalar_t;
      with_ids(ids, [&](auto* pid) {
        using I = std::remove_const_t<std::remove_pointer_t<decltype(pid)>>;
        run_index_kernel(c, IndexPutF<T, I>{ptr<T>(src), pid, ptr<T>(out), v, d, c.flag}, n * d, ids, op, v);
      });
    });
  }

 protected:
  // --- fused kernels ---------------------------------------------------------------------

  void softmax_fused(const Tensor& x, Tensor& y, bool log) override { cuda::softmax(ctx(), x, y, log); }
  void softmax_backward_fused(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) override {
    cuda::softmax_backward(ctx(), y, gy, gx, log);
  }
  void layer_norm_fused(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                        Tensor& rstd) override {
    cuda::layer_norm(ctx(), x, w, b, eps, y, mean, rstd);
  }
  void layer_norm_backward_fused(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                 const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) override {
    cuda::layer_norm_backward(ctx(), x, w, mean, rstd, gy, gx, gw, gb);
  }
  void dropout_mask_fused(uint64_t seed, uint64_t offset, double p, Tensor& mask) override {
    MEMEL_DISPATCH_FLOAT(mask.dtype(), "dropout", [&] {
      using T = scalar_t;
      for_each(DropoutMaskF<T>{seed, offset, float(p), T(1.0 / (1.0 - p)), ptr<T>(mask)}, mask.numel(), ctx().stream);
    });
  }
  void im2col_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                    Tensor& cols) override {
    const ConvGeom g = geom(x.shape(), kh, kw, sh, sw, ph, pw, dh, dw);
    MEMEL_DISPATCH_FLOAT(x.dtype(), "im2col", [&] {
      using T = scalar_t;
      for_each(Im2colF<T>{g, ptr<T>(x), ptr<T>(cols)}, cols.numel(), ctx().stream);
    });
  }
  void col2im_fused(const Tensor& cols, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                    Tensor& x) override {
    const ConvGeom g = geom(x.shape(), kh, kw, sh, sw, ph, pw, dh, dw);
    MEMEL_DISPATCH_FLOAT(x.dtype(), "col2im", [&] {
      using T = scalar_t;
      for_each(Col2imF<T>{g, ptr<T>(cols), ptr<T>(x)}, x.numel(), ctx().stream);
    });
  }
  void max_pool2d_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor& y,
                        Tensor& argmax) override {
    ConvGeom g = geom(x.shape(), kh, kw, sh, sw, ph, pw, 1, 1);
    g.OH = y.shape()[2], g.OW = y.shape()[3];
    MEMEL_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
      using T = scalar_t;
      for_each(MaxPoolF<T>{g, ptr<T>(x), ptr<T>(y), ptr<int64_t>(argmax)}, y.numel(), ctx().stream);
    });
  }
  void max_pool2d_backward_fused(const Tensor& gy, const Tensor& argmax, Tensor& gx) override {
    const int64_t HW = gx.shape()[2] * gx.shape()[3], OHW = gy.shape()[2] * gy.shape()[3];
    MEMEL_DISPATCH_FLOAT(gx.dtype(), "max_pool2d_backward", [&] {
      using T = scalar_t;
      for_each(MaxPoolBackwardF<T>{HW, OHW, ptr<T>(gy), ptr<int64_t>(argmax), ptr<T>(gx)},
               gx.shape()[0] * gx.shape()[1], ctx().stream);
    });
  }
  void avg_pool2d_fused(const Tensor& x, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad,
                        Tensor& y) override {
    ConvGeom g = geom(x.shape(), kh, kw, sh, sw, ph, pw, 1, 1);
    g.OH = y.shape()[2], g.OW = y.shape()[3];
    MEMEL_DISPATCH_FLOAT(x.dtype(), "avg_pool2d", [&] {
      using T = scalar_t;
      for_each(AvgPoolF<T>{g, count_pad, ptr<T>(x), ptr<T>(y)}, y.numel(), ctx().stream);
    });
  }
  void avg_pool2d_backward_fused(const Tensor& gy, int kh, int kw, int sh, int sw, int ph, int pw, bool count_pad,
                                 Tensor& gx) override {
    ConvGeom g = geom(gx.shape(), kh, kw, sh, sw, ph, pw, 1, 1);
    g.OH = gy.shape()[2], g.OW = gy.shape()[3];
    MEMEL_DISPATCH_FLOAT(gx.dtype(), "avg_pool2d_backward", [&] {
      using T = scalar_t;
      for_each(AvgPoolBackwardF<T>{g, count_pad, ptr<T>(gy), ptr<T>(gx)}, gx.numel(), ctx().stream);
    });
  }
  void attention_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale, double p,
                       uint64_t seed, uint64_t offset, Tensor& out, Tensor& lse) override {
    if (!cuda::attention(ctx(), q, k, v, mask, scale, p, seed, offset, out, lse))
      Backend::attention_fused(q, k, v, mask, scale, p, seed, offset, out, lse);
  }
  void attention_backward_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                const Tensor& lse, const Tensor& gout, double scale, double p, uint64_t seed,
                                uint64_t offset, Tensor& gq, Tensor& gk, Tensor& gv) override {
    if (!cuda::attention_backward(ctx(), q, k, v, mask, lse, gout, scale, p, seed, offset, gq, gk, gv))
      Backend::attention_backward_fused(q, k, v, mask, lse, gout, scale, p, seed, offset, gq, gk, gv);
  }
  void window_attention_fused(const Tensor& qkv, const Tensor& bias, const Tensor& mask, int64_t heads, double scale,
                              Tensor& out, Tensor& probs) override {
    if (!cuda::window_attention(ctx(), qkv, bias, mask, heads, scale, out, probs))
      Backend::window_attention_fused(qkv, bias, mask, heads, scale, out, probs);
  }
  void window_attention_backward_fused(const Tensor& qkv, const Tensor& probs, const Tensor& gout, int64_t heads,
                                       double scale, Tensor& gqkv, Tensor& gbias) override {
    if (!cuda::window_attention_backward(ctx(), qkv, probs, gout, heads, scale, gqkv, gbias))
      Backend::window_attention_backward_fused(qkv, probs, gout, heads, scale, gqkv, gbias);
  }
  void window_gather_fused(const Tensor& image, const WindowGeometry& g, Tensor& windows) override {
    window_copy(image, windows, g, true);
  }
  void window_scatter_fused(const Tensor& windows, const WindowGeometry& g, Tensor& image) override {
    window_copy(windows, image, g, false);
  }
  void gru_candidate_fused(const Tensor& xg, const Tensor& hg, bool tanh_act, double slope, Tensor& cand) override {
    MEMEL_DISPATCH_FLOAT(hg.dtype(), "gru_candidate", [&] {
      using T = scalar_t;
      for_each(GruCandidateF<T>{gru_index<T>(hg), tanh_act, T(slope), opt<T>(xg), ptr<T>(hg), ptr<T>(cand)},
               cand.numel(), ctx().stream);
    });
  }
  void gru_candidate_backward_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& gcand,
                                    bool tanh_act, double slope, Tensor& gxg, Tensor& ghg) override {
    MEMEL_DISPATCH_FLOAT(hg.dtype(), "gru_candidate_backward", [&] {
      using T = scalar_t;
      for_each(GruCandidateBackwardF<T>{gru_index<T>(hg), tanh_act, T(slope), opt<T>(xg), ptr<T>(hg), ptr<T>(cand),
                                        ptr<T>(gcand), opt<T>(gxg), ptr<T>(ghg)},
               cand.numel(), ctx().stream);
    });
  }
  void gru_update_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                        Tensor& out) override {
    MEMEL_DISPATCH_FLOAT(hg.dtype(), "gru_update", [&] {
      using T = scalar_t;
      for_each(GruUpdateF<T>{gru_index<T>(hg), opt<T>(xg), ptr<T>(hg), ptr<T>(cand), ptr<T>(h), ptr<T>(out)},
               out.numel(), ctx().stream);
    });
  }
  void gru_update_backward_fused(const Tensor& xg, const Tensor& hg, const Tensor& cand, const Tensor& h,
                                 const Tensor& gout, Tensor& gxg, Tensor& ghg, Tensor& gcand, Tensor& gh) override {
    MEMEL_DISPATCH_FLOAT(hg.dtype(), "gru_update_backward", [&] {
      using T = scalar_t;
      for_each(GruUpdateBackwardF<T>{gru_index<T>(hg), opt<T>(xg), ptr<T>(hg), ptr<T>(cand), ptr<T>(h), ptr<T>(gout),
                                     opt<T>(gxg), ptr<T>(ghg), ptr<T>(gcand), ptr<T>(gh)},
               gh.numel(), ctx().stream);
    });
  }
  void cross_entropy_fused(const Tensor& logits, const Tensor& target, int64_t ignore_index, double smoothing,
                           Tensor& loss, Tensor& lse) override {
    cuda::cross_entropy(ctx(), logits, target, ignore_index, smoothing, loss, lse);
  }
  void cross_entropy_backward_fused(const Tensor& logits, const Tensor& target, const Tensor& lse, const Tensor& grow,
                                    int64_t ignore_index, double smoothing, Tensor& glogits) override {
    cuda::cross_entropy_backward(ctx(), logits, target, lse, grow, ignore_index, smoothing, glogits);
  }
  // The optimizer updates: one launch per dtype over every parameter (multi_launch.cuh).
  void adam_step_fused(const std::vector<AdamSlot>& slots, const AdamHyper& h) override {
    for (const AdamSlot& s : slots)
      MEMEL_CHECK(s.p.dtype() == DType::F32 || s.p.dtype() == DType::F64, "[adam] parameters must be float32 or "
                  "float64, got ", dtype_name(s.p.dtype()));
    for (DType dt : {DType::F32, DType::F64})
      MEMEL_DISPATCH_FLOAT(dt, h.decoupled ? "AdamW" : "Adam", [&] {
        using T = scalar_t;
        std::vector<AdamF<T>> fs;
        std::vector<int64_t> sizes;
        for (const AdamSlot& s : slots) {
          if (s.p.dtype() != dt) continue;
          fs.push_back(adam_functor<T>(ptr<T>(s.p), ptr<T>(s.m), ptr<T>(s.v), opt<T>(s.vmax), ptr<T>(s.g), s.step, h));
          sizes.push_back(s.p.numel());
        }
        if (!fs.empty()) for_each_multi(ctx(), device(), fs, sizes);
      });
  }
  void sgd_step_fused(const std::vector<SgdSlot>& slots, const SgdHyper& h) override {
    for (const SgdSlot& s : slots)
      MEMEL_CHECK(s.p.dtype() == DType::F32 || s.p.dtype() == DType::F64, "[SGD] parameters must be float32 or "
                  "float64, got ", dtype_name(s.p.dtype()));
    for (DType dt : {DType::F32, DType::F64})
      MEMEL_DISPATCH_FLOAT(dt, "SGD", [&] {
        using T = scalar_t;
        std::vector<SgdF<T>> fs;
        std::vector<int64_t> sizes;
        for (const SgdSlot& s : slots) {
          if (s.p.dtype() != dt) continue;
          fs.push_back(SgdF<T>{ptr<T>(s.p), opt<T>(s.buf), ptr<T>(s.g), s.first, h.nesterov, h.weight_decay != 0.0,
                               T(h.weight_decay), T(h.momentum), T(1.0 - h.dampening), T(-h.lr)});
          sizes.push_back(s.p.numel());
        }
        if (!fs.empty()) for_each_multi(ctx(), device(), fs, sizes);
      });
  }
  void sum_squares_fused(const std::vector<Tensor>& ts, Tensor& out) override { cuda::sum_squares(ctx(), ts, out); }
  // The memel layer's kernels (tensor/cuda/memel.cu).
  void memel_pass_fused(const Tensor& x, const Tensor& mask, const Tensor& count, const Tensor& mean, const Tensor& var,
                        const MemelPass& s, Tensor& bcount, Tensor& bmean, Tensor& bvar, Tensor& phi, Tensor& ms_sum,
                        Tensor& ms_n, Tensor& ms_hist) override {
    cuda::memel_pass(ctx(), x, mask, count, mean, var, s, bcount, bmean, bvar, phi, ms_sum, ms_n, ms_hist);
  }
  void memel_merge_fused(Tensor& count, Tensor& mean, Tensor& var, const Tensor& bcount, const Tensor& bmean,
                         const Tensor& bvar, int64_t forget_batches, bool count_ahead) override {
    cuda::memel_merge(ctx(), count, mean, var, bcount, bmean, bvar, forget_batches, count_ahead);
  }
  std::vector<int64_t> memel_select_fused(const Tensor& phi, const MemelSelectSpec& s) override {
    std::vector<int64_t> out;
    if (cuda::memel_select(ctx(), phi, s, out)) return out;
    return Backend::memel_select_fused(phi, s);
  }
  void memel_inhibit_fused(const Tensor& ids, const Tensor& mean, Tensor& inhibited, Tensor& values) override {
    cuda::memel_inhibit(ctx(), ids, mean, inhibited, values);
  }

 private:
  const Context& ctx() const {
    const Context& c = context(device_);
    c.activate();
    return c;
  }

  template <typename F>
  static void with_ids(const Tensor& ids, F f) {
    if (ids.dtype() == DType::I64)
      f(ptr<const int64_t>(ids));
    else if (ids.dtype() == DType::I32)
      f(ptr<const int32_t>(ids));
    else
      MEMEL_FAIL("[index] ids must be int32 or int64, got ", dtype_name(ids.dtype()));
  }

  template <typename T>
  static T* opt(const Tensor& t) {
    return t.defined() ? ptr<T>(t) : nullptr;
  }

  template <typename T>
  static GruIndex<T> gru_index(const Tensor& hg) {
    const int64_t B = hg.shape()[0], C = hg.shape()[1] / 3;
    return {C, hg.numel() / std::max<int64_t>(B * 3 * C, 1)};
  }

  static ConvGeom geom(const Shape& xs, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    const int64_t H = xs[2], W = xs[3];
    const int64_t OH = (H + 2 * ph - dh * (kh - 1) - 1) / sh + 1, OW = (W + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
    return {xs[0], xs[1], H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw};
  }

  void window_copy(const Tensor& src, Tensor& dst, const WindowGeometry& g, bool to_windows) {
    const int64_t n = to_windows ? dst.numel() : src.numel();
    MEMEL_DISPATCH_ALL(src.dtype(), "window_copy", [&] {
      using T = scalar_t;
      for_each(WindowCopyF<T>{g, to_windows, ptr<T>(src), ptr<T>(dst)}, n, ctx().stream);
    });
  }

  int device_;
};

}  // namespace cuda

int cuda_device_count() { return cuda::device_count(); }

Backend& cuda_backend(int index) {
  static std::mutex mu;
  static std::vector<std::unique_ptr<cuda::CudaBackend>> backends;
  cuda::context(index);  // throws "no CUDA device found" / "no GPU N"
  std::lock_guard<std::mutex> lk(mu);
  if (backends.size() <= size_t(index)) backends.resize(size_t(index) + 1);
  if (!backends[size_t(index)]) backends[size_t(index)] = std::make_unique<cuda::CudaBackend>(index);
  return *backends[size_t(index)];
}

}  // namespace memel
