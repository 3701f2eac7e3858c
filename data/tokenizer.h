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

namespace memel {

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
};

// One encoded example: [CLS] a [SEP] (b [SEP]) then padding.
struct Encoding {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> token_type_ids;  // 0 for [CLS] a [SEP], 1 for b [SEP], 0 on padding
  std::vector<int64_t> attention_mask;  // 1 on tokens, 0 on padding
  size_t length() const { return input_ids.size(); }
};

class WordPieceTokenizer {
 public:
  // Token i of `vocab` gets id i (a repeated token keeps its last id, as the reference).
  WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options = {});
  // Reads a vocab.txt (one token per line, UTF-8).
  static WordPieceTokenizer from_file(const std::string& vocab_path, WordPieceOptions options = {});

  // Text -> word pieces (special tokens included as they appear in the text).
  std::vector<std::string> tokenize(const std::string& text) const;
  // Steps 1-2 only: the words WordPiece would see.
  std::vector<std::string> basic_tokenize(const std::string& text) const;
  // Step 3 for one word.
  std::vector<std::string> wordpiece(const std::string& word) const;
  std::vector<int64_t> tokens_to_ids(const std::vector<std::string>& tokens) const;
  std::vector<int64_t> text_to_ids(const std::string& text) const { return tokens_to_ids(tokenize(text)); }

  // Encodes one text or a pair. When the result would exceed max_len and `truncate`,
  // tokens are removed from the end of the longer side first (b on ties), as the
  // reference's "longest_first"; without `truncate` an over-long input throws.
  // pad_to_max pads with [PAD] up to max_len.
  Encoding encode(const std::string& text_a, const std::optional<std::string>& text_b = std::nullopt,
                  int64_t max_len = 512, bool pad_to_max = false, bool truncate = true) const;
  // Same from ids (without special tokens).
  Encoding encode_ids(std::vector<int64_t> ids_a, std::optional<std::vector<int64_t>> ids_b, int64_t max_len,
                      bool pad_to_max = false, bool truncate = true) const;

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
