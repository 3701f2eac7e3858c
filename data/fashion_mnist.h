#pragma once
// Fashion-MNIST (Xiao et al. 2017): 28x28 grey images of 10 clothing classes, 60000 for
// training and 10000 for testing, as four IDX files (gzip-compressed or not).
#include <memory>
#include <string>

#include "data/dataset.h"
#include "tensor/tensor.h"

namespace memel {

// Where Debian's dataset-fashion-mnist package puts the files.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct FashionMnist {
  Tensor images;  // (N, 1, 28, 28) F32 in [0, 1]
  Tensor labels;  // (N) I64 in [0, 10)
};

// Loads the training (train = true) or test split from `dir`, which holds
// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. A missing file is an error naming
// it and suggesting `apt-get install dataset-fashion-mnist`.
FashionMnist load_fashion_mnist(const std::string& dir = kFashionMnistDir, bool train = true);

// The same as a dataset with keys "image" (1, 28, 28) and "label" ().
std::shared_ptr<TensorDataset> fashion_mnist_dataset(const std::string& dir = kFashionMnistDir, bool train = true);

}  // namespace memel
