#pragma once
// Options of a memel layer, as in ../shared/design/memel-method.md, parsed from the
// "memel" section of a run configuration:
//
//   "memel": {"preset": "paper", "at": ["encoder.layer.4", ...] | "paper", "mode": "rd",
//             "select": "top_k", "k": 1, "scope": "sample", "neurons": "element", "eps": 0.01,
//             "warmup": 10, "forget_batches": 10, "score_after_update": false, ...}
//
// Presets (docs/fidelity.md): a "preset" key sets every option first, the other keys of the
// section then override it.
//   paper   (default) the paper's algorithms: score against the statistics before the batch
//           (Algorithm 1), the pre-merge mean written into selected elements (Algorithm 2),
//           forgetting after 10 batches (Appendix C.1), ties toward the lower index.
//   authors the released code (EmeL.py) exactly: merge then score, history capped at 10
//           batches, its batch counter incremented before the merge (count_ahead), every
//           tied maximum selected (ties: "all"), statistics in float32.
//   exact   the paper's order without forgetting: exact moments of all history.
// "max_count" (a cap in samples, the former way to forget) is refused with a message naming
// forget_batches.
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace memel {

enum class MemelMode { RD, NaiveA, NaiveB, Scaled, Monitor };
enum class MemelSelect { TopK, TopLog, Ratio, Threshold };
enum class MemelScope { Sample, Batch };
enum class MemelNeurons { Element, Channel };
enum class MemelTies { LowerIndex, All };
enum class MemelStatsDType { Input, Float32 };

struct MemelOptions {
  // Where: module paths ("encoder.layer.4"), tap points ("cell0:candidate"), or the
  // single entry "paper" for the model's published placement.
  std::vector<std::string> at = {"paper"};
  std::string preset = "paper";       // informational: the preset the options started from
  MemelNeurons neurons = MemelNeurons::Element;
  int64_t channel_axis = -1;          // channel neurons: which axis holds the channels
  // Forgetting (the paper's Appendix C.1): the history's weight in the merge stops growing at
  // forget_batches batches (forget_batches * b samples for a batch of b); 0 = never forget.
  int64_t forget_batches = 10;
  // The authors' counter quirk: history weighted as one batch more than it holds (until the cap).
  bool count_ahead = false;
  MemelStatsDType stats_dtype = MemelStatsDType::Input;  // float32: statistics and MS in float32
  double eps = 0.01;                  // share of the mean variance added to each variance
  int64_t warmup = 10;                // batches seen before anything is inhibited
  bool score_after_update = false;    // authors' code order: merge the batch, then score
  MemelSelect select = MemelSelect::TopK;
  int64_t k = 1;                      // top_k
  double ratio = 0.01;                // ratio: ceil(ratio * n) per scope
  double threshold = 10.0;            // threshold: every element with MS > threshold
  MemelScope scope = MemelScope::Sample;
  MemelTies ties = MemelTies::LowerIndex;  // all: every element tied with the last selected one
  MemelMode mode = MemelMode::RD;
  double delta = 1.0;                 // scaled mode only (rd = 1, naive_a = 0, naive_b = -1)
  bool active_at_eval = false;
  // Second inhibitor (the follow-up paper): "none" or "decorrelation", which adds
  // lambda * ||Zn^T Zn - I||_F^2 of the channel-normalised activations to the loss.
  std::string regularizer = "none";
  double lambda = 1e-3;
  // Dumps: histogram of MS over recent batches, log-spaced bins.
  int64_t hist_bins = 48;
  double hist_min = 1e-4, hist_max = 1e8;
  int64_t dump_top = 20;              // top neurons by mean MS listed in the JSON

  // The gradient factor applied at selected elements (-delta in the method page).
  double effective_delta() const;
  bool inhibits() const { return mode != MemelMode::Monitor; }

  // The options of a preset ("paper", "authors", "exact"); throws on another name.
  static MemelOptions preset_options(const std::string& name);
  // Parses and validates; unknown keys and wrong types are errors naming the key.
  static MemelOptions from_json(const nlohmann::json& j, const std::string& where = "memel");
  nlohmann::json to_json() const;
  // A config's "memel" section with its preset expanded: every option, resolved, plus the
  // keys listed in `passthrough` (read by the trainer, not by the layer) as given. null
  // stays null (memel off).
  static nlohmann::json expand_section(const nlohmann::json& section, const std::vector<std::string>& passthrough,
                                       const std::string& where = "memel");
  // Throws on inconsistent values (negative ratio, k < 1, ...).
  void validate() const;
};

const char* to_string(MemelMode m);
const char* to_string(MemelSelect s);
const char* to_string(MemelScope s);
const char* to_string(MemelNeurons n);
const char* to_string(MemelTies t);
const char* to_string(MemelStatsDType d);

}  // namespace memel
