#pragma once
// Two text tasks in GLUE layout made from WordNet's glosses (Debian's wordnet-base:
// /usr/share/wordnet/data.{noun,verb,adj,adv}), for real-text experiments offline:
//   wn-lex   gloss -> lexicographer class (45 classes, single sentence like SST-2/CoLA)
//            files {train,dev,test}.tsv: "sentence\tlabel" with header, labels as names
//   wn-pair  (word, gloss) -> does the gloss define the word? (pairs like QNLI)
//            files {train,dev,test}.tsv: "index\tword\tgloss\tlabel" with header, labels
//            entailment / not_entailment; per synset one positive (its first lemma and
//            its gloss) and one negative (the same lemma with the gloss of another synset
//            of the same part of speech and split, drawn with Philox from the seed,
//            rejecting synsets that contain the lemma or share the gloss)
//   corpus/{train,dev,test}.txt  the full glosses (definitions and examples) of the
//            split's synsets, one per line, for MLM pretraining (train on corpus/train.txt,
//            evaluate on corpus/dev.txt: the dev/test text of the tasks stays unseen)
// Splits are fixed by a hash of (part of speech, synset offset): 80% train, 10% dev,
// 10% test, whatever the seed. The gloss used as text is the definition, without the
// quoted examples that follow it (they often contain the word itself).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace memel {

// The 45 lexicographer file names; index = lex_filenum.
const std::vector<std::string>& wordnet_lexnames();

struct WordNetSynset {
  char pos = 'n';                  // n, v, a, s (satellite adjective), r
  uint32_t offset = 0;             // byte offset in its data file (unique per file)
  int lex_filenum = 0;             // 0..44
  std::vector<std::string> words;  // lemmas, '_' -> ' ', adjective markers "(a)" removed
  std::string gloss;               // everything after '|', trimmed
  std::string definition;          // the gloss without its quoted examples
};

// Parses one data-file line; returns false for license/header lines (leading spaces).
// Throws naming `where` on a malformed synset line.
bool parse_wordnet_line(const std::string& line, WordNetSynset* out, const std::string& where);
// Reads data.noun, data.verb, data.adj and data.adv from `dir`.
std::vector<WordNetSynset> read_wordnet(const std::string& dir);

// 0 train, 1 dev, 2 test: fixed by (pos, offset).
int wordnet_split(const WordNetSynset& s);

struct WordNetTaskOptions {
  uint64_t seed = 0;           // negatives of wn-pair
  int64_t max_per_split = 0;   // keep at most this many synsets per split (0: all), chosen by hash
};

struct WordNetTaskStats {
  std::map<std::string, std::vector<int64_t>> lex_counts;  // split -> count per lexname (45)
  std::map<std::string, int64_t> lex_rows, pair_rows;      // split -> rows written
  std::map<std::string, int64_t> corpus_lines;             // split -> lines of corpus/<split>.txt
  int64_t synsets = 0, skipped_no_definition = 0;
};

// Writes <out>/wn-lex/{train,dev,test}.tsv, <out>/wn-lex/labels.txt,
// <out>/wn-pair/{train,dev,test}.tsv and <out>/corpus/{train,dev,test}.txt; returns counts.
WordNetTaskStats write_wordnet_tasks(const std::vector<WordNetSynset>& synsets, const std::string& out_dir,
                                     const WordNetTaskOptions& options = {});

}  // namespace memel
