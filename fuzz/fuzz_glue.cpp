// Fuzz target: the GLUE-style TSV reader (data/glue.h): a task's split files, labels,
// metrics, tokenized tensors, and prediction files written and read back.
//
// Input: either TASK kSep TSV, where TASK is a task name or a generic task as JSON, or
// (no separator) one byte choosing a built-in task followed by the TSV text. The TSV
// text is every split file of the task.
#include "fuzz_common.h"

#include <nlohmann/json.hpp>

#include "data/glue.h"
#include "data/tokenizer.h"

using namespace memel;

namespace {
const WordPieceTokenizer& tokenizer() {
  static const WordPieceTokenizer tok =
      WordPieceTokenizer::from_file(std::string(MEMEL_SOURCE_DIR) + "/tests/data/text/vocab-uncased.txt");
  return tok;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto parts = fuzz::split_parts(in, fuzz::kSep, 2);
  const std::string dir = fuzz::scratch_dir() + "/task";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  nlohmann::json spec;
  std::string_view tsv;
  if (parts.size() == 2) {
    spec = nlohmann::json::parse(parts[0].begin(), parts[0].end(), nullptr, /*allow_exceptions=*/false);
    if (spec.is_discarded()) spec = std::string(parts[0]);
    tsv = parts[1];
  } else {
    const auto names = glue_task_names();
    spec = names[static_cast<unsigned char>(in[0]) % names.size()];
    tsv = in.substr(1);
  }
  // Every split file the task could name gets the TSV text.
  for (const char* f : {"train.tsv", "dev.tsv", "test.tsv", "dev_matched.tsv", "dev_mismatched.tsv",
                        "test_matched.tsv", "test_mismatched.tsv"})
    fuzz::write_bytes(dir + "/" + f, tsv);
  if (spec.is_object())
    for (const char* k : {"train", "dev", "test"})
      if (spec.contains(k) && spec[k].is_string()) {
        const std::string f = spec[k].get<std::string>();
        if (!f.empty() && f.find('/') == std::string::npos && f != "." && f != ".." && f.size() < 200)
          fuzz::write_bytes(dir + "/" + f, tsv);
      }

  TsvTask task;
  bool have_task = false;
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS((task = load_tsv_task(spec, dir), have_task = true));
  if (!have_task) return 0;
  for (const TsvSplit& split : task.splits) {
    std::vector<TextExample> ex;
    bool read = false;
    int64_t skipped = 0;
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS((ex = read_split(task, dir, split.name, &skipped), read = true));
    if (!read || ex.empty()) continue;
    std::vector<double> labels;
    bool labelled = false;
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS((labels = example_labels(ex, task), labelled = true));
    if (labelled) MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(evaluate(task, ex, labels));
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(make_tensor_dataset(ex, task, tokenizer(), 16, true));
    std::vector<double> pred = labelled ? labels : std::vector<double>(ex.size(), 0.0);
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS({
      const std::string p = write_predictions(task, split.name, ex, pred, fuzz::scratch_dir() + "/pred");
      auto back = read_predictions(p);
      if (back.size() != ex.size()) __builtin_trap();  // one row per example
    });
  }
  // The prediction-file reader on the raw text.
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(read_predictions(dir + "/train.tsv"));
  return 0;
}
