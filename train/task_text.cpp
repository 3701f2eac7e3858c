// text-classification: BERT fine-tuning on a GLUE-layout task (the nine GLUE tasks,
// wn-lex / wn-pair from `memel-data wordnet`, or a generic TSV task), classification or
// regression (STS-B), with the task's own metrics.
#include "train/config.h"
#include "data/glue.h"
#include "train/task.h"
#include "train/task_bert.h"

namespace memel::train {
namespace {

class TextClassification : public Task {
 public:
  explicit TextClassification(const json& cfg) {
    const json& d = cfg.at("data");
    const std::string dir = get_str(d, "dir", "data");
    MEMEL_CHECK(!dir.empty(), "[config] data.dir: the task's data directory (train/dev TSV files) is required");
    task_ = load_tsv_task(d.at("task"), dir);
    BertSetup bs = bert_setup(cfg, "text-classification");
    bs.config.num_labels = task_.num_labels();
    config_ = bs.config;
    model_ = std::make_shared<BertForSequenceClassification>(config_);
    paper_ = paper_memel_targets(config_, "bert.");
    load_pretrained_bert(*model_, bs, "BertForSequenceClassification");
    WordPieceTokenizer tok = bert_tokenizer(d, bs);
    const int64_t max_len = get_int(d, "max_len", "data");
    auto limit = [](std::vector<TextExample> v, int64_t n) {
      if (n > 0 && n < static_cast<int64_t>(v.size())) v.resize(static_cast<size_t>(n));
      return v;
    };
    train_ex_ = limit(read_split(task_, dir, "train"), get_int(d, "train_limit", "data"));
    dev_ex_ = limit(read_split(task_, dir, get_str(d, "eval_split", "data")), get_int(d, "eval_limit", "data"));
    // Fixed length: memel's element neurons are (token position, hidden unit).
    train_ = make_tensor_dataset(train_ex_, task_, tok, max_len, false);
    eval_ = make_tensor_dataset(dev_ex_, task_, tok, max_len, false);
  }

  std::shared_ptr<Module> model() override { return model_; }
  std::vector<std::string> paper_targets() const override { return paper_; }
  std::shared_ptr<const Dataset> train_set() override { return train_; }
  std::shared_ptr<const Dataset> eval_set() override { return eval_; }

  Tensor loss(const Example& b) override {
    return model_->forward(b.at("input_ids"), b.at("attention_mask"), b.at("token_type_ids"), b.at("label")).loss;
  }
  void eval_reset() override {
    pred_.assign(dev_ex_.size(), 0.0);
    loss_sum_ = 0;
    n_ = 0;
  }
  void eval_batch(const Example& b) override {
    BertHeadOutput o = model_->forward(b.at("input_ids"), b.at("attention_mask"), b.at("token_type_ids"), b.at("label"));
    const int64_t bs = b.at("input_ids").shape()[0];
    loss_sum_ += o.loss.item() * double(bs);
    n_ += bs;
    std::vector<int64_t> idx = b.at("index").to_vector_as<int64_t>();
    std::vector<double> p = task_.regression ? o.logits.to_vector() : argmax(o.logits, 1).to_vector();
    for (size_t i = 0; i < idx.size(); ++i) pred_[idx[i]] = p[i];
  }
  json eval_metrics() override {
    json j;
    for (auto& [k, v] : evaluate(task_, dev_ex_, pred_)) j[k] = v;
    // The headline metric: the task's first named metric, else the first reported.
    primary_ = "loss";
    if (!task_.metrics.empty() && j.contains(task_.metrics[0])) primary_ = task_.metrics[0];
    else if (!j.empty()) primary_ = j.begin().key();
    j["loss"] = n_ ? loss_sum_ / double(n_) : 0.0;
    return j;
  }
  std::string primary_metric() const override { return primary_; }
  bool higher_is_better() const override { return primary_ != "loss"; }
  void save_weights(const std::string& path) override { save_bert_checkpoint(*model_, config_, path); }

 private:
  TsvTask task_;
  BertConfig config_;
  std::shared_ptr<BertForSequenceClassification> model_;
  std::vector<std::string> paper_;
  std::vector<TextExample> train_ex_, dev_ex_;
  std::shared_ptr<const Dataset> train_, eval_;
  std::vector<double> pred_;
  double loss_sum_ = 0;
  int64_t n_ = 0;
  std::string primary_ = "loss";
};

}  // namespace

TaskInfo text_classification_task() {
  return {json{{"model", {{"name", "bert"}, {"config", {{"preset", "bert-mini"}}}, {"config_file", nullptr}, {"pretrained", nullptr}}},
          {"data",
           {{"task", "wn-lex"}, {"dir", ""}, {"vocab", ""}, {"lower_case", true}, {"max_len", 64}, {"train_limit", 0},
            {"eval_limit", 0}, {"eval_split", "dev"}}}},
     [](const json& cfg) { return std::make_unique<TextClassification>(cfg); }};
}

}  // namespace memel::train
