#pragma once
// Pieces shared by the BERT tasks (text-classification, mlm-pretrain): the model's
// configuration and pretrained weights from the "model" section, the tokenizer from
// "data", and checkpoints written as a Hugging Face directory.
#include <string>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "models/bert.h"

namespace memel::train {

using nlohmann::json;

struct BertSetup {
  BertConfig config;
  std::string pretrained;  // model.pretrained: a directory (config.json, model.safetensors, vocab.txt) or ""
};

// The configuration from cfg["model"]: model.pretrained's config.json when it has one;
// otherwise model.config_file (a Hugging Face config.json) when set, else the preset
// model.config.preset (default bert-mini); then the other model.config keys override
// fields (config.json names). model.name must be "bert"; `task` names the caller.
BertSetup bert_setup(const json& cfg, const std::string& task);

// Loads model.pretrained into `model` when set, printing the Hugging Face-style report
// (missing heads are normal) to stderr under `model_type`.
void load_pretrained_bert(Module& model, const BertSetup& s, const std::string& model_type);

// The WordPiece tokenizer: data.vocab, else model.pretrained's vocab.txt; data.lower_case.
// Checks that its ids fit the model (vocab_size) and that data.max_len fits its positions.
WordPieceTokenizer bert_tokenizer(const json& data, const BertSetup& s);

// A checkpoint's weights: when `path` is ".../model.safetensors", the directory becomes a
// Hugging Face save_pretrained directory (config.json with "architectures" and
// model.safetensors in HF names, memel state left out); any other name gets the weights only.
void save_bert_checkpoint(const Module& model, const BertConfig& config, const std::string& path);

}  // namespace memel::train
