#include "models/swin.h"

#include <algorithm>
#include <cmath>
#include <ostream>
#include <regex>
#include <set>
#include <type_traits>

#include "core/json_int.h"
#include "layers/init.h"
#include "memel/layer.h"
#include "tensor/tensor_io.h"

namespace memel {

// --- config ----------------------------------------------------------------------------

SwinConfig SwinConfig::preset(const std::string& name) {
  SwinConfig c;
  c.name = name;
  if (name == "swin-t") {
    c.drop_path_rate = 0.2;
  } else if (name == "swin-s") {
    c.depths = {2, 2, 18, 2};
    c.drop_path_rate = 0.3;
  } else if (name == "swin-b") {
    c.embed_dim = 128;
    c.depths = {2, 2, 18, 2};
    c.num_heads = {4, 8, 16, 32};
    c.drop_path_rate = 0.5;
  } else if (name == "swin-mini") {
    c.img_size = 32;
    c.patch_size = 2;
    c.embed_dim = 48;
    c.window_size = 4;
    c.num_classes = 10;
    c.drop_path_rate = 0.1;
  } else if (name == "swin-fmnist") {
    c.img_size = 28;
    c.patch_size = 2;
    c.in_chans = 1;
    c.embed_dim = 48;
    c.depths = {2, 2, 2};
    c.num_heads = {3, 6, 12};
    c.window_size = 7;
    c.num_classes = 10;
    c.drop_path_rate = 0.1;
  } else {
    std::string all;
    for (auto& n : preset_names()) all += (all.empty() ? "" : ", ") + n;
    MEMEL_FAIL("[SwinConfig] unknown preset '", name, "'; known: ", all);
  }
  return c;
}

std::vector<std::string> SwinConfig::preset_names() { return {"swin-t", "swin-s", "swin-b", "swin-mini", "swin-fmnist"}; }

namespace {

int64_t square_size(const nlohmann::json& v, const std::string& key, const std::string& where) {
  if (v.is_number_integer()) return v.get<int64_t>();
  MEMEL_CHECK(v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer() &&
                  v[0].get<int64_t>() == v[1].get<int64_t>(),
              "[", where, "] \"", key, "\" must be an integer or a square pair [n, n], got ", v.dump());
  return v[0].get<int64_t>();
}

template <typename T>
T get_as(const nlohmann::json& v, const std::string& key, const std::string& where) {
  // Integers: checked first (a float outside int64's range would convert with undefined
  // behaviour, core/json_int.h).
  if constexpr (std::is_same_v<T, int64_t>) {
    return json_int64_checked(v, true, "[", where, "] \"", key, "\" must be an integer");
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    MEMEL_CHECK(v.is_array(), "[", where, "] \"", key, "\" must be a list of integers, got ", v.dump());
    std::vector<int64_t> r;
    for (const auto& e : v) r.push_back(get_as<int64_t>(e, key, where));
    return r;
  }
  try {
    return v.get<T>();
  } catch (const nlohmann::json::exception&) {
    MEMEL_FAIL("[", where, "] \"", key, "\" has the wrong type: ", v.dump());
  }
}

}  // namespace

SwinConfig SwinConfig::from_json(const nlohmann::json& j, const std::string& where) {
  MEMEL_CHECK(j.is_object(), "[", where, "] a Swin config must be a JSON object, got ", j.dump());
  SwinConfig c;
  if (j.contains("preset")) c = preset(get_as<std::string>(j["preset"], "preset", where));
  static const std::set<std::string> known = {
      "preset", "name", "img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depths", "num_heads",
      "window_size", "mlp_ratio", "qkv_bias", "patch_norm", "drop_rate", "attn_drop_rate", "drop_path_rate",
      "layer_norm_eps", "window_clamp", "strict_img_size", "fused_attention", "seed", "type", "arch"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const nlohmann::json& v = it.value();
    if (!known.count(k)) {
      std::string all;
      for (auto& n : known) all += (all.empty() ? "" : ", ") + n;
      MEMEL_FAIL("[", where, "] unknown Swin config key \"", k, "\"; known: ", all);
    }
    if (k == "name") c.name = get_as<std::string>(v, k, where);
    else if (k == "img_size") c.img_size = square_size(v, k, where);
    else if (k == "patch_size") c.patch_size = square_size(v, k, where);
    else if (k == "window_size") c.window_size = square_size(v, k, where);
    else if (k == "strict_img_size") c.strict_img_size = get_as<bool>(v, k, where);
    else if (k == "in_chans") c.in_chans = get_as<int64_t>(v, k, where);
    else if (k == "num_classes") c.num_classes = get_as<int64_t>(v, k, where);
    else if (k == "embed_dim") c.embed_dim = get_as<int64_t>(v, k, where);
    else if (k == "depths") c.depths = get_as<std::vector<int64_t>>(v, k, where);
    else if (k == "num_heads") c.num_heads = get_as<std::vector<int64_t>>(v, k, where);
    else if (k == "mlp_ratio") c.mlp_ratio = get_as<double>(v, k, where);
    else if (k == "qkv_bias") c.qkv_bias = get_as<bool>(v, k, where);
    else if (k == "patch_norm") c.patch_norm = get_as<bool>(v, k, where);
    else if (k == "drop_rate") c.drop_rate = get_as<double>(v, k, where);
    else if (k == "attn_drop_rate") c.attn_drop_rate = get_as<double>(v, k, where);
    else if (k == "drop_path_rate") c.drop_path_rate = get_as<double>(v, k, where);
    else if (k == "layer_norm_eps") c.layer_norm_eps = get_as<double>(v, k, where);
    else if (k == "window_clamp") c.window_clamp = get_as<bool>(v, k, where);
    else if (k == "fused_attention") c.fused_attention = get_as<bool>(v, k, where);
    else if (k == "seed") c.seed = get_as<uint64_t>(v, k, where);
  }
  if (!j.contains("name") && !j.contains("preset")) c.name = "custom";
  c.validate();
  return c;
}

nlohmann::json SwinConfig::to_json() const {
  return {{"type", "swin"},
          {"name", name},
          {"img_size", img_size},
          {"patch_size", patch_size},
          {"in_chans", in_chans},
          {"num_classes", num_classes},
          {"embed_dim", embed_dim},
          {"depths", depths},
          {"num_heads", num_heads},
          {"window_size", window_size},
          {"mlp_ratio", mlp_ratio},
          {"qkv_bias", qkv_bias},
          {"patch_norm", patch_norm},
          {"drop_rate", drop_rate},
          {"attn_drop_rate", attn_drop_rate},
          {"drop_path_rate", drop_path_rate},
          {"layer_norm_eps", layer_norm_eps},
          {"window_clamp", window_clamp},
          {"strict_img_size", strict_img_size},
          {"fused_attention", fused_attention},
          {"seed", seed}};
}

void SwinConfig::validate() const {
  const char* w = "[SwinConfig]";
  MEMEL_CHECK(img_size > 0 && patch_size > 0 && img_size >= patch_size, w, " img_size ", img_size,
              " and patch_size ", patch_size, " must be positive with img_size >= patch_size");
  MEMEL_CHECK(in_chans > 0, w, " in_chans must be positive, got ", in_chans);
  MEMEL_CHECK(num_classes >= 0, w, " num_classes must be >= 0, got ", num_classes);
  MEMEL_CHECK(embed_dim > 0, w, " embed_dim must be positive, got ", embed_dim);
  MEMEL_CHECK(!depths.empty() && depths.size() == num_heads.size(), w, " depths (", depths.size(),
              " stages) and num_heads (", num_heads.size(), ") must be non-empty and of equal length");
  for (size_t i = 0; i < depths.size(); ++i) {
    MEMEL_CHECK(depths[i] > 0, w, " depths[", i, "] must be positive, got ", depths[i]);
    const int64_t dim = embed_dim << i;
    MEMEL_CHECK(num_heads[i] > 0 && dim % num_heads[i] == 0, w, " stage ", i, ": dim ", dim,
                " is not divisible by num_heads ", num_heads[i]);
  }
  MEMEL_CHECK(window_size > 0, w, " window_size must be positive, got ", window_size);
  MEMEL_CHECK(mlp_ratio > 0, w, " mlp_ratio must be positive, got ", mlp_ratio);
  for (double p : {drop_rate, attn_drop_rate, drop_path_rate})
    MEMEL_CHECK(p >= 0.0 && p < 1.0, w, " dropout rates must be in [0, 1), got ", p);
  MEMEL_CHECK(layer_norm_eps > 0, w, " layer_norm_eps must be positive, got ", layer_norm_eps);
}

std::vector<int64_t> SwinConfig::stage_resolutions() const {
  std::vector<int64_t> r;
  int64_t s = img_size / patch_size;
  for (size_t i = 0; i < depths.size(); ++i) {
    r.push_back(s);
    s = (s + 1) / 2;
  }
  return r;
}

int64_t SwinConfig::stage_window(int64_t stage) const {
  const int64_t res = stage_resolutions().at(static_cast<size_t>(stage));
  return window_clamp && res <= window_size ? res : window_size;
}

int64_t SwinConfig::block_shift(int64_t stage, int64_t block) const {
  const int64_t res = stage_resolutions().at(static_cast<size_t>(stage));
  if (block % 2 == 0) return 0;
  if (window_clamp && res <= window_size) return 0;
  return window_size / 2;
}

// --- model -----------------------------------------------------------------------------

SwinTransformer::SwinTransformer(const SwinConfig& cfg) : Module("SwinTransformer"), cfg_(cfg), gen_(cfg.seed) {
  cfg_.validate();
  patch_embed = register_module("patch_embed", std::make_shared<PatchEmbed>(cfg_.in_chans, cfg_.embed_dim,
                                                                            cfg_.patch_size, cfg_.patch_norm,
                                                                            cfg_.layer_norm_eps));
  layers = register_module("layers", std::make_shared<Sequential>());
  int64_t total = 0;
  for (int64_t d : cfg_.depths) total += d;
  int64_t id = 0;
  for (int64_t i = 0; i < cfg_.num_stages(); ++i) {
    auto stage = std::make_shared<SwinStage>();
    stage->blocks = stage->register_module("blocks", std::make_shared<Sequential>());
    for (int64_t j = 0; j < cfg_.depths[i]; ++j, ++id) {
      SwinBlockOptions o;
      o.dim = cfg_.embed_dim << i;
      o.num_heads = cfg_.num_heads[i];
      o.window = cfg_.stage_window(i);
      o.shift = cfg_.block_shift(i, j);
      o.mlp_ratio = cfg_.mlp_ratio;
      o.qkv_bias = cfg_.qkv_bias;
      o.drop = cfg_.drop_rate;
      o.attn_drop = cfg_.attn_drop_rate;
      // Linear in the block's position over the whole network (timm's linspace).
      o.drop_path = total > 1 ? cfg_.drop_path_rate * static_cast<double>(id) / static_cast<double>(total - 1) : 0.0;
      o.eps = cfg_.layer_norm_eps;
      stage->blocks->push_back(std::make_shared<SwinBlock>(o, &gen_));
    }
    if (i + 1 < cfg_.num_stages())
      stage->downsample = stage->register_module(
          "downsample", std::make_shared<PatchMerging>(cfg_.embed_dim << i, cfg_.layer_norm_eps));
    layers->push_back(stage);
    stages.push_back(stage);
  }
  norm = register_module("norm", std::make_shared<LayerNorm>(cfg_.num_features(), cfg_.layer_norm_eps));
  if (cfg_.num_classes > 0) head = register_module("head", std::make_shared<Linear>(cfg_.num_features(), cfg_.num_classes));
  reset_parameters();
  set_fused_attention(cfg_.fused_attention);
}

void SwinTransformer::reset_parameters() {
  NoGradGuard ng;
  patch_embed->proj->reset_parameters();
  for (auto& [name, m] : named_modules()) {
    if (auto* lin = dynamic_cast<Linear*>(m.get())) {
      init::trunc_normal_(lin->weight(), 0.02);
      if (lin->bias().defined()) init::zeros_(lin->bias());
    } else if (auto* ln = dynamic_cast<LayerNorm*>(m.get())) {
      ln->reset_parameters();
    } else if (auto* wa = dynamic_cast<WindowAttention*>(m.get())) {
      Tensor* t = wa->find_tensor("relative_position_bias_table");
      if (t) init::trunc_normal_(*t, 0.02);
    }
  }
}

void SwinTransformer::reset_head() {
  if (!head) return;
  NoGradGuard ng;
  init::trunc_normal_(head->weight(), 0.02);
  init::zeros_(head->bias());
}

void SwinTransformer::set_fused_attention(bool on) {
  cfg_.fused_attention = on;
  for (auto& [name, m] : named_modules())
    if (auto* wa = dynamic_cast<WindowAttention*>(m.get())) wa->set_fused(on);
}

Tensor SwinTransformer::forward_tokens(const Tensor& images) {
  MEMEL_CHECK(images.dim() == 4 && images.size(1) == cfg_.in_chans, "[SwinTransformer] expected images (B, ",
              cfg_.in_chans, ", H, W), got ", shape_str(images.shape()));
  if (cfg_.strict_img_size && (images.size(2) != cfg_.img_size || images.size(3) != cfg_.img_size)) {
    std::string windows;
    for (int64_t i = 0; i < cfg_.num_stages(); ++i)
      windows += str_cat(i ? ", " : "", cfg_.stage_window(i), cfg_.block_shift(i, 1) ? " shifted" : "");
    const int64_t h = images.size(2), w = images.size(3);
    MEMEL_FAIL("[SwinTransformer] images of ", h, "x", w, ", but the model's windows were built for img_size ",
               cfg_.img_size, "x", cfg_.img_size, " (stage windows: ", windows, "); resize the images to ",
               cfg_.img_size, "x", cfg_.img_size,
               h == w ? str_cat(" or build the model with img_size = ", h) : std::string(),
               " (strict_img_size = false runs other sizes with these windows)");
  }
  Tensor x = (*patch_embed)(images);  // (B, H/p, W/p, C)
  x = (*layers)(x);                   // (B, h, w, F)
  return (*norm)(x);
}

Tensor SwinTransformer::forward_features(const Tensor& images) {
  return mean(forward_tokens(images), {1, 2});  // (B, F)
}

Tensor SwinTransformer::forward(const Tensor& images) {
  Tensor f = forward_features(images);
  return head ? (*head)(f) : f;  // (B, classes)
}

std::string SwinTransformer::extra_repr() const {
  std::string d, h;
  for (size_t i = 0; i < cfg_.depths.size(); ++i) {
    d += (i ? "-" : "") + std::to_string(cfg_.depths[i]);
    h += (i ? "-" : "") + std::to_string(cfg_.num_heads[i]);
  }
  return str_cat("name=", cfg_.name, ", img_size=", cfg_.img_size, ", patch_size=", cfg_.patch_size,
                 ", embed_dim=", cfg_.embed_dim, ", depths=", d, ", num_heads=", h, ", window_size=",
                 cfg_.window_size, ", num_classes=", cfg_.num_classes);
}

// --- memel placement -------------------------------------------------------------------

std::vector<std::string> paper_memel_targets(const SwinConfig& cfg) {
  const int64_t stage = std::min<int64_t>(2, cfg.num_stages() - 1);
  const int64_t d = cfg.depths[static_cast<size_t>(stage)];
  const int64_t lo = std::max<int64_t>(0, d / 2 - 2), hi = std::min<int64_t>(d - 1, d / 2 + 1);
  std::vector<std::string> r;
  for (int64_t j = lo; j <= hi; ++j) r.push_back(str_cat("layers.", stage, ".blocks.", j));
  return r;
}

std::vector<std::string> paper_memel_targets(const SwinTransformer& model) {
  return paper_memel_targets(model.config());
}

std::vector<std::string> SwinTransformer::paper_memel_targets() const { return memel::paper_memel_targets(cfg_); }

// --- names -----------------------------------------------------------------------------

const char* swin_naming_name(SwinNaming n) {
  switch (n) {
    case SwinNaming::Authors: return "authors/timm<0.9";
    case SwinNaming::TimmNew: return "timm>=0.9";
    case SwinNaming::Torchvision: return "torchvision";
  }
  return "?";
}

SwinNaming detect_swin_naming(const StateDict& sd) {
  if (sd.count("features.0.0.weight")) return SwinNaming::Torchvision;
  if (sd.count("head.fc.weight")) return SwinNaming::TimmNew;
  if (sd.count("layers.0.downsample.reduction.weight")) return SwinNaming::Authors;
  if (sd.count("layers.1.downsample.reduction.weight")) return SwinNaming::TimmNew;
  return SwinNaming::Authors;
}

namespace {

// Splits "a.b.c" at dots.
std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t dot = s.find('.', start);
    parts.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string join_dots(const std::vector<std::string>& parts, size_t from) {
  std::string r;
  for (size_t i = from; i < parts.size(); ++i) r += (i > from ? "." : "") + parts[i];
  return r;
}

bool is_uint(const std::string& s) { return !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit); }

// Block-internal names: ours (mlp.fc1/fc2) <-> torchvision (mlp.0/mlp.3).
std::string block_to_tv(const std::string& rest) {
  if (rest.rfind("mlp.fc1.", 0) == 0) return "mlp.0." + rest.substr(8);
  if (rest.rfind("mlp.fc2.", 0) == 0) return "mlp.3." + rest.substr(8);
  return rest;
}
std::string block_from_tv(const std::string& rest) {
  if (rest.rfind("mlp.0.", 0) == 0) return "mlp.fc1." + rest.substr(6);
  if (rest.rfind("mlp.3.", 0) == 0) return "mlp.fc2." + rest.substr(6);
  return rest;
}

}  // namespace

std::string swin_name_to_torchvision(const std::string& name) {
  if (name.rfind("patch_embed.proj.", 0) == 0) return "features.0.0." + name.substr(17);
  if (name.rfind("patch_embed.norm.", 0) == 0) return "features.0.2." + name.substr(17);
  auto p = split_dots(name);
  if (p.size() >= 4 && p[0] == "layers" && is_uint(p[1])) {
    const int64_t i = std::stoll(p[1]);
    if (p[2] == "blocks" && is_uint(p[3]) && p.size() >= 5)
      return str_cat("features.", 2 * i + 1, ".", p[3], ".", block_to_tv(join_dots(p, 4)));
    if (p[2] == "downsample") return str_cat("features.", 2 * i + 2, ".", join_dots(p, 3));
  }
  return name;
}

std::string swin_name_from_torchvision(const std::string& name) {
  if (name.rfind("features.0.0.", 0) == 0) return "patch_embed.proj." + name.substr(13);
  if (name.rfind("features.0.2.", 0) == 0) return "patch_embed.norm." + name.substr(13);
  auto p = split_dots(name);
  if (p.size() >= 3 && p[0] == "features" && is_uint(p[1])) {
    const int64_t f = std::stoll(p[1]);
    if (f >= 1 && f % 2 == 1 && is_uint(p[2]) && p.size() >= 4)
      return str_cat("layers.", (f - 1) / 2, ".blocks.", p[2], ".", block_from_tv(join_dots(p, 3)));
    if (f >= 2 && f % 2 == 0) return str_cat("layers.", (f - 2) / 2, ".downsample.", join_dots(p, 2));
  }
  return name;
}

StateDict swin_from_torchvision(const StateDict& sd) {
  StateDict r;
  for (auto& [k, v] : sd) r[swin_name_from_torchvision(k)] = v;
  return r;
}

StateDict swin_to_torchvision(const StateDict& sd) {
  StateDict r;
  for (auto& [k, v] : sd) r[swin_name_to_torchvision(k)] = v;
  return r;
}

StateDict swin_from_timm_new(const StateDict& sd) {
  StateDict r;
  for (auto& [k, v] : sd) {
    auto p = split_dots(k);
    std::string name = k;
    if (p.size() >= 4 && p[0] == "layers" && is_uint(p[1]) && p[2] == "downsample") {
      const int64_t i = std::stoll(p[1]);
      MEMEL_CHECK(i >= 1, "[load_swin_weights] timm>=0.9 names: unexpected downsample in layers.0 ('", k, "')");
      name = str_cat("layers.", i - 1, ".downsample.", join_dots(p, 3));
    } else if (k.rfind("head.fc.", 0) == 0) {
      name = "head." + k.substr(8);
    }
    r[name] = v;
  }
  return r;
}

// --- loading ---------------------------------------------------------------------------

SwinLoadReport load_swin_weights(SwinTransformer& model, const StateDict& sd_in, bool strict, std::ostream* log) {
  SwinLoadReport rep;
  rep.naming = detect_swin_naming(sd_in);
  StateDict sd = rep.naming == SwinNaming::Torchvision ? swin_from_torchvision(sd_in)
                 : rep.naming == SwinNaming::TimmNew   ? swin_from_timm_new(sd_in)
                                                       : sd_in;
  std::vector<std::string> lines;
  if (rep.naming != SwinNaming::Authors)
    lines.push_back(str_cat("converted ", swin_naming_name(rep.naming), " names to the authors' names"));
  // Buffers we recompute: the authors' files carry them.
  for (auto it = sd.begin(); it != sd.end();) {
    const std::string& k = it->first;
    auto ends_with = [&](const std::string& suf) {
      return k.size() >= suf.size() && k.compare(k.size() - suf.size(), suf.size(), suf) == 0;
    };
    if (ends_with("relative_position_index") || ends_with("attn_mask") || ends_with("relative_coords_table")) {
      rep.ignored.push_back(k);
      it = sd.erase(it);
    } else {
      ++it;
    }
  }
  if (!rep.ignored.empty()) lines.push_back(str_cat("ignored ", rep.ignored.size(), " recomputed buffers (relative_position_index, attn_mask)"));
  // A head of another shape: re-initialise it.
  StateDict mine = model.state_dict();
  bool head_differs = false;
  std::string head_note;
  for (const char* hn : {"head.weight", "head.bias"}) {
    auto f = sd.find(hn);
    auto m = mine.find(hn);
    if (f != sd.end() && (m == mine.end() || m->second.shape() != f->second.shape())) {
      head_differs = true;
      head_note = str_cat("file ", shape_str(sd.at("head.weight").shape()), " vs model ",
                          m == mine.end() ? std::string("none") : shape_str(mine.at("head.weight").shape()));
    }
  }
  if (head_differs) {
    sd.erase("head.weight");
    sd.erase("head.bias");
    if (model.head) {
      model.reset_head();
      rep.reinitialized = {"head.weight", "head.bias"};
    }
    lines.push_back(str_cat("re-initialised the classifier head (", head_note, "): ",
                            model.head ? "head.weight, head.bias" : "model has no head, dropped"));
  }
  // Memel layers attached to the model may be absent from the file.
  prepare_memel_layers_for_load(model, sd);
  std::vector<std::string> memel_prefixes;
  for (auto& [name, layer] : memel_layers(model)) memel_prefixes.push_back(name + ".");
  LoadReport lr = model.load_state_dict(sd, /*strict=*/false);
  std::vector<std::string> missing;
  for (auto& k : lr.missing) {
    bool is_memel = std::any_of(memel_prefixes.begin(), memel_prefixes.end(),
                                [&](const std::string& p) { return k.rfind(p, 0) == 0; });
    if (is_memel) rep.memel_missing.push_back(k);
    else if (!(head_differs && (k == "head.weight" || k == "head.bias"))) missing.push_back(k);
  }
  if (!rep.memel_missing.empty())
    lines.push_back(str_cat(rep.memel_missing.size(), " memel state tensors not in the file: left fresh"));
  lr.missing = missing;
  if (strict && !lr.ok()) MEMEL_FAIL("[load_swin_weights] ", lr.str());
  if (!lr.ok()) lines.push_back(lr.str());
  for (size_t i = 0; i < lines.size(); ++i) rep.message += (i ? "\n" : "") + lines[i];
  if (log && !rep.message.empty()) *log << "[load_swin_weights] " << rep.message << "\n";
  return rep;
}

SwinLoadReport load_swin_weights(SwinTransformer& model, const std::string& path, bool strict, std::ostream* log) {
  TensorFile f = load_safetensors(path);
  StateDict sd(f.tensors.begin(), f.tensors.end());
  try {
    return load_swin_weights(model, sd, strict, log);
  } catch (const Error& e) {
    MEMEL_FAIL("[load_swin_weights] ", path, ": ", e.what());
  }
}

void save_swin_weights(const SwinTransformer& model, const std::string& path) {
  StateDict sd = model.state_dict();
  save_safetensors(path, std::map<std::string, Tensor>(sd.begin(), sd.end()),
                   {{"swin_config", model.config().to_json().dump()}, {"format", "pt"}});
}

}  // namespace memel
