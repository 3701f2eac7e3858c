#include <doctest/doctest.h>

#include "autograd/ops.h"
#include "tensor/allocator.h"
#include "tensor/backend.h"

using namespace memel;

TEST_CASE("tensor: creation, views share storage, contiguous copies") {
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(a.shape() == Shape{2, 3});
  CHECK(a.is_contiguous());
  Tensor t = transpose(a, 0, 1);
  CHECK(t.shape() == Shape{3, 2});
  CHECK(!t.is_contiguous());
  CHECK(t.same_storage(a));
  Tensor c = contiguous(t);
  CHECK(c.is_contiguous());
  CHECK(c.to_vector() == std::vector<double>{1, 4, 2, 5, 3, 6});
  Tensor r = reshape(a, {3, -1});
  CHECK(r.same_storage(a));
  CHECK(r.shape() == Shape{3, 2});
  Tensor s = slice(a, 1, 1, 3);
  CHECK(s.to_vector() == std::vector<double>{2, 3, 5, 6});
  Tensor e = expand(Tensor::from_vector(std::vector<float>{1, 2, 3}, {1, 3}), {4, 3});
  CHECK(e.strides()[0] == 0);
  CHECK(sum(e).item() == doctest::Approx(24));
}

TEST_CASE("tensor: broadcasting arithmetic and reductions") {
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector(std::vector<float>{10, 20, 30}, {3});
  CHECK((a + b).to_vector() == std::vector<double>{11, 22, 33, 14, 25, 36});
  CHECK(sum(a, {0}).to_vector() == std::vector<double>{5, 7, 9});
  CHECK(sum(a, {1}).to_vector() == std::vector<double>{6, 15});
  CHECK(amax(a, {1}).to_vector() == std::vector<double>{3, 6});
  CHECK(mean(a).item() == doctest::Approx(3.5));
  CHECK(var(a, {1}).to_vector() == std::vector<double>{1, 1});
  CHECK(argmax(a, 1).to_vector() == std::vector<double>{2, 2});
  CHECK(argmax(a, 0).to_vector() == std::vector<double>{1, 1, 1});
}

TEST_CASE("tensor: printing names shape, dtype and device") {
  Tensor a = Tensor::zeros({2, 2});
  std::string s = a.to_string();
  CHECK(s.find("shape=(2, 2)") != std::string::npos);
  CHECK(s.find("float32") != std::string::npos);
  CHECK(s.find("cpu") != std::string::npos);
}

TEST_CASE("tensor: allocator caches and reports peak") {
  AllocatorStats before = cpu_allocator().stats();
  { Tensor t = Tensor::empty({1024, 1024}); }
  { Tensor t = Tensor::empty({1024, 1024}); }
  AllocatorStats after = cpu_allocator().stats();
  CHECK(after.peak_bytes_in_use >= before.bytes_in_use + 4 * 1024 * 1024);
  CHECK(after.num_system_allocs - before.num_system_allocs <= 1);
}

TEST_CASE("tensor: shape errors name the op and the shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("[matmul] (2, 3) x (4, 5): inner dimensions differ"), Error);
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("cannot be broadcast"), Error);
}
