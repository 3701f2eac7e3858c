#include "data/fashion_mnist.h"

#include <sys/stat.h>

#include "core/error.h"
#include "data/idx.h"

namespace memel {
namespace {

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// dir/name.gz, else dir/name; an error naming the expected file when neither exists.
std::string find_file(const std::string& dir, const std::string& name) {
  std::string base = dir.empty() ? name : (dir.back() == '/' ? dir + name : dir + "/" + name);
  if (is_file(base + ".gz")) return base + ".gz";
  if (is_file(base)) return base;
  MEMEL_FAIL("[fashion_mnist] missing ", base, ".gz (or ", name,
             " uncompressed); install the dataset with `apt-get install dataset-fashion-mnist` "
             "or pass the directory that holds the four IDX files");
}

}  // namespace

FashionMnist load_fashion_mnist(const std::string& dir, bool train) {
  std::string prefix = train ? "train" : "t10k";
  std::string img_path = find_file(dir, prefix + "-images-idx3-ubyte");
  std::string lbl_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  FashionMnist d;
  Tensor img = read_idx(img_path, DType::F32);  // (N, 28, 28) in [0, 255]
  d.labels = read_idx(lbl_path, DType::I64);    // (N)
  MEMEL_CHECK(img.dim() == 3 && img.size(1) == 28 && img.size(2) == 28, "[fashion_mnist] ", img_path,
              ": expected images (N, 28, 28), got ", shape_str(img.shape()));
  MEMEL_CHECK(d.labels.dim() == 1 && d.labels.size(0) == img.size(0), "[fashion_mnist] ", lbl_path,
              ": expected ", img.size(0), " labels, got shape ", shape_str(d.labels.shape()));
  float* p = img.data<float>();
  for (int64_t i = 0, n = img.numel(); i < n; ++i) p[i] *= 1.0f / 255.0f;
  d.images = img.as_strided({img.size(0), 1, 28, 28}, contiguous_strides({img.size(0), 1, 28, 28}), 0);
  const int64_t* l = d.labels.data<int64_t>();
  for (int64_t i = 0, n = d.labels.numel(); i < n; ++i)
    MEMEL_CHECK(l[i] >= 0 && l[i] < 10, "[fashion_mnist] ", lbl_path, ": label ", l[i], " at ", i,
                " is outside [0, 10)");
  return d;
}

std::shared_ptr<TensorDataset> fashion_mnist_dataset(const std::string& dir, bool train) {
  FashionMnist d = load_fashion_mnist(dir, train);
  return std::make_shared<TensorDataset>(std::map<std::string, Tensor>{{"image", d.images}, {"label", d.labels}});
}

}  // namespace memel
