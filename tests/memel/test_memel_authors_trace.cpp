// Replays a trace of the authors' memel layer (EmeL.py, github.com/dominatorX/MEmeL-code)
// through memel's "authors" preset. The fixture tests/memel/authors_trace.safetensors was
// recorded once under Debian's PyTorch by scripts/record_authors_trace.py (a reimplementation
// of the released layer written from reading it): per step the input, the upstream gradient,
// the output, the input gradient, the running mean and variance after the step, the
// selection (0/1) and, on inhibited steps, the scores. 13 training batches of 4 samples x
// (3, 5) neurons (10 of warm-up), one eval batch, two more training batches; one neuron
// duplicates another so that a selection includes a tie. No Python is needed here.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "memel/layer.h"
#include "support.h"
#include "tensor/tensor_io.h"

using namespace memel;

namespace {

const TensorFile& trace() {
  static const TensorFile f = load_safetensors(std::string(MEMEL_SOURCE_DIR) + "/tests/memel/authors_trace.safetensors");
  return f;
}

const Tensor& at(const std::string& name) {
  auto it = trace().tensors.find(name);
  REQUIRE_MESSAGE(it != trace().tensors.end(), "trace has no ", name);
  return it->second;
}

std::string step_name(int i) { return std::string("step") + (i < 10 ? "0" : "") + std::to_string(i) + "."; }

// The flat indices of the 1s of a 0/1 tensor.
std::vector<int64_t> ones(const Tensor& t) {
  std::vector<int64_t> r;
  std::vector<double> v = t.to_vector();
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] != 0) r.push_back(int64_t(i));
  return r;
}

struct Replay {
  double worst = 0;             // worst relative error over outputs, gradients and statistics
  int selection_mismatches = 0;  // steps whose selection differs
};

Replay replay(const MemelOptions& o) {
  const std::vector<std::string> plan = nlohmann::json::parse(trace().metadata.at("steps")).get<std::vector<std::string>>();
  REQUIRE(plan.size() == 16);
  MemelLayer layer(o);
  Replay r;
  for (int i = 0; i < int(plan.size()); ++i) {
    const std::string p = step_name(i);
    CAPTURE(p);
    layer.train(plan[i] == "train");
    Tensor x = at(p + "x").detach().contiguous_copy().set_requires_grad();
    Tensor y = layer(x);
    backward(y, at(p + "grad_out"));
    const double e_y = rel_err(y, at(p + "y")), e_g = rel_err(x.grad(), at(p + "grad_in"));
    const double e_m = rel_err(reshape(layer.stats().mean, {3, 5}), at(p + "mean"));
    const double e_v = rel_err(reshape(layer.stats().var, {3, 5}), at(p + "var"));
    r.worst = std::max({r.worst, e_y, e_g, e_m, e_v});
    if (layer.last_selected() != ones(at(p + "selected"))) ++r.selection_mismatches;
    auto sc = trace().tensors.find(p + "scores");
    if (sc != trace().tensors.end() && layer.last_scores().defined())
      r.worst = std::max(r.worst, rel_err(layer.last_scores(), sc->second));
  }
  return r;
}

}  // namespace

TEST_CASE("memel authors preset: replays the authors' layer trace to <= 1e-5 (outputs, gradients, statistics, "
          "selections, scores)") {
  CHECK(trace().metadata.at("reference").find("EmeL.py") != std::string::npos);
  MemelOptions o = MemelOptions::from_json(nlohmann::json::parse(R"({"preset": "authors"})"));
  const std::vector<std::string> plan = nlohmann::json::parse(trace().metadata.at("steps")).get<std::vector<std::string>>();
  MemelLayer layer(o);
  double worst = 0;
  int selected_steps = 0;
  bool saw_tie = false;
  for (int i = 0; i < int(plan.size()); ++i) {
    const std::string p = step_name(i);
    CAPTURE(p);
    layer.train(plan[i] == "train");
    Tensor x = at(p + "x").detach().contiguous_copy().set_requires_grad();
    Tensor y = layer(x);
    backward(y, at(p + "grad_out"));
    const double e_y = rel_err(y, at(p + "y"));
    const double e_g = rel_err(x.grad(), at(p + "grad_in"));
    const double e_m = rel_err(reshape(layer.stats().mean, {3, 5}), at(p + "mean"));
    const double e_v = rel_err(reshape(layer.stats().var, {3, 5}), at(p + "var"));
    CHECK(e_y <= 1e-5);
    CHECK(e_g <= 1e-5);
    CHECK(e_m <= 1e-5);
    CHECK(e_v <= 1e-5);
    worst = std::max({worst, e_y, e_g, e_m, e_v});
    const std::vector<int64_t> want = ones(at(p + "selected"));
    CHECK(layer.last_selected() == want);
    if (!want.empty()) ++selected_steps;
    // A sample with two selected elements: the authors' "every tied maximum".
    for (size_t s = 1; s < want.size(); ++s) saw_tie = saw_tie || want[s] / 15 == want[s - 1] / 15;
    auto sc = trace().tensors.find(p + "scores");
    if (sc != trace().tensors.end()) {
      REQUIRE(layer.last_scores().defined());
      const double e_s = rel_err(layer.last_scores(), sc->second);
      CHECK(e_s <= 1e-5);
      worst = std::max(worst, e_s);
    }
    if (plan[i] == "eval") {
      CHECK(layer.last_selected().empty());
      CHECK(max_abs_diff(y, x) == 0.0);
    }
  }
  CHECK(layer.stats().mean.dtype() == DType::F32);
  CHECK(selected_steps == 5);  // 3 inhibited steps after the warm-up, 2 after the eval batch
  CHECK(saw_tie);
  MESSAGE("authors trace: worst relative error ", worst, " over ", plan.size(), " steps");
}

TEST_CASE("memel authors trace: each of the authors' choices matters (the paper preset, or one choice undone, "
          "does not replay it)") {
  auto with = [](const std::string& js) { return MemelOptions::from_json(nlohmann::json::parse(js)); };
  const Replay authors = replay(with(R"({"preset": "authors"})"));
  CHECK(authors.worst <= 1e-5);
  CHECK(authors.selection_mismatches == 0);
  // Each variant departs from the trace by far more than rounding, or selects differently.
  for (const char* js : {R"({"preset": "paper"})", R"({"preset": "authors", "count_ahead": false})",
                         R"({"preset": "authors", "score_after_update": false})",
                         R"({"preset": "authors", "ties": "lower_index"})", R"({"preset": "authors", "forget_batches": 0})",
                         R"({"preset": "authors", "eps": 0})", R"({"preset": "authors", "warmup": 9})"}) {
    CAPTURE(js);
    const Replay r = replay(with(js));
    CHECK((r.worst > 1e-3 || r.selection_mismatches > 0));
  }
}
