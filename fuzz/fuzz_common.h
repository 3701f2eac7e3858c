#pragma once
// Helpers shared by the libFuzzer targets (docs/hardening.md).
//
// Contract under test: a reader of outside input either returns or throws memel::Error.
// Every other outcome is a finding: a sanitizer report, a crash, a hang, a leak, or any
// other exception escaping (libFuzzer reports an uncaught exception as a crash). The
// targets therefore catch memel::Error only.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace memel::fuzz {

// A scratch directory for targets whose reader takes a path: on /dev/shm when present
// (no disk traffic), one per process, removed at exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string base =
        std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    if (const char* t = std::getenv("MEMEL_FUZZ_TMP")) base = t;
    std::string d = base + "/memel-fuzz-" + std::to_string(::getpid());
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    static struct Cleanup {
      std::string d;
      ~Cleanup() {
        std::error_code ec;
        std::filesystem::remove_all(d, ec);
      }
    } cleanup{d};
    return d;
  }();
  return dir;
}

inline void write_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Splits the input at each occurrence of `sep` (at most max_parts parts; the last part
// keeps the rest). Seeds are written in the same layout by fuzz/make_corpus.cpp.
inline std::vector<std::string_view> split_parts(std::string_view in, std::string_view sep, size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t p = in.find(sep);
    if (p == std::string_view::npos) break;
    parts.push_back(in.substr(0, p));
    in.remove_prefix(p + sep.size());
  }
  parts.push_back(in);
  return parts;
}

// The separator between the parts of a multi-part input (e.g. a dump's JSON and
// safetensors files).
constexpr std::string_view kSep = "\n@@memel-fuzz@@\n";

// A config target's input: the config file's bytes, then (after kSep) up to 16 `--set`
// lines. Writes the file to `path` and returns the lines.
inline std::vector<std::string> config_input(std::string_view in, const std::string& path) {
  const auto parts = split_parts(in, kSep, 2);
  write_bytes(path, parts[0]);
  std::vector<std::string> sets;
  if (parts.size() > 1) {
    std::string_view rest = parts[1];
    while (!rest.empty() && sets.size() < 16) {
      const size_t nl = rest.find('\n');
      sets.emplace_back(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
  }
  return sets;
}

}  // namespace memel::fuzz

// Runs `body`, swallowing memel::Error (the documented way to reject input).
#define MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(body) \
  do {                                            \
    try {                                         \
      body;                                       \
    } catch (const ::memel::Error&) {             \
    }                                             \
  } while (0)
