#include "models/convgru.h"

#include <algorithm>

#include "layers/activation.h"

namespace memel {

namespace {

using json = nlohmann::json;

NowcastConvSpec conv_spec(int64_t ch, int k, int s, int p) {
  NowcastConvSpec c;
  c.channels = ch;
  c.kernel = Size2(k);
  c.stride = Size2(s);
  c.padding = Size2(p);
  return c;
}

NowcastRnnSpec rnn_spec(int64_t ch, int h2h_kernel) {
  NowcastRnnSpec r;
  r.channels = ch;
  r.h2h_kernel = Size2(h2h_kernel);
  return r;
}

// The HKO-7 benchmark's ConvGRU architecture for a given frame size.
ConvGRUConfig hko7_architecture(const std::string& name, int frame) {
  ConvGRUConfig c;
  c.name = name;
  c.in_frames = 5;
  c.out_frames = 20;
  c.frame_size = Size2(frame);
  c.first_conv = conv_spec(8, 7, 5, 1);
  c.rnn = {rnn_spec(64, 5), rnn_spec(192, 5), rnn_spec(192, 3)};
  c.downsample = {conv_spec(192, 5, 3, 1), conv_spec(192, 3, 2, 1)};
  c.upsample = {conv_spec(192, 4, 2, 1), conv_spec(64, 5, 3, 1)};
  c.last_deconv = conv_spec(8, 7, 5, 1);
  c.final_conv = conv_spec(8, 3, 1, 1);
  return c;
}

// Small three-level models for CPU runs: 64 -> 32 -> 16 -> 8 (mmnist) or
// 96 -> 32 -> 16 -> 8 (radar), 16/32/32 hidden channels.
ConvGRUConfig small_architecture(const std::string& name, int frame, int first_k, int first_s) {
  ConvGRUConfig c;
  c.name = name;
  c.frame_size = Size2(frame);
  c.first_conv = conv_spec(8, first_k, first_s, 1);
  c.rnn = {rnn_spec(16, 5), rnn_spec(32, 5), rnn_spec(32, 3)};
  c.downsample = {conv_spec(32, 4, 2, 1), conv_spec(32, 4, 2, 1)};
  c.upsample = {conv_spec(32, 4, 2, 1), conv_spec(16, 4, 2, 1)};
  c.last_deconv = conv_spec(8, first_k, first_s, 1);
  c.final_conv = conv_spec(8, 3, 1, 1);
  return c;
}

Size2 parse_size2(const json& v, const std::string& key) {
  if (v.is_number_integer()) return Size2(v.get<int>());
  MEMEL_CHECK(v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer(), "[config] ",
              key, ": expected an int or [h, w], got ", v.dump());
  return Size2(v[0].get<int>(), v[1].get<int>());
}

json size2_json(Size2 s) { return s.h == s.w ? json(s.h) : json::array({s.h, s.w}); }

int64_t parse_int(const json& v, const std::string& key) {
  MEMEL_CHECK(v.is_number_integer(), "[config] ", key, ": expected an integer, got ", v.dump());
  return v.get<int64_t>();
}

void check_object(const json& j, const std::string& key) {
  MEMEL_CHECK(j.is_object(), "[config] ", key, ": expected an object, got ", j.dump());
}

void parse_conv(const json& j, const std::string& key, NowcastConvSpec& c) {
  check_object(j, key);
  for (auto& [k, v] : j.items()) {
    const std::string kk = key + "." + k;
    if (k == "channels") c.channels = parse_int(v, kk);
    else if (k == "kernel") c.kernel = parse_size2(v, kk);
    else if (k == "stride") c.stride = parse_size2(v, kk);
    else if (k == "padding") c.padding = parse_size2(v, kk);
    else if (k == "output_padding") c.output_padding = parse_size2(v, kk);
    else MEMEL_FAIL("[config] unknown key '", kk, "' (convolution keys: channels, kernel, stride, padding, output_padding)");
  }
}

void parse_rnn(const json& j, const std::string& key, NowcastRnnSpec& r) {
  check_object(j, key);
  for (auto& [k, v] : j.items()) {
    const std::string kk = key + "." + k;
    if (k == "channels") r.channels = parse_int(v, kk);
    else if (k == "i2h_kernel") r.i2h_kernel = parse_size2(v, kk);
    else if (k == "i2h_stride") r.i2h_stride = parse_size2(v, kk);
    else if (k == "i2h_padding") r.i2h_padding = parse_size2(v, kk);
    else if (k == "i2h_dilation") r.i2h_dilation = parse_size2(v, kk);
    else if (k == "h2h_kernel") r.h2h_kernel = parse_size2(v, kk);
    else if (k == "h2h_dilation") r.h2h_dilation = parse_size2(v, kk);
    else
      MEMEL_FAIL("[config] unknown key '", kk, "' (rnn keys: channels, i2h_kernel, i2h_stride, i2h_padding, "
                 "i2h_dilation, h2h_kernel, h2h_dilation)");
  }
}

json conv_json(const NowcastConvSpec& c, bool transposed) {
  json j = {{"channels", c.channels}, {"kernel", size2_json(c.kernel)}, {"stride", size2_json(c.stride)},
            {"padding", size2_json(c.padding)}};
  if (transposed) j["output_padding"] = size2_json(c.output_padding);
  return j;
}

int conv_out(int n, int k, int s, int p, int d = 1) { return (n + 2 * p - d * (k - 1) - 1) / s + 1; }
Size2 conv_out(Size2 in, const NowcastConvSpec& c) {
  return Size2(conv_out(in.h, c.kernel.h, c.stride.h, c.padding.h), conv_out(in.w, c.kernel.w, c.stride.w, c.padding.w));
}
Size2 deconv_out(Size2 in, const NowcastConvSpec& c) {
  return Size2((in.h - 1) * c.stride.h - 2 * c.padding.h + c.kernel.h + c.output_padding.h,
               (in.w - 1) * c.stride.w - 2 * c.padding.w + c.kernel.w + c.output_padding.w);
}
Size2 rnn_state(Size2 in, const NowcastRnnSpec& r) {
  return Size2(conv_out(in.h, r.i2h_kernel.h, r.i2h_stride.h, r.i2h_padding.h, r.i2h_dilation.h),
               conv_out(in.w, r.i2h_kernel.w, r.i2h_stride.w, r.i2h_padding.w, r.i2h_dilation.w));
}

std::shared_ptr<Module> activation_module(const ConvGRUConfig& c) {
  if (c.cnn_activation == "relu") return std::make_shared<ReLU>();
  if (c.cnn_activation == "tanh") return std::make_shared<Tanh>();
  return std::make_shared<LeakyReLU>(c.leaky_slope);
}

std::shared_ptr<Conv2d> make_conv(int64_t in, const NowcastConvSpec& c) {
  return std::make_shared<Conv2d>(in, c.channels, c.kernel, ConvArgs().with_stride(c.stride).with_padding(c.padding));
}

std::shared_ptr<ConvTranspose2d> make_deconv(int64_t in, const NowcastConvSpec& c) {
  return std::make_shared<ConvTranspose2d>(
      in, c.channels, c.kernel,
      ConvArgs().with_stride(c.stride).with_padding(c.padding).with_output_padding(c.output_padding));
}

// Runs a per-frame module over (B, T, C, H, W) as one batch of B*T frames.
Tensor per_frame(Module& m, const Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1);
  Tensor y = m(reshape(x, {B * T, x.size(2), x.size(3), x.size(4)}));
  return reshape(y, {B, T, y.size(1), y.size(2), y.size(3)});
}

}  // namespace

// --- config ---------------------------------------------------------------------------

std::vector<std::string> ConvGRUConfig::preset_names() {
  return {"hko7", "convgru-w4", "convgru-mmnist", "convgru-radar"};
}

ConvGRUConfig ConvGRUConfig::preset(const std::string& name) {
  if (name == "hko7") return hko7_architecture(name, 480);
  if (name == "convgru-w4") return hko7_architecture(name, 240);
  if (name == "convgru-mmnist") {
    ConvGRUConfig c = small_architecture(name, 64, 4, 2);  // 64 -> 32 -> 16 -> 8
    c.in_frames = 10;
    c.out_frames = 10;
    return c;
  }
  if (name == "convgru-radar") {
    ConvGRUConfig c = small_architecture(name, 96, 5, 3);  // 96 -> 32 -> 16 -> 8
    c.in_frames = 5;
    c.out_frames = 10;
    return c;
  }
  std::string all;
  for (auto& n : preset_names()) all += (all.empty() ? "" : ", ") + n;
  MEMEL_FAIL("[ConvGRUConfig] unknown preset '", name, "' (presets: ", all, ")");
}

ConvGRUConfig ConvGRUConfig::from_json(const json& j, const std::string& where) {
  check_object(j, where);
  ConvGRUConfig c;
  if (j.contains("preset")) {
    MEMEL_CHECK(j["preset"].is_string(), "[config] ", where, ".preset: expected a string, got ", j["preset"].dump());
    c = preset(j["preset"].get<std::string>());
  }
  for (auto& [k, v] : j.items()) {
    const std::string key = where + "." + k;
    if (k == "preset") continue;
    if (k == "name") {
      MEMEL_CHECK(v.is_string(), "[config] ", key, ": expected a string");
      c.name = v.get<std::string>();
    } else if (k == "in_frames") {
      c.in_frames = parse_int(v, key);
    } else if (k == "out_frames") {
      c.out_frames = parse_int(v, key);
    } else if (k == "frame_size") {
      c.frame_size = parse_size2(v, key);
    } else if (k == "frame_channels") {
      c.frame_channels = parse_int(v, key);
    } else if (k == "first_conv") {
      parse_conv(v, key, c.first_conv);
    } else if (k == "last_deconv") {
      parse_conv(v, key, c.last_deconv);
    } else if (k == "final_conv") {
      parse_conv(v, key, c.final_conv);
    } else if (k == "downsample" || k == "upsample") {
      MEMEL_CHECK(v.is_array(), "[config] ", key, ": expected a list of convolutions");
      auto& list = k == "downsample" ? c.downsample : c.upsample;
      // A list of the same length overrides entry by entry; otherwise it replaces.
      if (list.size() != v.size()) list.assign(v.size(), NowcastConvSpec());
      for (size_t i = 0; i < v.size(); ++i) parse_conv(v[i], key + "[" + std::to_string(i) + "]", list[i]);
    } else if (k == "rnn") {
      MEMEL_CHECK(v.is_array(), "[config] ", key, ": expected a list of cells");
      if (c.rnn.size() != v.size()) c.rnn.assign(v.size(), NowcastRnnSpec());
      for (size_t i = 0; i < v.size(); ++i) parse_rnn(v[i], key + "[" + std::to_string(i) + "]", c.rnn[i]);
    } else if (k == "rnn_activation" || k == "cnn_activation") {
      MEMEL_CHECK(v.is_string(), "[config] ", key, ": expected a string");
      (k == "rnn_activation" ? c.rnn_activation : c.cnn_activation) = v.get<std::string>();
    } else if (k == "leaky_slope") {
      MEMEL_CHECK(v.is_number(), "[config] ", key, ": expected a number");
      c.leaky_slope = v.get<double>();
    } else {
      MEMEL_FAIL("[config] unknown key '", key, "' (model keys: preset, name, in_frames, out_frames, frame_size, "
                 "frame_channels, first_conv, downsample, rnn, upsample, last_deconv, final_conv, rnn_activation, "
                 "cnn_activation, leaky_slope)");
    }
  }
  c.validate();
  return c;
}

json ConvGRUConfig::to_json() const {
  json j;
  j["name"] = name;
  j["in_frames"] = in_frames;
  j["out_frames"] = out_frames;
  j["frame_size"] = json::array({frame_size.h, frame_size.w});
  j["frame_channels"] = frame_channels;
  j["first_conv"] = conv_json(first_conv, false);
  j["downsample"] = json::array();
  for (auto& d : downsample) j["downsample"].push_back(conv_json(d, false));
  j["rnn"] = json::array();
  for (auto& r : rnn)
    j["rnn"].push_back({{"channels", r.channels}, {"i2h_kernel", size2_json(r.i2h_kernel)},
                        {"i2h_stride", size2_json(r.i2h_stride)}, {"i2h_padding", size2_json(r.i2h_padding)},
                        {"i2h_dilation", size2_json(r.i2h_dilation)}, {"h2h_kernel", size2_json(r.h2h_kernel)},
                        {"h2h_dilation", size2_json(r.h2h_dilation)}});
  j["upsample"] = json::array();
  for (auto& u : upsample) j["upsample"].push_back(conv_json(u, true));
  j["last_deconv"] = conv_json(last_deconv, true);
  j["final_conv"] = conv_json(final_conv, false);
  j["rnn_activation"] = rnn_activation;
  j["cnn_activation"] = cnn_activation;
  j["leaky_slope"] = leaky_slope;
  return j;
}

std::vector<Size2> ConvGRUConfig::feature_sizes() const {
  std::vector<Size2> sizes;
  Size2 s = frame_size;
  for (size_t k = 0; k < rnn.size(); ++k) {
    s = conv_out(s, k == 0 ? first_conv : downsample[k - 1]);
    s = rnn_state(s, rnn[k]);
    sizes.push_back(s);
  }
  return sizes;
}

void ConvGRUConfig::validate() const {
  const std::string w = "[ConvGRUConfig " + name + "] ";
  MEMEL_CHECK(in_frames > 0 && out_frames > 0, w, "in_frames and out_frames must be positive, got ", in_frames, " and ",
              out_frames);
  MEMEL_CHECK(frame_size.h > 0 && frame_size.w > 0 && frame_channels > 0, w,
              "frame_size and frame_channels must be positive");
  MEMEL_CHECK(!rnn.empty(), w, "needs at least one rnn level");
  MEMEL_CHECK(downsample.size() + 1 == rnn.size() && upsample.size() + 1 == rnn.size(), w, rnn.size(),
              " rnn levels need ", rnn.size() - 1, " downsample and upsample entries, got ", downsample.size(), " and ",
              upsample.size());
  MEMEL_CHECK(rnn_activation == "leaky" || rnn_activation == "tanh", w,
              "rnn_activation must be \"leaky\" or \"tanh\", got \"", rnn_activation, "\"");
  MEMEL_CHECK(cnn_activation == "leaky" || cnn_activation == "relu" || cnn_activation == "tanh", w,
              "cnn_activation must be \"leaky\", \"relu\" or \"tanh\", got \"", cnn_activation, "\"");
  auto check_conv = [&](const NowcastConvSpec& c, const std::string& what) {
    MEMEL_CHECK(c.channels > 0 && c.kernel.h > 0 && c.kernel.w > 0 && c.stride.h > 0 && c.stride.w > 0 &&
                    c.padding.h >= 0 && c.padding.w >= 0,
                w, what, ": channels, kernel and stride must be positive and padding non-negative");
  };
  check_conv(first_conv, "first_conv");
  check_conv(last_deconv, "last_deconv");
  check_conv(final_conv, "final_conv");
  for (size_t i = 0; i < downsample.size(); ++i) check_conv(downsample[i], str_cat("downsample[", i, "]"));
  for (size_t i = 0; i < upsample.size(); ++i) check_conv(upsample[i], str_cat("upsample[", i, "]"));
  for (size_t i = 0; i < rnn.size(); ++i)
    MEMEL_CHECK(rnn[i].channels > 0 && rnn[i].h2h_kernel.h % 2 == 1 && rnn[i].h2h_kernel.w % 2 == 1, w, "rnn[", i,
                "]: channels must be positive and h2h_kernel odd");
  // Sizes: encoder bottom up, forecaster top down; each forecaster level must land on
  // the encoder's size so the encoder's state fits.
  std::string enc = frame_size.str(), trace;
  Size2 s = frame_size;
  std::vector<Size2> levels;
  for (size_t k = 0; k < rnn.size(); ++k) {
    s = conv_out(s, k == 0 ? first_conv : downsample[k - 1]);
    s = rnn_state(s, rnn[k]);
    MEMEL_CHECK(s.h > 0 && s.w > 0, w, "encoder level ", k + 1, " has no pixels left (sizes ", enc, " -> ", s.str(),
                ")");
    enc += " -> " + s.str();
    levels.push_back(s);
  }
  const size_t L = rnn.size();
  Size2 f = levels[L - 1];
  trace = f.str();
  for (size_t k = L - 1; k >= 1; --k) {
    f = deconv_out(f, upsample[L - 1 - k]);
    f = rnn_state(f, rnn[k - 1]);
    trace += " -> " + f.str();
    MEMEL_CHECK(f == levels[k - 1], w, "forecaster level ", k, " is ", f.str(), " but the encoder's is ",
                levels[k - 1].str(), " (encoder ", enc, "; forecaster ", trace, ")");
  }
  f = deconv_out(f, last_deconv);
  f = conv_out(f, final_conv);
  trace += " -> " + f.str();
  MEMEL_CHECK(f == frame_size, w, "the forecaster ends at ", f.str(), ", not the frame size ", frame_size.str(),
              " (encoder ", enc, "; forecaster ", trace, ")");
}

// --- model ----------------------------------------------------------------------------

EncoderForecaster::EncoderForecaster(const ConvGRUConfig& cfg) : Module("EncoderForecaster"), cfg_(cfg) {
  cfg_.validate();
  const size_t L = cfg_.rnn.size();
  encoder_ = register_module("encoder", std::make_shared<Module>("Encoder"));
  forecaster_ = register_module("forecaster", std::make_shared<Module>("Forecaster"));
  auto cell = [&](int64_t in, const NowcastRnnSpec& r) {
    ConvGRUOptions o;
    o.input_channels = in;
    o.hidden_channels = r.channels;
    o.i2h_kernel = r.i2h_kernel;
    o.i2h_stride = r.i2h_stride;
    o.i2h_padding = r.i2h_padding;
    o.i2h_dilation = r.i2h_dilation;
    o.h2h_kernel = r.h2h_kernel;
    o.h2h_dilation = r.h2h_dilation;
    o.activation = cfg_.rnn_activation;
    o.leaky_slope = cfg_.leaky_slope;
    return std::make_shared<ConvGRUCell>(o);
  };
  // Encoder, bottom up.
  int64_t ch = cfg_.frame_channels;
  for (size_t k = 0; k < L; ++k) {
    const NowcastConvSpec& c = k == 0 ? cfg_.first_conv : cfg_.downsample[k - 1];
    auto stage = std::make_shared<Sequential>();
    stage->push_back(make_conv(ch, c));
    stage->push_back(activation_module(cfg_));
    enc_stages_.push_back(stage);
    enc_rnns_.push_back(cell(c.channels, cfg_.rnn[k]));
    ch = cfg_.rnn[k].channels;
  }
  for (size_t k = 0; k < L; ++k) {
    encoder_->register_module("stage" + std::to_string(k + 1), enc_stages_[k]);
    encoder_->register_module("rnn" + std::to_string(k + 1), enc_rnns_[k]);
  }
  // Forecaster, top down: rnn k gets the output of stage k+1 (none for the top).
  fc_stages_.resize(L);
  fc_rnns_.resize(L);
  for (size_t k = L; k >= 1; --k) {
    const int64_t in = k == L ? 0 : cfg_.upsample[L - 1 - k].channels;
    fc_rnns_[k - 1] = cell(in, cfg_.rnn[k - 1]);
    auto stage = std::make_shared<Sequential>();
    const int64_t hid = cfg_.rnn[k - 1].channels;
    if (k > 1) {
      stage->push_back(make_deconv(hid, cfg_.upsample[L - k]));
      stage->push_back(activation_module(cfg_));
    } else {
      stage->push_back(make_deconv(hid, cfg_.last_deconv));
      stage->push_back(activation_module(cfg_));
      stage->push_back(make_conv(cfg_.last_deconv.channels, cfg_.final_conv));
      stage->push_back(activation_module(cfg_));
      NowcastConvSpec out;
      out.channels = cfg_.frame_channels;
      out.kernel = Size2(1);
      stage->push_back(make_conv(cfg_.final_conv.channels, out));
    }
    fc_stages_[k - 1] = stage;
    forecaster_->register_module("rnn" + std::to_string(k), fc_rnns_[k - 1]);
    forecaster_->register_module("stage" + std::to_string(k), stage);
  }
}

std::vector<Tensor> EncoderForecaster::encode(const Tensor& x) {
  MEMEL_CHECK(x.dim() == 5 && x.size(1) == cfg_.in_frames && x.size(2) == cfg_.frame_channels &&
                  x.size(3) == cfg_.frame_size.h && x.size(4) == cfg_.frame_size.w,
              "[EncoderForecaster ", cfg_.name, "] input must be (B, ", cfg_.in_frames, ", ", cfg_.frame_channels, ", ",
              cfg_.frame_size.h, ", ", cfg_.frame_size.w, "), got ", shape_str(x.shape()));
  std::vector<Tensor> states;
  Tensor seq = x;  // (B, T, C, H, W)
  for (size_t k = 0; k < enc_rnns_.size(); ++k) {
    seq = per_frame(*enc_stages_[k], seq);         // (B, T, c_k, h_k, w_k)
    seq = enc_rnns_[k]->forward_sequence(seq);     // (B, T, C_k, h_k, w_k)
    states.push_back(select(seq, 1, seq.size(1) - 1));  // (B, C_k, h_k, w_k)
  }
  return states;
}

Tensor EncoderForecaster::forecast(const std::vector<Tensor>& states) {
  const size_t L = fc_rnns_.size();
  MEMEL_CHECK(states.size() == L, "[EncoderForecaster] forecast needs ", L, " states, got ", states.size());
  Tensor seq;
  for (size_t k = L; k >= 1; --k) {
    seq = k == L ? fc_rnns_[k - 1]->unroll(states[k - 1], cfg_.out_frames)
                 : fc_rnns_[k - 1]->forward_sequence(seq, states[k - 1]);  // (B, T_out, C_k, h_k, w_k)
    seq = per_frame(*fc_stages_[k - 1], seq);
  }
  return seq;  // (B, T_out, C, H, W)
}

Tensor EncoderForecaster::forward(const Tensor& x) { return forecast(encode(x)); }

std::string EncoderForecaster::extra_repr() const {
  return str_cat("name=", cfg_.name, ", frames=", cfg_.in_frames, "->", cfg_.out_frames, ", size=",
                 cfg_.frame_size.str());
}

std::vector<std::string> paper_memel_targets(const ConvGRUConfig& cfg) {
  std::vector<std::string> t;
  const size_t L = cfg.rnn.size();
  for (size_t k = 1; k <= L; ++k) t.push_back("encoder.rnn" + std::to_string(k) + ":candidate");
  for (size_t k = L; k >= 1; --k) t.push_back("forecaster.rnn" + std::to_string(k) + ":candidate");
  return t;
}

std::vector<std::string> paper_memel_targets(const EncoderForecaster& model) {
  return paper_memel_targets(model.config());
}

std::vector<std::string> EncoderForecaster::paper_memel_targets() const { return memel::paper_memel_targets(cfg_); }

}  // namespace memel
