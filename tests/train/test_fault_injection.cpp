// Fault injection in memel-train (docs/hardening.md): SIGKILL inside checkpoint writing,
// a full disk during a checkpoint, a NaN batch, a data file removed mid-run. The
// 50-kill campaign is scripts/fault_campaign.py; these are the few kills CTest affords.
//
// Data: a small Fashion-MNIST copy (2048 training, 512 test images) written by the test
// as IDX files, so it can be altered (a NaN image, a removed file).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "tensor/tensor_io.h"
#include "train/train_support.h"

using namespace memel;
using namespace memel::train_test;
namespace fs = std::filesystem;

namespace {

const std::string kFmnist = "/usr/share/datasets/fashion-mnist";
const bool kHaveData = fs::exists(kFmnist + "/train-images-idx3-ubyte.gz");
const std::string kBase = std::string(MEMEL_BINARY_DIR) + "/fault_test_runs";

int exit_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : (WIFSIGNALED(status) ? 128 + WTERMSIG(status) : status);
}

// Runs a shell command line; output captured.
Result sh(const std::string& cmd) {
  static int n = 0;
  const std::string log = kBase + "/cmd" + std::to_string(n++) + ".log";
  const int rc = std::system(("( " + cmd + " ) > " + log + " 2>&1").c_str());
  return {exit_code(rc), read_file(log)};
}

Result train(const std::string& args, const std::string& env = "") {
  return sh(env + " " + bin_for(env) + " " + args);
}

// Small copy of Fashion-MNIST; `nan_example` >= 0 puts NaN into that training image.
std::string make_data(const std::string& name, int64_t nan_example = -1) {
  const std::string dir = kBase + "/" + name;
  fs::create_directories(dir);
  static Tensor train_x, train_y, test_x, test_y;
  if (!train_x.defined()) {
    train_x = slice(read_idx(kFmnist + "/train-images-idx3-ubyte.gz"), 0, 0, 2048).contiguous_copy();
    train_y = slice(read_idx(kFmnist + "/train-labels-idx1-ubyte.gz"), 0, 0, 2048).contiguous_copy();
    test_x = slice(read_idx(kFmnist + "/t10k-images-idx3-ubyte.gz"), 0, 0, 512).contiguous_copy();
    test_y = slice(read_idx(kFmnist + "/t10k-labels-idx1-ubyte.gz"), 0, 0, 512).contiguous_copy();
  }
  Tensor x = train_x.contiguous_copy();
  if (nan_example >= 0) x.data<float>()[nan_example * 28 * 28 + 400] = std::nanf("");
  write_idx(dir + "/train-images-idx3-ubyte", x, IdxType::F32);
  write_idx(dir + "/train-labels-idx1-ubyte", train_y, IdxType::U8);
  write_idx(dir + "/t10k-images-idx3-ubyte", test_x, IdxType::U8);
  write_idx(dir + "/t10k-labels-idx1-ubyte", test_y, IdxType::U8);
  return dir;
}

std::string fault_config(const std::string& name, const std::string& data_dir) {
  nlohmann::json j = {{"task", "image-classification"},
                      {"threads", 2},
                      {"model", {{"name", "mlp"}, {"config", {{"hidden", {64, 64}}, {"dropout", 0.1}}}}},
                      {"data", {{"dir", data_dir}}},
                      {"optimizer", {{"type", "adamw"}, {"lr", 1e-3}}},
                      {"schedule", {{"kind", "cosine"}, {"warmup_steps", 4}}},
                      {"train", {{"steps", 48}, {"batch_size", 32}, {"eval_every", 16}, {"log_every", 4}}},
                      {"checkpoint", {{"every", 16}, {"keep_last", 2}}},
                      {"memel", {{"at", "paper"}, {"mode", "rd"}, {"warmup", 2}, {"dump_every", 16}}}};
  const std::string p = kBase + "/" + name + ".json";
  std::ofstream(p) << j.dump(2);
  return p;
}

// Every entry of run/checkpoints: a complete checkpoint "step-N" (all files present and
// readable, state.json naming step N) or nothing. Returns the problems found.
std::vector<std::string> checkpoint_problems(const std::string& run) {
  std::vector<std::string> bad;
  const fs::path d = fs::path(run) / "checkpoints";
  if (!fs::exists(d)) return bad;
  for (auto& e : fs::directory_iterator(d)) {
    const std::string n = e.path().filename().string();
    if (n == "best") continue;
    if (n.find('.') != std::string::npos) {
      bad.push_back(n + ": leftover");  // step-N.tmp / .old survive only until the next start
      continue;
    }
    try {
      for (const char* f : {"model.safetensors", "memel.safetensors", "optimizer.safetensors"})
        load_safetensors((e.path() / f).string());
      const auto st = nlohmann::json::parse(read_file((e.path() / "state.json").string()));
      char want[32];
      std::snprintf(want, sizeof want, "step-%08lld", (long long)st.at("step").get<int64_t>());
      if (n != want) bad.push_back(n + ": state.json says " + want);
    } catch (const std::exception& ex) {
      bad.push_back(n + ": " + ex.what());
    }
  }
  return bad;
}

struct Reference {
  std::string data, cfg, run;
};

// The unbroken run every faulted run must reproduce (made once).
const Reference& reference() {
  static Reference r = [] {
    fs::remove_all(kBase);
    fs::create_directories(kBase);
    Reference x;
    x.data = make_data("data");
    x.cfg = fault_config("fault", x.data);
    x.run = kBase + "/unbroken";
    Result a = train("--config " + x.cfg + " --quiet --out " + x.run);
    REQUIRE_MESSAGE(a.code == 0, a.output);
    return x;
  }();
  return r;
}

void check_same_as_reference(const std::string& run) {
  const Reference& ref = reference();
  CHECK(lines_without_perf(ref.run + "/metrics.jsonl") == lines_without_perf(run + "/metrics.jsonl"));
  for (const char* f : {"model.safetensors", "memel.safetensors", "optimizer.safetensors"})
    CHECK(read_file(ref.run + "/checkpoints/step-00000048/" + f) == read_file(run + "/checkpoints/step-00000048/" + f));
}

// Starts a shell command line in the background; returns its pid.
pid_t spawn(const std::string& cmd) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

}  // namespace

TEST_CASE("fault injection: SIGKILL inside checkpoint writing, then resume, gives the unbroken run") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const Reference& ref = reference();
  // Killed after one file of checkpoint 32, before its rename, after it, and while the
  // older checkpoints are pruned (keep_last 2 removes step 16 when 48 is written).
  for (const std::string point : {"32:model", "32:state", "32:renamed", "48:pruning"}) {
    CAPTURE(point);
    const std::string run = kBase + "/killed-" + point.substr(3);
    fs::remove_all(run);
    Result a = train("--config " + ref.cfg + " --quiet --out " + run, "MEMEL_FAULT_KILL_CHECKPOINT=" + point);
    CHECK(a.code == 128 + SIGKILL);
    // What a crash leaves: complete checkpoints, at most one step-N.tmp/.old being written/removed.
    for (const std::string& p : checkpoint_problems(run)) CHECK_MESSAGE(p.find(": leftover") != std::string::npos, p);
    Result b = train("--config " + ref.cfg + " --out " + run + " --resume " + run);
    REQUIRE_MESSAGE(b.code == 0, b.output);
    const std::string from = point == "32:model" || point == "32:state" ? "step-00000016" : point == "32:renamed" ? "step-00000032" : "step-00000048";
    CHECK(b.output.find("resumed from " + run + "/checkpoints/" + from) != std::string::npos);
    CHECK(checkpoint_problems(run).empty());
    check_same_as_reference(run);
  }
}

TEST_CASE("fault injection: a full disk during a checkpoint is a clear error and the previous checkpoint survives") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  const Reference& ref = reference();
  const std::string run = kBase + "/full", out = kBase + "/full-after";
  fs::remove_all(run);
  fs::remove_all(out);
  // A run killed after step 20 holds checkpoint 16; resuming it with room for about 300
  // KB more: the metrics, the statistics dump and model.safetensors (220 KB) of checkpoint
  // 32 fit, its optimizer.safetensors (440 KB) does not.
  Result a = train("--config " + ref.cfg + " --quiet --out " + run, "MEMEL_FAULT_KILL_STEP=20");
  REQUIRE(a.code == 128 + SIGKILL);
  const std::string ck16 = run + "/checkpoints/step-00000016";
  std::vector<std::string> before;
  for (const char* f : {"model.safetensors", "memel.safetensors", "optimizer.safetensors", "state.json"})
    before.push_back(read_file(ck16 + "/" + f));

  // A size-limited tmpfs in a private mount namespace (unshare: root, or an unprivileged
  // user namespace); without one, a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored).
  const std::string mnt = kBase + "/mnt";
  fs::create_directories(mnt);
  const std::string resume = kBin + " --config " + ref.cfg + " --quiet --out " + mnt + "/run --resume " + mnt + "/run";
  const std::string inner = "set -e; mount -t tmpfs -o size=2m tmpfs " + mnt + "; cp -a " + run + " " + mnt +
                            "/run; avail=$(df --output=avail -B1 " + mnt + " | tail -1); " +
                            "head -c $((avail - 300*1024)) /dev/zero > " + mnt + "/fill; " + "rc=0; " + resume +
                            " > " + mnt + "/log 2>&1 || rc=$?; cp " + mnt + "/log " + kBase + "/full.log; cp -a " + mnt +
                            "/run " + out + "; exit $rc";
  // MEMEL_TEST_NO_TMPFS=1 forces the fallback (to test it where unshare works).
  Result probe = std::getenv("MEMEL_TEST_NO_TMPFS") ? Result{1, "MEMEL_TEST_NO_TMPFS set"}
                                                     : sh("unshare -rm sh -c 'mount -t tmpfs -o size=64k tmpfs " + mnt + "'");
  std::string how, log;
  int code = 0;
  if (probe.code == 0) {
    how = "tmpfs of 2 MB (unshare -rm)";
    code = sh("unshare -rm sh -c '" + inner + "'").code;
    log = read_file(kBase + "/full.log");
  } else {
    how = "RLIMIT_FSIZE of 300 KB (no tmpfs: " + probe.output + ")";
    fs::copy(run, out, fs::copy_options::recursive);
    // bash counts ulimit -f in KiB (dash in 512-byte blocks).
    Result r = sh("bash -c 'trap \"\" XFSZ; ulimit -f 300; exec " + kBin + " --config " + ref.cfg + " --quiet --out " +
                  out + " --resume " + out + "'");
    code = r.code;
    log = r.output;
  }
  MESSAGE("full disk simulated with a " << how);
  CHECK(code == 1);
  INFO(log);
  CHECK(log.find("cannot write checkpoint " + (probe.code == 0 ? mnt + "/run" : out) + "/checkpoints/step-00000032") !=
        std::string::npos);
  CHECK(log.find(probe.code == 0 ? "No space left on device" : "File too large") != std::string::npos);
  CHECK(log.find("the last complete checkpoint is ") != std::string::npos);
  // Nothing half-written is left; checkpoint 16 is byte for byte what it was.
  CHECK(!fs::exists(out + "/checkpoints/step-00000032"));
  CHECK(!fs::exists(out + "/checkpoints/step-00000032.tmp"));
  CHECK(checkpoint_problems(out).empty());
  std::vector<std::string> after;
  for (const char* f : {"model.safetensors", "memel.safetensors", "optimizer.safetensors", "state.json"})
    after.push_back(read_file(out + "/checkpoints/step-00000016/" + f));
  CHECK(before == after);
  // With room again, the run resumes from it and ends as the unbroken run.
  Result c = train("--config " + ref.cfg + " --out " + out + " --resume " + out);
  REQUIRE_MESSAGE(c.code == 0, c.output);
  CHECK(c.output.find("resumed from " + out + "/checkpoints/step-00000016") != std::string::npos);
  check_same_as_reference(out);
}

TEST_CASE("fault injection: a NaN batch stops the run at its step; the last checkpoint is intact and resumable") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  reference();  // first: making the reference run clears kBase
  // The example the loader puts into step 21's batch (its order depends on (seed, epoch) only).
  std::map<std::string, Tensor> cols = {{"i", Tensor::zeros({2048})}};
  DataLoaderOptions lo;
  lo.batch_size = 32;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.seed = 0;
  DataLoader order(std::make_shared<TensorDataset>(cols), lo);
  const int64_t victim = order.epoch_order(0)[20 * 32 + 5];
  const std::string data = make_data("data-nan", victim), cfg = fault_config("nan", data), run = kBase + "/nan";
  fs::remove_all(run);
  Result a = train("--config " + cfg + " --quiet --out " + run);
  CHECK(a.code == 3);
  // The NaN pixel never reaches the loss (ReLU maps NaN to 0) but makes the gradient NaN:
  // the run stops before the update, so no weights and no checkpoint hold NaN.
  CHECK(a.output.find("gradient norm is") != std::string::npos);
  CHECK(a.output.find("nan at step 21") != std::string::npos);
  CHECK(a.output.find("last good checkpoint: " + run + "/checkpoints/step-00000016") != std::string::npos);
  CHECK(!fs::exists(run + "/checkpoints/step-00000032"));
  CHECK(checkpoint_problems(run).empty());
  const auto lines = lines_without_perf(run + "/metrics.jsonl");
  REQUIRE(!lines.empty());
  CHECK(nlohmann::json::parse(lines.back()).at("step").get<int64_t>() == 20);
  // The data fixed, the run resumes from checkpoint 16 and ends as the unbroken run.
  make_data("data-nan");
  Result b = train("--config " + cfg + " --out " + run + " --resume " + run);
  REQUIRE_MESSAGE(b.code == 0, b.output);
  CHECK(b.output.find("resumed from " + run + "/checkpoints/step-00000016") != std::string::npos);
  check_same_as_reference(run);
}

TEST_CASE("fault injection: a data file removed mid-run") {
  if (!kHaveData) {
    MESSAGE("skipped: Fashion-MNIST not installed");
    return;
  }
  reference();  // first: making the reference run clears kBase
  const std::string data = make_data("data-removed"), cfg = fault_config("removed", data), run = kBase + "/removed";
  fs::remove_all(run);
  // The training images are removed once training has started (first metric line); the
  // run was killed later, at step 40.
  const pid_t pid = spawn("MEMEL_FAULT_KILL_STEP=40 exec " + kFaultBin + " --config " + cfg + " --quiet --out " + run);
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    std::ifstream m(run + "/metrics.jsonl");
    std::string l;
    if (std::getline(m, l) && !l.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  fs::remove(data + "/train-images-idx3-ubyte");
  int status = 0;
  waitpid(pid, &status, 0);
  // memel-train holds its data in memory: the run went on until the kill.
  CHECK(exit_code(status) == 128 + SIGKILL);
  CHECK(fs::exists(run + "/checkpoints/step-00000032"));
  // A resume without the file stops at once naming it, and leaves the run as it was.
  Result b = train("--config " + cfg + " --out " + run + " --resume " + run);
  CHECK(b.code == 1);
  CHECK(b.output.find(data + "/train-images-idx3-ubyte") != std::string::npos);
  CHECK(checkpoint_problems(run).empty());
  CHECK(fs::exists(run + "/checkpoints/step-00000032"));
  // The file back, the resume completes as the unbroken run.
  make_data("data-removed");
  Result c = train("--config " + cfg + " --out " + run + " --resume " + run);
  REQUIRE_MESSAGE(c.code == 0, c.output);
  CHECK(c.output.find("resumed from " + run + "/checkpoints/step-00000032") != std::string::npos);
  check_same_as_reference(run);
}
