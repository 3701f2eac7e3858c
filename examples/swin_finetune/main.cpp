// Fine-tunes a pretrained Swin Transformer with memel layers at the paper's placement:
// the checkpoint's body is kept, a new head is made for the new classes, and reverse
// deactivation acts during fine-tuning.
//
//   swin_finetune [steps] [fashion-mnist dir] [checkpoint.safetensors]
//
// The task: Fashion-MNIST classes 6-9 (shirt, sneaker, bag, ankle boot). The checkpoint:
// a Swin for 28x28 grey images (any file load_pretrained_swin reads: ours, timm,
// torchvision). Without one, the example first makes its own: it trains the
// "swin-fmnist" preset on classes 0-5 for `steps` steps and saves it with
// save_swin_weights (swin_pretrained.safetensors), standing in for a published checkpoint.
// For ImageNet-sized timm checkpoints, memel-train's configs/imagenet-swin-t-finetune-memel.json
// does the same with an image folder.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "data/fashion_mnist.h"
#include "memel/dump.h"
#include "memel/inspect.h"
#include "memel/layer.h"
#include "models/pretrained.h"
#include "optim/adamw.h"

using namespace memel;

namespace {

// The images and labels of classes [first, end), labels shifted to [0, end - first); at
// most `limit` examples.
std::map<std::string, Tensor> classes_from(const FashionMnist& d, int64_t first, int64_t end, int64_t limit) {
  const std::vector<double> labels = d.labels.to_vector();
  const std::vector<double> pixels = d.images.to_vector();
  std::vector<float> x;
  std::vector<int64_t> y;
  for (size_t i = 0; i < labels.size() && static_cast<int64_t>(y.size()) < limit; ++i) {
    const int64_t l = static_cast<int64_t>(labels[i]);
    if (l < first || l >= end) continue;
    x.insert(x.end(), pixels.begin() + static_cast<std::ptrdiff_t>(i * 784),
             pixels.begin() + static_cast<std::ptrdiff_t>((i + 1) * 784));
    y.push_back(l - first);
  }
  const int64_t n = static_cast<int64_t>(y.size());
  return {{"image", Tensor::from_vector(x, {n, 1, 28, 28})}, {"label", Tensor::from_vector(y, {n})}};
}

// `steps` AdamW steps over `data` (batches of 32, reshuffled each epoch); returns the last loss.
double train(SwinTransformer& model, const std::map<std::string, Tensor>& data, int steps, double lr) {
  model.train();
  AdamW opt(param_groups_with_decay(model, 0.05), AdamWOptions{lr, 0.9, 0.999, 1e-8, 0.05, false});
  DataLoaderOptions lo;
  lo.batch_size = 32;
  lo.drop_last = true;
  DataLoader loader(std::make_shared<TensorDataset>(data), lo);
  double last = 0;
  for (int s = 0; s < steps; ++s) {
    Example b = loader.next_batch();
    Tensor loss = cross_entropy(model(b.at("image")), b.at("label"));
    backward(loss);
    opt.step();
    opt.zero_grad();
    last = loss.item();
  }
  return last;
}

double accuracy(SwinTransformer& model, const std::map<std::string, Tensor>& data) {
  model.eval();
  NoGradGuard ng;
  Tensor pred = argmax(model(data.at("image")), 1);
  return mean(eq(pred, data.at("label")).to_dtype(DType::F32)).item();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 200;
    const std::string dir = argc > 2 ? argv[2] : kFashionMnistDir;
    std::string checkpoint = argc > 3 ? argv[3] : "";
    manual_seed(0);
    const FashionMnist train_set = load_fashion_mnist(dir, true), test_set = load_fashion_mnist(dir, false);
    if (checkpoint.empty()) {
      SwinConfig c = SwinConfig::preset("swin-fmnist");
      c.num_classes = 6;
      SwinTransformer base(c);
      const double loss = train(base, classes_from(train_set, 0, 6, 4000), steps, 7e-4);
      checkpoint = "swin_pretrained.safetensors";
      save_swin_weights(base, checkpoint);
      std::printf("made %s: swin-fmnist trained %d steps on classes 0-5 (last loss %.4f)\n", checkpoint.c_str(),
                  steps, loss);
    }
    // The pretrained body with a fresh 4-class head (reported on stdout), memel at the
    // paper's placement for Swin (the model publishes it), then fine-tuning.
    SwinPretrainedOptions po;
    po.num_classes = 4;
    po.log = &std::cout;
    auto model = load_pretrained_swin(checkpoint, po);
    const std::vector<std::string> layers = attach_memel(*model, MemelOptions{});
    std::printf("memel layers: %zu (first %s)\n", layers.size(), layers.front().c_str());
    const auto tune = classes_from(train_set, 6, 10, 4000), test = classes_from(test_set, 6, 10, 1000);
    std::printf("before fine-tuning: test accuracy %.4f (chance 0.25)\n", accuracy(*model, test));
    const double loss = train(*model, tune, steps, 2e-4);
    std::printf("fine-tuned %d steps on classes 6-9: last loss %.4f, test accuracy %.4f\n", steps, loss,
                accuracy(*model, test));
    std::printf("%s", format_dump_summary(collect_memel_dump(*model, steps)).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swin_finetune: %s\n", e.what());
    return 1;
  }
  return 0;
}
