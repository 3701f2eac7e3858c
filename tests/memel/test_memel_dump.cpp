#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "memel/inspect.h"
#include "memel/layer.h"

using namespace memel;

namespace {
struct Lin2 : Module {
  Tensor w;
  explicit Lin2(uint64_t seed) : Module("Lin2") {
    Generator g(seed);
    w = register_parameter("weight", Tensor::uniform({5, 7}, -0.5, 0.5, DType::F32, &g));
  }
  Tensor forward(const Tensor& x) override { return matmul(x, w); }
};

std::shared_ptr<Sequential> model_with_memel(const char* mode) {
  auto m = std::make_shared<Sequential>();
  m->push_back(std::make_shared<Lin2>(1));
  attach_memel(*m, MemelOptions::from_json(nlohmann::json::parse(std::string(R"({"at": ["0"], "warmup": 1, "mode": ")") +
                                                                 mode + "\"}")));
  Generator g(2);
  for (int i = 0; i < 6; ++i) (*m)(Tensor::randn({8, 5}, DType::F32, &g));
  return m;
}
}  // namespace

TEST_CASE("memel dump: written, read back, summarised, diffed and plotted") {
  const std::string dir = MEMEL_BINARY_DIR;
  auto m = model_with_memel("rd");
  write_memel_dump(*m, dir + "/dump_a", 6);
  MemelDump d = read_memel_dump(dir + "/dump_a.json");
  REQUIRE(d.layers.size() == 1);
  const LayerDump& l = d.layers[0];
  CHECK(l.name == "0.memel");
  CHECK(l.neuron_shape == Shape{7});
  CHECK(l.batches == 6);
  CHECK(l.count.to_vector()[0] == 48);
  CHECK(l.total_inhibited == 5 * 8);  // top-1 per sample after the first (warm-up) batch
  double hist_total = 0;
  for (double v : l.ms_hist.to_vector()) hist_total += v;
  CHECK(hist_total == 6 * 8 * 7);
  // The window was reset by the dump.
  MemelDump again = collect_memel_dump(*m, 7);
  double after = 0;
  for (double v : again.layers[0].ms_hist.to_vector()) after += v;
  CHECK(after == 0);

  std::string s = format_dump_summary(d);
  CHECK(s.find("0.memel") != std::string::npos);
  CHECK(format_dump_top(d, 3).find("rank") != std::string::npos);
  auto base = model_with_memel("monitor");
  write_memel_dump(*base, dir + "/dump_b", 6);
  std::string diff = format_dump_diff(read_memel_dump(dir + "/dump_b"), d, 10.0, "baseline", "rd");
  CHECK(diff.find("of 1 layer(s)") != std::string::npos);
  const std::string png = dir + "/dump_a.png";
  std::remove(png.c_str());
  plot_dump_png(d, png, &d);
  std::ifstream f(png, std::ios::binary);
  char sig[8] = {};
  f.read(sig, 8);
  CHECK(std::string(sig + 1, 3) == "PNG");
}

TEST_CASE("memel dump: a missing or foreign file gives a clear error") {
  CHECK_THROWS_WITH_AS(read_memel_dump("/nonexistent/dump"), doctest::Contains("cannot open /nonexistent/dump.json"), Error);
  const std::string p = std::string(MEMEL_BINARY_DIR) + "/not_a_dump.json";
  std::ofstream(p) << "{\"hello\": 1}";
  CHECK_THROWS_WITH_AS(read_memel_dump(p), doctest::Contains("not a memel statistics dump"), Error);
}
