#pragma once
// Training on a device: the config's "device" parsed and checked, and a task whose
// batches are moved to that device before they reach the model.
#include <memory>
#include <string>

#include "train/task.h"

namespace memel::train {

// "cpu", "sim", "cuda", "cuda:N": the device, or an error naming the config key and the
// devices this build and machine have.
Device config_device(const std::string& name);

// Wraps `inner` so that loss, eval_batch, before_forward and batch_items see the batch's
// tensors on `device` (Tensor::to: no copy when they are there already, so on the CPU the
// wrapper changes nothing). The model is not moved: the caller moves it (Module::to).
std::unique_ptr<Task> on_device(std::unique_ptr<Task> inner, Device device);

// The batch with every defined tensor moved to `device`.
Example example_to(const Example& batch, Device device);

}  // namespace memel::train
