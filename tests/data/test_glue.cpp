// GLUE-layout readers on tests/data/glue_fixture: every split of the nine tasks, tensor
// datasets, dev evaluation, and test prediction files in the submission layout.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/glue.h"
#include "data/tokenizer.h"

using namespace memel;

namespace {
std::string fixture(const std::string& task) { return std::string(MEMEL_SOURCE_DIR) + "/tests/data/glue_fixture/" + task; }
std::string out_dir(const std::string& name) {
  std::string d = std::string(MEMEL_BINARY_DIR) + "/test_glue_out/" + name;
  std::filesystem::remove_all(d);
  return d;
}
const WordPieceTokenizer& tok() {
  static WordPieceTokenizer t =
      WordPieceTokenizer::from_file(std::string(MEMEL_SOURCE_DIR) + "/tests/data/text/vocab-uncased.txt");
  return t;
}
}  // namespace

TEST_CASE("glue: task table") {
  auto names = glue_task_names();
  REQUIRE(names.size() == 11);
  CHECK(names[0] == "CoLA");
  CHECK(glue_task("sst2").name == "SST-2");
  CHECK(glue_task("STSB").regression);
  CHECK(glue_task("mnli-mm").name == "MNLI");
  CHECK(glue_task("MNLI").split("dev").name == "dev_matched");
  CHECK(glue_task("MNLI").split("test_mismatched").submission == "MNLI-mm.tsv");
  CHECK(glue_task("wn-lex").labels.size() == 45);
  CHECK(glue_task("wn-lex").labels[44] == "adj.ppl");
  CHECK(glue_task("MRPC").metrics == std::vector<std::string>{"acc", "f1", "acc_and_f1"});
  CHECK(glue_task("CoLA").metrics.front() == "mcc");
  CHECK_THROWS_AS(glue_task("squad"), Error);
  CHECK_THROWS_AS(glue_task("RTE").split("validation"), Error);
  CHECK_THROWS_AS(glue_task("RTE").label_index("maybe"), Error);
}

TEST_CASE("glue: fields of each layout") {
  auto cola = read_split(glue_task("CoLA"), fixture("CoLA"), "train");
  REQUIRE(cola.size() == 6);
  CHECK(cola[1].text_a == "Cat the mat on sat the.");
  CHECK(*cola[1].label == "0");
  CHECK_FALSE(cola[1].text_b.has_value());
  CHECK(cola[1].index == "1");
  auto cola_test = read_split(glue_task("CoLA"), fixture("CoLA"), "test");
  REQUIRE(cola_test.size() == 3);
  CHECK_FALSE(cola_test[0].label.has_value());
  CHECK(cola_test[2].text_a == "He has eaten.");

  auto mrpc = read_split(glue_task("MRPC"), fixture("MRPC"), "dev");
  REQUIRE(mrpc.size() == 4);
  CHECK(*mrpc[0].label == "1");
  CHECK(mrpc[0].text_a == "The museum will reopen next spring after repairs .");
  CHECK(*mrpc[0].text_b == "After repairs , the museum reopens next spring .");

  auto sts = read_split(glue_task("STS-B"), fixture("STS-B"), "dev");
  REQUIRE(sts.size() == 5);
  CHECK(*sts[1].label == "4.750");
  CHECK(example_labels(sts, glue_task("STS-B"))[1] == doctest::Approx(4.75));

  int64_t skipped = -1;
  auto qqp = read_split(glue_task("QQP"), fixture("QQP"), "train", &skipped);
  CHECK(qqp.size() == 4);
  CHECK(skipped == 1);
  auto qqp_test = read_split(glue_task("QQP"), fixture("QQP"), "test");
  CHECK(qqp_test[1].text_b == std::string("What is the price of a bicycle?"));

  const TsvTask& mnli = glue_task("MNLI");
  auto mm = read_split(mnli, fixture("MNLI"), "dev_mismatched");
  REQUIRE(mm.size() == 2);
  CHECK(*mm[0].label == "contradiction");
  CHECK(mm[0].text_b == std::string("Your gift did not help the library at all."));
  CHECK(read_split(mnli, fixture("MNLI"), "train")[2].label == std::string("contradiction"));
  CHECK(read_split(mnli, fixture("MNLI"), "test_mismatched")[1].text_a == "Café au lait, s'il vous plaît — naïve façade.");

  auto qnli = read_split(glue_task("QNLI"), fixture("QNLI"), "train");
  CHECK(*qnli[1].label == "not_entailment");
  CHECK(qnli[1].text_a == "Who designed the tower?");

  // A malformed row in a task that does not skip them names file and line.
  TsvLayout l = glue_task("QQP").split("train").layout;
  CHECK_THROWS_WITH_AS(read_tsv(fixture("QQP") + "/train.tsv", l, false), doctest::Contains("train.tsv:6"), Error);
  CHECK_THROWS_AS(read_split(glue_task("RTE"), fixture("no-such-task"), "train"), Error);
}

TEST_CASE("glue: all nine tasks -> tensors, dev evaluation, test prediction files") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> tasks = {
      {"CoLA", {"dev"}}, {"SST-2", {"dev"}}, {"MRPC", {"dev"}}, {"STS-B", {"dev"}}, {"QQP", {"dev"}},
      {"MNLI", {"dev_matched", "dev_mismatched"}}, {"QNLI", {"dev"}}, {"RTE", {"dev"}}, {"WNLI", {"dev"}}};
  const std::string out = out_dir("submission");
  for (const auto& [name, devs] : tasks) {
    CAPTURE(name);
    const TsvTask& task = glue_task(name);
    auto train = read_split(task, fixture(name), "train");
    auto ds = make_tensor_dataset(train, task, tok(), 64);
    REQUIRE(ds->size() == static_cast<int64_t>(train.size()));
    Example ex = ds->get(0);
    const int64_t T = ex.at("input_ids").size(0);
    CHECK(T <= 64);
    CHECK(ex.at("input_ids").dtype() == DType::I64);
    CHECK(ex.at("input_ids").to_vector_as<int64_t>()[0] == tok().cls_id());
    CHECK(ex.at("attention_mask").shape() == Shape{T});
    CHECK(ex.at("label").dtype() == (task.regression ? DType::F32 : DType::I64));
    const bool pair = train[0].text_b.has_value();
    const auto types = ex.at("token_type_ids").to_vector_as<int64_t>();
    CHECK((std::find(types.begin(), types.end(), 1) != types.end()) == pair);

    for (const std::string& dev : devs) {
      auto d = read_split(task, fixture(name), dev);
      auto labels = example_labels(d, task);
      // Predicting the labels themselves gives the best value of every metric.
      MetricMap m = evaluate(task, d, labels);
      for (const auto& kv : m) CHECK(kv.second == doctest::Approx(1.0));
      // Label tensor agrees with the example labels.
      auto dd = make_tensor_dataset(d, task, tok(), 64);
      auto lab = dd->get(1).at("label").to_vector();
      CHECK(lab[0] == doctest::Approx(labels[1]));
    }

    for (const auto& split : task.splits) {
      if (split.submission.empty()) continue;
      auto test = read_split(task, fixture(name), split.name);
      auto tds = make_tensor_dataset(test, task, tok(), 32, false);
      CHECK(tds->get(0).at("input_ids").size(0) == 32);
      if (task.regression) CHECK(std::isnan(tds->get(0).at("label").item()));
      else CHECK(tds->get(0).at("label").item() == -100);
      std::vector<double> pred;
      for (size_t i = 0; i < test.size(); ++i)
        pred.push_back(task.regression ? 0.5 + static_cast<double>(i) : static_cast<double>(i % task.labels.size()));
      const std::string path = write_predictions(task, split.name, test, pred, out);
      CHECK(path == out + "/" + split.submission);
      auto back = read_predictions(path);
      REQUIRE(back.size() == test.size());
      for (size_t i = 0; i < test.size(); ++i) {
        CHECK(back[i].first == test[i].index);
        if (task.regression) CHECK(std::stod(back[i].second) == doctest::Approx(pred[i]));
        else CHECK(back[i].second == task.labels[i % task.labels.size()]);
      }
    }
  }
  // The files the GLUE server expects.
  for (const char* f : {"CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv", "MNLI-mm.tsv",
                        "QNLI.tsv", "RTE.tsv", "WNLI.tsv"})
    CHECK(std::filesystem::exists(out + "/" + f));
  std::ifstream f(out + "/MNLI-m.tsv");
  std::string line;
  std::getline(f, line);
  CHECK(line == "index\tprediction");
  std::getline(f, line);
  CHECK(line == "0\tcontradiction");
  std::ifstream s(out + "/STS-B.tsv");
  std::getline(s, line);
  std::getline(s, line);
  CHECK(line == "0\t0.500");
  CHECK_THROWS_AS(write_predictions(glue_task("RTE"), "test", read_split(glue_task("RTE"), fixture("RTE"), "test"),
                                    {0, 2}, out),
                  Error);  // class 2 of 2
}

TEST_CASE("glue: generic TSV task from JSON") {
  const std::string dir = out_dir("generic");
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/train.tsv");
    f << "id\tprompt\treply\tverdict\n1\thello there\tgeneral kenobi\tgood\n2\thi\tgo away\tbad\n3\tyo\they\tgood\n";
    std::ofstream g(dir + "/dev.tsv");
    g << "id\tprompt\treply\tverdict\n7\tmorning\tgood morning\tgood\n8\tping\t\tbad\n";
    std::ofstream t(dir + "/test.tsv");
    t << "id\tprompt\treply\n9\tthanks\tyou are welcome\n";
  }
  nlohmann::json spec = {{"name", "chat"}, {"text_a", "prompt"}, {"text_b", "reply"}, {"label", "verdict"},
                         {"index", "id"}, {"metrics", {"acc", "f1"}}};
  TsvTask task = load_tsv_task(spec, dir);
  CHECK(task.labels == std::vector<std::string>{"bad", "good"});  // collected from train, sorted
  auto dev = read_split(task, dir, "dev");
  REQUIRE(dev.size() == 2);
  CHECK(dev[1].text_b == std::string(""));
  CHECK(dev[0].index == "7");
  MetricMap m = evaluate(task, dev, {1, 1});
  CHECK(m.at("acc") == doctest::Approx(0.5));
  CHECK(m.at("f1") == doctest::Approx(2.0 / 3.0));
  auto test = read_split(task, dir, "test");
  CHECK_FALSE(test[0].label.has_value());
  CHECK(write_predictions(task, "test", test, {1}, dir + "/pred") == dir + "/pred/chat.tsv");
  CHECK(read_predictions(dir + "/pred/chat.tsv")[0] == std::make_pair(std::string("9"), std::string("good")));

  // Columns by number, from the end, and errors.
  TsvTask by_num = tsv_task_from_json({{"text_a", 1}, {"label", "-1"}, {"labels", {"bad", "good"}}});
  CHECK(read_split(by_num, dir, "train")[0].label == std::string("good"));
  CHECK_THROWS_AS(read_split(tsv_task_from_json({{"text_a", "nope"}, {"labels", {"x"}}}), dir, "train"), Error);
  CHECK_THROWS_AS(tsv_task_from_json({{"text_a", "prompt"}, {"colour", "red"}}), Error);
  CHECK_THROWS_AS(evaluate(tsv_task_from_json({{"labels", {"x"}}, {"label", "verdict"}}), dev, {0, 0}), Error);
}
