#include "models/bert_weights.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "memel/layer.h"
#include "tensor/tensor_io.h"

namespace memel {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool is_memel_name(const std::string& n) {
  return starts_with(n, "memel.") || starts_with(n, "memel_") || n.find(".memel.") != std::string::npos ||
         n.find(".memel_") != std::string::npos;
}
// Names of the backbone (BertModel) at the top level of a bare checkpoint.
bool is_backbone_name(const std::string& n) {
  return starts_with(n, "embeddings.") || starts_with(n, "encoder.") || starts_with(n, "pooler.");
}

std::string join(const std::vector<std::string>& v) {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) r += (i ? ", " : "") + v[i];
  return r;
}

}  // namespace

std::string BertLoadReport::str(const std::string& model_name, const std::string& source) const {
  std::string s;
  if (!unused.empty())
    s += "Some weights of the model checkpoint at " + source + " were not used when initializing " + model_name +
         ": [" + join(unused) + "]\n";
  if (!newly_initialized.empty())
    s += "Some weights of " + model_name + " were not initialized from the model checkpoint at " + source +
         " and are newly initialized: [" + join(newly_initialized) + "]\n";
  if (s.empty()) s = "All " + std::to_string(loaded) + " weights of " + model_name + " were initialized from " + source;
  else s.pop_back();
  return s;
}

BertLoadReport load_bert_state_dict(Module& model, const StateDict& sd_in) {
  StateDict mine = model.state_dict();
  const bool prefixed = std::any_of(mine.begin(), mine.end(), [](auto& kv) { return starts_with(kv.first, "bert."); });
  const bool has_mlm = mine.count("cls.predictions.bias") > 0;
  BertLoadReport rep;
  // Checkpoint names -> model names.
  StateDict sd;
  for (auto& [name0, t] : sd_in) {
    std::string name = name0;
    if (ends_with(name, "LayerNorm.gamma")) name = name.substr(0, name.size() - 5) + "weight";
    if (ends_with(name, "LayerNorm.beta")) name = name.substr(0, name.size() - 4) + "bias";
    if (prefixed && is_backbone_name(name)) name = "bert." + name;
    if (!prefixed && starts_with(name, "bert.")) name = name.substr(5);
    const bool tied_decoder = name == "cls.predictions.decoder.weight" || name == "cls.predictions.decoder.bias";
    if (ends_with(name, "embeddings.position_ids") || (tied_decoder && has_mlm)) {
      rep.ignored.push_back(name0);
      continue;
    }
    MEMEL_CHECK(!sd.count(name), "[bert weights] checkpoint names '", name0, "' and another key both map to '", name,
                "'");
    sd[name] = t;
  }
  if (std::any_of(sd.begin(), sd.end(), [](auto& kv) { return is_memel_name(kv.first); })) {
    prepare_memel_layers_for_load(model, sd);
    mine = model.state_dict();
  }
  std::vector<std::string> mismatched;
  for (auto& [name, t] : mine) {
    auto it = sd.find(name);
    if (it == sd.end()) {
      if (!is_memel_name(name)) rep.newly_initialized.push_back(name);
      continue;
    }
    if (it->second.shape() != t.shape())
      mismatched.push_back(name + ": checkpoint " + shape_str(it->second.shape()) + " vs model " +
                           shape_str(t.shape()));
  }
  MEMEL_CHECK(mismatched.empty(), "[bert weights] ", model.type_name(), ": shape mismatch for ",
              mismatched.size() == 1 ? "" : std::to_string(mismatched.size()) + " tensors: ", join(mismatched));
  for (auto& [name, t] : sd)
    if (!mine.count(name)) rep.unused.push_back(name);
  NoGradGuard ng;
  for (auto& [name, t] : mine) {
    auto it = sd.find(name);
    if (it == sd.end()) continue;
    Tensor dst = t;
    dst.copy_from(it->second.to_dtype(dst.dtype()));
    ++rep.loaded;
  }
  return rep;
}

BertLoadReport load_bert_weights(Module& model, const std::string& path) {
  TensorFile f = load_safetensors(path);
  StateDict sd(f.tensors.begin(), f.tensors.end());
  return load_bert_state_dict(model, sd);
}

void save_bert_weights(const Module& model, const std::string& path, bool include_memel_state) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : model.state_dict()) {
    if (!include_memel_state && is_memel_name(name)) continue;
    if (t.numel() == 0 && is_memel_name(name)) continue;  // a memel layer that has not seen data
    out[name] = t.detach();
  }
  save_safetensors(path, out, {{"format", "pt"}});
}

void save_bert_pretrained(const Module& model, const BertConfig& cfg, const std::string& dir,
                          bool include_memel_state) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  MEMEL_CHECK(!ec, "[bert weights] cannot create directory '", dir, "': ", ec.message());
  nlohmann::json j = cfg.to_json();
  j["architectures"] = nlohmann::json::array({model.type_name()});
  {
    std::ofstream f(dir + "/config.json");
    MEMEL_CHECK(f.good(), "[bert weights] cannot write '", dir, "/config.json'");
    f << j.dump(2) << "\n";
    MEMEL_CHECK(f.good(), "[bert weights] write to '", dir, "/config.json' failed");
  }
  save_bert_weights(model, dir + "/model.safetensors", include_memel_state);
}

BertLoadReport load_bert_pretrained(Module& model, const std::string& dir) {
  return load_bert_weights(model, dir + "/model.safetensors");
}

}  // namespace memel
