// memel-train's nowcasting task on radar frames in HKO-7's layout: a small tree of PNG
// frames and masks the test writes (stored at 128x128, box-reduced to the model's 64x64).
#include <doctest/doctest.h>

#include <filesystem>

#include <stb_image_write.h>

#include "train_support.h"

using namespace memel::train_test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int kSide = 128;

// 2015-06-01 00:00 ... 00:42 and 2015-06-02 00:00 ... 00:30, every 6 minutes: a bright
// disc moving right, and masks that mark the top row invalid.
fs::path write_tree() {
  const fs::path base = fs::path(MEMEL_BINARY_DIR) / "test_nowcast_hko";
  fs::remove_all(base);
  auto put = [&](const fs::path& p, const std::vector<uint8_t>& px) {
    fs::create_directories(p.parent_path());
    REQUIRE(stbi_write_png(p.string().c_str(), kSide, kSide, 1, px.data(), kSide) != 0);
  };
  for (int day : {1, 2})
    for (int m = 0; m <= (day == 1 ? 42 : 30); m += 6) {
      std::vector<uint8_t> px(kSide * kSide, 0), mk(kSide * kSide, 255);
      const int cx = 20 + m, cy = 64;
      for (int y = 0; y < kSide; ++y)
        for (int x = 0; x < kSide; ++x)
          if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < 400) px[size_t(y * kSide + x)] = uint8_t(150 + day * 20);
      std::fill(mk.begin(), mk.begin() + kSide, uint8_t(0));
      char name[64];
      std::snprintf(name, sizeof name, "2015/06/%02d/RAD1506%02d00%02d00.png", day, day, m);
      put(base / "radarPNG" / name, px);
      put(base / "radarPNG_mask" / name, mk);
    }
  return base;
}

json hko_config(const fs::path& base) {
  return json{{"task", "nowcasting"},
              {"seed", 3},
              {"threads", 1},
              {"model", {{"name", "convgru"}, {"config", {{"preset", "convgru-mmnist"}, {"in_frames", 3}, {"out_frames", 2}}}}},
              {"data",
               {{"dataset", "hko7-frames"},
                {"options",
                 {{"root", (base / "radarPNG").string()},
                  {"mask_root", (base / "radarPNG_mask").string()},
                  {"train_days", {"20150601"}},
                  {"eval_days", {"2015-06-02"}},
                  {"eval_stride", 1}}}}},
              {"optimizer", {{"type", "adam"}, {"lr", 1e-3}}},
              {"train", {{"steps", 2}, {"batch_size", 2}, {"eval_batch_size", 2}, {"eval_every", 2}, {"log_every", 1}}},
              {"eval", {{"use_mask", true}}},
              {"memel", {{"at", "paper"}, {"mode", "rd"}, {"warmup", 0}}}};
}

}  // namespace

TEST_CASE("memel-train nowcasting: HKO-7 frame tree with masks trains and evaluates") {
  const std::string out = train_ok("hko_nowcast", hko_config(write_tree()));
  std::vector<json> ev = metric_lines(out + "/metrics.jsonl", "eval");
  REQUIRE(ev.size() == 1);
  // Day 2 has 6 frames: two complete 5-frame sequences at stride 1.
  CHECK(ev[0].contains("b_mse"));
  CHECK(ev[0].contains("copy_last_b_mse"));
  CHECK(std::isfinite(ev[0]["b_mse"].get<double>()));
  CHECK(metric_lines(out + "/metrics.jsonl", "train").size() == 2);
}

TEST_CASE("memel-train nowcasting: HKO-7 frame config errors name the key") {
  const fs::path base = write_tree();
  json c = hko_config(base);
  c["data"]["options"]["train_strid"] = 2;
  check_config_error("hko_bad1", c, "data.options.train_strid: unknown option of the hko7-frames dataset");
  c = hko_config(base);
  c["data"]["options"].erase("eval_days");
  check_config_error("hko_bad2", c, "eval_days or eval_days_file");
  c = hko_config(base);
  c["data"]["options"]["train_days"] = {"20150605"};
  check_config_error("hko_bad3", c, "no complete 5-frame sequence of the train days");
  c = hko_config(base);
  c["data"]["options"].erase("mask_root");
  check_config_error("hko_bad4", c, "eval.use_mask needs validity masks");
}
