#pragma once
// Crash-safe file writing: data goes to "<path>.tmp", is fsync'ed, then renamed over
// `path` (and the directory entry fsync'ed, best effort), so readers and a resumed run
// see either the old file or the complete new one, never a partial one.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace memel {

// Writes the chunks in order. Throws memel::Error naming the file (and removes the
// temporary) when anything fails, e.g. a full disk.
void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& chunks);
inline void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, {{bytes.data(), bytes.size()}});
}

}  // namespace memel
