// memel-train's image-classification task on an image folder in the ImageNet layout (PNG
// and JPEG files the test writes): trains, evaluates, and reports config errors by key.
#include <doctest/doctest.h>

#include <filesystem>

#include <stb_image_write.h>

#include "train_support.h"

using namespace memel::train_test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// root/{train,val}/{dark,light}/*: 20x24 RGB images, dark or light with noise.
fs::path write_folder() {
  const fs::path root = fs::path(MEMEL_BINARY_DIR) / "test_image_folder_train";
  fs::remove_all(root);
  uint32_t state = 7;
  auto noise = [&] {
    state = state * 1664525u + 1013904223u;
    return int(state >> 27);  // 0..31
  };
  for (const char* split : {"train", "val"})
    for (int cls = 0; cls < 2; ++cls) {
      const fs::path dir = root / split / (cls ? "light" : "dark");
      fs::create_directories(dir);
      for (int i = 0; i < (split[0] == 't' ? 12 : 6); ++i) {
        const int w = 24, h = 20;
        std::vector<uint8_t> px(size_t(w * h * 3));
        for (auto& v : px) v = uint8_t((cls ? 180 : 40) + noise());
        const std::string p = (dir / ("img" + std::to_string(i))).string();
        if (i % 2)
          REQUIRE(stbi_write_png((p + ".png").c_str(), w, h, 3, px.data(), w * 3) != 0);
        else
          REQUIRE(stbi_write_jpg((p + ".jpg").c_str(), w, h, 3, px.data(), 90) != 0);
      }
    }
  return root;
}

json folder_config(const fs::path& root) {
  return json{{"task", "image-classification"},
              {"seed", 1},
              {"threads", 1},
              {"model", {{"name", "mlp"}, {"config", {{"in_features", 3 * 16 * 16}, {"hidden", {32}}, {"num_classes", 2}}}}},
              {"data",
               {{"dataset", "image-folder"},
                {"dir", root.string()},
                {"options", {{"image_size", 16}, {"scale_min", 0.5}}}}},
              {"optimizer", {{"type", "adamw"}, {"lr", 3e-3}}},
              {"train", {{"epochs", 6}, {"batch_size", 8}, {"log_every", 1}}},
              {"memel", {{"at", "paper"}, {"mode", "rd"}, {"warmup", 1}}}};
}

}  // namespace

TEST_CASE("memel-train image-classification: an ImageNet-layout folder trains and evaluates") {
  const std::string out = train_ok("folder_train", folder_config(write_folder()));
  std::vector<json> ev = metric_lines(out + "/metrics.jsonl", "eval");
  REQUIRE(!ev.empty());
  // Dark against light is separable: the last evaluation on the 12 val images is perfect.
  CHECK(ev.back()["accuracy"].get<double>() == 1.0);
}

TEST_CASE("memel-train image-classification: image-folder config errors name the key") {
  const fs::path root = write_folder();
  json c = folder_config(root);
  c["data"]["options"]["img_size"] = 16;
  check_config_error("folder_bad1", c, "data.options.img_size: unknown option of the image-folder dataset");
  c = folder_config(root);
  c["data"]["options"]["mean"] = {0.5, 0.5};
  check_config_error("folder_bad2", c, "data.options.mean and .std need one value per channel (3)");
  c = folder_config(root);
  c["data"]["options"]["eval_dir"] = "missing";
  check_config_error("folder_bad3", c, "missing");
}

TEST_CASE("memel-train image-classification: the dataset's classes must match the model's head") {
  // 2 class folders against a 3-output head: trained silently before (issue 23).
  const fs::path root = write_folder();
  json c = folder_config(root);
  c["model"]["config"]["num_classes"] = 3;
  check_config_error("folder_classes", c,
                     "[data] the image folder " + root.string() +
                         "/train has 2 classes but the model's head has 3 outputs; set model.config.num_classes to 2");
  // Fashion-MNIST has 10 classes (checked before the files are read).
  c = json{{"task", "image-classification"},
           {"model", {{"name", "mlp"}, {"config", {{"num_classes", 5}}}}},
           {"data", {{"dir", "/nonexistent/fmnist"}}}};
  check_config_error("fmnist_classes", c,
                     "[data] the fashion-mnist dataset in /nonexistent/fmnist has 10 classes but the model's head "
                     "has 5 outputs; set model.config.num_classes to 10");
}
