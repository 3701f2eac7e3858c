#pragma once
// Tensors to and from safetensors files (byte-level format in core/safetensors.h).
// Reading converts: F32 F64 I32 I64 stay as they are; F16 and BF16 become F32; BOOL U8
// I8 I16 U16 U32 U64 become I64 (U64 values above INT64_MAX are an error); F8 types are
// refused. Writing stores F32 F64 I32 I64 tensors as they are (any device, any strides).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "tensor/tensor.h"

namespace memel {

struct TensorFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Loads every tensor of a file onto the CPU. Throws memel::Error naming the file on
// any problem (missing, truncated, corrupt header, unsupported dtype).
TensorFile load_safetensors(const std::string& path);
// Same from bytes in memory (for tests and fuzzing); `what` names the source in errors.
TensorFile load_safetensors_from_memory(const uint8_t* bytes, size_t size, const std::string& what = "<memory>");

// Writes atomically ("<path>.tmp", fsync, rename). Keys sorted, header 8-byte aligned.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// The bytes save_safetensors would write.
std::string save_safetensors_to_memory(const std::map<std::string, Tensor>& tensors,
                                       const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype string for a DType ("F32", ...).
const char* safetensors_dtype(DType t);

}  // namespace memel
