#pragma once
// Launching a functor over the chunks of many tensors (tensor/cuda/multi_tensor.h): one
// upload of the chunk table and the functors, one launch.
#include <cstring>
#include <vector>

#include "tensor/cuda/check.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/multi_tensor.h"

namespace memel::cuda {

template <typename F>
__global__ void multi_apply_kernel(const Chunk* chunks, int64_t n, const F* fs) {
  for (int64_t c = blockIdx.x; c < n; c += gridDim.x) apply_chunk(fs, chunks[c], threadIdx.x, blockDim.x);
}

// Uploads the chunk table and `extra` (a table of trivially copyable values) in one copy;
// returns the device buffer (kept alive by the caller until the launch is queued) and the
// device pointers of both tables.
template <typename E>
Tensor upload_tables(const Context& c, Device dev, const std::vector<Chunk>& chunks, const std::vector<E>& extra,
                     const Chunk*& dchunks, const E*& dextra) {
  size_t bytes = 0;
  const size_t off = chunk_upload_layout<E>(chunks.size(), extra.size(), bytes);
  std::vector<unsigned char> host(bytes);
  std::memcpy(host.data(), chunks.data(), chunks.size() * sizeof(Chunk));
  std::memcpy(host.data() + off, extra.data(), extra.size() * sizeof(E));
  Tensor buf = Tensor::empty({int64_t((bytes + 7) / 8)}, DType::F64, dev);
  c.upload(buf.device_data(), host.data(), bytes);
  dchunks = static_cast<const Chunk*>(buf.device_data());
  dextra = reinterpret_cast<const E*>(static_cast<const unsigned char*>(buf.device_data()) + off);
  return buf;
}

// f = fs[t] for every element of tensor t (of sizes[t] elements), all tensors in one launch.
template <typename F>
void for_each_multi(const Context& c, Device dev, const std::vector<F>& fs, const std::vector<int64_t>& sizes) {
  const std::vector<Chunk> chunks = make_chunks(sizes);
  if (chunks.empty()) return;
  const Chunk* dchunks = nullptr;
  const F* dfs = nullptr;
  Tensor keep = upload_tables(c, dev, chunks, fs, dchunks, dfs);
  const int64_t n = int64_t(chunks.size());
  const unsigned blocks = unsigned(n < (int64_t(1) << 20) ? n : (int64_t(1) << 20));
  multi_apply_kernel<F><<<blocks, 256, 0, c.stream>>>(dchunks, n, dfs);
  MEMEL_CUDA_LAUNCH_CHECK(multi_apply_kernel);
}

}  // namespace memel::cuda
