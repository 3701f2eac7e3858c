#pragma once
// Caching allocators. Freed blocks are kept in per-size free lists and reused, so a
// training loop reaches a steady state without calls to the system allocator.
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/device.h"

namespace memel {

struct AllocatorStats {
  size_t bytes_in_use = 0;     // handed out and not yet returned
  size_t peak_bytes_in_use = 0;
  size_t bytes_cached = 0;     // held in free lists
  uint64_t num_allocs = 0;     // requests served
  uint64_t num_system_allocs = 0;  // requests that reached the system allocator
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void release_cached() = 0;  // return cached blocks to the system
};

// Rounds sizes to size classes (64-byte granularity below 4 KiB, then 1/8-power-of-two
// steps) and keeps freed blocks per class.
class CachingAllocator : public Allocator {
 public:
  using RawAlloc = void* (*)(size_t);  // returns null when out of memory
  using RawFree = void (*)(void*);
  using FreeBytes = size_t (*)();      // memory still free on the device, for error messages
  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free, size_t cap_bytes = 0, std::string name = "cpu",
                   FreeBytes free_bytes = nullptr);
  ~CachingAllocator() override;
  void* allocate(size_t nbytes) override;
  void deallocate(void* p, size_t nbytes) override;
  AllocatorStats stats() const override;
  void reset_peak() override;
  void release_cached() override;
  static size_t size_class(size_t nbytes);

  // A cap on the memory taken from the system: bytes in use plus bytes cached never exceed
  // `max_reserved` (0: no cap). A request that would go over first returns cached blocks
  // (largest first); if the tensors in use alone leave no room, it fails with the
  // out-of-memory error, naming the cap.
  void set_limit(size_t max_reserved);
  size_t limit() const;
  // Bounded growth when shapes vary: a request whose size class has no cached block may take
  // the smallest cached block of a class up to `factor` times larger (1: its own class only).
  // Blocks are then tracked by address, so that they return to their real class.
  void set_reuse_slack(double factor);

 private:
  // Returns cached blocks, largest first, until in use + cached + `more` fits the cap
  // (mu_ held).
  void trim_locked(size_t more);
  size_t class_of_locked(void* p, size_t nbytes);
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  size_t cap_;  // 0 = no cap on cached bytes
  std::string name_;
  FreeBytes free_bytes_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
  size_t limit_ = 0;
  double slack_ = 1.0;
  std::map<void*, size_t> live_;  // block -> size class, while slack_ > 1
};

Allocator& cpu_allocator();
Allocator& allocator_for(Device d);

}  // namespace memel
