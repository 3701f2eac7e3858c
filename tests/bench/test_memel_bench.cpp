// The memel-bench program (run as a subprocess): workload list, argument errors, and one
// W3 (swin-mini) training step with and without memel at the paper placement. Timings
// are printed by the program but never checked here.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support.h"

namespace fs = std::filesystem;

namespace {

const std::string kBin = std::string(MEMEL_BINARY_DIR) + "/tools/memel-bench";

using Result = memel::ProgramResult;

Result run(const std::string& args) { return memel::run_program(kBin, args, "memel_bench_test"); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("memel-bench lists the workloads and explains its options") {
  Result r = run("--list");
  CHECK(r.code == 0);
  CHECK(r.out == "gemm\nbert-mini\nswin-t\nswin-mini\nconvgru\n");
  Result h = run("--help");
  CHECK(h.code == 0);
  for (const char* s : {"bert-mini", "swin-t", "swin-mini", "convgru", "--memel", "--device", "--steps", "--warmup"})
    CHECK_MESSAGE(contains(h.out, s), "help lacks ", s);
}

TEST_CASE("memel-bench rejects bad arguments with a message") {
  struct Case {
    const char* args;
    int code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"", 2, "--workload is required"},
      {"--workload resnet", 2, "unknown workload 'resnet'"},
      {"--workload swin-mini --size 64", 2, "has no option --size"},
      {"--workload swin-mini --threads", 2, "--threads needs a value"},
      {"--workload swin-mini --device cuda:99", 1, "[memel-bench] --device cuda:99: [device] "},
      {"--workload convgru --device tpu", 1, "[memel-bench] --device tpu: [device] unknown device 'tpu'"},
      {"--workload bert-mini --memel half", 1, "--memel must be none, paper or paired, got 'half'"},
      {"--workload swin-t --threads 0", 1, "--threads must be >= 1, got 0"},
      {"--workload swin-mini --steps many", 1, "--steps expects an integer, got 'many'"},
      {"--workload swin-mini --steps 0", 1, "--steps must be >= 1, got 0"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.args);
    Result r = run(c.args);
    CHECK(r.code == c.code);
    CHECK_MESSAGE(contains(r.err, c.message), "stderr: ", r.err);
    CHECK(r.out.empty());
  }
}

TEST_CASE("memel-bench runs one W3 (swin-mini) training step, with and without memel") {
  for (const char* memel : {"none", "paper"}) {
    CAPTURE(memel);
    Result r = run(std::string("--workload swin-mini --threads 2 --steps 1 --warmup 0 --memel ") + memel);
    REQUIRE_MESSAGE(r.code == 0, "stderr: ", r.err);
    // One JSON line, its first keys in the documented order.
    REQUIRE(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(r.out);
    const std::vector<std::string> keys = {"workload", "device",      "threads", "memel",
                                           "step_ms",  "items_per_s", "gflops",  "peak_mem_mb"};
    std::vector<std::string> got;
    for (auto it = j.begin(); it != j.end() && got.size() < keys.size(); ++it) got.push_back(it.key());
    CHECK(got == keys);
    CHECK(j["workload"] == "swin-mini");
    CHECK(j["device"] == "cpu");
    CHECK(j["threads"] == 2);
    CHECK(j["memel"] == memel);
    CHECK(j["step_ms"].get<double>() > 0);
    CHECK(j["peak_mem_mb"].get<double>() > 0);
    CHECK(std::isfinite(j["loss"].get<double>()));
    // 64 images; the analytic count is 3x the forward FLOPs of the products (the same
    // formula gives Swin-T's 4.49 GMAC per 224 px image, as a per-layer count does).
    CHECK(j["items_per_s"].get<double>() == doctest::Approx(64.0 / (j["step_ms"].get<double>() / 1e3)));
    CHECK(j["gflop_per_step"].get<double>() == doctest::Approx(34.720874496).epsilon(1e-9));
    CHECK(j["params"] == 6898276);
    CHECK(j.contains("memel_overhead") == false);
  }
}

TEST_CASE("memel-bench --memel paired times a plain and a memel model interleaved") {
  Result r = run("--workload swin-mini --threads 2 --steps 2 --warmup 0 --memel paired");
  REQUIRE_MESSAGE(r.code == 0, "stderr: ", r.err);
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(r.out);
  CHECK(j["memel"] == "paired");
  CHECK(j["step_ms"].get<double>() > 0);
  CHECK(j["memel_step_ms"].get<double>() > 0);
  // The median of two pair ratios lies between them, so within a factor of the two medians.
  const double overhead = j["memel_overhead"].get<double>();
  CHECK(std::isfinite(overhead));
  // A memel model does strictly more work than the plain one: it is never twice as fast,
  // and the layer costs far less than the model around it (docs/results.md: within the noise).
  CHECK(overhead > -0.5);
  CHECK(overhead < 4.0);
  CHECK(j["params"] == 6898276);  // the plain model's: memel layers have no parameters
}
