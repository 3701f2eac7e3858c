#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace memel {
namespace {

thread_local bool t_in_worker = false;

class Pool {
 public:
  ~Pool() { resize(0); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int total) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    for (int i = 1; i < total; ++i) workers_.emplace_back([this, i] { loop(i); });
  }

  void run(int chunks, const std::function<void(int)>& task) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lk(mu_);
      task_ = &task;
      chunks_ = chunks;
      pending_ = chunks;
      error_ = nullptr;
      gen = ++generation_;
      claim_.store(gen << kIndexBits);
    }
    cv_.notify_all();
    work(gen, task, chunks);
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Chunks are claimed from claim_ = (generation << kIndexBits) | next chunk. A claim is
  // a compare-and-swap on the whole word, so a thread that wakes late for a finished
  // run can never take a chunk of the next one (a plain counter reset per run let a
  // stale increment land in the next run: a chunk ran twice and the run never ended).
  // While a claim of `gen` succeeds, that run is live, so `task` is still valid.
  static constexpr int kIndexBits = 16;
  static_assert(kParallelMaxChunks < (int64_t(1) << kIndexBits), "chunk index must fit its field");
  void work(uint64_t gen, const std::function<void(int)>& task, int chunks) {
    uint64_t s = claim_.load();
    for (;;) {
      if ((s >> kIndexBits) != gen) return;
      const int c = static_cast<int>(s & ((uint64_t(1) << kIndexBits) - 1));
      if (c >= chunks) return;
      if (!claim_.compare_exchange_weak(s, s + 1)) continue;
      try {
        task(c);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (--pending_ == 0) done_cv_.notify_all();
      }
      s = claim_.load();
    }
  }

  void loop(int) {
    t_in_worker = true;
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* task;
      int chunks;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || (generation_ != seen && task_ != nullptr); });
        if (stop_) return;
        seen = generation_;
        task = task_;
        chunks = chunks_;
      }
      work(seen, *task, chunks);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* task_ = nullptr;  // the live run's, guarded by mu_
  int chunks_ = 0;
  std::atomic<uint64_t> claim_{0};
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  static bool init = [] {
    p.resize(std::max(1u, std::thread::hardware_concurrency()));
    return true;
  }();
  (void)init;
  return p;
}

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (n != pool().size()) pool().resize(n);
}

int num_threads() { return pool().size(); }

int64_t parallel_chunk(int64_t n, int64_t grain) {
  grain = std::max<int64_t>(grain, 1);
  return std::max(grain, (n + kParallelMaxChunks - 1) / kParallelMaxChunks);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t g = parallel_chunk(n, grain);
  const int64_t chunks = (n + g - 1) / g;
  auto one = [&](int64_t c) { fn(c * g, std::min(n, (c + 1) * g)); };
  if (chunks == 1 || t_in_worker || num_threads() == 1) {
    for (int64_t c = 0; c < chunks; ++c) one(c);
    return;
  }
  std::function<void(int)> task = [&](int c) {
    struct InChunk {  // calls made from inside a chunk run inline
      bool was = t_in_worker;
      InChunk() { t_in_worker = true; }
      ~InChunk() { t_in_worker = was; }
    } in_chunk;
    one(c);
  };
  pool().run(static_cast<int>(chunks), task);
}

}  // namespace memel
