// The data-parallel group (dist/comm.h). CTest runs this program as one process and
// again under `mpirun -np 2`: every collective must give every rank the same bits.
#include <doctest/doctest.h>

#include "support.h"

#include "dist/comm.h"

using namespace memel;
using dist::Group;

TEST_CASE("dist: sums, broadcasts and gathers are the same on every rank") {
  const Group& g = Group::world();
  MESSAGE(g.describe());
  const int r = g.rank(), n = g.size();
  // float32 values that differ by rank; the sum is known.
  std::vector<float> v(1001);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i % 17) * 0.25f + float(r);
  Tensor t = Tensor::from_vector(v, {1001});
  g.allreduce_sum(t);
  const std::vector<double> s = t.to_vector();
  for (size_t i = 0; i < v.size(); ++i) CHECK(s[i] == doctest::Approx(double(i % 17) * 0.25 * n + n * (n - 1) / 2.0));
  // Every rank holds rank 0's bits.
  std::vector<double> bits(s.begin(), s.begin() + 8);
  g.broadcast(bits, 0);
  for (int i = 0; i < 8; ++i) CHECK(bits[size_t(i)] == s[size_t(i)]);
  // A strided view on any device is reduced in place.
  Tensor base = Tensor::ones({4, 6}, DType::F64).to(Device::sim());
  Tensor view = base.as_strided({4, 3}, {6, 2}, 1);
  g.allreduce_sum(view);
  const std::vector<double> b = base.to_vector();
  for (int i = 0; i < 24; ++i) CHECK(b[size_t(i)] == ((i % 2 == 1) ? double(n) : 1.0));
  // Gather: rank-major.
  const std::vector<double> all = g.allgather({double(r), double(10 * r)});
  REQUIRE(all.size() == size_t(2 * n));
  for (int k = 0; k < n; ++k) CHECK(all[size_t(2 * k + 1)] == 10.0 * k);
  // A pending sum finishes on wait().
  Tensor p = Tensor::full({5}, double(r + 1), DType::I64);
  Group::Pending pend = g.start_allreduce_sum(p);
  pend.wait();
  CHECK(pend.done());
  CHECK(p.to_vector()[4] == double(n * (n + 1) / 2));
  g.barrier();
}
