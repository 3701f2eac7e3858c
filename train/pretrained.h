#pragma once
// A pretrained BERT directory and its tokenizer in one call, and sentence embeddings.
// (In train/, the library folder that may use both models/ and data/; the pieces are
// models/pretrained.h and WordPieceTokenizer::from_pretrained.)
//
//   auto [model, tok] = memel::load_pretrained_bert("models/all-MiniLM-L6-v2");  // eval mode
//   BatchEncoding b = tok.encode_batch({"A man is eating food.", "A man rides a horse."});
//   Tensor emb = memel::sentence_embeddings(*model, tok, texts);   // (N, C), unit rows
//   Tensor sim = memel::cosine_similarity_matrix(emb, emb);        // (N, N)
#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "models/pretrained.h"

namespace memel {

struct PretrainedBert {
  std::shared_ptr<BertModel> model;  // in eval mode
  WordPieceTokenizer tokenizer;
};

// dir holds a Hugging Face BERT: config.json, vocab.txt, model.safetensors (and
// optionally tokenizer_config.json). Loads the model as load_pretrained_bert_model and
// the tokenizer as WordPieceTokenizer::from_pretrained; `pair_truncation` sets the
// tokenizer's handling of over-long pairs (Fast: as BertTokenizerFast and
// sentence-transformers; Slow: as BertTokenizer). A vocabulary whose size differs from
// config.json's vocab_size is an error.
PretrainedBert load_pretrained_bert(const std::string& dir, const BertPretrainedOptions& o = {},
                                    PairTruncation pair_truncation = PairTruncation::Fast);

// Sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2:
// tokenize (truncated to max_len tokens, 256 being that model's max_seq_length), run
// the encoder, mean-pool over the valid tokens, L2-normalise (normalize = false skips
// the last step). Runs in batches of batch_size under NoGradGuard, in the model's
// current mode (eval after load_pretrained_bert). -> (N, hidden_size), float32 on the
// model's device.
Tensor sentence_embeddings(BertModel& model, const WordPieceTokenizer& tok, const std::vector<std::string>& texts,
                           int64_t max_len = 256, bool normalize = true, int64_t batch_size = 32);

}  // namespace memel
