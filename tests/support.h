#pragma once
// Helpers shared by the test programs (header-only; tests/ is on their include path).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>

#include "tensor/tensor.h"

namespace memel {

// True when Debian's /usr/bin/python3 can import `modules` ("torch", "torch, torchvision");
// asked once per list. Reference tests skip with a MESSAGE when it is false.
inline bool python_has(const std::string& modules) {
  static std::map<std::string, bool> cache;
  auto it = cache.find(modules);
  if (it != cache.end()) return it->second;
  const std::string cmd = "/usr/bin/python3 -c 'import " + modules + "' >/dev/null 2>&1";
  return cache[modules] = std::system(cmd.c_str()) == 0;
}

// max |a - b| over all elements (same number of elements required).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// max |a - b| / max |b|: the relative error used by every reference comparison.
inline double rel_err(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double den = 0;
  for (double v : b.to_vector()) den = std::max(den, std::abs(v));
  const double num = max_abs_diff(a, b);
  return den > 0 ? num / den : num;
}

// The message of the memel::Error thrown by f without its " (file.cpp:123)" (or .cu) suffix, or
// "<no error>".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    std::string s = e.what();
    const size_t p = s.rfind(" (");
    if (p != std::string::npos && s.back() == ')' &&
        (s.find(".cpp:", p) != std::string::npos || s.find(".cu:", p) != std::string::npos))
      s.resize(p);
    return s;
  }
  return "<no error>";
}

}  // namespace memel
