#include "data/mlm.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/rng.h"
#include "data/tokenizer.h"
#include "data/unicode.h"

namespace memel {

namespace {
constexpr double kTwo32 = 4294967296.0;
}

std::vector<int64_t> mlm_mask_ids(std::vector<int64_t>& ids, const std::vector<bool>& maskable, int64_t vocab_size,
                                  int64_t mask_id, uint64_t seed, uint64_t counter0, const MlmOptions& o) {
  MEMEL_CHECK(maskable.size() == ids.size(), "[mlm] maskable has ", maskable.size(), " entries for ", ids.size(),
              " ids");
  MEMEL_CHECK(o.mask_prob >= 0 && o.mask_prob <= 1 && o.replace_mask >= 0 && o.replace_random >= 0 &&
                  o.replace_mask + o.replace_random <= 1,
              "[mlm] probabilities out of range: mask_prob ", o.mask_prob, ", replace_mask ", o.replace_mask,
              ", replace_random ", o.replace_random);
  MEMEL_CHECK(vocab_size > 0, "[mlm] vocab_size must be > 0");
  std::vector<int64_t> labels(ids.size(), o.ignore_index);
  const double t_mask = o.replace_mask, t_random = o.replace_mask + o.replace_random;
  auto choose = [&](size_t i, const Philox4& r) {
    labels[i] = ids[i];
    const double u = r.v[1] / kTwo32;
    if (u < t_mask) {
      ids[i] = mask_id;
    } else if (u < t_random) {
      const uint64_t bits = (static_cast<uint64_t>(r.v[2]) << 32) | r.v[3];
      ids[i] = static_cast<int64_t>(bits % static_cast<uint64_t>(vocab_size));
    }
  };
  bool any = false;
  size_t closest = ids.size();  // the maskable position with the smallest first word
  uint32_t closest_v = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!maskable[i]) continue;
    const Philox4 r = philox4x32(counter0 + i, seed);
    if (closest == ids.size() || r.v[0] < closest_v) {
      closest = i;
      closest_v = r.v[0];
    }
    if (r.v[0] / kTwo32 >= o.mask_prob) continue;
    choose(i, r);
    any = true;
  }
  if (!any && o.at_least_one && closest < ids.size()) choose(closest, philox4x32(counter0 + closest, seed));
  return labels;
}

MlmBatch mlm_mask(const Tensor& input_ids, const WordPieceTokenizer& tok, Generator& gen,
                  const Tensor& attention_mask, const MlmOptions& o) {
  MEMEL_CHECK(input_ids.dtype() == DType::I64 || input_ids.dtype() == DType::I32,
              "[mlm] input_ids must be integer, got ", dtype_name(input_ids.dtype()));
  std::vector<int64_t> ids = input_ids.to_vector_as<int64_t>();
  std::vector<bool> maskable(ids.size());
  std::vector<int64_t> am;
  if (attention_mask.defined()) {
    MEMEL_CHECK(attention_mask.shape() == input_ids.shape(), "[mlm] attention_mask ", shape_str(attention_mask.shape()),
                " does not match input_ids ", shape_str(input_ids.shape()));
    am = attention_mask.to_vector_as<int64_t>();
  }
  for (size_t i = 0; i < ids.size(); ++i)
    maskable[i] = !tok.is_special_id(ids[i]) && (am.empty() || am[i] != 0);
  // One Philox counter per position; reserve() advances the generator past them.
  const uint64_t counter0 = gen.reserve(4 * static_cast<uint64_t>(ids.size()));
  // Row by row: each row is one sequence for at_least_one.
  const size_t T = input_ids.dim() >= 1 ? static_cast<size_t>(input_ids.shape().back()) : ids.size();
  std::vector<int64_t> labels(ids.size(), o.ignore_index);
  for (size_t r0 = 0; T > 0 && r0 < ids.size(); r0 += T) {
    const auto b = static_cast<std::ptrdiff_t>(r0), e = static_cast<std::ptrdiff_t>(r0 + T);
    std::vector<int64_t> row(ids.begin() + b, ids.begin() + e);
    std::vector<bool> row_maskable(maskable.begin() + b, maskable.begin() + e);
    std::vector<int64_t> row_labels =
        mlm_mask_ids(row, row_maskable, tok.vocab_size(), tok.mask_id(), gen.seed(), counter0 + r0, o);
    std::copy(row.begin(), row.end(), ids.begin() + b);
    std::copy(row_labels.begin(), row_labels.end(), labels.begin() + b);
  }
  MlmBatch b;
  b.input_ids = Tensor::from_vector(ids, input_ids.shape());  // (B, T)
  b.labels = Tensor::from_vector(labels, input_ids.shape());  // (B, T)
  return b;
}

// --- text dataset --------------------------------------------------------------------

std::vector<std::string> read_text_lines(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file() && it->path().extension() == ".txt") files.push_back(it->path().string());
    MEMEL_CHECK(!ec, "[mlm] cannot list directory '", path, "': ", ec.message());
    std::sort(files.begin(), files.end());
    MEMEL_CHECK(!files.empty(), "[mlm] directory '", path, "' holds no .txt file");
  } else {
    files.push_back(path);
  }
  std::vector<std::string> lines;
  for (const std::string& file : files) {
    std::ifstream f(file, std::ios::binary);
    MEMEL_CHECK(f.good(), "[mlm] cannot open text file '", file, "'");
    std::string line;
    int64_t line_no = 0, offset = 0;
    while (std::getline(f, line)) {
      unicode::check_utf8_line(line, "mlm", file, ++line_no, offset);
      offset += static_cast<int64_t>(line.size()) + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines.push_back(std::move(line));
    }
  }
  return lines;
}

std::pair<std::vector<std::string>, std::vector<std::string>> split_text_lines(const std::vector<std::string>& lines,
                                                                               double eval_fraction, uint64_t seed) {
  MEMEL_CHECK(eval_fraction >= 0 && eval_fraction <= 1, "[mlm] eval_fraction must be in [0, 1], got ", eval_fraction);
  std::pair<std::vector<std::string>, std::vector<std::string>> out;
  for (const std::string& line : lines) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the text, then Philox keyed by the seed
    for (unsigned char c : line) h = (h ^ c) * 0x100000001b3ull;
    const bool to_eval = philox4x32(h, seed).v[0] / kTwo32 < eval_fraction;
    (to_eval ? out.second : out.first).push_back(line);
  }
  return out;
}

MlmTextDataset::MlmTextDataset(const std::string& path, const WordPieceTokenizer& tok, MlmTextOptions options)
    : opt_(std::move(options)) {
  build(read_text_lines(path), tok);
  MEMEL_CHECK(!seqs_.empty(), "[mlm] text corpus '", path, "' has no non-blank lines");
}

MlmTextDataset::MlmTextDataset(const std::vector<std::string>& lines, const WordPieceTokenizer& tok,
                               MlmTextOptions options)
    : opt_(std::move(options)) {
  build(lines, tok);
  MEMEL_CHECK(!seqs_.empty(), "[mlm] no non-blank lines");
}

void MlmTextDataset::build(const std::vector<std::string>& lines, const WordPieceTokenizer& tok) {
  MEMEL_CHECK(opt_.max_len >= 3, "[mlm] max_len must be >= 3, got ", opt_.max_len);
  vocab_size_ = tok.vocab_size();
  mask_id_ = tok.mask_id();
  pad_id_ = tok.pad_id();
  special_.assign(static_cast<size_t>(vocab_size_), false);
  for (int64_t id = 0; id < vocab_size_; ++id) special_[static_cast<size_t>(id)] = tok.is_special_id(id);
  const int64_t cls = tok.cls_id(), sep = tok.sep_id();
  const size_t room = static_cast<size_t>(opt_.max_len - 2);
  std::vector<int64_t> cur;
  for (const std::string& raw : lines) {
    std::vector<int64_t> ids = tok.text_to_ids(raw);
    if (ids.empty()) continue;
    if (ids.size() > room) ids.resize(room);
    if (opt_.pack && !cur.empty() && cur.size() + ids.size() + 1 <= static_cast<size_t>(opt_.max_len)) {
      cur.insert(cur.end(), ids.begin(), ids.end());
      cur.push_back(sep);
      continue;
    }
    if (!cur.empty()) seqs_.push_back(std::move(cur));
    cur.clear();
    cur.push_back(cls);
    cur.insert(cur.end(), ids.begin(), ids.end());
    cur.push_back(sep);
  }
  if (!cur.empty()) seqs_.push_back(std::move(cur));
}

int64_t MlmTextDataset::num_tokens() const {
  int64_t n = 0;
  for (const auto& s : seqs_) n += static_cast<int64_t>(s.size());
  return n;
}

void MlmTextDataset::truncate(int64_t n) {
  if (n > 0 && n < size()) seqs_.resize(static_cast<size_t>(n));
}

Example MlmTextDataset::get_at_epoch(int64_t i, int64_t epoch) const {
  MEMEL_CHECK(i >= 0 && i < size(), "[mlm] example ", i, " out of range [0, ", size(), ")");
  MEMEL_CHECK(epoch >= 0, "[mlm] epoch must be >= 0, got ", epoch);
  const auto& s = seqs_[static_cast<size_t>(i)];
  const int64_t T = opt_.max_len;
  std::vector<int64_t> ids(static_cast<size_t>(T), pad_id_), mask(static_cast<size_t>(T), 0),
      types(static_cast<size_t>(T), 0);
  std::copy(s.begin(), s.end(), ids.begin());
  std::fill(mask.begin(), mask.begin() + static_cast<std::ptrdiff_t>(s.size()), 1);
  Example e;
  if (opt_.mask_seed) {
    std::vector<bool> maskable(static_cast<size_t>(T), false);
    for (size_t t = 0; t < s.size(); ++t) maskable[t] = !special_[static_cast<size_t>(s[t])];
    const uint64_t draw = opt_.mask_per_epoch ? static_cast<uint64_t>(epoch) * static_cast<uint64_t>(size()) : 0;
    auto labels = mlm_mask_ids(ids, maskable, vocab_size_, mask_id_, *opt_.mask_seed,
                               (draw + static_cast<uint64_t>(i)) * static_cast<uint64_t>(T), opt_.mlm);
    e["labels"] = Tensor::from_vector(labels, {T});  // (T)
  }
  e["input_ids"] = Tensor::from_vector(ids, {T});        // (T)
  e["attention_mask"] = Tensor::from_vector(mask, {T});  // (T)
  e["token_type_ids"] = Tensor::from_vector(types, {T}); // (T)
  return e;
}

Example MlmTextDataset::get_batch_at_epoch(const std::vector<int64_t>& indices, int64_t epoch) const {
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (int64_t i : indices) examples.push_back(get_at_epoch(i, epoch));
  return collate(examples);  // each key (B, T)
}

}  // namespace memel
