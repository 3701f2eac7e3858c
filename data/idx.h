#pragma once
// IDX files (the MNIST format): magic 0x00 0x00 TYPE NDIM, NDIM big-endian u32 sizes,
// then the values big-endian, row-major. TYPE: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32,
// 0x0D f32, 0x0E f64. Files may be gzip-compressed (detected from the content).
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace memel {

enum class IdxType : uint8_t { U8 = 0x08, I8 = 0x09, I16 = 0x0B, I32 = 0x0C, F32 = 0x0D, F64 = 0x0E };

// Reads the file into a tensor of shape (sizes...) with values converted to `dtype`
// (no scaling: a u8 pixel 255 becomes 255.0). Throws memel::Error naming the path for a
// missing file, a bad magic number, or truncated or trailing data.
Tensor read_idx(const std::string& path, DType dtype = DType::F32);

// Writes `t` (any dtype, values converted to `type`) as an IDX file, gzip-compressed
// when `gzip` is true.
void write_idx(const std::string& path, const Tensor& t, IdxType type = IdxType::U8, bool gzip = false);

}  // namespace memel
