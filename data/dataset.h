#pragma once
// Datasets as size()/get(i) (flashlight's idiom), batching by stacking per key, and a
// DataLoader that shuffles, batches and prefetches on threads.
//
// An Example maps names to tensors: {"image", "label"}, {"input_ids", "attention_mask",
// "token_type_ids", "label"}, {"frames"}, ... A batch is an Example whose tensors have
// a leading batch axis.
#include <condition_variable>
#include <exception>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tensor/tensor.h"

namespace memel {

using Example = std::map<std::string, Tensor>;

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Example i in [0, size()). Must be safe to call from several threads at once.
  virtual Example get(int64_t i) const = 0;
  // The batch of examples `indices`, stacked per key. The default calls get() and
  // collate(); datasets that can gather faster override it.
  virtual Example get_batch(const std::vector<int64_t>& indices) const;
  // The batch `indices` as drawn in epoch `epoch`; the DataLoader calls this. Datasets
  // whose examples depend on the epoch (random augmentation keyed by (seed, epoch, i))
  // override it; the default ignores the epoch and calls get_batch().
  virtual Example get_batch_at_epoch(const std::vector<int64_t>& indices, int64_t epoch) const {
    (void)epoch;
    return get_batch(indices);
  }
};

// Stacks the examples per key into new contiguous CPU tensors with a leading batch axis:
// each key's tensors (S...) -> (B, S...). Every example must have the same keys, and
// per key the same shape and dtype.
Example collate(const std::vector<Example>& examples);

// Rows of stacked tensors: example i = {key: columns[key][i]} (views, no copy). Every
// column must have the same size on axis 0.
class TensorDataset : public Dataset {
 public:
  explicit TensorDataset(std::map<std::string, Tensor> columns);
  int64_t size() const override { return size_; }
  Example get(int64_t i) const override;
  Example get_batch(const std::vector<int64_t>& indices) const override;  // row gather
  const std::map<std::string, Tensor>& columns() const { return columns_; }

 private:
  std::map<std::string, Tensor> columns_;  // contiguous CPU copies
  int64_t size_ = 0;
};

struct DataLoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;  // drop a final batch smaller than batch_size
  uint64_t seed = 0;       // the order of epoch e is a function of (seed, e) only
  int num_workers = 1;     // threads building batches ahead; 0 = build in next()
  int prefetch = 2;        // batches ready ahead per worker
};

// Where a loader stands: the next batch next() returns is batch `batch` of epoch `epoch`.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;
  bool operator==(const LoaderPosition& o) const { return epoch == o.epoch && batch == o.batch; }
};

// Iterates batches epoch by epoch. Batch b of epoch e holds the examples at positions
// [b*B, (b+1)*B) of the epoch's order (the identity, or a permutation drawn from a
// memel::Generator keyed by (seed, e)), so batches do not depend on the number of
// worker or compute threads, and set_position() resumes exactly.
class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const;
  const DataLoaderOptions& options() const { return opt_; }
  const Dataset& dataset() const { return *dataset_; }

  // The next batch of the current epoch into `batch`; at the end of the epoch returns
  // false and moves to (epoch + 1, 0). Typical loop:
  //   while (loader.next(batch)) { ... }   // one epoch
  bool next(Example& batch);
  // The next batch, crossing into the next epoch when this one is done (step loops).
  Example next_batch();

  LoaderPosition position() const { return pos_; }
  // Continue from `p` (e.g. a checkpoint's position): the following batches equal those
  // an uninterrupted loader would have produced from there.
  void set_position(LoaderPosition p);

  // The order of epoch `epoch`: a permutation of [0, size) (identity without shuffle).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  Example build(int64_t batch) const;
  void start_workers();
  void stop_workers();
  void worker_loop();

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions opt_;
  LoaderPosition pos_;

  // Prefetching state for the current epoch; guarded by mu_.
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t next_to_build_ = 0;            // next batch index a worker claims
  std::map<int64_t, Example> ready_;     // built batches by index
  std::map<int64_t, std::exception_ptr> errors_;  // failed batches by index
};

}  // namespace memel
