#include "data/idx.h"

#include <zlib.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace memel {
namespace {

size_t idx_type_size(uint8_t type) {
  switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
  }
  return 0;
}

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

// Reads up to n bytes; returns how many were read (fewer only at the end of the data).
size_t gz_read(gzFile f, void* dst, size_t n, const std::string& path) {
  size_t done = 0;
  char* p = static_cast<char*>(dst);
  while (done < n) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 24));
    int r = gzread(f, p + done, chunk);
    if (r < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      MEMEL_FAIL("[idx] ", path, ": read error (", msg ? msg : "?", "; corrupt or truncated gzip data?)");
    }
    if (r == 0) {
      // End of data: zlib flags a gzip stream cut short (even inside its trailer) here.
      int code = Z_OK;
      const char* msg = gzerror(f, &code);
      MEMEL_CHECK(code == Z_OK, "[idx] ", path, ": ", msg ? msg : "read error",
                  " (truncated or corrupt gzip data)");
      break;
    }
    done += static_cast<size_t>(r);
  }
  return done;
}

template <typename S>
S load_be(const uint8_t* p) {
  uint8_t b[sizeof(S)];
  for (size_t i = 0; i < sizeof(S); ++i) b[i] = p[sizeof(S) - 1 - i];
  S v;
  std::memcpy(&v, b, sizeof(S));
  return v;
}

template <typename S>
void store_be(uint8_t* p, S v) {
  uint8_t b[sizeof(S)];
  std::memcpy(b, &v, sizeof(S));
  for (size_t i = 0; i < sizeof(S); ++i) p[i] = b[sizeof(S) - 1 - i];
}

double value_at(uint8_t type, const uint8_t* p) {
  switch (type) {
    case 0x08: return *p;
    case 0x09: return static_cast<int8_t>(*p);
    case 0x0B: return load_be<int16_t>(p);
    case 0x0C: return load_be<int32_t>(p);
    case 0x0D: return load_be<float>(p);
    case 0x0E: return load_be<double>(p);
  }
  return 0;
}

template <typename T>
void convert(uint8_t type, const uint8_t* src, int64_t n, T* dst, const std::string& path) {
  size_t es = idx_type_size(type);
  if (type == 0x08) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const double v = value_at(type, src + i * es);
      if constexpr (std::is_integral_v<T>) {
        // Float values (or wide integers) that the integer dtype cannot hold: casting them
        // would be undefined behaviour.
        constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
        constexpr double hi = -lo;  // 2^31 or 2^63: the first value past the maximum
        MEMEL_CHECK(v >= lo && v < hi, "[idx] ", path, ": value ", v, " at element ", i,
                    " does not fit the requested integer dtype");
      }
      dst[i] = static_cast<T>(v);
    }
  }
}

}  // namespace

Tensor read_idx(const std::string& path, DType dtype) {
  GzFile g;
  errno = 0;
  g.f = gzopen(path.c_str(), "rb");  // reads plain files as they are
  MEMEL_CHECK(g.f != nullptr, "[idx] cannot open ", path, " (", std::strerror(errno ? errno : ENOENT), ")");
  uint8_t magic[4];
  size_t got = gz_read(g.f, magic, 4, path);
  MEMEL_CHECK(got == 4, "[idx] ", path, ": truncated (", got, " bytes, fewer than the 4-byte magic number)");
  size_t es = idx_type_size(magic[2]);
  MEMEL_CHECK(magic[0] == 0 && magic[1] == 0 && es != 0, "[idx] ", path, ": bad magic number 0x", std::hex,
              (magic[0] << 24 | magic[1] << 16 | magic[2] << 8 | magic[3]),
              " (expected 0x0000TTNN with type TT in 08 09 0B 0C 0D 0E; not an IDX file?)");
  int ndim = magic[3];
  std::vector<uint8_t> dims_raw(4 * static_cast<size_t>(ndim));
  got = gz_read(g.f, dims_raw.data(), dims_raw.size(), path);
  MEMEL_CHECK(got == dims_raw.size(), "[idx] ", path, ": truncated in the sizes of its ", ndim, " axes");
  Shape shape;
  uint64_t numel = 1;
  bool overflow = false;
  for (int d = 0; d < ndim; ++d) {
    uint32_t s = load_be<uint32_t>(dims_raw.data() + 4 * d);
    shape.push_back(s);
    overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(s), &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(es), &nbytes) || nbytes > (1ull << 40);
  MEMEL_CHECK(!overflow, "[idx] ", path, ": sizes ", shape_str(shape), " are too large (corrupt header?)");
  // Read in chunks so a corrupt header cannot make us allocate more than the file holds.
  std::vector<uint8_t> data;
  while (data.size() < nbytes) {
    size_t old = data.size();
    size_t want = static_cast<size_t>(std::min<uint64_t>(nbytes - old, 16u << 20));
    data.resize(old + want);
    size_t r = gz_read(g.f, data.data() + old, want, path);
    data.resize(old + r);
    if (r < want) break;
  }
  MEMEL_CHECK(data.size() == nbytes, "[idx] ", path, ": truncated data (", data.size(), " of ", nbytes,
              " bytes for shape ", shape_str(shape), ")");
  uint8_t extra;
  MEMEL_CHECK(gz_read(g.f, &extra, 1, path) == 0, "[idx] ", path, ": unexpected bytes after the ",
              nbytes, " data bytes of shape ", shape_str(shape));
  Tensor out = Tensor::empty(shape, dtype);
  int64_t n = static_cast<int64_t>(numel);
  MEMEL_DISPATCH_ALL(dtype, "read_idx", [&] { convert(magic[2], data.data(), n, out.data<scalar_t>(), path); });
  return out;
}

void write_idx(const std::string& path, const Tensor& t, IdxType type, bool gzip) {
  MEMEL_CHECK(t.defined(), "[write_idx] undefined tensor");
  MEMEL_CHECK(t.dim() <= 255, "[write_idx] at most 255 axes");
  uint8_t ty = static_cast<uint8_t>(type);
  size_t es = idx_type_size(ty);
  std::vector<uint8_t> bytes = {0, 0, ty, static_cast<uint8_t>(t.dim())};
  for (int64_t s : t.shape()) {
    MEMEL_CHECK(s <= 0xffffffffll, "[write_idx] axis size ", s, " does not fit in 32 bits");
    bytes.resize(bytes.size() + 4);
    store_be<uint32_t>(bytes.data() + bytes.size() - 4, static_cast<uint32_t>(s));
  }
  std::vector<double> v = t.to_vector();
  size_t head = bytes.size();
  bytes.resize(head + v.size() * es);
  for (size_t i = 0; i < v.size(); ++i) {
    uint8_t* p = bytes.data() + head + i * es;
    switch (type) {
      case IdxType::U8: *p = static_cast<uint8_t>(v[i]); break;
      case IdxType::I8: *p = static_cast<uint8_t>(static_cast<int8_t>(v[i])); break;
      case IdxType::I16: store_be<int16_t>(p, static_cast<int16_t>(v[i])); break;
      case IdxType::I32: store_be<int32_t>(p, static_cast<int32_t>(v[i])); break;
      case IdxType::F32: store_be<float>(p, static_cast<float>(v[i])); break;
      case IdxType::F64: store_be<double>(p, v[i]); break;
    }
  }
  GzFile g;
  g.f = gzopen(path.c_str(), gzip ? "wb" : "wbT");  // "T": write without compression
  MEMEL_CHECK(g.f != nullptr, "[write_idx] cannot create ", path, " (", std::strerror(errno), ")");
  size_t done = 0;
  while (done < bytes.size()) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes.size() - done, 1u << 24));
    int w = gzwrite(g.f, bytes.data() + done, chunk);
    MEMEL_CHECK(w > 0, "[write_idx] write error on ", path);
    done += static_cast<size_t>(w);
  }
  int rc = gzclose(g.f);
  g.f = nullptr;
  MEMEL_CHECK(rc == Z_OK, "[write_idx] cannot finish ", path, " (gzclose error ", rc, ")");
}

}  // namespace memel
