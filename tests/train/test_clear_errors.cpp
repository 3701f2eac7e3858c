// Clear errors of issue 23 in the config loader (train/config.cpp) and memel-train: a
// directory as --config, broken JSON in --set, duplicate keys, 64-bit seeds, a memel
// target listed twice.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "support.h"
#include "train/config.h"
#include "train/train_support.h"

using namespace memel;
using namespace memel::train_test;
using memel::train::json;

namespace {

std::string write_text(const std::string& name, const std::string& text) {
  const std::string p = std::string(MEMEL_BINARY_DIR) + "/" + name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

json resolve_text(const std::string& text, const std::vector<std::string>& sets = {}) {
  return train::resolve_config(write_text("clear_errors_cfg.json", text), sets);
}

std::string resolve_error(const std::string& text, const std::vector<std::string>& sets = {}) {
  return error_of([&] { resolve_text(text, sets); });
}

const std::string kTask = R"("task": "image-classification")";

}  // namespace

TEST_CASE("clear errors: --config naming a directory") {
  const std::string dir = std::string(MEMEL_BINARY_DIR) + "/clear_errors_config_dir";
  std::filesystem::create_directories(dir);
  CHECK(error_of([&] { train::resolve_config(dir, {}); }) ==
        "[config] " + dir + " is a directory, expected a JSON file");
  Result r = run("--config " + dir + " --print-config");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.output.find(dir + " is a directory, expected a JSON file") != std::string::npos, r.output);
}

TEST_CASE("clear errors: a --set value that starts like JSON must be JSON") {
  json j = json::object();
  // Bare words stay strings; JSON values parse.
  train::apply_set(j, "memel.mode=rd");
  train::apply_set(j, "name=my run");
  train::apply_set(j, "train.steps=12");
  train::apply_set(j, "a.flag=true");
  train::apply_set(j, "a.none=null");
  train::apply_set(j, "a.neg=-3");
  train::apply_set(j, "a.quoted=\"12x\"");
  train::apply_set(j, "memel.at=[\"0\", \"1\"]");
  train::apply_set(j, "a.empty=");
  CHECK(j["memel"]["mode"] == "rd");
  CHECK(j["name"] == "my run");
  CHECK(j["train"]["steps"] == 12);
  CHECK(j["a"]["flag"] == true);
  CHECK(j["a"]["none"].is_null());
  CHECK(j["a"]["neg"] == -3);
  CHECK(j["a"]["quoted"] == "12x");
  CHECK(j["memel"]["at"] == json::array({"0", "1"}));
  CHECK(j["a"]["empty"] == "");
  // Was silently the string "{\"lr\": 1e-3" (then "expected object, got string"), or for
  // a free-form section such as memel, accepted as a string.
  for (const char* bad : {"optimizer={\"lr\": 1e-3", "memel.at=[\"0\",", "train.steps=12x", "train.steps=-",
                          "optimizer.lr=1e999", "name=\"unterminated"}) {
    const std::string e = error_of([&] { train::apply_set(j, bad); });
    const std::string a = bad, key = a.substr(0, a.find('='));
    CHECK_MESSAGE(e.find("[config] --set " + key + ": the value '" + a.substr(a.find('=') + 1) +
                         "' is not valid JSON ([json.exception.") == 0,
                  e);
    const char first = a[a.find('=') + 1];
    if (first != '{' && first != '[')  // a hint for scalars only
      CHECK_MESSAGE(e.find("must be JSON; for a string write --set " + key + "='\"") != std::string::npos, e);
  }
  Result r = run("--config " + write_config("clear_set.json", {{"task", "image-classification"}}) +
                 " --set 'memel={\"at\": \"paper\", \"mode\": \"rd\"' --print-config");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.output.find("--set memel: the value '{\"at\": \"paper\", \"mode\": \"rd\"' is not valid JSON") !=
                    std::string::npos,
                r.output);
}

TEST_CASE("clear errors: a key given twice in one JSON object") {
  CHECK(resolve_error("{" + kTask + R"(, "optimizer": {"lr": 1e-3, "type": "sgd", "lr": 0.1}})") ==
        "[config] " + std::string(MEMEL_BINARY_DIR) +
            "/clear_errors_cfg.json: key 'optimizer.lr' appears twice in 'optimizer' (a key may be given only once; "
            "JSON readers would keep one of them silently)");
  CHECK(resolve_error("{" + kTask + R"(, "seed": 1, "seed": 2})").find(": key 'seed' appears twice (") !=
        std::string::npos);
  // Inside a list, and in a free-form section.
  CHECK(resolve_error("{" + kTask + R"(, "memel": {"at": ["paper"], "x": [{"a": 1}, {"b": 1, "b": 2}]}})")
            .find("key 'memel.x[1].b' appears twice in 'memel.x[1]'") != std::string::npos);
  // The same key in different objects is fine.
  json ok = resolve_text("{" + kTask + R"(, "optimizer": {"lr": 0.5}, "schedule": {"min_lr": 0.25}})");
  CHECK(ok["optimizer"]["lr"] == 0.5);
  CHECK(ok["schedule"]["min_lr"] == 0.25);
  // In a --set object value: the error names the full key.
  json j = json::object();
  CHECK(error_of([&] { train::apply_set(j, R"(optimizer={"lr": 1, "lr": 2})"); }) ==
        "[config] --set optimizer: key 'optimizer.lr' appears twice in 'optimizer' (a key may be given only once; "
        "JSON readers would keep one of them silently)");
  CHECK(error_of([&] { train::apply_set(j, R"(memel.opts={"a": {"k": 1, "k": 1}})"); })
            .find("key 'memel.opts.a.k' appears twice") != std::string::npos);
  // Deep nesting: the check keeps one short name per level (not a full path), and the
  // duplicate's path is built for the message.
  const int depth = 200000;
  json deep = train::parse_json_strict(std::string(depth, '[') + std::string(depth, ']'), "deep");
  CHECK(deep.is_array());
  CHECK(error_of([&] { train::parse_json_strict(R"([[{"a": [0, {"b": 1, "b": 2}]}]])", "nested", "k"); }) ==
        "nested: key 'k[0][0].a[1].b' appears twice in 'k[0][0].a[1]' (a key may be given only once; JSON readers "
        "would keep one of them silently)");
  // The program.
  Result r = run("--config " + write_text("clear_dup.json", "{" + kTask + R"(, "train": {"steps": 5, "steps": 6}})") +
                 " --print-config");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.output.find("clear_dup.json: key 'train.steps' appears twice in 'train'") != std::string::npos,
                r.output);
}

TEST_CASE("clear errors: the seed is any integer from 0 to 2^64-1") {
  const uint64_t max = UINT64_MAX;
  json c = resolve_text("{" + kTask + R"(, "seed": 18446744073709551615})");
  CHECK(train::config_seed(c) == max);
  CHECK(c["seed"].is_number_unsigned());
  c = resolve_text("{" + kTask + R"(, "seed": 9223372036854775808})");  // INT64_MAX + 1: was "got integer"
  CHECK(train::config_seed(c) == uint64_t(INT64_MAX) + 1);
  c = resolve_text("{" + kTask + "}", {"seed=12345678901234567890"});
  CHECK(train::config_seed(c) == 12345678901234567890ull);
  c = resolve_text("{" + kTask + "}");  // the default, stored unsigned too
  CHECK(train::config_seed(c) == 0);
  CHECK(c["seed"].is_number_unsigned());
  // The value written to config.resolved.json reads back equal.
  CHECK(json::parse(resolve_text("{" + kTask + R"(, "seed": 7})").dump()) == resolve_text("{" + kTask + R"(, "seed": 7})"));
  const std::string expected = "[config] seed: expected an integer from 0 to 18446744073709551615 (2^64-1), got ";
  CHECK(resolve_error("{" + kTask + R"(, "seed": -1})") == expected + "-1 (negative)");
  CHECK(resolve_error("{" + kTask + R"(, "seed": 1.5})") == expected + "1.5");
  CHECK(resolve_error("{" + kTask + R"(, "seed": 18446744073709551616})") == expected + "1.8446744073709552e+19 (above 2^64-1)");
  CHECK(resolve_error("{" + kTask + R"(, "seed": "7"})") == expected + "string (\"7\")");
  CHECK(resolve_error("{" + kTask + R"(, "seed": null})") == expected + "null");
  // Other integer keys stay int64 and say so.
  CHECK(resolve_error("{" + kTask + R"(, "train": {"steps": 10000000000000000000}})") ==
        "[config] train.steps: expected an integer up to 9223372036854775807 (int64), got integer "
        "(10000000000000000000)");
  Result r = run("--config " + write_config("clear_seed.json", {{"task", "image-classification"}}) +
                 " --set seed=18446744073709551615 --print-config");
  CHECK(r.code == 0);
  CHECK_MESSAGE(r.output.find("\"seed\": 18446744073709551615") != std::string::npos, r.output);
}

TEST_CASE("clear errors: memel-train with a memel target listed twice") {
  json cfg = {{"task", "image-classification"},
              {"threads", 1},
              {"model", {{"name", "mlp"}, {"config", {{"hidden", {16, 16}}}}}},
              {"data", {{"train_limit", 64}, {"eval_limit", 64}}},
              {"memel", {{"at", {"act1", "act1"}}, {"mode", "rd"}}}};
  // Was: "[MLP] child 'memel' registered twice" (or [ReLU]).
  check_config_error("clear_memel_twice", cfg, "[memel] memel.at lists 'act1' twice");
  cfg["memel"]["at"] = {"paper", "act2"};  // the MLP's paper placement is act2
  check_config_error("clear_memel_twice", cfg, "[memel] memel.at lists 'act2' twice (\"paper\" includes it)");
}
