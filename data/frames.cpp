#include "data/frames.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <unordered_map>

#include <stb_image.h>

#include "data/image_check.h"

namespace memel {

namespace fs = std::filesystem;

// --- time --------------------------------------------------------------------------

int64_t civil_to_minutes(int64_t y, int64_t m, int64_t d, int64_t hh, int64_t mm) {
  // Days from 1970-01-01 (H. Hinnant's days_from_civil).
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = era * 146097 + doe - 719468;
  return (days * 24 + hh) * 60 + mm;
}

namespace {

void civil_from_minutes(int64_t minutes, int64_t* y, int64_t* m, int64_t* d, int64_t* hh, int64_t* mi) {
  int64_t days = minutes >= 0 ? minutes / 1440 : -((-minutes + 1439) / 1440);
  const int64_t rem = minutes - days * 1440;
  *hh = rem / 60;
  *mi = rem % 60;
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yoe + era * 400 + (*m <= 2);
}

bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int64_t days_in_month(int64_t y, int64_t m) {
  static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// "YYYYMMDD" or "YYYY-MM-DD" -> "YYYYMMDD"; throws on anything else.
std::string normalize_day(const std::string& s, const std::string& where) {
  std::string digits;
  for (char c : s)
    if (c != '-') digits += c;
  bool ok = digits.size() == 8 && std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(c); });
  if (ok) {
    const int64_t y = std::stoll(digits.substr(0, 4)), m = std::stoll(digits.substr(4, 2)),
                  d = std::stoll(digits.substr(6, 2));
    ok = m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
  }
  MEMEL_CHECK(ok, "[frames] ", where, ": '", s, "' is not a day (expected YYYYMMDD or YYYY-MM-DD)");
  return digits;
}

std::string day_of(int64_t minutes) {
  int64_t y, m, d, hh, mi;
  civil_from_minutes(minutes, &y, &m, &d, &hh, &mi);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04lld%02lld%02lld", (long long)y, (long long)m, (long long)d);
  return buf;
}

// Throws on an unknown or unclosed field; requires a date ({yyyy} or {yy}).
void check_pattern(const std::string& pattern) {
  bool year = false;
  for (size_t p = pattern.find('{'); p != std::string::npos; p = pattern.find('{', p + 1)) {
    const size_t close = pattern.find('}', p);
    MEMEL_CHECK(close != std::string::npos, "[frames] name pattern '", pattern, "': unclosed '{'");
    const std::string f = pattern.substr(p + 1, close - p - 1);
    MEMEL_CHECK(f == "yyyy" || f == "yy" || f == "MM" || f == "dd" || f == "HH" || f == "mm" || f == "ss",
                "[frames] name pattern '", pattern, "': unknown field {", f, "} (fields: yyyy yy MM dd HH mm ss)");
    year = year || f == "yyyy" || f == "yy";
  }
  MEMEL_CHECK(year, "[frames] name pattern '", pattern, "' has no year field ({yyyy} or {yy})");
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

std::string minutes_to_string(int64_t minutes) {
  int64_t y, m, d, hh, mi;
  civil_from_minutes(minutes, &y, &m, &d, &hh, &mi);
  char buf[112];  // room for five int64 fields, whatever their values
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld %02lld:%02lld", (long long)y, (long long)m, (long long)d,
                (long long)hh, (long long)mi);
  return buf;
}

bool parse_frame_time(const std::string& name, const std::string& pattern, int64_t* minutes) {
  int64_t y = -1, mo = 1, d = 1, hh = 0, mi = 0, ss = 0;
  size_t i = 0, p = 0;
  auto digits = [&](size_t n, int64_t* out) {
    if (i + n > name.size()) return false;
    int64_t v = 0;
    for (size_t k = 0; k < n; ++k) {
      const char c = name[i + k];
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
      v = v * 10 + (c - '0');
    }
    i += n;
    *out = v;
    return true;
  };
  while (p < pattern.size()) {
    if (pattern[p] == '{') {
      const size_t close = pattern.find('}', p);
      MEMEL_CHECK(close != std::string::npos, "[frames] name pattern '", pattern, "': unclosed '{'");
      const std::string f = pattern.substr(p + 1, close - p - 1);
      bool ok;
      if (f == "yyyy") ok = digits(4, &y);
      else if (f == "yy") {
        ok = digits(2, &y);
        y += 2000;
      } else if (f == "MM") ok = digits(2, &mo);
      else if (f == "dd") ok = digits(2, &d);
      else if (f == "HH") ok = digits(2, &hh);
      else if (f == "mm") ok = digits(2, &mi);
      else if (f == "ss") ok = digits(2, &ss);
      else MEMEL_FAIL("[frames] name pattern '", pattern, "': unknown field {", f, "} (fields: yyyy yy MM dd HH mm ss)");
      if (!ok) return false;
      p = close + 1;
    } else {
      if (i >= name.size() || name[i] != pattern[p]) return false;
      ++i;
      ++p;
    }
  }
  if (i != name.size() || y < 0) return false;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || hh > 23 || mi > 59 || ss > 59) return false;
  *minutes = civil_to_minutes(y, mo, d, hh, mi);
  return true;
}

// --- dataset -----------------------------------------------------------------------

namespace {
// The bytes of a frame, checked for stb_image (data/image_check.h).
std::vector<unsigned char> frame_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MEMEL_CHECK(f.good(), "[frames] cannot read frame '", path, "': cannot open");
  std::vector<unsigned char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  check_image_bytes(b.data(), b.size(), path);  // its errors name the file
  return b;
}

// stbi_info on a frame file; false (with `why`) when it is unreadable.
bool frame_info(const std::string& path, std::string* why) {
  try {
    std::vector<unsigned char> b = frame_bytes(path);
    int w, h, c;
    if (stbi_info_from_memory(b.data(), int(b.size()), &w, &h, &c)) return true;
    const char* r = stbi_failure_reason();
    *why = r ? r : "unknown";
  } catch (const Error& e) {
    *why = e.what();
  }
  return false;
}
}  // namespace

std::vector<float> FrameSequenceDataset::read_png(const std::string& path, int64_t* height, int64_t* width) {
  int w = 0, h = 0, c = 0;
  const std::vector<unsigned char> bytes = frame_bytes(path);
  unsigned char* px = stbi_load_from_memory(bytes.data(), int(bytes.size()), &w, &h, &c, 1);
  if (!px) {
    const char* why = stbi_failure_reason();
    MEMEL_FAIL("[frames] cannot read frame '", path, "': ", why ? why : "unknown error");
  }
  std::vector<float> v(size_t(w) * size_t(h));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(px[i]) / 255.0f;
  stbi_image_free(px);
  *height = h;
  *width = w;
  return v;
}

FrameSequenceDataset::FrameSequenceDataset(FrameSequenceOptions o) : opt_(std::move(o)) {
  MEMEL_CHECK(!opt_.root.empty(), "[frames] root is empty");
  MEMEL_CHECK(fs::is_directory(opt_.root), "[frames] root '", opt_.root, "' is not a directory");
  MEMEL_CHECK(opt_.mask_root.empty() || fs::is_directory(opt_.mask_root), "[frames] mask_root '", opt_.mask_root,
              "' is not a directory");
  MEMEL_CHECK(opt_.interval_minutes > 0, "[frames] interval_minutes must be positive, got ", opt_.interval_minutes);
  MEMEL_CHECK(opt_.seq_len > 0, "[frames] seq_len must be positive, got ", opt_.seq_len);
  MEMEL_CHECK(opt_.stride > 0, "[frames] stride must be positive, got ", opt_.stride);
  // Sequence spans are added to frame times: keep them far from int64's range (2^40
  // minutes: two million years; file names give years 0-9999).
  int64_t span = 0, gap = 0;
  constexpr int64_t kMaxSpan = int64_t(1) << 40;
  MEMEL_CHECK(!__builtin_mul_overflow(opt_.seq_len - 1, opt_.interval_minutes, &span) && span <= kMaxSpan &&
                  !__builtin_mul_overflow(opt_.stride, opt_.interval_minutes, &gap) && gap <= kMaxSpan,
              "[frames] seq_len ", opt_.seq_len, ", stride ", opt_.stride, " and interval_minutes ",
              opt_.interval_minutes, " span more than 2^40 minutes");
  MEMEL_CHECK(opt_.height >= 0 && opt_.width >= 0 && (opt_.height > 0) == (opt_.width > 0),
              "[frames] height and width must both be 0 (as stored) or both positive");
  check_pattern(opt_.name_pattern);

  std::set<std::string> days;
  for (auto& d : opt_.days) days.insert(normalize_day(d, "days"));
  if (!opt_.days_file.empty()) {
    std::ifstream in(opt_.days_file);
    MEMEL_CHECK(in.good(), "[frames] cannot open days_file '", opt_.days_file, "'");
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      line = trim(line.substr(0, line.find('#')));
      if (!line.empty()) days.insert(normalize_day(line, opt_.days_file + ":" + std::to_string(lineno)));
    }
  }

  // Index the tree.
  std::unordered_map<int64_t, std::string> seen;
  for (auto it = fs::recursive_directory_iterator(opt_.root, fs::directory_options::follow_directory_symlink);
       it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file()) continue;
    int64_t t;
    if (!parse_frame_time(it->path().filename().string(), opt_.name_pattern, &t)) continue;
    if (!days.empty() && !days.count(day_of(t))) continue;
    const std::string rel = fs::relative(it->path(), opt_.root).string();
    auto ins = seen.emplace(t, rel);
    MEMEL_CHECK(ins.second, "[frames] two frames for ", minutes_to_string(t), ": '", ins.first->second, "' and '", rel,
                "'");
    if (!opt_.mask_root.empty() && !fs::is_regular_file(fs::path(opt_.mask_root) / rel)) {
      skipped_.push_back(rel + ": no mask");
      continue;
    }
    if (opt_.check_frames) {
      std::string bad, why;
      if (!frame_info((fs::path(opt_.root) / rel).string(), &why)) bad = "frame";
      else if (!opt_.mask_root.empty() && !frame_info((fs::path(opt_.mask_root) / rel).string(), &why))
        bad = "mask";
      if (!bad.empty()) {
        skipped_.push_back(rel + ": unreadable " + bad + " (" + why + ")");
        continue;
      }
    }
    frames_.emplace_back(t, rel);
  }
  std::sort(frames_.begin(), frames_.end());
  std::sort(skipped_.begin(), skipped_.end());

  std::unordered_map<int64_t, size_t> at;
  for (size_t i = 0; i < frames_.size(); ++i) at[frames_[i].first] = i;
  const int64_t dt = opt_.interval_minutes;
  bool have_last = false;
  int64_t last = 0;
  for (size_t i = 0; i < frames_.size(); ++i) {
    const int64_t t0 = frames_[i].first;
    if (have_last && t0 < last + opt_.stride * dt) continue;
    bool complete = true;
    for (int64_t k = 1; k < opt_.seq_len && complete; ++k) complete = at.count(t0 + k * dt) > 0;
    if (!complete) continue;
    starts_.push_back(i);
    have_last = true;
    last = t0;
  }
}

int64_t FrameSequenceDataset::sequence_start(int64_t i) const {
  MEMEL_CHECK(i >= 0 && i < size(), "[frames] sequence ", i, " out of range [0, ", size(), ")");
  return frames_[starts_[size_t(i)]].first;
}

std::vector<float> FrameSequenceDataset::load(const std::string& path, bool mask, int64_t* h, int64_t* w) const {
  int64_t sh, sw;
  std::vector<float> v = read_png(path, &sh, &sw);
  if (mask)
    for (float& x : v) x = x > 0.0f ? 1.0f : 0.0f;  // nonzero = valid
  if (opt_.height == 0 || (sh == opt_.height && sw == opt_.width)) {
    *h = sh;
    *w = sw;
    return v;
  }
  const int64_t fh = sh / opt_.height, fw = sw / opt_.width;
  MEMEL_CHECK(fh >= 1 && fw >= 1 && fh * opt_.height == sh && fw * opt_.width == sw, "[frames] frame '", path,
              "' is ", sh, "x", sw, ", not ", opt_.height, "x", opt_.width, " or an integer multiple of it");
  std::vector<float> r(size_t(opt_.height * opt_.width));
  const float inv = 1.0f / float(fh * fw);
  for (int64_t y = 0; y < opt_.height; ++y)
    for (int64_t x = 0; x < opt_.width; ++x) {
      float s = 0;
      for (int64_t a = 0; a < fh; ++a)
        for (int64_t b = 0; b < fw; ++b) s += v[size_t((y * fh + a) * sw + x * fw + b)];
      r[size_t(y * opt_.width + x)] = mask ? (s * inv >= 0.5f ? 1.0f : 0.0f) : s * inv;  // masks: majority
    }
  *h = opt_.height;
  *w = opt_.width;
  return r;
}

Example FrameSequenceDataset::get(int64_t i) const {
  const int64_t t0 = sequence_start(i);
  size_t idx = starts_[size_t(i)];
  std::vector<float> frames, masks;
  int64_t H = -1, W = -1;
  for (int64_t k = 0; k < opt_.seq_len; ++k) {
    // frames_ is sorted and the sequence is complete, so frame k is the next one at t0 + k*dt
    while (frames_[idx].first < t0 + k * opt_.interval_minutes) ++idx;
    const std::string& rel = frames_[idx].second;
    int64_t h, w;
    std::vector<float> f = load((fs::path(opt_.root) / rel).string(), false, &h, &w);
    if (H < 0) {
      H = h;
      W = w;
    }
    MEMEL_CHECK(h == H && w == W, "[frames] frame '", rel, "' is ", h, "x", w, " but the sequence starting ",
                minutes_to_string(t0), " has ", H, "x", W, " frames");
    frames.insert(frames.end(), f.begin(), f.end());
    if (!opt_.mask_root.empty()) {
      int64_t mh, mw;
      std::vector<float> m = load((fs::path(opt_.mask_root) / rel).string(), true, &mh, &mw);
      MEMEL_CHECK(mh == H && mw == W, "[frames] mask '", rel, "' is ", mh, "x", mw, ", its frame ", H, "x", W);
      masks.insert(masks.end(), m.begin(), m.end());
    }
  }
  Example ex;
  ex["frames"] = Tensor::from_vector(frames, {opt_.seq_len, 1, H, W});
  if (!opt_.mask_root.empty()) ex["mask"] = Tensor::from_vector(masks, {opt_.seq_len, 1, H, W});
  ex["start"] = Tensor::from_vector(std::vector<int64_t>{t0}, {});
  return ex;
}

}  // namespace memel
