#pragma once
// Sentence(-pair) classification and regression tasks stored as TSV files in the
// GLUE layout: the nine GLUE tasks (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE,
// WNLI), the two WordNet tasks made by `memel-data wordnet` (wn-lex, wn-pair), and a
// generic TSV task whose columns come from options/config.
//
// Files are read as GLUE's own scripts read them: tab-separated, no quoting, trailing
// '\r' removed, blank lines skipped. A task directory holds one file per split
// (e.g. glue_data/MNLI/{train,dev_matched,dev_mismatched,test_matched,test_mismatched}.tsv).
//
//   TsvTask task = glue_task("MRPC");
//   auto dev = read_split(task, "glue_data/MRPC", "dev");              // raw examples
//   auto ds = make_tensor_dataset(dev, task, tokenizer, 128);          // tensors
//   ... predictions ...
//   write_predictions(task, "test", test_examples, preds, "submission/");  // MRPC.tsv
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/dataset.h"
#include "data/metrics.h"

namespace memel {

class WordPieceTokenizer;

// Where the fields of one split's rows are. Columns are given as text: a 0-based
// index ("3"), negative from the end of the row ("-1": last), or a header name
// ("sentence", needs header). Empty: absent.
struct TsvLayout {
  bool header = true;
  std::string text_a = "0";
  std::string text_b;
  std::string label;
  std::string index;  // the id written to prediction files; absent: the row number
};

struct TsvSplit {
  std::string name;        // "train", "dev", "dev_matched", "test_mismatched", ...
  std::string file;        // file name inside the task directory
  TsvLayout layout;
  std::string submission;  // prediction file name the GLUE server expects ("MNLI-mm.tsv"); may be empty
};

struct TsvTask {
  std::string name;                 // "MRPC"
  std::vector<std::string> labels;  // class names, index = class id; empty for regression
  bool regression = false;          // one float label (STS-B)
  std::vector<std::string> metrics; // names for compute_metrics, the first is the headline
  bool skip_malformed = false;      // skip rows with too few columns (QQP's train file has some)
  std::vector<TsvSplit> splits;

  int64_t num_labels() const { return regression ? 1 : static_cast<int64_t>(labels.size()); }
  // The split called `name`; "dev" and "test" also find the first split whose name
  // starts with them (MNLI's dev_matched, test_matched). Throws listing the splits.
  const TsvSplit& split(const std::string& name) const;
  // Class id of a label string; throws naming the task and the known labels.
  int64_t label_index(const std::string& label) const;
};

// One raw example.
struct TextExample {
  std::string text_a;
  std::optional<std::string> text_b;
  std::optional<std::string> label;  // absent in unlabelled (test) files
  std::string index;                 // id from the index column, or the row number
  int64_t line = 0;                  // 1-based line in the file
};

// The GLUE tasks by name, case-insensitive; "SST2", "STSB", "MNLI-m"/"MNLI-mm" (MNLI)
// and "wn-lex", "wn-pair" are accepted too. Throws listing the known names.
const TsvTask& glue_task(const std::string& name);
std::vector<std::string> glue_task_names();  // the nine GLUE tasks, then wn-lex, wn-pair

// A generic task from JSON:
//   {"name": "mytask", "header": true, "text_a": "sentence", "text_b": "", "label": "label",
//    "index": "", "labels": ["neg", "pos"], "regression": false, "metrics": ["acc"],
//    "train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv", "test_has_labels": false}
// Every key is optional (defaults shown, text_a "0", label "1"). Without "labels" and
// "regression", the labels are read from the train file (sorted) when the task is
// loaded with load_tsv_task().
TsvTask tsv_task_from_json(const nlohmann::json& j);
// Resolves a task for a data directory: a GLUE/WordNet name, or a generic task (JSON)
// whose missing label list is collected from <dir>/<train file>.
TsvTask load_tsv_task(const nlohmann::json& task_or_name, const std::string& data_dir);

// Reads one split from `dir`. `skipped` (optional) receives the number of malformed
// rows skipped (skip_malformed tasks only; otherwise they throw with file:line).
std::vector<TextExample> read_split(const TsvTask& task, const std::string& dir, const std::string& split,
                                    int64_t* skipped = nullptr);
// Reads a TSV file with an explicit layout.
std::vector<TextExample> read_tsv(const std::string& path, const TsvLayout& layout, bool skip_malformed = false,
                                  int64_t* skipped = nullptr);

// Tokenized examples as a TensorDataset with columns
//   input_ids, token_type_ids, attention_mask  (N, T) int64
//   label  (N) int64 class id (-100 when unlabelled), or float32 for regression (NaN)
//   index  (N) int64 position in `examples` (to map predictions back after shuffling)
// T = max_len, or the longest encoded example when pad_to_longest (<= max_len).
std::shared_ptr<TensorDataset> make_tensor_dataset(const std::vector<TextExample>& examples, const TsvTask& task,
                                                   const WordPieceTokenizer& tokenizer, int64_t max_len,
                                                   bool pad_to_longest = true);

// Labels of `examples` as numbers (class ids, or floats for regression); throws on an
// unlabelled example.
std::vector<double> example_labels(const std::vector<TextExample>& examples, const TsvTask& task);
// The task's metrics for predictions (class ids or floats) against the examples' labels.
MetricMap evaluate(const TsvTask& task, const std::vector<TextExample>& examples, const std::vector<double>& pred);

// Writes predictions in the GLUE submission layout: header "index\tprediction", then
// one row per example: its index and the label name (classification; `pred` holds class
// ids) or the value with 3 decimals (regression). The file goes to
// <out_dir>/<split.submission> (e.g. CoLA.tsv, MNLI-m.tsv), or <task>-<split>.tsv when
// the split has no submission name. Returns the path.
std::string write_predictions(const TsvTask& task, const std::string& split, const std::vector<TextExample>& examples,
                              const std::vector<double>& pred, const std::string& out_dir);
// Reads a prediction file back: (index, prediction) pairs.
std::vector<std::pair<std::string, std::string>> read_predictions(const std::string& path);

}  // namespace memel
