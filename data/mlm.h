#pragma once
// Masked-language-model data, as BERT pretrains: 15% of the ordinary tokens are chosen;
// of those 80% become [MASK], 10% a random vocabulary token, 10% stay unchanged. Labels
// hold the original id at chosen positions and -100 (cross_entropy's ignore_index)
// elsewhere. Special tokens and padding are never chosen.
//
// Randomness is counter-based (Philox, core/rng.h): position t of a call gets its own
// counter, so the result depends only on the generator state, never on threads.
#include <cstdint>
#include <optional>
#include <string>
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
};

// Masks `ids` in place and returns the labels. maskable[i] says whether position i may
// be chosen. Draws from Philox with key `seed`, counters counter0 + i.
std::vector<int64_t> mlm_mask_ids(std::vector<int64_t>& ids, const std::vector<bool>& maskable, int64_t vocab_size,
                                  int64_t mask_id, uint64_t seed, uint64_t counter0, const MlmOptions& o = {});

struct MlmBatch {
  Tensor input_ids;  // (B, T) int64, masked copy
  Tensor labels;     // (B, T) int64, original id or ignore_index
};
// Masks a batch of token ids (B, T) (or (T)); positions with a special id of the
// tokenizer, or with attention_mask 0 when given, are never chosen. Advances `gen`.
MlmBatch mlm_mask(const Tensor& input_ids, const WordPieceTokenizer& tok, Generator& gen,
                  const Tensor& attention_mask = Tensor(), const MlmOptions& o = {});

struct MlmTextOptions {
  int64_t max_len = 128;
  // Pack consecutive lines into one sequence, "[CLS] l1 [SEP] l2 [SEP] ...", up to max_len
  // (lines longer than max_len - 2 are truncated); otherwise one line per example.
  bool pack = false;
  // Static masking: when set, get(i) also masks (with this seed, the same every epoch)
  // and returns "labels". Unset: unmasked examples, mask per batch with mlm_mask().
  std::optional<uint64_t> static_mask_seed;
  MlmOptions mlm;
};

// A text file (UTF-8, one sentence or gloss per line; blank lines skipped) as a dataset
// for MLM pretraining. Examples: input_ids, token_type_ids (zeros), attention_mask, all
// (T) int64 with T = max_len, plus labels (T) with static masking.
class MlmTextDataset : public Dataset {
 public:
  MlmTextDataset(const std::string& path, const WordPieceTokenizer& tok, MlmTextOptions options = {});
  MlmTextDataset(const std::vector<std::string>& lines, const WordPieceTokenizer& tok, MlmTextOptions options = {});
  int64_t size() const override { return static_cast<int64_t>(seqs_.size()); }
  Example get(int64_t i) const override;
  int64_t max_len() const { return opt_.max_len; }
  int64_t num_tokens() const;  // non-padding tokens over all examples

 private:
  void build(const std::vector<std::string>& lines, const WordPieceTokenizer& tok);
  MlmTextOptions opt_;
  std::vector<std::vector<int64_t>> seqs_;  // with [CLS]/[SEP], unpadded
  std::vector<bool> special_;               // by id: never masked
  int64_t vocab_size_ = 0, mask_id_ = 0, pad_id_ = 0;
};

}  // namespace memel
