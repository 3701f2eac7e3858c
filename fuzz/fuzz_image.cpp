// Fuzz target: the image decode path (data/image_folder.h): stb_image decoding of PNG
// and JPEG bytes into 1 or 3 channels, and an ImageFolder example (decode, random
// resized crop or eval resize, bilinear resampling, normalisation) with and without the
// skip_corrupt header check.
#include "fuzz_common.h"

#include <ostream>
#include <streambuf>

#include "data/image_folder.h"

using namespace memel;

namespace {
struct NullBuf : std::streambuf {
  int overflow(int c) override { return c; }
};
NullBuf null_buf;
std::ostream null_stream(&null_buf);
}  // namespace

// A lower pixel limit than the library's (2^26) keeps each input fast under the
// sanitizers: a few hundred JPEG bytes can declare millions of pixels (see image_check.h).
constexpr int64_t kMaxPixels = int64_t(1) << 20;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (int64_t channels : {1, 3})
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(decode_image_from_memory(data, size, channels, "<fuzz>", kMaxPixels));

  static const std::string root = [] {
    const std::string r = fuzz::scratch_dir() + "/images";
    std::filesystem::create_directories(r + "/a");
    return r;
  }();
  fuzz::write_bytes(root + "/a/x.png", std::string_view(reinterpret_cast<const char*>(data), size));
  for (int variant = 0; variant < 2; ++variant) {
    ImageFolderOptions o;
    o.image_size = 8;
    o.train = variant == 0;
    o.skip_corrupt = variant == 1;
    o.channels = variant == 0 ? 3 : 1;
    if (o.channels == 1) o.mean = {0.5f}, o.std = {0.25f};
    o.warn = &null_stream;
    o.max_pixels = kMaxPixels;
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS({
      ImageFolder f(root, o);
      f.get_at(0, 1);
    });
  }
  return 0;
}
