// End-to-end tests of the memel-train program (run as a subprocess).
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "memel/dump.h"
#include "train/tensorboard.h"
#include "train/train_support.h"

namespace fs = std::filesystem;
using namespace memel::train_test;

namespace {

const bool kHaveData = fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");

nlohmann::json small_config() {
  return {{"task", "image-classification"},
          {"threads", 2},
          {"model", {{"name", "mlp"}, {"config", {{"hidden", {64, 64}}, {"dropout", 0.1}}}}},
          {"data", {{"train_limit", 2048}, {"eval_limit", 512}}},
          {"optimizer", {{"type", "adamw"}, {"lr", 1e-3}}},
          {"schedule", {{"kind", "cosine"}, {"warmup_steps", 4}}},
          {"train", {{"steps", 48}, {"batch_size", 32}, {"eval_every", 16}, {"log_every", 4}}},
          {"checkpoint", {{"every", 16}, {"keep_last", 3}}},
          {"memel", {{"at", "paper"}, {"mode", "rd"}, {"warmup", 2}, {"dump_every", 16}}}};
}

}  // namespace

TEST_CASE("memel-train: config errors name the key and the expected type") {
  auto cfg = small_config();
  cfg["train"]["batch_sise"] = 3;
  Result r = run("--config " + write_config("bad1.json", cfg) + " --print-config");
  CHECK(r.code == 1);
  CHECK(r.output.find("unknown key 'train.batch_sise'") != std::string::npos);
  r = run("--config " + write_config("bad2.json", small_config()) + " --set train.steps=\"many\" --print-config");
  CHECK(r.code == 1);
  CHECK(r.output.find("train.steps: expected an integer, got string") != std::string::npos);
  r = run("--config " + write_config("bad2.json", small_config()) + " --set memel=null --set memel.warmup=3 --print-config");
  CHECK(r.code == 1);
  CHECK(r.output.find("--set memel.warmup: 'memel' is null (off) at this point") != std::string::npos);
  r = run("--config /nonexistent/config.json");
  CHECK(r.code == 1);
  CHECK(r.output.find("cannot open config file /nonexistent/config.json") != std::string::npos);
  auto bad_memel = small_config();
  bad_memel["memel"]["mode"] = "banana";
  r = run("--config " + write_config("bad3.json", bad_memel) + " --dry-run");
  CHECK(r.code == 1);
  CHECK(r.output.find("unknown value 'banana'") != std::string::npos);
  auto bad_data = small_config();
  bad_data["data"]["dir"] = "/nonexistent/fmnist";
  r = run("--config " + write_config("bad4.json", bad_data) + " --dry-run");
  CHECK(r.code == 1);
  CHECK(r.output.find("/nonexistent/fmnist") != std::string::npos);
}

TEST_CASE("memel-train: killed and resumed gives the unbroken run's metrics and weights bit for bit") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string base = std::string(MEMEL_BINARY_DIR) + "/train_test_runs";
  fs::remove_all(base);
  const std::string cfg = write_config("resume.json", small_config());
  Result a = run("--config " + cfg + " --quiet --out " + base + "/unbroken");
  REQUIRE_MESSAGE(a.code == 0, a.output);
  Result b = run("--config " + cfg + " --quiet --out " + base + "/killed", "MEMEL_FAULT_KILL_STEP=40");
  CHECK(b.code == 128 + 9);
  // A torn checkpoint left behind by a crash must be ignored: fake one for step 40.
  fs::create_directories(base + "/killed/checkpoints/step-00000040");
  std::ofstream(base + "/killed/checkpoints/step-00000040/model.safetensors") << "truncated";
  std::ofstream(base + "/killed/checkpoints/step-00000040/optimizer.safetensors") << "x";
  std::ofstream(base + "/killed/checkpoints/step-00000040/state.json") << "{\"step\": 40}";
  Result c = run("--config " + cfg + " --out " + base + "/killed --resume " + base + "/killed");
  REQUIRE_MESSAGE(c.code == 0, c.output);
  CHECK(c.output.find("checkpoint " + base + "/killed/checkpoints/step-00000040 is damaged") != std::string::npos);
  CHECK(c.output.find("falling back to " + base + "/killed/checkpoints/step-00000032") != std::string::npos);
  CHECK(c.output.find("resumed from " + base + "/killed/checkpoints/step-00000032") != std::string::npos);
  auto la = lines_without_perf(base + "/unbroken/metrics.jsonl"), lc = lines_without_perf(base + "/killed/metrics.jsonl");
  CHECK(la.size() == 12 + 3);
  CHECK(la == lc);
  CHECK(read_file(base + "/unbroken/checkpoints/step-00000048/model.safetensors") ==
        read_file(base + "/killed/checkpoints/step-00000048/model.safetensors"));
  CHECK(read_file(base + "/unbroken/checkpoints/step-00000048/memel.safetensors") ==
        read_file(base + "/killed/checkpoints/step-00000048/memel.safetensors"));
  CHECK(read_file(base + "/unbroken/stats/step-00000048.safetensors") ==
        read_file(base + "/killed/stats/step-00000048.safetensors"));

  // config.resolved.json records the memel section as the layers got it: the preset
  // expanded to every option (the config only says at, mode, warmup and dump_every).
  std::ifstream rf(base + "/unbroken/config.resolved.json");
  const nlohmann::json resolved = nlohmann::json::parse(rf);
  CHECK(resolved["memel"]["preset"] == "paper");
  CHECK(resolved["memel"]["forget_batches"] == 10);
  CHECK(resolved["memel"]["eps"] == 0.01);
  CHECK(resolved["memel"]["warmup"] == 2);
  CHECK(resolved["memel"]["dump_every"] == 16);

  // TensorBoard events beside metrics.jsonl: the scalars, and at every dump the layer's mean
  // MS and MS histogram, equal to the dump written at the same step.
  std::vector<std::string> events;
  for (auto& e : fs::directory_iterator(base + "/unbroken"))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) events.push_back(e.path().string());
  REQUIRE(events.size() == 1);
  std::map<std::string, std::vector<int64_t>> steps_of;
  std::map<int64_t, memel::train::TBHistogram> hist;
  for (const memel::train::TBEvent& e : memel::train::read_tensorboard_events(events[0]))
    for (const memel::train::TBValue& v : e.values) {
      steps_of[v.tag].push_back(e.step);
      if (v.has_histo) hist[e.step] = v.histo;
    }
  CHECK(steps_of["train/loss"].size() == 12);
  CHECK(steps_of["eval/accuracy"] == std::vector<int64_t>{16, 32, 48});
  CHECK(steps_of["memel/act2.memel/ms_mean"] == std::vector<int64_t>{16, 32, 48});
  REQUIRE(steps_of["memel/act2.memel/ms"] == std::vector<int64_t>{16, 32, 48});
  const memel::MemelDump d = memel::read_memel_dump(base + "/unbroken/stats/step-00000048");
  const memel::LayerDump* l = d.find("act2.memel");
  REQUIRE(l != nullptr);
  const memel::train::TBHistogram& h = hist[48];
  CHECK(h.bucket == l->ms_hist.to_vector());
  REQUIRE(h.bucket_limit.size() == l->hist_edges.size() + 1);
  for (size_t i = 0; i < l->hist_edges.size(); ++i) CHECK(h.bucket_limit[i] == l->hist_edges[i]);
  CHECK(h.min == 0.0);
  CHECK(h.num > 0);
}

TEST_CASE("memel-train: a NaN loss stops the run naming the step and the last checkpoint") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  auto cfg = small_config();
  cfg["optimizer"]["lr"] = 1e30;  // diverges at once
  cfg["optimizer"]["type"] = "sgd";
  cfg["optimizer"]["momentum"] = 0.0;
  cfg["memel"] = nullptr;
  const std::string out = std::string(MEMEL_BINARY_DIR) + "/train_test_runs/nan";
  fs::remove_all(out);
  Result r = run("--config " + write_config("nan.json", cfg) + " --quiet --out " + out);
  CHECK(r.code == 3);
  CHECK(r.output.find("loss is") != std::string::npos);
  CHECK(r.output.find("last good checkpoint") != std::string::npos);
}

TEST_CASE("memel-train --compare: one table of mean ± std per variant; finished runs are reused") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const std::string out = std::string(MEMEL_BINARY_DIR) + "/train_test_compare";
  fs::remove_all(out);
  auto c = small_config();
  c["train"]["steps"] = 16;
  c["checkpoint"]["every"] = 0;
  const std::string cfg = write_config("compare.json", c);
  // Two processes could share the directory: here the rd runs come first, alone.
  Result a = run("--config " + cfg + " --quiet --compare rd --seeds 2 --out " + out);
  REQUIRE_MESSAGE(a.code == 0, a.output);
  Result b = run("--config " + cfg + " --compare baseline,rd --seeds 2 --out " + out);
  REQUIRE_MESSAGE(b.code == 0, b.output);
  CHECK(b.output.find("rd seed 0 -> " + out + "/rd-seed0 (finished with this config: reused)") != std::string::npos);
  CHECK(b.output.find("baseline seed 1 -> " + out + "/baseline-seed1\n") != std::string::npos);
  std::ifstream f(out + "/compare.json");
  const nlohmann::json j = nlohmann::json::parse(f);
  CHECK(j.at("variants") == nlohmann::json({"baseline", "rd"}));
  REQUIRE(j.at("runs").size() == 4);
  for (const char* v : {"baseline", "rd"}) {
    const nlohmann::json& acc = j.at("summary").at(v).at("accuracy");
    CHECK(acc.at("n") == 2);
    const double x0 = acc.at("values")[0], x1 = acc.at("values")[1];
    CHECK(acc.at("mean").get<double>() == doctest::Approx((x0 + x1) / 2));
  }
  // The rd rows carry the mean MS of their memel layers, the baseline rows none.
  auto has_ms = [&](const char* v) {
    for (auto& kv : j.at("summary").at(v).items())
      if (kv.key().rfind("MS ", 0) == 0) return true;
    return false;
  };
  CHECK(has_ms("rd"));
  CHECK(!has_ms("baseline"));
  CHECK(read_file(out + "/compare.md").find("| rd |") != std::string::npos);
  // A changed config is not reused.
  Result d = run("--config " + cfg + " --set train.steps=8 --compare rd --seeds 1 --out " + out);
  REQUIRE_MESSAGE(d.code == 0, d.output);
  CHECK(d.output.find("reused") == std::string::npos);
  CHECK(d.output.find("rd-seed0 (held a run of another config: started afresh)") != std::string::npos);
}
