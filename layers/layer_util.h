#pragma once
// Helpers shared by the layer implementations (not part of the public API).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace memel::detail {

// A double as Python's repr prints it: shortest round-trip digits, "1e-05", "0.1", "1.0".
inline std::string py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

inline std::string py_bool(bool b) { return b ? "True" : "False"; }

}  // namespace memel::detail
