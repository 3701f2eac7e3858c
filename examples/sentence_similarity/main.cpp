// Sentence similarity with a pretrained sentence-transformers BERT: loads the directory
// (config.json, vocab.txt, model.safetensors), embeds the sentences as
// sentence-transformers does (mean pooling over the valid tokens, L2 normalisation),
// prints their cosine similarities and each sentence's nearest neighbour.
//
//   sentence_similarity <model dir> [sentence ...]
//
// The checkpoint: scripts/fetch-minilm.sh (all-MiniLM-L6-v2 into models/).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "train/pretrained.h"

using namespace memel;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <model dir> [sentence ...]\n", argv[0]);
    return 2;
  }
  std::vector<std::string> texts(argv + 2, argv + argc);
  if (texts.empty())
    texts = {"A man is eating food.",      "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "A man is riding a horse.",   "A woman is playing violin.",        "A monkey is playing drums.",
             "A man rides a white horse."};
  try {
    PretrainedBert bert = load_pretrained_bert(argv[1]);  // eval mode
    Tensor emb = sentence_embeddings(*bert.model, bert.tokenizer, texts);  // (N, C), unit rows
    const std::vector<double> sim = cosine_similarity_matrix(emb, emb).to_vector();
    const size_t n = texts.size();
    std::printf("%zu sentences, embeddings of size %lld\n", n, static_cast<long long>(emb.size(1)));
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) std::printf(" %6.3f", sim[i * n + j]);
      std::printf("   %s\n", texts[i].c_str());
    }
    for (size_t i = 0; i < n && n > 1; ++i) {
      size_t best = i == 0 ? 1 : 0;
      for (size_t j = 0; j < n; ++j)
        if (j != i && sim[i * n + j] > sim[i * n + best]) best = j;
      std::printf("nearest: %s -> %s (%.3f)\n", texts[i].c_str(), texts[best].c_str(), sim[i * n + best]);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sentence_similarity: %s\n", e.what());
    return 1;
  }
  return 0;
}
