#pragma once
// One launch over many tensors (the optimizer updates and the clipping sum of squares):
// the tensors are cut into chunks of at most kChunkElems elements, each chunk names its
// tensor, and block b of the launch handles chunks b, b + gridDim.x, ... with its threads
// striding over the chunk's elements. The chunk table and the per-tensor functors travel
// to the GPU in one copy. Host code (make_chunks, the emulation) and the per-chunk body
// are shared with tests/cuda, which run the body on the host.
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/hd.h"

namespace memel::cuda {

constexpr int64_t kChunkElems = 65536;

struct Chunk {
  int64_t begin = 0, end = 0;  // element range [begin, end) of the tensor
  int32_t tensor = 0;          // index into the launch's functor table
  int32_t pad_ = 0;
};

// Chunks of at most `chunk` elements covering tensors of these sizes in order (empty
// tensors get none).
inline std::vector<Chunk> make_chunks(const std::vector<int64_t>& sizes, int64_t chunk = kChunkElems) {
  MEMEL_CHECK(chunk > 0, "[multi_tensor] chunk size must be positive, got ", chunk);
  MEMEL_CHECK(sizes.size() < size_t(INT32_MAX), "[multi_tensor] too many tensors: ", sizes.size());
  std::vector<Chunk> out;
  for (size_t t = 0; t < sizes.size(); ++t)
    for (int64_t b = 0; b < sizes[t]; b += chunk) out.push_back({b, b + chunk < sizes[t] ? b + chunk : sizes[t], int32_t(t), 0});
  return out;
}

// The work of one thread (`lane` of `lanes`) on one chunk: f = fs[chunk.tensor] at every
// lanes-th element from begin + lane.
template <typename F>
MEMEL_HD void apply_chunk(const F* fs, const Chunk& c, int64_t lane, int64_t lanes) {
  const F& f = fs[c.tensor];
  for (int64_t i = c.begin + lane; i < c.end; i += lanes) f(i);
}

// The launch emulated on the host: every chunk, every lane of a `lanes`-thread block.
template <typename F>
void run_chunks_on_host(const std::vector<F>& fs, const std::vector<Chunk>& chunks, int64_t lanes = 256) {
  for (const Chunk& c : chunks)
    for (int64_t lane = 0; lane < lanes; ++lane) apply_chunk(fs.data(), c, lane, lanes);
}

// The byte layout of one upload: the chunk table, then the functors at an offset aligned
// to 16 bytes. Returns the functors' offset; `bytes` receives the total.
template <typename F>
size_t chunk_upload_layout(size_t nchunks, size_t nfunctors, size_t& bytes) {
  const size_t off = (nchunks * sizeof(Chunk) + 15) / 16 * 16;
  bytes = off + nfunctors * sizeof(F);
  return off;
}

}  // namespace memel::cuda
