#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "core/safetensors.h"
#include "tensor/tensor_io.h"

using namespace memel;

namespace {

std::string tmp_path(const std::string& name) { return std::string(MEMEL_BINARY_DIR) + "/test_st_" + name; }

// A file from a raw JSON header (unpadded) and a data buffer.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

const uint8_t* u8(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Loads from memory; returns "" on success, the error message on memel::Error. Any other
// exception fails the test.
std::string try_load(const std::string& bytes) {
  try {
    load_safetensors_from_memory(u8(bytes), bytes.size(), "buf");
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::map<std::string, Tensor> sample_tensors() {
  Generator g(7);
  return {{"b.weight", Tensor::randn({3, 5}, DType::F32, &g)},
          {"a.double", Tensor::randn({2, 2, 2}, DType::F64, &g)},
          {"ids32", Tensor::from_vector(std::vector<int32_t>{-3, 0, 7}, {3})},
          {"ids64", Tensor::from_vector(std::vector<int64_t>{int64_t(1) << 40, -1, 5, 9, 11}, {5})},
          {"scalar", Tensor::scalar(2.5)},
          {"empty", Tensor::zeros({0, 4})}};
}

void check_same(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  REQUIRE(a.size() == b.size());
  for (const auto& [k, t] : a) {
    INFO(k);
    REQUIRE(b.count(k));
    const Tensor& u = b.at(k);
    CHECK(u.dtype() == t.dtype());
    CHECK(u.shape() == t.shape());
    CHECK(u.to_vector() == t.to_vector());  // bit-exact
  }
}

}  // namespace

TEST_CASE("safetensors: round trip of every written dtype through a file and memory") {
  auto tensors = sample_tensors();
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "42"}};
  std::string path = tmp_path("roundtrip.safetensors");
  save_safetensors(path, tensors, meta);
  CHECK(!std::ifstream(path + ".tmp").good());  // the temporary was renamed
  TensorFile f = load_safetensors(path);
  check_same(tensors, f.tensors);
  CHECK(f.metadata == meta);

  std::string bytes = save_safetensors_to_memory(tensors, meta);
  TensorFile m = load_safetensors_from_memory(u8(bytes), bytes.size());
  check_same(tensors, m.tensors);
  // The file on disk holds the same bytes.
  std::ifstream in(path, std::ios::binary);
  std::string disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(disk == bytes);

  // Overwriting replaces the file.
  save_safetensors(path, {{"x", Tensor::ones({2})}});
  CHECK(load_safetensors(path).tensors.size() == 1);
  std::remove(path.c_str());
}

TEST_CASE("safetensors: header layout follows the reference writer") {
  std::string bytes = save_safetensors_to_memory(sample_tensors(), {{"k", "v"}});
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  CHECK(n % 8 == 0);  // buffer starts 8-byte aligned
  std::string header = bytes.substr(8, n);
  CHECK(header[0] == '{');
  auto j = nlohmann::json::parse(header);  // trailing spaces are valid JSON whitespace
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  CHECK(std::is_sorted(keys.begin(), keys.end()));
  // The keys appear in sorted order in the text too.
  size_t last = 0;
  for (const std::string& k : keys) {
    size_t p = header.find("\"" + k + "\"");
    CHECK(p >= last);
    last = p;
  }
  CHECK(j["__metadata__"]["k"] == "v");
  // Each tensor is aligned to its element size; the ranges tile the buffer.
  SafetensorsHeader h = parse_safetensors(u8(bytes), bytes.size());
  uint64_t pos = 0;
  for (const SafetensorsEntry& e : h.entries) {
    CHECK(e.begin == pos);
    CHECK(e.begin % safetensors_dtype_size(e.dtype) == 0);
    pos = e.end;
  }
  CHECK(pos == h.data_size);
  CHECK(h.find("ids32") != nullptr);
  CHECK(h.find("nope") == nullptr);
}

TEST_CASE("safetensors: non-contiguous tensors are written in logical order") {
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor t = a.as_strided({3, 2}, {1, 3}, 0);  // transpose
  std::string bytes = save_safetensors_to_memory({{"t", t}});
  TensorFile f = load_safetensors_from_memory(u8(bytes), bytes.size());
  CHECK(f.tensors.at("t").to_vector() == std::vector<double>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("safetensors: reading F16, BF16 and small integer dtypes converts them") {
  // F16: 1.0, -2.0, 65504 (max), smallest subnormal 2^-24, +inf, 0.5
  std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x3800};
  // BF16: 1.0, -3.0, 0.15625
  std::vector<uint16_t> bf16 = {0x3F80, 0xC040, 0x3E20};
  std::vector<int8_t> i8 = {-128, 0, 127};
  std::vector<uint8_t> u8v = {0, 200, 255};
  std::vector<uint8_t> bools = {0, 1, 1, 0};
  std::vector<int16_t> i16 = {-30000, 5};
  std::vector<uint16_t> u16 = {65535, 1};
  std::vector<uint32_t> u32 = {4000000000u};
  std::vector<uint64_t> u64 = {123456789012345ull};
  std::vector<SafetensorsItem> items = {
      {"f16", "F16", {2, 3}, f16.data(), 12},   {"bf16", "BF16", {3}, bf16.data(), 6},
      {"i8", "I8", {3}, i8.data(), 3},          {"u8", "U8", {3}, u8v.data(), 3},
      {"bool", "BOOL", {2, 2}, bools.data(), 4}, {"i16", "I16", {2}, i16.data(), 4},
      {"u16", "U16", {2}, u16.data(), 4},       {"u32", "U32", {1}, u32.data(), 4},
      {"u64", "U64", {1}, u64.data(), 8}};
  std::string bytes = serialize_safetensors(items);
  std::string path = tmp_path("dtypes.safetensors");
  write_bytes(path, bytes);
  for (const TensorFile& f : {load_safetensors_from_memory(u8(bytes), bytes.size()), load_safetensors(path)}) {
    const Tensor& h = f.tensors.at("f16");
    CHECK(h.dtype() == DType::F32);
    CHECK(h.shape() == Shape{2, 3});
    auto hv = h.to_vector();
    CHECK(hv[0] == 1.0);
    CHECK(hv[1] == -2.0);
    CHECK(hv[2] == 65504.0);
    CHECK(hv[3] == std::ldexp(1.0, -24));
    CHECK(std::isinf(hv[4]));
    CHECK(hv[5] == 0.5);
    CHECK(f.tensors.at("bf16").to_vector() == std::vector<double>{1.0, -3.0, 0.15625});
    CHECK(f.tensors.at("i8").dtype() == DType::I64);
    CHECK(f.tensors.at("i8").to_vector() == std::vector<double>{-128, 0, 127});
    CHECK(f.tensors.at("u8").to_vector() == std::vector<double>{0, 200, 255});
    CHECK(f.tensors.at("bool").to_vector() == std::vector<double>{0, 1, 1, 0});
    CHECK(f.tensors.at("i16").to_vector() == std::vector<double>{-30000, 5});
    CHECK(f.tensors.at("u16").to_vector() == std::vector<double>{65535, 1});
    CHECK(f.tensors.at("u32").to_vector() == std::vector<double>{4000000000.0});
    CHECK(f.tensors.at("u64").to_vector_as<int64_t>()[0] == 123456789012345ll);
  }
  std::remove(path.c_str());
  // F8 is known to the format but not loadable; U64 above INT64_MAX is refused.
  uint8_t f8[2] = {1, 2};
  std::string b8 = serialize_safetensors({{"x", "F8_E4M3", {2}, f8, 2}});
  CHECK(try_load(b8).find("F8_E4M3") != std::string::npos);
  uint64_t big = ~0ull;
  std::string bb = serialize_safetensors({{"x", "U64", {1}, &big, 8}});
  CHECK(try_load(bb).find("too large") != std::string::npos);
}

TEST_CASE("safetensors: a file truncated at any point is an error") {
  std::string bytes = save_safetensors_to_memory(sample_tensors(), {{"a", "b"}});
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    INFO("cut at ", cut, " of ", bytes.size());
    CHECK(try_load(bytes.substr(0, cut)) != "");
  }
  // Through a file too, with the path in the message.
  std::string path = tmp_path("truncated.safetensors");
  for (size_t cut : {size_t(0), size_t(5), size_t(8), size_t(20), bytes.size() - 1}) {
    write_bytes(path, bytes.substr(0, cut));
    try {
      load_safetensors(path);
      FAIL("no error at cut ", cut);
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
  }
  // Trailing bytes after the buffer are an error as well.
  CHECK(try_load(bytes + "x").find("after the last tensor") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("safetensors: corrupted header bytes never crash") {
  std::string bytes = save_safetensors_to_memory(sample_tensors(), {{"a", "b"}});
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  int errors = 0, loaded = 0;
  for (size_t pos = 0; pos < 8 + n; ++pos) {
    for (uint8_t v : {0x00, 0x22, 0x2c, 0x5b, 0x5d, 0x7b, 0x7d, 0x31, 0x39, 0xff, 0x80}) {
      std::string b = bytes;
      if (static_cast<uint8_t>(b[pos]) == v) continue;
      b[pos] = static_cast<char>(v);
      try {
        load_safetensors_from_memory(u8(b), b.size());
        ++loaded;  // e.g. a changed letter in a name still gives a valid file
      } catch (const Error&) {
        ++errors;
      }
    }
  }
  MESSAGE("corrupted header bytes: ", errors, " errors, ", loaded, " still valid");
  CHECK(errors > 0);
  // Random mutations anywhere in the file (deterministic).
  Generator g(123);
  int random_errors = 0;
  for (int it = 0; it < 3000; ++it) {
    std::string b = bytes;
    int flips = 1 + static_cast<int>(g.randint(0, 4));
    for (int k = 0; k < flips; ++k) b[g.randint(0, static_cast<int64_t>(b.size()))] = static_cast<char>(g.randint(0, 256));
    if (g.randint(0, 4) == 0) b.resize(g.randint(0, static_cast<int64_t>(b.size())));
    try {
      load_safetensors_from_memory(u8(b), b.size());
    } catch (const Error&) {
      ++random_errors;
    }
  }
  CHECK(random_errors > 0);
}

TEST_CASE("safetensors: malformed headers give one clear error each") {
  const std::string d8(8, '\0');
  struct Case {
    const char* what;
    std::string bytes;
    const char* expect;  // part of the message
  };
  std::string huge(8, '\0');
  uint64_t big = (100ull << 20) + 1;
  for (int i = 0; i < 8; ++i) huge[i] = static_cast<char>((big >> (8 * i)) & 0xff);
  std::string longer = make_file("{}", "");
  longer[0] = 100;  // header length 100 > file
  std::vector<Case> cases = {
      {"empty", "", "truncated"},
      {"oversized header length", huge + "{}", "limit"},
      {"header length past the end", longer, "larger than the file"},
      {"not an object start", make_file("[1]", ""), "does not start with '{'"},
      {"bad JSON", make_file("{\"a\": {\"dtype\": \"F32\",", ""), "bad JSON"},
      {"trailing garbage in JSON", make_file("{} x", ""), "bad JSON"},
      {"invalid UTF-8", make_file("{\"\xff\": 1}", ""), "bad JSON"},
      {"entry not object", make_file("{\"a\": 3}", ""), "not an object"},
      {"unknown dtype", make_file(R"({"a": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}})", d8),
       "unknown dtype"},
      {"missing dtype", make_file(R"({"a": {"shape": [2], "data_offsets": [0, 8]}})", d8), "dtype"},
      {"shape size mismatch", make_file(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", d8),
       "need 12 bytes"},
      {"negative shape", make_file(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", d8),
       "non-negative"},
      {"float shape", make_file(R"({"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}})", d8),
       "non-negative"},
      {"shape overflow",
       make_file(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", d8),
       "overflows"},
      {"one offset", make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", d8),
       "data_offsets"},
      {"begin > end", make_file(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [8, 0]}})", d8),
       "begin > end"},
      {"out of range", make_file(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", d8),
       "beyond the data buffer"},
      {"overlap",
       make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                     "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                 d8),
       "overlap"},
      {"hole",
       make_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                     "b": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}})",
                 d8),
       "hole"},
      {"hole at start", make_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", d8), "hole"},
      {"uncovered end", make_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", d8),
       "after the last tensor"},
      {"duplicate names",
       make_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                     "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                 d8),
       "duplicate"},
      {"metadata not strings", make_file(R"({"__metadata__": {"a": 1}})", ""), "not a string"},
      {"metadata not object", make_file(R"({"__metadata__": [1]})", ""), "__metadata__"},
      {"deep nesting", make_file("{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}", ""),
       "nests deeper"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    std::string msg = try_load(c.bytes);
    CHECK(msg.find(c.expect) != std::string::npos);
    CHECK(msg.find("buf") != std::string::npos);        // names the source
    CHECK(msg.find('\n') == std::string::npos);         // one line
  }
  // Valid edge cases: empty header, whitespace padding, a scalar, zero-size entries.
  CHECK(try_load(make_file("{}", "")) == "");
  CHECK(try_load(make_file("{}      ", "")) == "");
  CHECK(try_load(make_file(R"({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
                               "z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [4, 4]}})",
                           std::string("\0\0\x80?", 4))) == "");
}

TEST_CASE("safetensors: file errors name the file") {
  std::string missing = tmp_path("does_not_exist.safetensors");
  try {
    load_safetensors(missing);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(missing) != std::string::npos);
    CHECK(std::string(e.what()).find("cannot open") != std::string::npos);
  }
  CHECK_THROWS_AS(save_safetensors("/nonexistent-dir/x.safetensors", {{"a", Tensor::ones({1})}}), Error);
  CHECK_THROWS_AS(save_safetensors_to_memory({{"__metadata__", Tensor::ones({1})}}), Error);
}
