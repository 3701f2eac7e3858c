// Data files removed while a loader is running (docs/hardening.md): the error reaches the
// training loop through the prefetching workers and names the file; with skip_corrupt the
// epoch goes on without it.
#include <doctest/doctest.h>

#include <filesystem>
#include <sstream>

#include <stb_image_write.h>

#include "data/dataset.h"
#include "data/frames.h"
#include "data/image_folder.h"

using namespace memel;
namespace fs = std::filesystem;

namespace {

// root/{a,b}/img<i>.png: 8 small images, 4 per class.
std::string image_tree(const std::string& name) {
  const std::string root = std::string(MEMEL_BINARY_DIR) + "/" + name;
  fs::remove_all(root);
  std::vector<unsigned char> px(6 * 5 * 3);
  for (int i = 0; i < 8; ++i) {
    const std::string dir = root + (i < 4 ? "/a" : "/b");
    fs::create_directories(dir);
    for (size_t k = 0; k < px.size(); ++k) px[k] = static_cast<unsigned char>(k * 7 + i * 31);
    REQUIRE(stbi_write_png((dir + "/img" + std::to_string(i) + ".png").c_str(), 6, 5, 3, px.data(), 6 * 3));
  }
  return root;
}

std::string error_of_epoch(DataLoader& loader, int64_t* batches) {
  Example b;
  try {
    while (loader.next(b)) ++*batches;
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Batches of 2 in order, built by 2 worker threads, one batch prefetched each.
DataLoader worker_loader(const std::string& root, const ImageFolderOptions& o) {
  DataLoaderOptions lo;
  lo.batch_size = 2;
  lo.shuffle = false;
  lo.num_workers = 2;
  lo.prefetch = 1;
  return DataLoader(std::make_shared<ImageFolder>(root, o), lo);
}

}  // namespace

TEST_CASE("data faults: an image removed mid-epoch is an error naming it, through the loader's workers") {
  const std::string root = image_tree("faults_images");
  ImageFolderOptions o;
  o.image_size = 4;
  DataLoader loader = worker_loader(root, o);
  Example b;
  REQUIRE(loader.next(b));  // batch 0 built; workers may be ahead by a batch or two
  fs::remove(root + "/b/img7.png");
  int64_t batches = 1;
  const std::string err = error_of_epoch(loader, &batches);
  CHECK(err.find(root + "/b/img7.png") != std::string::npos);
  CHECK(batches == 3);  // batches 0-2 fine; batch 3 holds the removed image
}

TEST_CASE("data faults: with skip_corrupt a removed image is replaced and named in a warning") {
  const std::string root = image_tree("faults_images_skip");
  ImageFolderOptions o;
  o.image_size = 4;
  o.skip_corrupt = true;
  std::ostringstream warn;
  o.warn = &warn;
  DataLoader loader = worker_loader(root, o);
  Example b;
  REQUIRE(loader.next(b));
  fs::remove(root + "/b/img7.png");
  int64_t batches = 1;
  CHECK(error_of_epoch(loader, &batches).empty());
  CHECK(batches == 4);
  CHECK(warn.str().find("img7.png") != std::string::npos);
}

TEST_CASE("data faults: a frame removed after indexing fails get() naming it") {
  const fs::path root = fs::path(MEMEL_BINARY_DIR) / "faults_frames";
  fs::remove_all(root);
  fs::create_directories(root);
  std::vector<unsigned char> px(4 * 4, 9);
  for (int m = 0; m < 4; ++m) {
    char name[64];
    std::snprintf(name, sizeof name, "RAD10060210%02d00.png", m * 6);
    REQUIRE(stbi_write_png((root / name).string().c_str(), 4, 4, 1, px.data(), 4));
  }
  FrameSequenceOptions o;
  o.root = root.string();
  o.seq_len = 2;
  auto ds = std::make_shared<FrameSequenceDataset>(o);
  REQUIRE(ds->size() == 3);
  fs::remove(root / "RAD100602101200.png");
  CHECK_NOTHROW(ds->get(0));
  CHECK_THROWS_WITH_AS(ds->get(1), doctest::Contains("RAD100602101200.png"), Error);
  DataLoaderOptions lo;
  lo.batch_size = 1;
  lo.shuffle = false;
  lo.num_workers = 1;
  DataLoader loader(ds, lo);
  int64_t batches = 0;
  CHECK(error_of_epoch(loader, &batches).find("RAD100602101200.png") != std::string::npos);
  CHECK(batches == 1);
}
