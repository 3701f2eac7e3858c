#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace memel {

// Element types. F64 exists for gradient checking on the CPU; I32/I64 for indices.
enum class DType : uint8_t { F32, F64, I32, I64 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
  }
  return 0;
}
inline bool is_floating(DType t) { return t == DType::F32 || t == DType::F64; }
const char* dtype_name(DType t);  // "float32", ...

template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };

}  // namespace memel

// Runs the body with `scalar_t` bound to the C++ type of a floating dtype.
#define MEMEL_DISPATCH_FLOAT(dtype, opname, ...)                                   \
  [&] {                                                                            \
    switch (dtype) {                                                               \
      case ::memel::DType::F32: { using scalar_t = float; return __VA_ARGS__(); }  \
      case ::memel::DType::F64: { using scalar_t = double; return __VA_ARGS__(); } \
      default: MEMEL_FAIL("[", opname, "] expected a floating dtype, got ",        \
                          ::memel::dtype_name(dtype));                             \
    }                                                                              \
  }()

// Same for every dtype.
#define MEMEL_DISPATCH_ALL(dtype, opname, ...)                                      \
  [&] {                                                                             \
    switch (dtype) {                                                                \
      case ::memel::DType::F32: { using scalar_t = float; return __VA_ARGS__(); }   \
      case ::memel::DType::F64: { using scalar_t = double; return __VA_ARGS__(); }  \
      case ::memel::DType::I32: { using scalar_t = int32_t; return __VA_ARGS__(); } \
      case ::memel::DType::I64: { using scalar_t = int64_t; return __VA_ARGS__(); } \
    }                                                                               \
    MEMEL_FAIL("[", opname, "] unknown dtype");                                     \
  }()
