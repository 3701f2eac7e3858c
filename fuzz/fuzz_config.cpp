// Fuzz target: memel-train's configuration loader (train/config.h): the JSON
// config file (comments allowed) and the --set key.path=value edits, merged onto the
// task's defaults with key and type checks; then the library parsers memel-train hands
// the sections to (memel options, model configs, schedule, TSV task, nowcasting loss).
//
// Input: the config file's text, then optionally kSep and one --set assignment per line.
#include "fuzz_common.h"

#include "train/config.h"
#include "data/glue.h"
#include "memel/options.h"
#include "models/bert.h"
#include "models/convgru.h"
#include "models/nowcast_metrics.h"
#include "models/small.h"
#include "models/swin.h"
#include "optim/schedule.h"

using namespace memel;
using memel::train::json;

namespace {

// The sections, read as the tasks and the trainer read them.
void check_sections(const json& cfg) {
  using namespace memel::train;
  const std::string task = cfg.at("task").get<std::string>();
  const json& model = cfg.at("model");
  const std::string name = get_str(model, "name", "model");
  if (task == "image-classification") {
    if (name == "mlp") MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(MLPConfig::from_json(model.at("config")));
    if (name == "cnn") MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(CNNConfig::from_json(model.at("config")));
    if (name == "swin") MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(SwinConfig::from_json(model.at("config"), "model.config"));
  } else if (task == "text-classification") {
    const json& t = cfg.at("data").at("task");
    if (t.is_string()) MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(glue_task(t.get<std::string>()));
    if (t.is_object()) MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(tsv_task_from_json(t));
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS({
      const json& mc = model.at("config");
      MEMEL_CHECK(mc.is_object(), "model.config must be an object");
      json rest = mc;
      std::string preset = "bert-mini";
      if (rest.contains("preset")) {
        MEMEL_CHECK(rest["preset"].is_string(), "preset must be a string");
        preset = rest["preset"].get<std::string>();
        rest.erase("preset");
      }
      BertConfig bc = BertConfig::preset(preset);
      bc.update(rest, "model.config");
      bc.validate();
    });
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(BertConfig::from_json(model.at("config"), "model.config"));
  } else if (task == "nowcasting") {
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(ConvGRUConfig::from_json(model.at("config"), "model.config"));
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS({
      json loss = cfg.at("loss");
      MEMEL_CHECK(loss.is_object(), "loss must be an object");
      loss.erase("type");
      nowcast::NowcastLossOptions::from_json(loss, "loss");
    });
  }
  const json& m = cfg.at("memel");
  if (m.is_object()) {
    json o = m;
    o.erase("dump_every");
    o.erase("monitor_at");
    if (!o.contains("at")) o["at"] = "paper";
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(MemelOptions::from_json(o));
  }
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS({
    const json& s = cfg.at("schedule");
    ScheduleConfig sc;
    sc.kind = get_str(s, "kind", "schedule");
    sc.min_lr = get_num(s, "min_lr", "schedule");
    sc.warmup_steps = get_int(s, "warmup_steps", "schedule");
    sc.step_size = get_int(s, "step_size", "schedule");
    sc.gamma = get_num(s, "gamma", "schedule");
    sc.total_steps = 1000;
    sc.validate();
    LRSchedule sched(sc);
    (void)sched.lr_at(0);
    (void)sched.lr_at(999);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string path = fuzz::scratch_dir() + "/config.json";
  const std::vector<std::string> sets = fuzz::config_input(in, path);
  json cfg;
  bool ok = false;
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS((cfg = train::resolve_config(path, sets), ok = true));
  if (ok) MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(check_sections(cfg));
  // The --set parser on its own, onto an empty object.
  for (const std::string& s : sets) {
    json j = json::object();
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(train::apply_set(j, s));
  }
  return 0;
}
