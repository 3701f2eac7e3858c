#pragma once
// Masked-language-model data, as BERT pretrains: 15% of the ordinary tokens are chosen;
// of those 80% become [MASK], 10% a random vocabulary token, 10% stay unchanged. Labels
// hold the original id at chosen positions and -100 (cross_entropy's ignore_index)
// elsewhere. Special tokens and padding are never chosen. Every sequence with at least
// one ordinary token gets at least one chosen position (MlmOptions::at_least_one), so a
// batch never has zero targets.
//
// Randomness is counter-based (Philox, core/rng.h): position t of a call gets its own
// counter, so the result depends only on the generator state, never on threads.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"

namespace memel {

class Generator;
class WordPieceTokenizer;

struct MlmOptions {
  double mask_prob = 0.15;     // chance that an ordinary token is chosen
  double replace_mask = 0.8;   // of the chosen: -> [MASK]
  double replace_random = 0.1; // of the chosen: -> uniform random id in [0, vocab_size); rest unchanged
  int64_t ignore_index = -100;
  // When the draw chooses no position of a sequence that has a maskable one, choose the
  // maskable position whose draw came closest (smallest first Philox word) anyway; its
  // replacement follows the 80/10/10 rule as usual. Costs no extra random numbers.
  bool at_least_one = true;
};

// Masks `ids` (one sequence) in place and returns the labels. maskable[i] says whether
// position i may be chosen. Draws from Philox with key `seed`, counters counter0 + i.
std::vector<int64_t> mlm_mask_ids(std::vector<int64_t>& ids, const std::vector<bool>& maskable, int64_t vocab_size,
                                  int64_t mask_id, uint64_t seed, uint64_t counter0, const MlmOptions& o = {});

struct MlmBatch {
  Tensor input_ids;  // (B, T) int64, masked copy
  Tensor labels;     // (B, T) int64, original id or ignore_index
};
// Masks a batch of token ids (B, T) (or (T)); positions with a special id of the
// tokenizer, or with attention_mask 0 when given, are never chosen. Each row is one
// sequence for at_least_one. Advances `gen`.
MlmBatch mlm_mask(const Tensor& input_ids, const WordPieceTokenizer& tok, Generator& gen,
                  const Tensor& attention_mask = Tensor(), const MlmOptions& o = {});

// The lines of a text corpus: `path` is a UTF-8 text file, or a directory whose *.txt
// files (recursively, in sorted path order) are read one after another. A trailing '\r'
// is removed; blank lines are kept (the dataset skips them). Throws naming the path when
// it cannot be read or holds no .txt file.
std::vector<std::string> read_text_lines(const std::string& path);

// Splits lines into (train, eval) by a hash of each line's text keyed by `seed`: a line
// goes to eval with probability `eval_fraction`. Identical lines land on the same side,
// so nothing repeated leaks from eval into train; the split of a line does not depend on
// the others. Order within each side is kept.
std::pair<std::vector<std::string>, std::vector<std::string>> split_text_lines(const std::vector<std::string>& lines,
                                                                               double eval_fraction, uint64_t seed);

struct MlmTextOptions {
  int64_t max_len = 128;
  // Pack consecutive lines into one sequence, "[CLS] l1 [SEP] l2 [SEP] ...", up to max_len
  // (lines longer than max_len - 2 are truncated); otherwise one line per example.
  bool pack = false;
  // Masking in the dataset: when set, examples also carry "labels", masked with Philox
  // key mask_seed. Unset: unmasked examples, mask per batch with mlm_mask().
  std::optional<uint64_t> mask_seed;
  // With mask_seed: a fresh mask every epoch (dynamic masking, as RoBERTa): example i as
  // drawn in epoch e uses counters from (e * size() + i) * max_len, so a mask is a function
  // of (mask_seed, epoch, i) only and a DataLoader resumed at a position gives the same
  // batches. false: the same mask every epoch (static, epoch 0's).
  bool mask_per_epoch = false;
  MlmOptions mlm;
};

// A text corpus (UTF-8, one sentence or gloss per line; blank lines skipped) as a dataset
// for MLM pretraining. Examples: input_ids, token_type_ids (zeros), attention_mask, all
// (T) int64 with T = max_len, plus labels (T) with mask_seed. get(i) is epoch 0's example.
class MlmTextDataset : public Dataset {
 public:
  // `path`: a file or a directory, as read_text_lines.
  MlmTextDataset(const std::string& path, const WordPieceTokenizer& tok, MlmTextOptions options = {});
  MlmTextDataset(const std::vector<std::string>& lines, const WordPieceTokenizer& tok, MlmTextOptions options = {});
  int64_t size() const override { return static_cast<int64_t>(seqs_.size()); }
  Example get(int64_t i) const override { return get_at_epoch(i, 0); }
  Example get_batch_at_epoch(const std::vector<int64_t>& indices, int64_t epoch) const override;
  Example get_at_epoch(int64_t i, int64_t epoch) const;
  int64_t max_len() const { return opt_.max_len; }
  int64_t num_tokens() const;  // non-padding tokens over all examples
  // Keeps the first n sequences (n <= 0 or n >= size(): all).
  void truncate(int64_t n);

 private:
  void build(const std::vector<std::string>& lines, const WordPieceTokenizer& tok);
  MlmTextOptions opt_;
  std::vector<std::vector<int64_t>> seqs_;  // with [CLS]/[SEP], unpadded
  std::vector<bool> special_;               // by id: never masked
  int64_t vocab_size_ = 0, mask_id_ = 0, pad_id_ = 0;
};

}  // namespace memel
