#include "train/evaluator.h"

#include "autograd/node.h"

namespace memel::train {

json evaluate(Task& task, int64_t batch_size, int workers, const std::function<void(int64_t, int64_t)>& progress) {
  NoGradGuard ng;
  Module& model = *task.model();
  model.eval();
  task.eval_reset();
  DataLoaderOptions eo;
  eo.batch_size = batch_size;
  eo.shuffle = false;
  eo.num_workers = workers;
  DataLoader el(task.eval_set(), eo);
  const int64_t total = el.batches_per_epoch();
  Example b;
  for (int64_t done = 0; el.next(b);) {
    task.before_forward(b);
    task.eval_batch(b);
    if (progress) progress(++done, total);
  }
  model.train();
  return task.eval_metrics();
}

}  // namespace memel::train
