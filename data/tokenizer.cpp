#include "data/tokenizer.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/unicode.h"

namespace memel {

namespace {
size_t count_code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}
}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options)
    : options_(std::move(options)), id_to_token_(std::move(vocab)) {
  MEMEL_CHECK(!id_to_token_.empty(), "[tokenizer] empty vocabulary");
  MEMEL_CHECK(options_.max_input_chars_per_word > 0, "[tokenizer] max_input_chars_per_word must be > 0, got ",
              options_.max_input_chars_per_word);
  token_to_id_.reserve(id_to_token_.size() * 2);
  for (size_t i = 0; i < id_to_token_.size(); ++i) {
    const std::string& t = id_to_token_[i];
    token_to_id_[t] = static_cast<int64_t>(i);
    const bool cont = t.size() > 2 && t[0] == '#' && t[1] == '#';
    max_piece_chars_ = std::max(max_piece_chars_, count_code_points(t) - (cont ? 2 : 0));
  }
  auto it = token_to_id_.find(options_.unk_token);
  MEMEL_CHECK(it != token_to_id_.end(), "[tokenizer] unknown-token '", options_.unk_token,
              "' is not in the vocabulary");
  unk_id_ = it->second;
  if (options_.never_split.empty())
    options_.never_split = {options_.unk_token, options_.sep_token, options_.pad_token, options_.cls_token,
                            options_.mask_token};
  for (const std::string& s : options_.never_split) {
    if (s.empty()) continue;
    never_split_.push_back(unicode::utf8_decode(s));
    const int64_t id = find(s);
    if (id >= 0) special_ids_.push_back(id);
  }
  std::stable_sort(never_split_.begin(), never_split_.end(),
                   [](const std::u32string& a, const std::u32string& b) { return a.size() > b.size(); });
  std::sort(special_ids_.begin(), special_ids_.end());
}

WordPieceTokenizer WordPieceTokenizer::from_file(const std::string& vocab_path, WordPieceOptions options) {
  std::ifstream f(vocab_path, std::ios::binary);
  MEMEL_CHECK(f.good(), "[tokenizer] cannot open vocabulary file '", vocab_path, "'");
  std::vector<std::string> vocab;
  std::string line;
  size_t line_no = 0;
  while (std::getline(f, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    MEMEL_CHECK(unicode::utf8_valid(line), "[tokenizer] ", vocab_path, ":", line_no, ": invalid UTF-8");
    vocab.push_back(std::move(line));
  }
  MEMEL_CHECK(!vocab.empty(), "[tokenizer] vocabulary file '", vocab_path, "' is empty");
  return WordPieceTokenizer(std::move(vocab), std::move(options));
}

WordPieceTokenizer WordPieceTokenizer::from_pretrained(const std::string& dir, WordPieceOptions options) {
  const std::string cfg_path = dir + "/tokenizer_config.json";
  std::ifstream cf(cfg_path);
  if (cf.good()) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(cf);
    } catch (const nlohmann::json::exception& e) {
      MEMEL_FAIL("[tokenizer] ", cfg_path, ": not valid JSON (", e.what(), ")");
    }
    MEMEL_CHECK(j.is_object(), "[tokenizer] ", cfg_path, ": expected a JSON object");
    auto get_bool = [&](const char* key, bool& dst) {
      if (!j.contains(key) || j[key].is_null()) return;
      MEMEL_CHECK(j[key].is_boolean(), "[tokenizer] ", cfg_path, ": \"", key, "\" must be true or false, got ",
                  j[key].dump());
      dst = j[key].get<bool>();
    };
    get_bool("do_lower_case", options.do_lower_case);
    get_bool("tokenize_chinese_chars", options.tokenize_chinese_chars);
    if (j.contains("strip_accents") && !j["strip_accents"].is_null()) {
      bool s = false;
      get_bool("strip_accents", s);
      options.strip_accents = s;
    }
    // Special tokens: a string, or an AddedToken object {"content": ...}.
    auto get_token = [&](const char* key, std::string& dst) {
      if (!j.contains(key) || j[key].is_null()) return;
      const nlohmann::json& v = j[key];
      if (v.is_string()) dst = v.get<std::string>();
      else if (v.is_object() && v.contains("content") && v["content"].is_string()) dst = v["content"].get<std::string>();
      else MEMEL_FAIL("[tokenizer] ", cfg_path, ": \"", key, "\" must be a token string, got ", v.dump());
    };
    get_token("unk_token", options.unk_token);
    get_token("cls_token", options.cls_token);
    get_token("sep_token", options.sep_token);
    get_token("pad_token", options.pad_token);
    get_token("mask_token", options.mask_token);
  }
  return from_file(dir + "/vocab.txt", std::move(options));
}

int64_t WordPieceTokenizer::find(const std::string& token) const {
  auto it = token_to_id_.find(token);
  return it == token_to_id_.end() ? -1 : it->second;
}

int64_t WordPieceTokenizer::token_to_id(const std::string& token) const {
  const int64_t id = find(token);
  return id < 0 ? unk_id_ : id;
}

const std::string& WordPieceTokenizer::id_to_token(int64_t id) const {
  MEMEL_CHECK(id >= 0 && id < vocab_size(), "[tokenizer] id ", id, " out of range [0, ", vocab_size(), ")");
  return id_to_token_[static_cast<size_t>(id)];
}

int64_t WordPieceTokenizer::required_id(const std::string& token, const char* role) const {
  const int64_t id = find(token);
  MEMEL_CHECK(id >= 0, "[tokenizer] ", role, " token '", token, "' is not in the vocabulary");
  return id;
}
int64_t WordPieceTokenizer::cls_id() const { return required_id(options_.cls_token, "classification"); }
int64_t WordPieceTokenizer::sep_id() const { return required_id(options_.sep_token, "separator"); }
int64_t WordPieceTokenizer::pad_id() const { return required_id(options_.pad_token, "padding"); }
int64_t WordPieceTokenizer::mask_id() const { return required_id(options_.mask_token, "mask"); }

bool WordPieceTokenizer::is_special_id(int64_t id) const {
  return std::binary_search(special_ids_.begin(), special_ids_.end(), id);
}

// --- tokenisation --------------------------------------------------------------------

std::vector<std::u32string> WordPieceTokenizer::split_on_never_split(const std::u32string& text,
                                                                     std::vector<bool>* is_special) const {
  std::vector<std::u32string> chunks;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const std::u32string* hit = nullptr;
    for (const auto& s : never_split_) {  // longest first
      if (text.compare(i, s.size(), s) == 0) { hit = &s; break; }
    }
    if (!hit) { ++i; continue; }
    if (i > start) { chunks.push_back(text.substr(start, i - start)); is_special->push_back(false); }
    chunks.push_back(*hit);
    is_special->push_back(true);
    i += hit->size();
    start = i;
  }
  if (start < text.size()) { chunks.push_back(text.substr(start)); is_special->push_back(false); }
  return chunks;
}

bool WordPieceTokenizer::is_never_split(const std::u32string& word) const {
  return std::find(never_split_.begin(), never_split_.end(), word) != never_split_.end();
}

namespace {
// Python's str.split(): runs of whitespace separate words; no empty words.
void split_whitespace(const std::u32string& s, std::vector<std::u32string>& out) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && unicode::is_python_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !unicode::is_python_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
}
}  // namespace

void WordPieceTokenizer::basic_tokenize_chunk(const std::u32string& chunk, std::vector<std::u32string>& out) const {
  const bool lower = options_.do_lower_case;
  const bool strip = options_.strip_accents.has_value() ? *options_.strip_accents : lower;
  // The reference lower-cases the whole text (character by character) before anything.
  std::u32string text = lower ? unicode::to_lower(chunk) : chunk;
  // Clean: drop NUL, U+FFFD and control characters; whitespace -> ' '; space out CJK.
  std::u32string cleaned;
  cleaned.reserve(text.size());
  for (char32_t c : text) {
    if (c == 0 || c == 0xFFFD || unicode::is_bert_control(c)) continue;
    if (unicode::is_bert_whitespace(c)) {
      cleaned.push_back(U' ');
    } else if (options_.tokenize_chinese_chars && unicode::is_cjk_ideograph(c)) {
      cleaned.push_back(U' ');
      cleaned.push_back(c);
      cleaned.push_back(U' ');
    } else {
      cleaned.push_back(c);
    }
  }
  std::vector<std::u32string> words;
  split_whitespace(unicode::nfc(cleaned), words);
  for (std::u32string& w : words) {
    // A word that equals a never_split token after cleaning (e.g. "[C\xffLS]" in cased
    // mode) passes whole, as in the reference.
    if (is_never_split(w)) {
      out.push_back(w);
      continue;
    }
    if (lower) w = unicode::to_lower(w);
    if (strip) w = unicode::strip_accents(w);
    // Split off each punctuation character; lower-casing or stripping cannot create
    // whitespace, and words emptied by stripping (only marks) vanish here.
    size_t start = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      if (!unicode::is_bert_punctuation(w[i])) continue;
      if (i > start) out.push_back(w.substr(start, i - start));
      out.push_back(w.substr(i, 1));
      start = i + 1;
    }
    if (start < w.size()) out.push_back(w.substr(start));
  }
}

void WordPieceTokenizer::wordpiece_into(const std::u32string& word, std::vector<std::string>& out) const {
  if (word.size() > static_cast<size_t>(options_.max_input_chars_per_word)) {
    out.push_back(options_.unk_token);
    return;
  }
  // Byte offset of each code point in the UTF-8 form, so substrings are cheap.
  std::string utf8;
  std::vector<size_t> off(word.size() + 1);
  for (size_t i = 0; i < word.size(); ++i) {
    off[i] = utf8.size();
    unicode::utf8_append(utf8, word[i]);
  }
  off[word.size()] = utf8.size();
  const size_t first = out.size();
  std::string key;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = std::min(word.size(), start + max_piece_chars_);
    bool found = false;
    for (; end > start; --end) {
      key.assign(start > 0 ? "##" : "");
      key.append(utf8, off[start], off[end] - off[start]);
      if (token_to_id_.count(key)) { found = true; break; }
    }
    if (!found) {
      out.resize(first);
      out.push_back(options_.unk_token);
      return;
    }
    out.push_back(key);
    start = end;
  }
}

void WordPieceTokenizer::for_each_basic_word(const std::string& text,
                                             const std::function<void(const std::u32string&, bool)>& emit) const {
  std::vector<bool> special;
  std::vector<std::u32string> chunks = split_on_never_split(unicode::utf8_decode(text), &special);
  std::vector<std::u32string> words;
  for (size_t c = 0; c < chunks.size(); ++c) {
    if (special[c]) {
      emit(chunks[c], true);
      continue;
    }
    words.clear();
    basic_tokenize_chunk(chunks[c], words);
    for (const auto& w : words) emit(w, false);
  }
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for_each_basic_word(text, [&](const std::u32string& w, bool) { out.push_back(unicode::utf8_encode(w)); });
  return out;
}

std::vector<std::string> WordPieceTokenizer::wordpiece(const std::string& word) const {
  std::vector<std::string> out;
  wordpiece_into(unicode::utf8_decode(word), out);
  return out;
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for_each_basic_word(text, [&](const std::u32string& w, bool special) {
    if (special || is_never_split(w))
      out.push_back(unicode::utf8_encode(w));
    else
      wordpiece_into(w, out);
  });
  return out;
}

std::vector<int64_t> WordPieceTokenizer::tokens_to_ids(const std::vector<std::string>& tokens) const {
  std::vector<int64_t> ids;
  ids.reserve(tokens.size());
  for (const auto& t : tokens) ids.push_back(token_to_id(t));
  return ids;
}

// --- encoding ------------------------------------------------------------------------

Encoding WordPieceTokenizer::encode(const std::string& text_a, const std::optional<std::string>& text_b,
                                   int64_t max_len, bool pad_to_max, bool truncate) const {
  std::optional<std::vector<int64_t>> ids_b;
  if (text_b) ids_b = text_to_ids(*text_b);
  return encode_ids(text_to_ids(text_a), std::move(ids_b), max_len, pad_to_max, truncate);
}

Encoding WordPieceTokenizer::encode_ids(std::vector<int64_t> a, std::optional<std::vector<int64_t>> b,
                                        int64_t max_len, bool pad_to_max, bool truncate) const {
  const int64_t specials = b ? 3 : 2;
  MEMEL_CHECK(max_len >= specials, "[tokenizer] encode: max_len ", max_len, " leaves no room for the ", specials,
              " special tokens");
  const int64_t nb = b ? static_cast<int64_t>(b->size()) : 0;
  int64_t total = static_cast<int64_t>(a.size()) + nb + specials;
  if (total > max_len) {
    MEMEL_CHECK(truncate, "[tokenizer] encode: ", total, " tokens exceed max_len ", max_len,
                " and truncation is off");
    size_t la = a.size(), lb = b ? b->size() : 0;
    if (b && options_.pair_truncation == PairTruncation::Fast) {
      // The tokenizers library's longest_first: whole lengths at once (header).
      const size_t n = static_cast<size_t>(max_len - specials);
      size_t s = std::min(la, lb), l = std::max(la, lb);
      l = s > n ? s : std::max(s, n - s);
      if (s + l > n) {
        s = n / 2;
        l = s + n % 2;
      }
      const bool a_longer = la > lb;  // a ties with b: a takes the "shorter" share
      la = std::min(la, a_longer ? l : s);
      lb = std::min(lb, a_longer ? s : l);
      total = static_cast<int64_t>(la + lb) + specials;
    } else {
      for (; total > max_len; --total) {
        if (la > lb) --la; else --lb;  // longest first; the second text on ties
      }
    }
    a.resize(la);
    if (b) b->resize(lb);
  }
  Encoding e;
  const size_t n = static_cast<size_t>(pad_to_max ? max_len : total);
  e.input_ids.reserve(n);
  e.input_ids.push_back(cls_id());
  e.input_ids.insert(e.input_ids.end(), a.begin(), a.end());
  e.input_ids.push_back(sep_id());
  e.token_type_ids.assign(e.input_ids.size(), 0);
  if (b) {
    e.input_ids.insert(e.input_ids.end(), b->begin(), b->end());
    e.input_ids.push_back(sep_id());
    e.token_type_ids.resize(e.input_ids.size(), 1);
  }
  e.attention_mask.assign(e.input_ids.size(), 1);
  if (pad_to_max && e.input_ids.size() < n) {
    const int64_t pad = pad_id();
    e.input_ids.resize(n, pad);
    e.token_type_ids.resize(n, 0);
    e.attention_mask.resize(n, 0);
  }
  return e;
}

BatchEncoding WordPieceTokenizer::encode_batch(const std::vector<std::string>& texts, int64_t max_len,
                                               bool truncate) const {
  std::vector<Encoding> encs;
  encs.reserve(texts.size());
  for (const std::string& t : texts) encs.push_back(encode(t, std::nullopt, max_len, false, truncate));
  return pad_batch(std::move(encs));
}

BatchEncoding WordPieceTokenizer::encode_batch(const std::vector<std::pair<std::string, std::string>>& pairs,
                                               int64_t max_len, bool truncate) const {
  std::vector<Encoding> encs;
  encs.reserve(pairs.size());
  for (const auto& [a, b] : pairs) encs.push_back(encode(a, b, max_len, false, truncate));
  return pad_batch(std::move(encs));
}

BatchEncoding WordPieceTokenizer::pad_batch(std::vector<Encoding> encs) const {
  MEMEL_CHECK(!encs.empty(), "[tokenizer] encode_batch: the batch is empty");
  size_t T = 0;
  for (const Encoding& e : encs) T = std::max(T, e.length());
  const size_t B = encs.size();
  std::vector<int64_t> ids(B * T, pad_id()), mask(B * T, 0), types(B * T, 0);
  for (size_t i = 0; i < B; ++i) {
    const Encoding& e = encs[i];
    MEMEL_CHECK(e.token_type_ids.size() == e.length() && e.attention_mask.size() == e.length(),
                "[tokenizer] pad_batch: encoding ", i, " has ", e.length(), " ids but ", e.token_type_ids.size(),
                " token types and ", e.attention_mask.size(), " mask entries");
    std::copy(e.input_ids.begin(), e.input_ids.end(), ids.begin() + static_cast<std::ptrdiff_t>(i * T));
    std::copy(e.attention_mask.begin(), e.attention_mask.end(), mask.begin() + static_cast<std::ptrdiff_t>(i * T));
    std::copy(e.token_type_ids.begin(), e.token_type_ids.end(), types.begin() + static_cast<std::ptrdiff_t>(i * T));
  }
  BatchEncoding out;
  const Shape shape{static_cast<int64_t>(B), static_cast<int64_t>(T)};
  out.input_ids = Tensor::from_vector(ids, shape);
  out.attention_mask = Tensor::from_vector(mask, shape);
  out.token_type_ids = Tensor::from_vector(types, shape);
  out.encodings = std::move(encs);
  return out;
}

// --- decoding ------------------------------------------------------------------------

std::string WordPieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens,
                                       bool clean_up_spaces) const {
  std::string out;
  for (int64_t id : ids) {
    if (skip_special_tokens && is_special_id(id)) continue;
    const std::string& t = id_to_token(id);
    if (t.size() >= 2 && t[0] == '#' && t[1] == '#' && !out.empty()) {
      out.append(t, 2, std::string::npos);
    } else {
      if (!out.empty()) out.push_back(' ');
      out.append(t);
    }
  }
  if (clean_up_spaces) {
    static const std::pair<const char*, const char*> kRules[] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
        {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& r : kRules) {
      const std::string from = r.first, to = r.second;
      size_t pos = 0;
      while ((pos = out.find(from, pos)) != std::string::npos) {
        out.replace(pos, from.size(), to);
        pos += to.size();
      }
    }
  }
  return out;
}

}  // namespace memel
