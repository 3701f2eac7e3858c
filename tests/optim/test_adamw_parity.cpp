// AdamW (and Adam, SGD) against torch.optim: the same initial float32 parameters and
// gradient sequence go through both; after 5 steps the parameters must agree to a
// relative error of 1e-5 (|ours - ref| / max(|ref|, 1e-2)). Skips (with a message)
// when Debian's python3 has no torch (fails instead under MEMEL_TORCH_REFERENCE=required).
#include <doctest/doctest.h>

#include "support.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "optim/adamw.h"
#include "optim/sgd.h"

using namespace memel;
using nlohmann::json;

namespace {

struct Case {
  std::string name, optimizer;
  json defaults;                           // torch keyword arguments
  std::vector<std::vector<int>> groups;    // parameter indices per group
  std::vector<double> group_wd;            // weight decay per group (< 0: default)
  std::vector<Tensor> params;              // float32 initial values
  std::vector<std::vector<Tensor>> grads;  // [step][param]
};

Case make_case(const std::string& name, const std::string& optimizer, json defaults, uint64_t seed) {
  Case c;
  c.name = name;
  c.optimizer = optimizer;
  c.defaults = std::move(defaults);
  Generator g(seed);
  // Two weights in a decayed group, a bias and a norm scale in a no-decay group.
  const std::vector<Shape> shapes = {{4, 3}, {2, 5}, {3}, {5}};
  for (auto& s : shapes) c.params.push_back(Tensor::randn(s, DType::F32, &g));
  c.groups = {{0, 1}, {2, 3}};
  c.group_wd = {-1.0, 0.0};
  for (int step = 0; step < 5; ++step) {
    std::vector<Tensor> gs;
    for (auto& s : shapes) gs.push_back(mul(Tensor::randn(s, DType::F32, &g), 0.1 * (step + 1)));
    // A few exact zeros and a large value, to exercise eps and the second moment.
    gs[0].data<float>()[0] = 0.0f;
    gs[1].data<float>()[3] = 5.0f;
    c.grads.push_back(gs);
  }
  return c;
}

json tensor_json(const Tensor& t) { return {{"shape", t.shape()}, {"data", t.to_vector()}}; }

// Our optimizer on copies of the case's parameters; returns the final values.
std::vector<std::vector<double>> run_memel(const Case& c) {
  std::vector<Tensor> params;
  for (auto& p : c.params) params.push_back(p.contiguous_copy().set_requires_grad());
  std::vector<ParamGroup> groups;
  for (size_t gi = 0; gi < c.groups.size(); ++gi) {
    ParamGroup g;
    for (int i : c.groups[gi]) g.params.push_back(params[i]);
    if (c.group_wd[gi] >= 0) g.weight_decay = c.group_wd[gi];
    groups.push_back(g);
  }
  const json& d = c.defaults;
  std::unique_ptr<Optimizer> opt;
  if (c.optimizer == "SGD") {
    SGDOptions o;
    o.lr = d.at("lr");
    o.momentum = d.value("momentum", 0.0);
    o.dampening = d.value("dampening", 0.0);
    o.weight_decay = d.value("weight_decay", 0.0);
    o.nesterov = d.value("nesterov", false);
    opt = std::make_unique<SGD>(groups, o);
  } else if (c.optimizer == "Adam") {
    AdamOptions o;
    o.lr = d.at("lr");
    o.beta1 = d.at("betas")[0];
    o.beta2 = d.at("betas")[1];
    o.eps = d.at("eps");
    o.weight_decay = d.at("weight_decay");
    o.amsgrad = d.value("amsgrad", false);
    opt = std::make_unique<Adam>(groups, o);
  } else {
    AdamWOptions o;
    o.lr = d.at("lr");
    o.beta1 = d.at("betas")[0];
    o.beta2 = d.at("betas")[1];
    o.eps = d.at("eps");
    o.weight_decay = d.at("weight_decay");
    o.amsgrad = d.value("amsgrad", false);
    opt = std::make_unique<AdamW>(groups, o);
  }
  for (auto& step : c.grads) {
    for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(step[i].contiguous_copy());
    opt->step();
  }
  std::vector<std::vector<double>> out;
  for (auto& p : params) out.push_back(p.to_vector());
  return out;
}

}  // namespace

TEST_CASE("optim parity: AdamW, Adam and SGD match torch.optim after 5 steps (float32)") {
  if (!torch_reference_available("torch")) return;
  std::vector<Case> cases = {
      make_case("adamw", "AdamW", {{"lr", 1e-2}, {"betas", {0.9, 0.999}}, {"eps", 1e-8}, {"weight_decay", 0.1}}, 1),
      make_case("adamw_amsgrad", "AdamW",
                {{"lr", 3e-3}, {"betas", {0.8, 0.99}}, {"eps", 1e-6}, {"weight_decay", 0.05}, {"amsgrad", true}}, 2),
      make_case("adam_l2", "Adam", {{"lr", 1e-2}, {"betas", {0.9, 0.999}}, {"eps", 1e-8}, {"weight_decay", 0.1}}, 3),
      make_case("sgd_nesterov", "SGD",
                {{"lr", 0.05}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 0.01}}, 4),
      make_case("sgd_dampening", "SGD", {{"lr", 0.1}, {"momentum", 0.5}, {"dampening", 0.3}}, 5),
  };
  json in;
  in["cases"] = json::array();
  for (auto& c : cases) {
    json jc = {{"name", c.name}, {"optimizer", c.optimizer}, {"defaults", c.defaults}};
    jc["groups"] = json::array();
    for (size_t gi = 0; gi < c.groups.size(); ++gi) {
      json g = {{"params", c.groups[gi]}};
      if (c.group_wd[gi] >= 0) g["weight_decay"] = c.group_wd[gi];
      jc["groups"].push_back(g);
    }
    for (auto& p : c.params) jc["params"].push_back(tensor_json(p));
    for (auto& step : c.grads) {
      json js = json::array();
      for (auto& g : step) js.push_back(g.to_vector());
      jc["grads"].push_back(js);
    }
    in["cases"].push_back(jc);
  }
  const std::string dir = MEMEL_BINARY_DIR;
  const std::string in_path = dir + "/adamw_parity_in.json", out_path = dir + "/adamw_parity_out.json";
  {
    std::ofstream f(in_path);
    f << in.dump();
  }
  const std::string cmd = reference_python() + " " + std::string(MEMEL_SOURCE_DIR) + "/tests/python/adamw_parity.py " +
                          in_path + " " + out_path;
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "reference script failed: ", cmd);
  json out;
  {
    std::ifstream f(out_path);
    f >> out;
  }
  MESSAGE("torch ", out["torch"].get<std::string>());
  for (auto& c : cases) {
    CAPTURE(c.name);
    auto ours = run_memel(c);
    auto ref = out["cases"][c.name].get<std::vector<std::vector<double>>>();
    REQUIRE(ref.size() == ours.size());
    double max_rel = 0.0;
    for (size_t i = 0; i < ours.size(); ++i) {
      REQUIRE(ref[i].size() == ours[i].size());
      for (size_t k = 0; k < ours[i].size(); ++k) {
        // Values near zero are differences of O(1) numbers: measure them against 1e-2.
        const double den = std::max(std::abs(ref[i][k]), 1e-2);
        max_rel = std::max(max_rel, std::abs(ours[i][k] - ref[i][k]) / den);
      }
    }
    // The decayed and no-decay groups both moved (the case is not trivially equal).
    CHECK(ours[0] != c.params[0].to_vector());
    CHECK(ours[3] != c.params[3].to_vector());
    MESSAGE(c.name, ": max relative error ", max_rel);
    CHECK(max_rel <= 1e-5);
  }
  std::remove(in_path.c_str());
  std::remove(out_path.c_str());
}
