// Regression tests made from the inputs the fuzz targets (fuzz/, docs/hardening.md) found
// crashing or misbehaving, replayed the way the targets feed them. Each input is a file in
// tests/fuzz_regressions/. Under the ASan+UBSan build (CI) these also catch the undefined
// behaviour itself coming back, not only the error messages.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stb_image_write.h>

#include "data/frames.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "fuzz/fuzz_common.h"
#include "memel/dump.h"
#include "memel/inspect.h"
#include "memel/options.h"
#include "models/bert.h"
#include "models/swin.h"
#include "optim/schedule.h"
#include "core/json_int.h"
#include "support.h"
#include "tensor/tensor_io.h"

using namespace memel;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(MEMEL_SOURCE_DIR) + "/tests/fuzz_regressions/";

std::string input(const std::string& name) {
  std::ifstream f(kDir + name, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "missing " << kDir + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string scratch(const std::string& name) {
  const std::string d = std::string(MEMEL_BINARY_DIR) + "/fuzz_regressions/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

Image decode(const std::string& bytes, int64_t channels) {
  return decode_image_from_memory(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), channels, "x");
}

}  // namespace

TEST_CASE("fuzz regression: IDX float values read as int64 (NaN cast was undefined behaviour)") {
  const std::string path = kDir + "idx-f32-nan-as-int64.idx";
  CHECK(read_idx(path, DType::F32).shape() == Shape({2, 2, 2}));  // as floats: fine, NaN included
  CHECK(error_of([&] { read_idx(path, DType::I64); }).find("does not fit the requested integer dtype") !=
        std::string::npos);
}

TEST_CASE("fuzz regression: IDX with an empty axis and huge others (stride overflow)") {
  const std::string msg = error_of([&] { read_idx(kDir + "idx-empty-axis-huge-shape.idx"); });
  CHECK(msg.find("is too large") != std::string::npos);
  // The same through the tensor API, and a safetensors header with such a shape.
  CHECK(error_of([] { Tensor::empty({0, int64_t(1) << 40, int64_t(1) << 40}); }).find("is too large") !=
        std::string::npos);
  CHECK(shape_numel({int64_t(1) << 32, int64_t(1) << 31, 0}) == 0);
  const std::string st = std::string("\x58\0\0\0\0\0\0\0", 8) +
                         R"({"t":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}}      )";
  REQUIRE(st.size() == 8 + 0x58);
  CHECK(error_of([&] { load_safetensors_from_memory(reinterpret_cast<const uint8_t*>(st.data()), st.size()); })
            .find("is too large") != std::string::npos);
}

TEST_CASE("fuzz regression: JPEG Huffman table with more than 256 codes (stb_image writes past its tables)") {
  const std::string bytes = input("jpeg-dht-more-than-256-codes.jpg");
  for (int64_t c : {1, 3})
    CHECK(error_of([&] { decode(bytes, c); }).find("a Huffman table declares") != std::string::npos);
  // The image folder's header check (skip_corrupt) and the frame reader refuse it too.
  const std::string root = scratch("dht");
  fs::create_directories(root + "/a");
  fuzz::write_bytes(root + "/a/bad.jpg", bytes);
  fuzz::write_bytes(root + "/a/bad.png", bytes);
  std::vector<unsigned char> px(4 * 4 * 3, 100);
  REQUIRE(stbi_write_png((root + "/a/good.png").c_str(), 4, 4, 3, px.data(), 12));
  ImageFolderOptions o;
  o.image_size = 4;
  o.skip_corrupt = true;
  std::ostringstream warn;
  o.warn = &warn;
  ImageFolder f(root, o);
  CHECK(f.size() == 1);
  CHECK(f.skipped().size() == 2);
  int64_t h, w;
  CHECK(error_of([&] { FrameSequenceDataset::read_png(root + "/a/bad.png", &h, &w); }).find("a Huffman table declares") !=
        std::string::npos);
}

TEST_CASE("JPEG check: FF C4 bytes inside a comment or after the end of the image do not reject a valid JPEG") {
  // The check walks the segments as stb_image does: a COM/APPn payload (EXIF, thumbnails)
  // and data after EOI (e.g. a phone's "motion photo") are never read as Huffman tables.
  std::string jpg;
  std::vector<unsigned char> px(8 * 8 * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(i * 7);
  REQUIRE(stbi_write_jpg_to_func(
      [](void* c, void* d, int n) { static_cast<std::string*>(c)->append(static_cast<char*>(d), n); }, &jpg, 8, 8, 3,
      px.data(), 90));
  REQUIRE(jpg.substr(0, 2) == "\xFF\xD8");
  const std::string fake_dht = std::string("\xFF\xC4\x00\x20", 4) + std::string(16, '\xFF');
  const std::string payload = "memel" + fake_dht;
  std::string with_comment = jpg.substr(0, 2) + "\xFF\xFE" + char(0) + char(payload.size() + 2) + payload + jpg.substr(2);
  const Image a = decode(with_comment, 3), b = decode(jpg + fake_dht + std::string(64, '\x01'), 3);
  CHECK(a.w == 8);
  CHECK(b.w == 8);
  CHECK(a.data == decode(jpg, 3).data);
  // The same table inside the header is refused.
  std::string bad = jpg.substr(0, 2) + fake_dht + jpg.substr(2);
  const std::string err = error_of([&] { decode(bad, 3); });
  CHECK_MESSAGE(err.find("a Huffman table declares 4080 codes") != std::string::npos, err);
}

TEST_CASE("fuzz regression: corrupt JPEG that makes stb_image shift by 32 (stb's own UB; no crash here)") {
  // Debian's stb_image has undefined shifts in its JPEG bit reader on this input; memel
  // cannot check entropy-coded data without decoding it. It must still end in an image
  // or an error, nothing else.
  const std::string bytes = input("jpeg-stb-shift-ub.jpg");
  for (int64_t c : {1, 3}) {
    try {
      decode(bytes, c);
    } catch (const Error&) {
    }
  }
}

TEST_CASE("fuzz regression: a JPEG of 721 bytes that declares 8200 x 2056 pixels (slow input)") {
  // The fuzzer's one timeout: stb_image fills the declared size from almost no data.
  // Decoding is refused above max_pixels before stb_image allocates anything.
  const std::string bytes = input("jpeg-721-bytes-17-megapixels.jpg");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  CHECK(error_of([&] { decode_image_from_memory(p, bytes.size(), 3, "x", int64_t(1) << 20); })
            .find("is 2056 x 8200 pixels, more than the limit of 1048576") != std::string::npos);
  CHECK(decode_image_from_memory(p, bytes.size(), 1).h == 8200);  // within the default limit (2^26)
}

TEST_CASE("fuzz regression: PNG whose IDAT chunk claims 2 GB (stb_image would allocate it)") {
  CHECK(error_of([&] { decode(input("png-idat-claims-2gb.png"), 3); }).find("truncated or corrupt PNG") !=
        std::string::npos);
  // Formats other than PNG and JPEG never reach stb_image (it would decode GIF, BMP, PSD...).
  CHECK(error_of([] { decode("GIF89a\x01\x00\x01\x00\x00\x00\x00;", 3); }).find("is not a PNG or JPEG file") !=
        std::string::npos);
  // A valid PNG still decodes.
  std::string png;
  std::vector<unsigned char> px(3 * 2, 7);
  stbi_write_png_to_func([](void* c, void* d, int n) { static_cast<std::string*>(c)->append(static_cast<char*>(d), n); },
                         &png, 3, 2, 1, px.data(), 3);
  CHECK(decode(png, 1).w == 3);
}

TEST_CASE("fuzz regression: frame index with a stride whose span overflows int64") {
  // The target's input: pattern, then "interval seq_len stride height width check".
  const std::string in = input("frames-stride-overflow.txt");
  const size_t nl = in.find('\n');
  std::istringstream nums(in.substr(nl + 1, in.find('\n', nl + 1) - nl - 1));
  long long v[3] = {6, 3, 1};  // the target's defaults; a number too large for int64 reads as INT64_MAX
  for (long long& x : v)
    if (!(nums >> x)) break;
  const std::string root = scratch("frames");
  std::vector<unsigned char> px(4, 1);
  for (const char* n : {"img_2020-02-29_2350.png", "img_2020-03-01_0000.png"})
    REQUIRE(stbi_write_png((root + "/" + n).c_str(), 2, 2, 1, px.data(), 2));
  FrameSequenceOptions o;
  o.root = root;
  o.name_pattern = in.substr(0, nl);
  o.interval_minutes = v[0];
  o.seq_len = v[1];
  o.stride = v[2];
  CHECK(o.interval_minutes == INT64_MAX);
  CHECK(error_of([&] { FrameSequenceDataset{o}; }).find("span more than 2^40 minutes") != std::string::npos);
  o.stride = 1;
  o.interval_minutes = 10;
  o.seq_len = 2;
  CHECK(FrameSequenceDataset(o).size() == 1);
}

TEST_CASE("fuzz regression: statistics dumps with NaN counts, a format that is not a string, a float shape") {
  for (const char* name : {"dump-nan-counts.bin", "dump-format-not-string.bin", "dump-step-float-2e25.bin"}) {
    CAPTURE(name);
    const std::string in = input(name);
    const auto parts = fuzz::split_parts(in, fuzz::kSep, 2);
    REQUIRE(parts.size() == 2);
    const std::string prefix = scratch("dump") + "/d";
    fuzz::write_bytes(prefix + ".json", parts[0]);
    fuzz::write_bytes(prefix + ".safetensors", parts[1]);
    if (std::string(name) == "dump-format-not-string.bin") {
      CHECK(error_of([&] { read_memel_dump(prefix); }).find("not a memel statistics dump") != std::string::npos);
      continue;
    }
    if (std::string(name) == "dump-step-float-2e25.bin") {  // neuron_shape [2.2e25]: was a UB float -> int64 cast
      CHECK(error_of([&] { read_memel_dump(prefix); }).find("a neuron_shape entry is not an integer") !=
            std::string::npos);
      continue;
    }
    MemelDump d = read_memel_dump(prefix);
    REQUIRE(d.layers.size() == 1);
    CHECK(std::isnan(d.layers[0].total_inhibited));
    CHECK(format_dump_summary(d).find("nan") != std::string::npos);  // was a NaN -> long long cast
    CHECK(format_dump_top(d, 5).find("rank") != std::string::npos);
    CHECK(format_dump_diff(d, d).find("of 1 layer(s)") != std::string::npos);
    plot_dump_png(d, prefix + ".png");
    CHECK(fs::file_size(prefix + ".png") > 0);
  }
}

TEST_CASE("fuzz regression: integers in JSON that are floats out of int64's range (core/json_int.h)") {
  // The dump reader's finding, checked where other readers take integers from JSON.
  CHECK(!json_is_int64(nlohmann::json(2.2e25)));
  CHECK(!json_is_int64(nlohmann::json(uint64_t(1) << 63)));
  CHECK(!json_is_int64(nlohmann::json(3.0), false));
  CHECK(json_is_int64(nlohmann::json(3.0)));
  CHECK(json_int64(nlohmann::json(-7.0)) == -7);
  CHECK(error_of([] { MemelOptions::from_json({{"warmup", 1e300}}); }).find("expected an integer") != std::string::npos);
  CHECK(error_of([] { ScheduleConfig::from_json({{"kind", "step"}, {"step_size", -1e19}}); }).find("expected an integer") !=
        std::string::npos);
  CHECK(error_of([] { SwinConfig::from_json({{"embed_dim", 1e30}}, "model"); }).find("must be an integer") !=
        std::string::npos);
  CHECK(error_of([] { BertConfig::from_json({{"hidden_size", 1e30}}); }).find("expected an integer") != std::string::npos);
}
