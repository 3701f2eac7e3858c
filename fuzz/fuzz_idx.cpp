// Fuzz target: the IDX reader (data/idx.h), plain and gzip-compressed (detected from the
// content), read as float32 and as int64.
#include "fuzz_common.h"

#include "data/idx.h"

using namespace memel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch_dir() + "/input.idx";
  fuzz::write_bytes(path, std::string_view(reinterpret_cast<const char*>(data), size));
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(read_idx(path, DType::F32));
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(read_idx(path, DType::I64));
  return 0;
}
