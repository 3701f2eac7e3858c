#pragma once
// One thread pool owns the cores; every CPU kernel splits its work through it.
// The split of [0, n) depends only on n, the grain and the thread count, so results
// are reproducible for a given thread count.
#include <cstdint>
#include <functional>

namespace memel {

void set_num_threads(int n);  // 0 = hardware concurrency
int num_threads();

// Calls fn(begin, end) over contiguous chunks of [0, n), each at least `grain` long
// (except the last), in parallel. Runs inline when n is small or when called from a
// worker (no nested parallelism).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace memel
