#pragma once
// Hugging Face BERT weights in and out of memel models.
//
// Loading accepts the names of any HF BERT checkpoint (model.safetensors): with or
// without the "bert." prefix (a bare BertModel checkpoint into a BertForX model and
// back), the old TF-era LayerNorm names "gamma"/"beta", and the keys HF itself ignores
// (embeddings.position_ids; cls.predictions.decoder.{weight,bias}, tied to the word
// embeddings and cls.predictions.bias). As HF's from_pretrained:
//   - model tensors absent from the checkpoint keep their fresh init and are reported as
//     newly initialized (e.g. a classifier loaded from a backbone checkpoint);
//   - checkpoint tensors the model does not have are reported as unused and ignored
//     (e.g. cls.* when loading a pre-training checkpoint into a classifier);
//   - a tensor whose shape differs is an error naming the tensor and both shapes.
// memel layer state (".memel." names) is loaded when present and never reported missing.
//
// Saving writes the model's parameters (and, when asked, its memel state) under the same
// names, with the "format": "pt" metadata transformers requires, so
// BertForX.from_pretrained(dir) reads a directory written by save_bert_pretrained.
#include <string>
#include <vector>

#include "models/bert.h"

namespace memel {

struct BertLoadReport {
  std::vector<std::string> newly_initialized;  // model names not found in the checkpoint
  std::vector<std::string> unused;             // checkpoint names the model does not have
  std::vector<std::string> ignored;            // known-redundant keys (tied weights, position_ids)
  int64_t loaded = 0;                          // tensors copied
  // HF-style summary ("Some weights of the model checkpoint ... were not used ...").
  std::string str(const std::string& model_name = "model", const std::string& source = "checkpoint") const;
};

// Copies matching tensors of `sd` (checkpoint names) into `model`.
BertLoadReport load_bert_state_dict(Module& model, const StateDict& sd);
// Same from a .safetensors file.
BertLoadReport load_bert_weights(Module& model, const std::string& safetensors_path);
// Writes the model's tensors to a .safetensors file in HF names. Memel layer buffers are
// skipped unless include_memel_state (HF would list them as unused keys).
void save_bert_weights(const Module& model, const std::string& safetensors_path, bool include_memel_state = false);

// A directory as HF's save_pretrained writes it: config.json + model.safetensors.
// "architectures" in config.json is the model's type name (BertModel, BertForMaskedLM, ...).
void save_bert_pretrained(const Module& model, const BertConfig& cfg, const std::string& dir,
                          bool include_memel_state = false);
// Reads dir/config.json (use BertConfig::from_file) and loads dir/model.safetensors.
BertLoadReport load_bert_pretrained(Module& model, const std::string& dir);

}  // namespace memel
