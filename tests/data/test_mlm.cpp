// MLM masking: proportions, special tokens, determinism; the text dataset.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>

#include "autograd/ops.h"
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
  o.mask_seed = 3;
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

TEST_CASE("mlm: dynamic masking by epoch, at least one target per sequence") {
  const std::vector<std::string> lines = {"a domestic animal kept as a pet", "the act of running quickly",
                                          "a tall perennial woody plant having a main trunk", "move fast", "pet"};
  MlmTextOptions o;
  o.max_len = 16;
  o.mask_seed = 5;
  o.mask_per_epoch = true;
  MlmTextDataset d(lines, tok(), o);
  auto labels = [&](int64_t i, int64_t epoch) { return d.get_at_epoch(i, epoch).at("labels").to_vector_as<int64_t>(); };
  // A function of (seed, epoch, i): repeatable, different across epochs, get() is epoch 0.
  CHECK(labels(2, 1) == labels(2, 1));
  CHECK(labels(2, 0) == d.get(2).at("labels").to_vector_as<int64_t>());
  bool differs = false;
  for (int64_t e = 1; e < 4; ++e) differs |= labels(2, e) != labels(2, 0);
  CHECK(differs);
  Example b = d.get_batch_at_epoch({2, 4}, 3);
  CHECK(b.at("labels").shape() == Shape{2, 16});
  CHECK(select(b.at("labels"), 0, 0).to_vector_as<int64_t>() == labels(2, 3));
  // Static masking ignores the epoch.
  o.mask_per_epoch = false;
  MlmTextDataset s(lines, tok(), o);
  CHECK(s.get_at_epoch(2, 5).at("labels").to_vector_as<int64_t>() == s.get(2).at("labels").to_vector_as<int64_t>());
  // at_least_one: with a rate of 0 every sequence still has exactly one target, never a
  // special token; turned off, none.
  o.mask_per_epoch = true;
  o.mlm.mask_prob = 0.0;
  MlmTextDataset z(lines, tok(), o);
  for (int64_t e = 0; e < 3; ++e)
    for (int64_t i = 0; i < z.size(); ++i) {
      Example ex = z.get_at_epoch(i, e);
      auto lab = ex.at("labels").to_vector_as<int64_t>();
      auto am = ex.at("attention_mask").to_vector_as<int64_t>();
      int64_t n = 0;
      for (size_t t = 0; t < lab.size(); ++t)
        if (lab[t] != -100) {
          ++n;
          CHECK(!tok().is_special_id(lab[t]));
          CHECK(am[t] == 1);
        }
      CHECK(n == 1);
    }
  o.mlm.at_least_one = false;
  MlmTextDataset none(lines, tok(), o);
  for (int64_t v : none.get(0).at("labels").to_vector_as<int64_t>()) CHECK(v == -100);
  // The batch masker guarantees it per row.
  const Tensor ids = select(d.get_batch({3, 4}).at("input_ids"), 0, 0);  // "move fast"
  Tensor rows = stack({ids, ids, ids}, 0);                                // (3, 16)
  MlmOptions mo;
  mo.mask_prob = 0.0;
  Generator g(1);
  MlmBatch m = mlm_mask(rows, tok(), g, Tensor(), mo);
  auto lab = m.labels.to_vector_as<int64_t>();
  for (int64_t r = 0; r < 3; ++r) {
    int64_t n = 0;
    for (int64_t t = 0; t < 16; ++t) n += lab[r * 16 + t] != -100;
    CHECK(n == 1);
  }
}

TEST_CASE("mlm: corpus files and directories, seeded held-out split") {
  const std::string dir = std::string(MEMEL_SOURCE_DIR) + "/tests/data/text/mlm-corpus";
  auto all = read_text_lines(dir);  // part-1.txt then part-2.txt; README.md is not read
  auto one = read_text_lines(dir + "/part-1.txt");
  REQUIRE(all.size() > one.size());
  CHECK(std::equal(one.begin(), one.end(), all.begin()));
  CHECK(all.back().empty());  // blank lines are kept here, skipped by the dataset
  CHECK_THROWS_AS(read_text_lines(std::string(MEMEL_SOURCE_DIR) + "/tests/data/glue_fixture/CoLA"), Error);
  auto [train, eval] = split_text_lines(all, 0.25, 7);
  CHECK(train.size() + eval.size() == all.size());
  CHECK(double(eval.size()) / all.size() == doctest::Approx(0.25).epsilon(0.5));
  auto [train2, eval2] = split_text_lines(all, 0.25, 7);
  CHECK(eval2 == eval);
  CHECK(split_text_lines(all, 0.25, 8).second != eval);
  for (const auto& l : eval)  // identical lines never straddle the split
    CHECK(std::find(train.begin(), train.end(), l) == train.end());
  CHECK(split_text_lines(all, 0.0, 7).second.empty());
  CHECK_THROWS_AS(split_text_lines(all, 1.5, 7), Error);
}
