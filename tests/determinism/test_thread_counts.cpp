// Results do not depend on the thread count: every kernel family of memel's own (and the
// row blocks around library GEMM calls) gives the same bits with 1, 2 and 3 threads, at
// shapes that do not divide evenly into chunks. CTest runs this program a second time
// with OpenBLAS's oldest x86-64 kernels (OPENBLAS_CORETYPE=Prescott), whose rounding of a
// row depends on where the row falls in a call (issue 19).
#include <doctest/doctest.h>

#include "support.h"

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "tensor/backend.h"
#include "core/thread_pool.h"
#include "memel/layer.h"
#include "models/bert.h"
#include "models/convgru.h"
#include "models/swin.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/sgd.h"

using namespace memel;

namespace {

using Results = std::vector<Tensor>;

// Same bits: every element of every result equal as stored (NaN equal to the same NaN).
void check_same_bits(const Results& a, const Results& b, int threads) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("result ", i, " with ", threads, " threads against 1 thread");
    REQUIRE(a[i].defined() == b[i].defined());
    if (!a[i].defined()) continue;
    REQUIRE(a[i].shape() == b[i].shape());
    REQUIRE(a[i].dtype() == b[i].dtype());
    const Tensor x = a[i].contiguous_copy(), y = b[i].contiguous_copy();
    const bool same = std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
    if (!same) MESSAGE("max |difference| ", max_abs_diff(x, y));
    CHECK(same);
  }
}

// Runs `compute` (which must build its inputs from fixed seeds) with 1, 2 and 3 threads.
void same_across_threads(const std::function<Results()>& compute) {
  const int before = num_threads();
  set_num_threads(1);
  const Results one = compute();
  for (int threads : {2, 3}) {
    set_num_threads(threads);
    const Results r = compute();
    check_same_bits(one, r, threads);
  }
  set_num_threads(before);
}

Tensor input(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  Generator g(seed);
  return Tensor::uniform(s, lo, hi, DType::F32, &g).set_requires_grad();
}

// Forward value and the gradients of sum(y * r) for a fixed random r.
Results value_and_grads(const Tensor& y, const std::vector<Tensor>& inputs) {
  Generator g(99);
  Tensor r = Tensor::uniform(y.shape(), -1, 1, y.dtype(), &g);
  backward(sum(mul(y, r)));
  Results out{y.detach()};
  for (const Tensor& t : inputs) out.push_back(t.grad());
  return out;
}

}  // namespace

TEST_CASE("thread counts: matrix products (row blocks around BLAS), plain and batched, transposed") {
  same_across_threads([] {
    Tensor a = input({333, 129}, 1), b = input({129, 517}, 2);
    return value_and_grads(matmul(a, b), {a, b});
  });
  same_across_threads([] {
    Tensor a = input({3, 77, 65}, 3), b = input({3, 91, 65}, 4);
    return value_and_grads(matmul(a, transpose(b, 1, 2)), {a, b});
  });
  same_across_threads([] {
    Tensor x = input({7, 45, 101}, 5), w = input({203, 101}, 6), bias = input({203}, 7);
    return value_and_grads(linear(x, w, bias), {x, w, bias});
  });
}

TEST_CASE("thread counts: convolutions (im2col + GEMM, Winograd 3x3 and 5x5, transposed) and pooling") {
  for (ConvAlgorithm algo : {ConvAlgorithm::Gemm, ConvAlgorithm::Winograd}) {
    for (int k : {3, 5}) {
      INFO("algorithm ", int(algo), " kernel ", k);
      same_across_threads([&] {
        Tensor x = input({3, 17, 23, 29}, 10), w = input({19, 17, k, k}, 11, -0.2, 0.2), b = input({19}, 12);
        Conv2dOptions o;
        o.pad_h = o.pad_w = k / 2;
        o.algorithm = algo;
        return value_and_grads(conv2d(x, w, b, o), {x, w, b});
      });
    }
  }
  same_across_threads([] {
    Tensor x = input({2, 13, 11, 9}, 13), w = input({13, 7, 4, 4}, 14, -0.2, 0.2), b = input({7}, 15);
    Conv2dOptions o;
    o.stride_h = o.stride_w = 2;
    o.pad_h = o.pad_w = 1;
    return value_and_grads(conv_transpose2d(x, w, b, o), {x, w, b});
  });
  same_across_threads([] {
    Tensor x = input({3, 11, 37, 29}, 16);
    Results r = value_and_grads(max_pool2d(x, 3, 3, 2, 2, 1, 1), {x});
    Tensor x2 = input({3, 11, 37, 29}, 17);
    Results r2 = value_and_grads(avg_pool2d(x2, 3, 3, 2, 2, 1, 1), {x2});
    r.insert(r.end(), r2.begin(), r2.end());
    return r;
  });
}

TEST_CASE("thread counts: softmax, LayerNorm, GELU, dropout, reductions, cross-entropy, embedding") {
  same_across_threads([] {
    Tensor x = input({1111, 97}, 20, -4, 4);
    return value_and_grads(softmax(x, -1), {x});
  });
  same_across_threads([] {
    Tensor x = input({1111, 97}, 21, -4, 4);
    return value_and_grads(log_softmax(x, -1), {x});
  });
  same_across_threads([] {
    Tensor x = input({1111, 97}, 22), w = input({97}, 23), b = input({97}, 24);
    return value_and_grads(layer_norm(x, w, b, 1e-5), {x, w, b});
  });
  same_across_threads([] {
    Tensor x = input({100003}, 25, -5, 5);
    Tensor x2 = input({100003}, 26, -5, 5);
    Results r = value_and_grads(gelu(x), {x});
    Results r2 = value_and_grads(gelu_tanh(x2), {x2});
    r.insert(r.end(), r2.begin(), r2.end());
    return r;
  });
  same_across_threads([] {
    Tensor x = input({100003}, 27);
    Generator g(5);
    return value_and_grads(dropout(x, 0.3, true, &g), {x});
  });
  same_across_threads([] {
    Tensor x = input({37, 1013, 7}, 28);
    Results r;
    for (const Axes& ax : std::vector<Axes>{{}, {0}, {1}, {2}, {0, 2}}) {
      Tensor xs = x.detach().set_requires_grad();
      Results v = value_and_grads(sum(square(xs), ax), {xs});
      r.insert(r.end(), v.begin(), v.end());
      r.push_back(var(x.detach(), ax, true));
      r.push_back(amax(x.detach(), ax));
    }
    return r;
  });
  same_across_threads([] {
    Tensor logits = input({777, 33}, 29, -3, 3);
    std::vector<int64_t> t(777);
    for (size_t i = 0; i < t.size(); ++i) t[i] = i % 7 == 0 ? -100 : int64_t(i * 13 % 33);
    Tensor loss = cross_entropy(logits, Tensor::from_vector(t, {777}), -100, 0.1);
    backward(loss);
    return Results{loss.detach(), logits.grad()};
  });
  same_across_threads([] {
    Tensor w = input({301, 67}, 30);
    std::vector<int64_t> ids(4099);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t(i * 7919 % 301);
    return value_and_grads(embedding(w, Tensor::from_vector(ids, {4099})), {w});
  });
}

TEST_CASE("thread counts: fused attention with a mask and dropout, ConvGRU gates") {
  same_across_threads([] {
    Tensor q = input({3, 5, 37, 16}, 40), k = input({3, 5, 41, 16}, 41), v = input({3, 5, 41, 24}, 42);
    Tensor mask = Tensor::zeros({3, 1, 1, 41});
    for (int64_t j = 35; j < 41; ++j) mask.data<float>()[2 * 41 + j] = -1e9f;
    Generator g(6);
    return value_and_grads(scaled_dot_product_attention(q, k, v, mask, 0.1, true, &g), {q, k, v});
  });
  same_across_threads([] {
    Tensor xg = input({3, 3 * 13, 211}, 43), hg = input({3, 3 * 13, 211}, 44), h = input({3, 13, 211}, 45);
    Tensor cand = gru_candidate(xg, hg, false, 0.2);
    return value_and_grads(gru_update(xg, hg, cand, h), {xg, hg, h});
  });
}

TEST_CASE("thread counts: optimizers (SGD with momentum, AdamW) and gradient clipping") {
  same_across_threads([] {
    Results r;
    std::vector<Tensor> ps{input({100003}, 50), input({77, 131}, 51), input({5}, 52)};
    Generator g(53);
    for (Tensor& p : ps) p.set_grad(Tensor::uniform(p.shape(), -1, 1, DType::F32, &g));
    r.push_back(Tensor::scalar(clip_grad_norm(ps, 0.5), DType::F64));
    AdamW adam(ps, AdamWOptions{});
    adam.step();
    adam.step();
    SGDOptions so;
    so.momentum = 0.9;
    so.weight_decay = 1e-3;
    SGD sgd(ps, so);
    sgd.step();
    sgd.step();
    for (Tensor& p : ps) r.push_back(p.detach());
    return r;
  });
}

// Whole models with memel layers at the paper placement (statistics, scores, selection,
// reverse deactivation), two training steps each: outputs, losses, every parameter after
// AdamW, and the memel statistics.
namespace {

Results model_state(const Module& m) {
  Results r;
  for (auto& [name, t] : m.state_dict()) r.push_back(t.detach());
  return r;
}

MemelOptions paper_rd() {
  return MemelOptions::from_json(nlohmann::json::parse(R"({"at": "paper", "warmup": 0, "select": "top_k", "k": 3})"));
}

}  // namespace

TEST_CASE("thread counts: BERT with memel layers, two AdamW steps") {
  same_across_threads([] {
    BertConfig c = BertConfig::preset("bert-tiny");
    c.vocab_size = 101;
    c.max_position_embeddings = 40;
    c.hidden_size = 48;
    c.num_attention_heads = 4;
    c.intermediate_size = 97;
    c.num_hidden_layers = 3;
    c.num_labels = 3;
    manual_seed(7);
    BertForSequenceClassification m(c);
    attach_memel(m, paper_rd(), paper_memel_targets(c));
    const int64_t B = 5, T = 37;
    std::vector<int64_t> ids(B * T), mask(B * T, 1), labels(B);
    for (int64_t i = 0; i < B * T; ++i) ids[i] = 1 + i * 31 % 100;
    for (int64_t t = 30; t < T; ++t) mask[2 * T + t] = 0;
    for (int64_t b = 0; b < B; ++b) labels[b] = b % 3;
    AdamW opt(m.parameters(), AdamWOptions{});
    Results r;
    for (int step = 0; step < 2; ++step) {
      opt.zero_grad();
      BertHeadOutput o = m.forward(Tensor::from_vector(ids, {B, T}), Tensor::from_vector(mask, {B, T}), Tensor(),
                                   Tensor::from_vector(labels, {B}));
      backward(o.loss);
      r.push_back(o.logits.detach());
      opt.step();
    }
    Results s = model_state(m);
    r.insert(r.end(), s.begin(), s.end());
    return r;
  });
}

TEST_CASE("thread counts: Swin with memel layers, two AdamW steps") {
  same_across_threads([] {
    SwinConfig c;
    c.img_size = 16;
    c.patch_size = 2;
    c.in_chans = 3;
    c.embed_dim = 12;
    c.depths = {2, 4};
    c.num_heads = {2, 4};
    c.window_size = 4;
    c.num_classes = 5;
    c.drop_path_rate = 0.1;
    manual_seed(8);
    SwinTransformer m(c);
    attach_memel(m, paper_rd(), paper_memel_targets(m));
    Generator g(9);
    Tensor x = Tensor::randn({5, 3, 16, 16}, DType::F32, &g);
    Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4}, {5});
    AdamW opt(m.parameters(), AdamWOptions{});
    Results r;
    for (int step = 0; step < 2; ++step) {
      opt.zero_grad();
      Tensor loss = cross_entropy(m(x), labels);
      backward(loss);
      r.push_back(loss.detach());
      opt.step();
    }
    Results s = model_state(m);
    r.insert(r.end(), s.begin(), s.end());
    return r;
  });
}

TEST_CASE("thread counts: ConvGRU encoder-forecaster with memel layers, two AdamW steps") {
  same_across_threads([] {
    ConvGRUConfig c = ConvGRUConfig::from_json(nlohmann::json::parse(R"({
      "name": "tiny", "in_frames": 3, "out_frames": 2, "frame_size": 16,
      "first_conv": {"channels": 8, "kernel": 3, "stride": 2, "padding": 1},
      "rnn": [{"channels": 16}, {"channels": 17, "h2h_kernel": 3}],
      "downsample": [{"channels": 16, "kernel": 3, "stride": 2, "padding": 1}],
      "upsample": [{"channels": 16, "kernel": 4, "stride": 2, "padding": 1}],
      "last_deconv": {"channels": 8, "kernel": 4, "stride": 2, "padding": 1},
      "final_conv": {"channels": 8, "kernel": 3, "stride": 1, "padding": 1}
    })"));
    manual_seed(10);
    EncoderForecaster m(c);
    attach_memel(m, paper_rd(), paper_memel_targets(m));
    Generator g(11);
    Tensor x = Tensor::rand({3, 3, 1, 16, 16}, DType::F32, &g), y = Tensor::rand({3, 2, 1, 16, 16}, DType::F32, &g);
    AdamW opt(m.parameters(), AdamWOptions{});
    Results r;
    for (int step = 0; step < 2; ++step) {
      opt.zero_grad();
      Tensor loss = mse_loss(m(x), y);
      backward(loss);
      r.push_back(loss.detach());
      opt.step();
    }
    Results s = model_state(m);
    r.insert(r.end(), s.begin(), s.end());
    return r;
  });
}

// CTest runs this program again with OPENBLAS_CORETYPE=Prescott (and Haswell) and
// MEMEL_CPU_GEMM=openblas, and with MEMEL_CPU_GEMM=onednn: the CPU backend's description
// names the GEMM library and kernels in use and, for OpenBLAS's generic kernels on a
// processor with wider vectors, says so (what memel-train and memel-bench print).
TEST_CASE("the CPU backend names its GEMM library and kernels and flags generic ones on a capable processor") {
  const std::string d = backend_for(Device::cpu()).describe();
  const char* core = std::getenv("OPENBLAS_CORETYPE");
  const char* lib = std::getenv("MEMEL_CPU_GEMM");
  const bool forced_generic = core && std::string(core) == "Prescott";
  if (lib && std::string(lib) == "onednn") {
    CHECK(d.rfind("oneDNN ", 0) == 0);
  } else if (lib && std::string(lib) == "openblas") {
    CHECK(d.rfind("OpenBLAS ", 0) == 0);
#if defined(__x86_64__) && defined(__GNUC__)
    if (forced_generic && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      CHECK(d.find("[generic kernels on a processor with AVX2/AVX-512") != std::string::npos);
#endif
  }
  if (forced_generic) CHECK(d.find("(Prescott kernels)") != std::string::npos);
  if (core && std::string(core) == "Haswell") CHECK(d.find("generic") == std::string::npos);
  MESSAGE(d);
}
