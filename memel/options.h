#pragma once
// Options of a memel layer, as in ../shared/design/memel-method.md, parsed from the
// "memel" section of a run configuration:
//
//   "memel": {"at": ["encoder.layer.4", ...] | "paper", "mode": "rd", "select": "top_k",
//             "k": 1, "scope": "sample", "neurons": "element", "eps": 0.01, "warmup": 10,
//             "max_count": 0, "score_after_update": false, "active_at_eval": false, ...}
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace memel {

enum class MemelMode { RD, NaiveA, NaiveB, Scaled, Monitor };
enum class MemelSelect { TopK, TopLog, Ratio, Threshold };
enum class MemelScope { Sample, Batch };
enum class MemelNeurons { Element, Channel };

struct MemelOptions {
  // Where: module paths ("encoder.layer.4"), tap points ("cell0:candidate"), or the
  // single entry "paper" for the model's published placement.
  std::vector<std::string> at = {"paper"};
  MemelNeurons neurons = MemelNeurons::Element;
  int64_t channel_axis = -1;          // channel neurons: which axis holds the channels
  double max_count = 0;               // 0 = never forget; N = counts stop at N samples
  double eps = 0.01;                  // share of the mean variance added to each variance
  int64_t warmup = 10;                // batches seen before anything is inhibited
  bool score_after_update = false;    // authors' code order: merge the batch, then score
  MemelSelect select = MemelSelect::TopK;
  int64_t k = 1;                      // top_k
  double ratio = 0.01;                // ratio: ceil(ratio * n) per scope
  double threshold = 10.0;            // threshold: every element with MS > threshold
  MemelScope scope = MemelScope::Sample;
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

  // Parses and validates; unknown keys and wrong types are errors naming the key.
  static MemelOptions from_json(const nlohmann::json& j, const std::string& where = "memel");
  nlohmann::json to_json() const;
  // Throws on inconsistent values (negative ratio, k < 1, ...).
  void validate() const;
};

const char* to_string(MemelMode m);
const char* to_string(MemelSelect s);
const char* to_string(MemelScope s);
const char* to_string(MemelNeurons n);

}  // namespace memel
