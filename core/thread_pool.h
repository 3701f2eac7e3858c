#pragma once
// One thread pool owns the cores; every CPU kernel splits its work through it.
// The split of [0, n) into chunks depends only on n and the grain, never on the thread
// count: a kernel whose arithmetic follows its chunk boundaries (a library call per chunk,
// a partial sum per chunk, a vector loop with a scalar tail) gives the same bits with
// any number of threads.
#include <cstdint>
#include <functional>

namespace memel {

void set_num_threads(int n);  // 0 = hardware concurrency
int num_threads();

// Calls fn(begin, end) once for every chunk [i * g, min(n, (i + 1) * g)) of [0, n), in
// parallel, with g = parallel_chunk(n, grain). Chunks run on any thread in any order; a
// chunk runs inline in the caller's thread when there is one chunk or when called from a
// chunk (no nested parallelism), with the same chunks.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// The chunk length parallel_for uses: `grain` (at least 1), grown so that there are at
// most kParallelMaxChunks chunks. A function of n and grain only.
constexpr int64_t kParallelMaxChunks = 64;
int64_t parallel_chunk(int64_t n, int64_t grain);

}  // namespace memel
