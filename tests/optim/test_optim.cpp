#include <doctest/doctest.h>

#include "support.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "layers/linear.h"
#include "layers/norm.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "optim/sgd.h"

using namespace memel;

namespace {

Tensor param(std::vector<double> v) {
  Shape s{static_cast<int64_t>(v.size())};
  return Tensor::from_vector(v, s).set_requires_grad();
}

void set_grad(Tensor& p, std::vector<double> g) { p.set_grad(Tensor::from_vector(g, p.shape())); }

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.contiguous_copy().raw_data(), b.contiguous_copy().raw_data(), a.nbytes()) == 0;
}

std::shared_ptr<Sequential> small_model() {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(4, 3), std::make_shared<LayerNorm>(3), std::make_shared<Linear>(3, 2)});
}

// Deterministic pseudo-gradients for step `s` (same on every call).
void fake_grads(Module& m, int s) {
  Generator g(1000 + s);
  for (auto& p : m.parameters()) p.set_grad(Tensor::randn(p.shape(), p.dtype(), &g));
}

}  // namespace

TEST_CASE("optim: SGD plain, momentum, Nesterov and weight decay against hand values") {
  SUBCASE("plain") {
    Tensor p = param({1, 2});
    SGDOptions o;
    o.lr = 0.1;
    SGD opt({p}, o);
    set_grad(p, {0.5, -1});
    opt.step();
    CHECK(p.to_vector()[0] == doctest::Approx(0.95).epsilon(1e-15));
    CHECK(p.to_vector()[1] == doctest::Approx(2.1).epsilon(1e-15));
  }
  SUBCASE("Nesterov with weight decay, two steps") {
    Tensor p = param({1, 2});
    SGDOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.weight_decay = 0.1;
    o.nesterov = true;
    SGD opt({p}, o);
    set_grad(p, {0.5, -1});
    opt.step();
    CHECK(p.to_vector()[0] == doctest::Approx(0.886).epsilon(1e-14));
    CHECK(p.to_vector()[1] == doctest::Approx(2.152).epsilon(1e-14));
    opt.step();  // same gradient
    CHECK(p.to_vector()[0] == doctest::Approx(0.725566).epsilon(1e-14));
    CHECK(p.to_vector()[1] == doctest::Approx(2.365912).epsilon(1e-14));
  }
  SUBCASE("momentum with dampening: first step takes the raw gradient") {
    Tensor p = param({0});
    SGDOptions o;
    o.lr = 1;
    o.momentum = 0.5;
    o.dampening = 0.5;
    SGD opt({p}, o);
    set_grad(p, {1});
    opt.step();  // buf = 1
    CHECK(p.item() == -1.0);
    opt.step();  // buf = 0.5 * 1 + 0.5 * 1 = 1
    CHECK(p.item() == -2.0);
    set_grad(p, {3});
    opt.step();  // buf = 0.5 + 1.5 = 2
    CHECK(p.item() == -4.0);
  }
  CHECK(error_of([] {
          SGDOptions o;
          o.nesterov = true;
          SGD s({param({1})}, o);
        }) == "[SGD] Nesterov momentum requires a momentum and zero dampening");
}

TEST_CASE("optim: AdamW, Adam and AMSGrad against hand values") {
  SUBCASE("AdamW: decoupled decay and bias correction") {
    Tensor p = param({1});
    AdamWOptions o;
    o.lr = 0.1;
    o.weight_decay = 0.1;
    AdamW opt({p}, o);
    set_grad(p, {0.5});
    opt.step();
    CHECK(p.item() == doctest::Approx(0.8900000019999998).epsilon(1e-14));
    set_grad(p, {-1});
    opt.step();
    CHECK(p.item() == doctest::Approx(0.9177103542205652).epsilon(1e-14));
    CHECK(opt.param_step(0) == 2);
  }
  SUBCASE("Adam: L2 decay folded into the gradient") {
    Tensor p = param({1});
    AdamOptions o;
    o.lr = 0.1;
    o.weight_decay = 0.1;
    Adam opt({p}, o);
    set_grad(p, {0.5});
    opt.step();
    CHECK(p.item() == doctest::Approx(0.9000000016666666).epsilon(1e-14));
    set_grad(p, {-1});
    opt.step();
    CHECK(p.item() == doctest::Approx(0.9252635194456063).epsilon(1e-14));
  }
  SUBCASE("AMSGrad keeps the running maximum of exp_avg_sq") {
    Tensor p = param({1});
    AdamWOptions o;
    o.lr = 0.1;
    o.weight_decay = 0;
    o.amsgrad = true;
    AdamW opt({p}, o);
    set_grad(p, {1});
    opt.step();
    set_grad(p, {0.01});
    opt.step();
    CHECK(p.item() == doctest::Approx(0.8322835510128203).epsilon(1e-14));
    auto st = opt.state_dict();
    CHECK(st.tensors.at("state.0.max_exp_avg_sq").item() == doctest::Approx(0.001).epsilon(1e-14));
    CHECK(st.tensors.at("state.0.exp_avg_sq").item() == doctest::Approx(0.0009991).epsilon(1e-14));
  }
  SUBCASE("float32 parameters") {
    Tensor p = Tensor::from_vector(std::vector<float>{1.f}, {1}).set_requires_grad();
    AdamWOptions o;
    o.lr = 0.1;
    o.weight_decay = 0.1;
    AdamW opt({p}, o);
    p.set_grad(Tensor::from_vector(std::vector<float>{0.5f}, {1}));
    opt.step();
    CHECK(p.item() == doctest::Approx(0.89).epsilon(1e-6));
  }
  CHECK(error_of([] {
          AdamWOptions o;
          o.beta2 = 1.0;
          AdamW a({param({1})}, o);
        }) == "[AdamW] beta2 must be in [0, 1), got 1");
}

TEST_CASE("optim: groups, defaults, lr per group, skipping parameters without a gradient") {
  Tensor a = param({1}), b = param({1});
  ParamGroup g0({a}), g1({b});
  g1.lr = 0.5;
  g1.options["momentum"] = 0.9;
  SGDOptions o;
  o.lr = 0.1;
  SGD opt({g0, g1}, o);
  CHECK(opt.lr(0) == 0.1);
  CHECK(opt.lr(1) == 0.5);
  CHECK(opt.param_groups()[0].option("momentum") == 0.0);
  CHECK(opt.param_groups()[1].option("momentum") == 0.9);
  set_grad(b, {1});
  opt.step();  // a has no gradient: untouched, no state
  CHECK(a.item() == 1.0);
  CHECK(b.item() == 0.5);
  CHECK(opt.param_step(0) == 0);
  CHECK(opt.param_step(1) == 1);
  opt.set_lr(1, 0.25);
  CHECK(opt.lr(1) == 0.25);
  opt.set_lr(0.01);
  CHECK(opt.lr(0) == 0.01);
  CHECK(opt.lr(1) == 0.01);
  opt.zero_grad();
  CHECK(!b.grad().defined());
  CHECK(error_of([&] { opt.lr(2); }) == "[SGD] no parameter group 2 (there are 2)");
  CHECK(error_of([&] {
          ParamGroup bad({a});
          bad.options["beta1"] = 0.9;
          SGD s({bad});
        }) == "[SGD] unknown option 'beta1' in group 0 (known: dampening, momentum, nesterov)");
  CHECK(error_of([&] { SGD s({a, a}); }) == "[SGD] parameter 1 of group 0 appears more than once in the parameter groups");
  CHECK(error_of([&] { SGD s(std::vector<Tensor>{}); }) == "[SGD] got an empty parameter list");
  CHECK(error_of([&] { SGD s({mul(a, 2.0)}); }) ==
        "[SGD] parameter 0 of group 0 is not a leaf tensor (it has a history); optimise leaves only");
}

TEST_CASE("optim: param_groups_with_decay puts biases and norm weights in the no-decay group") {
  auto m = small_model();
  auto groups = param_groups_with_decay(*m, 0.01);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].names == std::vector<std::string>{"0.weight", "2.weight"});
  CHECK(groups[1].names == std::vector<std::string>{"0.bias", "1.weight", "1.bias", "2.bias"});
  CHECK(*groups[0].weight_decay == 0.01);
  CHECK(*groups[1].weight_decay == 0.0);
  CHECK(is_no_decay_param("encoder.layer.0.output.LayerNorm.weight", Tensor::zeros({4, 4})));
  CHECK(is_no_decay_param("layers.0.blocks.1.norm1.weight", Tensor::zeros({4, 4})));
  CHECK(!is_no_decay_param("encoder.layer.0.output.dense.weight", Tensor::zeros({4, 4})));
  AdamWOptions o;
  o.lr = 1e-3;
  AdamW opt(groups, o);
  CHECK(opt.param_groups()[1].weight_decay.value() == 0.0);
  CHECK(opt.param_groups()[0].weight_decay.value() == 0.01);
}

TEST_CASE("optim: schedules at key steps") {
  LRSchedule cos(ScheduleConfig::cosine(1.0, 10, 110, 0.1));
  CHECK(cos.lr_at(0) == 0.0);
  CHECK(cos.lr_at(5) == doctest::Approx(0.5));
  CHECK(cos.lr_at(10) == doctest::Approx(1.0));
  CHECK(cos.lr_at(60) == doctest::Approx(0.55));
  CHECK(cos.lr_at(110) == doctest::Approx(0.1));
  CHECK(cos.lr_at(1000) == doctest::Approx(0.1));
  LRSchedule lin(ScheduleConfig::linear(1.0, 10, 110));
  CHECK(lin.lr_at(5) == doctest::Approx(0.5));
  CHECK(lin.lr_at(10) == doctest::Approx(1.0));
  CHECK(lin.lr_at(60) == doctest::Approx(0.5));
  CHECK(lin.lr_at(110) == 0.0);
  CHECK(lin.lr_at(500) == 0.0);
  LRSchedule st(ScheduleConfig::step_decay(1.0, 30, 0.1));
  CHECK(st.lr_at(0) == 1.0);
  CHECK(st.lr_at(29) == 1.0);
  CHECK(st.lr_at(30) == doctest::Approx(0.1));
  CHECK(st.lr_at(65) == doctest::Approx(0.01));
  LRSchedule st_w(ScheduleConfig::step_decay(1.0, 30, 0.1, 10));
  CHECK(st_w.lr_at(5) == doctest::Approx(0.5));
  CHECK(st_w.lr_at(39) == 1.0);
  CHECK(st_w.lr_at(40) == doctest::Approx(0.1));
  LRSchedule con(ScheduleConfig::constant(2.0, 4));
  CHECK(con.lr_at(1) == 0.5);
  CHECK(con.lr_at(4) == 2.0);
  CHECK(con.lr_at(1000000) == 2.0);
  CHECK(LRSchedule(ScheduleConfig::constant(3e-4)).lr_at(0) == 3e-4);

  // Applying to an optimizer keeps the groups' ratio; state is just the step.
  Tensor a = param({1}), b = param({1});
  ParamGroup g0({a}), g1({b});
  g1.lr = 0.5;
  SGDOptions so;
  so.lr = 1.0;
  SGD opt({g0, g1}, so);
  LRSchedule sched(ScheduleConfig::constant(1.0, 10));
  for (int i = 0; i < 5; ++i) sched.step();
  sched.apply(opt);
  CHECK(opt.lr(0) == 0.5);
  CHECK(opt.lr(1) == 0.25);
  nlohmann::json saved = sched.state_dict();
  CHECK(saved.dump() == "{\"step\":5}");
  LRSchedule other(ScheduleConfig::constant(1.0, 10));
  other.load_state_dict(saved);
  CHECK(other.current_step() == 5);
  CHECK(other.lr() == 0.5);

  auto c = ScheduleConfig::from_json(nlohmann::json::parse(
      R"({"kind": "cosine", "lr": 0.001, "warmup_steps": 100, "total_steps": 1000, "min_lr": 1e-5})"));
  CHECK(LRSchedule(c).lr_at(1000) == doctest::Approx(1e-5));
  CHECK(ScheduleConfig::from_json(c.to_json()).to_json() == c.to_json());
  CHECK(error_of([] { ScheduleConfig::from_json(nlohmann::json::parse(R"({"kind": "cosine", "lr": 1})")); }) ==
        "[schedule] cosine needs total_steps > warmup_steps, got total_steps=0 warmup_steps=0");
  CHECK(error_of([] { ScheduleConfig::from_json(nlohmann::json::parse(R"({"kind": "exp"})")); }) ==
        "[schedule] unknown kind 'exp' (expected constant, cosine, linear or step)");
  CHECK(error_of([] { ScheduleConfig::from_json(nlohmann::json::parse(R"({"warmup": 3})")); }) ==
        "[schedule] unknown key 'warmup' (expected kind, lr, min_lr, warmup_steps, total_steps, step_size, gamma)");
}

TEST_CASE("optim: clip_grad_norm returns the pre-clip global norm and scales as PyTorch") {
  Tensor a = param({3, 4}), b = param({12}), c = param({100});
  set_grad(a, {3, 4});
  set_grad(b, {12});
  // c has no gradient: skipped
  CHECK(grad_norm({a, b, c}) == 13.0);
  CHECK(clip_grad_norm({a, b, c}, 20.0) == 13.0);
  CHECK(a.grad().to_vector() == std::vector<double>{3, 4});  // untouched
  CHECK(clip_grad_norm({a, b, c}, 6.5) == 13.0);
  const double k = 6.5 / (13.0 + 1e-6);
  CHECK(a.grad().to_vector()[0] == 3 * k);
  CHECK(a.grad().to_vector()[1] == 4 * k);
  CHECK(b.grad().to_vector()[0] == 12 * k);
  CHECK(grad_norm({a, b}) == doctest::Approx(6.5).epsilon(1e-6));
  // float32 gradients
  Tensor f = Tensor::zeros({4}).set_requires_grad();
  f.set_grad(Tensor::full({4}, 2.0));
  CHECK(clip_grad_norm({f}, 1.0) == 4.0);
  CHECK(f.grad().to_vector()[0] == doctest::Approx(0.5).epsilon(1e-6));
  set_grad(a, {NAN, 1});
  CHECK(std::isnan(clip_grad_norm({a}, 1.0)));
  CHECK(error_of([&] { clip_grad_norm({a}, 1.0, true); }) == "[clip_grad_norm] the total gradient norm is nan");
}

TEST_CASE("optim: state_dict round trip continues bit for bit") {
  for (std::string kind : {"AdamW", "AdamW-amsgrad", "SGD", "Adam"}) {
    CAPTURE(kind);
    manual_seed(5);
    auto m1 = small_model();
    auto m2 = small_model();  // different init; takes m1's weights below
    auto make = [&](Module& m) -> std::unique_ptr<Optimizer> {
      auto groups = param_groups_with_decay(m, 0.05);
      if (kind == "SGD") {
        SGDOptions o;
        o.lr = 0.05;
        o.momentum = 0.9;
        o.nesterov = true;
        return std::make_unique<SGD>(groups, o);
      }
      if (kind == "Adam") {
        AdamOptions o;
        o.lr = 0.01;
        return std::make_unique<Adam>(groups, o);
      }
      AdamWOptions o;
      o.lr = 0.01;
      o.amsgrad = kind == "AdamW-amsgrad";
      return std::make_unique<AdamW>(groups, o);
    };
    auto opt1 = make(*m1);
    LRSchedule sched(ScheduleConfig::cosine(0.01, 2, 10));
    for (int s = 0; s < 4; ++s) {
      sched.apply(*opt1);
      fake_grads(*m1, s);
      opt1->step();
      sched.step();
    }
    // Save through a safetensors file, as a checkpoint does.
    const std::string path = std::string(MEMEL_BINARY_DIR) + "/test_optim_state_" + kind + ".safetensors";
    save_optimizer_state(path, opt1->state_dict());
    nlohmann::json sched_state = sched.state_dict();
    m2->load_state_dict(m1->state_dict());
    auto opt2 = make(*m2);
    opt2->load_state_dict(load_optimizer_state(path));
    std::remove(path.c_str());
    LRSchedule sched2(ScheduleConfig::cosine(0.01, 2, 10));
    sched2.load_state_dict(sched_state);
    for (int s = 4; s < 8; ++s) {
      sched.apply(*opt1);
      sched2.apply(*opt2);
      fake_grads(*m1, s);
      fake_grads(*m2, s);
      opt1->step();
      opt2->step();
      sched.step();
      sched2.step();
    }
    auto p1 = m1->named_parameters(), p2 = m2->named_parameters();
    for (size_t i = 0; i < p1.size(); ++i) {
      CAPTURE(p1[i].first);
      CHECK(bit_equal(p1[i].second, p2[i].second));
    }
    auto s1 = opt1->state_dict(), s2 = opt2->state_dict();
    CHECK(s1.meta == s2.meta);
    for (auto& kv : s1.tensors) CHECK(bit_equal(kv.second, s2.tensors.at(kv.first)));
    CHECK(opt2->param_step(0) == 8);
  }
}

TEST_CASE("optim: load_state_dict refuses a state that does not fit") {
  Tensor a = param({1, 2}), b = param({3});
  AdamW opt({a, b});
  set_grad(a, {1, 1});
  set_grad(b, {1});
  opt.step();
  OptimizerState s = opt.state_dict();
  CHECK(s.meta["state"]["0"]["step"] == 1);
  CHECK(s.tensors.count("state.1.exp_avg_sq") == 1);
  CHECK(error_of([&] { SGD(std::vector<Tensor>{a, b}).load_state_dict(s); }) ==
        "[SGD.load_state_dict] state was saved by AdamW, this optimizer is SGD");
  CHECK(error_of([&] { AdamW({a}).load_state_dict(s); }) ==
        "[AdamW.load_state_dict] group 0 has 2 parameters in the state, 1 in this optimizer");
  Tensor c = param({1, 2, 3});
  CHECK(error_of([&] { AdamW({a, c}).load_state_dict(s); }) ==
        "[AdamW.load_state_dict] tensor 'state.1.exp_avg' has shape (1,), parameter 1 has (3,)");
  OptimizerState extra = s;
  extra.tensors["state.7.exp_avg"] = Tensor::zeros({1});
  CHECK(error_of([&] { AdamW({a, b}).load_state_dict(extra); }) ==
        "[AdamW.load_state_dict] unexpected tensor 'state.7.exp_avg'");
  OptimizerState missing = s;
  missing.tensors.erase("state.0.exp_avg");
  CHECK(error_of([&] { AdamW({a, b}).load_state_dict(missing); }) ==
        "[AdamW.load_state_dict] missing tensor 'state.0.exp_avg'");
}
