// memel-inspect: look inside memel's files.
//
//   memel-inspect weights FILE     tensors of a safetensors file (names, dtypes, shapes,
//                                  parameter count) and its metadata
//   memel-inspect stats DUMP [--top N] [--tau T] [--plot FILE.png]
//                                  per-layer summary of a memel statistics dump
//   memel-inspect diff A B [--tau T] [--plot FILE.png]
//                                  layer-by-layer comparison of two dumps
//   memel-inspect --help
//
// Each subcommand is one function taking its own arguments; add statistics dumps
// (`stats DUMP`) and comparisons (`diff A B`) to kCommands below.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "memel/inspect.h"

namespace {

using Args = std::vector<std::string>;

struct Command {
  const char* name;
  const char* usage;  // arguments after the name
  const char* help;
  int (*run)(const Args& args);  // returns the exit status; throws memel::Error on bad input
};

// Thrown for bad command lines (exit status 2, with the usage).
struct UsageError {
  std::string msg;
};

std::string shape_string(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1000000) std::snprintf(buf, sizeof(buf), " (%.2f M)", n / 1e6);
  else if (n >= 1000) std::snprintf(buf, sizeof(buf), " (%.1f k)", n / 1e3);
  else buf[0] = '\0';
  return std::to_string(n) + buf;
}

// --- weights FILE ------------------------------------------------------------------------
int cmd_weights(const Args& args) {
  if (args.size() != 1) throw UsageError{"weights takes exactly one FILE"};
  const std::string& path = args[0];
  memel::SafetensorsHeader h = memel::read_safetensors_header(path);  // validates the whole layout
  std::vector<const memel::SafetensorsEntry*> entries;
  for (const auto& e : h.entries) entries.push_back(&e);
  std::sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->name < b->name; });

  size_t wn = 4, wd = 5, ws = 5;
  for (auto* e : entries) {
    wn = std::max(wn, e->name.size());
    wd = std::max(wd, e->dtype.size());
    ws = std::max(ws, shape_string(e->shape).size());
  }
  std::printf("file: %s\n", path.c_str());
  std::printf("size: %s (header %llu bytes, data %s)\n", human_bytes(double(h.data_start + h.data_size)).c_str(),
              static_cast<unsigned long long>(h.data_start - 8), human_bytes(double(h.data_size)).c_str());
  if (!h.metadata.empty()) {
    std::printf("metadata:\n");
    for (const auto& [k, v] : h.metadata) std::printf("  %s: %s\n", k.c_str(), v.c_str());
  }
  std::printf("tensors: %zu\n", entries.size());
  if (!entries.empty()) {
    std::printf("  %-*s  %-*s  %-*s  %s\n", int(wn), "name", int(wd), "dtype", int(ws), "shape", "params");
    for (auto* e : entries)
      std::printf("  %-*s  %-*s  %-*s  %lld\n", int(wn), e->name.c_str(), int(wd), e->dtype.c_str(), int(ws),
                  shape_string(e->shape).c_str(), static_cast<long long>(e->numel()));
  }
  int64_t total = 0;
  std::map<std::string, int64_t> by_dtype;
  for (auto* e : entries) {
    total += e->numel();
    by_dtype[e->dtype] += e->numel();
  }
  std::printf("parameters: %s", human_count(total).c_str());
  if (by_dtype.size() > 1) {
    std::printf(" [");
    bool first = true;
    for (const auto& [d, n] : by_dtype) {
      std::printf("%s%s %lld", first ? "" : ", ", d.c_str(), static_cast<long long>(n));
      first = false;
    }
    std::printf("]");
  }
  std::printf("\n");
  return 0;
}

// Splits "--flag value" options from positional arguments.
struct Parsed {
  Args pos;
  std::map<std::string, std::string> opt;
};
Parsed parse(const Args& args, const std::vector<std::string>& flags) {
  Parsed p;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].rfind("--", 0) == 0) {
      if (std::find(flags.begin(), flags.end(), args[i]) == flags.end()) throw UsageError{"unknown option " + args[i]};
      if (i + 1 >= args.size()) throw UsageError{args[i] + " needs a value"};
      p.opt[args[i]] = args[i + 1];
      ++i;
    } else {
      p.pos.push_back(args[i]);
    }
  }
  return p;
}

double number(const std::string& s, const std::string& flag) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end) throw UsageError{flag + " expects a number, got '" + s + "'"};
  return v;
}

int cmd_stats(const Args& args) {
  Parsed p = parse(args, {"--top", "--tau", "--plot"});
  if (p.pos.size() != 1) throw UsageError{"stats takes exactly one DUMP"};
  memel::MemelDump d = memel::read_memel_dump(p.pos[0]);
  const double tau = p.opt.count("--tau") ? number(p.opt["--tau"], "--tau") : 10.0;
  std::printf("%s", memel::format_dump_summary(d, tau).c_str());
  if (p.opt.count("--top")) std::printf("\n%s", memel::format_dump_top(d, int64_t(number(p.opt["--top"], "--top"))).c_str());
  if (p.opt.count("--plot")) {
    memel::plot_dump_png(d, p.opt["--plot"]);
    std::printf("histograms written to %s\n", p.opt["--plot"].c_str());
  }
  return 0;
}

int cmd_diff(const Args& args) {
  Parsed p = parse(args, {"--tau", "--plot"});
  if (p.pos.size() != 2) throw UsageError{"diff takes two dumps A B"};
  memel::MemelDump a = memel::read_memel_dump(p.pos[0]), b = memel::read_memel_dump(p.pos[1]);
  const double tau = p.opt.count("--tau") ? number(p.opt["--tau"], "--tau") : 10.0;
  std::printf("%s", memel::format_dump_diff(a, b, tau, "A", "B").c_str());
  if (p.opt.count("--plot")) {
    memel::plot_dump_png(b, p.opt["--plot"], &a);
    std::printf("histograms of B (bars) over A (lines) written to %s\n", p.opt["--plot"].c_str());
  }
  return 0;
}

const Command kCommands[] = {
    {"weights", "FILE", "list the tensors of a safetensors file (name, dtype, shape, parameter count) and its metadata",
     cmd_weights},
    {"stats", "DUMP [--top N] [--tau T] [--plot FILE.png]",
     "per-layer summary of a memel statistics dump; --top: most monosemantic neurons; --plot: MS histograms", cmd_stats},
    {"diff", "A B [--tau T] [--plot FILE.png]",
     "compare two statistics dumps layer by layer (e.g. baseline vs rd): mean MS, share above T, change", cmd_diff},
};

void print_help(std::FILE* out) {
  std::fprintf(out, "usage: memel-inspect COMMAND [ARGS...]\n\ncommands:\n");
  for (const Command& c : kCommands) {
    std::string head = std::string(c.name) + " " + c.usage;
    std::fprintf(out, "  %-16s %s\n", head.c_str(), c.help);
  }
  std::fprintf(out, "\noptions:\n  -h, --help       show this help\n\n"
                    "exit status: 0 success, 1 unreadable or invalid input, 2 bad command line\n");
}

}  // namespace

int main(int argc, char** argv) {
  Args all(argv + 1, argv + argc);
  if (all.empty()) {
    print_help(stderr);
    return 2;
  }
  if (all[0] == "-h" || all[0] == "--help" || all[0] == "help") {
    print_help(stdout);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (all[0] != c.name) continue;
    Args args(all.begin() + 1, all.end());
    if (std::find(args.begin(), args.end(), "--help") != args.end() ||
        std::find(args.begin(), args.end(), "-h") != args.end()) {
      std::printf("usage: memel-inspect %s %s\n  %s\n", c.name, c.usage, c.help);
      return 0;
    }
    try {
      return c.run(args);
    } catch (const UsageError& e) {
      std::fprintf(stderr, "memel-inspect: %s\nusage: memel-inspect %s %s\n", e.msg.c_str(), c.name, c.usage);
      return 2;
    } catch (const memel::Error& e) {
      std::fprintf(stderr, "memel-inspect: %s\n", e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "memel-inspect: %s\n", e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "memel-inspect: unknown command '%s' (see memel-inspect --help)\n", all[0].c_str());
  return 2;
}
