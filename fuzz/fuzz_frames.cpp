// Fuzz target: the frame-sequence index (data/frames.h): file names parsed with a name
// pattern, day lists and days files, masks, gaps, strides, frame probing and examples
// (PNG decode and box averaging).
//
// Input, one item per line:
//   line 1: the name pattern ("" = HKO-7's)
//   line 2: "interval seq_len stride height width check_frames" (integers, missing = default)
//   then:   "f PATH" a 2x2 grey PNG frame, "F PATH" a 4x4 one, "g PATH BYTES" a file
//           holding BYTES, "m PATH" a mask, "d DAY" an entry of `days`, "D LINE" a line
//           of the days file.
#include "fuzz_common.h"

#include <cstdlib>
#include <sstream>

#include <stb_image_write.h>

#include "data/frames.h"

using namespace memel;

namespace {

std::string png(int w, int h) {
  std::vector<unsigned char> px(static_cast<size_t>(w * h));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(37 * i);
  std::string out;
  stbi_write_png_to_func([](void* ctx, void* d, int n) { static_cast<std::string*>(ctx)->append(static_cast<char*>(d), n); },
                         &out, w, h, 1, px.data(), w);
  return out;
}

// A relative path inside the scratch tree, or "" when the line names none.
std::string safe_rel(std::string_view p) {
  std::string out;
  int depth = 0;
  while (!p.empty() && depth < 4) {
    const size_t s = p.find('/');
    std::string_view c = p.substr(0, s);
    p = s == std::string_view::npos ? std::string_view() : p.substr(s + 1);
    if (c.empty() || c == "." || c == ".." || c.size() > 100 || c.find('\0') != std::string_view::npos) continue;
    out += (out.empty() ? "" : "/") + std::string(c);
    ++depth;
  }
  return out;
}

void put(const std::string& root, const std::string& rel, std::string_view bytes) {
  const std::filesystem::path p = std::filesystem::path(root) / rel;
  std::error_code ec;
  std::filesystem::create_directories(p.parent_path(), ec);
  if (!ec && !std::filesystem::is_directory(p)) fuzz::write_bytes(p.string(), bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string png2 = png(2, 2), png4 = png(4, 4);
  const std::string base = fuzz::scratch_dir() + "/frames";
  std::filesystem::remove_all(base);
  const std::string root = base + "/root", masks = base + "/masks", days_file = base + "/days.txt";
  std::filesystem::create_directories(root);
  std::filesystem::create_directories(masks);

  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto next_line = [&]() {
    const size_t nl = in.find('\n');
    std::string_view l = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    return l;
  };
  FrameSequenceOptions o;
  o.root = root;
  const std::string_view pattern = next_line();
  if (!pattern.empty()) o.name_pattern = std::string(pattern);
  {
    std::istringstream nums{std::string(next_line())};
    long long v[6] = {6, 3, 1, 0, 0, 0};
    for (long long& x : v)
      if (!(nums >> x)) break;
    o.interval_minutes = v[0];
    o.seq_len = v[1];
    o.stride = v[2];
    o.height = v[3];
    o.width = v[4];
    o.check_frames = v[5] != 0;
  }
  std::string days_text;
  std::vector<std::string> names;
  int files = 0;
  while (!in.empty() && files < 64) {
    const std::string_view l = next_line();
    if (l.size() < 2 || l[1] != ' ') continue;
    const std::string_view arg = l.substr(2);
    switch (l[0]) {
      case 'f': case 'F': case 'm': {
        const std::string rel = safe_rel(arg);
        if (rel.empty()) break;
        put(l[0] == 'm' ? masks : root, rel, l[0] == 'F' ? png4 : png2);
        if (l[0] == 'm') o.mask_root = masks;
        names.push_back(std::filesystem::path(rel).filename().string());
        ++files;
        break;
      }
      case 'g': {
        const size_t sp = arg.find(' ');
        const std::string rel = safe_rel(arg.substr(0, sp));
        if (rel.empty()) break;
        put(root, rel, sp == std::string_view::npos ? std::string_view() : arg.substr(sp + 1));
        ++files;
        break;
      }
      case 'd': o.days.emplace_back(arg); break;
      case 'D': days_text.append(arg).append("\n"); o.days_file = days_file; break;
    }
  }
  if (!o.days_file.empty()) fuzz::write_bytes(days_file, days_text);

  for (const std::string& n : names) {
    int64_t t = 0;
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(parse_frame_time(n, o.name_pattern, &t));
  }
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS({
    FrameSequenceDataset ds(o);
    for (int64_t i = 0; i < std::min<int64_t>(ds.size(), 3); ++i) {
      (void)minutes_to_string(ds.sequence_start(i));
      MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(ds.get(i));
    }
  });
  return 0;
}
