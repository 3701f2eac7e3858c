#include "data/moving_objects.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "data/fashion_mnist.h"

namespace memel {

uint64_t item_seed(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

MovingObjectsDataset::MovingObjectsDataset(const Tensor& objects, MovingObjectsOptions o) : opt_(o) {
  MEMEL_CHECK(objects.defined() && (objects.dim() == 3 || (objects.dim() == 4 && objects.size(1) == 1)),
              "[moving_objects] objects must be (N, 1, h, w) or (N, h, w), got ",
              objects.defined() ? shape_str(objects.shape()) : std::string("none"));
  n_ = objects.size(0);
  h_ = objects.size(-2);
  w_ = objects.size(-1);
  MEMEL_CHECK(n_ > 0, "[moving_objects] no objects");
  MEMEL_CHECK(opt_.canvas >= h_ && opt_.canvas >= w_, "[moving_objects] canvas ", opt_.canvas,
              " is smaller than the objects (", h_, "x", w_, ")");
  MEMEL_CHECK(opt_.num_sequences >= 0 && opt_.seq_len > 0 && opt_.num_objects > 0,
              "[moving_objects] num_sequences must be >= 0, seq_len and num_objects positive");
  MEMEL_CHECK(opt_.speed_min >= 0 && opt_.speed_max >= opt_.speed_min, "[moving_objects] need 0 <= speed_min <= "
              "speed_max, got ", opt_.speed_min, " and ", opt_.speed_max);
  objects_ = objects.to_vector_as<float>();
}

Example MovingObjectsDataset::get(int64_t i) const {
  MEMEL_CHECK(i >= 0 && i < size(), "[moving_objects] index ", i, " out of range [0, ", size(), ")");
  Generator g(item_seed(opt_.seed, uint64_t(i)));
  const int64_t T = opt_.seq_len, S = opt_.canvas;
  const double free_h = double(S - h_), free_w = double(S - w_);
  std::vector<float> frames(size_t(T * S * S), 0.0f);
  for (int64_t k = 0; k < opt_.num_objects; ++k) {
    const int64_t obj = g.randint(0, n_);
    double y = g.uniform(), x = g.uniform();
    const double theta = g.uniform() * 2.0 * M_PI;
    const double speed = opt_.speed_min + (opt_.speed_max - opt_.speed_min) * g.uniform();
    double vy = std::sin(theta) * speed, vx = std::cos(theta) * speed;
    const float* src = objects_.data() + obj * h_ * w_;
    for (int64_t t = 0; t < T; ++t) {
      y += vy;
      x += vx;
      if (x <= 0) { x = 0; vx = -vx; }
      if (x >= 1) { x = 1; vx = -vx; }
      if (y <= 0) { y = 0; vy = -vy; }
      if (y >= 1) { y = 1; vy = -vy; }
      const int64_t top = int64_t(free_h * y), left = int64_t(free_w * x);
      float* dst = frames.data() + t * S * S;
      for (int64_t r = 0; r < h_; ++r)
        for (int64_t c = 0; c < w_; ++c) {
          float& d = dst[(top + r) * S + left + c];
          d = std::max(d, src[r * w_ + c]);
        }
    }
  }
  return {{"frames", Tensor::from_vector(frames, {T, 1, S, S})}};
}

std::shared_ptr<MovingObjectsDataset> moving_fashion_mnist(const std::string& dir, bool train,
                                                           const MovingObjectsOptions& o) {
  FashionMnist fm = load_fashion_mnist(dir, train);
  return std::make_shared<MovingObjectsDataset>(fm.images, o);
}

}  // namespace memel
