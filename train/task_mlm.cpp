// mlm-pretrain: BERT masked-language-model pretraining (BertForMaskedLM, decoder tied to
// the word embeddings) on a plain-text corpus, one sentence or document per line.
//
// Data: data.train is a text file or a directory of .txt files; the evaluation text is
// data.eval (same forms) or, with data.eval_fraction > 0, the lines of data.train whose
// hash (keyed by data.split_seed) falls in that fraction. Lines are packed into
// sequences "[CLS] l1 [SEP] l2 [SEP] ..." of at most data.max_len tokens (data.pack, the
// default) or taken one per sequence; every sequence is padded to max_len (memel's
// element neurons are (token position, hidden unit)).
//
// Masking (data/mlm.h): data.mlm_probability of the ordinary tokens are chosen, of those
// data.mask_replace_prob become [MASK], data.random_replace_prob a random token, the rest
// stay; at least one token per sequence. Training masks are drawn anew every epoch from
// (seed, epoch, sequence) with Philox, so they follow the loader position and a resumed
// run sees the same masks; evaluation masks are fixed by data.split_seed, so every
// evaluation (and every seed of a comparison) scores the same targets.
//
// Metrics: train "loss" (mean cross-entropy over the masked tokens of the batch); eval
// mlm_loss (mean over all masked tokens of the evaluation set), mlm_accuracy (top-1 on
// those tokens) and perplexity = exp(mlm_loss). The best checkpoint has the lowest mlm_loss.
#include <cmath>

#include "train/config.h"
#include "data/mlm.h"
#include "train/task.h"
#include "train/task_bert.h"

namespace memel::train {
namespace {

// Philox keys of the masks, apart from the keys of dropout and shuffling (the run seed).
constexpr uint64_t kTrainMaskKey = 0x6d6c6d2d74726169ull;  // "mlm-trai"
constexpr uint64_t kEvalMaskKey = 0x6d6c6d2d6576616cull;   // "mlm-eval"

double probability(const json& d, const std::string& key) {
  const double p = get_num(d, key, "data");
  MEMEL_CHECK(p >= 0 && p <= 1, "[config] data.", key, ": expected a probability in [0, 1], got ", p);
  return p;
}

class MlmPretrain : public Task {
 public:
  explicit MlmPretrain(const json& cfg) {
    const json& d = cfg.at("data");
    const BertSetup bs = bert_setup(cfg, "mlm-pretrain");
    config_ = bs.config;
    model_ = std::make_shared<BertForMaskedLM>(config_);
    paper_ = paper_memel_targets(config_, "bert.");
    load_pretrained_bert(*model_, bs, "BertForMaskedLM");
    const WordPieceTokenizer tok = bert_tokenizer(d, bs);

    const std::string train_path = get_str(d, "train", "data"), eval_path = get_str(d, "eval", "data");
    const double eval_fraction = get_num(d, "eval_fraction", "data");
    MEMEL_CHECK(!train_path.empty(), "[config] data.train: the training corpus (a text file, or a directory of .txt "
                "files, one sentence or document per line) is required");
    MEMEL_CHECK(eval_fraction >= 0 && eval_fraction < 1, "[config] data.eval_fraction: expected a fraction in [0, 1), got ",
                eval_fraction);
    MEMEL_CHECK(eval_path.empty() || eval_fraction == 0, "[config] data.eval and data.eval_fraction: give one of them, "
                "not both");
    MEMEL_CHECK(!eval_path.empty() || eval_fraction > 0, "[config] data.eval: an evaluation corpus is required (or "
                "data.eval_fraction > 0 to hold out part of data.train)");
    const uint64_t split_seed = static_cast<uint64_t>(get_int(d, "split_seed", "data"));

    MlmTextOptions o;
    o.max_len = get_int(d, "max_len", "data");
    o.pack = get_bool(d, "pack", "data");
    o.mlm.mask_prob = probability(d, "mlm_probability");
    o.mlm.replace_mask = probability(d, "mask_replace_prob");
    o.mlm.replace_random = probability(d, "random_replace_prob");
    MEMEL_CHECK(o.mlm.replace_mask + o.mlm.replace_random <= 1, "[config] data.mask_replace_prob + "
                "data.random_replace_prob: must not exceed 1, got ", o.mlm.replace_mask + o.mlm.replace_random);
    MlmTextOptions train_o = o, eval_o = o;
    train_o.mask_seed = kTrainMaskKey ^ config_seed(cfg);
    train_o.mask_per_epoch = true;
    eval_o.mask_seed = kEvalMaskKey ^ split_seed;

    std::shared_ptr<MlmTextDataset> train, eval;
    if (eval_fraction > 0) {
      auto [tr, ev] = split_text_lines(read_text_lines(train_path), eval_fraction, split_seed);
      MEMEL_CHECK(!ev.empty(), "[config] data.eval_fraction: ", eval_fraction, " of ", train_path,
                  " left no evaluation line");
      train = std::make_shared<MlmTextDataset>(tr, tok, train_o);
      eval = std::make_shared<MlmTextDataset>(ev, tok, eval_o);
    } else {
      train = std::make_shared<MlmTextDataset>(train_path, tok, train_o);
      eval = std::make_shared<MlmTextDataset>(eval_path, tok, eval_o);
    }
    train->truncate(get_int(d, "train_limit", "data"));
    eval->truncate(get_int(d, "eval_limit", "data"));
    train_ = train;
    eval_ = eval;
  }

  std::shared_ptr<Module> model() override { return model_; }
  std::vector<std::string> paper_targets() const override { return paper_; }
  std::shared_ptr<const Dataset> train_set() override { return train_; }
  std::shared_ptr<const Dataset> eval_set() override { return eval_; }

  Tensor loss(const Example& b) override { return forward(b).loss; }
  void eval_reset() override {
    loss_sum_ = 0;
    correct_ = 0;
    n_ = 0;
  }
  void eval_batch(const Example& b) override {
    BertHeadOutput o = forward(b);  // logits (N, V) at the N masked positions
    std::vector<int64_t> targets;
    for (int64_t v : b.at("labels").to_vector_as<int64_t>())
      if (v != -100) targets.push_back(v);
    const std::vector<int64_t> pred = argmax(o.logits, 1).to_vector_as<int64_t>();  // (N)
    for (size_t i = 0; i < targets.size(); ++i) correct_ += pred[i] == targets[i];
    loss_sum_ += o.loss.item() * double(targets.size());
    n_ += static_cast<int64_t>(targets.size());
  }
  json eval_metrics() override {
    const double loss = n_ ? loss_sum_ / double(n_) : 0.0;
    return {{"mlm_loss", loss},
            {"mlm_accuracy", n_ ? double(correct_) / double(n_) : 0.0},
            {"perplexity", std::exp(loss)}};
  }
  std::string primary_metric() const override { return "mlm_loss"; }
  bool higher_is_better() const override { return false; }
  void save_weights(const std::string& path) override { save_bert_checkpoint(*model_, config_, path); }

 private:
  BertHeadOutput forward(const Example& b) {
    return model_->forward_labelled(b.at("input_ids"), b.at("attention_mask"), b.at("token_type_ids"), b.at("labels"));
  }

  BertConfig config_;
  std::shared_ptr<BertForMaskedLM> model_;
  std::vector<std::string> paper_;
  std::shared_ptr<const Dataset> train_, eval_;
  double loss_sum_ = 0;
  int64_t correct_ = 0, n_ = 0;
};

}  // namespace

TaskInfo mlm_pretrain_task() {
  return {json{{"model", {{"name", "bert"}, {"config", {{"preset", "bert-mini"}}}, {"config_file", nullptr}, {"pretrained", nullptr}}},
          {"data",
           {{"train", ""}, {"eval", ""}, {"eval_fraction", 0.0}, {"split_seed", 0}, {"vocab", ""}, {"lower_case", true},
            {"max_len", 128}, {"pack", true}, {"mlm_probability", 0.15}, {"mask_replace_prob", 0.8},
            {"random_replace_prob", 0.1}, {"train_limit", 0}, {"eval_limit", 0}}}},
     [](const json& cfg) { return std::make_unique<MlmPretrain>(cfg); }};
}

}  // namespace memel::train
