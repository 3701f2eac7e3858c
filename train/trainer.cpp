#include "train/trainer.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "train/config.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "memel/dump.h"
#include "core/file_io.h"
#include "core/json_int.h"
#include "memel/layer.h"
#include "memel/validation.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "train/task.h"
#include "tensor/tensor_io.h"

namespace fs = std::filesystem;

namespace memel::train {

std::atomic<bool> g_interrupted{false};

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", (long long)step);
  return buf;
}

// A checkpoint directory's name: "step-" and digits, nothing else (so "step-N.tmp" being
// written and "step-N.old" being removed never count as checkpoints).
bool is_checkpoint_name(const std::string& n) {
  return n.size() > 5 && n.rfind("step-", 0) == 0 &&
         std::all_of(n.begin() + 5, n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Leftovers of a run killed while writing or pruning a checkpoint (step-N.tmp/,
// step-N.old/: never checkpoints) are removed, and nothing else; a complete checkpoint
// moved aside for a new one of the same step (step-N.replaced/) comes back when the new
// one did not get into place.
void tidy_checkpoints(const fs::path& d) {
  if (!fs::is_directory(d)) return;
  std::vector<fs::path> found;
  for (auto& e : fs::directory_iterator(d)) found.push_back(e.path());
  for (const fs::path& p : found) {
    const std::string n = p.filename().string(), base = n.substr(0, n.find('.')), suffix = n.substr(base.size());
    if (!is_checkpoint_name(base)) continue;  // not ours (e.g. a user's step-16-backup/)
    if (suffix == ".replaced" && !fs::exists(d / base))
      fs::rename(p, d / base);
    else if (suffix == ".tmp" || suffix == ".old" || suffix == ".replaced")
      fs::remove_all(p);
  }
}

// Fault injection for tests (docs/hardening.md): MEMEL_FAULT_KILL_CHECKPOINT=STEP:POINT
// sends SIGKILL to this process inside the writing of checkpoint STEP, at POINT: begin
// (temporary directory made), model, memel, optimizer, state (after that file),
// replacing (a checkpoint of the same step moved aside), renamed (checkpoint in place,
// older ones not yet pruned), pruning (after the first older checkpoint was moved aside).
void fault_point(int64_t step, const char* point) {
  static const std::string spec = [] {
    const char* e = std::getenv("MEMEL_FAULT_KILL_CHECKPOINT");
    return std::string(e ? e : "");
  }();
  if (!spec.empty() && spec == std::to_string(step) + ":" + point) std::raise(SIGKILL);
}


// Memel options from the config's "memel" section (minus the trainer's own keys).
struct MemelSetup {
  bool enabled = false;
  MemelOptions opts;
  std::vector<std::string> monitor_at;
  int64_t dump_every = 0;
};

MemelSetup memel_setup(const json& cfg) {
  MemelSetup s;
  const json& m = cfg.at("memel");
  if (m.is_null()) return s;
  MEMEL_CHECK(m.is_object(), "[config] memel: expected an object or null");
  json o = m;
  if (o.contains("dump_every")) {
    s.dump_every = get_int(o, "dump_every", "memel");
    o.erase("dump_every");
  }
  if (o.contains("monitor_at")) {
    MEMEL_CHECK(o["monitor_at"].is_array(), "[config] memel.monitor_at: expected a list of module names");
    for (auto& e : o["monitor_at"]) s.monitor_at.push_back(e.get<std::string>());
    o.erase("monitor_at");
  }
  if (!o.contains("at")) o["at"] = "paper";
  s.opts = MemelOptions::from_json(o);
  s.enabled = true;
  return s;
}

// AdamOptions / AdamWOptions from the optimizer section (same fields).
template <typename O>
O adam_options(const json& c, double lr, double wd) {
  O o;
  o.lr = lr;
  o.weight_decay = wd;
  o.beta1 = get_num(c, "beta1", "optimizer");
  o.beta2 = get_num(c, "beta2", "optimizer");
  o.eps = get_num(c, "eps", "optimizer");
  return o;
}

std::unique_ptr<Optimizer> make_optimizer(const json& c, Module& model) {
  const std::string type = get_str(c, "type", "optimizer");
  const double lr = get_num(c, "lr", "optimizer"), wd = get_num(c, "weight_decay", "optimizer");
  if (type == "adamw")
    return std::make_unique<AdamW>(param_groups_with_decay(model, wd), adam_options<AdamWOptions>(c, lr, wd));
  if (type == "adam") return std::make_unique<Adam>(model.parameters(), adam_options<AdamOptions>(c, lr, wd));
  if (type == "sgd") {
    SGDOptions o;
    o.lr = lr;
    o.weight_decay = wd;
    o.momentum = get_num(c, "momentum", "optimizer");
    o.nesterov = get_bool(c, "nesterov", "optimizer");
    return std::make_unique<SGD>(model.parameters(), o);
  }
  MEMEL_FAIL("[config] optimizer.type: unknown optimizer '", type, "' (known: adamw, adam, sgd)");
}

ScheduleConfig make_schedule(const json& c, double lr, int64_t total) {
  ScheduleConfig s;
  s.kind = get_str(c, "kind", "schedule");
  s.lr = lr;
  s.min_lr = get_num(c, "min_lr", "schedule");
  s.total_steps = total;
  const int64_t ws = get_int(c, "warmup_steps", "schedule");
  const double wr = get_num(c, "warmup_ratio", "schedule");
  s.warmup_steps = ws > 0 ? ws : static_cast<int64_t>(std::llround(wr * double(total)));
  s.step_size = get_int(c, "step_size", "schedule");
  s.gamma = get_num(c, "gamma", "schedule");
  s.validate();
  return s;
}

// The newest checkpoint directory under run_dir/checkpoints with a readable state.json.
std::string latest_checkpoint(const std::string& run_dir) {
  const fs::path d = fs::path(run_dir) / "checkpoints";
  std::string best;
  if (!fs::exists(d)) return best;
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(d)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && is_checkpoint_name(n)) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    const fs::path p = d / *it;
    bool ok = fs::exists(p / "state.json") && fs::exists(p / "model.safetensors") && fs::exists(p / "optimizer.safetensors");
    if (ok) {
      try {
        std::ifstream f(p / "state.json");
        json j = json::parse(f);
        (void)j.at("step");
        // The weight files must parse too (a truncated file is refused).
        load_safetensors((p / "model.safetensors").string());
        load_optimizer_state((p / "optimizer.safetensors").string());
        if (fs::exists(p / "memel.safetensors")) load_safetensors((p / "memel.safetensors").string());
        return p.string();
      } catch (const std::exception& e) {
        std::cerr << "[memel-train] skipping unreadable checkpoint " << p.string() << ": " << e.what() << "\n";
      }
    }
  }
  return best;
}

class Progress {
 public:
  Progress(bool quiet, int64_t total) : quiet_(quiet), total_(total), tty_(isatty(2) != 0) {}
  void update(int64_t step, double loss, double lr, double items_per_s, double step_ms, int64_t log_every) {
    if (quiet_) return;
    const double eta = (total_ - step) * step_ms / 1000.0;
    char buf[256];
    std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  lr %.2e  %.1f items/s  ETA %02d:%02d",
                  (long long)step, (long long)total_, loss, lr, items_per_s, int(eta) / 60, int(eta) % 60);
    if (tty_) {
      const int width = 24;
      const int fill = total_ > 0 ? int(width * step / total_) : 0;
      std::fprintf(stderr, "\r[%s%s] %s   ", std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), buf);
      std::fflush(stderr);
    } else if (log_every > 0 && (step % log_every == 0 || step == total_)) {
      std::printf("%s\n", buf);
      std::fflush(stdout);
    }
  }
  void line(const std::string& s) {
    if (quiet_) return;
    if (tty_) std::fprintf(stderr, "\r%s\n", std::string(100, ' ').c_str());
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  }

 private:
  bool quiet_;
  int64_t total_;
  bool tty_;
};

}  // namespace

std::string default_run_dir(const json& cfg) {
  std::string name = cfg.at("name").get<std::string>();
  if (name.empty()) {
    name = cfg.at("task").get<std::string>() + "-" + cfg.at("model").at("name").get<std::string>();
    const json& m = cfg.at("memel");
    name += m.is_object() ? "-memel-" + m.value("mode", std::string("rd")) : "-baseline";
    name += "-seed" + std::to_string(cfg.at("seed").get<int64_t>());
  }
  return (fs::path(cfg.at("out").get<std::string>()) / name).string();
}

json run_training(const json& cfg, const RunOptions& ro) {
  const auto t_start = Clock::now();
  const int64_t threads = cfg.at("threads").get<int64_t>();
  MEMEL_CHECK(threads >= 0 && threads <= 4096, "[config] threads: expected 0 (all cores) to 4096, got ", threads);
  set_num_threads(static_cast<int>(threads));
  MEMEL_CHECK(cfg.at("device").get<std::string>() == "cpu", "[config] device: '", cfg.at("device").get<std::string>(),
              "' is not available in this build (the CUDA backend is not finished); use \"cpu\"");
  const uint64_t seed = static_cast<uint64_t>(cfg.at("seed").get<int64_t>());
  manual_seed(seed);

  std::unique_ptr<Task> task = make_task(cfg);
  std::shared_ptr<Module> model = task->model();
  const MemelSetup ms = memel_setup(cfg);
  std::vector<std::string> memel_names;
  if (ms.enabled) {
    memel_names = attach_memel(*model, ms.opts, task->paper_targets());
    if (!ms.monitor_at.empty()) {
      MemelOptions mon = ms.opts;
      mon.mode = MemelMode::Monitor;
      mon.regularizer = "none";
      mon.at = ms.monitor_at;
      for (auto& n : attach_memel(*model, mon)) memel_names.push_back(n);
    }
  }

  const json& tc = cfg.at("train");
  const int64_t batch_size = get_int(tc, "batch_size", "train"), accum = get_int(tc, "grad_accum", "train");
  MEMEL_CHECK(batch_size >= 1 && accum >= 1, "[config] train.batch_size and train.grad_accum must be >= 1");
  DataLoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.seed = seed;
  lo.num_workers = static_cast<int>(get_int(tc, "workers", "train"));
  DataLoader loader(task->train_set(), lo);
  MEMEL_CHECK(loader.batches_per_epoch() > 0, "[memel-train] the training set (", task->train_set()->size(),
              " examples) is smaller than one batch of ", batch_size);
  const int64_t steps_per_epoch = std::max<int64_t>(1, loader.batches_per_epoch() / accum);
  const int64_t total_steps =
      get_int(tc, "steps", "train") > 0 ? get_int(tc, "steps", "train") : get_int(tc, "epochs", "train") * steps_per_epoch;
  const int64_t eval_every = get_int(tc, "eval_every", "train") > 0 ? get_int(tc, "eval_every", "train") : steps_per_epoch;
  const int64_t log_every = std::max<int64_t>(1, get_int(tc, "log_every", "train"));
  const double clip = get_num(tc, "clip_grad_norm", "train");
  const json& ck = cfg.at("checkpoint");
  const int64_t ckpt_every = get_int(ck, "every", "checkpoint") > 0 ? get_int(ck, "every", "checkpoint") : eval_every;
  const int64_t keep_last = get_int(ck, "keep_last", "checkpoint");

  auto opt = make_optimizer(cfg.at("optimizer"), *model);
  LRSchedule sched(make_schedule(cfg.at("schedule"), get_num(cfg.at("optimizer"), "lr", "optimizer"), total_steps));

  Progress progress(ro.quiet, total_steps);
  if (ro.dry_run) {
    Example b = loader.next_batch();
    task->before_forward(b);
    Tensor loss = task->loss(b);
    if (ms.enabled) loss = add(loss, memel_regularization(*model));
    backward(loss);
    opt->step();
    progress.line("[memel-train] dry run: model " + cfg.at("model").at("name").get<std::string>() + " with " +
                  std::to_string(model->num_parameters()) + " parameters, one batch of " + std::to_string(batch_size) +
                  ", loss " + std::to_string(loss.item()) + (memel_names.empty() ? "" : ", memel at " + std::to_string(memel_names.size()) + " point(s)"));
    return {{"dry_run", true}, {"loss", loss.item()}};
  }

  // --- run directory, resume ----------------------------------------------------
  const std::string run_dir = ro.out_dir.empty() ? default_run_dir(cfg) : ro.out_dir;
  const fs::path rd(run_dir);
  int64_t step = 0;
  double best = std::nan("");
  std::string resume_ckpt;
  if (!ro.resume.empty()) {
    tidy_checkpoints(fs::path(ro.resume) / "checkpoints");
    resume_ckpt = fs::exists(fs::path(ro.resume) / "state.json") ? ro.resume : latest_checkpoint(ro.resume);
    MEMEL_CHECK(!resume_ckpt.empty(), "[memel-train] --resume ", ro.resume, ": no complete checkpoint found");
  } else if (fs::exists(rd / "metrics.jsonl") && !ro.allow_existing) {
    MEMEL_FAIL("[memel-train] run directory ", run_dir, " already holds a run; use --resume ", run_dir,
               " to continue it or --out to choose another directory");
  }
  fs::create_directories(rd / "checkpoints");
  fs::create_directories(rd / "stats");
  tidy_checkpoints(rd / "checkpoints");
  fs::remove(rd / "summary.json");  // a finished run's summary, which this run replaces
  write_file_atomic((rd / "config.resolved.json").string(), cfg.dump(2) + "\n");

  std::vector<json> metric_lines;  // kept so a resume can rewrite the file up to its step
  if (!resume_ckpt.empty()) {
    const fs::path cp(resume_ckpt);
    std::ifstream sf(cp / "state.json");
    json st = json::parse(sf);
    StateDict sd;
    for (auto& [k, t] : load_safetensors((cp / "model.safetensors").string()).tensors) sd[k] = t;
    if (fs::exists(cp / "memel.safetensors"))
      for (auto& [k, t] : load_safetensors((cp / "memel.safetensors").string()).tensors) sd[k] = t;
    prepare_memel_layers_for_load(*model, sd);
    model->load_state_dict(sd);
    opt->load_state_dict(load_optimizer_state((cp / "optimizer.safetensors").string()));
    // state.json may have been edited by hand: integers are checked before conversion.
    const std::string where = (cp / "state.json").string();
    auto state_int = [&](const json& v, const char* what) {
      return json_int64_checked(v, false, "[memel-train] ", where, ": ", what, " is not an integer");
    };
    auto state_u64 = [&](const json& v, const char* what) {
      MEMEL_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), "[memel-train] ", where,
                  ": ", what, " is not a non-negative integer");
      return v.get<uint64_t>();
    };
    sched.load_state_dict(st.at("schedule"));
    loader.set_position({state_int(st.at("loader").at("epoch"), "loader.epoch"),
                         state_int(st.at("loader").at("batch"), "loader.batch")});
    default_generator().set_state(state_u64(st.at("rng").at("seed"), "rng.seed"),
                                  state_u64(st.at("rng").at("offset"), "rng.offset"));
    step = state_int(st.at("step"), "step");
    if (st.contains("best") && !st["best"].is_null()) best = st["best"].get<double>();
    // Keep the metric lines up to the checkpoint; later ones belong to the lost run.
    std::ifstream mf(rd / "metrics.jsonl");
    std::string line;
    while (std::getline(mf, line)) {
      if (line.empty()) continue;
      try {
        json j = json::parse(line);
        if (j.value("step", int64_t(0)) <= step) metric_lines.push_back(j);
      } catch (...) {
        break;  // a torn last line
      }
    }
    progress.line("[memel-train] resumed from " + resume_ckpt + " at step " + std::to_string(step));
  }
  // The latest evaluation so far (a run resumed at its last step evaluates nothing more).
  json last_eval;
  for (const json& j : metric_lines)
    if (j.is_object() && j.contains("split") && j["split"] == "eval") {
      last_eval = j;
      last_eval.erase("step");
      last_eval.erase("split");
    }
  std::string text;
  for (auto& j : metric_lines) text += j.dump() + "\n";
  write_file_atomic((rd / "metrics.jsonl").string(), text);
  std::ofstream metrics((rd / "metrics.jsonl").string(), std::ios::app);
  auto emit = [&](const json& j) {
    metrics << j.dump() << "\n";
    metrics.flush();
    // A full disk must stop the run with a clear error, not lose metric lines silently.
    MEMEL_CHECK(metrics.good(), "[memel-train] cannot append to ", (rd / "metrics.jsonl").string(), " (",
                std::strerror(errno), "; disk full?)");
  };

  std::string last_ckpt = resume_ckpt;
  // A checkpoint is written into step-N.tmp/ and renamed to step-N/ when complete; older
  // ones are renamed to step-N.old/ before they are removed (and one of the same step to
  // step-N.replaced/ until the new one is in place), so a crash at any point leaves only
  // complete step-N/ directories. A failure (e.g. a full disk) removes the
  // temporary directory and stops the run naming the last complete checkpoint.
  auto save_checkpoint = [&](int64_t s) {
    const fs::path dir = rd / "checkpoints" / step_name(s);
    const fs::path tmp = rd / "checkpoints" / (step_name(s) + ".tmp");
    const fs::path replaced = rd / "checkpoints" / (step_name(s) + ".replaced");
    try {
      fs::remove_all(tmp);
      fs::create_directories(tmp);
      fault_point(s, "begin");
      task->save_weights((tmp / "model.safetensors").string());
      fault_point(s, "model");
      std::map<std::string, Tensor> mem;
      for (auto& [name, layer] : memel_layers(*model))
        for (auto& [k, t] : layer->state_dict()) mem[name + "." + k] = t;
      if (!mem.empty()) save_safetensors((tmp / "memel.safetensors").string(), mem);
      fault_point(s, "memel");
      save_optimizer_state((tmp / "optimizer.safetensors").string(), opt->state_dict());
      fault_point(s, "optimizer");
      const LoaderPosition p = loader.position();
      json st = {{"step", s},
                 {"loader", {{"epoch", p.epoch}, {"batch", p.batch}}},
                 {"rng", {{"seed", default_generator().seed()}, {"offset", default_generator().offset()}}},
                 {"schedule", sched.state_dict()},
                 {"best", std::isnan(best) ? json(nullptr) : json(best)}};
      write_file_atomic((tmp / "state.json").string(), st.dump(2) + "\n");
      fault_point(s, "state");
      if (fs::exists(dir)) {  // the same step again: the old one is moved aside until the new one is in place
        fs::remove_all(replaced);
        fs::rename(dir, replaced);
        fault_point(s, "replacing");
      }
      fs::rename(tmp, dir);
      fs::remove_all(replaced);
    } catch (const std::exception& e) {
      std::error_code ec;
      fs::remove_all(tmp, ec);
      if (!fs::exists(dir, ec) && fs::exists(replaced, ec)) fs::rename(replaced, dir, ec);
      MEMEL_FAIL("[memel-train] cannot write checkpoint ", dir.string(), ": ", e.what(), "; the last complete checkpoint is ",
                 last_ckpt.empty() ? std::string("none") : last_ckpt);
    }
    last_ckpt = dir.string();
    fault_point(s, "renamed");
    // keep_last: remove older step directories (each moved aside first).
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(rd / "checkpoints")) {
      const std::string n = e.path().filename().string();
      if (is_checkpoint_name(n)) names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    for (size_t i = 0; keep_last > 0 && i + keep_last < names.size(); ++i) {
      const fs::path victim = rd / "checkpoints" / names[i], aside = rd / "checkpoints" / (names[i] + ".old");
      fs::remove_all(aside);
      fs::rename(victim, aside);
      fault_point(s, "pruning");
      fs::remove_all(aside);
    }
  };

  auto evaluate = [&](int64_t s) {
    NoGradGuard ng;
    model->eval();
    task->eval_reset();
    DataLoaderOptions eo;
    eo.batch_size = get_int(tc, "eval_batch_size", "train");
    eo.shuffle = false;
    eo.num_workers = lo.num_workers;
    DataLoader el(task->eval_set(), eo);
    Example b;
    while (el.next(b)) {
      task->before_forward(b);
      task->eval_batch(b);
    }
    model->train();
    json m = task->eval_metrics();
    json line = {{"step", s}, {"split", "eval"}};
    for (auto& kv : m.items()) line[kv.key()] = kv.value();
    emit(line);
    last_eval = m;
    const double v = m.at(task->primary_metric()).get<double>();
    if (get_bool(ck, "best", "checkpoint") &&
        (std::isnan(best) || (task->higher_is_better() ? v > best : v < best))) {
      best = v;
      const fs::path bd = rd / "checkpoints" / "best";
      fs::create_directories(bd);
      task->save_weights((bd / "model.safetensors").string());
      write_file_atomic((bd / "metrics.json").string(), line.dump(2) + "\n");
    }
    std::ostringstream os;
    os << "[eval] step " << s;
    for (auto& kv : m.items()) os << "  " << kv.key() << " " << kv.value().dump();
    progress.line(os.str());
  };

  // Fault injection for tests: MEMEL_FAULT_KILL_STEP=N sends SIGKILL to this process
  // right after step N (before that step's evaluation and checkpoint).
  const char* kill_env = std::getenv("MEMEL_FAULT_KILL_STEP");
  const int64_t kill_step = kill_env ? std::atoll(kill_env) : -1;
  MemelDump final_dump;
  model->train();
  double items = 0, wait_ms = 0, window_ms = 0, rate = 0;
  auto t_window = Clock::now();
  while (step < total_steps) {
    if (g_interrupted) {
      save_checkpoint(step);
      progress.line("[memel-train] interrupted: checkpoint written to " + last_ckpt);
      throw Interrupted(last_ckpt);
    }
    const auto t_step = Clock::now();
    sched.apply(*opt);
    const double lr = opt->lr(0);
    double loss_sum = 0;
    for (int64_t a = 0; a < accum; ++a) {
      const auto t_data = Clock::now();
      Example b = loader.next_batch();
      wait_ms += ms_since(t_data);
      items += double(task->batch_items(b));
      task->before_forward(b);
      Tensor loss = task->loss(b);
      if (ms.enabled) loss = add(loss, memel_regularization(*model));
      const double lv = loss.item();
      if (!std::isfinite(lv)) {
        std::ostringstream os;
        os << "loss is " << lv << " at step " << step + 1 << "; last good checkpoint: "
           << (last_ckpt.empty() ? std::string("none") : last_ckpt);
        throw NonFiniteLoss(os.str());
      }
      loss_sum += lv;
      backward(accum > 1 ? mul(loss, 1.0 / double(accum)) : loss);
    }
    const std::vector<Tensor> params = model->parameters();
    const double gnorm = clip > 0 ? clip_grad_norm(params, clip) : grad_norm(params);
    // A finite loss can still come with non-finite gradients (a NaN input behind a ReLU):
    // stop before the update writes them into the weights and the next checkpoints.
    if (!std::isfinite(gnorm)) {
      std::ostringstream os;
      os << "gradient norm is " << gnorm << " at step " << step + 1 << " (NaN or inf in the batch or the model)"
         << "; last good checkpoint: " << (last_ckpt.empty() ? std::string("none") : last_ckpt);
      throw NonFiniteLoss(os.str());
    }
    opt->step();
    opt->zero_grad();
    sched.step();
    ++step;
    window_ms += ms_since(t_step);
    if (step == kill_step) std::raise(SIGKILL);
    const double loss_v = loss_sum / double(accum);
    if (step % log_every == 0 || step == total_steps) {
      emit({{"step", step}, {"split", "train"}, {"loss", loss_v}, {"lr", lr}, {"grad_norm", gnorm}});
      const double sec = std::chrono::duration<double>(Clock::now() - t_window).count();
      rate = items / std::max(sec, 1e-9);
      emit({{"step", step}, {"split", "perf"}, {"items_per_s", rate},
            {"step_ms", window_ms / double(log_every)}, {"data_wait_ms", wait_ms / double(log_every)}});
      items = wait_ms = window_ms = 0;
      t_window = Clock::now();
    }
    progress.update(step, loss_v, lr, rate, ms_since(t_step), log_every);
    if (step % eval_every == 0 || step == total_steps) evaluate(step);
    if (ms.enabled && step == total_steps) final_dump = collect_memel_dump(*model, step);
    if (ms.enabled && ((ms.dump_every > 0 && step % ms.dump_every == 0) || step == total_steps))
      write_memel_dump(*model, (rd / "stats" / step_name(step)).string(), step);
    if (step % ckpt_every == 0 || step == total_steps) save_checkpoint(step);
  }
  metrics.close();

  json validation;
  if (ro.validate > 0) {
    // The first layer of the main placement (not a monitor_at one).
    auto layers = memel_layers(*model);
    MEMEL_CHECK(!layers.empty(), "[memel-train] --validate needs a memel layer (set \"memel\" in the config)");
    std::stable_partition(layers.begin(), layers.end(), [&](const auto& l) { return l.first == memel_names.front(); });
    auto eval_set = task->eval_set();
    const int64_t n = std::min<int64_t>(ro.validate, eval_set->size());
    auto loss_of = [&](int64_t i) {
      Example b = eval_set->get_batch({i});
      task->before_forward(b);
      return task->loss(b);
    };
    auto step_fn = [&] {
      AdamWOptions o;  // a fresh optimiser each sample: one clean step
      o.lr = ro.validate_lr;
      o.weight_decay = 0.0;
      AdamW fresh(model->parameters(), o);
      fresh.step();
    };
    auto rows = validate_inhibition(*model, *layers[0].second, loss_of, step_fn, n);
    validation = validation_to_json(rows);
    write_file_atomic((rd / "validation.json").string(), validation.dump(2) + "\n");
    progress.line("[validate] layer " + layers[0].first + ", " + std::to_string(n) + " samples, one AdamW step (lr " +
                  std::to_string(ro.validate_lr) + ") each\n" + format_validation_table(rows));
  }

  json summary = {{"run_dir", run_dir},
                  {"steps", step},
                  {"final", last_eval},
                  {"best", std::isnan(best) ? json(nullptr) : json(best)},
                  {"primary_metric", task->primary_metric()},
                  {"wall_s", ms_since(t_start) / 1000.0},
                  {"memel_layers", memel_names},
                  {"memel_mean_ms", [&] {
                     json m = json::object();
                     for (auto& l : final_dump.layers) m[l.name] = l.mean_ms;
                     return m;
                   }()},
                  {"checkpoint", last_ckpt},
                  {"validation", validation}};
  write_file_atomic((rd / "summary.json").string(), summary.dump(2) + "\n");
  if (!ro.quiet) {
    std::ostringstream os;
    os << "[memel-train] done: " << step << " steps in " << summary["wall_s"].get<double>() << " s\n";
    os << "  results:  " << (rd / "summary.json").string() << "  (" << task->primary_metric() << " "
       << (last_eval.is_object() ? last_eval.value(task->primary_metric(), 0.0) : std::nan("")) << ", best "
       << summary["best"].dump() << ")\n";
    os << "  metrics:  " << (rd / "metrics.jsonl").string() << "\n";
    if (ms.enabled) os << "  dumps:    " << (rd / "stats").string() << "  (memel-inspect stats " << (rd / "stats" / step_name(step)).string() << ")";
    progress.line(os.str());
  }
  return summary;
}

namespace {

// The summary of a run that finished in run_dir with exactly this resolved config, or
// null: a comparison reuses such runs, so it can be stopped and started again, or its
// variants run by several processes into one directory.
json finished_run_summary(const fs::path& run_dir, const json& cfg) {
  std::ifstream sf(run_dir / "summary.json"), cf(run_dir / "config.resolved.json");
  if (!sf || !cf) return nullptr;
  const json sum = json::parse(sf, nullptr, false), used = json::parse(cf, nullptr, false);
  if (sum.is_discarded() || used.is_discarded() || used != cfg || !sum.is_object() || !sum.contains("final"))
    return nullptr;
  return sum;
}

}  // namespace

json run_comparison(const json& cfg, const std::vector<std::string>& variants, int seeds,
                    const std::vector<std::string>& sweep, const RunOptions& ro) {
  MEMEL_CHECK(seeds >= 1, "[memel-train] --seeds must be >= 1");
  const std::string out = ro.out_dir.empty() ? default_run_dir(cfg) + "-compare" : ro.out_dir;
  fs::create_directories(out);
  // Expand the sweep grid.
  std::vector<std::pair<std::string, json>> grid = {{"", json::object()}};
  for (const std::string& s : sweep) {
    const size_t eq = s.find('=');
    MEMEL_CHECK(eq != std::string::npos, "[memel-train] --sweep expects key=v1,v2,..., got '", s, "'");
    const std::string key = s.substr(0, eq);
    std::vector<json> values;
    std::stringstream ss(s.substr(eq + 1));
    std::string v;
    while (std::getline(ss, v, ',')) values.push_back(json::parse(v));
    std::vector<std::pair<std::string, json>> next;
    for (auto& [name, o] : grid)
      for (auto& val : values) {
        json o2 = o;
        o2[key] = val;
        next.emplace_back(name + (name.empty() ? "" : ",") + key + "=" + val.dump(), o2);
      }
    grid = next;
  }
  json results = json::array();
  std::map<std::string, std::map<std::string, std::vector<double>>> table;  // variant -> metric -> values
  std::vector<std::string> order;
  for (const std::string& var : variants) {
    const bool baseline = var == "baseline";
    for (size_t gi = 0; gi < (baseline ? 1 : grid.size()); ++gi) {
      const std::string& gname = grid[gi].first;
      const json& gover = grid[gi].second;
      const std::string label = baseline || gname.empty() ? var : var + "(" + gname + ")";
      order.push_back(label);
      for (int s = 0; s < seeds; ++s) {
        json c = cfg;
        const int64_t seed0 = cfg.at("seed").get<int64_t>();
        MEMEL_CHECK(seed0 <= INT64_MAX - seeds, "[memel-train] seed ", seed0, " + --seeds ", seeds, " overflows int64");
        c["seed"] = seed0 + s;
        if (baseline) {
          c["memel"] = nullptr;
        } else {
          json m = c["memel"].is_object() ? c["memel"] : json{{"at", "paper"}};
          m["mode"] = var;
          for (auto& kv : gover.items()) m[kv.key()] = kv.value();
          if (gover.contains("delta")) m["mode"] = "scaled";
          c["memel"] = m;
        }
        RunOptions r = ro;
        r.out_dir = (fs::path(out) / (label + "-seed" + std::to_string(c["seed"].get<int64_t>()))).string();
        r.allow_existing = true;
        json sum = finished_run_summary(r.out_dir, c);
        if (!ro.quiet)
          std::printf("[compare] %s seed %d -> %s%s\n", label.c_str(), int(c["seed"].get<int64_t>()), r.out_dir.c_str(),
                      sum.is_null() ? "" : " (finished with this config: reused)");
        if (sum.is_null()) sum = run_training(c, r);
        results.push_back({{"variant", label}, {"seed", c["seed"]}, {"final", sum["final"]}, {"best", sum["best"]},
                           {"run_dir", r.out_dir}});
        for (auto& kv : sum["final"].items())
          if (kv.value().is_number()) table[label][kv.key()].push_back(kv.value().get<double>());
        // Mean MS per memel layer over the last dump window (the toy comparison's figure).
        for (auto& kv : sum["memel_mean_ms"].items()) table[label]["MS " + kv.key()].push_back(kv.value().get<double>());
      }
    }
  }
  // Mean +- sample std per metric.
  std::set<std::string> metric_names;
  for (auto& [v, m] : table)
    for (auto& kv : m) metric_names.insert(kv.first);
  std::ostringstream md;
  md << "| variant |";
  for (auto& n : metric_names) md << " " << n << " |";
  md << "\n|---|";
  for (size_t i = 0; i < metric_names.size(); ++i) md << "---|";
  md << "\n";
  json summary = json::object();
  for (auto& v : order) {
    md << "| " << v << " |";
    for (auto& n : metric_names) {
      const auto& xs = table[v][n];
      if (xs.empty()) {
        md << " - |";
        continue;
      }
      double mean = 0, sd = 0;
      for (double x : xs) mean += x / double(xs.size());
      for (double x : xs) sd += (x - mean) * (x - mean);
      sd = xs.size() > 1 ? std::sqrt(sd / double(xs.size() - 1)) : 0.0;
      char buf[96];
      std::snprintf(buf, sizeof buf, " %.4f ± %.4f |", mean, sd);
      md << buf;
      summary[v][n] = {{"mean", mean}, {"std", sd}, {"n", xs.size()}, {"values", xs}};
    }
    md << "\n";
  }
  json out_j = {{"seeds", seeds}, {"variants", order}, {"summary", summary}, {"runs", results}};
  write_file_atomic((fs::path(out) / "compare.json").string(), out_j.dump(2) + "\n");
  write_file_atomic((fs::path(out) / "compare.md").string(), md.str());
  if (!ro.quiet) std::printf("\n%s\n[compare] table: %s\n", md.str().c_str(), (fs::path(out) / "compare.md").string().c_str());
  return out_j;
}

}  // namespace memel::train
