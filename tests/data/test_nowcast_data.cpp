// Moving-objects (Moving MNIST recipe) and synthetic radar generators: shapes, ranges,
// the bouncing motion, and determinism under a seed.
#include <doctest/doctest.h>

#include <cmath>
#include <sys/stat.h>

#include "data/fashion_mnist.h"
#include "data/moving_objects.h"
#include "data/radar_synth.h"
#include "models/nowcast_metrics.h"

using namespace memel;

namespace {

// Bounding box of the nonzero pixels of frame t of (T, 1, S, S).
struct Box {
  int64_t top = -1, left = -1, bottom = -1, right = -1;
};
Box box_of(const std::vector<double>& v, int64_t t, int64_t S) {
  Box b;
  for (int64_t y = 0; y < S; ++y)
    for (int64_t x = 0; x < S; ++x)
      if (v[size_t((t * S + y) * S + x)] > 0) {
        if (b.top < 0 || y < b.top) b.top = y;
        if (b.left < 0 || x < b.left) b.left = x;
        b.bottom = std::max(b.bottom, y);
        b.right = std::max(b.right, x);
      }
  return b;
}

}  // namespace

TEST_CASE("moving objects: one solid object moves within the canvas and bounces") {
  MovingObjectsOptions o;
  o.num_sequences = 50;
  o.seq_len = 30;
  o.num_objects = 1;
  o.speed_min = o.speed_max = 0.1;  // the published recipe: 3.6 pixels per frame
  o.seed = 4;
  Tensor obj = Tensor::ones({3, 1, 28, 28});
  MovingObjectsDataset ds(obj, o);
  CHECK(ds.size() == 50);
  int bounces = 0;
  for (int64_t i = 0; i < ds.size(); ++i) {
    Tensor f = ds.get(i).at("frames");
    REQUIRE(f.shape() == Shape{30, 1, 64, 64});
    std::vector<double> v = f.to_vector();
    Box prev;
    double prev_dx = 0;
    for (int64_t t = 0; t < 30; ++t) {
      Box b = box_of(v, t, 64);
      // the whole 28x28 object is always on the canvas
      CHECK(b.bottom - b.top == 27);
      CHECK(b.right - b.left == 27);
      if (t > 0) {
        const double dx = double(b.left - prev.left), dy = double(b.top - prev.top);
        CHECK(std::abs(dx) <= 4.0);
        CHECK(std::abs(dy) <= 4.0);
        if (dx * prev_dx < 0) ++bounces;
        prev_dx = dx != 0 ? dx : prev_dx;
      }
      prev = b;
    }
  }
  CHECK(bounces > 10);  // 30 frames at 3.6 px/frame over a 36 px range: walls are hit
  // Deterministic: the same item twice, another seed differs.
  CHECK(ds.get(7).at("frames").to_vector() == ds.get(7).at("frames").to_vector());
  o.seed = 5;
  MovingObjectsDataset other(obj, o);
  CHECK(other.get(7).at("frames").to_vector() != ds.get(7).at("frames").to_vector());
}

TEST_CASE("moving objects: two objects overlap by max; Fashion-MNIST items when installed") {
  MovingObjectsOptions o;
  o.num_sequences = 4;
  o.seq_len = 5;
  Tensor obj = Tensor::full({2, 28, 28}, 0.5);
  MovingObjectsDataset ds(obj, o);
  int64_t other = 0;
  for (double v : ds.get(0).at("frames").to_vector()) other += !(v == 0.0 || v == 0.5);
  CHECK(other == 0);  // overlap by max, never a sum
  CHECK_THROWS_WITH_AS(MovingObjectsDataset(Tensor::ones({2, 1, 80, 80}), o), doctest::Contains("smaller"),
                       memel::Error);

  struct stat st {};
  if (::stat((std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz").c_str(), &st) != 0) {
    MESSAGE("Fashion-MNIST not installed; skipping the Fashion-MNIST part");
    return;
  }
  o.seq_len = 20;
  auto fm = moving_fashion_mnist(kFashionMnistDir, false, o);
  Tensor f = fm->get(1).at("frames");
  CHECK(f.shape() == Shape{20, 1, 64, 64});
  double mx = 0, mass = 0;
  for (double v : f.to_vector()) {
    mx = std::max(mx, v);
    mass += v;
  }
  CHECK(mx <= 1.0);
  CHECK(mass > 20 * 50.0);  // two clothing items per frame
}

TEST_CASE("radar synth: HKO-7 pixels, echoes over the rain thresholds, motion, determinism") {
  RadarSynthOptions o;
  o.num_sequences = 20;
  o.seq_len = 10;
  o.size = 64;
  o.seed = 1;
  RadarSynthDataset ds(o);
  const double p_floor = (o.floor_dbz + 10.0) / 70.0;
  const double p_half = nowcast::rainfall_to_pixel(0.5), p_ten = nowcast::rainfall_to_pixel(10);
  int64_t rain = 0, heavy = 0, total = 0, bad = 0;
  double change = 0;
  for (int64_t i = 0; i < ds.size(); ++i) {
    Tensor f = ds.get(i).at("frames");
    REQUIRE(f.shape() == Shape{10, 1, 64, 64});
    std::vector<double> v = f.to_vector();
    for (double p : v) {
      bad += !(p == 0.0 || (p >= p_floor - 1e-6 && p <= 1.0));
      rain += p >= p_half;
      heavy += p >= p_ten;
      ++total;
    }
    for (size_t k = 0; k < size_t(64 * 64); ++k) change += std::abs(v[k + size_t(9 * 64 * 64)] - v[k]);
  }
  CHECK(bad == 0);  // clear air (0) or echo at least floor_dbz
  CHECK(rain > total / 50);    // echoes above 0.5 mm/h are common
  CHECK(heavy > total / 1000);  // and some above 10 mm/h
  CHECK(change > 0);
  CHECK(ds.get(3).at("frames").to_vector() == ds.get(3).at("frames").to_vector());
  RadarSynthOptions wrong = o;
  wrong.max_blobs = 1;
  CHECK_THROWS_WITH_AS(RadarSynthDataset{wrong}, doctest::Contains("min_blobs"), memel::Error);
}
