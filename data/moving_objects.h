#pragma once
// Moving objects in the published Moving MNIST recipe (Srivastava et al. 2015): a 64x64
// canvas, two 28x28 objects, each starting at a uniform random position with a uniform
// random direction, moving a fixed fraction of the free range per frame and bouncing off
// the walls; overlapping objects combine by max. The objects here come from any image
// set (Fashion-MNIST items by default) instead of MNIST digits.
//
// Per object, with free range F = canvas - object size and the position (x, y) in
// [0, 1]^2 (top-left corner at floor(F x), floor(F y)):
//   theta ~ U[0, 2 pi), speed ~ U[speed_min, speed_max], v = speed (cos theta, sin theta)
//   every frame: (x, y) += v; a coordinate leaving [0, 1] is clamped and its velocity
//   component flips; then the frame is drawn (as the published code: frame 0 already
//   shows the first step).
// The published recipe is speed_min = speed_max = 0.1; the default draws the speed
// around it, U[0.05, 0.15].
//
// Sequence i depends only on (seed, i): get() is deterministic and thread-safe, and a
// held-out set is the same generator with another seed (and other objects).
#include <cstdint>
#include <memory>
#include <string>

#include "data/dataset.h"

namespace memel {

struct MovingObjectsOptions {
  int64_t num_sequences = 10000;  // size() of the dataset
  int64_t seq_len = 20;           // frames per sequence
  int64_t canvas = 64;
  int64_t num_objects = 2;
  double speed_min = 0.05, speed_max = 0.15;  // fraction of the free range per frame
  uint64_t seed = 0;
};

class MovingObjectsDataset : public Dataset {
 public:
  // objects: (N, 1, h, w) or (N, h, w) images in [0, 1], h and w at most the canvas.
  MovingObjectsDataset(const Tensor& objects, MovingObjectsOptions o);
  int64_t size() const override { return opt_.num_sequences; }
  // {"frames": (seq_len, 1, canvas, canvas) F32 in [0, 1]}
  Example get(int64_t i) const override;
  const MovingObjectsOptions& options() const { return opt_; }

 private:
  MovingObjectsOptions opt_;
  std::vector<float> objects_;  // (N, h, w)
  int64_t n_ = 0, h_ = 0, w_ = 0;
};

// Moving objects drawn from Fashion-MNIST's training (train = true) or test images.
std::shared_ptr<MovingObjectsDataset> moving_fashion_mnist(const std::string& dir, bool train,
                                                           const MovingObjectsOptions& o);

// A Generator seed for item `index` of a dataset seeded with `seed` (SplitMix64 mix).
uint64_t item_seed(uint64_t seed, uint64_t index);

}  // namespace memel
