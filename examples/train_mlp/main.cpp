// Trains an MLP on Fashion-MNIST with a memel layer (reverse deactivation) on its middle
// activation, then prints the test accuracy and the layer's statistics summary.
//   train_mlp [epochs] [fashion-mnist dir]
#include <cstdio>
#include <string>

#include "data/fashion_mnist.h"
#include "memel/dump.h"
#include "memel/inspect.h"
#include "memel/layer.h"
#include "models/small.h"
#include "optim/adamw.h"

using namespace memel;

int main(int argc, char** argv) {
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 1;
  const std::string dir = argc > 2 ? argv[2] : kFashionMnistDir;
  manual_seed(0);
  auto model = std::make_shared<MLP>(MLPConfig{});
  MemelOptions mo;  // defaults: rd, top-1 per sample, warm-up 10 batches
  attach_memel(*model, mo, model->paper_memel_targets());
  AdamW opt(param_groups_with_decay(*model, 0.01), AdamWOptions{});
  DataLoaderOptions lo;
  lo.batch_size = 128;
  DataLoader train(fashion_mnist_dataset(dir, true), lo);
  auto test = load_fashion_mnist(dir, false);
  for (int e = 0; e < epochs; ++e) {
    model->train();
    Example b;
    while (train.next(b)) {
      Tensor loss = cross_entropy((*model)(b.at("image")), b.at("label"));
      backward(loss);
      opt.step();
      opt.zero_grad();
    }
    model->eval();
    NoGradGuard ng;
    Tensor pred = argmax((*model)(test.images), 1);
    const double acc = mean(eq(pred, test.labels).to_dtype(DType::F32)).item();
    std::printf("epoch %d: test accuracy %.4f\n", e + 1, acc);
  }
  std::printf("%s", format_dump_summary(collect_memel_dump(*model, 0)).c_str());
  return 0;
}
