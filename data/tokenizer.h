#pragma once
// BERT's WordPiece tokenizer (uncased and cased) from a vocab.txt, matching Hugging
// Face's BertTokenizer (transformers 4.x, the slow Python one):
//   1. the text is split on never_split (special) tokens, which pass through whole (so
//      does a word that equals one after cleaning);
//   2. basic tokenisation of the rest: (uncased) lower-case, drop NUL, U+FFFD and
//      control characters, whitespace -> ' ', spaces around CJK ideographs, NFC, split
//      on whitespace, (uncased) lower-case and strip accents (NFD, drop Mn), split off
//      every punctuation character (Unicode P* and all ASCII symbols);
//   3. greedy longest-match-first WordPiece with "##" continuations; a word longer than
//      max_input_chars_per_word code points, or one that cannot be covered, is [UNK].
// Input is UTF-8; invalid bytes become U+FFFD (then dropped, as the reference drops
// U+FFFD). Unicode coverage: see data/unicode.h. Checked id for id against the
// reference on tests/data/text/tokenizer_reference.json (tests/data/test_tokenizer.cpp).
#include <cstdint>
#include <optional>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor/tensor.h"

namespace memel {

// How encode() shortens a pair [CLS] a [SEP] b [SEP] that exceeds max_len (budget
// n = max_len - 3 tokens for a and b). Both Hugging Face implementations call it
// "longest_first" but they differ when both texts are long:
//   Slow: BertTokenizer (Python): one token at a time from the end of the longer text,
//         from b on ties.
//   Fast: BertTokenizerFast (the tokenizers library; what sentence-transformers uses):
//         with s <= l the two lengths, the shorter keeps s and the longer gets n - s when
//         s <= n / 2; otherwise both get n / 2, and the longer text (b on ties) the
//         extra token of an odd n.
// E.g. n = 9 and both texts 10 tokens: Slow keeps a 5, b 4; Fast a 4, b 5. A single
// text is cut to max_len - 2 either way.
enum class PairTruncation { Slow, Fast };

struct WordPieceOptions {
  bool do_lower_case = true;
  // Unset: strip accents exactly when lower-casing (BERT's default).
  std::optional<bool> strip_accents;
  bool tokenize_chinese_chars = true;
  int max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]", cls_token = "[CLS]", sep_token = "[SEP]", pad_token = "[PAD]",
              mask_token = "[MASK]";
  // Tokens never split or lower-cased; found anywhere in the text. Empty: the five
  // special tokens above.
  std::vector<std::string> never_split;
  PairTruncation pair_truncation = PairTruncation::Slow;  // see above
};

// One encoded example: [CLS] a [SEP] (b [SEP]) then padding.
struct Encoding {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> token_type_ids;  // 0 for [CLS] a [SEP], 1 for b [SEP], 0 on padding
  std::vector<int64_t> attention_mask;  // 1 on tokens, 0 on padding
  size_t length() const { return input_ids.size(); }
};

// A batch padded to its longest sequence: three (B, T) int64 tensors, ready for
// BertModel::forward(input_ids, attention_mask, token_type_ids).
struct BatchEncoding {
  Tensor input_ids;       // [PAD] after each sequence's end
  Tensor attention_mask;  // 1 on tokens, 0 on padding
  Tensor token_type_ids;  // 0 for the first text, 1 for the second, 0 on padding
  std::vector<Encoding> encodings;  // per example, unpadded
  int64_t batch_size() const { return static_cast<int64_t>(encodings.size()); }
  int64_t seq_len() const { return input_ids.defined() ? input_ids.size(1) : 0; }
};

class WordPieceTokenizer {
 public:
  // Token i of `vocab` gets id i (a repeated token keeps its last id, as the reference).
  WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options = {});
  // Reads a vocab.txt (one token per line, UTF-8).
  static WordPieceTokenizer from_file(const std::string& vocab_path, WordPieceOptions options = {});
  // A Hugging Face model directory: dir/vocab.txt, with the options of
  // dir/tokenizer_config.json when present (do_lower_case, strip_accents,
  // tokenize_chinese_chars, unk/cls/sep/pad/mask_token); without it, `options`.
  static WordPieceTokenizer from_pretrained(const std::string& dir, WordPieceOptions options = {});

  // Text -> word pieces (special tokens included as they appear in the text).
  std::vector<std::string> tokenize(const std::string& text) const;
  // Steps 1-2 only: the words WordPiece would see.
  std::vector<std::string> basic_tokenize(const std::string& text) const;
  // Step 3 for one word.
  std::vector<std::string> wordpiece(const std::string& word) const;
  std::vector<int64_t> tokens_to_ids(const std::vector<std::string>& tokens) const;
  std::vector<int64_t> text_to_ids(const std::string& text) const { return tokens_to_ids(tokenize(text)); }

  // Encodes one text or a pair. When the result would exceed max_len and `truncate`,
  // tokens are removed as options().pair_truncation says (default: the slow tokenizer's
  // "longest_first", from the end of the longer side first, b on ties); without
  // `truncate` an over-long input throws.
  // pad_to_max pads with [PAD] up to max_len.
  Encoding encode(const std::string& text_a, const std::optional<std::string>& text_b = std::nullopt,
                  int64_t max_len = 512, bool pad_to_max = false, bool truncate = true) const;
  // Same from ids (without special tokens).
  Encoding encode_ids(std::vector<int64_t> ids_a, std::optional<std::vector<int64_t>> ids_b, int64_t max_len,
                      bool pad_to_max = false, bool truncate = true) const;

  // Encodes a batch of texts (or of pairs), each as encode() with max_len and truncate,
  // padded with [PAD] to the longest sequence of the batch, as Hugging Face's
  // tokenizer(texts, padding=True, truncation=True, max_length=max_len). An empty batch
  // is an error.
  BatchEncoding encode_batch(const std::vector<std::string>& texts, int64_t max_len = 512,
                             bool truncate = true) const;
  BatchEncoding encode_batch(const std::vector<std::pair<std::string, std::string>>& pairs, int64_t max_len = 512,
                             bool truncate = true) const;
  // Pads ready encodings (any lengths) to the longest one.
  BatchEncoding pad_batch(std::vector<Encoding> encodings) const;

  // Ids -> text: pieces joined by spaces with " ##" removed. clean_up_spaces also removes
  // the space before . , ! ? and in contractions ("do n't" -> "don't"), as the reference.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true,
                     bool clean_up_spaces = false) const;

  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  // Id of a token, or -1 when it is not in the vocabulary.
  int64_t find(const std::string& token) const;
  int64_t token_to_id(const std::string& token) const;  // unknown tokens -> unk_id()
  const std::string& id_to_token(int64_t id) const;
  int64_t unk_id() const { return unk_id_; }
  int64_t cls_id() const;
  int64_t sep_id() const;
  int64_t pad_id() const;
  int64_t mask_id() const;
  bool is_special_id(int64_t id) const;  // one of the never_split tokens
  const WordPieceOptions& options() const { return options_; }

 private:
  std::vector<std::u32string> split_on_never_split(const std::u32string& text, std::vector<bool>* is_special) const;
  void basic_tokenize_chunk(const std::u32string& chunk, std::vector<std::u32string>& out) const;
  // Steps 1-2 over the whole text: emit(word, special) per word, special = a never-split
  // chunk found in the text (kept whole).
  void for_each_basic_word(const std::string& text,
                           const std::function<void(const std::u32string&, bool)>& emit) const;
  bool is_never_split(const std::u32string& word) const;
  void wordpiece_into(const std::u32string& word, std::vector<std::string>& out) const;
  int64_t required_id(const std::string& token, const char* role) const;

  WordPieceOptions options_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int64_t> token_to_id_;
  std::vector<std::u32string> never_split_;  // decoded, longest first
  std::vector<int64_t> special_ids_;
  size_t max_piece_chars_ = 0;  // longest vocabulary entry in code points ("##" excluded)
  int64_t unk_id_ = -1;
};

}  // namespace memel
