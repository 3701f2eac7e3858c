#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace memel::train {

// --- CRC-32C -------------------------------------------------------------------------

namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}
void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}
uint64_t get_le(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto& t = crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

void append_tfrecord(std::string& out, const std::string& data) {
  std::string len;
  put_u64(len, static_cast<uint64_t>(data.size()));
  out += len;
  put_u32(out, masked_crc32c(len.data(), len.size()));
  out += data;
  put_u32(out, masked_crc32c(data.data(), data.size()));
}

std::vector<std::string> read_tfrecords(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MEMEL_CHECK(in.good(), "[tensorboard] cannot open ", path);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* b = reinterpret_cast<const unsigned char*>(all.data());
  std::vector<std::string> records;
  size_t pos = 0;
  while (pos < all.size()) {
    const size_t at = pos;
    const size_t index = records.size();
    MEMEL_CHECK(all.size() - pos >= 12, "[tensorboard] ", path, ": record ", index, " at byte ", at,
                " is truncated (", all.size() - pos, " bytes left, a header needs 12)");
    const uint64_t len = get_le(b + pos, 8);
    const uint32_t len_crc = static_cast<uint32_t>(get_le(b + pos + 8, 4));
    MEMEL_CHECK(len_crc == masked_crc32c(b + pos, 8), "[tensorboard] ", path, ": record ", index, " at byte ", at,
                ": the length's CRC does not match");
    pos += 12;
    MEMEL_CHECK(len <= all.size() - pos && all.size() - pos - len >= 4, "[tensorboard] ", path, ": record ", index,
                " at byte ", at, " is truncated (length ", len, ", ", all.size() - pos, " bytes left)");
    const uint32_t data_crc = static_cast<uint32_t>(get_le(b + pos + len, 4));
    MEMEL_CHECK(data_crc == masked_crc32c(b + pos, len), "[tensorboard] ", path, ": record ", index, " at byte ",
                at, ": the data's CRC does not match");
    records.emplace_back(all.data() + pos, static_cast<size_t>(len));
    pos += len + 4;
  }
  return records;
}

// --- protobuf encoding -----------------------------------------------------------------

namespace {

enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}
void put_key(std::string& s, uint32_t field, Wire w) { put_varint(s, (static_cast<uint64_t>(field) << 3) | w); }
void put_double(std::string& s, uint32_t field, double v) {
  uint64_t u;
  std::memcpy(&u, &v, 8);
  put_key(s, field, kFixed64);
  put_u64(s, u);
}
void put_float(std::string& s, uint32_t field, float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  put_key(s, field, kFixed32);
  put_u32(s, u);
}
void put_bytes(std::string& s, uint32_t field, const std::string& b) {
  put_key(s, field, kLen);
  put_varint(s, b.size());
  s += b;
}
void put_packed_doubles(std::string& s, uint32_t field, const std::vector<double>& v) {
  if (v.empty()) return;
  std::string b;
  for (double d : v) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    put_u64(b, u);
  }
  put_bytes(s, field, b);
}

std::string encode_histo(const TBHistogram& h) {
  std::string s;
  put_double(s, 1, h.min);
  put_double(s, 2, h.max);
  put_double(s, 3, h.num);
  put_double(s, 4, h.sum);
  put_double(s, 5, h.sum_squares);
  put_packed_doubles(s, 6, h.bucket_limit);
  put_packed_doubles(s, 7, h.bucket);
  return s;
}

std::string encode_value(const TBValue& v) {
  std::string s;
  put_bytes(s, 1, v.tag);
  if (v.has_simple_value) put_float(s, 2, v.simple_value);
  if (v.has_histo) put_bytes(s, 5, encode_histo(v.histo));
  return s;
}

// A bounds-checked view of a message.
struct Reader {
  const unsigned char* p;
  size_t n, pos = 0;
  const char* what;

  bool done() const { return pos >= n; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      MEMEL_CHECK(pos < n, "[tensorboard] malformed ", what, ": a varint runs past the end");
      const unsigned char c = p[pos++];
      v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    MEMEL_FAIL("[tensorboard] malformed ", what, ": a varint longer than 10 bytes");
  }
  uint64_t fixed(int bytes) {
    MEMEL_CHECK(n - pos >= static_cast<size_t>(bytes), "[tensorboard] malformed ", what, ": a fixed", bytes * 8,
                " field runs past the end");
    const uint64_t v = get_le(p + pos, bytes);
    pos += static_cast<size_t>(bytes);
    return v;
  }
  std::string bytes() {
    const uint64_t len = varint();
    MEMEL_CHECK(len <= n - pos, "[tensorboard] malformed ", what, ": a field of ", len, " bytes with ", n - pos,
                " left");
    std::string s(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    return s;
  }
  double as_double() {
    const uint64_t u = fixed(8);
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case kVarint: varint(); break;
      case kFixed64: fixed(8); break;
      case kLen: bytes(); break;
      case kFixed32: fixed(4); break;
      default: MEMEL_FAIL("[tensorboard] malformed ", what, ": unsupported wire type ", wire);
    }
  }
};

Reader reader_of(const std::string& s, const char* what) {
  return Reader{reinterpret_cast<const unsigned char*>(s.data()), s.size(), 0, what};
}

std::vector<double> doubles_of(Reader& r, uint32_t wire) {
  std::vector<double> out;
  if (wire == kFixed64) {
    out.push_back(r.as_double());
    return out;
  }
  MEMEL_CHECK(wire == kLen, "[tensorboard] malformed HistogramProto: a repeated double with wire type ", wire);
  const std::string b = r.bytes();
  MEMEL_CHECK(b.size() % 8 == 0, "[tensorboard] malformed HistogramProto: packed doubles of ", b.size(), " bytes");
  Reader pr = reader_of(b, "HistogramProto");
  while (!pr.done()) out.push_back(pr.as_double());
  return out;
}

TBHistogram decode_histo(const std::string& s) {
  TBHistogram h;
  Reader r = reader_of(s, "HistogramProto");
  while (!r.done()) {
    const uint64_t key = r.varint();
    const uint32_t field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (field >= 1 && field <= 5 && wire == kFixed64) {
      const double d = r.as_double();
      (field == 1 ? h.min : field == 2 ? h.max : field == 3 ? h.num : field == 4 ? h.sum : h.sum_squares) = d;
    } else if (field == 6 || field == 7) {
      auto v = doubles_of(r, wire);
      auto& dst = field == 6 ? h.bucket_limit : h.bucket;
      dst.insert(dst.end(), v.begin(), v.end());
    } else {
      r.skip(wire);
    }
  }
  return h;
}

TBValue decode_value(const std::string& s) {
  TBValue v;
  Reader r = reader_of(s, "Summary.Value");
  while (!r.done()) {
    const uint64_t key = r.varint();
    const uint32_t field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (field == 1 && wire == kLen) {
      v.tag = r.bytes();
    } else if (field == 2 && wire == kFixed32) {
      const uint32_t u = static_cast<uint32_t>(r.fixed(4));
      std::memcpy(&v.simple_value, &u, 4);
      v.has_simple_value = true;
    } else if (field == 5 && wire == kLen) {
      v.histo = decode_histo(r.bytes());
      v.has_histo = true;
    } else {
      r.skip(wire);
    }
  }
  return v;
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string encode_event(const TBEvent& e) {
  std::string s;
  put_double(s, 1, e.wall_time);
  if (e.step != 0) {
    put_key(s, 2, kVarint);
    put_varint(s, static_cast<uint64_t>(e.step));  // int64: two's complement, 10 bytes when negative
  }
  if (!e.file_version.empty()) put_bytes(s, 3, e.file_version);
  if (!e.values.empty()) {
    std::string summary;
    for (const TBValue& v : e.values) put_bytes(summary, 1, encode_value(v));
    put_bytes(s, 5, summary);
  }
  return s;
}

TBEvent decode_event(const std::string& bytes) {
  TBEvent e;
  Reader r = reader_of(bytes, "Event");
  while (!r.done()) {
    const uint64_t key = r.varint();
    const uint32_t field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (field == 1 && wire == kFixed64) {
      e.wall_time = r.as_double();
    } else if (field == 2 && wire == kVarint) {
      e.step = static_cast<int64_t>(r.varint());
    } else if (field == 3 && wire == kLen) {
      e.file_version = r.bytes();
    } else if (field == 5 && wire == kLen) {
      const std::string summary = r.bytes();
      Reader sr = reader_of(summary, "Summary");
      while (!sr.done()) {
        const uint64_t k = sr.varint();
        if ((k >> 3) == 1 && (k & 7) == kLen) e.values.push_back(decode_value(sr.bytes()));
        else sr.skip(static_cast<uint32_t>(k & 7));
      }
    } else {
      r.skip(wire);
    }
  }
  return e;
}

std::vector<TBEvent> read_tensorboard_events(const std::string& path) {
  std::vector<TBEvent> out;
  for (const std::string& rec : read_tfrecords(path)) out.push_back(decode_event(rec));
  return out;
}

TBHistogram histogram_from_buckets(const std::vector<double>& edges, const std::vector<double>& counts) {
  MEMEL_CHECK(!counts.empty() && edges.size() == counts.size() + 1, "[tensorboard] histogram: expected n + 1 edges "
              "for n counts (n >= 1), got ", edges.size(), " edges and ", counts.size(), " counts");
  for (size_t i = 0; i < edges.size(); ++i) {
    MEMEL_CHECK(std::isfinite(edges[i]), "[tensorboard] histogram: edge ", i, " is not finite (", edges[i], ")");
    MEMEL_CHECK(i == 0 || edges[i] > edges[i - 1], "[tensorboard] histogram: edges must be strictly ascending, "
                "edge ", i, " is ", edges[i], " after ", edges[i - 1]);
  }
  TBHistogram h;
  h.min = edges.front();
  h.max = edges.back();
  for (size_t i = 0; i < counts.size(); ++i) {
    MEMEL_CHECK(std::isfinite(counts[i]) && counts[i] >= 0, "[tensorboard] histogram: count ", i,
                " must be finite and >= 0, got ", counts[i]);
    const double c = 0.5 * (edges[i] + edges[i + 1]);
    h.num += counts[i];
    h.sum += counts[i] * c;
    h.sum_squares += counts[i] * c * c;
    h.bucket_limit.push_back(edges[i + 1]);
    h.bucket.push_back(counts[i]);
  }
  return h;
}

// --- writer ------------------------------------------------------------------------------

TensorBoardWriter::TensorBoardWriter(const std::string& run_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  MEMEL_CHECK(fs::is_directory(run_dir), "[tensorboard] cannot create the run directory ", run_dir,
              ec ? ": " + ec.message() : std::string());
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0 || !host[0]) std::strcpy(host, "localhost");
  const std::string base = run_dir + "/events.out.tfevents." +
                           std::to_string(static_cast<long long>(now_seconds())) + "." + host + "." +
                           std::to_string(static_cast<long long>(getpid()));
  path_ = base;
  for (int n = 1; fs::exists(path_); ++n) path_ = base + "." + std::to_string(n);
  out_.open(path_, std::ios::binary);
  MEMEL_CHECK(out_.good(), "[tensorboard] cannot create ", path_);
  TBEvent first;
  first.file_version = "brain.Event:2";
  write(first);
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    flush();
  } catch (...) {
  }
}

void TensorBoardWriter::write(TBEvent e) {
  if (e.wall_time == 0) e.wall_time = now_seconds();
  std::string rec;
  append_tfrecord(rec, encode_event(e));
  out_.write(rec.data(), static_cast<std::streamsize>(rec.size()));
  MEMEL_CHECK(out_.good(), "[tensorboard] writing ", path_, " failed");
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value) {
  TBEvent e;
  e.step = step;
  TBValue v;
  v.tag = tag;
  v.has_simple_value = true;
  v.simple_value = static_cast<float>(value);
  e.values.push_back(std::move(v));
  write(std::move(e));
}

void TensorBoardWriter::histogram(const std::string& tag, int64_t step, const std::vector<double>& edges,
                                  const std::vector<double>& counts) {
  TBEvent e;
  e.step = step;
  TBValue v;
  v.tag = tag;
  v.has_histo = true;
  v.histo = histogram_from_buckets(edges, counts);
  e.values.push_back(std::move(v));
  write(std::move(e));
}

void TensorBoardWriter::flush() {
  out_.flush();
  MEMEL_CHECK(out_.good(), "[tensorboard] flushing ", path_, " failed");
}

}  // namespace memel::train
