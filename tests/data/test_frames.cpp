// HKO-7-style frame sequences on a small tree of PNG frames the test writes
// (root/YYYY/MM/DD/RADyyMMddHHmmss.png, every 6 minutes), with a gap, a corrupt frame,
// a second day, a stray file, and a mask tree.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include <stb_image_write.h>

#include "data/frames.h"

using namespace memel;
namespace fs = std::filesystem;

namespace {

constexpr int kH = 8, kW = 6;

uint8_t pixel(int64_t minute, int y, int x) { return uint8_t((minute * 3 + y * kW + x) % 256); }

std::string hko_name(int day, int minute) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "2015/06/%02d/RAD1506%02d%02d%02d00.png", day, day, minute / 60, minute % 60);
  return buf;
}

void write_png(const fs::path& p, const std::vector<uint8_t>& px) {
  fs::create_directories(p.parent_path());
  REQUIRE(stbi_write_png(p.string().c_str(), kW, kH, 1, px.data(), kW) != 0);
}

// Day 1 (2015-06-01): 00:00 ... 00:54 except 00:30 (a gap); 00:48 is corrupt.
// Day 2 (2015-06-02): 00:00 ... 00:18. Masks: every frame, value 255 except pixel 0.
struct Tree {
  fs::path root, masks;
  Tree() {
    const fs::path base = fs::path(MEMEL_BINARY_DIR) / "test_frames_tree";
    fs::remove_all(base);
    root = base / "radarPNG";
    masks = base / "radarPNG_mask";
    auto add = [&](int day, int minute) {
      std::vector<uint8_t> px(kH * kW), mk(kH * kW, 255);
      const int64_t t = civil_to_minutes(2015, 6, day, 0, minute);
      for (int y = 0; y < kH; ++y)
        for (int x = 0; x < kW; ++x) px[size_t(y * kW + x)] = pixel(t, y, x);
      mk[0] = 0;
      write_png(root / hko_name(day, minute), px);
      write_png(masks / hko_name(day, minute), mk);
    };
    for (int m = 0; m <= 54; m += 6)
      if (m != 30) add(1, m);
    for (int m = 0; m <= 18; m += 6) add(2, m);
    std::ofstream(root / hko_name(1, 48), std::ios::binary | std::ios::trunc) << "this is not a png";
    std::ofstream(root / "2015/06/01/README.txt") << "not a frame";
  }
};

const Tree& tree() {
  static Tree t;
  return t;
}

FrameSequenceOptions base_options() {
  FrameSequenceOptions o;
  o.root = tree().root.string();
  o.seq_len = 3;
  return o;
}

}  // namespace

TEST_CASE("frames: timestamps from file names") {
  int64_t t = 0;
  CHECK(parse_frame_time("RAD150601004200.png", "RAD{yy}{MM}{dd}{HH}{mm}{ss}.png", &t));
  CHECK(t == civil_to_minutes(2015, 6, 1, 0, 42));
  CHECK(minutes_to_string(t) == "2015-06-01 00:42");
  CHECK(minutes_to_string(civil_to_minutes(2016, 2, 29, 23, 59)) == "2016-02-29 23:59");
  CHECK(civil_to_minutes(1970, 1, 1) == 0);
  CHECK_FALSE(parse_frame_time("RAD150631004200.png", "RAD{yy}{MM}{dd}{HH}{mm}{ss}.png", &t));  // June 31
  CHECK_FALSE(parse_frame_time("RAD1506010042.png", "RAD{yy}{MM}{dd}{HH}{mm}{ss}.png", &t));
  CHECK(parse_frame_time("cappi_201709141236.png", "cappi_{yyyy}{MM}{dd}{HH}{mm}.png", &t));
  CHECK(minutes_to_string(t) == "2017-09-14 12:36");
  FrameSequenceOptions o = base_options();
  o.name_pattern = "RAD{yy}{MM}{dd}{HH}{min}.png";
  CHECK_THROWS_WITH_AS(FrameSequenceDataset{o}, doctest::Contains("unknown field {min}"), memel::Error);
}

TEST_CASE("frames: sequences skip gaps; days, stride; a corrupt frame fails with its name") {
  FrameSequenceOptions o = base_options();
  FrameSequenceDataset ds(o);
  CHECK(ds.num_frames() == 9 + 4);  // the stray README is ignored
  // Day 1 starts 00:00, 00:06, 00:12 (00:18 and 00:24 run into the gap), 00:36, 00:42;
  // day 2 starts 00:00 and 00:06.
  REQUIRE(ds.size() == 7);
  std::vector<std::string> starts;
  for (int64_t i = 0; i < ds.size(); ++i) starts.push_back(minutes_to_string(ds.sequence_start(i)));
  CHECK(starts == std::vector<std::string>{"2015-06-01 00:00", "2015-06-01 00:06", "2015-06-01 00:12",
                                           "2015-06-01 00:36", "2015-06-01 00:42", "2015-06-02 00:00",
                                           "2015-06-02 00:06"});
  Example ex = ds.get(2);  // 00:12, 00:18, 00:24
  REQUIRE(ex.at("frames").shape() == Shape{3, 1, kH, kW});
  CHECK(ex.count("mask") == 0);
  CHECK(ex.at("start").item() == double(civil_to_minutes(2015, 6, 1, 0, 12)));
  std::vector<double> v = ex.at("frames").to_vector();
  for (int k = 0; k < 3; ++k) {
    const int64_t t = civil_to_minutes(2015, 6, 1, 0, 12 + 6 * k);
    CHECK(v[size_t(k * kH * kW + 2 * kW + 3)] == doctest::Approx(pixel(t, 2, 3) / 255.0));
  }
  // The corrupt frame: an error naming the file.
  CHECK_THROWS_WITH_AS(ds.get(3), doctest::Contains("RAD150601004800.png"), memel::Error);

  o.days = {"2015-06-02"};
  CHECK(FrameSequenceDataset(o).size() == 2);
  o.days = {"20150601"};
  o.stride = 2;  // starts at least 12 minutes apart: 00:00, 00:12, 00:36
  FrameSequenceDataset strided(o);
  REQUIRE(strided.size() == 3);
  CHECK(minutes_to_string(strided.sequence_start(2)) == "2015-06-01 00:36");
  o.days = {"2015-13-01"};
  CHECK_THROWS_WITH_AS(FrameSequenceDataset{o}, doctest::Contains("not a day"), memel::Error);
  o.days.clear();
  o.stride = 1;
  o.root = (tree().root / "nope").string();
  CHECK_THROWS_WITH_AS(FrameSequenceDataset{o}, doctest::Contains("is not a directory"), memel::Error);
}

TEST_CASE("frames: check_frames treats unreadable frames as missing; masks; days file; resizing") {
  FrameSequenceOptions o = base_options();
  o.check_frames = true;
  FrameSequenceDataset ds(o);
  REQUIRE(ds.skipped_frames().size() == 1);
  CHECK(ds.skipped_frames()[0].find("RAD150601004800.png") != std::string::npos);
  CHECK(ds.size() == 5);  // 00:36 and 00:42 now run into the corrupt frame
  for (int64_t i = 0; i < ds.size(); ++i) CHECK_NOTHROW(ds.get(i));

  o.mask_root = tree().masks.string();
  const std::string days_file = std::string(MEMEL_BINARY_DIR) + "/test_frames_days.txt";
  std::ofstream(days_file) << "# rainy days\n20150602\n";
  o.days_file = days_file;
  FrameSequenceDataset masked(o);
  REQUIRE(masked.size() == 2);
  Example ex = masked.get(0);
  REQUIRE(ex.at("mask").shape() == Shape{3, 1, kH, kW});
  std::vector<double> m = ex.at("mask").to_vector();
  CHECK(m[0] == 0.0);
  CHECK(m[1] == 1.0);
  CHECK(m[size_t(kH * kW)] == 0.0);  // pixel 0 of the second frame

  // A frame whose mask is missing counts as missing.
  fs::remove(tree().masks / hko_name(2, 6));
  FrameSequenceDataset gap(o);
  CHECK(gap.size() == 0);  // 00:00 needs 00:06; 00:06 is gone; 00:12 needs 00:24
  std::vector<uint8_t> mk(kH * kW, 255);
  mk[0] = 0;
  write_png(tree().masks / hko_name(2, 6), mk);

  // Box reduction to half size.
  o.height = kH / 2;
  o.width = kW / 2;
  FrameSequenceDataset half(o);
  Example hx = half.get(0);
  REQUIRE(hx.at("frames").shape() == Shape{3, 1, kH / 2, kW / 2});
  const int64_t t0 = civil_to_minutes(2015, 6, 2, 0, 0);
  const double want = (pixel(t0, 2, 2) + pixel(t0, 2, 3) + pixel(t0, 3, 2) + pixel(t0, 3, 3)) / 4.0 / 255.0;
  CHECK(hx.at("frames").to_vector()[size_t(1 * (kW / 2) + 1)] == doctest::Approx(want));
  CHECK(hx.at("mask").to_vector()[0] == 1.0);  // 3 of 4 valid: majority
  o.height = 5;
  o.width = 5;
  FrameSequenceDataset odd(o);
  CHECK_THROWS_WITH_AS(odd.get(0), doctest::Contains("integer multiple"), memel::Error);
}
