// Writes the seed corpus of every fuzz target (fuzz_<target> reads OUT/<target>/):
// small valid inputs made with memel's own writers, plus the shipped configs and the
// GLUE test fixtures.   usage: fuzz_make_corpus OUT_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <stb_image_write.h>

#include "autograd/ops.h"
#include "core/safetensors.h"
#include "data/glue.h"
#include "data/idx.h"
#include "fuzz_common.h"
#include "memel/dump.h"
#include "memel/layer.h"
#include "models/small.h"
#include "optim/adamw.h"
#include "tensor/tensor_io.h"

using namespace memel;
namespace fs = std::filesystem;

namespace {

std::string g_out;
std::map<std::string, int> g_count;

void seed(const std::string& target, const std::string& bytes) {
  fs::create_directories(g_out + "/" + target);
  char name[32];
  std::snprintf(name, sizeof name, "seed-%03d", g_count[target]++);
  fuzz::write_bytes(g_out + "/" + target + "/" + name, bytes);
}

std::string slurp(const std::string& path, size_t max = std::string::npos) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > max) s.resize(max);
  return s;
}

std::string sep() { return std::string(fuzz::kSep); }

std::shared_ptr<MLP> tiny_mlp() {
  MLPConfig c;
  c.in_features = 3;
  c.hidden = {2};
  c.num_classes = 2;
  c.dropout = 0;
  return std::make_shared<MLP>(c);
}

void safetensors_seeds(const std::string& tmp) {
  std::map<std::string, Tensor> t = {{"w", Tensor::from_vector(std::vector<float>{1, -2, 3.5f, 0, 1e-3f, 7}, {2, 3})},
                                     {"b", Tensor::from_vector(std::vector<int64_t>{1, 2, 3}, {3})},
                                     {"d", Tensor::from_vector(std::vector<double>{3.25}, {})},
                                     {"i", Tensor::from_vector(std::vector<int32_t>{}, {0})}};
  seed("safetensors", save_safetensors_to_memory(t, {{"format", "pt"}}));
  auto m = tiny_mlp();
  std::map<std::string, Tensor> params;
  for (auto& [k, p] : m->named_parameters()) params[k] = p;
  seed("safetensors", save_safetensors_to_memory(params, {{"format", "pt"}}));
  // An optimizer state after one step (what a checkpoint's optimizer.safetensors holds).
  AdamW opt(param_groups_with_decay(*m, 0.01), AdamWOptions{});
  backward(sum((*m)(Tensor::ones({1, 3}))));
  opt.step();
  save_optimizer_state(tmp + "/opt.safetensors", opt.state_dict());
  seed("safetensors", slurp(tmp + "/opt.safetensors"));
  // The dtypes memel converts on reading.
  const unsigned char raw[16] = {0, 60, 0, 192, 128, 63, 1, 0, 255, 127, 1, 2, 3, 4, 5, 6};
  std::vector<SafetensorsItem> items = {{"h", "F16", {2}, raw, 4},       {"bf", "BF16", {2}, raw + 4, 4},
                                        {"u8", "U8", {2}, raw + 8, 2},   {"bool", "BOOL", {1}, raw + 10, 1},
                                        {"i8", "I8", {1}, raw + 11, 1},  {"i16", "I16", {1}, raw + 12, 2},
                                        {"u16", "U16", {1}, raw + 14, 2}, {"u32", "U32", {1}, raw, 4},
                                        {"u64", "U64", {1}, raw + 8, 8}};
  seed("safetensors", serialize_safetensors(items, {{"note", "dtypes"}}));
  seed("safetensors", serialize_safetensors({}));
}

void idx_seeds(const std::string& tmp) {
  const Tensor a = Tensor::from_vector(std::vector<float>{0, 1, 2, 200, 255, 7}, {2, 3});
  const Tensor b = Tensor::from_vector(std::vector<float>{1, -2, 3, -4, 5, -6, 7, -8}, {2, 2, 2});
  int k = 0;
  for (IdxType ty : {IdxType::U8, IdxType::I8, IdxType::I16, IdxType::I32, IdxType::F32, IdxType::F64})
    for (bool gz : {false, true}) {
      const std::string p = tmp + "/x" + std::to_string(k++) + ".idx";
      write_idx(p, ty == IdxType::U8 ? a : b, ty, gz);
      seed("idx", slurp(p));
    }
  const std::string p = tmp + "/labels.idx";
  write_idx(p, Tensor::from_vector(std::vector<float>{3, 1, 4, 1, 5}, {5}), IdxType::U8, false);
  seed("idx", slurp(p));
}

void config_seeds(const std::string& src) {
  std::vector<std::string> files;
  for (auto& e : fs::directory_iterator(src + "/configs"))
    if (e.path().extension() == ".json") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  for (auto& f : files) seed("config", slurp(f));
  seed("config", slurp(files.front()) + sep() + "train.steps=10\nmemel.mode=rd\noptimizer.lr=1e-4\nname=x");
  seed("config", "// comment\n{\"task\": \"image-classification\", \"model\": {\"name\": \"cnn\"}, \"memel\": {\"at\": [\"act1\"]}}" +
                     sep() + "model.config.c1=8\nschedule.kind=cosine\ndata.train_limit=100");
  seed("config", "{\"task\": \"text-classification\", \"data\": {\"task\": {\"name\": \"t\", \"labels\": [\"a\", \"b\"]}}}" +
                     sep() + "model.config.preset=bert-tiny\nmodel.config.hidden_size=64");
  seed("config", sep() + "task=nowcasting\nloss.mse_weight=2\nmodel.config={\"preset\": \"convgru-radar\"}");
}

std::string png(int w, int h, int c) {
  std::vector<unsigned char> px(static_cast<size_t>(w * h * c));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(i * 29 + 3);
  std::string out;
  stbi_write_png_to_func([](void* ctx, void* d, int n) { static_cast<std::string*>(ctx)->append(static_cast<char*>(d), n); },
                         &out, w, h, c, px.data(), w * c);
  return out;
}

std::string jpg(int w, int h, int c, int quality) {
  std::vector<unsigned char> px(static_cast<size_t>(w * h * c));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(i * 13 + 50);
  std::string out;
  stbi_write_jpg_to_func([](void* ctx, void* d, int n) { static_cast<std::string*>(ctx)->append(static_cast<char*>(d), n); },
                         &out, w, h, c, px.data(), quality);
  return out;
}

void image_seeds() {
  seed("image", png(3, 2, 1));
  seed("image", png(4, 4, 3));
  seed("image", png(2, 3, 4));
  seed("image", png(2, 2, 2));
  seed("image", png(1, 1, 3));
  seed("image", jpg(8, 8, 3, 90));
  seed("image", jpg(16, 8, 1, 50));
  seed("image", jpg(17, 9, 3, 100));
}

void glue_seeds(const std::string& src) {
  const auto names = glue_task_names();
  const std::string fx = src + "/tests/data/glue_fixture";
  for (size_t i = 0; i < names.size(); ++i) {
    const TsvTask& t = glue_task(names[i]);
    for (const char* f : {"train.tsv", "dev.tsv", "test.tsv", "dev_matched.tsv"}) {
      const std::string p = fx + "/" + t.name + "/" + f;
      if (fs::exists(p)) {
        seed("glue", std::string(1, static_cast<char>(i)) + slurp(p, 1500));
        break;
      }
    }
  }
  seed("glue", std::string(1, 0) + "src\tlabel\torig\tThe cat sat .\n" + "x\t1\t\tA dog .\r\n\n" + "y\t0\t*\tshort\n");
  seed("glue", R"({"name": "mine", "text_a": "sentence", "label": "label", "regression": false})" + sep() +
                   "sentence\tlabel\nhello world\tpos\nbad day\tneg\n");
  seed("glue", R"({"name": "reg", "header": false, "text_a": 0, "text_b": 1, "label": -1, "regression": true})" + sep() +
                   "a b\tc d\t0.5\nx\ty\t4.75\n");
  seed("glue", "STS-B" + sep() + slurp(fx + "/STS-B/train.tsv", 800));
}

void tokenizer_seeds() {
  for (int opt : {0, 1, 2, 40}) {
    seed("tokenizer", std::string(1, static_cast<char>(opt)) + "Hello, world! Don't stop-believing... 1,234.5");
    seed("tokenizer", std::string(1, static_cast<char>(opt)) + "H\xc3\xa9llo na\xc3\xafve caf\xc3\xa9\tsecond sentence here");
  }
  seed("tokenizer", std::string(1, 3) + "\xe4\xb8\xad\xe6\x96\x87 and [CLS] [MASK] tokens [SEP]");
  seed("tokenizer", std::string(1, 4) + "bad \xff\xfe bytes \xc3 and \xed\xa0\x80 surrogate \xf4\x90\x80\x80");
  seed("tokenizer", std::string(1, 5) + "\xe1\xba\x9e \xc4\xb0stanbul \xef\xac\x81 \xe2\x84\xab \xea\xb0\x80 \x01\x7f");
  seed("tokenizer", std::string(1, 6) + "unaffable " + std::string(120, 'a') + " end");
  seed("tokenizer", std::string(1, 1) + "[UNK]\n[CLS]\n[SEP]\n[PAD]\n[MASK]\nhello\n##lo\nworld\n!" + sep() +
                        "hello world!\thellolo");
}

void frames_seeds() {
  const std::string hko = "RAD{yy}{MM}{dd}{HH}{mm}{ss}.png\n";
  std::string s = hko + "6 3 1 0 0 1\n";
  for (int m : {0, 6, 12, 18, 30, 36, 42}) {
    char b[64];
    std::snprintf(b, sizeof b, "f 2010/06/02/RAD1006021%02d000.png\n", m);
    s += b;
  }
  s += "f 2010/06/03/RAD100603000000.png\ng 2010/06/02/RAD100602104800.png not a png\nf stray.txt\n";
  seed("frames", s);
  seed("frames", s + "d 2010-06-02\nD 20100603 # second day\nD # comment only\n");
  std::string masked = hko + "6 2 1 0 0 0\n";
  for (int m : {0, 6, 12}) {
    char b[96];
    std::snprintf(b, sizeof b, "f 2015/06/01/RAD1506010000%02d.png\nm 2015/06/01/RAD1506010000%02d.png\n", m, m);
    masked += b;
  }
  seed("frames", masked);
  seed("frames", "img_{yyyy}-{MM}-{dd}_{HH}{mm}.png\n10 2 2 2 2 1\nF img_2020-02-29_2350.png\nF img_2020-03-01_0000.png\n"
                 "F img_2020-03-01_0010.png\nF img_2020-03-01_0020.png\n");
}

void dump_seeds(const std::string& tmp) {
  for (const char* mode : {"rd", "monitor"}) {
    auto m = tiny_mlp();
    MemelOptions o = MemelOptions::from_json({{"at", {"act1"}}, {"warmup", 1}, {"mode", mode}});
    attach_memel(*m, o);
    m->train();
    Generator g(2);
    for (int i = 0; i < 5; ++i) (*m)(Tensor::randn({4, 3}, DType::F32, &g));
    const std::string prefix = tmp + "/dump_" + mode;
    write_memel_dump(*m, prefix, 5);
    seed("memel_dump", slurp(prefix + ".json") + sep() + slurp(prefix + ".safetensors"));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuzz_make_corpus OUT_DIR SOURCE_DIR\n");
    return 2;
  }
  g_out = argv[1];
  const std::string src = argv[2];
  try {
    const std::string tmp = g_out + "/.tmp";
    fs::create_directories(tmp);
    safetensors_seeds(tmp);
    idx_seeds(tmp);
    config_seeds(src);
    image_seeds();
    glue_seeds(src);
    tokenizer_seeds();
    frames_seeds();
    dump_seeds(tmp);
    fs::remove_all(tmp);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_make_corpus: %s\n", e.what());
    return 1;
  }
  for (auto& [t, n] : g_count) std::printf("%-12s %d seeds\n", t.c_str(), n);
  return 0;
}
