// TensorBoard event files: CRC-32C against published check values, TFRecord framing,
// tf.Event encoding byte for byte on a hand-assembled message, and a writer -> reader
// round trip (the record format TensorBoard reads; checked once against the tensorboard
// package's EventAccumulator, see docs/pretrained.md).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/tensorboard.h"

using namespace memel;
using namespace memel::train;

namespace {

std::string temp_dir(const std::string& name) {
  const std::string d = (std::filesystem::temp_directory_path() / ("memel_tb_" + name)).string();
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("tensorboard: CRC-32C and its TFRecord masking against known values") {
  // RFC 3720 (iSCSI) appendix B.4 and the usual "123456789" check value.
  const std::string digits = "123456789";
  CHECK(crc32c(digits.data(), digits.size()) == 0xE3069283u);
  std::string zeros(32, '\0'), ones(32, '\xff'), ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
  CHECK(crc32c(zeros.data(), 32) == 0x8A9136AAu);
  CHECK(crc32c(ones.data(), 32) == 0x62A8AB43u);
  CHECK(crc32c(ascending.data(), 32) == 0x46DD794Eu);
  // Continuing a checksum equals checksumming the concatenation.
  CHECK(crc32c(digits.data() + 4, 5, crc32c(digits.data(), 4)) == 0xE3069283u);
  // Masking: rotate right 15, add 0xa282ead8 (values from an independent bitwise script).
  CHECK(masked_crc32c(digits.data(), digits.size()) == 0xC78AB0E5u);
  CHECK(masked_crc32c("", 0) == 0xA282EAD8u);
  const char len24[8] = {24, 0, 0, 0, 0, 0, 0, 0};
  CHECK(masked_crc32c(len24, 8) == 0x224B7FA3u);
}

TEST_CASE("tensorboard: tf.Event bytes as protobuf lays them out") {
  TBEvent e;
  e.wall_time = 1.5;  // 0x3FF8000000000000
  e.step = 300;       // varint ac 02
  TBValue v;
  v.tag = "loss";
  v.has_simple_value = true;
  v.simple_value = 0.25f;  // 0x3E800000
  e.values.push_back(v);
  const std::string expected =
      std::string("\x09\x00\x00\x00\x00\x00\x00\xf8\x3f", 9) +  // wall_time: field 1, fixed64
      std::string("\x10\xac\x02", 3) +                           // step: field 2, varint 300
      std::string("\x2a\x0d", 2) +                               // summary: field 5, 13 bytes
      std::string("\x0a\x0b", 2) +                               //   value: field 1, 11 bytes
      std::string("\x0a\x04loss", 6) +                           //     tag
      std::string("\x15\x00\x00\x80\x3e", 5);                    //     simple_value: field 2, fixed32
  CHECK(encode_event(e) == expected);

  TBEvent first;
  first.file_version = "brain.Event:2";
  const std::string fv = encode_event(first);
  CHECK(fv.size() == 24);  // 9 (wall_time) + 2 + 13
  CHECK(fv.substr(9) == std::string("\x1a\x0d", 2) + "brain.Event:2");

  // A TFRecord of that first event: length 24 and the CRCs around it.
  std::string rec;
  append_tfrecord(rec, fv);
  REQUIRE(rec.size() == 8 + 4 + 24 + 4);
  CHECK(rec.substr(0, 8) == std::string("\x18\0\0\0\0\0\0\0", 8));
  uint32_t len_crc;
  std::memcpy(&len_crc, rec.data() + 8, 4);
  CHECK(len_crc == 0x224B7FA3u);
}

TEST_CASE("tensorboard: writer -> reader round trip, negative steps, unknown fields skipped") {
  const std::string dir = temp_dir("roundtrip");
  std::string path;
  {
    TensorBoardWriter tb(dir + "/run-a");
    path = tb.path();
    CHECK(std::filesystem::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
    tb.scalar("train/loss", 1, 2.5);
    tb.scalar("train/lr", 1, 1e-4);
    tb.scalar("eval/accuracy", -3, 0.875);
    tb.histogram("memel/layers.2.blocks.1/ms", 7, {0.0, 0.5, 1.0, 2.0}, {3, 0, 5});
  }
  const auto events = read_tensorboard_events(path);
  REQUIRE(events.size() == 5);
  CHECK(events[0].file_version == "brain.Event:2");
  CHECK(events[0].values.empty());
  CHECK(events[0].wall_time > 1.6e9);
  CHECK(events[1].step == 1);
  REQUIRE(events[1].values.size() == 1);
  CHECK(events[1].values[0].tag == "train/loss");
  CHECK(events[1].values[0].has_simple_value);
  CHECK(events[1].values[0].simple_value == 2.5f);
  CHECK(events[2].values[0].simple_value == static_cast<float>(1e-4));
  CHECK(events[3].step == -3);
  CHECK(events[3].values[0].simple_value == 0.875f);
  const TBValue& h = events[4].values.at(0);
  CHECK(events[4].step == 7);
  CHECK(h.tag == "memel/layers.2.blocks.1/ms");
  REQUIRE(h.has_histo);
  CHECK_FALSE(h.has_simple_value);
  CHECK(h.histo.min == 0.0);
  CHECK(h.histo.max == 2.0);
  CHECK(h.histo.num == 8.0);
  CHECK(h.histo.sum == doctest::Approx(3 * 0.25 + 5 * 1.5));
  CHECK(h.histo.sum_squares == doctest::Approx(3 * 0.0625 + 5 * 2.25));
  CHECK(h.histo.bucket_limit == std::vector<double>{0.5, 1.0, 2.0});
  CHECK(h.histo.bucket == std::vector<double>{3, 0, 5});

  // A field this reader does not know (Event.level = 11 style varint, field 6) is skipped.
  TBEvent e;
  e.step = 4;
  std::string bytes = encode_event(e) + std::string("\x30\x05", 2);
  CHECK(decode_event(bytes).step == 4);
  std::filesystem::remove_all(dir);
}

TEST_CASE("tensorboard: a corrupted or truncated file is an error naming the record") {
  const std::string dir = temp_dir("corrupt");
  std::string path;
  {
    TensorBoardWriter tb(dir);
    path = tb.path();
    tb.scalar("a", 1, 1.0);
  }
  const std::string good = file_bytes(path);
  CHECK(read_tfrecords(path).size() == 2);
  // Flip one byte of the second record's data.
  std::string bad = good;
  bad[bad.size() - 6] ^= 0x01;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
  CHECK_THROWS_WITH_AS(read_tfrecords(path), doctest::Contains("record 1 at byte 40: the data's CRC does not match"),
                       Error);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << good.substr(0, good.size() - 3);
  CHECK_THROWS_WITH_AS(read_tfrecords(path), doctest::Contains("record 1 at byte 40 is truncated"), Error);
  CHECK_THROWS_WITH_AS(histogram_from_buckets({0, 1}, {1, 2}), doctest::Contains("n + 1 edges"), Error);
  CHECK_THROWS_WITH_AS(histogram_from_buckets({0, 1, 1}, {1, 2}), doctest::Contains("strictly ascending"), Error);
  CHECK_THROWS_WITH_AS(histogram_from_buckets({0, 1}, {-1}), doctest::Contains(">= 0"), Error);
  std::filesystem::remove_all(dir);
}
