#include "data/dataset.h"

#include <algorithm>
#include <cstring>
#include <exception>

#include "core/error.h"
#include "core/rng.h"

namespace memel {
namespace {

Tensor contiguous_cpu(const Tensor& t) {
  Tensor c = t.to(Device::cpu());
  return c.is_contiguous() ? c : c.contiguous_copy();
}

}  // namespace

Example Dataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<Example> ex;
  ex.reserve(indices.size());
  for (int64_t i : indices) ex.push_back(get(i));
  return collate(ex);
}

Example collate(const std::vector<Example>& examples) {
  MEMEL_CHECK(!examples.empty(), "[collate] no examples to stack");
  const Example& first = examples[0];
  Example out;
  for (const auto& [key, t0] : first) {
    MEMEL_CHECK(t0.defined(), "[collate] example 0 has an undefined tensor \"", key, "\"");
    Shape shape = t0.shape();
    shape.insert(shape.begin(), static_cast<int64_t>(examples.size()));
    Tensor batch = Tensor::empty(shape, t0.dtype());  // (B, S...)
    size_t row = t0.nbytes();
    char* dst = static_cast<char*>(batch.raw_data());
    for (size_t b = 0; b < examples.size(); ++b) {
      auto it = examples[b].find(key);
      MEMEL_CHECK(it != examples[b].end() && it->second.defined(), "[collate] example ", b, " has no \"", key,
                  "\" (example 0 has)");
      const Tensor& t = it->second;
      MEMEL_CHECK(t.shape() == t0.shape() && t.dtype() == t0.dtype(), "[collate] \"", key, "\" of example ", b,
                  " is ", shape_str(t.shape()), " ", dtype_name(t.dtype()), ", example 0's is ",
                  shape_str(t0.shape()), " ", dtype_name(t0.dtype()));
      if (row) std::memcpy(dst + b * row, contiguous_cpu(t).raw_data(), row);
    }
    out.emplace(key, batch);
  }
  for (size_t b = 1; b < examples.size(); ++b)
    MEMEL_CHECK(examples[b].size() == first.size(), "[collate] example ", b, " has ", examples[b].size(),
                " keys, example 0 has ", first.size());
  return out;
}

// --- TensorDataset -------------------------------------------------------------------

TensorDataset::TensorDataset(std::map<std::string, Tensor> columns) {
  MEMEL_CHECK(!columns.empty(), "[TensorDataset] no columns");
  bool first = true;
  for (auto& [key, t] : columns) {
    MEMEL_CHECK(t.defined() && t.dim() >= 1, "[TensorDataset] column \"", key,
                "\" must be a tensor with at least one axis");
    if (first) size_ = t.size(0);
    MEMEL_CHECK(t.size(0) == size_, "[TensorDataset] column \"", key, "\" has ", t.size(0), " rows, expected ",
                size_, " (as the first column)");
    first = false;
    columns_.emplace(key, contiguous_cpu(t));
  }
}

Example TensorDataset::get(int64_t i) const {
  MEMEL_CHECK(i >= 0 && i < size_, "[TensorDataset] index ", i, " out of range [0, ", size_, ")");
  Example ex;
  for (const auto& [key, t] : columns_) {
    Shape shape(t.shape().begin() + 1, t.shape().end());
    Shape strides(t.strides().begin() + 1, t.strides().end());
    ex.emplace(key, t.as_strided(shape, strides, t.offset() + i * t.strides()[0]));  // (S...)
  }
  return ex;
}

Example TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  MEMEL_CHECK(!indices.empty(), "[TensorDataset] empty batch");
  for (int64_t i : indices)
    MEMEL_CHECK(i >= 0 && i < size_, "[TensorDataset] index ", i, " out of range [0, ", size_, ")");
  Example out;
  for (const auto& [key, t] : columns_) {
    Shape shape = t.shape();
    shape[0] = static_cast<int64_t>(indices.size());
    Tensor batch = Tensor::empty(shape, t.dtype());  // (B, S...)
    size_t row = size_ ? t.nbytes() / static_cast<size_t>(size_) : 0;
    const char* src = static_cast<const char*>(t.raw_data());
    char* dst = static_cast<char*>(batch.raw_data());
    if (row)
      for (size_t b = 0; b < indices.size(); ++b) std::memcpy(dst + b * row, src + indices[b] * row, row);
    out.emplace(key, batch);
  }
  return out;
}

// --- DataLoader ----------------------------------------------------------------------

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), opt_(options) {
  MEMEL_CHECK(dataset_ != nullptr, "[DataLoader] no dataset");
  MEMEL_CHECK(opt_.batch_size > 0, "[DataLoader] batch_size must be positive, got ", opt_.batch_size);
  MEMEL_CHECK(opt_.num_workers >= 0, "[DataLoader] num_workers must be >= 0, got ", opt_.num_workers);
  MEMEL_CHECK(opt_.prefetch >= 1, "[DataLoader] prefetch must be >= 1, got ", opt_.prefetch);
}

DataLoader::~DataLoader() { stop_workers(); }

int64_t DataLoader::batches_per_epoch() const {
  int64_t n = dataset_->size(), b = opt_.batch_size;
  return opt_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  int64_t n = dataset_->size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (opt_.shuffle) {
    // Epoch e draws from the stream (seed, offset e * 2^40): disjoint streams per epoch.
    Generator g(opt_.seed);
    g.set_state(opt_.seed, static_cast<uint64_t>(epoch) << 40);
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[g.randint(0, i + 1)]);
  }
  return order;
}

Example DataLoader::build(int64_t batch) const {
  int64_t n = static_cast<int64_t>(order_.size());
  int64_t b0 = batch * opt_.batch_size, b1 = std::min(n, b0 + opt_.batch_size);
  std::vector<int64_t> idx(order_.begin() + b0, order_.begin() + b1);
  return dataset_->get_batch_at_epoch(idx, order_epoch_);
}

void DataLoader::start_workers() {
  stop_workers();
  if (order_epoch_ != pos_.epoch) {
    order_ = epoch_order(pos_.epoch);
    order_epoch_ = pos_.epoch;
  }
  ready_.clear();
  errors_.clear();
  next_to_build_ = pos_.batch;
  stop_ = false;
  for (int w = 0; w < opt_.num_workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  ready_.clear();
  errors_.clear();
}

void DataLoader::worker_loop() {
  const int64_t total = batches_per_epoch();
  const int64_t window = static_cast<int64_t>(opt_.prefetch) * opt_.num_workers;
  for (;;) {
    int64_t k;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || next_to_build_ >= total || next_to_build_ < pos_.batch + window; });
      if (stop_ || next_to_build_ >= total) return;
      k = next_to_build_++;
    }
    Example b;
    std::exception_ptr err;
    try {
      b = build(k);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      // Moved, not copied: the worker keeps no reference, so the consumer thread alone
      // releases the exception (its reference count lives in uninstrumented libstdc++,
      // which ThreadSanitizer would otherwise report as a race on the message).
      if (err) errors_[k] = std::move(err);
      else ready_[k] = std::move(b);
    }
    cv_.notify_all();
  }
}

bool DataLoader::next(Example& batch) {
  const int64_t total = batches_per_epoch();
  if (pos_.batch >= total) {
    stop_workers();
    pos_ = {pos_.epoch + 1, 0};
    return false;
  }
  if (order_epoch_ != pos_.epoch || (opt_.num_workers > 0 && workers_.empty())) start_workers();
  if (opt_.num_workers == 0) {
    batch = build(pos_.batch);
    ++pos_.batch;
    return true;
  }
  std::unique_lock<std::mutex> lk(mu_);
  const int64_t k = pos_.batch;
  cv_.wait(lk, [&] { return ready_.count(k) || errors_.count(k); });
  auto e = errors_.find(k);
  if (e != errors_.end()) {
    std::exception_ptr err = e->second;
    errors_.erase(e);
    ++pos_.batch;  // the failed batch is skipped only if the caller continues
    lk.unlock();
    cv_.notify_all();
    std::rethrow_exception(err);
  }
  batch = std::move(ready_[k]);
  ready_.erase(k);
  ++pos_.batch;
  lk.unlock();
  cv_.notify_all();
  return true;
}

Example DataLoader::next_batch() {
  MEMEL_CHECK(batches_per_epoch() > 0, "[DataLoader] an epoch has no batches (", dataset_->size(),
              " examples, batch_size ", opt_.batch_size, ", drop_last)");
  Example b;
  if (next(b)) return b;
  MEMEL_CHECK(next(b), "[DataLoader] no batch at the start of an epoch");
  return b;
}

void DataLoader::set_position(LoaderPosition p) {
  MEMEL_CHECK(p.epoch >= 0 && p.batch >= 0 && p.batch <= batches_per_epoch(), "[DataLoader] position (epoch ",
              p.epoch, ", batch ", p.batch, ") is outside an epoch of ", batches_per_epoch(), " batches");
  stop_workers();
  pos_ = p;
}

}  // namespace memel
