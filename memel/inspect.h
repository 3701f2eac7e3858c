#pragma once
// The inspector's library part: tables and pictures from statistics dumps.
#include <string>

#include "memel/dump.h"

namespace memel {

// Per-layer table: neurons, batches, mean MS, share of neurons with mean MS above
// `tau`, inhibitions, the most monosemantic neuron.
std::string format_dump_summary(const MemelDump& d, double tau = 10.0);
// The `n` neurons with the highest mean MS across all layers.
std::string format_dump_top(const MemelDump& d, int64_t n);
// Layer-by-layer comparison of two dumps (e.g. baseline vs RD): mean MS, share above
// tau, and their changes; ends with a one-line verdict ("did monosemanticity fall?").
// Both dumps must hold the same layers with the same neuron shapes (the same model and
// memel placement); otherwise throws memel::Error listing the differences.
std::string format_dump_diff(const MemelDump& a, const MemelDump& b, double tau = 10.0, const std::string& name_a = "A",
                             const std::string& name_b = "B");
// The differences in layer names and neuron shapes between two dumps ("layer 'x' only in
// A; ..."), empty when they hold the same layers.
std::string dump_mismatch(const MemelDump& a, const MemelDump& b, const std::string& name_a = "A",
                          const std::string& name_b = "B");
// Histograms of MS per layer as a PNG picture with axes and labels. With `other`, its
// histograms are drawn as outlines over the bars for comparison.
void plot_dump_png(const MemelDump& d, const std::string& png_path, const MemelDump* other = nullptr);

}  // namespace memel
