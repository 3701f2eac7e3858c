#include "train/task_bert.h"

#include <cstdio>
#include <filesystem>

#include "train/config.h"
#include "models/bert_weights.h"

namespace fs = std::filesystem;

namespace memel::train {

BertSetup bert_setup(const json& cfg, const std::string& task) {
  const json& m = cfg.at("model");
  MEMEL_CHECK(get_str(m, "name", "model") == "bert", "[config] model.name: ", task, " supports \"bert\"");
  BertSetup s;
  s.pretrained = m.at("pretrained").is_string() ? m.at("pretrained").get<std::string>() : "";
  if (!s.pretrained.empty()) {
    MEMEL_CHECK(fs::is_directory(s.pretrained), "[config] model.pretrained: '", s.pretrained,
                "' is not a directory (expected config.json, model.safetensors, vocab.txt)");
    MEMEL_CHECK(fs::exists(fs::path(s.pretrained) / "model.safetensors"), "[config] model.pretrained: '", s.pretrained,
                "' has no model.safetensors");
  }
  if (!s.pretrained.empty() && fs::exists(fs::path(s.pretrained) / "config.json")) {
    s.config = BertConfig::from_file((fs::path(s.pretrained) / "config.json").string());
    return s;
  }
  json mc = m.at("config");
  MEMEL_CHECK(mc.is_object(), "[config] model.config: expected an object");
  const std::string preset = mc.value("preset", std::string("bert-mini"));
  mc.erase("preset");
  if (m.at("config_file").is_string()) {
    const std::string file = m.at("config_file").get<std::string>();
    MEMEL_CHECK(fs::exists(file), "[config] model.config_file: cannot open '", file, "'");
    s.config = BertConfig::from_file(file);
  } else {
    s.config = BertConfig::preset(preset);
  }
  s.config.update(mc, "model.config");
  s.config.validate();
  return s;
}

void load_pretrained_bert(Module& model, const BertSetup& s, const std::string& model_type) {
  if (s.pretrained.empty()) return;
  BertLoadReport rep = load_bert_pretrained(model, s.pretrained);
  std::fprintf(stderr, "%s\n", rep.str(model_type, s.pretrained).c_str());
}

WordPieceTokenizer bert_tokenizer(const json& data, const BertSetup& s) {
  std::string vocab = get_str(data, "vocab", "data");
  if (vocab.empty() && !s.pretrained.empty()) vocab = (fs::path(s.pretrained) / "vocab.txt").string();
  MEMEL_CHECK(!vocab.empty(), "[config] data.vocab: a vocab.txt is required (or model.pretrained with one)");
  WordPieceOptions wo;
  wo.do_lower_case = get_bool(data, "lower_case", "data");
  WordPieceTokenizer tok = WordPieceTokenizer::from_file(vocab, wo);
  MEMEL_CHECK(tok.vocab_size() <= s.config.vocab_size, "[config] data.vocab: ", vocab, " has ", tok.vocab_size(),
              " tokens but the model's vocab_size is ", s.config.vocab_size, " (set model.config.vocab_size)");
  const int64_t max_len = get_int(data, "max_len", "data");
  MEMEL_CHECK(max_len >= 3 && max_len <= s.config.max_position_embeddings, "[config] data.max_len: ", max_len,
              " must be in [3, max_position_embeddings = ", s.config.max_position_embeddings, "]");
  return tok;
}

void save_bert_checkpoint(const Module& model, const BertConfig& config, const std::string& path) {
  const fs::path p(path);
  if (p.filename() == "model.safetensors")
    save_bert_pretrained(model, config, p.parent_path().string());
  else
    save_bert_weights(model, path);
}

}  // namespace memel::train
