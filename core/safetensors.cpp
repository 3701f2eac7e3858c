#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file_io.h"

namespace memel {
namespace {

using nlohmann::json;

// Every error: "[safetensors] WHAT: problem".
#define ST_CHECK(cond, ...) MEMEL_CHECK(cond, "[safetensors] ", what, ": ", __VA_ARGS__)
#define ST_FAIL(...) MEMEL_FAIL("[safetensors] ", what, ": ", __VA_ARGS__)

struct DTypeInfo {
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"F8_E5M2", 1}, {"F8_E4M3", 1},
                                 {"I16", 2},  {"U16", 2}, {"F16", 2},  {"BF16", 2},    {"I32", 4},
                                 {"U32", 4},  {"F32", 4}, {"F64", 8},  {"I64", 8},     {"U64", 8}};

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A JSON number that is a non-negative integer (nlohmann keeps those as unsigned).
bool as_index(const json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

// Parses the JSON header text and checks it against a buffer of `data_size` bytes.
SafetensorsHeader parse_header_json(const char* text, size_t n, uint64_t data_size, const std::string& what) {
  ST_CHECK(n >= 2 && text[0] == '{', "header does not start with '{' (not a safetensors file?)");
  // Reject duplicate names (nlohmann would silently keep the last one) and nesting deeper
  // than the format uses (so hostile input cannot build deep structures).
  std::set<std::string> names;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string& k = parsed.get_ref<const std::string&>();
      ST_CHECK(names.insert(k).second, "duplicate tensor name \"", k, "\" in the header");
    }
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth > 3)
      ST_FAIL("header JSON nests deeper than the format allows");
    return true;
  };
  json root;
  try {
    root = json::parse(text, text + n, callback, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    ST_FAIL("bad JSON in the header (", e.what(), ")");
  }
  ST_CHECK(root.is_object(), "header is not a JSON object");

  SafetensorsHeader h;
  h.data_size = data_size;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      ST_CHECK(v.is_object(), "\"__metadata__\" must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        ST_CHECK(m.value().is_string(), "metadata value for \"", m.key(), "\" is not a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    ST_CHECK(v.is_object(), "entry \"", name, "\" is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    ST_CHECK(dt != v.end() && dt->is_string(), "entry \"", name, "\" has no string \"dtype\"");
    ST_CHECK(sh != v.end() && sh->is_array(), "entry \"", name, "\" has no \"shape\" array");
    ST_CHECK(off != v.end() && off->is_array() && off->size() == 2, "entry \"", name,
             "\" has no \"data_offsets\" [begin, end]");
    SafetensorsEntry e;
    e.name = name;
    e.dtype = dt->get<std::string>();
    size_t esize = safetensors_dtype_size(e.dtype);
    ST_CHECK(esize != 0, "entry \"", name, "\" has unknown dtype \"", e.dtype, "\"");
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : *sh) {
      uint64_t dim = 0;
      ST_CHECK(as_index(d, dim) && dim <= static_cast<uint64_t>(INT64_MAX), "entry \"", name,
               "\" has a shape entry that is not a non-negative integer");
      e.shape.push_back(static_cast<int64_t>(dim));
      overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
    }
    uint64_t nbytes = 0;
    overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(esize), &nbytes);
    ST_CHECK(!overflow, "entry \"", name, "\" has a shape whose size overflows");
    ST_CHECK(as_index((*off)[0], e.begin) && as_index((*off)[1], e.end), "entry \"", name,
             "\" has data_offsets that are not non-negative integers");
    ST_CHECK(e.begin <= e.end, "entry \"", name, "\" has data_offsets [", e.begin, ", ", e.end, "] with begin > end");
    ST_CHECK(e.end <= data_size, "entry \"", name, "\" has data_offsets [", e.begin, ", ", e.end,
             "] beyond the data buffer of ", data_size, " bytes (truncated file?)");
    ST_CHECK(e.end - e.begin == nbytes, "entry \"", name, "\": shape and dtype ", e.dtype, " need ", nbytes,
             " bytes but data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin);
    h.entries.push_back(std::move(e));
  }
  // The ranges must tile [0, data_size) exactly.
  std::sort(h.entries.begin(), h.entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const SafetensorsEntry& e : h.entries) {
    ST_CHECK(e.begin >= pos, "entries \"", prev ? prev->name : "", "\" and \"", e.name, "\" overlap (byte ", e.begin,
             " < ", pos, ")");
    ST_CHECK(e.begin == pos, "hole in the data buffer before entry \"", e.name, "\" (bytes ", pos, " to ", e.begin,
             " belong to no tensor)");
    pos = e.end;
    prev = &e;
  }
  ST_CHECK(pos == data_size, "data buffer has ", data_size - pos, " bytes after the last tensor (", data_size,
           " bytes, tensors cover ", pos, ")");
  return h;
}

// Checks the 8-byte length prefix against the total size; returns N.
uint64_t check_length(const uint8_t* prefix, uint64_t total, const std::string& what) {
  uint64_t n = read_u64_le(prefix);
  ST_CHECK(n <= kSafetensorsMaxHeader, "header length ", n, " exceeds the ", kSafetensorsMaxHeader,
           "-byte limit (corrupt file?)");
  ST_CHECK(n <= total - 8, "header length ", n, " is larger than the file (", total,
           " bytes; truncated file?)");
  return n;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads exactly n bytes at offset; false on a short read.
bool pread_all(int fd, void* dst, uint64_t n, uint64_t offset) {
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
    ssize_t r = ::pread(fd, p, chunk, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<uint64_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

uint64_t open_sized(const std::string& path, Fd& f) {
  const std::string& what = path;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ST_CHECK(f.fd >= 0, "cannot open (", std::strerror(errno), ")");
  struct stat st {};
  ST_CHECK(::fstat(f.fd, &st) == 0, "cannot stat (", std::strerror(errno), ")");
  ST_CHECK(S_ISREG(st.st_mode), "not a regular file");
  return static_cast<uint64_t>(st.st_size);
}

// The header string and the data order, shared by serialize and write.
struct Prepared {
  std::string header;                       // 8-byte length prefix + padded JSON
  std::vector<const SafetensorsItem*> order;
};

Prepared prepare(const std::vector<SafetensorsItem>& items, const std::map<std::string, std::string>& metadata) {
  const std::string what = "writer";
  Prepared p;
  std::set<std::string> names;
  for (const SafetensorsItem& it : items) {
    ST_CHECK(it.name != "__metadata__", "\"__metadata__\" cannot be a tensor name");
    ST_CHECK(names.insert(it.name).second, "duplicate tensor name \"", it.name, "\"");
    size_t es = safetensors_dtype_size(it.dtype);
    ST_CHECK(es != 0, "tensor \"", it.name, "\" has unknown dtype \"", it.dtype, "\"");
    uint64_t numel = 1;
    for (int64_t d : it.shape) {
      ST_CHECK(d >= 0, "tensor \"", it.name, "\" has a negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    ST_CHECK(numel * es == it.nbytes, "tensor \"", it.name, "\": shape and dtype need ", numel * es,
             " bytes, got ", it.nbytes);
    ST_CHECK(it.nbytes == 0 || it.data != nullptr, "tensor \"", it.name, "\" has no data");
    p.order.push_back(&it);
  }
  std::sort(p.order.begin(), p.order.end(), [](const SafetensorsItem* a, const SafetensorsItem* b) {
    size_t sa = safetensors_dtype_size(a->dtype), sb = safetensors_dtype_size(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });
  json root = json::object();
  if (!metadata.empty()) root["__metadata__"] = metadata;
  uint64_t pos = 0;
  for (const SafetensorsItem* it : p.order) {
    root[it->name] = {{"dtype", it->dtype}, {"shape", it->shape}, {"data_offsets", {pos, pos + it->nbytes}}};
    pos += it->nbytes;
  }
  std::string text;
  try {
    text = root.dump();
  } catch (const json::exception& e) {
    ST_FAIL("cannot encode the header (", e.what(), "); names and metadata must be valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t n = text.size();
  p.header.resize(8);
  for (int i = 0; i < 8; ++i) p.header[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  p.header += text;
  return p;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  for (const DTypeInfo& d : kDTypes)
    if (dtype == d.name) return d.size;
  return 0;
}

int64_t SafetensorsEntry::numel() const {
  // A zero dimension first: the other dimensions of an empty tensor may multiply past
  // int64 (the parser bounds the product only through the byte range).
  for (int64_t d : shape)
    if (d == 0) return 0;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // <= the file size: checked by the parser
  return n;
}

const SafetensorsEntry* SafetensorsHeader::find(const std::string& name) const {
  for (const SafetensorsEntry& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

SafetensorsHeader parse_safetensors(const uint8_t* bytes, size_t size, const std::string& what) {
  ST_CHECK(bytes != nullptr || size == 0, "null buffer");
  ST_CHECK(size >= 8, "truncated: ", size, " bytes, fewer than the 8-byte header length");
  uint64_t n = check_length(bytes, size, what);
  SafetensorsHeader h = parse_header_json(reinterpret_cast<const char*>(bytes + 8), n, size - 8 - n, what);
  h.data_start = 8 + n;
  return h;
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  const std::string& what = path;
  Fd f;
  uint64_t total = open_sized(path, f);
  ST_CHECK(total >= 8, "truncated: ", total, " bytes, fewer than the 8-byte header length");
  uint8_t prefix[8];
  ST_CHECK(pread_all(f.fd, prefix, 8, 0), "read error (", std::strerror(errno), ")");
  uint64_t n = check_length(prefix, total, what);
  std::string text(n, '\0');
  ST_CHECK(pread_all(f.fd, text.data(), n, 8), "read error (", std::strerror(errno), ")");
  SafetensorsHeader h = parse_header_json(text.data(), n, total - 8 - n, what);
  h.data_start = 8 + n;
  return h;
}

void read_safetensors_data(const std::string& path, const SafetensorsHeader& header, const std::vector<void*>& dst) {
  const std::string& what = path;
  ST_CHECK(dst.size() == header.entries.size(), "read_safetensors_data: ", dst.size(), " destinations for ",
           header.entries.size(), " entries");
  Fd f;
  uint64_t total = open_sized(path, f);
  ST_CHECK(total == header.data_start + header.data_size, "file changed size while reading (", total,
           " bytes, expected ", header.data_start + header.data_size, ")");
  for (size_t i = 0; i < dst.size(); ++i) {
    const SafetensorsEntry& e = header.entries[i];
    ST_CHECK(pread_all(f.fd, dst[i], e.end - e.begin, header.data_start + e.begin), "short read in tensor \"",
             e.name, "\" (truncated file?)");
  }
}

std::string serialize_safetensors(const std::vector<SafetensorsItem>& items,
                                  const std::map<std::string, std::string>& metadata) {
  Prepared p = prepare(items, metadata);
  std::string out = std::move(p.header);
  for (const SafetensorsItem* it : p.order) out.append(static_cast<const char*>(it->data), it->nbytes);
  return out;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsItem>& items,
                       const std::map<std::string, std::string>& metadata) {
  const std::string& what = path;
  Prepared p = prepare(items, metadata);
  std::vector<std::pair<const void*, size_t>> chunks = {{p.header.data(), p.header.size()}};
  for (const SafetensorsItem* it : p.order) chunks.emplace_back(it->data, it->nbytes);
  try {
    write_file_atomic(path, chunks);
  } catch (const Error& e) {
    ST_FAIL(e.what());
  }
}

#undef ST_CHECK
#undef ST_FAIL

}  // namespace memel
