#include "data/wordnet.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "core/rng.h"
#include "data/unicode.h"

namespace memel {

const std::vector<std::string>& wordnet_lexnames() {
  static const std::vector<std::string> names = {
      "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
      "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
      "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
      "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
      "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
      "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
      "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
      "verb.weather", "adj.ppl"};
  return names;
}

namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// Tabs and line breaks would break the TSV layout.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string lower_ascii(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t synset_key(const WordNetSynset& s) {
  const char p = s.pos == 's' ? 'a' : s.pos;  // satellites live in data.adj with 'a'
  return (static_cast<uint64_t>(static_cast<unsigned char>(p)) << 32) | s.offset;
}

int pos_group(char pos) {
  switch (pos) {
    case 'n': return 0;
    case 'v': return 1;
    case 'a': case 's': return 2;
    default: return 3;
  }
}

}  // namespace

bool parse_wordnet_line(const std::string& raw, WordNetSynset* out, const std::string& where) {
  if (raw.empty() || raw[0] == ' ') return false;
  const size_t bar = raw.find(" | ");
  MEMEL_CHECK(bar != std::string::npos, "[wordnet] ", where, ": synset line without ' | ' gloss separator");
  std::istringstream is(raw.substr(0, bar));
  std::string offset, lex, pos, wcnt;
  MEMEL_CHECK(static_cast<bool>(is >> offset >> lex >> pos >> wcnt), "[wordnet] ", where, ": truncated synset line");
  WordNetSynset s;
  try {
    s.offset = static_cast<uint32_t>(std::stoul(offset, nullptr, 10));
    s.lex_filenum = std::stoi(lex, nullptr, 10);
    const int n = std::stoi(wcnt, nullptr, 16);  // w_cnt is two hexadecimal digits
    MEMEL_CHECK(n > 0, "[wordnet] ", where, ": synset with no words");
    for (int i = 0; i < n; ++i) {
      std::string word, lex_id;
      MEMEL_CHECK(static_cast<bool>(is >> word >> lex_id), "[wordnet] ", where, ": expected ", n, " words");
      const size_t paren = word.find('(');  // adjective syntactic markers: word(a), word(p), word(ip)
      if (paren != std::string::npos && !word.empty() && word.back() == ')') word.erase(paren);
      std::replace(word.begin(), word.end(), '_', ' ');
      s.words.push_back(word);
    }
  } catch (const std::logic_error&) {
    MEMEL_FAIL("[wordnet] ", where, ": malformed number in synset header");
  }
  MEMEL_CHECK(pos.size() == 1 && std::string("nvasr").find(pos[0]) != std::string::npos, "[wordnet] ", where,
              ": unknown part of speech '", pos, "'");
  MEMEL_CHECK(s.lex_filenum >= 0 && s.lex_filenum < 45, "[wordnet] ", where, ": lex_filenum ", s.lex_filenum,
              " outside 0..44");
  s.pos = pos[0];
  s.gloss = one_line(trim(raw.substr(bar + 3)));
  const size_t ex = s.gloss.find("; \"");
  if (!s.gloss.empty() && s.gloss[0] == '"') s.definition.clear();
  else s.definition = trim(ex == std::string::npos ? s.gloss : s.gloss.substr(0, ex));
  while (!s.definition.empty() && s.definition.back() == ';') s.definition = trim(s.definition.substr(0, s.definition.size() - 1));
  *out = std::move(s);
  return true;
}

std::vector<WordNetSynset> read_wordnet(const std::string& dir) {
  std::vector<WordNetSynset> all;
  for (const char* name : {"data.noun", "data.verb", "data.adj", "data.adv"}) {
    const std::string path = dir + "/" + name;
    std::ifstream f(path, std::ios::binary);
    MEMEL_CHECK(f.good(), "[wordnet] cannot open '", path,
                "' (Debian: apt-get install wordnet-base; dpkg -L wordnet-base lists the files)");
    std::string line;
    int64_t n = 0;
    WordNetSynset s;
    int64_t offset = 0;
    while (std::getline(f, line)) {
      ++n;
      unicode::check_utf8_line(line, "wordnet", path, n, offset);
      offset += static_cast<int64_t>(line.size()) + 1;
      if (parse_wordnet_line(line, &s, path + ":" + std::to_string(n))) all.push_back(std::move(s));
    }
  }
  return all;
}

int wordnet_split(const WordNetSynset& s) {
  const uint64_t h = mix64(synset_key(s)) % 10;
  return h < 8 ? 0 : (h == 8 ? 1 : 2);
}

WordNetTaskStats write_wordnet_tasks(const std::vector<WordNetSynset>& synsets, const std::string& out_dir,
                                     const WordNetTaskOptions& o) {
  static const char* kSplits[3] = {"train", "dev", "test"};
  WordNetTaskStats st;
  st.synsets = static_cast<int64_t>(synsets.size());
  // Synsets per split, in a fixed pseudo-random order (hash of the key).
  std::vector<const WordNetSynset*> split[3];
  for (const auto& s : synsets) {
    if (s.definition.empty()) { ++st.skipped_no_definition; continue; }
    split[wordnet_split(s)].push_back(&s);
  }
  auto order = [](const WordNetSynset* a, const WordNetSynset* b) {
    const uint64_t ha = mix64(synset_key(*a) ^ 0x5bd1e995ull), hb = mix64(synset_key(*b) ^ 0x5bd1e995ull);
    return ha != hb ? ha < hb : synset_key(*a) < synset_key(*b);
  };
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(out_dir) / "wn-lex");
  fs::create_directories(fs::path(out_dir) / "wn-pair");

  // corpus/{train,dev,test}.txt: the full glosses of every synset of the split (before
  // the cap), one per line, for MLM pretraining.
  fs::create_directories(fs::path(out_dir) / "corpus");
  for (int k = 0; k < 3; ++k) {
    std::vector<const WordNetSynset*> v = split[k];
    std::sort(v.begin(), v.end(), order);
    const std::string name = std::string("corpus/") + kSplits[k] + ".txt";
    std::ofstream g(fs::path(out_dir) / name, std::ios::binary);
    MEMEL_CHECK(g.good(), "[wordnet] cannot write ", name, " under ", out_dir);
    int64_t& lines = st.corpus_lines[kSplits[k]];
    for (const auto* s : v) { g << s->gloss << '\n'; ++lines; }
  }
  {
    std::ofstream l(fs::path(out_dir) / "wn-lex" / "labels.txt", std::ios::binary);
    for (const auto& n : wordnet_lexnames()) l << n << '\n';
  }

  for (int k = 0; k < 3; ++k) {
    auto& v = split[k];
    std::sort(v.begin(), v.end(), order);
    if (o.max_per_split > 0 && static_cast<int64_t>(v.size()) > o.max_per_split) v.resize(static_cast<size_t>(o.max_per_split));
    const std::string name = kSplits[k];
    auto& counts = st.lex_counts[name];
    counts.assign(45, 0);

    std::ofstream lex(fs::path(out_dir) / "wn-lex" / (name + ".tsv"), std::ios::binary);
    MEMEL_CHECK(lex.good(), "[wordnet] cannot write wn-lex/", name, ".tsv under ", out_dir);
    lex << "sentence\tlabel\n";
    for (const auto* s : v) {
      lex << s->definition << '\t' << wordnet_lexnames()[static_cast<size_t>(s->lex_filenum)] << '\n';
      ++counts[static_cast<size_t>(s->lex_filenum)];
    }
    st.lex_rows[name] = static_cast<int64_t>(v.size());

    // Negatives come from the same split and part of speech.
    std::vector<const WordNetSynset*> by_pos[4];
    for (const auto* s : v) by_pos[pos_group(s->pos)].push_back(s);
    std::ofstream pair(fs::path(out_dir) / "wn-pair" / (name + ".tsv"), std::ios::binary);
    MEMEL_CHECK(pair.good(), "[wordnet] cannot write wn-pair/", name, ".tsv under ", out_dir);
    pair << "index\tword\tgloss\tlabel\n";
    int64_t row = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      const WordNetSynset& s = *v[i];
      const std::string& word = s.words[0];
      pair << row++ << '\t' << word << '\t' << s.definition << "\tentailment\n";
      const auto& pool = by_pos[pos_group(s.pos)];
      const std::string lw = lower_ascii(word);
      const WordNetSynset* neg = nullptr;
      for (uint64_t attempt = 0; attempt < 64 && pool.size() > 1; ++attempt) {
        const Philox4 r = philox4x32((static_cast<uint64_t>(k) << 40) + (static_cast<uint64_t>(i) << 6) + attempt, o.seed);
        const WordNetSynset* c = pool[static_cast<size_t>(((static_cast<uint64_t>(r.v[0]) << 32) | r.v[1]) % pool.size())];
        if (c == &s || c->definition == s.definition) continue;
        bool has = false;
        for (const auto& w : c->words) has = has || lower_ascii(w) == lw;
        if (has) continue;
        neg = c;
        break;
      }
      if (neg) pair << row++ << '\t' << word << '\t' << neg->definition << "\tnot_entailment\n";
    }
    st.pair_rows[name] = row;
  }
  return st;
}

}  // namespace memel
