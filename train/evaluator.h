#pragma once
// The evaluation pass: the task's metrics over its whole evaluation set.
#include <functional>

#include "train/task.h"

namespace memel::train {

// Runs in eval mode without gradients (the model is put back in train mode after),
// calling progress(batches done, batches in all) after each batch; returns the task's
// metrics.
json evaluate(Task& task, int64_t batch_size, int workers,
              const std::function<void(int64_t done, int64_t total)>& progress = {});

}  // namespace memel::train
