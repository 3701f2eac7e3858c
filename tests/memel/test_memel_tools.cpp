// The programs around the layer, run as subprocesses: memel-inspect (weights, stats, diff,
// errors), memel-data (tokenize, wordnet) and memel-train --print-config (the memel preset
// expanded to every option).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>

#include "support.h"

#include "memel/dump.h"
#include "memel/layer.h"
#include "tensor/tensor_io.h"

using namespace memel;
namespace fs = std::filesystem;

namespace {

using Result = ProgramResult;

Result run_tool(const std::string& tool, const std::string& args) {
  return run_program(std::string(MEMEL_BINARY_DIR) + "/tools/" + tool, args, "memel_tools_test");
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

struct Lin3 : Module {
  Tensor w;
  explicit Lin3(uint64_t seed) : Module("Lin3") {
    Generator g(seed);
    w = register_parameter("weight", Tensor::uniform({5, 7}, -0.5, 0.5, DType::F32, &g));
  }
  Tensor forward(const Tensor& x) override { return matmul(x, w); }
};

std::shared_ptr<Sequential> trained(const char* mode) {
  auto m = std::make_shared<Sequential>();
  m->push_back(std::make_shared<Lin3>(1));
  attach_memel(*m, MemelOptions::from_json(
                       nlohmann::json::parse(std::string(R"({"at": ["0"], "warmup": 1, "mode": ")") + mode + "\"}")));
  Generator g(2);
  for (int i = 0; i < 6; ++i) (*m)(Tensor::randn({8, 5}, DType::F32, &g));
  return m;
}

}  // namespace

TEST_CASE("memel-inspect: weights, stats and diff of real files; a missing file is a clear error") {
  const std::string dir = std::string(MEMEL_BINARY_DIR) + "/inspect_tool_test";
  fs::create_directories(dir);
  auto rd = trained("rd"), base = trained("monitor");
  write_memel_dump(*rd, dir + "/rd", 6);
  write_memel_dump(*base, dir + "/base", 6);
  save_safetensors(dir + "/w.safetensors", {{"layer.weight", Tensor::zeros({3, 4})}, {"layer.bias", Tensor::zeros({4})}},
                   {{"producer", "test"}});

  Result w = run_tool("memel-inspect", "weights " + dir + "/w.safetensors");
  CHECK_MESSAGE(w.code == 0, w.err);
  CHECK(contains(w.out, "layer.weight"));
  CHECK(contains(w.out, "layer.bias"));
  CHECK(contains(w.out, "16"));  // 3 x 4 + 4 parameters
  CHECK(contains(w.out, "producer"));

  Result s = run_tool("memel-inspect", "stats " + dir + "/rd --top 3");
  CHECK_MESSAGE(s.code == 0, s.err);
  CHECK(contains(s.out, "0.memel"));
  CHECK(contains(s.out, "rank"));

  Result d = run_tool("memel-inspect", "diff " + dir + "/base " + dir + "/rd");
  CHECK_MESSAGE(d.code == 0, d.err);
  CHECK(contains(d.out, "of 1 layer(s)"));

  Result bad = run_tool("memel-inspect", "stats " + dir + "/nope");
  CHECK(bad.code != 0);
  CHECK(contains(bad.err, "nope"));
  Result usage = run_tool("memel-inspect", "frobnicate");
  CHECK(usage.code == 2);
}

TEST_CASE("memel-data: tokenize gives the BERT encoding; wordnet writes the GLUE-layout splits") {
  Result t = run_tool("memel-data", "tokenize --vocab " + std::string(MEMEL_SOURCE_DIR) +
                                        "/tests/data/text/vocab-uncased.txt --max-len 16 'Hello, world!' 'second one'");
  REQUIRE_MESSAGE(t.code == 0, t.err);
  CHECK(contains(t.out, R"(["hello",",","world","!"])"));
  CHECK(contains(t.out, R"("input_ids":[101,7592,1010,2088,999,102,2117,2028,102])"));
  CHECK(contains(t.out, R"("token_type_ids":[0,0,0,0,0,0,1,1,1])"));
  Result bad = run_tool("memel-data", "tokenize --vocab /nonexistent/vocab.txt x");
  CHECK(bad.code != 0);
  CHECK(contains(bad.err, "/nonexistent/vocab.txt"));

  if (!fs::exists("/usr/share/wordnet")) {
    MESSAGE("skipped the wordnet part: /usr/share/wordnet is missing (Debian's wordnet-base)");
    return;
  }
  const std::string out = std::string(MEMEL_BINARY_DIR) + "/memel_data_wordnet_test";
  fs::remove_all(out);
  Result wn = run_tool("memel-data", "wordnet --out " + out + " --max-per-split 20");
  REQUIRE_MESSAGE(wn.code == 0, wn.err);
  for (const char* split : {"train", "dev", "test"}) {
    std::ifstream f(out + "/wn-lex/" + split + ".tsv");
    std::string line;
    int rows = -1;  // the header
    while (std::getline(f, line)) ++rows;
    CHECK_MESSAGE(rows == 20, split);
    CHECK(fs::file_size(out + "/corpus/" + split + ".txt") > 1000);
  }
  const nlohmann::json stats = nlohmann::json::parse(slurp(out + "/stats.json"));
  CHECK(stats.at("max_per_split") == 20);
}

TEST_CASE("memel-train --print-config: the memel preset expanded to every option; explicit keys win") {
  const std::string cfg = std::string(MEMEL_SOURCE_DIR) + "/configs/fmnist-mlp-memel.json";
  Result p = run_tool("memel-train", "--config " + cfg + " --print-config");
  REQUIRE_MESSAGE(p.code == 0, p.err);
  const nlohmann::json m = nlohmann::json::parse(p.out).at("memel");
  CHECK(m.at("preset") == "paper");
  CHECK(m.at("forget_batches") == 10);
  CHECK(m.at("score_after_update") == false);
  CHECK(m.at("ties") == "lower_index");
  CHECK(m.at("mode") == "rd");
  CHECK(m.at("dump_every") == 500);  // trainer keys kept
  CHECK(m.at("monitor_at") == nlohmann::json::array({"act1", "act3"}));
  // The expanded section is itself a valid, complete memel section.
  nlohmann::json layer = m;
  layer.erase("dump_every");
  layer.erase("monitor_at");
  CHECK(MemelOptions::from_json(layer).to_json() == layer);

  Result a = run_tool("memel-train", "--config " + cfg + " --set memel.preset=authors --set memel.eps=0 --print-config");
  REQUIRE_MESSAGE(a.code == 0, a.err);
  const nlohmann::json ma = nlohmann::json::parse(a.out).at("memel");
  CHECK(ma.at("preset") == "authors");
  CHECK(ma.at("score_after_update") == true);
  CHECK(ma.at("count_ahead") == true);
  CHECK(ma.at("stats_dtype") == "float32");
  CHECK(ma.at("eps") == 0.0);

  Result old = run_tool("memel-train", "--config " + cfg + " --set memel.max_count=320 --print-config");
  CHECK(old.code == 1);
  CHECK(contains(old.err, "forget_batches"));
}
