// memel-train on the simulated accelerator (`"device": "sim"`): the run matches the CPU's,
// and checkpoints move between devices.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "train/train_support.h"
#ifdef MEMEL_WITH_CUDA
#include "tensor/cuda/cuda_backend.h"
#endif

namespace fs = std::filesystem;
using namespace memel::train_test;
using nlohmann::json;

namespace {

const bool kHaveData = fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");

// A small version of configs/fmnist-mlp-memel.json: the paper preset, memel at the paper
// placement plus two monitors.
json device_config() {
  return {{"task", "image-classification"},
          {"threads", 2},
          {"model", {{"name", "mlp"}, {"config", {{"hidden", {64, 64, 64}}, {"dropout", 0.1}}}}},
          {"data", {{"train_limit", 1024}, {"eval_limit", 256}}},
          {"optimizer", {{"type", "adamw"}, {"lr", 1e-3}, {"weight_decay", 0.01}}},
          {"schedule", {{"kind", "cosine"}, {"warmup_steps", 2}}},
          {"train", {{"steps", 24}, {"batch_size", 32}, {"eval_every", 24}, {"log_every", 4}}},
          {"checkpoint", {{"every", 8}, {"keep_last", 0}}},
          {"memel", {{"preset", "paper"}, {"at", "paper"}, {"dump_every", 0}, {"monitor_at", {"act1", "act3"}}}}};
}

json read_json(const std::string& p) {
  std::ifstream f(p);
  return json::parse(f);
}

bool close(double a, double b, double rel) { return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)) + 1e-12; }

// Every train loss and eval line of two runs within `rel`, and the summary's memel MS.
void check_runs_close(const std::string& a, const std::string& b, double rel) {
  auto ta = metric_lines(a + "/metrics.jsonl", "train"), tb = metric_lines(b + "/metrics.jsonl", "train");
  REQUIRE(ta.size() == tb.size());
  REQUIRE(!ta.empty());
  for (size_t i = 0; i < ta.size(); ++i) {
    CHECK(ta[i]["step"] == tb[i]["step"]);
    CHECK_MESSAGE(close(ta[i]["loss"].get<double>(), tb[i]["loss"].get<double>(), rel), "step ", ta[i]["step"].dump(),
                  ": ", ta[i]["loss"].get<double>(), " vs ", tb[i]["loss"].get<double>());
  }
  json sa = read_json(a + "/summary.json"), sb = read_json(b + "/summary.json");
  CHECK(close(sa["final"]["loss"].get<double>(), sb["final"]["loss"].get<double>(), rel));
  REQUIRE(sa["memel_mean_ms"].size() == 3);  // the paper placement and two monitors
  REQUIRE(sa["memel_mean_ms"].size() == sb["memel_mean_ms"].size());
  for (auto& kv : sa["memel_mean_ms"].items()) {
    REQUIRE(sb["memel_mean_ms"].contains(kv.key()));
    const double x = kv.value().get<double>(), y = sb["memel_mean_ms"][kv.key()].get<double>();
    CHECK(std::isfinite(x));
    CHECK(x > 0);
    CHECK_MESSAGE(close(x, y, rel), kv.key(), ": mean MS ", x, " vs ", y);
  }
}

}  // namespace

TEST_CASE("memel-train --set device=sim: final loss and every memel layer's mean MS within 1e-3 of the CPU run") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string base = std::string(MEMEL_BINARY_DIR) + "/device_test_runs";
  fs::remove_all(base);
  const std::string cfg = write_config("device.json", device_config());
  Result c = run("--config " + cfg + " --quiet --out " + base + "/cpu");
  REQUIRE_MESSAGE(c.code == 0, c.output);
  Result s = run("--config " + cfg + " --set device=sim --quiet --out " + base + "/sim");
  REQUIRE_MESSAGE(s.code == 0, s.output);
  check_runs_close(base + "/cpu", base + "/sim", 1e-3);
  // An unknown device is a config error naming the key.
  Result bad = run("--config " + cfg + " --set device=tpu --dry-run");
  CHECK(bad.code != 0);
  CHECK(bad.output.find("[config] device: 'tpu'") != std::string::npos);
}

TEST_CASE("memel-train: a checkpoint written on sim resumes on cpu and the other way; equal to the unbroken run") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string base = std::string(MEMEL_BINARY_DIR) + "/device_test_resume";
  fs::remove_all(base);
  const std::string cfg = write_config("device_resume.json", device_config());
  for (const std::string from : {"sim", "cpu"}) {
    const std::string to = from == "sim" ? "cpu" : "sim";
    // The reference is the unbroken run on `from`. The moved run does steps 1-16 there
    // (identical lines, bit for bit), is killed, and resumes from the step-16 checkpoint on
    // `to`: its remaining steps match the unbroken run as closely as the devices match
    // each other (sim's composed kernels round differently in the last bits).
    Result u = run("--config " + cfg + " --set device=" + from + " --quiet --out " + base + "/unbroken-" + from);
    REQUIRE_MESSAGE(u.code == 0, u.output);
    const std::string moved = base + "/" + from + "-to-" + to;
    Result k = run("--config " + cfg + " --set device=" + from + " --quiet --out " + moved, "MEMEL_FAULT_KILL_STEP=20");
    CHECK(k.code == 128 + 9);
    Result r = run("--config " + cfg + " --set device=" + to + " --out " + moved + " --resume " + moved);
    REQUIRE_MESSAGE(r.code == 0, r.output);
    CHECK(r.output.find("resumed from " + moved + "/checkpoints/step-00000016") != std::string::npos);
    // Steps before the checkpoint: the same lines bit for bit.
    auto lu = metric_lines(base + "/unbroken-" + from + "/metrics.jsonl", "train"),
         lm = metric_lines(moved + "/metrics.jsonl", "train");
    REQUIRE(lu.size() == lm.size());
    for (size_t i = 0; i < lu.size(); ++i)
      if (lu[i]["step"].get<int>() <= 16) CHECK(lu[i] == lm[i]);
    check_runs_close(base + "/unbroken-" + from, moved, 1e-4);
  }
}

TEST_CASE("memel-train --set device=cuda where there is no GPU: fails at once, saying why") {
#ifdef MEMEL_WITH_CUDA
  if (memel::cuda_device_count() > 0) {
    MESSAGE("skipped: this machine has a GPU");
    return;
  }
  const std::string why = "no CUDA device found";
#else
  const std::string why = "this build of memel has no CUDA part";
#endif
  const std::string cfg = write_config("device_cuda.json", device_config());
  for (const char* dev : {"cuda", "cuda:1"}) {
    CAPTURE(dev);
    const auto t0 = std::chrono::steady_clock::now();
    Result r = run("--config " + cfg + " --set device=" + dev + " --dry-run");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(r.code != 0);
    CHECK_MESSAGE(r.output.find("[config] device: '" + std::string(dev) + "' is not available (this machine has: cpu, sim)") !=
                      std::string::npos,
                  r.output);
    CHECK_MESSAGE(r.output.find(why) != std::string::npos, r.output);
    CHECK_MESSAGE(s < 10.0, "took ", s, " s");  // before any data or model is built
  }
}
