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
  const size_t sz = size_class(nbytes);
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.num_allocs;
    // Its own class first; with slack, the smallest cached class up to slack_ x larger.
    const size_t top = slack_ > 1.0 ? static_cast<size_t>(double(sz) * slack_) : sz;
    for (auto it = free_.lower_bound(sz); it != free_.end() && it->first <= top; ++it) {
      if (it->second.empty()) continue;
      void* p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= it->first;
      stats_.bytes_in_use += it->first;
      if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
      if (slack_ > 1.0) live_[p] = it->first;
      return p;
    }
    if (limit_ != 0) {
      trim_locked(sz);
      if (stats_.bytes_in_use + sz > limit_)
        MEMEL_FAIL("[allocator] ", name_, " out of memory: asked for ", nbytes, " bytes (", sz, " with rounding); ",
                   stats_.bytes_in_use, " bytes in use by memel tensors under a cap of ", limit_, " bytes");
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
  if (slack_ > 1.0) live_[p] = sz;
  return p;
}

size_t CachingAllocator::class_of_locked(void* p, size_t nbytes) {
  auto it = live_.find(p);
  if (it == live_.end()) return size_class(nbytes);
  const size_t sz = it->second;
  live_.erase(it);
  return sz;
}

void CachingAllocator::deallocate(void* p, size_t nbytes) {
  if (!p) return;
  std::lock_guard<std::mutex> lk(mu_);
  const size_t sz = class_of_locked(p, nbytes);
  stats_.bytes_in_use -= sz;
  if ((cap_ != 0 && stats_.bytes_cached + sz > cap_) || (limit_ != 0 && stats_.bytes_in_use + stats_.bytes_cached + sz > limit_)) {
    raw_free_(p);
    return;
  }
  free_[sz].push_back(p);
  stats_.bytes_cached += sz;
}

void CachingAllocator::trim_locked(size_t more) {
  for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
    while (!it->second.empty() && stats_.bytes_in_use + stats_.bytes_cached + more > limit_) {
      raw_free_(it->second.back());
      it->second.pop_back();
      stats_.bytes_cached -= it->first;
    }
    if (stats_.bytes_in_use + stats_.bytes_cached + more <= limit_) return;
  }
}

void CachingAllocator::set_limit(size_t max_reserved) {
  std::lock_guard<std::mutex> lk(mu_);
  limit_ = max_reserved;
  if (limit_ != 0) trim_locked(0);
}

size_t CachingAllocator::limit() const {
  std::lock_guard<std::mutex> lk(mu_);
  return limit_;
}

void CachingAllocator::set_reuse_slack(double factor) {
  MEMEL_CHECK(factor >= 1.0 && factor <= 4.0, "[allocator] reuse slack must be in [1, 4], got ", factor);
  std::lock_guard<std::mutex> lk(mu_);
  MEMEL_CHECK(stats_.bytes_in_use == 0 || (factor > 1.0) == (slack_ > 1.0),
              "[allocator] ", name_, ": the reuse slack can be turned on or off only while no block is in use");
  slack_ = factor;
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
