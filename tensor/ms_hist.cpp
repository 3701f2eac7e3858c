#include "tensor/ms_hist.h"

#include <algorithm>
#include <cmath>
#include <iomanip>

#include "core/error.h"

namespace memel {

MsHistBins::MsHistBins(int64_t bins, double lo, double hi) {
  const int64_t inner = bins - 2;
  for (int64_t i = 0; i <= inner && bins > 1; ++i)
    edges_.push_back(lo * std::pow(hi / lo, double(i) / double(std::max<int64_t>(inner, 1))));
  for (size_t i = 1; i < edges_.size(); ++i)  // 17 digits: such a range does not show at the default 6
    MEMEL_CHECK(edges_[i] > edges_[i - 1], "[memel] histogram of ", bins, " bins from hist_min ", std::setprecision(17),
                lo, " to hist_max ", hi, ": log-spaced edges round to equal values; use fewer bins or a wider range");
  if (edges_.size() < 2) return;
  key0_ = key(edges_.front());
  const uint64_t last = key(edges_.back());
  MEMEL_CHECK(last - key0_ < (uint64_t(1) << 24), "[memel] histogram range ", lo, " .. ", hi, " is too wide");
  table_.resize(static_cast<size_t>(last - key0_ + 1));
  for (uint64_t k = key0_; k <= last; ++k) {
    const uint64_t bits = k << 45;
    double v;
    std::memcpy(&v, &bits, sizeof v);
    table_[k - key0_] = static_cast<uint32_t>(std::upper_bound(edges_.begin(), edges_.end(), v) - edges_.begin());
  }
  // An entry spans a factor of at most 2^(1/128); edges further apart than that never
  // share an entry.
  wide_ = true;
  for (size_t i = 1; i < edges_.size(); ++i) wide_ = wide_ && edges_[i] > edges_[i - 1] * 1.01;
}

}  // namespace memel
