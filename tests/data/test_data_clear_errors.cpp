// Data checks of issue 23: a GLUE-style TSV row whose column count differs from the
// header, and text that is not UTF-8 (TSV, MLM corpora, WordNet files).
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include "data/glue.h"
#include "data/mlm.h"
#include "data/unicode.h"
#include "data/wordnet.h"
#include "support.h"

using namespace memel;
namespace fs = std::filesystem;

namespace {

std::string write_file(const std::string& rel, const std::string& text) {
  const fs::path p = fs::path(MEMEL_BINARY_DIR) / "test_data_clear_errors" / rel;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

}  // namespace

TEST_CASE("tsv: a row with more or fewer columns than the header names file, line and both counts") {
  // SST-2: sentence, label. Line 3 has a tab inside the sentence: its label column
  // would have been "a tab", silently ("unknown label" at best, a wrong label at worst).
  const std::string dir = fs::path(write_file("SST-2/train.tsv", "sentence\tlabel\n"
                                                                 "good film\t1\n"
                                                                 "a film with\ta tab\t0\n"
                                                                 "bad film\t0\n"))
                              .parent_path()
                              .string();
  const std::string path = dir + "/train.tsv";
  CHECK(error_of([&] { read_split(glue_task("SST-2"), dir, "train"); }) ==
        "[tsv] " + path + ":3: found 3 tab-separated columns, expected 2 (as in the header, line 1); a tab inside "
        "a text field shifts the columns");
  // Fewer columns than the header (a label column of text_b-less MRPC-style data).
  write_file("SST-2/train.tsv", "sentence\tlabel\ngood film\t1\nno label here\n");
  CHECK(error_of([&] { read_split(glue_task("SST-2"), dir, "train"); }) ==
        "[tsv] " + path + ":3: found 1 tab-separated columns, expected 2 (as in the header, line 1); a tab inside "
        "a text field shifts the columns");
  // Blank lines and CRLF line ends are not rows of another width.
  write_file("SST-2/train.tsv", "sentence\tlabel\r\ngood film\t1\r\n\r\nbad film\t0\r\n");
  CHECK(read_split(glue_task("SST-2"), dir, "train").size() == 2);
  // Without a header (CoLA's train file): rows must match the first row.
  const std::string cola = write_file("CoLA/train.tsv", "src\t1\t\tGood sentence .\n"
                                                        "src\t0\t*\tBad\tsentence .\n");
  CHECK(error_of([&] { read_split(glue_task("CoLA"), fs::path(cola).parent_path().string(), "train"); }) ==
        "[tsv] " + cola + ":2: found 5 tab-separated columns, expected 4 (as in the first row, line 1); a tab inside "
        "a text field shifts the columns");
  // QQP skips malformed rows and counts them, as before.
  const std::string qqp = write_file("QQP/train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                                      "1\t1\t2\tWhy?\tHow?\t0\n"
                                                      "2\t3\t4\tWhat\tis\tthis?\t1\n"
                                                      "3\t5\t6\tWhere?\n");
  int64_t skipped = 0;
  CHECK(read_split(glue_task("QQP"), fs::path(qqp).parent_path().string(), "train", &skipped).size() == 1);
  CHECK(skipped == 2);
}

TEST_CASE("tsv: the GLUE fixture's files all have rows as wide as their headers") {
  // The check must not refuse well-formed files (QQP/train.tsv has one malformed row on purpose).
  const std::string root = std::string(MEMEL_SOURCE_DIR) + "/tests/data/glue_fixture/";
  int64_t rows = 0;
  for (const std::string& name : glue_task_names()) {
    if (!fs::exists(root + name)) continue;
    const TsvTask& t = glue_task(name);
    for (const TsvSplit& s : t.splits) {
      int64_t skipped = 0;
      rows += static_cast<int64_t>(read_split(t, root + name, s.name, &skipped).size());
      CHECK_MESSAGE(skipped == (name == "QQP" && s.name == "train" ? 1 : 0), name, " ", s.name);
    }
  }
  CHECK(rows > 50);
}

TEST_CASE("text readers: bytes that are not UTF-8 name the file, the line and the byte") {
  CHECK(unicode::utf8_invalid_offset("plain") == std::string::npos);
  CHECK(unicode::utf8_invalid_offset("caf\xc3\xa9 ok") == std::string::npos);
  CHECK(unicode::utf8_invalid_offset("caf\xe9 au lait") == 3);
  CHECK(unicode::utf8_invalid_offset("ab\xc3") == 2);  // truncated sequence at the end

  // TSV (a Latin-1 "e acute" in line 3, after the 29 bytes of lines 1 and 2).
  const std::string tsv = write_file("latin1/train.tsv", "sentence\tlabel\r\n"
                                                         "good film\t1\r\n"
                                                         "un caf\xe9\t0\r\n");
  CHECK(error_of([&] { read_tsv(tsv, TsvLayout{true, "0", "", "1", ""}); }) ==
        "[tsv] " + tsv + ":3: not UTF-8 text: invalid byte 0xe9 at byte 6 of the line (byte 35 of the file); convert "
        "the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)");
  // In the header too.
  const std::string head = write_file("latin1/dev.tsv", "sentenc\xe9\tlabel\nok\t1\n");
  CHECK(error_of([&] { read_tsv(head, TsvLayout{}); })
            .find("[tsv] " + head + ":1: not UTF-8 text: invalid byte 0xe9 at byte 7 of the line (byte 7 of the file)") ==
        0);

  // MLM corpora (a file, or every .txt of a directory).
  const std::string txt = write_file("corpus/b.txt", "first line\nsecond \xff line\n");
  write_file("corpus/a.txt", "fine\n");
  CHECK(error_of([&] { read_text_lines(txt); }) ==
        "[mlm] " + txt + ":2: not UTF-8 text: invalid byte 0xff at byte 7 of the line (byte 18 of the file); "
        "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)");
  CHECK(error_of([&] { read_text_lines(fs::path(txt).parent_path().string()); }).find(txt + ":2:") !=
        std::string::npos);
  // Valid UTF-8 still reads (and the lines keep their bytes).
  write_file("corpus/b.txt", "caf\xc3\xa9\r\n");
  const std::vector<std::string> lines = read_text_lines(txt);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "caf\xc3\xa9");

  // WordNet data files.
  const std::string noun = write_file("wordnet/data.noun", "  1 license line\n"
                                                           "00001740 03 n 01 entit\xe9 0 000 | a thing\n");
  CHECK(error_of([&] { read_wordnet(fs::path(noun).parent_path().string()); }) ==
        "[wordnet] " + noun + ":2: not UTF-8 text: invalid byte 0xe9 at byte 22 of the line (byte 39 of the file); "
        "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)");
}

TEST_CASE("memel-data tokenize: text that is not UTF-8 is refused, not tokenized with U+FFFD") {
  const std::string bin = std::string(MEMEL_BINARY_DIR) + "/tools/memel-data";
  const std::string vocab = std::string(MEMEL_SOURCE_DIR) + "/tests/data/text/vocab-uncased.txt";
  const std::string log = std::string(MEMEL_BINARY_DIR) + "/test_data_clear_errors/tokenize.log";
  auto run = [&](const std::string& args) {
    const int rc = std::system((bin + " tokenize --vocab " + vocab + " " + args + " > " + log + " 2>&1").c_str());
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    return std::make_pair(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ss.str());
  };
  auto [code, out] = run("'caf\xe9 au lait'");
  CHECK(code == 1);
  CHECK_MESSAGE(out.find("memel-data: [tokenize] TEXT is not UTF-8 text: invalid byte 0xe9 at byte 3") == 0, out);
  std::tie(code, out) = run("'fine' 'b\xc3'");
  CHECK(code == 1);
  CHECK_MESSAGE(out.find("[tokenize] TEXT_B is not UTF-8 text: invalid byte 0xc3 at byte 1") != std::string::npos, out);
  std::tie(code, out) = run("'caf\xc3\xa9 au lait'");
  CHECK(code == 0);
  CHECK_MESSAGE(out.find("\"input_ids\"") != std::string::npos, out);
}
