// The caching allocator's cap on reserved memory, explicit release and bounded growth
// when sizes vary (the CUDA backend's allocator uses all three), over a counting fake of
// the system allocator.
#include <doctest/doctest.h>

#include "support.h"

#include <cstdlib>
#include <vector>

#include "core/rng.h"
#include "tensor/allocator.h"

using namespace memel;

namespace {

size_t g_live_bytes = 0;  // bytes the fake system allocator has handed out and not freed
size_t g_calls = 0;
std::vector<std::pair<void*, size_t>> g_blocks;

void* fake_alloc(size_t n) {
  ++g_calls;
  void* p = std::malloc(n);
  g_blocks.push_back({p, n});
  g_live_bytes += n;
  return p;
}
void fake_free(void* p) {
  for (size_t i = 0; i < g_blocks.size(); ++i)
    if (g_blocks[i].first == p) {
      g_live_bytes -= g_blocks[i].second;
      g_blocks.erase(g_blocks.begin() + long(i));
      break;
    }
  std::free(p);
}

void reset_fake() {
  g_live_bytes = 0;
  g_calls = 0;
  g_blocks.clear();
}

}  // namespace

TEST_CASE("caching allocator: a cap on reserved bytes, met by returning cached blocks, else a clear error") {
  reset_fake();
  {
    CachingAllocator a(fake_alloc, fake_free, 0, "fake");
    const size_t MB = size_t(1) << 20;
    a.set_limit(10 * MB);
    CHECK(a.limit() == 10 * MB);
    void* p1 = a.allocate(4 * MB);
    void* p2 = a.allocate(4 * MB);
    a.deallocate(p1, 4 * MB);
    a.deallocate(p2, 4 * MB);
    CHECK(a.stats().bytes_cached == 8 * MB);
    // 6 MiB of another class: in use 0 + cached 8 + 6 > 10, so one cached block goes first.
    void* p3 = a.allocate(6 * MB);
    CHECK(a.stats().bytes_cached == 4 * MB);
    CHECK(g_live_bytes == 10 * MB);
    CHECK(g_live_bytes <= a.limit());
    // In use 6 + 6 > 10 even with nothing cached: refused, naming the cap.
    const std::string e = error_of([&] { a.allocate(6 * MB); });
    CHECK(e.find("[allocator] fake out of memory: asked for 6291456 bytes") != std::string::npos);
    CHECK(e.find("under a cap of 10485760 bytes") != std::string::npos);
    CHECK(a.stats().bytes_cached == 0);  // released while trying
    a.deallocate(p3, 6 * MB);
    // Lowering the cap trims the cache at once; explicit release returns everything.
    a.set_limit(2 * MB);
    CHECK(a.stats().bytes_cached == 0);
    CHECK(g_live_bytes == 0);
    a.set_limit(0);
    void* p4 = a.allocate(3 * MB);
    a.deallocate(p4, 3 * MB);
    CHECK(a.stats().bytes_cached > 0);
    a.release_cached();
    CHECK(a.stats().bytes_cached == 0);
    CHECK(g_live_bytes == 0);
  }
  CHECK(g_live_bytes == 0);
}

TEST_CASE("caching allocator: with reuse slack, varying sizes reuse larger cached blocks and growth stays bounded") {
  const size_t KB = 1024;
  // Steps whose tensor sizes vary between 100 and 300 KiB (batch shapes that change):
  // count the bytes reserved from the system after many steps, with and without slack.
  auto run = [&](double slack) {
    reset_fake();
    size_t reserved = 0, peak_in_use = 0;
    {
      CachingAllocator a(fake_alloc, fake_free, 0, "fake");
      a.set_reuse_slack(slack);
      Generator gen(7);
      for (int step = 0; step < 200; ++step) {
        std::vector<std::pair<void*, size_t>> held;
        for (int t = 0; t < 8; ++t) {
          const size_t n = size_t(gen.randint(100, 300)) * KB;
          held.push_back({a.allocate(n), n});
        }
        peak_in_use = std::max(peak_in_use, a.stats().bytes_in_use);
        for (auto& [p, n] : held) a.deallocate(p, n);
        CHECK(a.stats().bytes_in_use == 0);
      }
      reserved = g_live_bytes;
      CHECK(reserved == a.stats().bytes_cached);
    }
    CHECK(g_live_bytes == 0);
    return std::make_pair(reserved, peak_in_use);
  };
  const auto [exact, peak_exact] = run(1.0);
  const auto [slack, peak_slack] = run(2.0);
  MESSAGE("reserved after 200 varying steps: exact classes ", exact, " bytes, slack 2: ", slack,
          " bytes (peak in use ", peak_exact, " / ", peak_slack, ")");
  // Without slack every class ever seen keeps blocks (16 classes in 100-300 KiB, 8 per
  // step); with it the cache stays within twice the largest step's need.
  CHECK(slack < exact);
  CHECK(slack <= 2 * peak_slack);
  CHECK(error_of([] {
          CachingAllocator a(fake_alloc, fake_free);
          a.set_reuse_slack(0.5);
        }) == "[allocator] reuse slack must be in [1, 4], got 0.5");
}
