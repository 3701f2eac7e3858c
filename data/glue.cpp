#include "data/glue.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "data/tokenizer.h"
#include "data/unicode.h"
#include "data/wordnet.h"

namespace memel {

// --- task table ----------------------------------------------------------------------

namespace {

TsvLayout layout(bool header, std::string a, std::string b, std::string label, std::string index) {
  TsvLayout l;
  l.header = header;
  l.text_a = std::move(a);
  l.text_b = std::move(b);
  l.label = std::move(label);
  l.index = std::move(index);
  return l;
}

// Train/dev/test with the same file names as GLUE and a submission file for test.
TsvTask three_split_task(std::string name, std::vector<std::string> labels, std::vector<std::string> metrics,
                         TsvLayout labelled, TsvLayout test, std::string submission) {
  TsvTask t;
  t.name = std::move(name);
  t.labels = std::move(labels);
  t.metrics = std::move(metrics);
  t.splits = {{"train", "train.tsv", labelled, ""},
              {"dev", "dev.tsv", labelled, ""},
              {"test", "test.tsv", test, std::move(submission)}};
  return t;
}

std::vector<TsvTask> build_tasks() {
  const std::vector<std::string> binary = {"0", "1"}, nli2 = {"entailment", "not_entailment"};
  std::vector<TsvTask> v;
  // CoLA: train/dev have no header: source, label, original label, sentence.
  v.push_back(three_split_task("CoLA", binary, {"mcc", "acc"}, layout(false, "3", "", "1", ""),
                               layout(true, "1", "", "", "0"), "CoLA.tsv"));
  v.push_back(three_split_task("SST-2", binary, {"acc"}, layout(true, "0", "", "1", ""),
                               layout(true, "1", "", "", "0"), "SST-2.tsv"));
  // MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String.
  v.push_back(three_split_task("MRPC", binary, {"acc", "f1", "acc_and_f1"}, layout(true, "3", "4", "0", ""),
                               layout(true, "3", "4", "", "0"), "MRPC.tsv"));
  {
    TsvTask t = three_split_task("STS-B", {}, {"pearson", "spearmanr", "corr"}, layout(true, "7", "8", "-1", "0"),
                                 layout(true, "7", "8", "", "0"), "STS-B.tsv");
    t.regression = true;
    v.push_back(t);
  }
  {
    // QQP: id, qid1, qid2, question1, question2, is_duplicate; test: id, question1, question2.
    TsvTask t = three_split_task("QQP", binary, {"acc", "f1", "acc_and_f1"}, layout(true, "3", "4", "5", "0"),
                                 layout(true, "1", "2", "", "0"), "QQP.tsv");
    t.skip_malformed = true;
    v.push_back(t);
  }
  {
    // MNLI: index, promptID, pairID, genre, 4 parses, sentence1, sentence2, ..., gold_label (last).
    TsvTask t;
    t.name = "MNLI";
    t.labels = {"contradiction", "entailment", "neutral"};
    t.metrics = {"acc"};
    const TsvLayout lab = layout(true, "8", "9", "-1", "0"), test = layout(true, "8", "9", "", "0");
    t.splits = {{"train", "train.tsv", lab, ""},
                {"dev_matched", "dev_matched.tsv", lab, ""},
                {"dev_mismatched", "dev_mismatched.tsv", lab, ""},
                {"test_matched", "test_matched.tsv", test, "MNLI-m.tsv"},
                {"test_mismatched", "test_mismatched.tsv", test, "MNLI-mm.tsv"}};
    v.push_back(t);
  }
  // QNLI, RTE, WNLI: index, sentence1/question, sentence2/sentence, label.
  v.push_back(three_split_task("QNLI", nli2, {"acc"}, layout(true, "1", "2", "-1", "0"),
                               layout(true, "1", "2", "", "0"), "QNLI.tsv"));
  v.push_back(three_split_task("RTE", nli2, {"acc"}, layout(true, "1", "2", "-1", "0"),
                               layout(true, "1", "2", "", "0"), "RTE.tsv"));
  v.push_back(three_split_task("WNLI", binary, {"acc"}, layout(true, "1", "2", "-1", "0"),
                               layout(true, "1", "2", "", "0"), "WNLI.tsv"));
  // WordNet tasks (tools/memel-data wordnet): the test files carry labels.
  v.push_back(three_split_task("wn-lex", wordnet_lexnames(), {"acc"}, layout(true, "0", "", "1", ""),
                               layout(true, "0", "", "1", ""), "wn-lex.tsv"));
  v.push_back(three_split_task("wn-pair", nli2, {"acc", "f1"}, layout(true, "1", "2", "3", "0"),
                               layout(true, "1", "2", "3", "0"), "wn-pair.tsv"));
  return v;
}

const std::vector<TsvTask>& tasks() {
  static const std::vector<TsvTask> t = build_tasks();
  return t;
}

std::string lower_ascii(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "SST-2", "sst2", "Sst_2" -> "sst2".
std::string canonical_name(const std::string& s) {
  std::string out;
  for (char c : lower_ascii(s))
    if (c != '-' && c != '_') out.push_back(c);
  return out;
}

}  // namespace

const TsvSplit& TsvTask::split(const std::string& want) const {
  for (const auto& s : splits)
    if (s.name == want) return s;
  if (want == "dev" || want == "test")
    for (const auto& s : splits)
      if (s.name.compare(0, want.size(), want) == 0) return s;
  std::string known;
  for (const auto& s : splits) known += (known.empty() ? "" : ", ") + s.name;
  MEMEL_FAIL("[tsv] task ", name, " has no split '", want, "' (splits: ", known, ")");
}

int64_t TsvTask::label_index(const std::string& label) const {
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] == label) return static_cast<int64_t>(i);
  std::string known;
  for (const auto& l : labels) known += (known.empty() ? "" : ", ") + l;
  MEMEL_FAIL("[tsv] task ", name, ": unknown label '", label, "' (labels: ", known, ")");
}

const TsvTask& glue_task(const std::string& name) {
  std::string c = canonical_name(name);
  if (c == "mnlim" || c == "mnlimm") c = "mnli";
  for (const auto& t : tasks())
    if (canonical_name(t.name) == c) return t;
  std::string known;
  for (const auto& t : tasks()) known += (known.empty() ? "" : ", ") + t.name;
  MEMEL_FAIL("[tsv] unknown task '", name, "' (known: ", known, ")");
}

std::vector<std::string> glue_task_names() {
  std::vector<std::string> v;
  for (const auto& t : tasks()) v.push_back(t.name);
  return v;
}

// --- generic tasks -------------------------------------------------------------------

TsvTask tsv_task_from_json(const nlohmann::json& j) {
  MEMEL_CHECK(j.is_object(), "[tsv] a generic task must be a JSON object, got ", j.dump());
  static const std::set<std::string> known = {"name", "header", "text_a", "text_b", "label", "index", "labels",
                                              "regression", "metrics", "train", "dev", "test",
                                              "test_has_labels"};
  for (auto it = j.begin(); it != j.end(); ++it)
    MEMEL_CHECK(known.count(it.key()), "[tsv] unknown key '", it.key(), "' in generic task ", j.dump());
  auto str = [&](const char* k, const char* def) {
    if (!j.contains(k)) return std::string(def);
    const auto& v = j.at(k);
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    MEMEL_CHECK(v.is_string(), "[tsv] generic task: '", k, "' must be a string or column number");
    return v.get<std::string>();
  };
  TsvTask t;
  t.name = str("name", "tsv");
  t.regression = j.value("regression", false);
  if (j.contains("labels")) t.labels = j.at("labels").get<std::vector<std::string>>();
  t.metrics = j.contains("metrics") ? j.at("metrics").get<std::vector<std::string>>()
                                    : (t.regression ? std::vector<std::string>{"pearson", "spearmanr"}
                                                    : std::vector<std::string>{"acc"});
  TsvLayout lab = layout(j.value("header", true), str("text_a", "0"), str("text_b", ""), str("label", "1"),
                         str("index", ""));
  MEMEL_CHECK(!lab.label.empty(), "[tsv] generic task ", t.name, ": a label column is required");
  TsvLayout test = lab;
  if (!j.value("test_has_labels", false)) test.label.clear();
  t.splits = {{"train", str("train", "train.tsv"), lab, ""},
              {"dev", str("dev", "dev.tsv"), lab, ""},
              {"test", str("test", "test.tsv"), test, t.name + ".tsv"}};
  return t;
}

TsvTask load_tsv_task(const nlohmann::json& spec, const std::string& data_dir) {
  if (spec.is_string()) return glue_task(spec.get<std::string>());
  TsvTask t = tsv_task_from_json(spec);
  if (!t.regression && t.labels.empty()) {
    std::set<std::string> seen;
    for (const auto& e : read_split(t, data_dir, "train"))
      if (e.label) seen.insert(*e.label);
    MEMEL_CHECK(!seen.empty(), "[tsv] generic task ", t.name, ": no labels found in the train split under ",
                data_dir);
    t.labels.assign(seen.begin(), seen.end());
  }
  return t;
}

// --- reading -------------------------------------------------------------------------

namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = line.find('\t', start);
    if (p == std::string::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, p - start));
    start = p + 1;
  }
}

bool is_integer(const std::string& s) {
  if (s.empty()) return false;
  size_t i = (s[0] == '-') ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

// A column reference resolved against the header: index >= 0, or from the end (< 0).
struct ColumnRef {
  bool present = false;
  int64_t index = 0;
  int64_t resolve(size_t row_size) const { return index >= 0 ? index : static_cast<int64_t>(row_size) + index; }
};

ColumnRef resolve_column(const std::string& spec, const std::vector<std::string>* header, const std::string& path,
                         const char* role) {
  ColumnRef r;
  if (spec.empty()) return r;
  r.present = true;
  if (is_integer(spec)) {
    r.index = std::stoll(spec);
    return r;
  }
  MEMEL_CHECK(header, "[tsv] ", path, ": column '", spec, "' (", role, ") is named, but the file has no header");
  auto it = std::find(header->begin(), header->end(), spec);
  MEMEL_CHECK(it != header->end(), "[tsv] ", path, ": no column named '", spec, "' (", role, ") in the header");
  r.index = it - header->begin();
  return r;
}

}  // namespace

std::vector<TextExample> read_tsv(const std::string& path, const TsvLayout& lay, bool skip_malformed,
                                  int64_t* skipped) {
  std::ifstream f(path, std::ios::binary);
  MEMEL_CHECK(f.good(), "[tsv] cannot open '", path, "'");
  std::string line;
  int64_t line_no = 0, skip = 0, offset = 0, next_offset = 0;  // offsets: first byte of the line in the file
  // Reads the next line, checks it is UTF-8 and drops a trailing '\r'.
  auto next_line = [&]() -> bool {
    if (!std::getline(f, line)) return false;
    ++line_no;
    offset = next_offset;
    next_offset += static_cast<int64_t>(line.size()) + 1;
    unicode::check_utf8_line(line, "tsv", path, line_no, offset);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  };
  std::vector<std::string> header;
  if (lay.header) {
    MEMEL_CHECK(next_line(), "[tsv] ", path, ": empty file, expected a header");
    // A UTF-8 byte order mark would otherwise be part of the first column name.
    if (line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    header = split_tabs(line);
  }
  // Every row has as many columns as the header (or, without one, as the first row): a
  // tab inside a sentence would otherwise shift the label into another column.
  size_t columns = header.size();
  int64_t columns_line = lay.header ? 1 : 0;
  const std::vector<std::string>* hp = lay.header ? &header : nullptr;
  const ColumnRef ca = resolve_column(lay.text_a, hp, path, "text_a");
  const ColumnRef cb = resolve_column(lay.text_b, hp, path, "text_b");
  const ColumnRef cl = resolve_column(lay.label, hp, path, "label");
  const ColumnRef ci = resolve_column(lay.index, hp, path, "index");
  MEMEL_CHECK(ca.present, "[tsv] ", path, ": the layout names no text_a column");
  std::vector<TextExample> out;
  int64_t row = 0;
  while (next_line()) {
    if (line.empty()) continue;
    std::vector<std::string> cols = split_tabs(line);
    if (columns_line == 0) columns = cols.size(), columns_line = line_no;
    if (cols.size() != columns) {
      MEMEL_CHECK(skip_malformed, "[tsv] ", path, ":", line_no, ": found ", cols.size(),
                  " tab-separated columns, expected ", columns, " (as in the ", lay.header ? "header" : "first row",
                  ", line ", columns_line, "); a tab inside a text field shifts the columns");
      ++skip;
      continue;
    }
    bool ok = true;
    int64_t need = 0;
    for (const ColumnRef* c : {&ca, &cb, &cl, &ci}) {
      if (!c->present) continue;
      const int64_t k = c->resolve(cols.size());
      if (k < 0 || k >= static_cast<int64_t>(cols.size())) ok = false;
      need = std::max(need, c->index >= 0 ? c->index + 1 : -c->index);
    }
    if (!ok) {
      MEMEL_CHECK(skip_malformed, "[tsv] ", path, ":", line_no, ": expected at least ", need, " tab-separated columns, got ",
                  cols.size());
      ++skip;
      continue;
    }
    TextExample e;
    e.text_a = cols[static_cast<size_t>(ca.resolve(cols.size()))];
    if (cb.present) e.text_b = cols[static_cast<size_t>(cb.resolve(cols.size()))];
    if (cl.present) e.label = cols[static_cast<size_t>(cl.resolve(cols.size()))];
    e.index = ci.present ? cols[static_cast<size_t>(ci.resolve(cols.size()))] : std::to_string(row);
    e.line = line_no;
    out.push_back(std::move(e));
    ++row;
  }
  if (skipped) *skipped = skip;
  return out;
}

std::vector<TextExample> read_split(const TsvTask& task, const std::string& dir, const std::string& split,
                                    int64_t* skipped) {
  const TsvSplit& s = task.split(split);
  return read_tsv(dir + "/" + s.file, s.layout, task.skip_malformed, skipped);
}

// --- labels, tensors, metrics --------------------------------------------------------

namespace {
double label_value(const TsvTask& task, const TextExample& e) {
  if (task.regression) {
    const std::string& s = *e.label;
    size_t used = 0;
    double v = std::numeric_limits<double>::quiet_NaN();
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MEMEL_CHECK(used > 0 && used == s.size(), "[tsv] task ", task.name, ", line ", e.line, ": label '", s,
                "' is not a number");
    return v;
  }
  try {
    return static_cast<double>(task.label_index(*e.label));
  } catch (const Error& err) {
    MEMEL_FAIL(err.what(), " at line ", e.line);
  }
}
}  // namespace

std::vector<double> example_labels(const std::vector<TextExample>& examples, const TsvTask& task) {
  std::vector<double> v;
  v.reserve(examples.size());
  for (const auto& e : examples) {
    MEMEL_CHECK(e.label.has_value(), "[tsv] task ", task.name, ": example at line ", e.line, " has no label");
    v.push_back(label_value(task, e));
  }
  return v;
}

MetricMap evaluate(const TsvTask& task, const std::vector<TextExample>& examples, const std::vector<double>& pred) {
  return compute_metrics(task.metrics, pred, example_labels(examples, task));
}

std::shared_ptr<TensorDataset> make_tensor_dataset(const std::vector<TextExample>& examples, const TsvTask& task,
                                                   const WordPieceTokenizer& tok, int64_t max_len,
                                                   bool pad_to_longest) {
  MEMEL_CHECK(!examples.empty(), "[tsv] make_tensor_dataset: no examples for task ", task.name);
  std::vector<Encoding> enc;
  enc.reserve(examples.size());
  int64_t longest = 0;
  for (const auto& e : examples) {
    enc.push_back(tok.encode(e.text_a, e.text_b, max_len, false, true));
    longest = std::max<int64_t>(longest, static_cast<int64_t>(enc.back().length()));
  }
  const int64_t n = static_cast<int64_t>(examples.size()), T = pad_to_longest ? longest : max_len;
  const int64_t pad = tok.pad_id();
  std::vector<int64_t> ids(static_cast<size_t>(n * T), pad), types(static_cast<size_t>(n * T), 0),
      mask(static_cast<size_t>(n * T), 0), index(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const Encoding& e = enc[static_cast<size_t>(i)];
    std::copy(e.input_ids.begin(), e.input_ids.end(), ids.begin() + i * T);
    std::copy(e.token_type_ids.begin(), e.token_type_ids.end(), types.begin() + i * T);
    std::copy(e.attention_mask.begin(), e.attention_mask.end(), mask.begin() + i * T);
    index[static_cast<size_t>(i)] = i;
  }
  std::map<std::string, Tensor> cols;
  cols["input_ids"] = Tensor::from_vector(ids, {n, T});        // (N, T)
  cols["token_type_ids"] = Tensor::from_vector(types, {n, T});  // (N, T)
  cols["attention_mask"] = Tensor::from_vector(mask, {n, T});   // (N, T)
  cols["index"] = Tensor::from_vector(index, {n});              // (N)
  if (task.regression) {
    std::vector<float> lab(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const auto& e = examples[static_cast<size_t>(i)];
      lab[static_cast<size_t>(i)] =
          e.label ? static_cast<float>(label_value(task, e)) : std::numeric_limits<float>::quiet_NaN();
    }
    cols["label"] = Tensor::from_vector(lab, {n});  // (N) float32
  } else {
    std::vector<int64_t> lab(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const auto& e = examples[static_cast<size_t>(i)];
      lab[static_cast<size_t>(i)] = e.label ? static_cast<int64_t>(label_value(task, e)) : -100;
    }
    cols["label"] = Tensor::from_vector(lab, {n});  // (N) int64
  }
  return std::make_shared<TensorDataset>(std::move(cols));
}

// --- prediction files ----------------------------------------------------------------

std::string write_predictions(const TsvTask& task, const std::string& split, const std::vector<TextExample>& examples,
                              const std::vector<double>& pred, const std::string& out_dir) {
  MEMEL_CHECK(examples.size() == pred.size(), "[tsv] write_predictions: ", examples.size(), " examples but ",
              pred.size(), " predictions");
  const TsvSplit& s = task.split(split);
  const std::string name = s.submission.empty() ? task.name + "-" + s.name + ".tsv" : s.submission;
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  MEMEL_CHECK(!ec, "[tsv] cannot create directory '", out_dir, "': ", ec.message());
  const std::string path = out_dir + "/" + name;
  std::ofstream f(path, std::ios::binary);
  MEMEL_CHECK(f.good(), "[tsv] cannot write '", path, "'");
  f << "index\tprediction\n";
  char buf[64];
  for (size_t i = 0; i < pred.size(); ++i) {
    f << examples[i].index << '\t';
    if (task.regression) {
      std::snprintf(buf, sizeof(buf), "%.3f", pred[i]);
      f << buf << '\n';
    } else {
      const int64_t k = static_cast<int64_t>(std::llround(pred[i]));
      MEMEL_CHECK(k >= 0 && k < task.num_labels(), "[tsv] write_predictions: class ", pred[i], " out of range for ",
                  task.name, " (", task.num_labels(), " labels)");
      f << task.labels[static_cast<size_t>(k)] << '\n';
    }
  }
  MEMEL_CHECK(f.good(), "[tsv] error writing '", path, "'");
  return path;
}

std::vector<std::pair<std::string, std::string>> read_predictions(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MEMEL_CHECK(f.good(), "[tsv] cannot open '", path, "'");
  std::string line;
  MEMEL_CHECK(std::getline(f, line) && line == "index\tprediction", "[tsv] ", path,
              ": expected the header 'index<TAB>prediction'");
  std::vector<std::pair<std::string, std::string>> out;
  int64_t line_no = 1;
  while (std::getline(f, line)) {
    ++line_no;
    if (line.empty()) continue;
    const size_t tab = line.find('\t');
    MEMEL_CHECK(tab != std::string::npos, "[tsv] ", path, ":", line_no, ": expected 'index<TAB>prediction'");
    out.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return out;
}

}  // namespace memel
