#pragma once
// Helpers shared by the test programs (header-only; tests/ is on their include path).
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include "tensor/tensor.h"

namespace memel {

// The Python that runs the PyTorch reference scripts: Debian's /usr/bin/python3, or
// $MEMEL_PYTHON when set (e.g. to check that a Python without torch fails a required run).
inline std::string reference_python() {
  const char* p = std::getenv("MEMEL_PYTHON");
  return p && *p ? std::string(p) : std::string("/usr/bin/python3");
}

// MEMEL_TORCH_REFERENCE=required (set by .ci/run): a PyTorch reference that cannot run is a
// failure, not a skip.
inline bool torch_reference_required() {
  const char* p = std::getenv("MEMEL_TORCH_REFERENCE");
  return p && std::string(p) == "required";
}

// True when the reference Python can import `modules` ("torch", "torch, torchvision");
// asked once per list.
inline bool python_has(const std::string& modules) {
  static std::map<std::string, bool> cache;
  auto it = cache.find(modules);
  if (it != cache.end()) return it->second;
  const std::string cmd = reference_python() + " -c 'import " + modules + "' >/dev/null 2>&1";
  return cache[modules] = std::system(cmd.c_str()) == 0;
}

// A PyTorch reference test that cannot run: with MEMEL_TORCH_REFERENCE=required a failed
// check, otherwise a skip said as such (a MESSAGE starting "skipped:"). The caller returns.
inline void reference_unavailable(const std::string& why) {
  if (torch_reference_required())
    FAIL_CHECK("PyTorch reference required (MEMEL_TORCH_REFERENCE=required) but ", why);
  else
    MESSAGE("skipped: ", why, " (set MEMEL_TORCH_REFERENCE=required to make this a failure)");
}

// True when `modules` import; otherwise reports the test as skipped or failed (see above).
inline bool torch_reference_available(const std::string& modules = "torch") {
  if (python_has(modules)) return true;
  reference_unavailable(reference_python() + " cannot import " + modules);
  return false;
}

// A file's whole contents ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A program run as a subprocess: exit code (128 + signal when killed), stdout, stderr.
struct ProgramResult {
  int code;
  std::string out, err;
};

// Runs `bin args` with stdout and stderr captured in files named after `tag` in the build
// directory; requires the program to exist.
inline ProgramResult run_program(const std::string& bin, const std::string& args, const std::string& tag) {
  REQUIRE_MESSAGE(std::filesystem::exists(bin), bin, " is not built");
  const std::string out = std::string(MEMEL_BINARY_DIR) + "/" + tag + ".out";
  const std::string err = std::string(MEMEL_BINARY_DIR) + "/" + tag + ".err";
  const int rc = std::system((bin + " " + args + " > " + out + " 2> " + err).c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0), slurp(out), slurp(err)};
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
