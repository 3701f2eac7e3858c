#include "tensor/tensor_io.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/safetensors.h"

namespace memel {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

bool is_native(const std::string& dt) { return dt == "F32" || dt == "F64" || dt == "I32" || dt == "I64"; }

DType target_dtype(const SafetensorsEntry& e, const std::string& what) {
  const std::string& d = e.dtype;
  if (d == "F32" || d == "F16" || d == "BF16") return DType::F32;
  if (d == "F64") return DType::F64;
  if (d == "I32") return DType::I32;
  if (d == "I64" || d == "BOOL" || d == "U8" || d == "I8" || d == "I16" || d == "U16" || d == "U32" || d == "U64")
    return DType::I64;
  MEMEL_FAIL("[safetensors] ", what, ": tensor \"", e.name, "\" has dtype ", d, ", which memel cannot load");
}

float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    float v = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal
    return sign ? -v : v;
  }
  uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (mant << 13)) : (sign | ((exp + 112) << 23) | (mant << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename S>
S load_le(const uint8_t* p) {
  S v;
  std::memcpy(&v, p, sizeof(S));
  return v;
}

template <typename S>
void widen_to_i64(const uint8_t* src, int64_t n, int64_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<int64_t>(load_le<S>(src + i * sizeof(S)));
}

// Fills `out` (fresh, contiguous, target dtype) from the entry's raw bytes.
void decode(const SafetensorsEntry& e, const uint8_t* src, Tensor& out, const std::string& what) {
  const std::string& d = e.dtype;
  int64_t n = out.numel();
  if (is_native(d)) {
    if (n > 0) std::memcpy(out.raw_data(), src, out.nbytes());
  } else if (d == "F16" || d == "BF16") {
    float* y = out.data<float>();
    bool half = d == "F16";
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h = load_le<uint16_t>(src + 2 * i);
      y[i] = half ? half_to_float(h) : bf16_to_float(h);
    }
  } else {
    int64_t* y = out.data<int64_t>();
    if (d == "BOOL" || d == "U8") widen_to_i64<uint8_t>(src, n, y);
    else if (d == "I8") widen_to_i64<int8_t>(src, n, y);
    else if (d == "I16") widen_to_i64<int16_t>(src, n, y);
    else if (d == "U16") widen_to_i64<uint16_t>(src, n, y);
    else if (d == "U32") widen_to_i64<uint32_t>(src, n, y);
    else if (d == "U64") {
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v = load_le<uint64_t>(src + 8 * i);
        MEMEL_CHECK(v <= static_cast<uint64_t>(INT64_MAX), "[safetensors] ", what, ": tensor \"", e.name,
                    "\" (U64) holds ", v, ", too large for int64");
        y[i] = static_cast<int64_t>(v);
      }
    }
  }
  if (d == "BOOL")
    for (int64_t i = 0; i < n; ++i) out.data<int64_t>()[i] = out.data<int64_t>()[i] != 0;
}

// Contiguous CPU copies of the tensors to write (kept alive while writing).
std::vector<SafetensorsItem> items_for(const std::map<std::string, Tensor>& tensors, std::vector<Tensor>& keep) {
  std::vector<SafetensorsItem> items;
  keep.clear();
  keep.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    MEMEL_CHECK(t.defined(), "[save_safetensors] tensor \"", name, "\" is undefined");
    Tensor c = t.to(Device::cpu());
    if (!c.is_contiguous()) c = c.contiguous_copy();
    keep.push_back(c);
    items.push_back({name, safetensors_dtype(c.dtype()), c.shape(), c.numel() ? c.raw_data() : nullptr, c.nbytes()});
  }
  return items;
}

}  // namespace

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

TensorFile load_safetensors(const std::string& path) {
  SafetensorsHeader h = read_safetensors_header(path);
  TensorFile f;
  f.metadata = h.metadata;
  std::vector<Tensor> outs;
  std::vector<std::vector<uint8_t>> raw(h.entries.size());
  std::vector<void*> dst;
  for (size_t i = 0; i < h.entries.size(); ++i) {
    const SafetensorsEntry& e = h.entries[i];
    outs.push_back(Tensor::empty(e.shape, target_dtype(e, path)));
    if (is_native(e.dtype)) {
      dst.push_back(outs.back().numel() ? outs.back().raw_data() : nullptr);
    } else {
      raw[i].resize(e.end - e.begin);
      dst.push_back(raw[i].data());
    }
  }
  read_safetensors_data(path, h, dst);
  for (size_t i = 0; i < h.entries.size(); ++i) {
    const SafetensorsEntry& e = h.entries[i];
    if (!is_native(e.dtype)) {
      decode(e, raw[i].data(), outs[i], path);
      std::vector<uint8_t>().swap(raw[i]);
    }
    f.tensors.emplace(e.name, outs[i]);
  }
  return f;
}

TensorFile load_safetensors_from_memory(const uint8_t* bytes, size_t size, const std::string& what) {
  SafetensorsHeader h = parse_safetensors(bytes, size, what);
  TensorFile f;
  f.metadata = h.metadata;
  for (const SafetensorsEntry& e : h.entries) {
    Tensor t = Tensor::empty(e.shape, target_dtype(e, what));
    decode(e, bytes + h.data_start + e.begin, t, what);
    f.tensors.emplace(e.name, t);
  }
  return f;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<Tensor> keep;
  write_safetensors(path, items_for(tensors, keep), metadata);
}

std::string save_safetensors_to_memory(const std::map<std::string, Tensor>& tensors,
                                       const std::map<std::string, std::string>& metadata) {
  std::vector<Tensor> keep;
  return serialize_safetensors(items_for(tensors, keep), metadata);
}

}  // namespace memel
