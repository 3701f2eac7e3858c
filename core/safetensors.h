#pragma once
// Byte-level safetensors I/O (https://huggingface.co/docs/safetensors): no tensors here,
// only the header and raw bytes. tensor/tensor_io.h builds Tensors on top.
//
// File layout: 8 bytes N (u64, little-endian), N bytes of UTF-8 JSON beginning with '{'
// and possibly padded with trailing spaces, then the byte buffer. The header maps each
// tensor name to {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} with
// offsets relative to the buffer start; an optional "__metadata__" maps str -> str.
// The readers check everything before using it: header length against the file and the
// 100 MB limit of the reference implementation, the JSON, every dtype, every shape
// against its byte range (with overflow checks), and that the ranges tile the buffer
// exactly (no hole, no overlap, nothing left over). Any failure is one memel::Error
// naming the file and the problem; no input crashes the reader.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace memel {

// Largest header accepted (as the reference implementation).
constexpr uint64_t kSafetensorsMaxHeader = 100ull << 20;

// Size in bytes of one element of a safetensors dtype ("F32" -> 4), 0 when unknown.
// Known: BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64.
size_t safetensors_dtype_size(const std::string& dtype);

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // as in the file: "F32", "BF16", ...
  std::vector<int64_t> shape;  // [] for a scalar
  uint64_t begin = 0, end = 0; // byte range in the buffer
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;       // ordered by data offset
  std::map<std::string, std::string> metadata;  // "__metadata__", may be empty
  uint64_t data_start = 0;                      // absolute offset of the buffer (8 + N)
  uint64_t data_size = 0;                       // buffer length in bytes
  const SafetensorsEntry* find(const std::string& name) const;  // nullptr if absent
};

// Parses and validates a whole file held in memory (header and buffer). `what` names the
// source in errors (a path, or e.g. "<memory>").
SafetensorsHeader parse_safetensors(const uint8_t* bytes, size_t size, const std::string& what = "<memory>");

// Reads and validates the header of a file without reading the buffer; the file size
// must match the buffer the header describes.
SafetensorsHeader read_safetensors_header(const std::string& path);

// Reads the bytes of every entry of `header` (from read_safetensors_header(path)) into
// dst[i] (entries[i].end - entries[i].begin bytes each), in one pass over the file.
void read_safetensors_data(const std::string& path, const SafetensorsHeader& header,
                           const std::vector<void*>& dst);

// One tensor to write: raw, contiguous, little-endian bytes.
struct SafetensorsItem {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;  // must equal numel * dtype size
};

// Serialises as the reference writer does: the JSON header with sorted keys, padded with
// spaces to a multiple of 8 bytes; the data ordered by element size (largest first), then
// by name, so every tensor starts at an offset aligned to its element size.
std::string serialize_safetensors(const std::vector<SafetensorsItem>& items,
                                  const std::map<std::string, std::string>& metadata = {});

// Writes serialize_safetensors' bytes to "<path>.tmp", fsyncs, and renames it to `path`
// (atomic: readers see the old file or the complete new one).
void write_safetensors(const std::string& path, const std::vector<SafetensorsItem>& items,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace memel
