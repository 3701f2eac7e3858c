// MLM masking: proportions, special tokens, determinism; the text dataset.
#include <doctest/doctest.h>

#include <fstream>

#include "core/error.h"
#include "core/rng.h"
#include "data/mlm.h"
#include "data/tokenizer.h"

using namespace memel;

namespace {
const WordPieceTokenizer& tok() {
  static WordPieceTokenizer t =
      WordPieceTokenizer::from_file(std::string(MEMEL_SOURCE_DIR) + "/tests/data/text/vocab-uncased.txt");
  return t;
}
}  // namespace

TEST_CASE("mlm: 15% chosen, 80/10/10, specials and padding never touched, deterministic") {
  const int64_t B = 64, T = 128;
  std::vector<int64_t> ids(B * T), am(B * T, 1);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) ids[b * T + t] = 2000 + (b * 131 + t * 7) % 20000;
    ids[b * T] = tok().cls_id();
    ids[b * T + 100] = tok().sep_id();
    for (int64_t t = 101; t < T; ++t) { ids[b * T + t] = tok().pad_id(); am[b * T + t] = 0; }
  }
  Tensor x = Tensor::from_vector(ids, {B, T}), mask = Tensor::from_vector(am, {B, T});
  Generator g(7);
  MlmBatch m = mlm_mask(x, tok(), g, mask);
  CHECK(m.input_ids.shape() == Shape{B, T});
  auto out = m.input_ids.to_vector_as<int64_t>(), lab = m.labels.to_vector_as<int64_t>();
  int64_t ordinary = 0, chosen = 0, to_mask = 0, unchanged = 0, other = 0;
  for (int64_t i = 0; i < B * T; ++i) {
    const int64_t t = i % T;
    const bool maskable = t != 0 && t < 100;
    ordinary += maskable;
    if (!maskable) {
      CHECK(lab[i] == -100);
      CHECK(out[i] == ids[i]);
      continue;
    }
    if (lab[i] == -100) {
      CHECK(out[i] == ids[i]);
      continue;
    }
    ++chosen;
    CHECK(lab[i] == ids[i]);
    if (out[i] == tok().mask_id()) ++to_mask;
    else if (out[i] == ids[i]) ++unchanged;
    else ++other;
  }
  const double f = double(chosen) / ordinary;
  MESSAGE("chosen ", chosen, " of ", ordinary, " (", f, "); [MASK] ", to_mask, ", random ", other, ", unchanged ", unchanged);
  CHECK(f == doctest::Approx(0.15).epsilon(0.07));  // 6336 positions: sd of f about 0.0045
  CHECK(double(to_mask) / chosen == doctest::Approx(0.8).epsilon(0.06));
  CHECK(double(other) / chosen == doctest::Approx(0.1).epsilon(0.3));
  CHECK(double(unchanged) / chosen == doctest::Approx(0.1).epsilon(0.3));
  // Same generator state -> same masks; the generator advanced; next call differs.
  Generator g2(7);
  MlmBatch m2 = mlm_mask(x, tok(), g2, mask);
  CHECK(m2.input_ids.to_vector_as<int64_t>() == out);
  CHECK(m2.labels.to_vector_as<int64_t>() == lab);
  CHECK(g.offset() > 0);
  CHECK(mlm_mask(x, tok(), g, mask).labels.to_vector_as<int64_t>() != lab);
  CHECK_THROWS_AS(mlm_mask(Tensor::zeros({2, 3}), tok(), g), Error);  // float ids
}

TEST_CASE("mlm: text dataset, packing, static masking") {
  const std::vector<std::string> lines = {"a domestic animal kept as a pet", "", "the act of running quickly",
                                          "a tall perennial woody plant having a main trunk", "move fast"};
  MlmTextOptions o;
  o.max_len = 16;
  MlmTextDataset d(lines, tok(), o);
  CHECK(d.size() == 4);  // blank line skipped
  Example e = d.get(0);
  auto ids = e.at("input_ids").to_vector_as<int64_t>();
  CHECK(ids.size() == 16);
  CHECK(ids[0] == tok().cls_id());
  CHECK(e.count("labels") == 0);
  CHECK(e.at("attention_mask").to_vector_as<int64_t>()[9] == 0);  // [CLS] + 7 words + [SEP] = 9 tokens
  CHECK(e.at("attention_mask").to_vector_as<int64_t>()[8] == 1);

  o.pack = true;
  MlmTextDataset p(lines, tok(), o);
  CHECK(p.size() < d.size());
  CHECK(p.num_tokens() < d.num_tokens());  // fewer [CLS]
  o.pack = false;
  o.static_mask_seed = 3;
  o.mlm.mask_prob = 0.5;
  MlmTextDataset s(lines, tok(), o);
  Example a = s.get(2), b = s.get(2);
  CHECK(a.at("labels").to_vector_as<int64_t>() == b.at("labels").to_vector_as<int64_t>());
  int64_t n_lab = 0;
  for (int64_t v : a.at("labels").to_vector_as<int64_t>()) n_lab += v != -100;
  CHECK(n_lab > 0);
  CHECK_THROWS_AS(s.get(4), Error);
  CHECK_THROWS_AS(MlmTextDataset(std::string(MEMEL_SOURCE_DIR) + "/no-such-file.txt", tok()), Error);
}
