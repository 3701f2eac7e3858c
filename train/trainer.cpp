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
#include <optional>
#include <set>
#include <sstream>

#include "train/config.h"
#include "train/data_parallel.h"
#include "dist/comm.h"
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
#include "train/checkpoint.h"
#include "train/device_task.h"
#include "train/evaluator.h"
#include "train/faults.h"
#include "train/run_dir.h"
#include "train/step.h"
#include "train/task.h"
#include "train/tensorboard.h"
#include "tensor/backend.h"
#include "tensor/tensor_io.h"

namespace fs = std::filesystem;

namespace memel::train {

std::atomic<bool> g_interrupted{false};

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
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

class Progress {
 public:
  Progress(bool quiet, int64_t total) : quiet_(quiet), total_(total), tty_(isatty(2) != 0) {}
  // eta_s: the time left, training and evaluations both.
  void update(int64_t step, double loss, double lr, double items_per_s, double eta_s, int64_t log_every) {
    if (quiet_) return;
    const int eta = int(std::max(0.0, eta_s));
    char buf[256];
    std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  lr %.2e  %.1f items/s  ETA %02d:%02d",
                  (long long)step, (long long)total_, loss, lr, items_per_s, eta / 60, eta % 60);
    if (tty_) {
      bar(total_ > 0 ? double(step) / double(total_) : 0.0, buf);
    } else if (log_every > 0 && (step % log_every == 0 || step == total_)) {
      std::printf("%s\n", buf);
      std::fflush(stdout);
    }
  }
  // Evaluation batches: a bar on a terminal, otherwise a line every 10 s of a long one.
  void eval(int64_t step, int64_t done, int64_t total) {
    if (quiet_ || total <= 0) return;
    char buf[128];
    std::snprintf(buf, sizeof buf, "[eval] step %lld: batch %lld/%lld", (long long)step, (long long)done, (long long)total);
    if (tty_) {
      bar(double(done) / double(total), buf);
    } else if (done == 1) {
      last_line_ = Clock::now();
    } else if (ms_since(last_line_) > 10000.0 && done < total) {
      std::printf("%s\n", buf);
      std::fflush(stdout);
      last_line_ = Clock::now();
    }
  }
  void line(const std::string& s) {
    if (quiet_) return;
    if (tty_) std::fprintf(stderr, "\r%s\n", std::string(100, ' ').c_str());
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  }
  void warn(const std::string& s) {
    if (tty_) std::fprintf(stderr, "\r%s\r", std::string(100, ' ').c_str());
    std::fprintf(stderr, "[memel-train] warning: %s\n", s.c_str());
  }

 private:
  void bar(double frac, const char* text) {
    const int width = 24, fill = std::clamp(int(width * frac), 0, width);
    std::fprintf(stderr, "\r[%s%s] %s   ", std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), text);
    std::fflush(stderr);
  }
  bool quiet_;
  int64_t total_;
  bool tty_;
  Clock::time_point last_line_ = Clock::now();
};

// The run directory a --resume DIR reads from: DIR itself, or the run holding the
// checkpoint DIR names.
fs::path source_run_of(const std::string& resume) {
  const fs::path r(resume);
  return fs::exists(r / "state.json") ? r.parent_path().parent_path() : r;
}

// The resolved config against the one the run has been using: keys that differ, less
// those that cannot change results; those not named in `allowed` refuse the resume.
std::vector<std::string> checked_config_changes(const json& recorded, const json& cfg, const std::vector<std::string>& allowed,
                                                const std::string& run_dir) {
  const std::vector<std::string> changed = result_changing_differences(recorded, cfg);
  std::vector<std::string> refused;
  for (const std::string& k : changed)
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) refused.push_back(k);
  if (!refused.empty()) {
    std::ostringstream os;
    os << "[memel-train] --resume " << run_dir << ": the config differs from the run's in " << refused.size()
       << " key(s):";
    for (const std::string& k : refused)
      os << "\n  " << k << ": " << config_value(recorded, k).dump() << " -> " << config_value(cfg, k).dump();
    os << "\nresume with the run's own config, or name the keys you mean to change: --allow-change ";
    for (size_t i = 0; i < refused.size(); ++i) os << (i ? "," : "") << refused[i];
    MEMEL_FAIL(os.str());
  }
  return changed;
}

}  // namespace

std::string default_run_dir(const json& cfg) {
  std::string name = cfg.at("name").get<std::string>();
  if (name.empty()) {
    name = cfg.at("task").get<std::string>() + "-" + cfg.at("model").at("name").get<std::string>();
    const json& m = cfg.at("memel");
    name += m.is_object() ? "-memel-" + m.value("mode", std::string("rd")) : "-baseline";
    name += "-seed" + std::to_string(config_seed(cfg));
  }
  return (fs::path(cfg.at("out").get<std::string>()) / name).string();
}

json run_training(const json& cfg, const RunOptions& ro) {
  const auto t_start = Clock::now();
  const int64_t threads = cfg.at("threads").get<int64_t>();
  MEMEL_CHECK(threads >= 0 && threads <= 4096, "[config] threads: expected 0 (all cores) to 4096, got ", threads);
  set_num_threads(static_cast<int>(threads));
  const Device device = config_device(cfg.at("device").get<std::string>());
  const uint64_t seed = config_seed(cfg);
  manual_seed(seed);
  // Data-parallel (issue 24): under mpirun every rank runs this loop on its share of each
  // global batch; rank 0 alone writes the run directory (train/data_parallel.h).
  const dist::Group& grp = dist::Group::world();
  const bool root = grp.is_root(), dp = grp.size() > 1;

  std::unique_ptr<Task> task = on_device(make_task(cfg), device);  // batches go to the device
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
  model->to(device);  // parameters and buffers; the optimizer's state follows the parameters
  broadcast_module(*model, grp);  // rank 0's initial weights everywhere
  install_memel_cross_rank(grp);

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
  const int64_t eval_batch = get_int(tc, "eval_batch_size", "train");
  const BatchShard shard = BatchShard::of(batch_size, grp.rank(), grp.size());
  GradSync grad_sync(grp, model->parameters());
  MemelWindowSync window_sync;
  StepOptions so;
  so.accum = accum;
  so.sync = dp ? &grad_sync : nullptr;
  so.clip = get_num(tc, "clip_grad_norm", "train");
  const json& ck = cfg.at("checkpoint");
  const int64_t ckpt_every = get_int(ck, "every", "checkpoint") > 0 ? get_int(ck, "every", "checkpoint") : eval_every;
  const int64_t keep_last = get_int(ck, "keep_last", "checkpoint");
  MEMEL_CHECK(keep_last >= 0, "[config] checkpoint.keep_last: expected >= 0 (0 keeps all), got ", keep_last);

  auto opt = make_optimizer(cfg.at("optimizer"), *model);
  LRSchedule sched(make_schedule(cfg.at("schedule"), get_num(cfg.at("optimizer"), "lr", "optimizer"), total_steps));
  double items = 0, wait_ms = 0, window_ms = 0, rate = 0;  // throughput of the current log window
  auto micro_loss = [&](int64_t) {
    const auto t_data = Clock::now();
    Example global = loader.next_batch();
    wait_ms += ms_since(t_data);
    items += double(task->batch_items(global));
    const Example b = shard.take(global);  // this rank's share (all of it in one process)
    ScopedSampleShard keyed(shard, dp);    // dropout keyed by the global sample index
    task->before_forward(b);
    Tensor loss = task->loss(b);
    return ms.enabled ? add(loss, memel_regularization(*model)) : loss;
  };

  Progress progress(ro.quiet || !root, total_steps);
  if (ro.dry_run) {
    StepOptions one = so;
    one.accum = 1;
    const StepResult r = train_step(model->parameters(), *opt, one, micro_loss);
    progress.line("[memel-train] dry run: model " + cfg.at("model").at("name").get<std::string>() + " with " +
                  std::to_string(model->num_parameters()) + " parameters, one batch of " + std::to_string(batch_size) +
                  ", loss " + std::to_string(r.loss) + (memel_names.empty() ? "" : ", memel at " + std::to_string(memel_names.size()) + " point(s)"));
    return {{"dry_run", true}, {"loss", r.loss}};
  }

  // --- the run directory: locked, then everything checked before any file is touched --
  const std::string run_dir = ro.out_dir.empty() ? default_run_dir(cfg) : ro.out_dir;
  const fs::path rd(run_dir);
  std::optional<RunDirLock> lock;
  if (root) lock.emplace(run_dir);
  Checkpointer checkpoints(run_dir, keep_last);
  const bool resuming = !ro.resume.empty();
  if (!resuming && fs::exists(rd / "metrics.jsonl") && !ro.allow_existing)
    MEMEL_FAIL("[memel-train] run directory ", run_dir, " already holds a run; use --resume ", run_dir,
               " to continue it or --out to choose another directory");
  int64_t step = 0;
  TrainState resumed;  // the checkpoint's state (zero for a fresh run)
  json recorded;       // the config the run has been using (resume)
  std::vector<std::string> changed;
  if (resuming) {
    const fs::path source = source_run_of(ro.resume);
    recorded = recorded_config(source.string());
    if (!recorded.is_null()) changed = checked_config_changes(recorded, cfg, ro.allow_change, ro.resume);
    auto apply = [&](const Checkpoint& c) {
      prepare_memel_layers_for_load(*model, c.weights);
      model->load_state_dict(c.weights);
      opt->load_state_dict(c.optimizer);
      sched.load_state_dict(c.state.schedule);
      loader.set_position({c.state.loader_epoch, c.state.loader_batch});
      default_generator().set_state(c.state.rng_seed, c.state.rng_offset);
    };
    Checkpoint c;
    if (fs::exists(fs::path(ro.resume) / "state.json")) {
      c = load_checkpoint(ro.resume, apply);
    } else {
      MEMEL_CHECK(fs::is_directory(ro.resume), "[memel-train] --resume ", ro.resume, ": no such directory");
      c = Checkpointer(source.string(), 0).load_latest([&](const std::string& w) { progress.warn(w); }, false, apply);
    }
    step = c.state.step;
    resumed = c.state;
    checkpoints.set_last(c.dir);
    progress.line("[memel-train] resumed from " + c.dir + " at step " + std::to_string(step));
  }

  // --- from here on the run's files are written (by rank 0) ---------------------------
  progress.line("[memel-train] device " + device.str() + ": " + backend_for(device).describe() + ", " +
                std::to_string(num_threads()) + " thread(s)" + (dp ? ", " + grp.describe() : std::string()));
  grp.barrier();  // every rank has checked and loaded before rank 0 writes
  json last_eval;  // the latest evaluation (a run resumed at its last step evaluates nothing more)
  int64_t last_eval_step = -1;
  if (root) {
  checkpoints.tidy();
  if (!resuming) checkpoints.clear();  // a fresh start in a reused directory (--compare)
  fs::create_directories(rd / "checkpoints");
  fs::create_directories(rd / "stats");
  fs::remove(rd / "summary.json");  // a finished run's summary, which this run replaces
  if (recorded.is_null() || source_run_of(ro.resume) != rd) {
    write_file_atomic((rd / "config.resolved.json").string(), with_memel_expanded(cfg).dump(2) + "\n");
    fs::remove(rd / "config.history.jsonl");
  } else if (!changed.empty()) {
    record_config_change(run_dir, step, with_memel_expanded(recorded), with_memel_expanded(cfg), changed);
    progress.line("[memel-train] config changed at step " + std::to_string(step) + " (recorded in config.history.jsonl)");
  }
  // Metric lines up to the checkpoint are kept; later ones belong to the lost segment.
  {
    std::string text;
    if (resuming) {
      const MetricsFile m = read_metrics((rd / "metrics.jsonl").string());
      for (const std::string& w : m.warnings) progress.warn(w);
      text = metrics_kept_for_resume(m, step);
      for (const auto& l : m.lines)
        if (l.parsed && l.record.value("split", std::string()) == "eval" && l.record.value("step", int64_t(0)) <= step) {
          last_eval = l.record;
          last_eval_step = l.record.value("step", int64_t(0));
          last_eval.erase("step");
          last_eval.erase("split");
        }
    }
    write_file_atomic((rd / "metrics.jsonl").string(), text);
  }
  }  // root
  std::ofstream metrics;
  if (root) metrics.open((rd / "metrics.jsonl").string(), std::ios::app);
  auto emit = [&](const json& j) {
    if (!root) return;
    metrics << j.dump() << "\n";
    metrics.flush();
    // A full disk must stop the run with a clear error, not lose metric lines silently.
    MEMEL_CHECK(metrics.good(), "[memel-train] cannot append to ", (rd / "metrics.jsonl").string(), " (",
                std::strerror(errno), "; disk full?)");
  };

  // TensorBoard events beside metrics.jsonl (a new events file per segment).
  std::unique_ptr<TensorBoardWriter> tb = root ? std::make_unique<TensorBoardWriter>(run_dir) : nullptr;
  double best = resumed.best;
  json memel_mean_ms = resumed.memel_mean_ms;
  auto wall_s = [&] { return resumed.wall_s + ms_since(t_start) / 1000.0; };
  auto save_checkpoint = [&](int64_t s) {
    if (ms.enabled) window_sync.sync(*model, grp);  // the whole run's dump window in the checkpoint
    if (!root) return;
    CheckpointContents c;
    c.write_model = [&](const std::string& path) { task->save_weights(path); };
    for (auto& [name, layer] : memel_layers(*model))
      for (auto& [k, t] : layer->state_dict()) c.memel[name + "." + k] = t;
    c.optimizer = opt->state_dict();
    const LoaderPosition p = loader.position();
    c.state.step = s;
    c.state.loader_epoch = p.epoch;
    c.state.loader_batch = p.batch;
    c.state.rng_seed = default_generator().seed();
    c.state.rng_offset = default_generator().offset();
    c.state.schedule = sched.state_dict();
    c.state.best = best;
    c.state.wall_s = wall_s();
    c.state.memel_mean_ms = memel_mean_ms;
    checkpoints.save(s, c);
  };

  double eval_s = 0;  // the last evaluation's duration, for the ETA
  auto run_eval = [&](int64_t s) {
    if (!root) return;  // rank 0 evaluates and writes; the others go on to the next step
    const auto t_eval = Clock::now();
    json m = evaluate(*task, eval_batch, lo.num_workers,
                      [&](int64_t done, int64_t total) { progress.eval(s, done, total); });
    eval_s = ms_since(t_eval) / 1000.0;
    json line = {{"step", s}, {"split", "eval"}};
    for (auto& kv : m.items()) line[kv.key()] = kv.value();
    emit(line);
    for (auto& kv : m.items())
      if (kv.value().is_number() && tb) tb->scalar("eval/" + kv.key(), s, kv.value().get<double>());
    if (tb) tb->flush();
    last_eval = m;
    last_eval_step = s;
    const double v = m.at(task->primary_metric()).get<double>();
    if (get_bool(ck, "best", "checkpoint") && (std::isnan(best) || (task->higher_is_better() ? v > best : v < best))) {
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

  model->train();
  auto t_window = Clock::now();
  double comm_mark_s = grp.waited_s();
  const auto last_ckpt = [&] { return checkpoints.last().empty() ? std::string("none") : checkpoints.last(); };
  while (step < total_steps) {
    bool interrupted = g_interrupted;
    if (dp) {  // every rank stops at the same step (mpirun forwards SIGINT to all)
      std::vector<double> f{interrupted ? 1.0 : 0.0};
      grp.allreduce_sum(f);
      interrupted = f[0] > 0;
    }
    if (interrupted) {
      save_checkpoint(step);
      progress.line("[memel-train] interrupted: checkpoint written to " + checkpoints.last());
      throw Interrupted(checkpoints.last());
    }
    const auto t_step = Clock::now();
    sched.apply(*opt);
    const double lr = opt->lr(0);
    StepResult r;
    try {
      r = train_step(model->parameters(), *opt, so, micro_loss);
    } catch (const NonFiniteLoss& e) {
      throw NonFiniteLoss(std::string(e.what()) + " at step " + std::to_string(step + 1) +
                          " (a NaN or inf in the batch or the model, or a diverging run); last good checkpoint: " + last_ckpt());
    }
    sched.step();
    ++step;
    const double this_step_ms = ms_since(t_step);
    window_ms += this_step_ms;
    fault_point("step", step);
    if (step % log_every == 0 || step == total_steps) {
      emit({{"step", step}, {"split", "train"}, {"loss", r.loss}, {"lr", lr}, {"grad_norm", r.grad_norm}});
      if (tb) tb->scalar("train/loss", step, r.loss);
      if (tb) tb->scalar("train/lr", step, lr);
      const double sec = std::chrono::duration<double>(Clock::now() - t_window).count();
      rate = items / std::max(sec, 1e-9);
      emit({{"step", step}, {"split", "perf"}, {"items_per_s", rate},
            {"step_ms", window_ms / double(log_every)}, {"data_wait_ms", wait_ms / double(log_every)}});
      if (dp) {  // time in collectives (gradient sums, memel moments, the loss) per step
        const double comm_s = grp.waited_s();
        emit({{"step", step}, {"split", "perf"}, {"ranks", grp.size()}, {"comm_ms", (comm_s - comm_mark_s) * 1000.0 / double(log_every)}});
        comm_mark_s = comm_s;
      }
      items = wait_ms = window_ms = 0;
      t_window = Clock::now();
    }
    const int64_t evals_left = (total_steps / eval_every - step / eval_every) + (total_steps % eval_every ? 1 : 0);
    progress.update(step, r.loss, lr, rate, double(total_steps - step) * this_step_ms / 1000.0 + double(evals_left) * eval_s,
                    log_every);
    if (step % eval_every == 0 || step == total_steps) run_eval(step);
    if (ms.enabled && ((ms.dump_every > 0 && step % ms.dump_every == 0) || step == total_steps)) {
      window_sync.sync(*model, grp);  // data-parallel: the window of every rank's samples
      if (root) {
        // Each dump's window also goes to TensorBoard: the mean MS as a scalar, the MS
        // histogram as a histogram (before write_memel_dump resets the window).
        json m = json::object();
        for (auto& l : collect_memel_dump(*model, step).layers) {
          m[l.name] = l.mean_ms;
          tb->scalar("memel/" + l.name + "/ms_mean", step, l.mean_ms);
          tb->histogram("memel/" + l.name + "/ms", step, ms_hist_bounds(l.hist_edges), l.ms_hist.to_vector());
        }
        if (step == total_steps) memel_mean_ms = m;
        tb->flush();
        write_memel_dump(*model, (rd / "stats" / checkpoint_name(step)).string(), step);
      } else {
        for (auto& [name, layer] : memel_layers(*model)) layer->reset_window();
      }
      window_sync.mark(*model);
    }
    if (step % ckpt_every == 0 || step == total_steps) save_checkpoint(step);
  }
  // Training is over: rank 0 alone goes on (evaluation, --validate), so its memel layers
  // stop combining with the other ranks.
  if (dp) set_memel_cross_rank({});
  // A run resumed past its (lowered) train.steps, or one whose last evaluation is older
  // than its last step, is evaluated where it stands: the summary always has a "final".
  if (last_eval_step != step) run_eval(step);
  metrics.close();

  json validation;
  if (ro.validate > 0 && root) {
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
                  {"wall_s", wall_s()},
                  {"memel_layers", memel_names},
                  {"memel_mean_ms", memel_mean_ms.is_null() ? json::object() : memel_mean_ms},
                  {"checkpoint", checkpoints.last()},
                  {"validation", validation}};
  if (root) write_file_atomic((rd / "summary.json").string(), summary.dump(2) + "\n");
  if (!ro.quiet && root) {
    std::ostringstream os;
    os << "[memel-train] done: " << step << " steps in " << summary["wall_s"].get<double>() << " s\n";
    os << "  results:  " << (rd / "summary.json").string() << "  (" << task->primary_metric() << " "
       << (last_eval.is_object() ? last_eval.value(task->primary_metric(), 0.0) : std::nan("")) << ", best "
       << summary["best"].dump() << ")\n";
    os << "  metrics:  " << (rd / "metrics.jsonl").string() << "\n";
    if (ms.enabled) os << "  dumps:    " << (rd / "stats").string() << "  (memel-inspect stats " << (rd / "stats" / checkpoint_name(step)).string() << ")";
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
  if (sum.is_discarded() || used.is_discarded() || used != with_memel_expanded(cfg) || !sum.is_object() || !sum.contains("final"))
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
    while (std::getline(ss, v, ',')) {
      // Read as --set reads a value: JSON, or a bare word as a string.
      json val;
      try {
        val = parse_set_value("memel." + key, v);
      } catch (const std::exception& e) {
        MEMEL_FAIL("[memel-train] --sweep ", s, ": ", e.what());
      }
      values.push_back(val);
    }
    MEMEL_CHECK(!values.empty(), "[memel-train] --sweep ", s, ": no values");
    std::vector<std::pair<std::string, json>> next;
    for (auto& [name, o] : grid)
      for (auto& val : values) {
        json o2 = o;
        o2[key] = val;
        next.emplace_back(name + (name.empty() ? "" : ",") + key + "=" + val.dump(), o2);
      }
    grid = next;
  }
  // Every run of the comparison, built and checked before the first one trains (a bad
  // --sweep value must not wait for its variant's turn).
  struct Planned {
    std::string label;
    json cfg;
    std::string dir;
  };
  std::vector<Planned> plan;
  std::vector<std::string> order;
  const uint64_t seed0 = config_seed(cfg);
  MEMEL_CHECK(seed0 <= UINT64_MAX - uint64_t(seeds), "[memel-train] seed ", seed0, " + --seeds ", seeds, " overflows");
  for (const std::string& var : variants) {
    const bool baseline = var == "baseline";
    for (size_t gi = 0; gi < (baseline ? 1 : grid.size()); ++gi) {
      const std::string& gname = grid[gi].first;
      const json& gover = grid[gi].second;
      const std::string label = baseline || gname.empty() ? var : var + "(" + gname + ")";
      order.push_back(label);
      for (int s = 0; s < seeds; ++s) {
        json c = cfg;
        c["seed"] = seed0 + uint64_t(s);
        if (baseline) {
          c["memel"] = nullptr;
        } else {
          json m = c["memel"].is_object() ? c["memel"] : json{{"at", "paper"}};
          m["mode"] = var;
          for (auto& kv : gover.items()) m[kv.key()] = kv.value();
          if (gover.contains("delta")) m["mode"] = "scaled";
          c["memel"] = m;
        }
        try {
          (void)memel_setup(c);
        } catch (const std::exception& e) {
          MEMEL_FAIL("[memel-train] --compare variant ", label, ": ", e.what());
        }
        plan.push_back({label, c, (fs::path(out) / (label + "-seed" + std::to_string(config_seed(c)))).string()});
      }
    }
  }
  json results = json::array();
  std::map<std::string, std::map<std::string, std::vector<double>>> table;  // variant -> metric -> values
  for (const Planned& p : plan) {
    RunOptions r = ro;
    r.out_dir = p.dir;
    r.allow_existing = true;
    r.resume.clear();
    json sum = finished_run_summary(p.dir, p.cfg);
    std::string how = sum.is_null() ? "" : " (finished with this config: reused)";
    if (sum.is_null() && fs::exists(fs::path(p.dir) / "config.resolved.json")) {
      // A variant stopped part-way continues from its checkpoint; one that ran another
      // config starts afresh (its checkpoints are cleared, not mixed with this run's).
      const json recorded = recorded_config(p.dir);
      if (!result_changing_differences(recorded, p.cfg).empty()) {
        how = " (held a run of another config: started afresh)";
      } else if (!Checkpointer(p.dir, 0).candidates().empty()) {
        r.resume = p.dir;
        how = " (stopped part-way: resumed)";
      }
    }
    if (!ro.quiet && dist::Group::world().is_root())
      std::printf("[compare] %s seed %llu -> %s%s\n", p.label.c_str(), (unsigned long long)config_seed(p.cfg), p.dir.c_str(),
                  how.c_str());
    if (sum.is_null()) sum = run_training(p.cfg, r);
    results.push_back({{"variant", p.label}, {"seed", p.cfg["seed"]}, {"final", sum["final"]}, {"best", sum["best"]},
                       {"run_dir", p.dir}});
    for (auto& kv : sum["final"].items())
      if (kv.value().is_number()) table[p.label][kv.key()].push_back(kv.value().get<double>());
    // Mean MS per memel layer over the last dump window (the toy comparison's figure).
    for (auto& kv : sum["memel_mean_ms"].items()) table[p.label]["MS " + kv.key()].push_back(kv.value().get<double>());
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
  if (!dist::Group::world().is_root()) return out_j;  // data-parallel: rank 0 writes the table
  write_file_atomic((fs::path(out) / "compare.json").string(), out_j.dump(2) + "\n");
  write_file_atomic((fs::path(out) / "compare.md").string(), md.str());
  if (!ro.quiet) std::printf("\n%s\n[compare] table: %s\n", md.str().c_str(), (fs::path(out) / "compare.md").string().c_str());
  return out_j;
}

}  // namespace memel::train
