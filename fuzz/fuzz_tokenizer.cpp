// Fuzz target: the WordPiece tokenizer (data/tokenizer.h) on arbitrary bytes (invalid
// UTF-8 included), uncased and cased, with BERT's 30522-token vocabulary; encode of a
// pair, decode, and a vocabulary file read from the input.
//
// Input: one option byte, then the text (a TAB splits it into a pair). With kSep, the
// part before it is a vocab.txt.
#include "fuzz_common.h"

#include "data/tokenizer.h"
#include "data/unicode.h"

using namespace memel;

namespace {

const WordPieceTokenizer& vocab_tokenizer(int which) {
  static const std::string path = std::string(MEMEL_SOURCE_DIR) + "/tests/data/text/vocab-uncased.txt";
  static const WordPieceTokenizer uncased = WordPieceTokenizer::from_file(path);
  static const WordPieceTokenizer cased = [] {
    WordPieceOptions o;
    o.do_lower_case = false;
    o.tokenize_chinese_chars = false;
    o.max_input_chars_per_word = 12;
    return WordPieceTokenizer::from_file(path, o);
  }();
  static const WordPieceTokenizer strip = [] {
    WordPieceOptions o;
    o.do_lower_case = false;
    o.strip_accents = true;
    o.never_split = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]", "<s>", "##"};
    return WordPieceTokenizer::from_file(path, o);
  }();
  return which == 0 ? uncased : which == 1 ? cased : strip;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void exercise(const WordPieceTokenizer& tok, const std::string& text, int64_t max_len) {
  // Invariants: pieces are valid UTF-8 and known (or [UNK]); ids are in range.
  for (const std::string& t : tok.tokenize(text)) check(!t.empty() && unicode::utf8_valid(t));
  for (const std::string& w : tok.basic_tokenize(text)) check(unicode::utf8_valid(w));
  const std::vector<int64_t> ids = tok.text_to_ids(text);
  for (int64_t id : ids) check(id >= 0 && id < tok.vocab_size());
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(tok.decode(ids, true, true));
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(tok.wordpiece(text));
  const size_t tab = text.find('\t');
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS({
    Encoding e = tab == std::string::npos ? tok.encode(text, std::nullopt, max_len, true, true)
                                          : tok.encode(text.substr(0, tab), text.substr(tab + 1), max_len, true, true);
    check(static_cast<int64_t>(e.length()) == max_len && e.token_type_ids.size() == e.length() &&
          e.attention_mask.size() == e.length());
  });
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(tok.encode(text, text, max_len, false, false));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto parts = fuzz::split_parts(in.substr(1), fuzz::kSep, 2);
  const unsigned opt = static_cast<unsigned char>(in[0]);
  const int64_t max_len = 2 + (opt >> 2) % 40;
  // Unicode helpers the tokenizer builds on: decoding never throws and re-encodes validly.
  const std::string text(parts.back());
  check(unicode::utf8_valid(unicode::utf8_encode(unicode::utf8_decode(text))));
  if (parts.size() == 2) {
    const std::string vocab = fuzz::scratch_dir() + "/vocab.txt";
    fuzz::write_bytes(vocab, parts[0]);
    MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS({
      WordPieceOptions o;
      o.do_lower_case = opt & 1;
      WordPieceTokenizer tok = WordPieceTokenizer::from_file(vocab, o);
      exercise(tok, text, max_len);
    });
  } else {
    exercise(vocab_tokenizer(static_cast<int>(opt % 3)), text, max_len);
  }
  return 0;
}
