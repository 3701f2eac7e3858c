#pragma once
// Statistics dumps: per memel layer the neuron shape, count, mean, var, how often each
// neuron was inhibited, the mean MS per neuron and a log-spaced MS histogram over the
// batches since the previous dump, and the top neurons by mean MS. Written as
// PREFIX.safetensors (tensors "<layer>.count|mean|var|inhibited|ms_mean|ms_hist") and
// PREFIX.json (format "memel-stats/1": step, layers with options, histogram edges,
// summary figures and the top list).
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layers/module.h"

namespace memel {

struct LayerDump {
  std::string name;
  Shape neuron_shape;
  int64_t batches = 0;
  nlohmann::json options;
  std::vector<double> hist_edges;  // inner edges; bin 0 is below edges[0], the last bin at/above edges.back()
  Tensor count, mean, var, inhibited, ms_mean, ms_hist;
  // Summary figures.
  double mean_ms = 0;       // average over neurons of their mean MS in the window
  double total_inhibited = 0;
  struct Top {
    int64_t flat = 0;
    std::vector<int64_t> index;
    double mean_ms = 0, inhibited = 0;
  };
  std::vector<Top> top;
  // Share of neurons whose mean MS is above `tau`.
  double share_above(double tau) const;
};

struct MemelDump {
  int64_t step = 0;
  std::vector<LayerDump> layers;
  const LayerDump* find(const std::string& name) const;
};

// The n + 1 finite edges of an MS histogram with inner edges `inner` (n - 1 of them, as
// LayerDump::hist_edges): 0 below the first bin (MS is never negative; NaN scores are
// counted in the first bin too) and one more log-spaced step above the last.
std::vector<double> ms_hist_bounds(const std::vector<double>& inner);

// Collects the state of every memel layer in `root` (nothing written).
MemelDump collect_memel_dump(const Module& root, int64_t step);
// Writes PREFIX.safetensors and PREFIX.json atomically; optionally resets each layer's
// window (MS sums and histogram) so the next dump covers the batches after this one.
void write_memel_dump(const Module& root, const std::string& prefix, int64_t step, bool reset_window = true);
// Reads a dump from PREFIX, PREFIX.json or PREFIX.safetensors.
MemelDump read_memel_dump(const std::string& path);

// Sort key of a mean MS, highest first: NaN (statistics of a diverged run) ranks last, so
// the order stays a strict weak ordering.
inline double ms_sort_key(double v) { return std::isnan(v) ? -HUGE_VAL : v; }

}  // namespace memel
