// Run integrity (issue 23): the trainer's units on their own (run directory lock, metrics
// log, config record, checkpoints, the step, the evaluator) and, end to end through the
// memel-train program, a regression test for each finding of the issue.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "core/sha256.h"
#include "layers/linear.h"
#include "optim/sgd.h"
#include "tensor/tensor_io.h"
#include "train/checkpoint.h"
#include "train/evaluator.h"
#include "train/run_dir.h"
#include "train/step.h"
#include "train/train_support.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace memel;
using namespace memel::train;
using namespace memel::train_test;

namespace {

const bool kHaveData = fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");

std::string fresh_dir(const std::string& name) {
  const std::string d = std::string(MEMEL_BINARY_DIR) + "/integrity/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// A checkpoint of a small linear model with an SGD state, written by the Checkpointer.
struct SmallCheckpoint {
  std::shared_ptr<Linear> model = std::make_shared<Linear>(3, 2);
  std::unique_ptr<SGD> opt;
  SmallCheckpoint() {
    SGDOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    opt = std::make_unique<SGD>(model->parameters(), o);
    Tensor x = Tensor::ones({4, 3});
    backward(sum(model->forward(x)));
    opt->step();
  }
  std::string save(Checkpointer& c, int64_t step) {
    CheckpointContents cc;
    cc.write_model = [&](const std::string& p) { save_safetensors(p, model->state_dict()); };
    cc.optimizer = opt->state_dict();
    cc.state.step = step;
    cc.state.schedule = json{{"step", step}};
    return c.save(step, cc);
  }
};

// Rewrites state.json with `edit` applied and its digest recomputed (a corruption that a
// digest alone would not catch: the range checks must).
void edit_state_keeping_digest(const std::string& dir, const std::function<void(json&)>& edit) {
  std::ifstream f(dir + "/state.json");
  json st = json::parse(f);
  edit(st);
  st.erase("digest");
  st["digest"] = sha256_hex(st.dump());
  write_text(dir + "/state.json", st.dump(2));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

json small_config() {
  return {{"task", "image-classification"},
          {"threads", 2},
          {"model", {{"name", "mlp"}, {"config", {{"hidden", {32}}, {"dropout", 0.1}}}}},
          {"data", {{"train_limit", 1024}, {"eval_limit", 256}}},
          {"optimizer", {{"type", "adamw"}, {"lr", 1e-3}}},
          {"train", {{"steps", 24}, {"batch_size", 32}, {"eval_every", 8}, {"log_every", 4}}},
          {"checkpoint", {{"every", 8}, {"keep_last", 3}}},
          {"memel", {{"at", "paper"}, {"mode", "rd"}, {"warmup", 2}, {"dump_every", 8}}}};
}

// A finished run of small_config() (trained once, copied for each test that changes it).
std::string finished_run() {
  static const std::string ref = [] {
    const std::string d = fresh_dir("reference");
    Result r = run("--config " + write_config("integrity.json", small_config()) + " --quiet --out " + d + "/run");
    REQUIRE_MESSAGE(r.code == 0, r.output);
    return d + "/run";
  }();
  return ref;
}

std::string copy_of_finished(const std::string& name) {
  const std::string d = fresh_dir(name) + "/run";
  fs::copy(finished_run(), d, fs::copy_options::recursive);
  return d;
}

const std::string kCfg = write_config("integrity.json", small_config());

}  // namespace

// --- the units on their own -----------------------------------------------------------

TEST_CASE("run directory lock: a second holder is refused naming the first; released with it") {
  const std::string d = fresh_dir("lock");
  {
    RunDirLock a(d);
    const std::string e = error_of([&] { RunDirLock b(d); });
    CHECK(e.find("run directory " + d + " is in use by memel-train pid " + std::to_string(getpid())) != std::string::npos);
  }
  CHECK(error_of([&] { RunDirLock c(d); }).empty());
}

TEST_CASE("metrics log: a torn line is reported and skipped, the lines after it kept; a resume drops only a torn tail") {
  const std::string d = fresh_dir("metrics");
  write_text(d + "/metrics.jsonl",
             "{\"step\":4,\"split\":\"train\"}\n{\"step\":8,\"spl\n{\"step\":8,\"split\":\"eval\"}\n"
             "{\"step\":12,\"split\":\"train\"}\n{\"step\":16,\"sp");
  const MetricsFile m = read_metrics(d + "/metrics.jsonl");
  REQUIRE(m.lines.size() == 5);
  CHECK(m.torn_tail);
  REQUIRE(m.warnings.size() == 2);
  CHECK(m.warnings[0].find("line 2 is not a complete JSON record (torn or edited): skipped") != std::string::npos);
  CHECK(m.warnings[1].find("line 5 is not a complete JSON record (a torn last line)") != std::string::npos);
  CHECK(m.lines[2].parsed);
  CHECK(m.lines[3].record.at("step") == 12);
  // Resumed at step 8: the torn line 2 stays (it sits before kept records), step 12 and the tail go.
  CHECK(metrics_kept_for_resume(m, 8) == "{\"step\":4,\"split\":\"train\"}\n{\"step\":8,\"spl\n{\"step\":8,\"split\":\"eval\"}\n");
  CHECK(metrics_kept_for_resume(m, 12).find("{\"step\":12,\"split\":\"train\"}\n") != std::string::npos);
  CHECK(metrics_kept_for_resume(m, 12).find("\"step\":16") == std::string::npos);
}

TEST_CASE("config record: differences by key, accepted changes in the history, the original kept") {
  const json a = {{"seed", 0}, {"threads", 1}, {"optimizer", {{"lr", 0.001}, {"type", "adamw"}}}};
  json b = a;
  b["optimizer"]["lr"] = 0.002;
  b["threads"] = 2;
  b["extra"] = true;
  CHECK(config_differences(a, b) == std::vector<std::string>{"extra", "optimizer.lr", "threads"});
  CHECK(is_harmless_config_key("threads"));
  CHECK(!is_harmless_config_key("optimizer.lr"));
  const std::string d = fresh_dir("history");
  write_text(d + "/config.resolved.json", a.dump(2));
  record_config_change(d, 16, a, b, {"optimizer.lr"});
  const json now = recorded_config(d);
  CHECK(now["optimizer"]["lr"] == 0.002);
  CHECK(now["threads"] == 1);
  CHECK(json::parse(read_file(d + "/config.resolved.json")) == a);
  const json h = json::parse(read_file(d + "/config.history.jsonl"));
  CHECK(h == json{{"step", 16}, {"changed", {{"optimizer.lr", {{"from", 0.001}, {"to", 0.002}}}}}});
}

TEST_CASE("checkpoints verify themselves: digests, ranges, finite values; the loader falls back") {
  const std::string run = fresh_dir("ckpt");
  SmallCheckpoint s;
  Checkpointer c(run, 2);
  const std::string c8 = s.save(c, 8), c16 = s.save(c, 16);
  const Checkpoint ok = load_checkpoint(c16);
  CHECK(ok.state.step == 16);
  CHECK(ok.weights.count("weight") == 1);
  const json st = json::parse(read_file(c16 + "/state.json"));
  CHECK(st.at("files").at("model.safetensors") == sha256_file_hex(c16 + "/model.safetensors"));

  SUBCASE("a flipped byte in tensor data") {
    std::string bytes = read_file(c16 + "/model.safetensors");
    bytes[bytes.size() - 3] ^= 0x10;
    write_text(c16 + "/model.safetensors", bytes);
    CHECK(error_of([&] { load_checkpoint(c16); }).find("model.safetensors: SHA-256 does not match") != std::string::npos);
  }
  SUBCASE("an edited field of state.json") {
    std::string text = read_file(c16 + "/state.json");
    text.replace(text.find("\"step\": 16"), 10, "\"step\": 15");
    write_text(c16 + "/state.json", text);
    CHECK(error_of([&] { load_checkpoint(c16); }).find("does not match its digest") != std::string::npos);
  }
  SUBCASE("a negative step, digest recomputed, is a range error (not a crash)") {
    edit_state_keeping_digest(c16, [](json& j) { j["step"] = -5; });
    CHECK(error_of([&] { load_checkpoint(c16); }).find("step is -5, expected >= 0") != std::string::npos);
  }
  SUBCASE("a schedule that does not match the step, digest recomputed") {
    edit_state_keeping_digest(c16, [](json& j) { j["schedule"]["step"] = 12; });
    CHECK(error_of([&] { load_checkpoint(c16); }).find("schedule {\"step\":12} does not match step 16") != std::string::npos);
  }
  SUBCASE("a NaN in the weights, digests recomputed") {
    StateDict w = s.model->state_dict();
    Tensor bad = Tensor::from_vector(std::vector<float>(w["weight"].numel(), std::nanf("")), w["weight"].shape());
    w["weight"] = bad;
    save_safetensors(c16 + "/model.safetensors", w);
    edit_state_keeping_digest(c16, [&](json& j) { j["files"]["model.safetensors"] = sha256_file_hex(c16 + "/model.safetensors"); });
    CHECK(error_of([&] { load_checkpoint(c16); }).find("weight holds nan at element 0 (a weight must be finite)") !=
          std::string::npos);
  }
  SUBCASE("a truncated file") {
    std::string bytes = read_file(c16 + "/optimizer.safetensors");
    write_text(c16 + "/optimizer.safetensors", bytes.substr(0, bytes.size() / 2));
    CHECK(error_of([&] { load_checkpoint(c16); }).find("optimizer.safetensors: SHA-256 does not match") != std::string::npos);
  }
  // Whatever was damaged, the newest checkpoint that verifies is step 8, with a warning naming step 16.
  std::vector<std::string> warnings;
  const Checkpoint back = c.load_latest([&](const std::string& w) { warnings.push_back(w); }, false);
  CHECK(back.state.step == 8);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("checkpoint " + c16 + " is damaged") != std::string::npos);
  CHECK(warnings[0].find("falling back to " + c8) != std::string::npos);
  // None left: the loader stops.
  fs::remove(c8 + "/state.json");
  CHECK(error_of([&] { c.load_latest([](const std::string&) {}, false); }).find("no complete checkpoint") !=
        std::string::npos);
}

TEST_CASE("checkpoints: keep_last prunes only older ones, never a newer one a resume fell back from") {
  const std::string run = fresh_dir("prune");
  SmallCheckpoint s;
  Checkpointer c(run, 2);
  for (int64_t st : {8, 16, 24, 32}) s.save(c, st);
  CHECK(c.candidates() == std::vector<std::string>{run + "/checkpoints/step-00000032", run + "/checkpoints/step-00000024"});
  s.save(c, 16);  // a run that fell back to step 8 writes step 16 again: 24 and 32 stay
  CHECK(c.candidates().size() == 3);
  CHECK(fs::exists(run + "/checkpoints/step-00000032"));
}

TEST_CASE("train_step: a NaN loss stops before the update; accumulation averages the micro-batch losses") {
  auto model = std::make_shared<Linear>(2, 1);
  SGDOptions o;
  o.lr = 0.5;
  SGD opt(model->parameters(), o);
  const std::vector<double> before = model->parameters()[0].to_vector();
  StepOptions so;
  CHECK_THROWS_AS(train_step(model->parameters(), opt, so,
                             [&](int64_t) { return mul(sum(model->forward(Tensor::ones({1, 2}))), std::nan("")); }),
                  NonFiniteLoss);
  CHECK(model->parameters()[0].to_vector() == before);
  so.accum = 2;
  const StepResult r = train_step(model->parameters(), opt, so,
                                  [&](int64_t i) { return add(mul(sum(model->forward(Tensor::ones({1, 2}))), 0.0), double(i + 1)); });
  CHECK(r.loss == doctest::Approx(1.5));
}

namespace {

// A task over 10 rows of 2 features, scored by how many rows the model sees in eval mode
// without gradients.
struct CountingTask : Task {
  std::shared_ptr<Linear> net = std::make_shared<Linear>(2, 1);
  std::shared_ptr<TensorDataset> data =
      std::make_shared<TensorDataset>(std::map<std::string, Tensor>{{"x", Tensor::ones({10, 2})}});
  int64_t rows = 0, rows_in_train_mode = 0, rows_with_grad = 0;
  std::shared_ptr<Module> model() override { return net; }
  std::vector<std::string> paper_targets() const override { return {}; }
  std::shared_ptr<const Dataset> train_set() override { return data; }
  std::shared_ptr<const Dataset> eval_set() override { return data; }
  Tensor loss(const Example& b) override { return sum(net->forward(b.at("x"))); }
  void eval_reset() override { rows = rows_in_train_mode = rows_with_grad = 0; }
  void eval_batch(const Example& b) override {
    const Tensor y = net->forward(b.at("x"));
    rows += y.shape()[0];
    if (net->is_training()) rows_in_train_mode += y.shape()[0];
    if (y.requires_grad()) rows_with_grad += y.shape()[0];
  }
  json eval_metrics() override { return {{"rows", rows}, {"train_mode", rows_in_train_mode}, {"grad", rows_with_grad}}; }
  std::string primary_metric() const override { return "rows"; }
};

}  // namespace

TEST_CASE("evaluator: every eval row once, in eval mode without gradients, progress per batch, train mode after") {
  CountingTask t;
  std::vector<std::pair<int64_t, int64_t>> seen;
  const json m = evaluate(t, 4, 0, [&](int64_t done, int64_t total) { seen.emplace_back(done, total); });
  CHECK(m == json{{"rows", 10}, {"train_mode", 0}, {"grad", 0}});
  CHECK(seen == std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {2, 3}, {3, 3}});
  CHECK(t.net->is_training());
}

// --- end to end: one test per finding ----------------------------------------------------

TEST_CASE("resume: a changed config is refused before any file is touched, unless its keys are named") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string run = copy_of_finished("changed_config");
  const std::string summary = read_file(run + "/summary.json"), config = read_file(run + "/config.resolved.json"),
                    metrics = read_file(run + "/metrics.jsonl");
  Result r = train_test::run("--config " + kCfg + " --set model.config.hidden=[48] --quiet --out " + run + " --resume " + run);
  CHECK(r.code == 1);
  CHECK(r.output.find("the config differs from the run's in 1 key(s):\n  model.config.hidden: [32] -> [48]") !=
        std::string::npos);
  r = train_test::run("--config " + kCfg + " --set optimizer.lr=0.002 --set seed=3 --set threads=1 --quiet --out " + run +
                      " --resume " + run);
  CHECK(r.code == 1);
  CHECK(r.output.find("optimizer.lr: 0.001 -> 0.002") != std::string::npos);
  CHECK(r.output.find("seed: 0 -> 3") != std::string::npos);
  CHECK(r.output.find("threads") == std::string::npos);  // cannot change results: not listed
  CHECK(r.output.find("--allow-change optimizer.lr,seed") != std::string::npos);
  // Nothing of the run was touched.
  CHECK(read_file(run + "/summary.json") == summary);
  CHECK(read_file(run + "/config.resolved.json") == config);
  CHECK(read_file(run + "/metrics.jsonl") == metrics);
  // Named, the change is accepted and recorded; the original record stays.
  r = train_test::run("--config " + kCfg + " --set train.steps=32 --quiet --out " + run + " --resume " + run +
                      " --allow-change train.steps");
  REQUIRE_MESSAGE(r.code == 0, r.output);
  CHECK(read_file(run + "/config.resolved.json") == config);
  const json h = json::parse(read_file(run + "/config.history.jsonl"));
  CHECK(h["step"] == 24);
  CHECK(h["changed"]["train.steps"] == json{{"from", 24}, {"to", 32}});
  CHECK(json::parse(read_file(run + "/summary.json"))["steps"] == 32);
  // The next resume compares against the changed config, not the original.
  r = train_test::run("--config " + kCfg + " --set train.steps=32 --quiet --out " + run + " --resume " + run);
  CHECK_MESSAGE(r.code == 0, r.output);
}

TEST_CASE("resume: a damaged newest checkpoint falls back to the previous one with a warning; the result is unchanged") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string ref = finished_run(), run = copy_of_finished("damaged");
  const std::string last = run + "/checkpoints/step-00000024";
  std::string bytes = read_file(last + "/memel.safetensors");
  bytes[bytes.size() / 2 + 9] ^= 0x01;
  write_text(last + "/memel.safetensors", bytes);
  Result r = train_test::run("--config " + kCfg + " --out " + run + " --resume " + run);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  CHECK(r.output.find("warning: checkpoint " + last + " is damaged: [memel-train] " + last +
                      "/memel.safetensors: SHA-256 does not match") != std::string::npos);
  CHECK(r.output.find("resumed from " + run + "/checkpoints/step-00000016 at step 16") != std::string::npos);
  for (const char* f : {"model.safetensors", "memel.safetensors", "optimizer.safetensors"})
    CHECK(read_file(ref + "/checkpoints/step-00000024/" + f) == read_file(last + "/" + f));
  CHECK(lines_without_perf(ref + "/metrics.jsonl") == lines_without_perf(run + "/metrics.jsonl"));
}

TEST_CASE("resume: a negative step in state.json is a clear error; fault hooks are not in memel-train") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string run = copy_of_finished("negative_step");
  const std::string ck = run + "/checkpoints/step-00000024";
  // Explicitly named, so no fallback: the error is the answer.
  edit_state_keeping_digest(ck, [](json& j) { j["step"] = -1; });
  Result r = train_test::run("--config " + kCfg + " --quiet --resume " + ck);
  CHECK(r.code == 1);
  CHECK(r.output.find(ck + "/state.json: step is -1, expected >= 0") != std::string::npos);
  // The fault hooks live in the test build only: the same environment kills it at step 3
  // and does nothing to memel-train itself.
  const std::string fresh = fresh_dir("no_hooks");
  r = train_test::run("--config " + kCfg + " --quiet --out " + fresh + "/faults", "MEMEL_FAULT_KILL_STEP=3");
  CHECK(r.code == 128 + 9);
  const int rc = std::system(("MEMEL_FAULT_KILL_STEP=3 MEMEL_FAULT_KILL_CHECKPOINT=8:model " + kBin + " --config " + kCfg +
                              " --quiet --out " + fresh + "/plain > /dev/null 2>&1").c_str());
  CHECK(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 0);
  CHECK(fs::exists(fresh + "/plain/summary.json"));
}

TEST_CASE("one writer per run directory: a second process is refused naming the holder") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string run = copy_of_finished("locked");
  RunDirLock held(run);  // this test process plays the first writer
  Result r = train_test::run("--config " + kCfg + " --quiet --out " + run + " --resume " + run);
  CHECK(r.code == 1);
  CHECK(r.output.find("run directory " + run + " is in use by memel-train pid " + std::to_string(getpid())) !=
        std::string::npos);
}

TEST_CASE("metrics: a torn line in the middle is reported and skipped on resume; nothing after it is lost") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string run = copy_of_finished("torn");
  std::string text = read_file(run + "/metrics.jsonl");
  const size_t second = text.find('\n') + 1;
  text.insert(second, "{\"step\": 4, \"spl\n");
  write_text(run + "/metrics.jsonl", text);
  Result r = train_test::run("--config " + kCfg + " --quiet --out " + run + " --resume " + run);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  CHECK(r.output.find("metrics.jsonl line 2 is not a complete JSON record (torn or edited): skipped") != std::string::npos);
  CHECK(read_file(run + "/metrics.jsonl") == text);  // resumed at its last step: every line kept
}

TEST_CASE("summaries across segments: memel MS and wall time kept; a lowered train.steps still has a final") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string ref = finished_run(), run = copy_of_finished("segments");
  const json s0 = json::parse(read_file(ref + "/summary.json"));
  REQUIRE(!s0["memel_mean_ms"].empty());
  Result r = train_test::run("--config " + kCfg + " --quiet --out " + run + " --resume " + run);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  const json s1 = json::parse(read_file(run + "/summary.json"));
  CHECK(s1["memel_mean_ms"] == s0["memel_mean_ms"]);
  CHECK(s1["final"] == s0["final"]);
  CHECK(s1["wall_s"].get<double>() >= s0["wall_s"].get<double>());
  r = train_test::run("--config " + kCfg + " --set train.steps=12 --quiet --out " + run + " --resume " + run +
                      " --allow-change train.steps");
  REQUIRE_MESSAGE(r.code == 0, r.output);
  const json s2 = json::parse(read_file(run + "/summary.json"));
  CHECK(s2["final"].is_object());
  CHECK(s2["final"].contains("accuracy"));
}

TEST_CASE("--compare: a variant killed part-way resumes from its checkpoint on the next run") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string out = fresh_dir("compare");
  Result a = train_test::run("--config " + kCfg + " --quiet --compare rd --seeds 1 --out " + out, "MEMEL_FAULT_KILL_STEP=20");
  CHECK(a.code == 128 + 9);
  Result b = train_test::run("--config " + kCfg + " --compare rd --seeds 1 --out " + out);
  REQUIRE_MESSAGE(b.code == 0, b.output);
  CHECK(b.output.find("rd-seed0 (stopped part-way: resumed)") != std::string::npos);
  CHECK(b.output.find("resumed from " + out + "/rd-seed0/checkpoints/step-00000016 at step 16") != std::string::npos);
  CHECK(fs::exists(out + "/rd-seed0/checkpoints/step-00000024"));
}

TEST_CASE("--sweep values are checked before the first variant trains") {
  const std::string out = fresh_dir("sweep");
  Result r = train_test::run("--config " + kCfg + " --quiet --compare baseline,rd --sweep k=1,[ --out " + out);
  CHECK(r.code == 1);
  CHECK(r.output.find("--sweep k=1,[: ") != std::string::npos);
  CHECK(r.output.find("'[' is not valid JSON") != std::string::npos);
  r = train_test::run("--config " + kCfg + " --quiet --compare baseline,rd --sweep k=1,-3 --out " + out);
  CHECK(r.code == 1);
  CHECK(r.output.find("--compare variant rd(k=-3)") != std::string::npos);
  CHECK(!fs::exists(out + "/baseline-seed0"));
}
