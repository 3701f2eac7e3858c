#pragma once
// SHA-256 (FIPS 180-4), for the digests that let checkpoints verify themselves.
#include <cstddef>
#include <cstdint>
#include <string>

namespace memel {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  // The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const void* data, size_t n);
inline std::string sha256_hex(const std::string& s) { return sha256_hex(s.data(), s.size()); }
// The digest of a whole file; throws naming the file when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace memel
