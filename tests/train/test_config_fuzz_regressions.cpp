// Regression tests from fuzz/fuzz_config.cpp (docs/hardening.md): memel-train's config
// loader (train/config.cpp, part of the library) on the inputs
// that made it throw something other than memel::Error. Input: the config file, then
// kSep and one --set assignment per line.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "train/config.h"
#include "fuzz/fuzz_common.h"
#include "support.h"

using namespace memel;

namespace {

std::string replay(const std::string& name) {
  std::ifstream f(std::string(MEMEL_SOURCE_DIR) + "/tests/fuzz_regressions/" + name, std::ios::binary);
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string in = ss.str();
  const std::string path = std::string(MEMEL_BINARY_DIR) + "/fuzz_regression_config.json";
  const std::vector<std::string> sets = fuzz::config_input(in, path);
  return error_of([&] { train::resolve_config(path, sets); });
}

}  // namespace

TEST_CASE("fuzz regression: a config file that is a JSON string, then --set (was nlohmann type_error 305)") {
  CHECK(replay("config-not-object-then-set.txt").find("the configuration must be a JSON object, got string") !=
        std::string::npos);
  train::json j = "text";
  CHECK(error_of([&] { train::apply_set(j, "a=1"); }).find("is not a JSON object") != std::string::npos);
}

TEST_CASE("fuzz regression: --set with bytes that are not UTF-8 (every later dump threw type_error 316)") {
  CHECK(replay("config-set-invalid-utf8.txt").find("not valid UTF-8") != std::string::npos);
  train::json j = train::json::object();
  CHECK(error_of([&] { train::apply_set(j, "name=caf\xe9"); }).find("not valid UTF-8") != std::string::npos);
  train::apply_set(j, "name=caf\xc3\xa9");
  CHECK(j.dump() == "{\"name\":\"caf\xc3\xa9\"}");
}

TEST_CASE("fuzz regression: numbers out of range in a config file are a config error") {
  const std::string path = std::string(MEMEL_BINARY_DIR) + "/fuzz_regression_big.json";
  std::ofstream(path) << R"({"task": "image-classification", "optimizer": {"lr": 1e999}})";
  CHECK(error_of([&] { train::resolve_config(path, {}); }).find("is not valid JSON") != std::string::npos);
}
