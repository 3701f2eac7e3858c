#pragma once
// Integers read from JSON that came from outside (configs, checkpoints, dumps): nlohmann's
// get<int64_t>() on a float outside int64's range is undefined behaviour, and on an
// unsigned value above INT64_MAX it wraps. Found by fuzz/fuzz_memel_dump.cpp
// (docs/hardening.md).
#include <cmath>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace memel {

// True when `v` holds an integer that fits int64: an integer, or (allow_float) a float
// with an integral value in range, such as 1e3.
inline bool json_is_int64(const nlohmann::json& v, bool allow_float = true) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
  if (v.is_number_integer()) return true;
  if (!allow_float || !v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && std::floor(d) == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0;
}

// The value of an integer json_is_int64 accepted (floats converted exactly).
inline int64_t json_int64(const nlohmann::json& v) {
  return v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>();
}

// json_int64 of `v` when json_is_int64(v, allow_float); otherwise throws memel::Error
// with the message `msg...` followed by ", got " and the value (written only on failure).
template <typename... Msg>
int64_t json_int64_checked(const nlohmann::json& v, bool allow_float, const Msg&... msg) {
  MEMEL_CHECK(json_is_int64(v, allow_float), msg..., ", got ", v.dump());
  return json_int64(v);
}

}  // namespace memel
