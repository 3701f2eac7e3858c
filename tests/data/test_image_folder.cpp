// ImageFolder: a small folder of PNG and JPEG files written here with stb_image_write
// (Debian's libstb), plus a corrupt and a truncated file.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <stb_image_write.h>

#include "data/image_folder.h"

using namespace memel;
namespace fs = std::filesystem;

namespace {

// An (h, w) RGB image whose left half is `left` and right half `right`.
std::vector<unsigned char> halves(int h, int w, std::array<unsigned char, 3> left, std::array<unsigned char, 3> right) {
  std::vector<unsigned char> px(static_cast<size_t>(h * w * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) px[(y * w + x) * 3 + c] = x < w / 2 ? left[c] : right[c];
  return px;
}

// root/{cat,dog}/...: 3 PNG + 2 JPEG readable, dog/broken.jpg (garbage) and
// dog/truncated.png (valid header, data cut off).
std::string make_folder() {
  const std::string root = std::string(MEMEL_BINARY_DIR) + "/image_folder_test";
  fs::remove_all(root);
  fs::create_directories(root + "/cat");
  fs::create_directories(root + "/dog");
  fs::create_directories(root + "/zebra_empty_class_is_fine");
  auto a = halves(20, 30, {255, 0, 0}, {0, 0, 255});
  REQUIRE(stbi_write_png((root + "/cat/a.png").c_str(), 30, 20, 3, a.data(), 30 * 3));
  auto b = halves(16, 16, {10, 200, 30}, {10, 200, 30});
  REQUIRE(stbi_write_png((root + "/cat/b.PNG").c_str(), 16, 16, 3, b.data(), 16 * 3));
  REQUIRE(stbi_write_jpg((root + "/cat/c.jpg").c_str(), 16, 16, 3, b.data(), 95));
  auto d = halves(40, 24, {0, 0, 0}, {255, 255, 255});
  REQUIRE(stbi_write_png((root + "/dog/d.png").c_str(), 24, 40, 3, d.data(), 24 * 3));
  REQUIRE(stbi_write_jpg((root + "/dog/e.jpeg").c_str(), 24, 40, 3, d.data(), 90));
  std::ofstream(root + "/dog/broken.jpg") << "this is not an image at all";
  std::ofstream(root + "/dog/notes.txt") << "ignored: not an image extension";
  // A PNG whose header is intact but whose data stops early.
  std::ifstream src(root + "/dog/d.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(src)), std::istreambuf_iterator<char>());
  std::ofstream(root + "/dog/truncated.png", std::ios::binary) << bytes.substr(0, 60);
  return root;
}

std::vector<double> values(const Tensor& t) { return t.to_vector(); }

}  // namespace

TEST_CASE("image folder: classes, files, eval transform, errors naming the file") {
  const std::string root = make_folder();
  ImageFolderOptions o;
  o.image_size = 8;
  ImageFolder ds(root, o);
  CHECK(ds.classes() == std::vector<std::string>{"cat", "dog", "zebra_empty_class_is_fine"});
  REQUIRE(ds.size() == 7);  // 3 cat + 4 dog (broken.jpg and truncated.png included)
  CHECK(fs::path(ds.path(0)).filename() == "a.png");
  CHECK(fs::path(ds.path(1)).filename() == "b.PNG");
  CHECK(ds.label(2) == 0);
  CHECK(ds.label(3) == 1);

  Example ex = ds.get(1);  // uniform green 16x16
  CHECK(ex.at("image").shape() == Shape({3, 8, 8}));
  CHECK(ex.at("label").item() == 0);
  std::vector<double> v = values(ex.at("image"));
  const double g = (200 / 255.0 - 0.456) / 0.224;
  CHECK(std::abs(v[64] - g) < 1e-5);      // channel 1, pixel (0, 0)
  CHECK(std::abs(v[64 + 63] - g) < 1e-5);

  // a.png 20x30, left red / right blue: eval keeps the centre, red left, blue right.
  std::vector<double> a = values(ds.get(0).at("image"));
  const double red = (1.0 - 0.485) / 0.229, nored = (0.0 - 0.485) / 0.229;
  CHECK(std::abs(a[0] - red) < 1e-5);       // R at (0, 0)
  CHECK(std::abs(a[7] - nored) < 1e-5);     // R at (0, 7)

  // The corrupt file: a clear error naming it.
  int64_t broken = -1;
  for (int64_t i = 0; i < ds.size(); ++i)
    if (fs::path(ds.path(i)).filename() == "broken.jpg") broken = i;
  REQUIRE(broken >= 0);
  CHECK_THROWS_WITH_AS(ds.get(broken), doctest::Contains("broken.jpg"), Error);
  CHECK_THROWS_WITH_AS(ImageFolder(root + "/nope", o), doctest::Contains("not a directory"), Error);
  ImageFolderOptions bad = o;
  bad.mean = {0.5f};
  CHECK_THROWS_WITH_AS(ImageFolder(root, bad), doctest::Contains("one value per channel"), Error);
}

TEST_CASE("image folder: skip mode leaves out and replaces unreadable files, with warnings") {
  const std::string root = make_folder();
  ImageFolderOptions o;
  o.image_size = 8;
  o.skip_corrupt = true;
  std::ostringstream warn;
  o.warn = &warn;
  ImageFolder ds(root, o);
  // broken.jpg and truncated.png are left out by the scan, which makes every check of
  // decoding short of decoding itself (an image failing later is replaced: test_data_faults).
  CHECK(ds.size() == 5);
  REQUIRE(ds.skipped().size() == 2);
  CHECK(warn.str().find("broken.jpg") != std::string::npos);
  CHECK(warn.str().find("truncated.png") != std::string::npos);
  for (int64_t i = 0; i < ds.size(); ++i) CHECK(ds.get(i).at("image").shape() == Shape({3, 8, 8}));
  // A whole epoch through the loader works.
  DataLoaderOptions lo;
  lo.batch_size = 4;
  lo.num_workers = 2;
  DataLoader loader(std::make_shared<ImageFolder>(root, o), lo);
  Example b;
  int64_t seen = 0;
  while (loader.next(b)) seen += b.at("label").numel();
  CHECK(seen == 5);
}

TEST_CASE("image folder: train augmentation is keyed by (seed, epoch, index), not threads") {
  const std::string root = make_folder();
  ImageFolderOptions o;
  o.image_size = 12;
  o.train = true;
  o.skip_corrupt = true;
  std::ostringstream warn;
  o.warn = &warn;
  o.seed = 5;
  auto ds = std::make_shared<ImageFolder>(root, o);
  Tensor x0 = ds->get_at(0, 3).at("image"), x1 = ds->get_at(0, 3).at("image"), x2 = ds->get_at(0, 4).at("image");
  CHECK(values(x0) == values(x1));
  bool differs = false;
  for (int e = 4; e < 10 && !differs; ++e) differs = values(ds->get_at(0, e).at("image")) != values(x0);
  CHECK(differs);
  (void)x2;

  // Full-image crop with a forced flip mirrors a.png: blue on the left.
  ImageFolderOptions f = o;
  f.scale_min = f.scale_max = 1.0;
  f.ratio_min = f.ratio_max = 1.5;  // a.png is 30 x 20
  f.hflip = 1.0;
  ImageFolder flipped(root, f);
  std::vector<double> a = values(flipped.get_at(0, 0).at("image"));
  const double blue = (1.0 - 0.406) / 0.225;
  CHECK(std::abs(a[2 * 144 + 0] - blue) < 1e-5);  // B at (0, 0)

  // Same batches with 0 and 3 loader threads, two epochs, shuffled.
  auto run = [&](int workers) {
    DataLoaderOptions lo;
    lo.batch_size = 4;
    lo.num_workers = workers;
    lo.seed = 11;
    DataLoader loader(ds, lo);
    std::vector<double> all;
    for (int e = 0; e < 2; ++e) {
      Example b;
      while (loader.next(b)) {
        auto v = values(b.at("image"));
        all.insert(all.end(), v.begin(), v.end());
      }
    }
    return all;
  };
  CHECK(run(0) == run(3));
}

TEST_CASE("image folder: grey decoding and resampling") {
  const std::string root = make_folder();
  ImageFolderOptions o;
  o.image_size = 4;
  o.channels = 1;
  o.mean = {0.0f};
  o.std = {1.0f};
  ImageFolder ds(root, o);
  Tensor t = ds.get(1).at("image");  // green (10, 200, 30) -> grey luma
  CHECK(t.shape() == Shape({1, 4, 4}));
  const double yv = t.to_vector()[0];
  CHECK(yv > 0.4);
  CHECK(yv < 0.7);

  Image img;
  img.h = 1;
  img.w = 2;
  img.c = 1;
  img.data = {0.0f, 1.0f};
  Image up = resample(img, 0, 0, 1, 2, 1, 4);  // sample points -0.25, 0.25, 0.75, 1.25 -> clamp
  CHECK(up.data == std::vector<float>{0.0f, 0.25f, 0.75f, 1.0f});
  Image fl = resample(img, 0, 0, 1, 2, 1, 4, true);
  CHECK(fl.data == std::vector<float>{1.0f, 0.75f, 0.25f, 0.0f});
}
