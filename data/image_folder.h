#pragma once
// Image classification folders in the ImageNet layout, root/<class name>/<image>, decoded
// with stb_image (JPEG, PNG; Debian's libstb), with the usual augmentation:
//
//   train: random resized crop (area fraction in [scale_min, scale_max] of the image,
//          aspect ratio log-uniform in [ratio_min, ratio_max], 10 tries then a centre
//          crop, as torchvision's RandomResizedCrop), bilinear resize to image_size,
//          horizontal flip with probability hflip, normalise (x - mean) / std
//   eval:  resize the shorter side to image_size / crop_pct (0.875: 224 -> 256), centre
//          crop image_size, normalise
//
// Resizing samples the source bilinearly at pixel centres (align_corners = false) with
// no antialiasing filter, in one pass from the crop box.
//
// Classes are the sub-directories of root sorted by name (label = index); images are the
// files with a listed extension (case-insensitive) sorted by path. Examples: "image"
// (channels, image_size, image_size) F32 and "label" () I64.
//
// Random augmentation of example i in epoch e draws from a memel::Generator seeded by
// (seed, e, i) only, so batches are the same whatever the number of loader threads; the
// DataLoader passes the epoch through get_batch_at_epoch(). get(i) is epoch 0.
//
// Unreadable images: by default get() throws an error naming the file. With
// skip_corrupt, the constructor checks every file's header (stbi_info) and leaves out
// the bad ones with one warning listing them (written to `warn`, std::cerr when null),
// and a file that still fails to decode later is replaced by the next readable example
// (i + 1, i + 2, ...), with a warning naming it.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace memel {

struct ImageFolderOptions {
  int64_t image_size = 224;
  bool train = false;
  double crop_pct = 0.875;                 // eval resize: shorter side = image_size / crop_pct
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double hflip = 0.5;                      // train only
  int64_t channels = 3;                    // 3 (RGB) or 1 (grey); images are converted
  std::vector<float> mean = {0.485f, 0.456f, 0.406f};  // per channel (one value for grey)
  std::vector<float> std = {0.229f, 0.224f, 0.225f};
  bool skip_corrupt = false;
  uint64_t seed = 0;
  std::vector<std::string> extensions = {".jpg", ".jpeg", ".png"};
  std::ostream* warn = nullptr;            // warnings (skip_corrupt); std::cerr when null
  int64_t max_pixels = int64_t(1) << 26;   // larger images are refused before decoding (data/image_check.h)
};

// A decoded image: (h, w, c) values in [0, 1], row-major, channels last.
struct Image {
  int64_t h = 0, w = 0, c = 0;
  std::vector<float> data;
};

// Decodes a file with stb_image into `channels` channels; throws naming the file and
// stb's reason when it cannot.
// Only PNG and JPEG data within `max_pixels` pixels is decoded (data/image_check.h).
Image decode_image(const std::string& path, int64_t channels, int64_t max_pixels = int64_t(1) << 26);
// The same from bytes in memory (for tests and fuzzing); `what` names the source in errors.
Image decode_image_from_memory(const unsigned char* bytes, size_t size, int64_t channels,
                               const std::string& what = "<memory>", int64_t max_pixels = int64_t(1) << 26);

// Bilinear sampling of the box (y0, x0, bh, bw) (source pixels, continuous) into an
// (out_h, out_w) image: out(y, x) = src(y0 + (y + 0.5) * bh / out_h - 0.5, ...), edges
// clamped. Mirrors horizontally when flip.
Image resample(const Image& src, double y0, double x0, double bh, double bw, int64_t out_h, int64_t out_w,
               bool flip = false);

class ImageFolder : public Dataset {
 public:
  ImageFolder(const std::string& root, ImageFolderOptions options);

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  Example get(int64_t i) const override { return get_at(i, 0); }
  Example get_batch_at_epoch(const std::vector<int64_t>& indices, int64_t epoch) const override;
  // Example i with the augmentation of epoch `epoch`.
  Example get_at(int64_t i, int64_t epoch) const;

  const std::vector<std::string>& classes() const { return classes_; }
  const std::string& path(int64_t i) const { return files_.at(static_cast<size_t>(i)); }
  int64_t label(int64_t i) const { return labels_.at(static_cast<size_t>(i)); }
  // Files left out by the skip_corrupt header check.
  const std::vector<std::string>& skipped() const { return skipped_; }
  const ImageFolderOptions& options() const { return opt_; }

 private:
  Example make(int64_t i, int64_t epoch) const;  // throws on a bad file

  std::string root_;
  ImageFolderOptions opt_;
  std::vector<std::string> classes_, files_, skipped_;
  std::vector<int64_t> labels_;
};

}  // namespace memel
