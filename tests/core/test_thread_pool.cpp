// The thread pool (core/thread_pool.h) under load: exact coverage of the range, many
// back-to-back calls, callers on several threads at once, errors, nesting and resizing.
// Also run under ThreadSanitizer (scripts/sanitize.sh tsan).
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

using namespace memel;

namespace {

struct ThreadCount {
  int before = num_threads();
  explicit ThreadCount(int n) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(before); }
};

// Runs parallel_for over [0, n) and checks every index was visited exactly once.
bool covers_once(int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  for (auto& h : hits) h.store(0);
  parallel_for(n, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
  });
  for (auto& h : hits)
    if (h.load() != 1) return false;
  return true;
}

}  // namespace

TEST_CASE("thread pool: every index exactly once, any size, grain and thread count") {
  for (int threads : {1, 2, 3, 8}) {
    ThreadCount tc(threads);
    CHECK(num_threads() == threads);
    for (int64_t n : {0, 1, 2, 7, 64, 1000, 4097})
      for (int64_t grain : {1, 3, 64, 5000}) {
        INFO("threads " << threads << " n " << n << " grain " << grain);
        CHECK(covers_once(n, grain));
      }
  }
}

TEST_CASE("thread pool: many short calls back to back stay exact (more threads than cores)") {
  ThreadCount tc(8);
  int bad = 0;
  for (int call = 0; call < 5000; ++call) bad += !covers_once(8 + call % 9, 1);
  CHECK(bad == 0);
}

TEST_CASE("thread pool: a late worker never takes a chunk of the next call (few chunks, then many)") {
  // A worker that wakes for a finished call must not claim chunks of the next one: with a
  // counter reset per call, a stale claim from a 2-chunk call landed inside a following
  // 64-chunk call, one chunk ran twice and the call waited forever.
  for (int threads : {2, 3}) {
    ThreadCount tc(threads);
    int bad = 0;
    for (int call = 0; call < 20000; ++call) bad += !covers_once(call % 2 ? 64 : 2, 1);
    CHECK(bad == 0);
  }
}

TEST_CASE("thread pool: callers on several threads at once (loader workers and the main thread)") {
  ThreadCount tc(4);
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&, t] {
      for (int call = 0; call < 300; ++call) {
        std::atomic<int64_t> sum{0};
        const int64_t n = 100 + t * 7 + call % 13;
        parallel_for(n, 4, [&](int64_t b, int64_t e) {
          int64_t s = 0;
          for (int64_t i = b; i < e; ++i) s += i;
          sum.fetch_add(s);
        });
        if (sum.load() != n * (n - 1) / 2) bad.fetch_add(1);
      }
    });
  for (auto& c : callers) c.join();
  CHECK(bad.load() == 0);
}

TEST_CASE("thread pool: an error in one chunk reaches the caller and the pool keeps working") {
  ThreadCount tc(3);
  for (int round = 0; round < 50; ++round) {
    CHECK_THROWS_WITH_AS(parallel_for(300, 1,
                                      [&](int64_t b, int64_t e) {
                                        if (b <= 150 && 150 < e) throw std::runtime_error("chunk failed");
                                      }),
                         "chunk failed", std::runtime_error);
    CHECK(covers_once(300, 1));
  }
}

TEST_CASE("thread pool: nested calls run inline and resizing between calls is safe") {
  ThreadCount tc(4);
  std::atomic<int64_t> total{0};
  parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      parallel_for(100, 1, [&](int64_t bb, int64_t ee) { total.fetch_add(ee - bb); });
  });
  CHECK(total.load() == 800);
  for (int n : {1, 5, 2, 0, 3}) {
    set_num_threads(n);
    CHECK(covers_once(257, 2));
  }
}

TEST_CASE("thread pool: the chunks depend on n and the grain only, never on the thread count") {
  auto chunks = [](int64_t n, int64_t grain) {
    std::mutex mu;
    std::set<std::pair<int64_t, int64_t>> seen;
    parallel_for(n, grain, [&](int64_t b, int64_t e) {
      std::lock_guard<std::mutex> lk(mu);
      seen.insert({b, e});
    });
    return seen;
  };
  for (int64_t n : {1, 7, 100, 4097, 100003})
    for (int64_t grain : {1, 3, 64, 16384}) {
      INFO("n " << n << " grain " << grain);
      set_num_threads(1);
      const auto one = chunks(n, grain);
      const int64_t g = parallel_chunk(n, grain);
      CHECK(g >= grain);
      CHECK(int64_t(one.size()) == (n + g - 1) / g);
      CHECK(int64_t(one.size()) <= kParallelMaxChunks);
      for (int threads : {2, 3, 8}) {
        ThreadCount tc(threads);
        CHECK(chunks(n, grain) == one);
      }
    }
  set_num_threads(0);
}
