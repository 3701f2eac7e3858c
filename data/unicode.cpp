#include "data/unicode.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>

#include "core/error.h"

namespace memel {
namespace unicode {
namespace {

struct FlagRange {
  uint32_t lo, hi;
  uint8_t flags;
};

#include "data/unicode_tables.inc"

enum : uint8_t { kControl = 1, kWhitespace = 2, kPunct = 4, kMn = 8, kPySpace = 16 };

uint8_t flags_of(char32_t c) {
  if (c < 0x80) {  // fast path, also the table's first entries
    static uint8_t ascii[0x80];
    static bool init = [] {
      for (auto& r : kFlagRanges) {
        if (r.lo >= 0x80) break;
        for (uint32_t i = r.lo; i <= r.hi && i < 0x80; ++i) ascii[i] = r.flags;
      }
      return true;
    }();
    (void)init;
    return ascii[c];
  }
  const size_t n = sizeof(kFlagRanges) / sizeof(kFlagRanges[0]);
  size_t lo = 0, hi = n;
  while (lo < hi) {  // first range with hi >= c
    size_t mid = (lo + hi) / 2;
    if (kFlagRanges[mid].hi < c) lo = mid + 1; else hi = mid;
  }
  if (lo < n && kFlagRanges[lo].lo <= c) return kFlagRanges[lo].flags;
  return 0;
}

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose_into(std::u32string& out, char32_t c) {
  if (c >= kSBase && c < kSBase + kSCount) {
    int s = static_cast<int>(c - kSBase);
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  const size_t n = sizeof(kDecomp) / sizeof(kDecomp[0]);
  auto it = std::lower_bound(kDecomp, kDecomp + n, static_cast<uint32_t>(c),
                             [](const uint32_t (&e)[3], uint32_t v) { return e[0] < v; });
  if (it != kDecomp + n && (*it)[0] == c) {
    for (uint32_t i = 0; i < (*it)[2]; ++i) out.push_back(kDecompData[(*it)[1] + i]);
  } else {
    out.push_back(c);
  }
}

// Stable sort of each run of non-starters by combining class (canonical ordering).
void canonical_order(std::u32string& s) {
  size_t i = 0;
  while (i < s.size()) {
    if (combining_class(s[i]) == 0) { ++i; continue; }
    size_t j = i;
    while (j < s.size() && combining_class(s[j]) != 0) ++j;
    std::stable_sort(s.begin() + i, s.begin() + j,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
}

bool compose_pair(char32_t a, char32_t b, char32_t* out) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    *out = kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
    return true;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount) {
    *out = a + (b - kTBase);
    return true;
  }
  const size_t n = sizeof(kCompose) / sizeof(kCompose[0]);
  auto it = std::lower_bound(kCompose, kCompose + n, std::make_pair(static_cast<uint32_t>(a), static_cast<uint32_t>(b)),
                             [](const uint32_t (&e)[3], const std::pair<uint32_t, uint32_t>& v) {
                               return e[0] < v.first || (e[0] == v.first && e[1] < v.second);
                             });
  if (it != kCompose + n && (*it)[0] == a && (*it)[1] == b) {
    *out = (*it)[2];
    return true;
  }
  return false;
}

}  // namespace

const char* data_version() { return kUnicodeDataVersion; }

// --- UTF-8 ---------------------------------------------------------------------------

namespace {
// Decodes one scalar value at s[i]; returns the number of bytes consumed. On an invalid
// sequence returns the length of its maximal invalid subpart (>= 1) and sets *ok=false.
size_t decode_one(const std::string& s, size_t i, char32_t* cp, bool* ok) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  *ok = true;
  if (b0 < 0x80) { *cp = b0; return 1; }
  int need;
  char32_t v;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) { need = 1; v = b0 & 0x1F; }
  else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2; v = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;        // no overlongs
    if (b0 == 0xED) hi = 0x9F;        // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3; v = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;        // no overlongs
    if (b0 == 0xF4) hi = 0x8F;        // nothing above U+10FFFF
  } else { *ok = false; return 1; }
  size_t k = 1;
  for (; k <= static_cast<size_t>(need); ++k) {
    if (i + k >= s.size()) { *ok = false; return k; }
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = (k == 1) ? lo : 0x80, h = (k == 1) ? hi : 0xBF;
    if (b < l || b > h) { *ok = false; return k; }
    v = (v << 6) | (b & 0x3F);
  }
  *cp = v;
  return k;
}
}  // namespace

std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp = 0;
    bool ok;
    i += decode_one(s, i, &cp, &ok);
    out.push_back(ok ? cp : 0xFFFD);
  }
  return out;
}

std::u32string utf8_decode_strict(const std::string& s, const char* what) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp = 0;
    bool ok;
    size_t n = decode_one(s, i, &cp, &ok);
    MEMEL_CHECK(ok, "[", what, "] invalid UTF-8 at byte ", i, " (0x", std::hex,
                static_cast<int>(static_cast<unsigned char>(s[i])), ")");
    out.push_back(cp);
    i += n;
  }
  return out;
}

bool utf8_valid(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    bool ok;
    i += decode_one(s, i, &cp, &ok);
    if (!ok) return false;
  }
  return true;
}

size_t utf8_invalid_offset(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    bool ok;
    const size_t n = decode_one(s, i, &cp, &ok);
    if (!ok) return i;
    i += n;
  }
  return std::string::npos;
}

void check_utf8_line(const std::string& line, const char* tag, const std::string& file, int64_t line_no,
                     int64_t file_offset) {
  const size_t bad = utf8_invalid_offset(line);
  if (bad == std::string::npos) return;
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned>(static_cast<unsigned char>(line[bad])));
  MEMEL_FAIL("[", tag, "] ", file, ":", line_no, ": not UTF-8 text: invalid byte ", hex, " at byte ", bad,
             " of the line", file_offset >= 0 ? str_cat(" (byte ", file_offset + static_cast<int64_t>(bad), " of the file)")
                                                : std::string(),
             "; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)");
}

void utf8_append(std::string& out, char32_t c) {
  if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

// --- classes -------------------------------------------------------------------------

bool is_bert_control(char32_t c) { return flags_of(c) & kControl; }
bool is_bert_whitespace(char32_t c) { return flags_of(c) & kWhitespace; }
bool is_bert_punctuation(char32_t c) { return flags_of(c) & kPunct; }
bool is_python_space(char32_t c) { return flags_of(c) & kPySpace; }
bool is_nonspacing_mark(char32_t c) { return flags_of(c) & kMn; }

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// --- case ----------------------------------------------------------------------------

void append_lower(std::u32string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back((c >= 'A' && c <= 'Z') ? c + 32 : c);
    return;
  }
  const size_t n = sizeof(kLower) / sizeof(kLower[0]);
  auto it = std::lower_bound(kLower, kLower + n, static_cast<uint32_t>(c),
                             [](const uint32_t (&e)[2], uint32_t v) { return e[0] < v; });
  if (it != kLower + n && (*it)[0] == c) {
    out.push_back((*it)[1]);
    return;
  }
  for (auto& m : kLowerMulti) {
    if (m[0] == c) {
      for (uint32_t i = 0; i < m[1]; ++i) out.push_back(m[2 + i]);
      return;
    }
  }
  out.push_back(c);
}

std::u32string to_lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) append_lower(out, c);
  return out;
}

// --- normalisation -------------------------------------------------------------------

uint8_t combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const size_t n = sizeof(kCcc) / sizeof(kCcc[0]);
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (kCcc[mid][1] < c) lo = mid + 1; else hi = mid;
  }
  if (lo < n && kCcc[lo][0] <= c) return static_cast<uint8_t>(kCcc[lo][2]);
  return 0;
}

std::u32string nfd(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) decompose_into(out, c);
  canonical_order(out);
  return out;
}

std::u32string nfc(const std::u32string& s) {
  // Below U+0300 every character is NFC and nothing composes with it alone.
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x300; })) return s;
  std::u32string d = nfd(s);
  std::u32string out;
  out.reserve(d.size());
  std::ptrdiff_t starter = -1;  // index in `out` of the last starter
  int last_cc = -1;             // class of the last character after the starter (-1: none)
  for (char32_t c : d) {
    const int cc = combining_class(c);
    char32_t composite;
    if (starter >= 0 && (last_cc == -1 || (last_cc != 0 && last_cc < cc)) &&
        compose_pair(out[static_cast<size_t>(starter)], c, &composite)) {
      out[static_cast<size_t>(starter)] = composite;
      continue;
    }
    if (cc == 0) {
      starter = static_cast<std::ptrdiff_t>(out.size());
      last_cc = -1;
    } else {
      last_cc = cc;
    }
    out.push_back(c);
  }
  return out;
}

std::u32string strip_accents(const std::u32string& s) {
  std::u32string d = nfd(s);
  std::u32string out;
  out.reserve(d.size());
  for (char32_t c : d)
    if (!is_nonspacing_mark(c)) out.push_back(c);
  return out;
}

}  // namespace unicode
}  // namespace memel
