// memel-bench: fixed workloads, timed after warm-up; prints one JSON line per workload.
//
//   memel-bench --workload gemm --size N [--threads T] [--reps R] [--warmup W] [--seed S]
//   memel-bench --workload bert-mini|swin-t|swin-mini|convgru|bert-base --threads T [--memel none|paper]
//               [--device cpu|sim|cuda[:N]] [--precision fp32|tf32|bf16] [--steps N] [--warmup W] [--seed S]
//   memel-bench --list | --help
//
// Each workload declares its options (name, default, help) and a run function that
// returns the JSON fields to print. Options are `--name value` or `--name=value`; an
// option the chosen workload does not declare is an error.
//
// The training workloads are W1-W4 of the design note on benchmarks
// (../shared/design/benchmarks.md), at their fixed shapes; one timed step is a whole
// training step: zero_grad, forward, loss, backward, optimizer update. Their JSON line:
//   {"workload", "device", "threads", "memel", "step_ms" (median of the timed steps),
//    "items_per_s" (samples per second at the median), "gflops" (achieved GFLOP/s =
//    analytic FLOPs per step / step time), "peak_mem_mb" (peak resident set size of the
//    process, getrusage ru_maxrss, model and data included), then "gflop_per_step",
//    "tensor_peak_mb" (peak bytes handed out by memel's CPU caching allocator),
//    "allocs_per_step" and "system_allocs_per_step" (tensor allocations served by the
//    caching allocator per timed step, and those that reached the system allocator),
//    "params", "steps", "warmup", "seed", "loss" (of the last step; checked finite), "kernels" (the device backend's
//    description: for the CPU, the GEMM library and kernels in use)}.
// With --memel paired, the line describes the plain model and adds "memel_step_ms" (median
// step of the paper-placement model, timed interleaved with the plain one) and
// "memel_overhead" (median over the step pairs of memel / plain - 1).
// Under mpirun (issue 24) the training workloads run data-parallel: the batch is the
// global batch, each rank takes its contiguous share, gradients are averaged in buckets
// during the backward (train/data_parallel.h); rank 0 prints the line with "ranks" and
// "comm_ms" (median per step of the time spent waiting in collectives: transfers and
// waiting for the other rank).
// PyTorch references printing the same line: bench/torch_ref.py; side by side:
// bench/compare.sh.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "memel/layer.h"
#include "models/bert.h"
#include "models/convgru.h"
#include "models/nowcast_metrics.h"
#include "models/swin.h"
#include "dist/comm.h"
#include "train/data_parallel.h"
#include "train/step.h"
#include "optim/adamw.h"
#include "tensor/allocator.h"
#include "tensor/backend.h"

namespace {

using json = nlohmann::ordered_json;  // keeps the fields in the order written

// Data-parallel runs: this rank's rows of a batch tensor (all of it in one process).
memel::Tensor my_rows(const memel::Tensor& t) {
  const memel::dist::Group& g = memel::dist::Group::world();
  if (g.size() == 1) return t;
  const auto sh = memel::train::BatchShard::of(t.shape()[0], g.rank(), g.size());
  return memel::slice(t, 0, sh.start, sh.start + sh.local).contiguous_copy();
}
memel::train::BatchShard g_shard;  // the shard of the workload's batch (set by my_rows' callers)

struct Option {
  const char* name;
  const char* fallback;  // default value as text; nullptr = required
  const char* help;
};

// The options given for one run, with typed accessors that name the option on errors.
class Args {
 public:
  explicit Args(std::map<std::string, std::string> v) : v_(std::move(v)) {}
  const std::string& str(const std::string& k) const { return v_.at(k); }
  int64_t integer(const std::string& k, int64_t lo = INT64_MIN) const {
    const std::string& s = v_.at(k);
    size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(s, &used);
    } catch (...) {
      used = 0;
    }
    MEMEL_CHECK(used == s.size() && !s.empty(), "[memel-bench] --", k, " expects an integer, got '", s, "'");
    MEMEL_CHECK(x >= lo, "[memel-bench] --", k, " must be >= ", lo, ", got ", x);
    return x;
  }

 private:
  std::map<std::string, std::string> v_;
};

struct Workload {
  const char* name;
  const char* help;
  std::vector<Option> options;
  json (*run)(const Args& args);  // the measured fields (merged after "workload")
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Times fn() `reps` times after `warmup` calls; returns the median in milliseconds.
template <typename F>
double time_median_ms(int64_t warmup, int64_t reps, F fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int64_t i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return median(ms);
}

// --- gemm: C = A B with A, B (N, N) F32 uniform in [-1, 1) -------------------------------
json run_gemm(const Args& a) {
  const int64_t n = a.integer("size", 1), threads = a.integer("threads", 1);
  const int64_t reps = a.integer("reps", 1), warmup = a.integer("warmup", 0);
  memel::set_num_threads(static_cast<int>(threads));
  memel::Generator gen(static_cast<uint64_t>(a.integer("seed", 0)));
  memel::Tensor x = memel::Tensor::uniform({n, n}, -1, 1, memel::DType::F32, &gen);  // (N, N)
  memel::Tensor y = memel::Tensor::uniform({n, n}, -1, 1, memel::DType::F32, &gen);  // (N, N)
  memel::NoGradGuard no_grad;
  double checksum = 0;
  double ms = time_median_ms(warmup, reps, [&] {
    memel::Tensor z = memel::matmul(x, y);  // (N, N)
    checksum = static_cast<double>(z.data<float>()[0]);
  });
  double flops = 2.0 * double(n) * double(n) * double(n);
  (void)checksum;
  return {{"size", n}, {"threads", memel::num_threads()}, {"gflops", flops / (ms * 1e6)}, {"ms", ms},
          {"reps", reps}};
}

// --- training steps: W1 bert-mini, W2 swin-t, W3 swin-mini, W4 convgru --------------------
//
// FLOP counting (analytic, per training step). Only the multiply-adds of matrix products
// and convolutions are counted, 2 FLOPs each; elementwise ops, norms, softmax, embedding
// lookups, the loss and the optimizer are not. The backward pass is counted as twice the
// forward (one product for the input gradient, one for the weight gradient), so a step is
// 3x the forward count, including the input gradient of the first layer that a framework
// may skip. The same counts are used for the PyTorch references (bench/torch_ref.py).

// Forward FLOPs of BERT for sequence classification, (B, T) tokens: per token and layer
// Q, K, V and output projections 8 H^2, attention scores and weighted values 4 T H, FFN
// 4 H F; per sequence the pooler 2 H^2 and the classifier 2 H classes.
double bert_forward_flops(const memel::BertConfig& c, int64_t B, int64_t T) {
  const double H = double(c.hidden_size), F = double(c.intermediate_size), L = double(c.num_hidden_layers);
  const double per_token_layer = 8 * H * H + 4 * double(T) * H + 4 * H * F;
  return double(B) * (double(T) * L * per_token_layer + 2 * H * H + 2 * H * double(c.num_labels));
}

// Forward FLOPs of a Swin classifier on B images. Patch embedding: a convolution with
// kernel = stride = patch, 2 N0 C in_chans p^2. Per block on a map of N tokens padded to a
// multiple of the window (Np tokens, windows of M = w^2 tokens, C channels): QKV 6 Np C^2,
// scores and weighted values 4 Np M C, projection 2 Np C^2, MLP 4 r N C^2 (r = mlp
// ratio). Patch merging after every stage but the last: 2 (N/4) (4C) (2C). Head 2 C_last
// classes.
double swin_forward_flops(const memel::SwinConfig& c, int64_t B) {
  const std::vector<int64_t> res = c.stage_resolutions();
  const double p = double(c.patch_size);
  double f = 2.0 * double(res[0] * res[0]) * double(c.embed_dim) * double(c.in_chans) * p * p;
  double C = double(c.embed_dim);
  for (int64_t s = 0; s < c.num_stages(); ++s) {
    const int64_t r = res[size_t(s)], w = c.stage_window(s);
    const int64_t padded = (r + w - 1) / w * w;
    const double N = double(r * r), Np = double(padded * padded), M = double(w * w);
    const double block = 6 * Np * C * C + 4 * Np * M * C + 2 * Np * C * C + 4 * c.mlp_ratio * N * C * C;
    f += double(c.depths[size_t(s)]) * block;
    if (s + 1 < c.num_stages()) {
      const double r2 = double((r + 1) / 2);
      f += 2 * r2 * r2 * (4 * C) * (2 * C);
      C *= 2;
    }
  }
  f += 2 * C * double(c.num_classes);
  return double(B) * f;
}

// Forward FLOPs of the ConvGRU encoder-forecaster on B sequences. A convolution costs
// 2 Cout Cin kh kw Hout Wout per frame, a transposed one 2 Cin Cout kh kw Hin Win. Encoder
// level k: its stage convolution and the cell's i2h over the in_frames frames, h2h at every
// step (the first step's h2h runs on the zero state, as memel and HKO-7 do). Forecaster:
// the top cell h2h only, the others i2h + h2h, for out_frames steps, then the stages
// (transposed convolutions, the final 3x3 and 1x1 convolutions) on every output frame.
double convgru_forward_flops(const memel::ConvGRUConfig& c, int64_t B) {
  using memel::Size2;
  auto conv_out = [](Size2 in, Size2 k, Size2 s, Size2 p, Size2 d) {
    return Size2((in.h + 2 * p.h - d.h * (k.h - 1) - 1) / s.h + 1, (in.w + 2 * p.w - d.w * (k.w - 1) - 1) / s.w + 1);
  };
  auto conv = [](int64_t cin, int64_t cout, Size2 k, Size2 out) {
    return 2.0 * double(cout) * double(cin) * k.h * k.w * double(out.h) * double(out.w);
  };
  auto deconv_out = [](Size2 in, const memel::NowcastConvSpec& d) {
    return Size2((in.h - 1) * d.stride.h - 2 * d.padding.h + d.kernel.h + d.output_padding.h,
                 (in.w - 1) * d.stride.w - 2 * d.padding.w + d.kernel.w + d.output_padding.w);
  };
  auto deconv = [](int64_t cin, int64_t cout, Size2 k, Size2 in) {
    return 2.0 * double(cin) * double(cout) * k.h * k.w * double(in.h) * double(in.w);
  };
  const size_t L = c.rnn.size();
  const double Ti = double(c.in_frames), To = double(c.out_frames);
  double f = 0;
  Size2 s = c.frame_size;
  int64_t ch = c.frame_channels;
  std::vector<Size2> state(L, Size2(0));
  for (size_t k = 0; k < L; ++k) {
    const memel::NowcastConvSpec& st = k == 0 ? c.first_conv : c.downsample[k - 1];
    s = conv_out(s, st.kernel, st.stride, st.padding, Size2(1));
    f += Ti * conv(ch, st.channels, st.kernel, s);
    const memel::NowcastRnnSpec& r = c.rnn[k];
    s = conv_out(s, r.i2h_kernel, r.i2h_stride, r.i2h_padding, r.i2h_dilation);
    f += Ti * conv(st.channels, 3 * r.channels, r.i2h_kernel, s);
    f += Ti * conv(r.channels, 3 * r.channels, r.h2h_kernel, s);
    state[k] = s;
    ch = r.channels;
  }
  for (size_t k = L; k >= 1; --k) {
    const memel::NowcastRnnSpec& r = c.rnn[k - 1];
    const Size2 st = state[k - 1];
    if (k < L) f += To * conv(c.upsample[L - 1 - k].channels, 3 * r.channels, r.i2h_kernel, st);
    f += To * conv(r.channels, 3 * r.channels, r.h2h_kernel, st);
    if (k > 1) {
      const memel::NowcastConvSpec& u = c.upsample[L - k];
      f += To * deconv(r.channels, u.channels, u.kernel, st);
    } else {
      const memel::NowcastConvSpec& d = c.last_deconv;
      f += To * deconv(r.channels, d.channels, d.kernel, st);
      const Size2 big = deconv_out(st, d);
      const Size2 fin = conv_out(big, c.final_conv.kernel, c.final_conv.stride, c.final_conv.padding, Size2(1));
      f += To * conv(d.channels, c.final_conv.channels, c.final_conv.kernel, fin);
      f += To * conv(c.final_conv.channels, c.frame_channels, Size2(1), fin);
    }
  }
  return double(B) * f;
}

// One training workload, built: the model, its optimizer and the fixed batch.
struct TrainSetup {
  std::shared_ptr<memel::Module> model;
  std::unique_ptr<memel::Optimizer> opt;
  std::function<memel::Tensor()> loss;  // forward + loss on the fixed batch (a scalar)
  std::vector<memel::Tensor> batch;     // the batch's tensors (handles shared with `loss`)
  std::vector<std::string> paper_targets;
  int64_t items = 0;                    // samples per step
  double forward_flops = 0;             // analytic, per step
};

// Integer tensor (shape) with values in [lo, hi).
memel::Tensor random_ints(const memel::Shape& shape, int64_t lo, int64_t hi, memel::Generator& gen) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t& x : v) x = gen.randint(lo, hi);
  return memel::Tensor::from_vector(v, shape);
}

// W1: BERT-mini (4 layers, hidden 256, 4 heads, FFN 1024, GELU, vocab 30522, learned
// positions, dropout 0.1), CLS classifier with 2 classes (pooler + classifier as Hugging
// Face); batch 32 x 128 tokens, random ids, segment 0 for the first half and 1 for the
// second, no padding; AdamW lr 1e-4, weight decay 0.01 (none on biases and norms).
// W5 (GPU only): the same with BERT-base (12 layers, hidden 768, 12 heads, FFN 3072).
TrainSetup setup_bert(const std::string& preset, memel::Generator& gen) {
  const int64_t B = 32, T = 128;
  memel::BertConfig cfg = memel::BertConfig::preset(preset);
  cfg.num_labels = 2;
  cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.1;
  auto model = std::make_shared<memel::BertForSequenceClassification>(cfg);
  TrainSetup s;
  s.model = model;
  s.paper_targets = memel::paper_memel_targets(cfg, "bert.");
  memel::Tensor ids = random_ints({B, T}, 1, cfg.vocab_size, gen);  // (B, T)
  std::vector<int64_t> tt(static_cast<size_t>(B * T));
  for (int64_t i = 0; i < B * T; ++i) tt[size_t(i)] = (i % T) >= T / 2 ? 1 : 0;
  memel::Tensor types = memel::Tensor::from_vector(tt, {B, T});  // (B, T)
  memel::Tensor labels = random_ints({B}, 0, cfg.num_labels, gen);  // (B)
  ids = my_rows(ids), types = my_rows(types), labels = my_rows(labels);  // data-parallel share
  s.batch = {ids, types, labels};
  s.loss = [model, ids, types, labels] { return model->forward(ids, memel::Tensor(), types, labels).loss; };
  s.items = B;
  s.forward_flops = bert_forward_flops(cfg, B, T);
  return s;
}

// W2 (swin-t: batch 8, 3x224x224, 1000 classes) and W3 (swin-mini: batch 64, 3x32x32,
// patch 2, dim 48, window 4, 10 classes): the presets of models/swin.h (stochastic depth
// 0.2 and 0.1), images N(0, 1), random labels, cross-entropy; AdamW lr 1e-3, weight
// decay 0.05 (none on biases, norms and the position-bias tables).
TrainSetup setup_swin(const std::string& preset, int64_t B, memel::Generator& gen) {
  memel::SwinConfig cfg = memel::SwinConfig::preset(preset);
  auto model = std::make_shared<memel::SwinTransformer>(cfg);
  TrainSetup s;
  s.model = model;
  s.paper_targets = memel::paper_memel_targets(cfg);
  memel::Tensor images =
      memel::Tensor::randn({B, cfg.in_chans, cfg.img_size, cfg.img_size}, memel::DType::F32, &gen);  // (B, 3, H, W)
  memel::Tensor labels = random_ints({B}, 0, cfg.num_classes, gen);                                // (B)
  images = my_rows(images), labels = my_rows(labels);  // data-parallel share
  s.batch = {images, labels};
  s.loss = [model, images, labels] { return memel::cross_entropy(model->forward(images), labels); };
  s.items = B;
  s.forward_flops = swin_forward_flops(cfg, B);
  return s;
}

// W4: the HKO-7 ConvGRU encoder-forecaster at 240x240 (preset "convgru-w4": the hko7
// architecture at half the frame size), 5 input and 20 output frames, batch 2; frames
// uniform in [0, 1) (every rain-rate band of the balancing weights occurs); the balanced
// MSE + MAE loss of the nowcasting task (models/nowcast_metrics.h defaults: weights 1 and 1,
// global scale 5e-5); Adam lr 1e-4.
TrainSetup setup_convgru(memel::Generator& gen) {
  const int64_t B = 2;
  memel::ConvGRUConfig cfg = memel::ConvGRUConfig::preset("convgru-w4");
  auto model = std::make_shared<memel::EncoderForecaster>(cfg);
  TrainSetup s;
  s.model = model;
  s.paper_targets = memel::paper_memel_targets(cfg);
  const int64_t H = cfg.frame_size.h, W = cfg.frame_size.w, C = cfg.frame_channels;
  memel::Tensor x = memel::Tensor::rand({B, cfg.in_frames, C, H, W}, memel::DType::F32, &gen);       // (B, 5, 1, H, W)
  memel::Tensor truth = memel::Tensor::rand({B, cfg.out_frames, C, H, W}, memel::DType::F32, &gen);  // (B, 20, 1, H, W)
  memel::nowcast::NowcastLossOptions lo;  // balanced MSE + MAE, HKO-7's weights
  x = my_rows(x), truth = my_rows(truth);  // data-parallel share
  s.batch = {x, truth};
  s.loss = [model, x, truth, lo] { return memel::nowcast::nowcast_loss(model->forward(x), truth, memel::Tensor(), lo); };
  s.items = B;
  s.forward_flops = convgru_forward_flops(cfg, B);
  return s;
}

// Options shared by the training workloads.
std::vector<Option> train_options() {
  return {{"threads", "1", "compute threads (memel::set_num_threads)"},
          {"memel", "none",
           "none; paper: a memel layer at the model's paper placement (mode rd, top-1); paired: a plain "
           "and a paper model in one process, steps interleaved, adds memel_step_ms and memel_overhead"},
          {"device", "cpu", "cpu, sim, cuda or cuda:N (an error where this build or machine lacks it)"},
          {"precision", "fp32",
           "fp32, tf32 or bf16: the operands of float32 matrix products where the device has a choice "
           "(memel::set_matmul_precision; the CPU always computes in fp32)"},
          {"steps", "5", "timed training steps; the median is reported"},
          {"warmup", "2", "untimed training steps first"},
          {"seed", "0", "seed of the parameters, dropout and the random batch"}};
}

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

// One workload's model and optimizer on its fixed batch, with or without memel at the
// paper placement; built from the seed alone, so two of them start identical.
struct Trainer {
  TrainSetup s;
  double last_loss = 0;
  std::unique_ptr<memel::train::GradSync> sync;  // data-parallel runs

  Trainer(const std::string& workload, uint64_t seed, bool with_memel, memel::Device device) {
    memel::manual_seed(seed);  // parameters and dropout
    memel::Generator data_gen(seed + 0x5eed);
    if (workload == "bert-mini" || workload == "bert-base") s = setup_bert(workload, data_gen);
    else if (workload == "swin-t") s = setup_swin("swin-t", 8, data_gen);
    else if (workload == "swin-mini") s = setup_swin("swin-mini", 64, data_gen);
    else if (workload == "convgru") s = setup_convgru(data_gen);
    else MEMEL_FAIL("[memel-bench] no training workload '", workload, "'");
    if (with_memel) {
      memel::MemelOptions mo;  // defaults: mode rd, select top_k, k 1, scope sample, element neurons
      mo.at = {"paper"};
      mo.mode = memel::MemelMode::RD;
      mo.select = memel::MemelSelect::TopK;
      mo.k = 1;
      mo.warmup = 0;  // inhibit from the first step, so the timed steps include selection
      memel::attach_memel(*s.model, mo, s.paper_targets);
    }
    s.model->train();
    // Model and batch onto the device (move_to_ moves every handle, the loss's included);
    // the optimizer, built next, keeps its state where the parameters are.
    s.model->to(device);
    for (memel::Tensor& t : s.batch) t.move_to_(device);
    const memel::dist::Group& grp = memel::dist::Group::world();
    if (grp.size() > 1) {
      memel::train::broadcast_module(*s.model, grp);
      memel::train::install_memel_cross_rank(grp);
      sync = std::make_unique<memel::train::GradSync>(grp, s.model->parameters());
      g_shard = memel::train::BatchShard::of(s.items, grp.rank(), grp.size());
    }
    if (workload == "convgru") {
      memel::AdamOptions o;
      o.lr = 1e-4;
      s.opt = std::make_unique<memel::Adam>(s.model->parameters(), o);
    } else {
      memel::AdamWOptions o;
      const bool bert = workload == "bert-mini" || workload == "bert-base";
      o.lr = bert ? 1e-4 : 1e-3;
      o.weight_decay = bert ? 0.01 : 0.05;
      s.opt = std::make_unique<memel::AdamW>(memel::param_groups_with_decay(*s.model, o.weight_decay), o);
    }
  }

  // One training step (train/step.h: forward, backward, update, zero_grad); returns its ms.
  double step() {
    const auto t0 = std::chrono::steady_clock::now();
    memel::train::StepOptions o;
    o.grad_norm = false;  // the workloads time forward, backward and update only
    o.sync = sync.get();
    last_loss = memel::train::train_step(s.model->parameters(), *s.opt, o, [&](int64_t) {
                  memel::train::ScopedSampleShard keyed(g_shard, sync != nullptr);  // dropout by global sample
                  return s.loss();
                }).loss;
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
};

json run_training(const std::string& workload, const Args& a) {
  const std::string device = a.str("device"), memel_at = a.str("memel");
  memel::Device dev;
  try {
    dev = memel::Device::parse(device);
    (void)memel::backend_for(dev);  // throws where this build or machine lacks the device
  } catch (const std::exception& e) {
    MEMEL_FAIL("[memel-bench] --device ", device, ": ", e.what());
  }
  MEMEL_CHECK(memel_at == "none" || memel_at == "paper" || memel_at == "paired",
              "[memel-bench] --memel must be none, paper or paired, got '", memel_at, "'");
  const std::string precision = a.str("precision");
  memel::set_matmul_precision(memel::parse_matmul_precision(precision));
  const int64_t threads = a.integer("threads", 1), steps = a.integer("steps", 1), warmup = a.integer("warmup", 0);
  const uint64_t seed = static_cast<uint64_t>(a.integer("seed", 0));
  memel::set_num_threads(static_cast<int>(threads));

  // paired: a plain and a memel model in one process, their steps interleaved (the order
  // alternating), so that drift of the machine hits both alike.
  const bool paired = memel_at == "paired";
  Trainer main(workload, seed, memel_at == "paper", dev);
  std::unique_ptr<Trainer> with_memel = paired ? std::make_unique<Trainer>(workload, seed, true, dev) : nullptr;
  for (int64_t i = 0; i < warmup; ++i) {
    main.step();
    if (paired) with_memel->step();
  }
  memel::Allocator& alloc = memel::backend_for(dev).allocator();
  const memel::AllocatorStats before = alloc.stats();
  std::vector<double> ms, ms_memel, ratio, comm;
  const memel::dist::Group& grp = memel::dist::Group::world();
  for (int64_t i = 0; i < steps; ++i) {
    if (!paired) {
      const double w0 = grp.waited_s();
      ms.push_back(main.step());
      comm.push_back((grp.waited_s() - w0) * 1e3);
      continue;
    }
    const bool memel_first = i % 2 == 1;
    const double m1 = memel_first ? with_memel->step() : main.step();
    const double m2 = memel_first ? main.step() : with_memel->step();
    ms.push_back(memel_first ? m2 : m1);
    ms_memel.push_back(memel_first ? m1 : m2);
    ratio.push_back(ms_memel.back() / ms.back());
  }
  const memel::AllocatorStats after = alloc.stats();
  for (const Trainer* t : {&main, with_memel.get()})
    if (t) MEMEL_CHECK(std::isfinite(t->last_loss), "[memel-bench] ", workload, ": the loss is ", t->last_loss);
  const double step_ms = median(ms), flop = 3.0 * main.s.forward_flops;
  json j = {{"device", device},
            {"threads", memel::num_threads()},
            {"memel", memel_at},
            {"step_ms", step_ms},
            {"items_per_s", double(main.s.items) / (step_ms / 1e3)},
            {"gflops", flop / (step_ms * 1e6)},
            {"peak_mem_mb", peak_rss_mb()},
            {"gflop_per_step", flop / 1e9},
            {"tensor_peak_mb", double(after.peak_bytes_in_use) / (1024.0 * 1024.0)},
            {"allocs_per_step", double(after.num_allocs - before.num_allocs) / double(steps * (paired ? 2 : 1))},
            {"system_allocs_per_step",
             double(after.num_system_allocs - before.num_system_allocs) / double(steps * (paired ? 2 : 1))},
            {"params", main.s.model->num_parameters()},
            {"steps", steps},
            {"warmup", warmup},
            {"seed", seed},
            {"loss", main.last_loss},
            {"precision", precision},
            {"kernels", memel::backend_for(memel::Device::parse(device)).describe()}};
  if (grp.size() > 1) {
    j["ranks"] = grp.size();
    if (!comm.empty()) j["comm_ms"] = median(comm);
  }
  if (paired) {
    j["memel_step_ms"] = median(ms_memel);
    j["memel_overhead"] = median(ratio) - 1.0;  // median over the pairs of memel / plain - 1
  }
  return j;
}

json run_bert_mini(const Args& a) { return run_training("bert-mini", a); }
json run_swin_t(const Args& a) { return run_training("swin-t", a); }
json run_swin_mini(const Args& a) { return run_training("swin-mini", a); }
json run_convgru(const Args& a) { return run_training("convgru", a); }
json run_bert_base(const Args& a) { return run_training("bert-base", a); }

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> w = {
      {"gemm", "single-precision square matrix product memel::matmul (N, N) x (N, N)",
       {{"size", nullptr, "matrix size N"},
        {"threads", "1", "compute threads (memel::set_num_threads)"},
        {"reps", "10", "timed repetitions; the median is reported"},
        {"warmup", "2", "untimed repetitions first"},
        {"seed", "0", "random data seed"}},
       run_gemm},
      {"bert-mini", "W1: BERT-mini training step (4 layers, hidden 256), batch 32 x 128 tokens, AdamW",
       train_options(), run_bert_mini},
      {"swin-t", "W2: Swin-T training step, batch 8 x 3x224x224, 1000 classes, AdamW", train_options(), run_swin_t},
      {"swin-mini", "W3: Swin-mini training step (patch 2, dim 48, window 4), batch 64 x 3x32x32, 10 classes, AdamW",
       train_options(), run_swin_mini},
      {"convgru", "W4: HKO-7 ConvGRU encoder-forecaster training step, 5 -> 20 frames, batch 2 x 1x240x240, Adam",
       train_options(), run_convgru},
      {"bert-base", "W5 (for a GPU): BERT-base training step (12 layers, hidden 768), batch 32 x 128 tokens, AdamW",
       train_options(), run_bert_base},
  };
  return w;
}

void print_help(std::FILE* out) {
  std::fprintf(out,
               "usage: memel-bench --workload NAME [--option value]...\n"
               "Runs one workload and prints one JSON line: {\"workload\": NAME, ...measurements}.\n\n"
               "workloads and their options:\n");
  for (const Workload& w : workloads()) {
    std::fprintf(out, "  %s: %s\n", w.name, w.help);
    for (const Option& o : w.options) {
      std::string head = std::string("--") + o.name + " " + (o.fallback ? std::string("(default ") + o.fallback + ")"
                                                                          : std::string("(required)"));
      std::fprintf(out, "      %-26s %s\n", head.c_str(), o.help);
    }
  }
  std::fprintf(out, "\n  --list    print the workload names\n  --help    this help\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> given;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      print_help(stdout);
      return 0;
    }
    if (a == "--list") {
      for (const Workload& w : workloads()) std::printf("%s\n", w.name);
      return 0;
    }
    if (a.rfind("--", 0) != 0 || a.size() == 2) {
      std::fprintf(stderr, "memel-bench: unexpected argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
    std::string key = a.substr(2), value;
    size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "memel-bench: --%s needs a value\n", key.c_str());
      return 2;
    }
    given[key] = value;
  }
  if (!given.count("workload")) {
    std::fprintf(stderr, "memel-bench: --workload is required (one of:");
    for (const Workload& w : workloads()) std::fprintf(stderr, " %s", w.name);
    std::fprintf(stderr, ")\n");
    return 2;
  }
  const std::string name = given["workload"];
  given.erase("workload");
  const Workload* w = nullptr;
  for (const Workload& c : workloads())
    if (name == c.name) w = &c;
  if (!w) {
    std::fprintf(stderr, "memel-bench: unknown workload '%s' (see --list)\n", name.c_str());
    return 2;
  }
  std::map<std::string, std::string> values;
  for (const Option& o : w->options) {
    auto it = given.find(o.name);
    if (it != given.end()) {
      values[o.name] = it->second;
      given.erase(it);
    } else if (o.fallback) {
      values[o.name] = o.fallback;
    } else {
      std::fprintf(stderr, "memel-bench: workload %s needs --%s (%s)\n", w->name, o.name, o.help);
      return 2;
    }
  }
  if (!given.empty()) {
    std::fprintf(stderr, "memel-bench: workload %s has no option --%s (see --help)\n", w->name,
                 given.begin()->first.c_str());
    return 2;
  }
  try {
    json out = {{"workload", w->name}};
    json fields = w->run(Args(values));
    for (auto it = fields.begin(); it != fields.end(); ++it) out[it.key()] = it.value();
    if (memel::dist::Group::world().is_root()) std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memel-bench: %s\n", e.what());
    if (memel::dist::Group::world().size() > 1) memel::dist::Group::world().abort(1);  // end every rank
    return 1;
  }
  return 0;
}
