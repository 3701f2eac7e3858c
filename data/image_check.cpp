#include "data/image_check.h"

#include <climits>
#include <cstring>

#include <stb_image.h>  // implementation in Debian's libstb

#include "core/error.h"

namespace memel {

namespace {

bool is_png(const unsigned char* b, size_t n) {
  static const unsigned char kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return n >= 8 && std::memcmp(b, kPng, 8) == 0;
}

}  // namespace

void check_image_header(const unsigned char* b, size_t n, const std::string& what) {
  if (is_png(b, n)) return;
  MEMEL_CHECK(n >= 2 && b[0] == 0xFF && b[1] == 0xD8, "[image] '", what, "' is not a PNG or JPEG file");
  // Every DHT segment stb_image could meet: a marker FF C4 anywhere (after any number of
  // FF fill bytes; entropy-coded data never holds FF C4), then its tables, each a class /
  // id byte, 16 code counts and that many symbols. stb reads zeros past the end.
  auto at = [&](size_t i) -> unsigned { return i < n ? b[i] : 0u; };
  for (size_t p = 2; p + 1 < n; ++p) {
    if (b[p] != 0xFF || b[p + 1] != 0xC4) continue;
    long left = static_cast<long>(at(p + 2) << 8 | at(p + 3)) - 2;
    size_t q = p + 4;
    while (left > 0 && q < n) {
      unsigned count = 0;
      for (size_t i = 0; i < 16; ++i) count += at(q + 1 + i);
      MEMEL_CHECK(count <= 256, "[image] '", what, "': corrupt JPEG (a Huffman table declares ", count,
                  " codes; at most 256)");
      q += 17 + count;
      left -= 17 + static_cast<long>(count);
    }
  }
}

void check_image_bytes(const unsigned char* b, size_t n, const std::string& what, int64_t max_pixels) {
  check_image_header(b, n, what);
  MEMEL_CHECK(n <= static_cast<size_t>(INT_MAX), "[image] '", what, "' is too large (", n, " bytes)");
  if (is_png(b, n)) {
    // Chunks (length, type, data, CRC) up to IEND, each within the file.
    for (size_t p = 8; p + 8 <= n;) {
      const uint32_t len = uint32_t(b[p]) << 24 | uint32_t(b[p + 1]) << 16 | uint32_t(b[p + 2]) << 8 | b[p + 3];
      MEMEL_CHECK(len <= n - p - 8 && n - p - 8 - len >= 4, "[image] '", what, "': truncated or corrupt PNG (a ",
                  std::string(reinterpret_cast<const char*>(b + p + 4), 4), " chunk of ", len, " bytes at offset ", p,
                  ", ", n - p, " bytes left)");
      if (std::memcmp(b + p + 4, "IEND", 4) == 0) break;
      p += 12 + size_t(len);
    }
  }
  int w = 0, h = 0, c = 0;
  if (stbi_info_from_memory(b, static_cast<int>(n), &w, &h, &c))  // else stbi_load reports why
    MEMEL_CHECK(int64_t(w) * int64_t(h) <= max_pixels, "[image] '", what, "' is ", w, " x ", h, " pixels, more than ",
                "the limit of ", max_pixels, " (ImageFolderOptions::max_pixels)");
}

}  // namespace memel
