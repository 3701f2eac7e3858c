// WordNet gloss tasks: parsing, fixed splits, deterministic negatives, GLUE-layout files
// readable by the wn-lex / wn-pair task readers.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support.h"

#include "core/error.h"
#include "data/glue.h"
#include "data/wordnet.h"

using namespace memel;

namespace {

// A tiny WordNet in the data.* format: synthetic synsets, 2-digit hex word counts.
std::string make_wordnet(const std::string& dir, int n_per_pos) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const char* files[4] = {"data.noun", "data.verb", "data.adj", "data.adv"};
  const char pos[4] = {'n', 'v', 'a', 'r'};
  const int lex[4] = {5, 38, 0, 2};
  for (int p = 0; p < 4; ++p) {
    std::ofstream f(dir + "/" + files[p]);
    f << "  1 This software and database is being provided to you, the LICENSEE  \n";
    for (int i = 0; i < n_per_pos; ++i) {
      char head[64];
      std::snprintf(head, sizeof(head), "%08d %02d %c 02 ", 1000 + 37 * i, lex[p] + (i % 2 == 0 ? 0 : 1), pos[p]);
      f << head << "thing" << p << "_" << i << (p == 2 ? "(a)" : "") << " 0 alias" << p << "x" << i
        << " 1 000 | definition number " << i << " of part " << p << "; \"an example with thing" << p << "_" << i
        << "\"  \n";
    }
  }
  return dir;
}
}  // namespace

TEST_CASE("wordnet: line parsing") {
  WordNetSynset s;
  CHECK_FALSE(parse_wordnet_line("  2 license text", &s, "x"));
  REQUIRE(parse_wordnet_line("00002312 00 a 02 abaxial 0 dorsal(p) 4 002 ;c 06037666 n 0000 ! 00002527 a 0101 | "
                             "facing away from the axis of an organ; \"the abaxial surface of a leaf\"  ",
                             &s, "x"));
  CHECK(s.pos == 'a');
  CHECK(s.offset == 2312);
  CHECK(s.lex_filenum == 0);
  CHECK(s.words == std::vector<std::string>{"abaxial", "dorsal"});
  CHECK(s.definition == "facing away from the axis of an organ");
  CHECK(s.gloss == "facing away from the axis of an organ; \"the abaxial surface of a leaf\"");
  REQUIRE(parse_wordnet_line("00001930 03 n 0b physical_entity 0 a 0 b 0 c 0 d 0 e 0 f 0 g 0 h 0 i 0 j 0 000 | x y  ",
                             &s, "x"));
  CHECK(s.words.size() == 11);  // hexadecimal count
  CHECK(s.words[0] == "physical entity");
  CHECK_THROWS_AS(parse_wordnet_line("00001930 03 n 01 entity 0 000 no gloss", &s, "f:1"), Error);
  CHECK_THROWS_AS(parse_wordnet_line("00001930 77 n 01 entity 0 000 | gloss", &s, "f:1"), Error);
  CHECK(wordnet_lexnames().size() == 45);
}

TEST_CASE("wordnet: tasks from a small synthetic WordNet") {
  const std::string base = std::string(MEMEL_BINARY_DIR) + "/test_wordnet";
  const std::string wn = make_wordnet(base + "/wn", 60);
  auto synsets = read_wordnet(wn);
  REQUIRE(synsets.size() == 240);
  WordNetTaskOptions o;
  o.seed = 5;
  auto st = write_wordnet_tasks(synsets, base + "/out5", o);
  int64_t total = 0;
  for (const char* s : {"train", "dev", "test"}) total += st.lex_rows.at(s);
  CHECK(total == 240);
  CHECK(st.lex_rows.at("train") > st.lex_rows.at("dev"));
  for (const char* s : {"train", "dev", "test"}) {
    CHECK(st.corpus_lines.at(s) == st.lex_rows.at(s));
    CHECK(slurp(base + "/out5/corpus/" + s + ".txt").find("definition number") != std::string::npos);
  }
  for (const char* s : {"train", "dev", "test"}) CHECK(st.pair_rows.at(s) == 2 * st.lex_rows.at(s));

  // The files go through the generic GLUE readers.
  const TsvTask& lex = glue_task("wn-lex");
  auto dev = read_split(lex, base + "/out5/wn-lex", "dev");
  CHECK(static_cast<int64_t>(dev.size()) == st.lex_rows.at("dev"));
  for (const auto& e : dev) CHECK(lex.label_index(*e.label) >= 0);
  CHECK(dev[0].text_a.find("definition number") == 0);
  const TsvTask& pair = glue_task("wn-pair");
  auto test = read_split(pair, base + "/out5/wn-pair", "test");
  REQUIRE(test.size() >= 2);
  CHECK(*test[0].label == "entailment");
  CHECK(*test[1].label == "not_entailment");
  CHECK(test[0].text_a == test[1].text_a);
  CHECK(*test[0].text_b != *test[1].text_b);
  CHECK(evaluate(pair, test, example_labels(test, pair)).at("acc") == doctest::Approx(1.0));

  // Same seed: identical files; another seed: same splits, other negatives.
  write_wordnet_tasks(synsets, base + "/out5b", o);
  CHECK(slurp(base + "/out5/wn-pair/train.tsv") == slurp(base + "/out5b/wn-pair/train.tsv"));
  o.seed = 6;
  write_wordnet_tasks(synsets, base + "/out6", o);
  CHECK(slurp(base + "/out5/wn-lex/train.tsv") == slurp(base + "/out6/wn-lex/train.tsv"));
  CHECK(slurp(base + "/out5/wn-pair/train.tsv") != slurp(base + "/out6/wn-pair/train.tsv"));
  // The cap keeps a fixed subset.
  o.max_per_split = 5;
  auto capped = write_wordnet_tasks(synsets, base + "/cap", o);
  CHECK(capped.lex_rows.at("train") == 5);
  CHECK(capped.lex_rows.at("dev") <= 5);
  CHECK_THROWS_AS(read_wordnet(base + "/no-such-dir"), Error);
}

TEST_CASE("wordnet: Debian's wordnet-base parses (skipped when absent)") {
  const std::string dir = "/usr/share/wordnet";
  if (!std::filesystem::exists(dir + "/data.noun")) {
    MESSAGE("wordnet-base not installed; skipped");
    return;
  }
  auto synsets = read_wordnet(dir);
  MESSAGE(synsets.size(), " synsets in ", dir);
  CHECK(synsets.size() > 100000);
  std::vector<int64_t> per_class(45, 0);
  for (const auto& s : synsets) per_class[static_cast<size_t>(s.lex_filenum)]++;
  for (int64_t c : per_class) CHECK(c > 0);
}
