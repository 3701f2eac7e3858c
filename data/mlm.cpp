#include "data/mlm.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "core/rng.h"
#include "data/tokenizer.h"

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
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!maskable[i]) continue;
    const Philox4 r = philox4x32(counter0 + i, seed);
    if (r.v[0] / kTwo32 >= o.mask_prob) continue;
    labels[i] = ids[i];
    const double u = r.v[1] / kTwo32;
    if (u < t_mask) {
      ids[i] = mask_id;
    } else if (u < t_random) {
      const uint64_t bits = (static_cast<uint64_t>(r.v[2]) << 32) | r.v[3];
      ids[i] = static_cast<int64_t>(bits % static_cast<uint64_t>(vocab_size));
    }
  }
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
  std::vector<int64_t> labels = mlm_mask_ids(ids, maskable, tok.vocab_size(), tok.mask_id(), gen.seed(), counter0, o);
  MlmBatch b;
  b.input_ids = Tensor::from_vector(ids, input_ids.shape());  // (B, T)
  b.labels = Tensor::from_vector(labels, input_ids.shape());  // (B, T)
  return b;
}

// --- text dataset --------------------------------------------------------------------

MlmTextDataset::MlmTextDataset(const std::string& path, const WordPieceTokenizer& tok, MlmTextOptions options)
    : opt_(std::move(options)) {
  std::ifstream f(path, std::ios::binary);
  MEMEL_CHECK(f.good(), "[mlm] cannot open text file '", path, "'");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f, line)) lines.push_back(line);
  build(lines, tok);
  MEMEL_CHECK(!seqs_.empty(), "[mlm] text file '", path, "' has no non-blank lines");
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

Example MlmTextDataset::get(int64_t i) const {
  MEMEL_CHECK(i >= 0 && i < size(), "[mlm] example ", i, " out of range [0, ", size(), ")");
  const auto& s = seqs_[static_cast<size_t>(i)];
  const int64_t T = opt_.max_len;
  std::vector<int64_t> ids(static_cast<size_t>(T), pad_id_), mask(static_cast<size_t>(T), 0),
      types(static_cast<size_t>(T), 0);
  std::copy(s.begin(), s.end(), ids.begin());
  std::fill(mask.begin(), mask.begin() + static_cast<std::ptrdiff_t>(s.size()), 1);
  Example e;
  if (opt_.static_mask_seed) {
    std::vector<bool> maskable(static_cast<size_t>(T), false);
    for (size_t t = 0; t < s.size(); ++t) maskable[t] = !special_[static_cast<size_t>(s[t])];
    auto labels = mlm_mask_ids(ids, maskable, vocab_size_, mask_id_, *opt_.static_mask_seed,
                               static_cast<uint64_t>(i) * static_cast<uint64_t>(T), opt_.mlm);
    e["labels"] = Tensor::from_vector(labels, {T});  // (T)
  }
  e["input_ids"] = Tensor::from_vector(ids, {T});        // (T)
  e["attention_mask"] = Tensor::from_vector(mask, {T});  // (T)
  e["token_type_ids"] = Tensor::from_vector(types, {T}); // (T)
  return e;
}

}  // namespace memel
