// Clear errors of issue 23 in memel/: a memel target listed twice, and a diff of
// statistics dumps from different models.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "memel/inspect.h"
#include "memel/layer.h"
#include "support.h"

using namespace memel;

namespace {

struct Lin3 : Module {
  Tensor w;
  Lin3(int64_t in, int64_t out) : Module("Lin3") {
    Generator g(uint64_t(in * 100 + out));
    w = register_parameter("weight", Tensor::uniform({in, out}, -0.5, 0.5, DType::F32, &g));
  }
  Tensor forward(const Tensor& x) override { return matmul(x, w); }
};

MemelOptions opts(const std::string& at_json) {
  return MemelOptions::from_json(nlohmann::json::parse(R"({"warmup": 1, "mode": "rd", "at": )" + at_json + "}"));
}

// Sequential of linear maps with the given widths (input 5), memel at `at`, fed 3 batches.
std::shared_ptr<Sequential> model(const std::vector<int64_t>& widths, const std::string& at) {
  auto m = std::make_shared<Sequential>();
  int64_t in = 5;
  for (int64_t w : widths) {
    m->push_back(std::make_shared<Lin3>(in, w));
    in = w;
  }
  attach_memel(*m, opts("[\"" + at + "\"]"));
  Generator g(3);
  for (int i = 0; i < 3; ++i) (*m)(Tensor::randn({8, 5}, DType::F32, &g));
  return m;
}

}  // namespace

TEST_CASE("attach_memel: a target listed twice in memel.at is refused by name") {
  auto m = std::make_shared<Sequential>();
  m->push_back(std::make_shared<Lin3>(5, 7));
  m->push_back(std::make_shared<Lin3>(7, 3));
  // Was: "[Lin3] child 'memel' registered twice", from deep inside Module::wrap.
  CHECK(error_of([&] { attach_memel(*m, opts(R"(["0", "1", "0"])")); }) == "[memel] memel.at lists '0' twice");
  CHECK(memel_layers(*m).empty());  // checked before anything is attached
  CHECK(error_of([&] { attach_memel(*m, opts(R"(["paper", "1"])"), {"0", "1"}); }) ==
        "[memel] memel.at lists '1' twice (\"paper\" includes it)");
  // A point and the module's output are different targets.
  CHECK(attach_memel(*m, opts(R"(["0", "1"])")).size() == 2);
  // A second call (memel.monitor_at) naming a target that already has a layer.
  CHECK(error_of([&] { attach_memel(*m, opts(R"(["1"])")); }) ==
        "[memel] '1' already has a memel layer (1.memel); a target may be listed only once across memel.at and "
        "memel.monitor_at");
}

TEST_CASE("memel-inspect diff: dumps of different models are refused, naming the differences") {
  const std::string dir = MEMEL_BINARY_DIR;
  write_memel_dump(*model({7}, "0"), dir + "/clear_dump_a", 3);
  write_memel_dump(*model({7}, "0"), dir + "/clear_dump_a2", 3);
  write_memel_dump(*model({4}, "0"), dir + "/clear_dump_narrow", 3);
  write_memel_dump(*model({7, 6}, "1"), dir + "/clear_dump_deeper", 3);
  const MemelDump a = read_memel_dump(dir + "/clear_dump_a"), a2 = read_memel_dump(dir + "/clear_dump_a2"),
                  narrow = read_memel_dump(dir + "/clear_dump_narrow"),
                  deeper = read_memel_dump(dir + "/clear_dump_deeper");
  // Same model: compared as before.
  CHECK(dump_mismatch(a, a2).empty());
  CHECK(format_dump_diff(a, a2).find("of 1 layer(s)") != std::string::npos);
  // Same layer name, other neuron count (was compared as if nothing differed).
  CHECK(dump_mismatch(a, narrow) == "layer '0.memel' has 7 neurons (7,) in A but 4 (4,) in B");
  CHECK(error_of([&] { format_dump_diff(a, narrow); }) ==
        "[memel-inspect] diff: A and B do not hold the same memel layers (dumps of different models or memel "
        "placements?): layer '0.memel' has 7 neurons (7,) in A but 4 (4,) in B");
  // No layer in common (was: "fell in 0 of 0 layer(s)", exit status 0).
  CHECK(dump_mismatch(a, deeper, "base", "other") == "layer '0.memel' only in base; layer '1.memel' only in other");

  // The program: exit status 1 and the message on stderr.
  const std::string log = dir + "/clear_inspect.log";
  const std::string cmd = dir + "/tools/memel-inspect diff " + dir + "/clear_dump_a " + dir + "/clear_dump_deeper > " +
                          log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  CHECK(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 1);
  CHECK_MESSAGE(ss.str().find("do not hold the same memel layers") != std::string::npos, ss.str());
  CHECK(ss.str().find("layer '1.memel' only in B") != std::string::npos);
}
