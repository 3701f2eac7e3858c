#include "train/faults.h"

#include <atomic>

namespace memel::train {

namespace {
std::atomic<FaultHook> g_hook{nullptr};
}

void set_fault_hook(FaultHook hook) { g_hook = hook; }

void fault_point(const char* point, int64_t step) {
  if (FaultHook h = g_hook.load()) h(point, step);
}

}  // namespace memel::train
