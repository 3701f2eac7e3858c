#pragma once
// The bins of the memel layer's MS histogram (memel/layer.h), a value type the memel pass
// kernels of every backend take (tensor/backend.h, Backend::memel_pass).
#include <cstdint>
#include <cstring>
#include <vector>

namespace memel {

// Bins of the MS histogram: hist_bins - 1 inner edges log-spaced from hist_min to
// hist_max; bin k covers [edges[k-1], edges[k]), bin 0 everything below edges[0] (and NaN),
// the last bin everything at or above edges.back(). operator() equals the binary search
// over the edges; it looks the bin up by the top bits of the double (1/128 of an octave
// per entry) and corrects it against the exact edges.
class MsHistBins {
 public:
  MsHistBins() = default;
  MsHistBins(int64_t bins, double lo, double hi);
  const std::vector<double>& edges() const { return edges_; }
  int64_t count() const { return static_cast<int64_t>(edges_.size()) + 1; }
  int64_t operator()(double p) const {
    const int64_t ne = static_cast<int64_t>(edges_.size());
    if (ne == 0 || !(p >= edges_[0])) return 0;
    if (p >= edges_[ne - 1]) return ne;
    int64_t k = table_[key(p) - key0_];
    if (wide_) return k + (p >= edges_[k]);  // at most one edge inside an entry
    while (p >= edges_[k]) ++k;
    return k;
  }

 private:
  static uint64_t key(double p) {
    uint64_t bits;
    std::memcpy(&bits, &p, sizeof bits);
    return bits >> 45;  // exponent and the top 7 mantissa bits (p > 0)
  }
  std::vector<double> edges_;
  std::vector<uint32_t> table_;  // per key from key0_: the bin of the key's smallest value
  uint64_t key0_ = 0;
  bool wide_ = false;  // every bin is wider than a table entry
};

}  // namespace memel
