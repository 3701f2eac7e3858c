// The fused attention op: checks, views for the kernel, dropout stream, backward.
#include <cmath>

#include "autograd/ops_util.h"
#include "core/sample_shard.h"

namespace memel {
using namespace detail;

MEMEL_REGISTER_OP("attention");

namespace {

// A view the kernel can hand to BLAS: unit stride in the last axis and a row stride of
// at least the row length; a contiguous copy otherwise.
Tensor blas_view(const Tensor& t) {
  const int64_t rows = t.shape()[2], cols = t.shape()[3];
  const bool ok = (cols <= 1 || t.strides()[3] == 1) && (rows <= 1 || t.strides()[2] >= cols);
  return ok ? t.detach() : t.contiguous_copy();
}

// (B, H, T, D) view of fresh contiguous (B, T, H, D) memory: heads interleaved as the
// (B, T, H*D) layout of a projection, so merging heads afterwards costs no copy.
Tensor empty_bthd(int64_t B, int64_t H, int64_t T, int64_t D, DType dt, Device dev) {
  Tensor m = Tensor::empty({B, T, H, D}, dt, dev);
  return m.as_strided({B, H, T, D}, {T * H * D, D, H * D, 1}, m.offset());
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                    double dropout_p, bool training, Generator* gen, double scale) {
  const char* op = "attention";
  check_defined(q, op, "query");
  check_defined(k, op, "key");
  check_defined(v, op, "value");
  check_float(q, op);
  check_same(q, k, op);
  check_same(q, v, op);
  MEMEL_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "[attention] expects q, k, v of shape (B, H, T, D), got ",
              shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Tk = k.size(2), Dv = v.size(3);
  MEMEL_CHECK(k.size(0) == B && v.size(0) == B && k.size(1) == H && v.size(1) == H && k.size(3) == D &&
                  v.size(2) == Tk,
              "[attention] q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()),
              " do not fit: expected k (B, H, Tk, D) and v (B, H, Tk, Dv) for q (B, H, Tq, D)");
  MEMEL_CHECK(Tq > 0 && Tk > 0 && D > 0 && Dv > 0, "[attention] empty sequence or head size: q ",
              shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  MEMEL_CHECK(dropout_p >= 0.0 && dropout_p < 1.0, "[attention] dropout probability must be in [0, 1), got ",
              dropout_p);
  if (scale <= 0.0) scale = 1.0 / std::sqrt(static_cast<double>(D));
  const Shape ss{B, H, Tq, Tk};
  Tensor mv;
  if (mask.defined()) {
    MEMEL_CHECK(!mask.requires_grad() || !autograd::grad_enabled(),
                "[attention] the mask gets no gradient; pass it detached");
    MEMEL_CHECK(mask.device() == q.device(), "[attention] mask on ", mask.device().str(), ", inputs on ",
                q.device().str());
    bool fits = mask.dim() <= 4;
    for (int64_t i = 1; fits && i <= mask.dim(); ++i) {
      const int64_t m = mask.shape()[mask.dim() - i], s = ss[4 - i];
      fits = m == s || m == 1;
    }
    MEMEL_CHECK(fits, "[attention] mask ", shape_str(mask.shape()), " does not broadcast to the scores ",
                shape_str(ss), " (B, H, Tq, Tk)");
    Tensor md = mask.dtype() == q.dtype() ? mask.detach() : mask.to_dtype(q.dtype());
    mv = broadcast_view(md, ss);  // (B, H, Tq, Tk), stride 0 on broadcast axes
  }
  const bool drop = training && dropout_p > 0.0;
  const double p = drop ? dropout_p : 0.0;
  uint64_t seed = 0, offset = 0;
  if (drop) {
    Generator& g = gen ? *gen : default_generator();
    seed = g.seed();
    // Keyed by the global sample index in a data-parallel run (core/rng.h SampleShard).
    const PerSampleDraw d = reserve_per_sample(g, B, static_cast<uint64_t>(B * H * Tq * Tk));
    MEMEL_CHECK(d.first_index % 4 == 0, "[attention] dropout in a data-parallel run needs H * Tq * Tk (",
                H * Tq * Tk, ") times the first sample index to be a multiple of 4");
    offset = d.offset + d.first_index / 4;
  }
  Tensor qd = blas_view(q), kd = blas_view(k), vd = blas_view(v);
  Tensor out = empty_bthd(B, H, Tq, Dv, q.dtype(), q.device());  // (B, H, Tq, Dv)
  Tensor lse = Tensor::empty({B, H, Tq}, q.dtype(), q.device());
  backend_for(q).attention(qd, kd, vd, mv, scale, p, seed, offset, out, lse);
  return autograd::record(op, out, {q, k, v}, [=](const TensorList& g) -> TensorList {
    Tensor gout = blas_view(g[0]);
    Tensor gq = empty_bthd(B, H, Tq, D, qd.dtype(), qd.device());
    Tensor gk = empty_bthd(B, H, Tk, D, qd.dtype(), qd.device());
    Tensor gv = empty_bthd(B, H, Tk, Dv, qd.dtype(), qd.device());
    backend_for(qd).attention_backward(qd, kd, vd, mv, lse, gout, scale, p, seed, offset, gq, gk, gv);
    return {gq, gk, gv};
  });
}

}  // namespace memel
