#include "tensor/allocator.h"

#include <cstdlib>
#include <new>

#include "core/error.h"

namespace memel {

CachingAllocator::CachingAllocator(RawAlloc a, RawFree f, size_t cap, std::string name, FreeBytes free_bytes)
    : raw_alloc_(a), raw_free_(f), cap_(cap), name_(std::move(name)), free_bytes_(free_bytes) {}

CachingAllocator::~CachingAllocator() { release_cached(); }

size_t CachingAllocator::size_class(size_t n) {
  if (n == 0) n = 1;
  if (n <= 4096) return (n + 63) & ~size_t(63);
  size_t p = 1;
  while (p < n) p <<= 1;
  size_t step = p / 8;  // eight classes per power of two
  return (n + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  size_t sz = size_class(nbytes);
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.num_allocs;
    auto it = free_.find(sz);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= sz;
      stats_.bytes_in_use += sz;
      if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
      return p;
    }
  }
  void* p = raw_alloc_(sz);
  if (!p) {
    release_cached();
    p = raw_alloc_(sz);
  }
  if (!p) {
    const AllocatorStats st = stats();
    MEMEL_FAIL("[allocator] ", name_, " out of memory: asked for ", nbytes, " bytes (", sz, " with rounding); ",
               free_bytes_ ? str_cat(free_bytes_(), " bytes free on the device, ") : std::string(), st.bytes_in_use,
               " bytes in use by memel tensors, ", st.bytes_cached, " cached");
  }
  std::lock_guard<std::mutex> lk(mu_);
  ++stats_.num_system_allocs;
  stats_.bytes_in_use += sz;
  if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
  return p;
}

void CachingAllocator::deallocate(void* p, size_t nbytes) {
  if (!p) return;
  size_t sz = size_class(nbytes);
  std::lock_guard<std::mutex> lk(mu_);
  stats_.bytes_in_use -= sz;
  if (cap_ != 0 && stats_.bytes_cached + sz > cap_) {
    raw_free_(p);
    return;
  }
  free_[sz].push_back(p);
  stats_.bytes_cached += sz;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lk(mu_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& kv : free_)
    for (void* p : kv.second) raw_free_(p);
  free_.clear();
  stats_.bytes_cached = 0;
}

namespace {
void* cpu_raw_alloc(size_t n) { return std::aligned_alloc(64, (n + 63) & ~size_t(63)); }
void cpu_raw_free(void* p) { std::free(p); }
}  // namespace

Allocator& cpu_allocator() {
  // Leaked on purpose: tensors in static objects may be freed after main returns.
  static CachingAllocator* a = new CachingAllocator(cpu_raw_alloc, cpu_raw_free, size_t(4) << 30);
  return *a;
}



}  // namespace memel
