// WordPiece tokenizer: Unicode helpers, hand-made cases, and id-for-id agreement with
// the reference (Hugging Face BertTokenizer, slow) on tests/data/text/tokenizer_reference.json
// (made by tests/python/tokenizer_reference.py; no Python needed here).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "data/tokenizer.h"
#include "data/unicode.h"

using namespace memel;

namespace {
std::string text_dir() { return std::string(MEMEL_SOURCE_DIR) + "/tests/data/text"; }

std::string from_hex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

const WordPieceTokenizer& uncased() {
  static WordPieceTokenizer t = WordPieceTokenizer::from_file(text_dir() + "/vocab-uncased.txt");
  return t;
}
const WordPieceTokenizer& cased() {
  static WordPieceTokenizer t = [] {
    WordPieceOptions o;
    o.do_lower_case = false;
    return WordPieceTokenizer::from_file(text_dir() + "/vocab-uncased.txt", o);
  }();
  return t;
}

std::u32string U(const std::string& s) { return unicode::utf8_decode(s); }
}  // namespace

TEST_CASE("unicode: UTF-8 decoding replaces invalid bytes and round-trips valid text") {
  CHECK(unicode::utf8_decode("a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80") == std::u32string{U'a', 0xE9, 0x4E2D, 0x1F600});
  CHECK(unicode::utf8_decode("a\xff" "b") == std::u32string{U'a', 0xFFFD, U'b'});
  // Maximal subparts: a truncated 3-byte sequence is one U+FFFD; lone continuations each one.
  CHECK(unicode::utf8_decode("\xe4\xb8" "x") == std::u32string{0xFFFD, U'x'});
  CHECK(unicode::utf8_decode("\x80\x80") == std::u32string{0xFFFD, 0xFFFD});
  CHECK(unicode::utf8_decode("\xc0\xaf") == std::u32string{0xFFFD, 0xFFFD});          // overlong
  CHECK(unicode::utf8_decode("\xed\xa0\x80") == std::u32string{0xFFFD, 0xFFFD, 0xFFFD});  // surrogate
  CHECK(unicode::utf8_decode("\xf4\x90\x80\x80").size() == 4);                          // > U+10FFFF
  CHECK(unicode::utf8_decode("\xe4") == std::u32string{0xFFFD});
  CHECK(unicode::utf8_decode("").empty());
  const std::string s = "héllo 中文 😀";
  CHECK(unicode::utf8_encode(unicode::utf8_decode(s)) == s);
  CHECK(unicode::utf8_valid(s));
  CHECK_FALSE(unicode::utf8_valid("a\xff"));
  CHECK_THROWS_AS(unicode::utf8_decode_strict("ab\xff", "test"), Error);
}

TEST_CASE("unicode: classes, case, normalisation") {
  CHECK(unicode::is_bert_punctuation(U'$'));
  CHECK(unicode::is_bert_punctuation(U'^'));
  CHECK(unicode::is_bert_punctuation(0x3002));   // 。
  CHECK_FALSE(unicode::is_bert_punctuation(0x20AC));  // € is Sc
  CHECK(unicode::is_bert_whitespace(0x3000));
  CHECK(unicode::is_bert_whitespace(U'\t'));
  CHECK_FALSE(unicode::is_bert_control(U'\n'));
  CHECK(unicode::is_bert_control(0x200B));  // Cf
  CHECK(unicode::is_bert_control(0x0378));  // unassigned
  CHECK(unicode::is_cjk_ideograph(0x4E2D));
  CHECK_FALSE(unicode::is_cjk_ideograph(0xAC00));  // Hangul is not
  CHECK(unicode::to_lower(U("ÀÉÎÕÜ ĀŁŽ ΣΑΣ ЖЁ İ")) == U("àéîõü āłž σασ жё i\xcc\x87"));
  CHECK(unicode::strip_accents(U("Café naïve Ångström ł")) == U("Cafe naive Angstrom ł"));
  CHECK(unicode::nfd(U("é")) == U("e\xcc\x81"));
  CHECK(unicode::nfc(U("e\xcc\x81")) == U("é"));
  // Canonical ordering: dot below (220) before acute (230), and recomposition to ệ/ḗ forms.
  CHECK(unicode::nfd(U("e\xcc\x82\xcc\xa3")) == U("e\xcc\xa3\xcc\x82"));
  CHECK(unicode::nfc(U("e\xcc\x82\xcc\xa3")) == U("ệ"));
  // Hangul: algorithmic decomposition and composition.
  CHECK(unicode::nfd(U("한")) == std::u32string{0x1112, 0x1161, 0x11AB});
  CHECK(unicode::nfc(std::u32string{0x1112, 0x1161, 0x11AB}) == U("한"));
  CHECK(unicode::strip_accents(U("한")).size() == 3);
}

TEST_CASE("tokenizer: basic cases (uncased)") {
  const auto& t = uncased();
  CHECK(t.vocab_size() == 30522);
  CHECK(t.tokenize("") == std::vector<std::string>{});
  CHECK(t.tokenize("  \t\n ") == std::vector<std::string>{});
  CHECK(t.tokenize("Hello, World!") == std::vector<std::string>{"hello", ",", "world", "!"});
  CHECK(t.tokenize("unaffable") == std::vector<std::string>{"una", "##ffa", "##ble"});
  CHECK(t.tokenize("Café") == std::vector<std::string>{"cafe"});
  CHECK(t.tokenize("中文") == std::vector<std::string>{"中", "文"});
  CHECK(t.tokenize(std::string(101, 'a')) == std::vector<std::string>{"[UNK]"});
  CHECK(t.tokenize("hello[SEP]world [MASK]") == std::vector<std::string>{"hello", "[SEP]", "world", "[MASK]"});
  CHECK(t.tokenize("bad\xff" "byte") == std::vector<std::string>{"bad", "##by", "##te"});
  CHECK(t.cls_id() == 101);
  CHECK(t.sep_id() == 102);
  CHECK(t.pad_id() == 0);
  CHECK(t.mask_id() == 103);
  CHECK(t.unk_id() == 100);
}

TEST_CASE("tokenizer: encode pairs, truncation, padding, decode") {
  const auto& t = uncased();
  Encoding e = t.encode("hello world", std::string("good morning"), 10, true);
  // [CLS] hello world [SEP] good morning [SEP] [PAD] [PAD] [PAD]
  REQUIRE(e.length() == 10);
  CHECK(e.input_ids[0] == 101);
  CHECK(e.input_ids[3] == 102);
  CHECK(e.input_ids[6] == 102);
  CHECK(e.token_type_ids == std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 0, 0, 0});
  CHECK(e.attention_mask == std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 0, 0, 0});
  // Longest first: a has 5 tokens, b 1; max_len 6 leaves 3 -> a keeps 2, b keeps 1.
  Encoding tr = t.encode("one two three four five", std::string("six"), 6);
  CHECK(tr.input_ids == std::vector<int64_t>{101, t.token_to_id("one"), t.token_to_id("two"), 102,
                                             t.token_to_id("six"), 102});
  CHECK_THROWS_AS(t.encode("a b c", std::nullopt, 4, false, false), Error);
  CHECK_THROWS_AS(t.encode("a", std::string("b"), 2), Error);
  CHECK(t.decode(t.encode("Unaffable, isn't it?").input_ids) == "unaffable , isn ' t it ?");
  CHECK(t.decode(t.encode("Unaffable, isn't it?").input_ids, true, true) == "unaffable, isn't it?");
  CHECK(t.decode(t.encode("x").input_ids, false) == "[CLS] x [SEP]");
  CHECK_THROWS_AS(t.id_to_token(30522), Error);
  CHECK_THROWS_AS(WordPieceTokenizer::from_file(text_dir() + "/no-such-vocab.txt"), Error);
  CHECK_THROWS_AS(WordPieceTokenizer(std::vector<std::string>{"a", "b"}), Error);  // no [UNK]
}

TEST_CASE("tokenizer: ids match the reference BertTokenizer on every committed case") {
  // MEMEL_TOKENIZER_REFERENCE may name another file made by the same script (e.g. with
  // --random 5000) for a larger one-off comparison.
  const char* env = std::getenv("MEMEL_TOKENIZER_REFERENCE");
  std::ifstream f(env ? std::string(env) : text_dir() + "/tokenizer_reference.json");
  REQUIRE(f.good());
  nlohmann::json doc = nlohmann::json::parse(f);
  const auto& cases = doc.at("cases");
  int n = 0, ok_uncased = 0, ok_cased = 0, invalid = 0;
  for (const auto& c : cases) {
    const std::string text = from_hex(c.at("hex").get<std::string>());
    if (c.value("invalid_utf8", false)) ++invalid;
    const auto ids_u = uncased().text_to_ids(text);
    const auto ids_c = cased().text_to_ids(text);
    const auto ref_u = c.at("uncased").at("ids").get<std::vector<int64_t>>();
    const auto ref_c = c.at("cased").at("ids").get<std::vector<int64_t>>();
    ++n;
    if (ids_u == ref_u) ++ok_uncased;
    else MESSAGE("uncased mismatch on hex ", c.at("hex").get<std::string>(), ": expected ", c.at("uncased").at("tokens").dump());
    if (ids_c == ref_c) ++ok_cased;
    else MESSAGE("cased mismatch on hex ", c.at("hex").get<std::string>(), ": expected ", c.at("cased").at("tokens").dump());
  }
  MESSAGE(n, " cases (", invalid, " with invalid UTF-8): uncased ", ok_uncased, " match, cased ", ok_cased, " match");
  CHECK(n >= 300);
  CHECK(ok_uncased == n);
  CHECK(ok_cased == n);

  int np = 0, ok_pairs = 0;
  for (const auto& p : doc.at("pairs")) {
    const auto& tok = p.at("mode") == "cased" ? cased() : uncased();
    std::optional<std::string> b;
    if (!p.at("b_hex").is_null()) b = from_hex(p.at("b_hex").get<std::string>());
    Encoding e = tok.encode(from_hex(p.at("a_hex").get<std::string>()), b, p.at("max_len").get<int64_t>(),
                            p.value("pad", true));
    ++np;
    if (e.input_ids == p.at("input_ids").get<std::vector<int64_t>>() &&
        e.token_type_ids == p.at("token_type_ids").get<std::vector<int64_t>>() &&
        e.attention_mask == p.at("attention_mask").get<std::vector<int64_t>>())
      ++ok_pairs;
  }
  MESSAGE(np, " encodings (pairs, truncation, padding): ", ok_pairs, " match");
  CHECK(ok_pairs == np);
}

TEST_CASE("tokenizer: pair truncation, slow (BertTokenizer) and fast (BertTokenizerFast) longest_first") {
  // (len a, len b, max_len) -> kept lengths. The fast column was checked once against
  // transformers 4.30's BertTokenizerFast (tokenizers 0.13) with truncation="longest_first".
  struct Case {
    size_t la, lb;
    int64_t max_len;
    size_t slow_a, slow_b, fast_a, fast_b;
  };
  const Case cases[] = {
      {10, 10, 12, 5, 4, 4, 5},  // both long, n = 9 odd: the extra token goes to a (slow) / b (fast)
      {6, 7, 12, 5, 4, 4, 5},    // b longer by one
      {7, 6, 12, 5, 4, 5, 4},    // a longer by one: both agree
      {5, 5, 8, 3, 2, 2, 3},     //
      {7, 6, 11, 4, 4, 4, 4},    // n = 8 even
      {8, 3, 9, 3, 3, 3, 3},     // only the longer is cut
      {3, 12, 11, 3, 5, 3, 5},   //
      {9, 2, 8, 3, 2, 3, 2},     //
      {2, 3, 12, 2, 3, 2, 3},    // fits: nothing cut
  };
  WordPieceOptions fast_opts;
  fast_opts.pair_truncation = PairTruncation::Fast;
  const WordPieceTokenizer fast = WordPieceTokenizer::from_file(text_dir() + "/vocab-uncased.txt", fast_opts);
  const auto& slow = uncased();
  for (const Case& c : cases) {
    CAPTURE(c.la);
    CAPTURE(c.lb);
    CAPTURE(c.max_len);
    std::vector<int64_t> a(c.la), b(c.lb);
    for (size_t i = 0; i < c.la; ++i) a[i] = 1000 + static_cast<int64_t>(i);
    for (size_t i = 0; i < c.lb; ++i) b[i] = 2000 + static_cast<int64_t>(i);
    auto kept = [&](const Encoding& e) {
      size_t ka = 0, kb = 0;
      for (size_t i = 0; i < e.length(); ++i) {
        if (e.input_ids[i] >= 2000) {
          CHECK(e.input_ids[i] == 2000 + static_cast<int64_t>(kb));  // a prefix of b
          ++kb;
        } else if (e.input_ids[i] >= 1000) {
          CHECK(e.input_ids[i] == 1000 + static_cast<int64_t>(ka));
          ++ka;
        }
      }
      return std::make_pair(ka, kb);
    };
    const Encoding es = slow.encode_ids(a, b, c.max_len), ef = fast.encode_ids(a, b, c.max_len);
    CHECK(kept(es) == std::make_pair(c.slow_a, c.slow_b));
    CHECK(kept(ef) == std::make_pair(c.fast_a, c.fast_b));
    CHECK(static_cast<int64_t>(ef.length()) <= c.max_len);
    CHECK(ef.token_type_ids.size() == ef.length());
    // A single text is cut the same way by both.
    CHECK(slow.encode_ids(a, std::nullopt, 6).input_ids == fast.encode_ids(a, std::nullopt, 6).input_ids);
  }
}

TEST_CASE("tokenizer: encode_batch pads to the longest sequence with the attention mask") {
  const auto& t = uncased();
  BatchEncoding b = t.encode_batch({"hello world", "good", "the quick brown fox"});
  REQUIRE(b.batch_size() == 3);
  CHECK(b.seq_len() == 6);  // [CLS] the quick brown fox [SEP]
  CHECK(b.input_ids.shape() == Shape({3, 6}));
  CHECK(b.input_ids.dtype() == DType::I64);
  const auto ids = b.input_ids.to_vector_as<int64_t>();
  const auto mask = b.attention_mask.to_vector_as<int64_t>();
  const int64_t good = t.token_to_id("good");
  CHECK(std::vector<int64_t>(ids.begin() + 6, ids.begin() + 12) == std::vector<int64_t>{101, good, 102, 0, 0, 0});
  CHECK(mask == std::vector<int64_t>{1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1});
  CHECK(b.token_type_ids.to_vector_as<int64_t>() == std::vector<int64_t>(18, 0));
  CHECK(b.encodings[1].length() == 3);
  // max_len truncates before padding; pairs get token types 1 on the second text.
  BatchEncoding p = t.encode_batch(std::vector<std::pair<std::string, std::string>>{{"hello", "world"}, {"a b c d", "e"}}, 6);
  CHECK(p.seq_len() == 6);
  CHECK(p.token_type_ids.to_vector_as<int64_t>() == std::vector<int64_t>{0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1});
  CHECK(p.attention_mask.to_vector_as<int64_t>() == std::vector<int64_t>{1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1});
  CHECK_THROWS_WITH_AS(t.encode_batch(std::vector<std::string>{}), doctest::Contains("the batch is empty"), Error);
}

TEST_CASE("tokenizer: from_pretrained reads tokenizer_config.json") {
  const std::string dir = std::string(MEMEL_BINARY_DIR) + "/tokenizer_pretrained";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(text_dir() + "/vocab-uncased.txt", dir + "/vocab.txt",
                             std::filesystem::copy_options::overwrite_existing);
  // No config: the options passed (uncased by default).
  std::filesystem::remove(dir + "/tokenizer_config.json");
  CHECK(WordPieceTokenizer::from_pretrained(dir).tokenize("Héllo") == std::vector<std::string>{"hello"});
  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"do_lower_case": false, "strip_accents": null, "unk_token": {"content": "[UNK]"}, "model_max_length": 512})";
  WordPieceTokenizer cased_t = WordPieceTokenizer::from_pretrained(dir);
  CHECK_FALSE(cased_t.options().do_lower_case);
  CHECK_FALSE(cased_t.options().strip_accents.has_value());
  CHECK(cased_t.tokenize("Hello") != std::vector<std::string>{"hello"});
  std::ofstream(dir + "/tokenizer_config.json") << R"({"do_lower_case": "yes"})";
  CHECK_THROWS_WITH_AS(WordPieceTokenizer::from_pretrained(dir), doctest::Contains("\"do_lower_case\" must be true or false"),
                       Error);
}
