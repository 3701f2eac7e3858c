// memel-bench: fixed workloads, timed after warm-up; prints one JSON line per workload.
//
//   memel-bench --workload gemm --size N [--threads T] [--reps R] [--warmup W] [--seed S]
//   memel-bench --list | --help
//
// Each workload declares its options (name, default, help) and a run function that
// returns the JSON fields to print; add bert-mini, swin-t, swin-mini, convgru to
// kWorkloads below. Options are `--name value` or `--name=value`; an option the chosen
// workload does not declare is an error.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/thread_pool.h"

namespace {

using json = nlohmann::ordered_json;  // keeps the fields in the order written

struct Option {
  const char* name;
  const char* fallback;  // default value as text; nullptr = required
  const char* help;
};

// The options given for one run, with typed accessors that name the option on errors.
class Args {
 public:
  explicit Args(std::map<std::string, std::string> v) : v_(std::move(v)) {}
  const std::string& str(const std::string& k) const { return v_.at(k); }
  int64_t integer(const std::string& k, int64_t lo = INT64_MIN) const {
    const std::string& s = v_.at(k);
    size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(s, &used);
    } catch (...) {
      used = 0;
    }
    MEMEL_CHECK(used == s.size() && !s.empty(), "[memel-bench] --", k, " expects an integer, got '", s, "'");
    MEMEL_CHECK(x >= lo, "[memel-bench] --", k, " must be >= ", lo, ", got ", x);
    return x;
  }

 private:
  std::map<std::string, std::string> v_;
};

struct Workload {
  const char* name;
  const char* help;
  std::vector<Option> options;
  json (*run)(const Args& args);  // the measured fields (merged after "workload")
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Times fn() `reps` times after `warmup` calls; returns the median in milliseconds.
template <typename F>
double time_median_ms(int64_t warmup, int64_t reps, F fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int64_t i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return median(ms);
}

// --- gemm: C = A B with A, B (N, N) F32 uniform in [-1, 1) -------------------------------
json run_gemm(const Args& a) {
  const int64_t n = a.integer("size", 1), threads = a.integer("threads", 1);
  const int64_t reps = a.integer("reps", 1), warmup = a.integer("warmup", 0);
  memel::set_num_threads(static_cast<int>(threads));
  memel::Generator gen(static_cast<uint64_t>(a.integer("seed", 0)));
  memel::Tensor x = memel::Tensor::uniform({n, n}, -1, 1, memel::DType::F32, &gen);  // (N, N)
  memel::Tensor y = memel::Tensor::uniform({n, n}, -1, 1, memel::DType::F32, &gen);  // (N, N)
  memel::NoGradGuard no_grad;
  double checksum = 0;
  double ms = time_median_ms(warmup, reps, [&] {
    memel::Tensor z = memel::matmul(x, y);  // (N, N)
    checksum = static_cast<double>(z.data<float>()[0]);
  });
  double flops = 2.0 * double(n) * double(n) * double(n);
  (void)checksum;
  return {{"size", n}, {"threads", memel::num_threads()}, {"gflops", flops / (ms * 1e6)}, {"ms", ms},
          {"reps", reps}};
}

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> w = {
      {"gemm", "single-precision square matrix product memel::matmul (N, N) x (N, N)",
       {{"size", nullptr, "matrix size N"},
        {"threads", "1", "compute threads (memel::set_num_threads)"},
        {"reps", "10", "timed repetitions; the median is reported"},
        {"warmup", "2", "untimed repetitions first"},
        {"seed", "0", "random data seed"}},
       run_gemm},
      // {"bert-mini", ...}, {"swin-t", ...}, {"swin-mini", ...}, {"convgru", ...}: a full
      // training step each (docs/benchmarks.md), with the same option scheme.
  };
  return w;
}

void print_help(std::FILE* out) {
  std::fprintf(out,
               "usage: memel-bench --workload NAME [--option value]...\n"
               "Runs one workload and prints one JSON line: {\"workload\": NAME, ...measurements}.\n\n"
               "workloads and their options:\n");
  for (const Workload& w : workloads()) {
    std::fprintf(out, "  %s: %s\n", w.name, w.help);
    for (const Option& o : w.options) {
      std::string head = std::string("--") + o.name + " " + (o.fallback ? std::string("(default ") + o.fallback + ")"
                                                                          : std::string("(required)"));
      std::fprintf(out, "      %-26s %s\n", head.c_str(), o.help);
    }
  }
  std::fprintf(out, "\n  --list    print the workload names\n  --help    this help\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> given;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      print_help(stdout);
      return 0;
    }
    if (a == "--list") {
      for (const Workload& w : workloads()) std::printf("%s\n", w.name);
      return 0;
    }
    if (a.rfind("--", 0) != 0 || a.size() == 2) {
      std::fprintf(stderr, "memel-bench: unexpected argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
    std::string key = a.substr(2), value;
    size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "memel-bench: --%s needs a value\n", key.c_str());
      return 2;
    }
    given[key] = value;
  }
  if (!given.count("workload")) {
    std::fprintf(stderr, "memel-bench: --workload is required (one of:");
    for (const Workload& w : workloads()) std::fprintf(stderr, " %s", w.name);
    std::fprintf(stderr, ")\n");
    return 2;
  }
  const std::string name = given["workload"];
  given.erase("workload");
  const Workload* w = nullptr;
  for (const Workload& c : workloads())
    if (name == c.name) w = &c;
  if (!w) {
    std::fprintf(stderr, "memel-bench: unknown workload '%s' (see --list)\n", name.c_str());
    return 2;
  }
  std::map<std::string, std::string> values;
  for (const Option& o : w->options) {
    auto it = given.find(o.name);
    if (it != given.end()) {
      values[o.name] = it->second;
      given.erase(it);
    } else if (o.fallback) {
      values[o.name] = o.fallback;
    } else {
      std::fprintf(stderr, "memel-bench: workload %s needs --%s (%s)\n", w->name, o.name, o.help);
      return 2;
    }
  }
  if (!given.empty()) {
    std::fprintf(stderr, "memel-bench: workload %s has no option --%s (see --help)\n", w->name,
                 given.begin()->first.c_str());
    return 2;
  }
  try {
    json out = {{"workload", w->name}};
    json fields = w->run(Args(values));
    for (auto it = fields.begin(); it != fields.end(); ++it) out[it.key()] = it.value();
    std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memel-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
