// mlm-pretrain end to end on the tiny corpus in tests/data/text: runs, learns, resumes
// exactly, never trains on a batch without targets, names bad config keys.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "data/mlm.h"
#include "data/tokenizer.h"
#include "tensor/tensor_io.h"
#include "train/train_support.h"

namespace fs = std::filesystem;
using namespace memel::train_test;
using nlohmann::json;

namespace {

const std::string kText = std::string(MEMEL_SOURCE_DIR) + "/tests/data/text";
const std::string kRuns = std::string(MEMEL_BINARY_DIR) + "/train_test_runs/mlm";

// A 2-layer, 32-wide BERT on the tiny corpus: a step takes milliseconds.
json tiny_mlm_config() {
  return {{"task", "mlm-pretrain"},
          {"threads", 2},
          {"seed", 3},
          {"model",
           {{"name", "bert"},
            {"config",
             {{"preset", "bert-tiny"}, {"hidden_size", 32}, {"num_attention_heads", 2}, {"intermediate_size", 64},
              {"max_position_embeddings", 32}}}}},
          {"data",
           {{"train", kText + "/mlm-corpus"}, {"eval", kText + "/mlm-eval.txt"}, {"vocab", kText + "/vocab-uncased.txt"},
            {"max_len", 24}}},
          {"optimizer", {{"type", "adamw"}, {"lr", 3e-3}}},
          {"train", {{"steps", 40}, {"batch_size", 8}, {"eval_batch_size", 16}, {"eval_every", 20}, {"log_every", 1}}},
          {"checkpoint", {{"every", 20}, {"keep_last", 2}}}};
}

double mean_loss(const std::vector<json>& lines, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += lines[i].at("loss").get<double>();
  return s / double(to - from);
}

}  // namespace

TEST_CASE("mlm-pretrain: trains on a tiny corpus, loss falls, eval metrics and a Hugging Face checkpoint") {
  const std::string out = kRuns + "/basic";
  fs::remove_all(out);
  Result r = run("--config " + write_config("mlm_basic.json", tiny_mlm_config()) + " --quiet --out " + out);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  auto train = metric_lines(out + "/metrics.jsonl", "train");
  auto eval = metric_lines(out + "/metrics.jsonl", "eval");
  REQUIRE(train.size() == 40);
  REQUIRE(eval.size() == 2);
  const double first = mean_loss(train, 0, 5), last = mean_loss(train, 35, 40);
  MESSAGE("train loss, mean of steps 1-5: ", first, ", of steps 36-40: ", last);
  CHECK(first > 9.0);  // about ln(30522) = 10.3 at the start
  CHECK(last < first - 2.0);
  for (const json& e : eval) {
    CHECK(e.contains("mlm_loss"));
    // A share of the masked tokens.
    const double acc = e.at("mlm_accuracy").get<double>();
    CHECK(acc <= 1.0);
    CHECK(acc >= 0.0);
    CHECK(e.at("perplexity").get<double>() == doctest::Approx(std::exp(e.at("mlm_loss").get<double>())));
  }
  CHECK(eval[1].at("mlm_loss").get<double>() < eval[0].at("mlm_loss").get<double>());
  // After 40 steps the model predicts some masked tokens (the frequent ones); chance on a
  // 30,522-word vocabulary is about 0.
  MESSAGE("mlm_accuracy after 20 / 40 steps: ", eval[0].at("mlm_accuracy").get<double>(), " / ",
          eval[1].at("mlm_accuracy").get<double>());
  CHECK(eval[1].at("mlm_accuracy").get<double>() > 0.1);  // 0.24 measured
  json summary = json::parse(read_file(out + "/summary.json"));
  CHECK(summary.at("primary_metric") == "mlm_loss");

  // The checkpoint is a Hugging Face directory: HF names, MLM head, no pooler, config.json.
  const std::string ck = out + "/checkpoints/step-00000040";
  auto tensors = memel::load_safetensors(ck + "/model.safetensors").tensors;
  for (const char* name : {"bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.output.LayerNorm.weight",
                           "cls.predictions.bias", "cls.predictions.transform.dense.weight",
                           "cls.predictions.transform.LayerNorm.bias"})
    CHECK_MESSAGE(tensors.count(name) == 1, name);
  CHECK(tensors.count("bert.pooler.dense.weight") == 0);
  CHECK(tensors.at("cls.predictions.bias").shape() == memel::Shape{30522});
  json hf = json::parse(read_file(ck + "/config.json"));
  CHECK(hf.at("architectures") == json::array({"BertForMaskedLM"}));
  CHECK(hf.at("hidden_size") == 32);
  CHECK(fs::exists(out + "/checkpoints/best/config.json"));

  // Pretrain, then fine-tune: text-classification starts from the checkpoint directory
  // (encoder loaded, cls.* unused, pooler and classifier newly initialized).
  json ft = {{"task", "text-classification"},
             {"threads", 2},
             {"model", {{"name", "bert"}, {"pretrained", ck}}},
             {"data",
              {{"task", "SST-2"}, {"dir", std::string(MEMEL_SOURCE_DIR) + "/tests/data/glue_fixture/SST-2"},
               {"vocab", kText + "/vocab-uncased.txt"}, {"max_len", 24}}},
             {"train", {{"batch_size", 4}}}};
  r = run("--config " + write_config("mlm_finetune.json", ft) + " --dry-run");
  REQUIRE_MESSAGE(r.code == 0, r.output);
  CHECK(r.output.find("were not used when initializing BertForSequenceClassification: [cls.predictions.bias") !=
        std::string::npos);
  CHECK(r.output.find("newly initialized: [bert.pooler.dense.bias, bert.pooler.dense.weight, classifier.bias, "
                      "classifier.weight]") != std::string::npos);
}

TEST_CASE("mlm-pretrain: killed and resumed gives the unbroken run's metrics, weights and memel state") {
  json cfg = tiny_mlm_config();
  // The held-out lines of the corpus directory instead of the eval file.
  cfg["data"]["eval"] = "";
  cfg["data"]["eval_fraction"] = 0.2;
  cfg["train"]["steps"] = 24;
  cfg["train"]["eval_every"] = 8;
  cfg["train"]["log_every"] = 2;
  cfg["checkpoint"]["every"] = 8;
  cfg["checkpoint"]["keep_last"] = 3;
  cfg["memel"] = {{"at", "paper"}, {"mode", "rd"}, {"warmup", 2}, {"dump_every", 8}};
  const std::string c = write_config("mlm_resume.json", cfg);
  fs::remove_all(kRuns + "/unbroken");
  fs::remove_all(kRuns + "/killed");
  Result a = run("--config " + c + " --quiet --out " + kRuns + "/unbroken");
  REQUIRE_MESSAGE(a.code == 0, a.output);
  Result b = run("--config " + c + " --quiet --out " + kRuns + "/killed", "MEMEL_FAULT_KILL_STEP=21");
  CHECK(b.code == 128 + 9);
  Result k = run("--config " + c + " --out " + kRuns + "/killed --resume last");
  REQUIRE_MESSAGE(k.code == 0, k.output);
  CHECK(k.output.find("resumed from " + kRuns + "/killed/checkpoints/step-00000016") != std::string::npos);
  auto la = lines_without_perf(kRuns + "/unbroken/metrics.jsonl"), lk = lines_without_perf(kRuns + "/killed/metrics.jsonl");
  CHECK(la.size() == 12 + 3);
  CHECK(la == lk);
  for (const char* f : {"/checkpoints/step-00000024/model.safetensors", "/checkpoints/step-00000024/memel.safetensors",
                        "/checkpoints/step-00000024/optimizer.safetensors", "/stats/step-00000024.safetensors"})
    CHECK_MESSAGE(read_file(kRuns + "/unbroken" + f) == read_file(kRuns + "/killed" + f), f);
  json s = json::parse(read_file(kRuns + "/unbroken/summary.json"));
  CHECK(s.at("memel_layers") == json::array({"bert.encoder.layer.0.memel"}));  // "paper" for 2 layers
}

TEST_CASE("mlm-pretrain: every sequence has a masked target, so no batch trains on nothing") {
  // Unit level: one-token lines with a masking rate of 0 still get their one target.
  const auto tok = memel::WordPieceTokenizer::from_file(kText + "/vocab-uncased.txt");
  memel::MlmTextOptions o;
  o.max_len = 8;
  o.mask_seed = 11;
  o.mask_per_epoch = true;
  o.mlm.mask_prob = 0.0;
  memel::MlmTextDataset d(std::vector<std::string>{"cat", "a small dog", "river", "the old farmer sees"}, tok, o);
  for (int64_t epoch = 0; epoch < 3; ++epoch)
    for (int64_t i = 0; i < d.size(); ++i) {
      auto labels = d.get_at_epoch(i, epoch).at("labels").to_vector_as<int64_t>();
      int64_t n = 0;
      for (int64_t v : labels) n += v != -100;
      CHECK(n == 1);
    }
  // End to end: a rate that would leave most sequences unmasked still trains.
  json cfg = tiny_mlm_config();
  cfg["data"]["mlm_probability"] = 0.001;
  cfg["train"]["steps"] = 10;
  cfg["train"]["eval_every"] = 10;
  const std::string out = kRuns + "/rare";
  fs::remove_all(out);
  Result r = run("--config " + write_config("mlm_rare.json", cfg) + " --quiet --out " + out);
  REQUIRE_MESSAGE(r.code == 0, r.output);
  for (const json& l : metric_lines(out + "/metrics.jsonl", "train")) {
    CHECK(l.at("loss").get<double>() > 1.0);  // a real cross-entropy, not the 0 of "no target"
    CHECK(l.at("grad_norm").get<double>() > 0.0);
  }
}

TEST_CASE("mlm-pretrain: config errors name the key") {
  auto expect = [](const json& cfg, const std::string& what, const std::string& flag = "--dry-run") {
    Result r = run("--config " + write_config("mlm_bad.json", cfg) + " " + flag);
    CHECK_MESSAGE(r.code == 1, r.output);
    CHECK_MESSAGE(r.output.find(what) != std::string::npos, r.output);
  };
  json c = tiny_mlm_config();
  c["data"]["train"] = "";
  expect(c, "data.train: the training corpus");
  c = tiny_mlm_config();
  c["data"]["eval_fraction"] = 0.1;
  expect(c, "data.eval and data.eval_fraction: give one of them");
  c = tiny_mlm_config();
  c["data"]["eval"] = "";
  expect(c, "data.eval: an evaluation corpus is required");
  c = tiny_mlm_config();
  c["data"]["mlm_probability"] = 1.5;
  expect(c, "data.mlm_probability: expected a probability in [0, 1], got 1.5");
  c = tiny_mlm_config();
  c["data"]["mask_replace_prob"] = 0.95;
  expect(c, "data.mask_replace_prob + data.random_replace_prob: must not exceed 1");
  c = tiny_mlm_config();
  c["data"]["mask_prob"] = 0.2;
  expect(c, "unknown key 'data.mask_prob'", "--print-config");
  c = tiny_mlm_config();
  c["data"]["pack"] = "yes";
  expect(c, "data.pack: expected boolean, got string", "--print-config");
  c = tiny_mlm_config();
  c["data"]["train"] = "/nonexistent/corpus.txt";
  expect(c, "/nonexistent/corpus.txt");
  c = tiny_mlm_config();
  c["data"]["max_len"] = 64;  // > max_position_embeddings 32
  expect(c, "data.max_len: 64 must be in [3, max_position_embeddings = 32]");
  c = tiny_mlm_config();
  c["model"]["name"] = "mlp";
  expect(c, "model.name: mlm-pretrain supports \"bert\"");
}
