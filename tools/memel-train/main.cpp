// memel-train: trains a model from a JSON config.
//
//   memel-train --config FILE [--set key.path=value]... [--out DIR] [--resume DIR|last]
//               [--allow-change KEY,...] [--print-config] [--dry-run] [--quiet]
//               [--compare baseline,naive_a,naive_b,rd --seeds N [--sweep key=v1,v2]...]
//
// Exit codes: 0 done, 1 error (message on stderr), 2 bad usage, 3 NaN/inf loss,
// 130 interrupted (checkpoint written).
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "dist/comm.h"
#include "memel/options.h"
#include "train/config.h"
#include "train/task.h"
#include "train/trainer.h"

using namespace memel::train;

namespace {

void usage(FILE* f) {
  std::fprintf(f,
               "usage: memel-train --config FILE [--set key.path=value]... [--out DIR] [--resume DIR|last]\n"
               "                   [--allow-change KEY,...]\n"
               "                   [--print-config] [--dry-run] [--quiet]\n"
               "                   [--compare baseline,naive_a,naive_b,rd [--seeds N] [--sweep key=v1,v2]...]\n"
               "                   [--validate N [--validate-lr LR]]\n"
               "\n"
               "  --config FILE     run configuration (JSON); see configs/ for examples\n"
               "  --set k.p=v       override one key (v is JSON, or a bare string)\n"
               "  --out DIR         run directory (default: <out>/<name>)\n"
               "  --resume DIR|last continue from the newest complete checkpoint of DIR\n"
               "                    (last: the run directory this config trains into)\n"
               "  --allow-change K  with --resume: accept these config keys (comma-separated) differing\n"
               "                    from the run's; recorded in config.history.jsonl\n"
               "  --print-config    print the resolved configuration and exit\n"
               "  --dry-run         build everything and run one batch\n"
               "  --quiet           no progress output\n"
               "  --compare LIST    run each variant for --seeds seeds; writes compare.md/json\n"
               "  --sweep k=v1,v2   with --compare: grid over memel keys (MEmeL-Tune: k, delta)\n"
               "  --validate N      after training: Decrease Ratio / Total Update Ratio of original,\n"
               "                    naive_a, naive_b, rd on N eval samples (--validate-lr, default 1e-4)\n"
               "tasks: ");
  std::string known;
  for (auto& kv : task_registry()) known += (known.empty() ? "" : ", ") + kv.first;
  std::fprintf(f, "%s\n", known.c_str());
}

void on_sigint(int) {
  if (g_interrupted) std::_Exit(130);  // a second Ctrl-C stops at once
  g_interrupted = true;
}

// Under mpirun (issue 24): errors name the rank, and a failing rank ends the whole job
// at once (the others may be waiting in a collective).
std::string rank_prefix() {
  const memel::dist::Group& g = memel::dist::Group::world();
  return g.size() > 1 ? "rank " + std::to_string(g.rank()) + " of " + std::to_string(g.size()) + ": " : "";
}
int end_job(int code) {
  const memel::dist::Group& g = memel::dist::Group::world();
  if (g.size() > 1) {
    std::fflush(stderr);
    std::fflush(stdout);
    g.abort(code);
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config, out, resume, compare;
  std::vector<std::string> sets, sweep, allow_change;
  bool print = false, dry = false, quiet = false;
  int seeds = 1;
  int64_t validate = 0;
  double validate_lr = 1e-4;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "memel-train: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--config") config = value("--config");
    else if (a == "--set") sets.push_back(value("--set"));
    else if (a == "--out") out = value("--out");
    else if (a == "--resume") resume = value("--resume");
    else if (a == "--allow-change") {
      std::stringstream ss(value("--allow-change"));
      for (std::string k; std::getline(ss, k, ',');)
        if (!k.empty()) allow_change.push_back(k);
    } else if (a == "--print-config") print = true;
    else if (a == "--dry-run") dry = true;
    else if (a == "--quiet") quiet = true;
    else if (a == "--compare") compare = value("--compare");
    else if (a == "--seeds") seeds = std::atoi(value("--seeds").c_str());
    else if (a == "--sweep") sweep.push_back(value("--sweep"));
    else if (a == "--validate") validate = std::atoll(value("--validate").c_str());
    else if (a == "--validate-lr") validate_lr = std::atof(value("--validate-lr").c_str());
    else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "memel-train: unknown argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (config.empty() && sets.empty()) {
    usage(stderr);
    return 2;
  }
  try {
    json cfg = resolve_config(config, sets);
    if (print) {
      std::cout << with_memel_expanded(cfg).dump(2) << "\n";
      return 0;
    }
    RunOptions ro;
    ro.out_dir = out;
    ro.quiet = quiet;
    ro.dry_run = dry;
    ro.validate = validate;
    ro.validate_lr = validate_lr;
    ro.allow_change = allow_change;
    if (resume == "last") resume = out.empty() ? default_run_dir(cfg) : out;
    ro.resume = resume;
    if (!allow_change.empty() && resume.empty()) {
      std::fprintf(stderr, "memel-train: --allow-change is for --resume (a fresh run takes its config as given)\n");
      return 2;
    }
    if (!resume.empty() && ro.out_dir.empty())
      ro.out_dir = std::filesystem::exists(std::filesystem::path(resume) / "state.json")
                       ? std::filesystem::path(resume).parent_path().parent_path().string()
                       : resume;
    std::signal(SIGINT, on_sigint);
    std::signal(SIGTERM, on_sigint);
    if (!compare.empty()) {
      std::vector<std::string> variants;
      std::stringstream ss(compare);
      std::string v;
      while (std::getline(ss, v, ',')) variants.push_back(v);
      run_comparison(cfg, variants, seeds, sweep, ro);
    } else {
      run_training(cfg, ro);
    }
    return 0;
  } catch (const NonFiniteLoss& e) {
    std::fprintf(stderr, "memel-train: %sstopped: %s\n", rank_prefix().c_str(), e.what());
    return end_job(3);
  } catch (const Interrupted& e) {
    std::fprintf(stderr, "memel-train: interrupted; resume with --resume %s\n", e.what());
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memel-train: %serror: %s\n", rank_prefix().c_str(), e.what());
    return end_job(1);
  }
}
