#include "models/pretrained.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "models/bert_weights.h"
#include "tensor/tensor_io.h"

namespace memel {

// --- BERT ------------------------------------------------------------------------------

std::shared_ptr<BertModel> load_pretrained_bert_model(const std::string& dir, const BertPretrainedOptions& o) {
  const BertConfig cfg = BertConfig::from_file(dir + "/config.json");
  auto model = std::make_shared<BertModel>(cfg, o.add_pooling_layer);
  const BertLoadReport rep = load_bert_pretrained(*model, dir);
  if (o.log && (!rep.unused.empty() || !rep.newly_initialized.empty())) *o.log << rep.str("BertModel", dir);
  model->eval();
  return model;
}

Tensor mean_pool(const Tensor& hidden, const Tensor& attention_mask) {
  MEMEL_CHECK(hidden.dim() == 3, "[mean_pool] expected hidden states (B, T, C), got ", shape_str(hidden.shape()));
  if (!attention_mask.defined()) return mean(hidden, {1});
  MEMEL_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == hidden.size(0) &&
                  attention_mask.size(1) == hidden.size(1),
              "[mean_pool] attention_mask ", shape_str(attention_mask.shape()), " does not match hidden states ",
              shape_str(hidden.shape()), " (expected (B, T))");
  Tensor m = unsqueeze(attention_mask.to_dtype(hidden.dtype()).to(hidden.device()), 2);  // (B, T, 1)
  Tensor summed = sum(mul(hidden, m), {1});                                               // (B, C)
  Tensor count = clamp(sum(m, {1}), 1e-9, INFINITY);                                      // (B, 1)
  return div(summed, count);
}

Tensor l2_normalize(const Tensor& x, double eps) {
  MEMEL_CHECK(x.dim() >= 1, "[l2_normalize] expected at least one axis, got a scalar");
  Tensor norm = sqrt(sum(square(x), {-1}, /*keepdim=*/true));
  return div(x, clamp(norm, eps, INFINITY));
}

Tensor cosine_similarity_matrix(const Tensor& a, const Tensor& b) {
  MEMEL_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), "[cosine_similarity_matrix] expected (N, C) "
              "and (M, C), got ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  return matmul(a, transpose(b, 0, 1));
}

// --- Swin ------------------------------------------------------------------------------

namespace {

const Tensor& need(const StateDict& sd, const std::string& name) {
  auto it = sd.find(name);
  MEMEL_CHECK(it != sd.end(), "[infer_swin_config] the state dict has no '", name, "'");
  return it->second;
}

int64_t window_of_table(const Tensor& table, const std::string& name) {
  // ((2w - 1)^2, heads)
  MEMEL_CHECK(table.dim() == 2, "[infer_swin_config] ", name, " should be ((2w-1)^2, heads), got ",
              shape_str(table.shape()));
  const int64_t side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(table.size(0)))));
  MEMEL_CHECK(side * side == table.size(0) && side % 2 == 1, "[infer_swin_config] ", name, " has ", table.size(0),
              " rows, not (2w-1)^2 for a window w");
  return (side + 1) / 2;
}

StateDict to_authors_names(const StateDict& sd) {
  const SwinNaming n = detect_swin_naming(sd);
  return n == SwinNaming::Torchvision ? swin_from_torchvision(sd) : n == SwinNaming::TimmNew ? swin_from_timm_new(sd)
                                                                                            : sd;
}

}  // namespace

SwinConfig infer_swin_config(const StateDict& sd_any) {
  const SwinNaming naming = detect_swin_naming(sd_any);
  const StateDict sd = to_authors_names(sd_any);
  SwinConfig c;
  c.name = "pretrained";
  const Tensor& proj = need(sd, "patch_embed.proj.weight");  // (embed_dim, in_chans, p, p)
  MEMEL_CHECK(proj.dim() == 4 && proj.size(2) == proj.size(3), "[infer_swin_config] patch_embed.proj.weight should "
              "be (embed_dim, in_chans, p, p), got ", shape_str(proj.shape()));
  c.embed_dim = proj.size(0);
  c.in_chans = proj.size(1);
  c.patch_size = proj.size(2);
  c.patch_norm = sd.count("patch_embed.norm.weight") > 0;
  // Blocks per stage from the names "layers.{i}.blocks.{j}.".
  std::map<int64_t, int64_t> depth;
  for (auto& [k, v] : sd) {
    int i = -1, j = -1;
    if (std::sscanf(k.c_str(), "layers.%d.blocks.%d.", &i, &j) == 2 && i >= 0 && j >= 0)
      depth[i] = std::max<int64_t>(depth[i], j + 1);
  }
  MEMEL_CHECK(!depth.empty(), "[infer_swin_config] the state dict has no 'layers.{i}.blocks.{j}' tensors");
  c.depths.clear();
  c.num_heads.clear();
  for (int64_t i = 0; i < static_cast<int64_t>(depth.size()); ++i) {
    MEMEL_CHECK(depth.count(i), "[infer_swin_config] stage ", i, " has no blocks but stage ", depth.rbegin()->first,
                " has");
    c.depths.push_back(depth[i]);
    const std::string t = str_cat("layers.", i, ".blocks.0.attn.relative_position_bias_table");
    c.num_heads.push_back(need(sd, t).size(1));
  }
  c.window_size = window_of_table(need(sd, "layers.0.blocks.0.attn.relative_position_bias_table"),
                                  "layers.0.blocks.0.attn.relative_position_bias_table");
  c.qkv_bias = sd.count("layers.0.blocks.0.attn.qkv.bias") > 0;
  c.mlp_ratio = static_cast<double>(need(sd, "layers.0.blocks.0.mlp.fc1.weight").size(0)) /
                static_cast<double>(c.embed_dim);
  auto head = sd.find("head.weight");
  c.num_classes = head == sd.end() ? 0 : head->second.size(0);
  c.window_clamp = naming != SwinNaming::Torchvision;
  c.img_size = 224;
  // The authors' files keep the shifted-window masks: (windows, w*w, w*w) of stage 0.
  for (int64_t j = 0; j < c.depths[0]; ++j) {
    auto m = sd.find(str_cat("layers.0.blocks.", j, ".attn_mask"));
    if (m == sd.end() || m->second.dim() != 3) continue;
    const int64_t per_side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(m->second.size(0)))));
    c.img_size = per_side * c.window_size * c.patch_size;
    break;
  }
  c.drop_path_rate = 0.0;
  c.validate();
  return c;
}

std::shared_ptr<SwinTransformer> load_pretrained_swin(const std::string& path, const SwinPretrainedOptions& o) {
  TensorFile f = load_safetensors(path);
  StateDict sd(f.tensors.begin(), f.tensors.end());
  SwinConfig c;
  auto meta = f.metadata.find("swin_config");
  try {
    if (meta != f.metadata.end()) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(meta->second);
      } catch (const nlohmann::json::exception& e) {
        MEMEL_FAIL("the \"swin_config\" metadata is not valid JSON (", e.what(), ")");
      }
      c = SwinConfig::from_json(j, "swin_config");
    } else {
      c = infer_swin_config(sd);
    }
  } catch (const Error& e) {
    MEMEL_FAIL("[load_pretrained_swin] ", path, ": ", e.what());
  }
  if (o.img_size > 0) c.img_size = o.img_size;
  if (o.num_classes >= 0) c.num_classes = o.num_classes;
  c.drop_path_rate = o.drop_path_rate;
  auto model = std::make_shared<SwinTransformer>(c);
  try {
    load_swin_weights(*model, sd, o.strict, o.log);
  } catch (const Error& e) {
    MEMEL_FAIL("[load_pretrained_swin] ", path, ": ", e.what());
  }
  model->eval();
  return model;
}

}  // namespace memel
