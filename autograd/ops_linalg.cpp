// Matrix products.
#include "autograd/ops_util.h"

namespace memel {
using namespace detail;

MEMEL_REGISTER_OP("matmul");
MEMEL_REGISTER_OP("linear");

namespace {

// A 3-d (batch, rows, cols) view usable by gemm: rows-major or transposed (then
// `trans` is set and the view is of the transposed storage). Copies only when neither.
struct GemmOperand {
  Tensor view;
  bool trans = false;
};

GemmOperand gemm_operand(const Tensor& t3) {
  // t3: (B, R, C)
  const Shape& s = t3.shape();
  const Shape& st = t3.strides();
  auto batch_ok = [&](int64_t inner) { return s[0] == 1 || st[0] >= inner || st[0] == 0; };
  if ((st[2] == 1 || s[2] == 1) && (st[1] >= std::max<int64_t>(s[2], 1) || s[1] == 1) && batch_ok(s[1] * s[2])) {
    Shape nst = st;
    nst[2] = 1;
    if (s[1] == 1) nst[1] = std::max<int64_t>(s[2], 1);
    return {t3.as_strided(s, nst, t3.offset()), false};
  }
  if ((st[1] == 1 || s[1] == 1) && (st[2] >= std::max<int64_t>(s[1], 1) || s[2] == 1) && batch_ok(s[1] * s[2])) {
    Shape ts = {s[0], s[2], s[1]};
    Shape tst = {st[0], st[2], 1};
    if (s[2] == 1) tst[1] = std::max<int64_t>(s[1], 1);
    return {t3.as_strided(ts, tst, t3.offset()), true};
  }
  Tensor c = t3.contiguous_copy();
  return {c, false};
}

// out (B, M, N) = a (B, M, K) @ b (B, K, N) with broadcasting batch (size-1 batch allowed).
void gemm_into(const Tensor& a3, const Tensor& b3, Tensor& out3, double beta = 0.0) {
  GemmOperand A = gemm_operand(a3), B = gemm_operand(b3);
  backend_for(out3).gemm(A.trans, B.trans, 1.0, A.view, B.view, beta, out3);
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_same(a_in, b_in, "matmul");
  check_float(a_in, "matmul");
  MEMEL_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "[matmul] operands must have rank >= 1, got ",
              shape_str(a_in.shape()), " and ", shape_str(b_in.shape()));
  Tensor a = a_in.dim() == 1 ? unsqueeze(a_in, 0) : a_in;
  Tensor b = b_in.dim() == 1 ? unsqueeze(b_in, 1) : b_in;
  const int64_t M = a.shape()[a.dim() - 2], K = a.shape().back();
  const int64_t K2 = b.shape()[b.dim() - 2], N = b.shape().back();
  MEMEL_CHECK(K == K2, "[matmul] ", shape_str(a_in.shape()), " x ", shape_str(b_in.shape()),
              ": inner dimensions differ");
  Shape ab(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ab, bb, "matmul");
  const int64_t B = shape_numel(batch);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  {
    NoGradGuard ng;
    auto to3 = [&](const Tensor& t, const Shape& tb, int64_t r, int64_t c) -> Tensor {
      if (shape_numel(tb) == 1 && tb.size() <= batch.size()) {
        // No batch of its own: broadcast with batch stride 0.
        Tensor v = t.dim() == 2 ? t : reshape(t.detach(), {r, c});
        return v.as_strided({1, r, c}, {0, v.strides()[0], v.strides()[1]}, v.offset());
      }
      Shape full = batch;
      full.push_back(r);
      full.push_back(c);
      Tensor e = broadcast_view(t.detach(), full);
      if (tb == batch) {
        // Merge batch axes when they are laid out uniformly.
        bool uniform = true;
        for (size_t i = 0; i + 1 < batch.size(); ++i)
          uniform &= e.strides()[i] == e.strides()[i + 1] * batch[i + 1] || batch[i] == 1;
        if (uniform && !batch.empty())
          return e.as_strided({B, r, c}, {e.strides()[batch.size() - 1], e.strides()[batch.size()], e.strides()[batch.size() + 1]}, e.offset());
      }
      return e.contiguous_copy().as_strided({B, r, c}, {r * c, c, 1}, 0);
    };
    Tensor a3 = to3(a, ab, M, K), b3 = to3(b, bb, K, N);
    Tensor o3 = out.as_strided({B, M, N}, {M * N, N, 1}, 0);
    gemm_into(a3, b3, o3);
  }
  Tensor y = out;
  if (a_in.dim() == 1 && b_in.dim() == 1) y = reshape(out.detach(), {});
  else if (a_in.dim() == 1) y = squeeze(out.detach(), -2);
  else if (b_in.dim() == 1) y = squeeze(out.detach(), -1);
  Tensor ad = a_in.detach(), bd = b_in.detach();
  bool ga = a_in.requires_grad(), gb = b_in.requires_grad();
  return autograd::record("matmul", y, {a_in, b_in}, [=](const TensorList& g) -> TensorList {
    Tensor A = ad.dim() == 1 ? unsqueeze(ad, 0) : ad;
    Tensor Bm = bd.dim() == 1 ? unsqueeze(bd, 1) : bd;
    Tensor G = g[0];
    if (ad.dim() == 1 && bd.dim() == 1) G = reshape(G, {1, 1});
    else if (ad.dim() == 1) G = unsqueeze(G, -2);
    else if (bd.dim() == 1) G = unsqueeze(G, -1);
    Tensor gra, grb;
    if (ga) gra = reshape(sum_to(matmul(G, transpose(Bm, -1, -2)), A.shape()), ad.shape());
    if (gb) grb = reshape(sum_to(matmul(transpose(A, -1, -2), G), Bm.shape()), bd.shape());
    return {gra, grb};
  });
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_same(x, w, "linear");
  MEMEL_CHECK(w.dim() == 2, "[linear] weight must be 2-d (out, in), got ", shape_str(w.shape()));
  MEMEL_CHECK(x.dim() >= 1 && x.shape().back() == w.shape()[1], "[linear] input ", shape_str(x.shape()),
              " has last dimension ", x.dim() ? x.shape().back() : 0, ", weight ", shape_str(w.shape()), " expects ",
              w.shape()[1]);
  const int64_t in = w.shape()[1], outf = w.shape()[0];
  const int64_t rows = x.numel() / std::max<int64_t>(in, 1);
  if (bias.defined())
    MEMEL_CHECK(bias.dim() == 1 && bias.shape()[0] == outf, "[linear] bias ", shape_str(bias.shape()),
                " does not match ", outf, " outputs");
  Shape os = x.shape();
  os.back() = outf;
  Tensor y = Tensor::empty(os, x.dtype(), x.device());
  {
    Tensor xc = cont(x);
    Tensor x3 = xc.as_strided({1, rows, in}, {0, in, 1}, xc.offset());
    Tensor wc = cont(w);
    Tensor w3 = wc.as_strided({1, outf, in}, {0, in, 1}, wc.offset());
    Tensor y3 = y.as_strided({1, rows, outf}, {0, outf, 1}, 0);
    if (bias.defined()) {
      // Start from the broadcast bias and accumulate the product (beta = 1).
      backend_for(y).copy(broadcast_view(bias.detach(), {1, rows, outf}), y3);
      backend_for(y).gemm(false, true, 1.0, x3, w3, 1.0, y3);
    } else {
      backend_for(y).gemm(false, true, 1.0, x3, w3, 0.0, y3);
    }
  }
  Tensor xd = x.detach(), wd = w.detach();
  bool gx_need = x.requires_grad(), gw_need = w.requires_grad(), gb_need = bias.defined() && bias.requires_grad();
  return autograd::record("linear", y, {x, w, bias}, [=](const TensorList& g) -> TensorList {
    Tensor g2 = reshape(cont(g[0]), {rows, outf});
    Tensor gx, gw, gb;
    if (gx_need) gx = reshape(matmul(g2, wd), xd.shape());                                 // (rows, in)
    if (gw_need) gw = matmul(transpose(g2, 0, 1), reshape(cont(xd), {rows, in}));          // (out, in)
    if (gb_need) gb = sum(g2, {0});
    return {gx, gw, gb};
  });
}

}  // namespace memel
