#include "train/pretrained.h"

#include <algorithm>

namespace memel {

PretrainedBert load_pretrained_bert(const std::string& dir, const BertPretrainedOptions& o,
                                    PairTruncation pair_truncation) {
  WordPieceOptions wo;
  wo.pair_truncation = pair_truncation;
  WordPieceTokenizer tok = WordPieceTokenizer::from_pretrained(dir, wo);
  auto model = load_pretrained_bert_model(dir, o);
  MEMEL_CHECK(tok.vocab_size() == model->config().vocab_size, "[load_pretrained_bert] ", dir, ": vocab.txt has ",
              tok.vocab_size(), " tokens but config.json says vocab_size ", model->config().vocab_size);
  return PretrainedBert{std::move(model), std::move(tok)};
}

Tensor sentence_embeddings(BertModel& model, const WordPieceTokenizer& tok, const std::vector<std::string>& texts,
                           int64_t max_len, bool normalize, int64_t batch_size) {
  MEMEL_CHECK(!texts.empty(), "[sentence_embeddings] no texts");
  MEMEL_CHECK(batch_size > 0, "[sentence_embeddings] batch_size must be positive, got ", batch_size);
  MEMEL_CHECK(max_len >= 2 && max_len <= model.config().max_position_embeddings, "[sentence_embeddings] max_len ",
              max_len, " must be in [2, ", model.config().max_position_embeddings, "] (max_position_embeddings)");
  NoGradGuard ng;
  std::vector<Tensor> parts;
  for (size_t at = 0; at < texts.size(); at += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(texts.size(), at + static_cast<size_t>(batch_size));
    const std::vector<std::string> chunk(texts.begin() + static_cast<std::ptrdiff_t>(at),
                                         texts.begin() + static_cast<std::ptrdiff_t>(end));
    BatchEncoding b = tok.encode_batch(chunk, max_len);
    const Device d = model.embeddings().word_embeddings_weight().device();
    Tensor mask = b.attention_mask.to(d);
    BertModelOutput out = model.forward(b.input_ids.to(d), mask, b.token_type_ids.to(d));
    Tensor e = mean_pool(out.last_hidden_state, mask);  // (n, C)
    parts.push_back(normalize ? l2_normalize(e) : e);
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

}  // namespace memel
