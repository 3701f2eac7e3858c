// The CUDA backend's thread-independent kernels (tensor/cuda/functors.h) run on the host
// through the same functors the GPU runs, against the CPU backend on awkward shapes:
// their index arithmetic is checked on every machine, with or without a GPU.
#include <doctest/doctest.h>

#include "support.h"

#include <cmath>
#include <cstring>

#include "autograd/ops.h"
#include "tensor/backend.h"
#include "tensor/cuda/functors.h"
#include "tensor/cuda/multi_tensor.h"

using namespace memel;
using namespace memel::cuda;

namespace {

Tensor uni(const Shape& s, uint64_t seed, double lo = -2, double hi = 2, DType dt = DType::F32) {
  Generator g(seed);
  return Tensor::uniform(s, lo, hi, dt, &g);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor x = a.contiguous_copy(), y = b.contiguous_copy();
  return x.shape() == y.shape() && x.dtype() == y.dtype() && std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype()); }

// A (4, 3, 5) transposed view of a (5, 3, 4) tensor, plus a broadcast (1, 3, 1) operand.
struct Views {
  Tensor base = uni({5, 3, 4}, 1);
  Tensor x = base.as_strided({4, 3, 5}, {1, 4, 12}, 0);
  Tensor b = uni({1, 3, 1}, 2).as_strided({4, 3, 5}, {0, 1, 0}, 0);
};

}  // namespace

TEST_CASE("cuda functors: Strided offsets unravel like the CPU's plans") {
  const Views v;
  const auto st = make_strided<2>(v.x.shape(), {&v.x.strides(), &v.b.strides()});
  for (int64_t i = 0; i < v.x.numel(); ++i) {
    const int64_t a = i / 15, c = (i / 5) % 3, e = i % 5;
    int64_t o[2];
    st.offsets(i, o);
    CHECK(o[0] == a * 1 + c * 4 + e * 12);
    CHECK(o[1] == c);
  }
}

TEST_CASE("cuda functors: unary, binary, where, copy and fill on strided and broadcast views") {
  const Views v;
  Backend& cpu = cpu_backend();
  const Shape& s = v.x.shape();
  for (UnaryOp op : {UnaryOp::Gelu, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::LeakyRelu, UnaryOp::ClampMax}) {
    Tensor ref = Tensor::empty(s), out = Tensor::empty(s);
    cpu.unary(op, v.x, ref, 0.3);
    const auto st = make_strided<2>(s, {&v.x.strides(), &out.strides()});
    run_on_host(UnaryF<float>{op, 0.3, st, v.x.data<float>(), out.data<float>()}, out.numel());
    CHECK(rel_err(out, ref) < 1e-6);  // Gelu: the CPU's float path uses Eigen's erf
  }
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Div, BinaryOp::Max, BinaryOp::Ge}) {
    Tensor ref = Tensor::empty(s), out = Tensor::empty(s);
    cpu.binary(op, v.x, v.b, ref);
    const auto st = make_strided<3>(s, {&v.x.strides(), &v.b.strides(), &out.strides()});
    run_on_host(BinaryF<float>{op, st, v.x.data<float>(), v.b.data<float>(), out.data<float>()}, out.numel());
    CHECK(same_bits(out, ref));
  }
  {
    Tensor ref = Tensor::empty(s), out = Tensor::empty(s);
    cpu.where(v.b, v.x, v.b, ref);
    const auto st = make_strided<4>(s, {&v.b.strides(), &v.x.strides(), &v.b.strides(), &out.strides()});
    run_on_host(WhereF<float, float>{st, v.b.data<float>(), v.x.data<float>(), v.b.data<float>(), out.data<float>()},
                out.numel());
    CHECK(same_bits(out, ref));
  }
  {
    Tensor ref = Tensor::empty(s, DType::F64), out = Tensor::empty(s, DType::F64);
    cpu.copy(v.x, ref);
    const auto st = make_strided<2>(s, {&v.x.strides(), &out.strides()});
    run_on_host(CopyF<float, double>{st, v.x.data<float>(), out.data<double>()}, out.numel());
    CHECK(same_bits(out, ref));
    Tensor dst = Tensor::zeros({6, 7});
    Tensor view = dst.as_strided({3, 4}, {14, 2}, 1);
    const auto sf = make_strided<1>(view.shape(), {&view.strides()});
    run_on_host(FillF<float>{sf, 2.5f, view.data<float>()}, view.numel());
    Tensor ref2 = Tensor::zeros({6, 7});
    Tensor rv = ref2.as_strided({3, 4}, {14, 2}, 1);
    cpu.fill(rv, 2.5);
    CHECK(same_bits(dst, ref2));
  }
  {  // unary backward on contiguous tensors
    Tensor x = uni({77}, 3), y = Tensor::empty({77}), gy = uni({77}, 4), ref = Tensor::empty({77}),
           out = Tensor::empty({77});
    cpu.unary(UnaryOp::Tanh, x, y, 0);
    cpu.unary_backward(UnaryOp::Tanh, x, y, gy, ref, 0);
    run_on_host(UnaryGradF<float>{UnaryOp::Tanh, 0, x.data<float>(), y.data<float>(), gy.data<float>(),
                                  out.data<float>()},
                77);
    CHECK(same_bits(out, ref));
  }
}

TEST_CASE("cuda functors: uniform numbers and dropout masks equal the CPU's bit for bit") {
  Backend& cpu = cpu_backend();
  Tensor ref = Tensor::empty({1001}), out = Tensor::empty({1001});
  cpu.uniform(9, 17, ref);
  run_on_host(UniformF<float>{9, 17, out.data<float>()}, out.numel());
  CHECK(same_bits(out, ref));
  for (DType dt : {DType::F32, DType::F64}) {
    Tensor mref = Tensor::empty({513}, dt), m = Tensor::empty({513}, dt);
    cpu.dropout_mask(5, 3, 0.3, mref);
    if (dt == DType::F32)
      run_on_host(DropoutMaskF<float>{5, 3, 0.3f, float(1.0 / 0.7), m.data<float>()}, m.numel());
    else
      run_on_host(DropoutMaskF<double>{5, 3, 0.3f, 1.0 / 0.7, m.data<double>()}, m.numel());
    CHECK(same_bits(m, mref));
  }
}

TEST_CASE("cuda functors: row gather, put and ordered scatter-add; a bad id is reported") {
  Backend& cpu = cpu_backend();
  const Tensor x = uni({7, 5}, 5), ids = Tensor::from_vector(std::vector<int64_t>{3, 0, 3, 6, 3}, {5});
  {
    Tensor ref = Tensor::empty({5, 5}), out = Tensor::empty({5, 5});
    cpu.index_select(x, ids, ref, "t");
    int64_t bad = 5;
    run_on_host(IndexSelectF<float, int64_t>{x.data<float>(), ids.data<int64_t>(), out.data<float>(), 7, 5, &bad}, 25);
    CHECK(bad == 5);
    CHECK(same_bits(out, ref));
  }
  {
    const Tensor src = uni({5, 5}, 6);
    Tensor ref = x.contiguous_copy(), out = x.contiguous_copy();
    cpu.index_add(src, ids, ref, "t");
    int64_t bad = 5;
    run_on_host(IndexAddF<float, int64_t>{src.data<float>(), ids.data<int64_t>(), out.data<float>(), 5, 7, 5, &bad}, 5);
    CHECK(same_bits(out, ref));
    const Tensor uids = Tensor::from_vector(std::vector<int64_t>{6, 1}, {2}), src2 = uni({2, 5}, 7);
    Tensor ref2 = x.contiguous_copy(), out2 = x.contiguous_copy();
    cpu.index_put(src2, uids, ref2, "t");
    run_on_host(IndexPutF<float, int64_t>{src2.data<float>(), uids.data<int64_t>(), out2.data<float>(), 7, 5, &bad}, 10);
    CHECK(same_bits(out2, ref2));
  }
  {
    const Tensor bad_ids = Tensor::from_vector(std::vector<int32_t>{1, 7, 2, -1}, {4});
    Tensor out = Tensor::empty({4, 5});
    int64_t bad = 4;
    run_on_host(IndexSelectF<float, int32_t>{x.data<float>(), bad_ids.data<int32_t>(), out.data<float>(), 7, 5, &bad},
                20);
    CHECK(bad == 1);  // the first position with an id outside [0, 7)
  }
}

TEST_CASE("cuda functors: im2col, col2im, pooling and its gradients against the CPU") {
  Backend& cpu = cpu_backend();
  struct Case {
    Shape x;
    int kh, kw, sh, sw, ph, pw, dh, dw;
  };
  for (const Case& c : {Case{{2, 3, 7, 9}, 3, 3, 2, 1, 1, 0, 1, 2}, Case{{1, 2, 6, 5}, 2, 3, 1, 2, 1, 1, 2, 1},
                        Case{{2, 1, 5, 5}, 1, 1, 1, 1, 0, 0, 1, 1}}) {
    const Tensor x = uni(c.x, 8);
    const int64_t H = c.x[2], W = c.x[3];
    const int64_t OH = (H + 2 * c.ph - c.dh * (c.kh - 1) - 1) / c.sh + 1, OW = (W + 2 * c.pw - c.dw * (c.kw - 1) - 1) / c.sw + 1;
    const ConvGeom g{c.x[0], c.x[1], H, W, OH, OW, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw};
    Tensor ref = Tensor::empty({c.x[0], c.x[1] * c.kh * c.kw, OH * OW}), cols = empty_like(ref);
    cpu.im2col(x, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, ref);
    run_on_host(Im2colF<float>{g, x.data<float>(), cols.data<float>()}, cols.numel());
    CHECK(same_bits(cols, ref));
    const Tensor gc = uni(ref.shape(), 9);
    Tensor xr = empty_like(x), xo = empty_like(x);
    cpu.col2im(gc, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, xr);
    run_on_host(Col2imF<float>{g, gc.data<float>(), xo.data<float>()}, xo.numel());
    CHECK(same_bits(xo, xr));  // the same sums in the same (ki, kj) order
  }
  // Pooling: 3x3 stride 2 padding 1 with ties (values rounded to halves).
  std::vector<double> v = uni({2, 3, 7, 8}, 10).to_vector();
  for (double& e : v) e = std::round(e * 2) / 2;
  const Tensor x = Tensor::from_vector(v, {2, 3, 7, 8}, DType::F32);
  const int64_t OH = 4, OW = 4;
  const ConvGeom g{2, 3, 7, 8, OH, OW, 3, 3, 2, 2, 1, 1, 1, 1};
  Tensor yr = Tensor::empty({2, 3, OH, OW}), ar = Tensor::empty({2, 3, OH, OW}, DType::I64);
  Tensor y = empty_like(yr), a = empty_like(ar);
  cpu.max_pool2d(x, 3, 3, 2, 2, 1, 1, yr, ar);
  run_on_host(MaxPoolF<float>{g, x.data<float>(), y.data<float>(), a.data<int64_t>()}, y.numel());
  CHECK(same_bits(y, yr));
  CHECK(same_bits(a, ar));
  const Tensor gy = uni(yr.shape(), 11);
  Tensor gxr = empty_like(x), gx = empty_like(x);
  cpu.max_pool2d_backward(gy, ar, gxr);
  run_on_host(MaxPoolBackwardF<float>{56, 16, gy.data<float>(), a.data<int64_t>(), gx.data<float>()}, 6);
  CHECK(same_bits(gx, gxr));
  for (bool count_pad : {false, true}) {
    Tensor ar2 = empty_like(yr), ao = empty_like(yr);
    cpu.avg_pool2d(x, 3, 3, 2, 2, 1, 1, count_pad, ar2);
    run_on_host(AvgPoolF<float>{g, count_pad, x.data<float>(), ao.data<float>()}, ao.numel());
    CHECK(same_bits(ao, ar2));
    Tensor br = empty_like(x), bo = empty_like(x);
    cpu.avg_pool2d_backward(gy, 3, 3, 2, 2, 1, 1, count_pad, br);
    run_on_host(AvgPoolBackwardF<float>{g, count_pad, gy.data<float>(), bo.data<float>()}, bo.numel());
    CHECK(rel_err(bo, br) < 1e-6);  // the same terms, summed in another order
  }
}

TEST_CASE("cuda functors: shifted windows, GRU gates, cross-entropy backward, argmax") {
  Backend& cpu = cpu_backend();
  {
    const WindowGeometry g{2, 4, 6, 3, 2, 1, 2};
    const Tensor img = uni({2, 4, 6, 3}, 12);
    Tensor ref = Tensor::empty({12, 4, 3}), out = empty_like(ref);
    cpu.window_gather(img, g, ref);
    run_on_host(WindowCopyF<float>{g, true, img.data<float>(), out.data<float>()}, out.numel());
    CHECK(same_bits(out, ref));
    Tensor back = empty_like(img), backr = empty_like(img);
    cpu.window_scatter(ref, g, backr);
    run_on_host(WindowCopyF<float>{g, false, ref.data<float>(), back.data<float>()}, ref.numel());
    CHECK(same_bits(back, backr));
    CHECK(same_bits(back, img));
  }
  {
    const Tensor xg = uni({2, 9, 5}, 13), hg = uni({2, 9, 5}, 14), h = uni({2, 3, 5}, 15), gout = uni({2, 3, 5}, 16);
    const GruIndex<float> ix{3, 5};
    for (bool tanh_act : {false, true}) {
      Tensor cr = Tensor::empty({2, 3, 5}), co = empty_like(cr);
      cpu.gru_candidate(xg, hg, tanh_act, 0.2, cr);
      run_on_host(GruCandidateF<float>{ix, tanh_act, 0.2f, xg.data<float>(), hg.data<float>(), co.data<float>()}, 30);
      CHECK(rel_err(co, cr) < 1e-6);  // the CPU's float sigmoid uses a polynomial exp
      Tensor gxr = empty_like(xg), ghr = empty_like(hg), gxo = empty_like(xg), gho = empty_like(hg);
      cpu.gru_candidate_backward(xg, hg, cr, gout, tanh_act, 0.2, gxr, ghr);
      run_on_host(GruCandidateBackwardF<float>{ix, tanh_act, 0.2f, xg.data<float>(), hg.data<float>(), cr.data<float>(),
                                               gout.data<float>(), gxo.data<float>(), gho.data<float>()},
                  30);
      CHECK(rel_err(gxo, gxr) < 1e-5);
      CHECK(rel_err(gho, ghr) < 1e-5);
    }
    Tensor ur = Tensor::empty({2, 3, 5}), uo = empty_like(ur), cand = uni({2, 3, 5}, 17);
    cpu.gru_update(Tensor(), hg, cand, h, ur);
    run_on_host(GruUpdateF<float>{ix, nullptr, hg.data<float>(), cand.data<float>(), h.data<float>(), uo.data<float>()},
                30);
    CHECK(rel_err(uo, ur) < 1e-6);
    Tensor gxr = empty_like(xg), ghr = empty_like(hg), gcr = empty_like(h), gsr = empty_like(h);
    Tensor gxo = empty_like(xg), gho = empty_like(hg), gco = empty_like(h), gso = empty_like(h);
    cpu.gru_update_backward(xg, hg, cand, h, gout, gxr, ghr, gcr, gsr);
    run_on_host(GruUpdateBackwardF<float>{ix, xg.data<float>(), hg.data<float>(), cand.data<float>(), h.data<float>(),
                                          gout.data<float>(), gxo.data<float>(), gho.data<float>(), gco.data<float>(),
                                          gso.data<float>()},
                30);
    for (auto [o, r] : {std::pair{gxo, gxr}, std::pair{gho, ghr}, std::pair{gco, gcr}, std::pair{gso, gsr}})
      CHECK(rel_err(o, r) < 1e-5);
  }
  {
    const Tensor logits = uni({6, 7}, 18), grow = uni({6}, 19);
    const Tensor target = Tensor::from_vector(std::vector<int64_t>{3, -100, 0, 6, 6, 1}, {6});
    Tensor loss = Tensor::empty({6}), lse = Tensor::empty({6});
    cpu.cross_entropy(logits, target, -100, 0.1, loss, lse);
    Tensor gr = empty_like(logits), go = empty_like(logits);
    cpu.cross_entropy_backward(logits, target, lse, grow, -100, 0.1, gr);
    run_on_host(CrossEntropyBackwardF<float, int64_t>{logits.data<float>(), lse.data<float>(), grow.data<float>(),
                                                      target.data<int64_t>(), 7, -100, 0.1f, go.data<float>()},
                go.numel());
    CHECK(rel_err(go, gr) < 1e-6);
  }
  {
    std::vector<double> v = uni({5, 9}, 20).to_vector();
    v[3] = v[7] = 5.0;  // a tie in row 0: the first wins
    v[9 + 4] = NAN;     // a NaN in row 1 does not replace the best so far
    const Tensor x = Tensor::from_vector(v, {5, 9}, DType::F32);
    Tensor ar = Tensor::empty({5}, DType::I64), ao = empty_like(ar);
    cpu.argmax_last(x, ar);
    run_on_host(ArgmaxRowF<float>{x.data<float>(), 9, ao.data<int64_t>()}, 5);
    CHECK(same_bits(ao, ar));
    CHECK(ao.to_vector()[0] == 3);
  }
}

TEST_CASE("cuda functors: Adam(W) and SGD updates against the CPU's") {
  Backend& cpu = cpu_backend();
  for (bool decoupled : {true, false})
    for (bool ams : {false, true}) {
      INFO("decoupled ", decoupled, " amsgrad ", ams);
      const Tensor g = uni({1027}, 21);
      Tensor p1 = uni({1027}, 22), m1 = uni({1027}, 23, 0, 0.1), v1 = uni({1027}, 24, 0, 0.1);
      Tensor p2 = p1.contiguous_copy(), m2 = m1.contiguous_copy(), v2 = v1.contiguous_copy();
      Tensor x1 = ams ? v1.contiguous_copy() : Tensor(), x2 = ams ? v1.contiguous_copy() : Tensor();
      AdamHyper h;
      h.lr = 1e-2;
      h.weight_decay = 0.05;
      h.decoupled = decoupled;
      cpu.adam_step({AdamSlot{p1, g, m1, v1, x1, 3}}, h);
      const double bc1 = 1 - std::pow(h.beta1, 3), bc2 = 1 - std::pow(h.beta2, 3);
      run_on_host(AdamF<float>{p2.data<float>(), m2.data<float>(), v2.data<float>(), ams ? x2.data<float>() : nullptr,
                               g.data<float>(), float(h.lr / bc1), float(std::sqrt(bc2)), float(h.beta1),
                               float(h.beta2), float(1 - h.beta1), float(1 - h.beta2), float(h.eps),
                               float(1 - h.lr * h.weight_decay), float(h.weight_decay), decoupled, true},
                  1027);
      CHECK(rel_err(p2, p1) < 1e-6);  // Eigen's vector code against scalar code: rounding only
      CHECK(rel_err(m2, m1) < 1e-6);
      CHECK(rel_err(v2, v1) < 1e-6);
    }
  const Tensor g = uni({300}, 25);
  Tensor p1 = uni({300}, 26), b1 = uni({300}, 27), p2 = p1.contiguous_copy(), b2 = b1.contiguous_copy();
  SgdHyper h;
  h.lr = 0.1;
  h.momentum = 0.9;
  h.weight_decay = 0.01;
  h.nesterov = true;
  cpu.sgd_step({SgdSlot{p1, g, b1, false}}, h);
  run_on_host(SgdF<float>{p2.data<float>(), b2.data<float>(), g.data<float>(), false, true, true, 0.01f, 0.9f, 1.0f,
                          -0.1f},
              300);
  CHECK(same_bits(p2, p1));
  CHECK(same_bits(b2, b1));
}

TEST_CASE("cuda multi-tensor launch: chunks cover every element once; Adam(W) and SGD over many tensors as the CPU's") {
  // The chunk table: in tensor order, each element once, empty tensors skipped.
  const std::vector<int64_t> sizes = {5, 0, 12, 4, 1};
  const std::vector<Chunk> ch = make_chunks(sizes, 4);
  REQUIRE(ch.size() == 7);  // 2 + 0 + 3 + 1 + 1
  std::vector<std::vector<int>> seen(sizes.size());
  for (size_t t = 0; t < sizes.size(); ++t) seen[t].assign(size_t(sizes[t]), 0);
  for (const Chunk& c : ch) {
    CHECK(c.end - c.begin <= 4);
    CHECK(c.begin < c.end);
    for (int64_t i = c.begin; i < c.end; ++i) ++seen[size_t(c.tensor)][size_t(i)];
  }
  for (const auto& s : seen)
    for (int v : s) CHECK(v == 1);
  CHECK(ch.front().tensor == 0);
  CHECK(ch.back().tensor == 4);
  CHECK(error_of([] { make_chunks({3}, 0); }).find("[multi_tensor] chunk size must be positive, got 0") == 0);
  size_t bytes = 0;
  CHECK(chunk_upload_layout<double>(3, 2, bytes) == 80);  // 3 x 24 bytes, aligned to 16
  CHECK(bytes == 96);

  // AdamW over parameters of awkward sizes (one over a chunk boundary), different steps,
  // through the emulated one-launch path, against the CPU backend's update bit for bit
  // where the CPU computes scalar code, to rounding otherwise.
  Backend& cpu = cpu_backend();
  const std::vector<int64_t> ns = {1, 70000, 257, 3};
  std::vector<AdamSlot> ref;
  std::vector<Tensor> p2, m2, v2, gs;
  std::vector<AdamF<float>> fs;
  AdamHyper h;
  h.lr = 3e-3;
  h.weight_decay = 0.01;
  for (size_t i = 0; i < ns.size(); ++i) {
    const Tensor g = uni({ns[i]}, 40 + i);
    AdamSlot s{uni({ns[i]}, 50 + i), g, uni({ns[i]}, 60 + i, 0, 0.1), uni({ns[i]}, 70 + i, 0, 0.1), Tensor(),
               int64_t(i + 1)};
    p2.push_back(s.p.contiguous_copy());
    m2.push_back(s.m.contiguous_copy());
    v2.push_back(s.v.contiguous_copy());
    gs.push_back(g);
    ref.push_back(s);
  }
  for (size_t i = 0; i < ns.size(); ++i)
    fs.push_back(adam_functor<float>(p2[i].data<float>(), m2[i].data<float>(), v2[i].data<float>(), nullptr,
                                     gs[i].data<float>(), ref[i].step, h));
  cpu.adam_step(ref, h);
  run_chunks_on_host(fs, make_chunks(ns));
  for (size_t i = 0; i < ns.size(); ++i) {
    INFO("parameter ", i, " of ", ns[i]);
    CHECK(rel_err(p2[i], ref[i].p) < 1e-6);
    CHECK(rel_err(m2[i], ref[i].m) < 1e-6);
    CHECK(rel_err(v2[i], ref[i].v) < 1e-6);
  }

  // SGD with momentum: the same numbers bit for bit.
  std::vector<SgdSlot> sref;
  std::vector<Tensor> sp, sb;
  std::vector<SgdF<float>> sf;
  for (size_t i = 0; i < ns.size(); ++i) {
    SgdSlot s{uni({ns[i]}, 80 + i), uni({ns[i]}, 90 + i), uni({ns[i]}, 100 + i), i == 0};
    sp.push_back(s.p.contiguous_copy());
    sb.push_back(s.buf.contiguous_copy());
    sf.push_back(SgdF<float>{sp[i].data<float>(), sb[i].data<float>(), s.g.data<float>(), s.first, false, true, 0.01f,
                             0.9f, 1.0f, -0.1f});
    sref.push_back(s);
  }
  SgdHyper sh;
  sh.lr = 0.1;
  sh.momentum = 0.9;
  sh.weight_decay = 0.01;
  cpu.sgd_step(sref, sh);
  run_chunks_on_host(sf, make_chunks(ns));
  for (size_t i = 0; i < ns.size(); ++i) {
    CHECK(same_bits(sp[i], sref[i].p));
    CHECK(same_bits(sb[i], sref[i].buf));
  }
}
