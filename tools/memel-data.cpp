// memel-data: prepares text data.
//
//   memel-data wordnet --out DIR [--wordnet-dir /usr/share/wordnet] [--seed N] [--max-per-split N]
//       WordNet glosses -> DIR/wn-lex, DIR/wn-pair (GLUE layout) and the plain-text gloss
//       corpus DIR/corpus/{train,dev,test}.txt for mlm-pretrain (see data/wordnet.h);
//       prints the class counts.
//   memel-data tokenize --vocab FILE [--cased] [--max-len N] TEXT [TEXT_B]
//       Prints the word pieces and the encoding of a text or a pair.
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/tokenizer.h"
#include "data/unicode.h"
#include "data/wordnet.h"

namespace {

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage:\n"
               "  memel-data wordnet --out DIR [--wordnet-dir /usr/share/wordnet] [--seed N] [--max-per-split N]\n"
               "  memel-data tokenize --vocab FILE [--cased] [--max-len N] TEXT [TEXT_B]\n");
  std::exit(code);
}

int64_t parse_int(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used == v.size() && x >= 0) return x;
  } catch (const std::exception&) {
  }
  std::fprintf(stderr, "memel-data: %s expects a non-negative integer, got '%s'\n", flag.c_str(), v.c_str());
  std::exit(2);
}

int run_wordnet(const std::vector<std::string>& args) {
  std::string out, dir = "/usr/share/wordnet";
  memel::WordNetTaskOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "memel-data: %s needs a value\n", args[i].c_str());
        std::exit(2);
      }
      return args[++i];
    };
    if (args[i] == "--out") out = value();
    else if (args[i] == "--wordnet-dir") dir = value();
    else if (args[i] == "--seed") o.seed = static_cast<uint64_t>(parse_int("--seed", value()));
    else if (args[i] == "--max-per-split") o.max_per_split = parse_int("--max-per-split", value());
    else if (args[i] == "-h" || args[i] == "--help") usage(0);
    else {
      std::fprintf(stderr, "memel-data wordnet: unknown argument '%s'\n", args[i].c_str());
      usage(2);
    }
  }
  if (out.empty()) {
    std::fprintf(stderr, "memel-data wordnet: --out DIR is required\n");
    usage(2);
  }
  const auto synsets = memel::read_wordnet(dir);
  const auto st = memel::write_wordnet_tasks(synsets, out, o);
  const auto& names = memel::wordnet_lexnames();
  std::printf("read %lld synsets from %s (%lld without a definition skipped)\n", (long long)st.synsets, dir.c_str(),
              (long long)st.skipped_no_definition);
  std::printf("%-20s %8s %8s %8s\n", "wn-lex class", "train", "dev", "test");
  nlohmann::json stats;
  for (size_t c = 0; c < names.size(); ++c) {
    std::printf("%-20s %8lld %8lld %8lld\n", names[c].c_str(), (long long)st.lex_counts.at("train")[c],
                (long long)st.lex_counts.at("dev")[c], (long long)st.lex_counts.at("test")[c]);
  }
  for (const char* s : {"train", "dev", "test"}) {
    std::printf("%-6s wn-lex %7lld rows, wn-pair %7lld rows\n", s, (long long)st.lex_rows.at(s),
                (long long)st.pair_rows.at(s));
    nlohmann::json counts;
    for (size_t c = 0; c < names.size(); ++c) counts[names[c]] = st.lex_counts.at(s)[c];
    stats["wn-lex"][s] = {{"rows", st.lex_rows.at(s)}, {"class_counts", counts}};
    stats["wn-pair"][s] = {{"rows", st.pair_rows.at(s)}};
  }
  for (const char* s : {"train", "dev", "test"}) {
    std::printf("corpus/%s.txt: %lld lines\n", s, (long long)st.corpus_lines.at(s));
    stats["corpus"][s] = {{"lines", st.corpus_lines.at(s)}};
  }
  stats["seed"] = o.seed;
  stats["max_per_split"] = o.max_per_split;
  stats["wordnet_dir"] = dir;
  FILE* f = std::fopen((out + "/stats.json").c_str(), "w");
  if (f) {
    std::fprintf(f, "%s\n", stats.dump(2).c_str());
    std::fclose(f);
  }
  std::printf("wrote %s/{wn-lex,wn-pair}/{train,dev,test}.tsv, corpus/{train,dev,test}.txt, stats.json\n",
              out.c_str());
  return 0;
}

int run_tokenize(const std::vector<std::string>& args) {
  std::string vocab;
  memel::WordPieceOptions o;
  int64_t max_len = 512;
  std::vector<std::string> texts;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--vocab" && i + 1 < args.size()) vocab = args[++i];
    else if (args[i] == "--cased") o.do_lower_case = false;
    else if (args[i] == "--max-len" && i + 1 < args.size()) max_len = parse_int("--max-len", args[++i]);
    else texts.push_back(args[i]);
  }
  if (vocab.empty() || texts.empty() || texts.size() > 2) usage(2);
  for (size_t i = 0; i < texts.size(); ++i) {  // would be tokenized with U+FFFD in place of the bad bytes
    const size_t bad = memel::unicode::utf8_invalid_offset(texts[i]);
    MEMEL_CHECK(bad == std::string::npos, "[tokenize] ", i ? "TEXT_B" : "TEXT", " is not UTF-8 text: invalid byte 0x",
                std::hex, static_cast<unsigned>(static_cast<unsigned char>(texts[i][bad])), std::dec, " at byte ", bad);
  }
  const auto tok = memel::WordPieceTokenizer::from_file(vocab, o);
  for (const auto& t : texts) {
    nlohmann::json pieces = tok.tokenize(t);
    std::printf("%s\n", pieces.dump().c_str());
  }
  std::optional<std::string> b;
  if (texts.size() == 2) b = texts[1];
  const auto e = tok.encode(texts[0], b, max_len);
  nlohmann::json j = {{"input_ids", e.input_ids}, {"token_type_ids", e.token_type_ids},
                      {"attention_mask", e.attention_mask}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage(2);
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (cmd == "wordnet") return run_wordnet(args);
    if (cmd == "tokenize") return run_tokenize(args);
    if (cmd == "-h" || cmd == "--help") usage(0);
    std::fprintf(stderr, "memel-data: unknown command '%s'\n", cmd.c_str());
    usage(2);
  } catch (const memel::Error& e) {
    std::fprintf(stderr, "memel-data: %s\n", e.what());
    return 1;
  }
}
