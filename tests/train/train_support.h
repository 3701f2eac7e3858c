#pragma once
// Helpers of the memel-train end-to-end tests: run the program as a subprocess, write
// configs, read run files.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace memel::train_test {

inline const std::string kBin = std::string(MEMEL_BINARY_DIR) + "/tools/memel-train";
// memel-train with the test-only fault hooks (tests/fault_hooks.cpp).
inline const std::string kFaultBin = std::string(MEMEL_BINARY_DIR) + "/tests/memel-train-faults";
// The program for a command line: the fault-hook build when the environment asks for a fault.
inline const std::string& bin_for(const std::string& env) {
  return env.find("MEMEL_FAULT_") != std::string::npos ? kFaultBin : kBin;
}

struct Result {
  int code;
  std::string output;
};

// Runs memel-train with `args` (and `env` assignments before it); exit code and output.
inline Result run(const std::string& args, const std::string& env = "") {
  const std::string log = std::string(MEMEL_BINARY_DIR) + "/memel_train_test.log";
  const std::string cmd = env + " " + bin_for(env) + " " + args + " > " + log + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : (WIFSIGNALED(rc) ? 128 + WTERMSIG(rc) : rc), ss.str()};
}

inline std::string write_config(const std::string& name, const nlohmann::json& j) {
  const std::string p = std::string(MEMEL_BINARY_DIR) + "/" + name;
  std::ofstream(p) << j.dump(2);
  return p;
}

// Trains config `j` (written as `name`) into a fresh run directory, requiring success;
// returns the directory.
inline std::string train_ok(const std::string& name, const nlohmann::json& j) {
  const std::string out = std::string(MEMEL_BINARY_DIR) + "/" + name + "_run";
  std::system(("rm -rf '" + out + "'").c_str());
  Result r = run("--config " + write_config(name + ".json", j) + " --out " + out + " --quiet");
  REQUIRE_MESSAGE(r.code == 0, r.output);
  return out;
}

// `--dry-run` of config `j` must fail with a message containing `expected`.
inline void check_config_error(const std::string& name, const nlohmann::json& j, const std::string& expected) {
  Result r = run("--config " + write_config(name + ".json", j) + " --dry-run");
  CHECK(r.code != 0);
  CHECK_MESSAGE(r.output.find(expected) != std::string::npos, "expected '", expected, "' in: ", r.output);
}

// metrics.jsonl without the timing ("perf") lines, which differ between runs.
inline std::vector<std::string> lines_without_perf(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> r;
  std::string l;
  while (std::getline(f, l))
    if (l.find("\"perf\"") == std::string::npos) r.push_back(l);
  return r;
}

// The metrics.jsonl lines of one split, parsed.
inline std::vector<nlohmann::json> metric_lines(const std::string& path, const std::string& split) {
  std::vector<nlohmann::json> r;
  for (const std::string& l : lines_without_perf(path)) {
    nlohmann::json j = nlohmann::json::parse(l);
    if (j.value("split", std::string()) == split) r.push_back(j);
  }
  return r;
}

inline std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace memel::train_test
