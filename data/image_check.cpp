#include "data/image_check.h"

#include <cctype>
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

// A PNG chunk's four-letter type for a message; bytes that are not letters as '?'.
std::string chunk_type(const unsigned char* t) {
  std::string s;
  for (int i = 0; i < 4; ++i) s += std::isalpha(t[i]) ? static_cast<char>(t[i]) : '?';
  return s;
}

}  // namespace

void check_image_header(const unsigned char* b, size_t n, const std::string& what) {
  if (is_png(b, n)) return;
  MEMEL_CHECK(n >= 2 && b[0] == 0xFF && b[1] == 0xD8, "[image] '", what, "' is not a PNG or JPEG file");
  // The JPEG's segments, walked the way stb_image reads them, so every DHT segment it
  // could meet is checked and nothing else is looked into (APPn/COM payloads such as EXIF
  // or embedded thumbnails, data after the end of the image). stb_image reads zeros past
  // the end of the data.
  auto at = [&](size_t i) -> unsigned { return i < n ? b[i] : 0u; };
  size_t p = 2;
  while (p < n) {
    // The next marker: stray bytes (stb_image skips them in the header), FF fill bytes,
    // then the marker byte.
    while (p < n && b[p] != 0xFF) ++p;
    while (p < n && b[p] == 0xFF) ++p;
    if (p >= n) return;
    const unsigned m = b[p++];
    const bool with_length = m == 0xC0 || m == 0xC1 || m == 0xC2 || m == 0xC4 || (m >= 0xDA && m <= 0xDD) ||
                             (m >= 0xE0 && m <= 0xEF) || m == 0xFE;
    if (!with_length) return;  // end of image, or a marker stb_image refuses
    const size_t len = at(p) << 8 | at(p + 1);
    if (len < 2) return;  // refused by stb_image
    if (m == 0xC4) {
      // Huffman tables: a class / id byte, 16 code counts, that many symbols each.
      long left = static_cast<long>(len) - 2;
      for (size_t q = p + 2; left > 0;) {
        unsigned count = 0;
        for (size_t i = 0; i < 16; ++i) count += at(q + 1 + i);
        MEMEL_CHECK(count <= 256, "[image] '", what, "': corrupt JPEG (a Huffman table declares ", count,
                    " codes; at most 256)");
        q += 17 + count;
        left -= 17 + static_cast<long>(count);
      }
      if (left != 0) return;  // the tables overrun the segment: stb_image stops there
    }
    p += len;
    if (m == 0xDA) {
      // Entropy-coded data up to the next marker: FF followed by something other than a
      // stuffed 00 or a restart marker D0-D7.
      for (; p < n; ++p) {
        if (b[p] != 0xFF) continue;
        size_t q = p + 1;
        while (q < n && b[q] == 0xFF) ++q;
        if (q < n && b[q] != 0x00 && !(b[q] >= 0xD0 && b[q] <= 0xD7)) break;
        p = q;
      }
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
                  chunk_type(b + p + 4), " chunk of ", len, " bytes at offset ", p,
                  ", ", n - p, " bytes left)");
      if (std::memcmp(b + p + 4, "IEND", 4) == 0) break;
      p += 12 + size_t(len);
    }
  }
  int w = 0, h = 0, c = 0;
  if (stbi_info_from_memory(b, static_cast<int>(n), &w, &h, &c))  // else stbi_load reports why
    MEMEL_CHECK(int64_t(w) * int64_t(h) <= max_pixels, "[image] '", what, "' is ", w, " x ", h, " pixels, more than ",
                "the limit of ", max_pixels, " (max_pixels)");
}

}  // namespace memel
