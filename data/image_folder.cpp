#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include <stb_image.h>  // implementation in Debian's libstb

#include "core/error.h"
#include "core/rng.h"
#include "data/image_check.h"

namespace fs = std::filesystem;

namespace memel {
namespace {

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MEMEL_CHECK(f.good(), "[image] cannot open '", path, "'");
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// SplitMix64 step: decorrelates (seed, epoch, index) into one generator seed.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

Image decode_image(const std::string& path, int64_t channels, int64_t max_pixels) {
  MEMEL_CHECK(channels == 1 || channels == 3, "[image] channels must be 1 or 3, got ", channels);
  std::vector<unsigned char> bytes = read_bytes(path);
  return decode_image_from_memory(bytes.data(), bytes.size(), channels, path, max_pixels);
}

Image decode_image_from_memory(const unsigned char* bytes, size_t size, int64_t channels, const std::string& what,
                               int64_t max_pixels) {
  MEMEL_CHECK(channels == 1 || channels == 3, "[image] channels must be 1 or 3, got ", channels);
  MEMEL_CHECK(size > 0, "[image] '", what, "' is empty");
  check_image_bytes(bytes, size, what, max_pixels);
  int w = 0, h = 0, c = 0;
  std::unique_ptr<unsigned char, void (*)(void*)> px(
      stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &c, static_cast<int>(channels)), stbi_image_free);
  MEMEL_CHECK(px != nullptr, "[image] cannot decode '", what, "': ", stbi_failure_reason());
  Image img;
  img.h = h;
  img.w = w;
  img.c = channels;
  const size_t n = static_cast<size_t>(h) * w * channels;
  img.data.resize(n);
  for (size_t k = 0; k < n; ++k) img.data[k] = px.get()[k] * (1.0f / 255.0f);
  return img;
}

Image resample(const Image& src, double y0, double x0, double bh, double bw, int64_t out_h, int64_t out_w,
               bool flip) {
  MEMEL_CHECK(src.h > 0 && src.w > 0 && out_h > 0 && out_w > 0 && bh > 0 && bw > 0,
              "[image] resample needs a non-empty source, box and output");
  Image out;
  out.h = out_h;
  out.w = out_w;
  out.c = src.c;
  out.data.resize(static_cast<size_t>(out_h * out_w * src.c));
  // Per output column: the two source columns and the weight of the second.
  std::vector<int64_t> xa(out_w), xb(out_w);
  std::vector<float> xf(out_w);
  for (int64_t x = 0; x < out_w; ++x) {
    double sx = x0 + (x + 0.5) * bw / out_w - 0.5;
    sx = std::min(std::max(sx, 0.0), static_cast<double>(src.w - 1));
    xa[x] = static_cast<int64_t>(std::floor(sx));
    xb[x] = std::min(xa[x] + 1, src.w - 1);
    xf[x] = static_cast<float>(sx - xa[x]);
  }
  const int64_t C = src.c;
  for (int64_t y = 0; y < out_h; ++y) {
    double sy = y0 + (y + 0.5) * bh / out_h - 0.5;
    sy = std::min(std::max(sy, 0.0), static_cast<double>(src.h - 1));
    const int64_t ya = static_cast<int64_t>(std::floor(sy)), yb = std::min(ya + 1, src.h - 1);
    const float fy = static_cast<float>(sy - ya);
    const float* ra = src.data.data() + ya * src.w * C;
    const float* rb = src.data.data() + yb * src.w * C;
    float* o = out.data.data() + y * out_w * C;
    for (int64_t x = 0; x < out_w; ++x) {
      const int64_t ox = flip ? out_w - 1 - x : x;
      for (int64_t c = 0; c < C; ++c) {
        const float top = ra[xa[x] * C + c] + xf[x] * (ra[xb[x] * C + c] - ra[xa[x] * C + c]);
        const float bot = rb[xa[x] * C + c] + xf[x] * (rb[xb[x] * C + c] - rb[xa[x] * C + c]);
        o[ox * C + c] = top + fy * (bot - top);
      }
    }
  }
  return out;
}

ImageFolder::ImageFolder(const std::string& root, ImageFolderOptions options) : root_(root), opt_(std::move(options)) {
  const char* w = "[ImageFolder]";
  MEMEL_CHECK(opt_.image_size > 0, w, " image_size must be positive, got ", opt_.image_size);
  MEMEL_CHECK(opt_.channels == 1 || opt_.channels == 3, w, " channels must be 1 or 3, got ", opt_.channels);
  MEMEL_CHECK(opt_.mean.size() == static_cast<size_t>(opt_.channels) &&
                  opt_.std.size() == static_cast<size_t>(opt_.channels),
              w, " mean and std need one value per channel (", opt_.channels, "), got ", opt_.mean.size(), " and ",
              opt_.std.size());
  for (float s : opt_.std) MEMEL_CHECK(s > 0, w, " std values must be positive, got ", s);
  MEMEL_CHECK(opt_.crop_pct > 0 && opt_.crop_pct <= 1, w, " crop_pct must be in (0, 1], got ", opt_.crop_pct);
  MEMEL_CHECK(opt_.scale_min > 0 && opt_.scale_min <= opt_.scale_max && opt_.scale_max <= 1, w,
              " crop scale must satisfy 0 < min <= max <= 1, got (", opt_.scale_min, ", ", opt_.scale_max, ")");
  MEMEL_CHECK(opt_.ratio_min > 0 && opt_.ratio_min <= opt_.ratio_max, w, " crop ratio must satisfy 0 < min <= max, got (",
              opt_.ratio_min, ", ", opt_.ratio_max, ")");
  std::error_code ec;
  MEMEL_CHECK(fs::is_directory(root, ec), w, " '", root, "' is not a directory");

  std::vector<std::string> exts;
  for (auto& e : opt_.extensions) exts.push_back(lower(e));
  for (auto& entry : fs::directory_iterator(root))
    if (entry.is_directory()) classes_.push_back(entry.path().filename().string());
  std::sort(classes_.begin(), classes_.end());
  MEMEL_CHECK(!classes_.empty(), w, " '", root, "' has no class sub-directories (expected root/<class>/<image>)");
  for (size_t k = 0; k < classes_.size(); ++k) {
    std::vector<std::string> paths;
    for (auto& entry : fs::recursive_directory_iterator(fs::path(root) / classes_[k])) {
      if (!entry.is_regular_file()) continue;
      const std::string ext = lower(entry.path().extension().string());
      if (std::find(exts.begin(), exts.end(), ext) != exts.end()) paths.push_back(entry.path().string());
    }
    std::sort(paths.begin(), paths.end());
    for (auto& p : paths) {
      if (opt_.skip_corrupt) {
        // Every check decoding makes short of decoding itself: readable, a PNG or JPEG
        // that passes data/image_check.h, a header stb_image understands.
        bool ok = false;
        try {
          const std::vector<unsigned char> bytes = read_bytes(p);
          check_image_bytes(bytes.data(), bytes.size(), p, opt_.max_pixels);
          int iw = 0, ih = 0, ic = 0;
          ok = stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &iw, &ih, &ic) == 1 && iw > 0 && ih > 0;
        } catch (const Error&) {
        }
        if (!ok) {
          skipped_.push_back(p);
          continue;
        }
      }
      files_.push_back(p);
      labels_.push_back(static_cast<int64_t>(k));
    }
  }
  if (!skipped_.empty()) {
    std::ostream& os = opt_.warn ? *opt_.warn : std::cerr;
    os << "[ImageFolder] warning: skipping " << skipped_.size() << " unreadable image(s) under '" << root << "':";
    for (auto& p : skipped_) os << " " << p;
    os << "\n";
  }
  MEMEL_CHECK(!files_.empty(), w, " no images under '", root, "' (extensions .jpg .jpeg .png)");
}

Example ImageFolder::make(int64_t i, int64_t epoch) const {
  const std::string& p = files_[static_cast<size_t>(i)];
  Image img = decode_image(p, opt_.channels, opt_.max_pixels);
  const int64_t S = opt_.image_size;
  Image out;
  if (opt_.train) {
    // RandomResizedCrop box, as torchvision: 10 tries, then a centre crop with the ratio
    // clamped to [ratio_min, ratio_max].
    Generator g(mix(mix(opt_.seed ^ 0x5157494E494D4721ull) + static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(i));
    const double H = static_cast<double>(img.h), W = static_cast<double>(img.w), area = H * W;
    const double lr0 = std::log(opt_.ratio_min), lr1 = std::log(opt_.ratio_max);
    double by = 0, bx = 0, bh = H, bw = W;
    bool found = false;
    for (int t = 0; t < 10 && !found; ++t) {
      const double target = area * (opt_.scale_min + (opt_.scale_max - opt_.scale_min) * g.uniform());
      const double ratio = std::exp(lr0 + (lr1 - lr0) * g.uniform());
      const int64_t cw = std::llround(std::sqrt(target * ratio)), ch = std::llround(std::sqrt(target / ratio));
      if (cw > 0 && ch > 0 && cw <= img.w && ch <= img.h) {
        by = static_cast<double>(g.randint(0, img.h - ch + 1));
        bx = static_cast<double>(g.randint(0, img.w - cw + 1));
        bh = static_cast<double>(ch);
        bw = static_cast<double>(cw);
        found = true;
      }
    }
    if (!found) {
      const double r = W / H;
      if (r < opt_.ratio_min) {
        bw = W;
        bh = std::round(W / opt_.ratio_min);
      } else if (r > opt_.ratio_max) {
        bh = H;
        bw = std::round(H * opt_.ratio_max);
      }
      by = std::floor((H - bh) / 2);
      bx = std::floor((W - bw) / 2);
    }
    const bool flip = g.uniform() < opt_.hflip;
    out = resample(img, by, bx, bh, bw, S, S, flip);
  } else {
    // Resize the shorter side to S / crop_pct, then a centre crop of S.
    const int64_t R = static_cast<int64_t>(static_cast<double>(S) / opt_.crop_pct);
    int64_t rh, rw;
    if (img.h <= img.w) {
      rh = R;
      rw = static_cast<int64_t>(static_cast<double>(R) * img.w / img.h);
    } else {
      rw = R;
      rh = static_cast<int64_t>(static_cast<double>(R) * img.h / img.w);
    }
    rh = std::max(rh, S);
    rw = std::max(rw, S);
    // Python round() (half to even), as torchvision's CenterCrop.
    const double top = std::nearbyint((rh - S) / 2.0), left = std::nearbyint((rw - S) / 2.0);
    const double fy = static_cast<double>(img.h) / rh, fx = static_cast<double>(img.w) / rw;
    out = resample(img, top * fy, left * fx, S * fy, S * fx, S, S, false);
  }
  // (S, S, C) in [0, 1] -> (C, S, S) normalised
  const int64_t C = opt_.channels;
  Tensor t = Tensor::empty({C, S, S});
  float* dst = t.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    const float m = opt_.mean[static_cast<size_t>(c)], inv = 1.0f / opt_.std[static_cast<size_t>(c)];
    for (int64_t k = 0; k < S * S; ++k) dst[c * S * S + k] = (out.data[static_cast<size_t>(k * C + c)] - m) * inv;
  }
  return {{"image", t}, {"label", Tensor::from_vector(std::vector<int64_t>{labels_[static_cast<size_t>(i)]}, {})}};
}

Example ImageFolder::get_at(int64_t i, int64_t epoch) const {
  MEMEL_CHECK(i >= 0 && i < size(), "[ImageFolder] index ", i, " out of range [0, ", size(), ")");
  if (!opt_.skip_corrupt) return make(i, epoch);
  for (int64_t k = 0; k < size(); ++k) {
    const int64_t j = (i + k) % size();
    try {
      return make(j, epoch);
    } catch (const Error& e) {
      std::ostream& os = opt_.warn ? *opt_.warn : std::cerr;
      os << "[ImageFolder] warning: skipping unreadable image: " << e.what() << "\n";
    }
  }
  MEMEL_FAIL("[ImageFolder] no readable image under '", root_, "'");
}

Example ImageFolder::get_batch_at_epoch(const std::vector<int64_t>& indices, int64_t epoch) const {
  std::vector<Example> ex;
  ex.reserve(indices.size());
  for (int64_t i : indices) ex.push_back(get_at(i, epoch));
  return collate(ex);
}

}  // namespace memel
