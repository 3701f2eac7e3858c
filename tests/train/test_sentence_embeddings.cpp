// sentence_embeddings (train/pretrained.h) against embeddings recorded from
// sentence-transformers (tests/python/minilm_reference.py): always on a small random BERT
// saved by Hugging Face (tests/data/text/tiny-sentence-bert), and on all-MiniLM-L6-v2
// when that checkpoint is on the machine (scripts/fetch-minilm.sh; an optional asset, so
// its absence is a skip said as such).
#include <doctest/doctest.h>

#include "support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/sha256.h"
#include "train/pretrained.h"

using namespace memel;

namespace {

struct Reference {
  std::vector<std::string> texts;
  std::vector<int64_t> token_counts;
  Tensor embeddings;  // (N, C) float64
  std::string model_sha256;
};

Reference read_reference(const std::string& path) {
  std::ifstream f(path);
  REQUIRE_MESSAGE(f.good(), "cannot open ", path);
  nlohmann::json j = nlohmann::json::parse(f);
  Reference r;
  r.texts = j.at("texts").get<std::vector<std::string>>();
  r.token_counts = j.at("token_counts").get<std::vector<int64_t>>();
  r.model_sha256 = j.at("model_sha256").get<std::string>();
  std::vector<double> flat;
  const auto& rows = j.at("embeddings");
  for (const auto& row : rows)
    for (double v : row) flat.push_back(v);
  const int64_t n = static_cast<int64_t>(rows.size());
  r.embeddings = Tensor::from_vector(flat, {n, static_cast<int64_t>(flat.size()) / n});
  return r;
}

// Loads `dir`, checks it is the checkpoint the reference was recorded from, and compares
// token counts and embeddings; returns max |ours - reference|.
double check_against_reference(const std::string& dir, const Reference& ref) {
  REQUIRE(sha256_file_hex(dir + "/model.safetensors") == ref.model_sha256);
  PretrainedBert p = load_pretrained_bert(dir);
  CHECK_FALSE(p.model->is_training());
  BatchEncoding b = p.tokenizer.encode_batch(ref.texts, 256);
  for (size_t i = 0; i < ref.texts.size(); ++i)
    CHECK_MESSAGE(static_cast<int64_t>(b.encodings[i].length()) == ref.token_counts[i], "text ", i);
  Tensor emb = sentence_embeddings(*p.model, p.tokenizer, ref.texts, 256, true, 4);
  REQUIRE(emb.shape() == ref.embeddings.shape());
  return max_abs_diff(emb, ref.embeddings);
}

std::string source_path(const std::string& rel) { return std::string(MEMEL_SOURCE_DIR) + "/" + rel; }

}  // namespace

TEST_CASE("sentence_embeddings: a small Hugging Face BERT gives sentence-transformers' embeddings") {
  const std::string dir = source_path("tests/data/text/tiny-sentence-bert");
  const Reference ref = read_reference(dir + "/reference.json");
  const double d = check_against_reference(dir, ref);
  MESSAGE("tiny BERT: max |memel - sentence-transformers| = ", d);
  CHECK(d < 2e-6);

  PretrainedBert p = load_pretrained_bert(dir);
  // The batch size (and so the padding around each text) does not change an embedding.
  Tensor one = sentence_embeddings(*p.model, p.tokenizer, ref.texts, 256, true, 1);
  Tensor all = sentence_embeddings(*p.model, p.tokenizer, ref.texts, 256, true, 32);
  CHECK(max_abs_diff(one, all) < 1e-6);
  // normalize = false: the mean-pooled rows, whose L2-normalised form is the default.
  Tensor raw = sentence_embeddings(*p.model, p.tokenizer, ref.texts, 256, false, 32);
  CHECK(max_abs_diff(l2_normalize(raw), all) < 1e-6);
  CHECK(max_abs_diff(raw, all) > 1e-3);  // raw rows are not unit rows
  // Cosine similarity of unit rows: ones on the diagonal, the reference's products elsewhere.
  Tensor sim = cosine_similarity_matrix(all, all);
  Tensor ref_sim = cosine_similarity_matrix(ref.embeddings, ref.embeddings);
  CHECK(max_abs_diff(sim, ref_sim) < 4e-6);
  // Clear errors.
  CHECK(error_of([&] { sentence_embeddings(*p.model, p.tokenizer, {}, 256); }).find("no texts") != std::string::npos);
  CHECK(error_of([&] { sentence_embeddings(*p.model, p.tokenizer, ref.texts, 257); }).find("max_position_embeddings") !=
        std::string::npos);
}

TEST_CASE("sentence_embeddings: all-MiniLM-L6-v2 gives sentence-transformers' embeddings (when fetched)") {
  const char* env = std::getenv("MEMEL_MINILM_DIR");
  const std::string dir = env && *env ? std::string(env) : source_path("models/all-MiniLM-L6-v2");
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    MESSAGE("skipped: no all-MiniLM-L6-v2 checkpoint at ", dir, " (scripts/fetch-minilm.sh fetches it)");
    return;
  }
  const Reference ref = read_reference(source_path("tests/data/text/minilm_reference.json"));
  const double d = check_against_reference(dir, ref);
  MESSAGE("all-MiniLM-L6-v2: max |memel - sentence-transformers| = ", d);
  CHECK(d < 1e-5);
}
