// Data-parallel training pieces (train/data_parallel.h). CTest runs this program as one
// process and under `mpirun -np 2`: on N ranks, every rank's result must equal what one
// process computes on the whole global batch (each rank computes that reference itself).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "support.h"

#include "autograd/ops.h"
#include "core/rng.h"
#include "core/sample_shard.h"
#include "dist/comm.h"
#include "memel/layer.h"
#include "train/data_parallel.h"

using namespace memel;
using dist::Group;
using train::BatchShard;

TEST_CASE("data-parallel: dropout is drawn by the global sample index") {
  // D = 3: shards start inside a Philox block (the host path); D = 8: aligned (backend).
  for (int64_t D : {int64_t(3), int64_t(8)}) {
    Generator gen_full(11);
    Tensor x = Tensor::ones({8, D});
    const std::vector<double> full = dropout(x, 0.5, true, &gen_full).to_vector();
    int differs_from_row0 = 0;
    for (int r = 0; r < 4; ++r) {
      const BatchShard s = BatchShard::of(8, r, 4);
      Generator g(11);
      std::vector<double> part;
      {
        train::ScopedSampleShard keyed(s, true);
        part = dropout(s.take({{"x", x}}).at("x"), 0.5, true, &g).to_vector();
      }
      CHECK(!sample_shard().active());
      CHECK(g.offset() == gen_full.offset());  // the generator advances as in one process
      REQUIRE(part.size() == size_t(2 * D));
      for (size_t i = 0; i < part.size(); ++i) {
        CHECK(part[i] == full[size_t(s.start * D) + i]);
        differs_from_row0 += part[i] != full[i];
      }
    }
    CHECK(differs_from_row0 > 0);  // the shards did not all draw the first rows' numbers
  }
  CHECK_THROWS_WITH_AS(BatchShard::of(10, 0, 4), doctest::Contains("divide evenly"), std::exception);
}

TEST_CASE("data-parallel: memel statistics and batch-scope selection are those of the global batch") {
  const Group& g = Group::world();
  const int n = g.size(), B = 6 * n;
  const auto opts = MemelOptions::from_json(
      nlohmann::json::parse(R"({"preset": "exact", "mode": "rd", "scope": "batch", "k": 5, "warmup": 1})"));
  MemelLayer mine(opts), ref(opts);
  Generator gen(3);
  for (int step = 0; step < 3; ++step) {
    const Tensor x = add(Tensor::randn({int64_t(B), 7}, DType::F64, &gen), double(step));  // batches with different means: the merge matters
    const BatchShard s = BatchShard::of(B, g.rank(), n);
    train::install_memel_cross_rank(g);
    mine.forward(s.take({{"x", x}}).at("x"));
    set_memel_cross_rank({});
    ref.forward(x);
    const NeuronStats a = mine.stats(), b = ref.stats();
    const auto ca = a.count.to_vector(), cb = b.count.to_vector(), ma = a.mean.to_vector(), mb = b.mean.to_vector(),
               va = a.var.to_vector(), vb = b.var.to_vector();
    for (size_t i = 0; i < ca.size(); ++i) {
      CHECK(ca[i] == cb[i]);
      CHECK(ma[i] == doctest::Approx(mb[i]).epsilon(1e-12));
      CHECK(va[i] == doctest::Approx(vb[i]).epsilon(1e-12));
    }
    // The global top-5 of the batch scope, restricted to this rank's rows.
    std::vector<int64_t> expect;
    for (int64_t i : ref.last_selected())
      if (i >= s.start * 7 && i < (s.start + s.local) * 7) expect.push_back(i - s.start * 7);
    CHECK(mine.last_selected() == expect);
    if (step > 0) CHECK(ref.last_selected().size() == 5u);
  }
  set_memel_cross_rank({});
}

TEST_CASE("data-parallel: averaged gradients equal the global batch's") {
  const Group& g = Group::world();
  const int n = g.size(), B = 4 * n;
  Generator gen(5);
  Tensor w = Tensor::randn({5, 3}, DType::F32, &gen);
  w.set_requires_grad(true);
  Tensor b = Tensor::randn({3}, DType::F32, &gen);
  b.set_requires_grad(true);
  Tensor x = Tensor::randn({int64_t(B), 5}, DType::F32, &gen);
  auto loss_of = [&](const Tensor& xs) { return mean(square(add(matmul(xs, w), b))); };
  backward(loss_of(x));
  const std::vector<double> gw = w.grad().to_vector(), gb = b.grad().to_vector();
  w.zero_grad();
  b.zero_grad();
  const BatchShard s = BatchShard::of(B, g.rank(), n);
  train::GradSync sync(g, {w, b}, 8);  // tiny buckets: one per parameter, started during the backward
  {
    auto armed = sync.arm();
    backward(loss_of(s.take({{"x", x}}).at("x")));
  }
  sync.finish();
  if (n > 1) CHECK(sync.buckets_last_step() >= 2);
  const std::vector<double> dw = w.grad().to_vector(), db = b.grad().to_vector();
  for (size_t i = 0; i < gw.size(); ++i) CHECK(dw[i] == doctest::Approx(gw[i]).epsilon(1e-5));
  for (size_t i = 0; i < gb.size(); ++i) CHECK(db[i] == doctest::Approx(gb[i]).epsilon(1e-5));
  // Every rank holds the same bits.
  std::vector<double> r0 = dw;
  g.broadcast(r0, 0);
  CHECK(r0 == dw);
  CHECK(sync.mean(double(g.rank())) == doctest::Approx((n - 1) / 2.0));
}
