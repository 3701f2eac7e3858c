#pragma once
// Fault injection for tests only. The trainer calls fault_point() at named places (after
// a step, between the files of a checkpoint, ...); nothing happens unless a test program
// installed a hook. memel-train installs none, so no input or environment variable can
// reach one; the test program memel-train-faults (tests/fault_hooks.cpp) installs one
// driven by MEMEL_FAULT_KILL_STEP / MEMEL_FAULT_KILL_CHECKPOINT (docs/hardening.md).
#include <cstdint>

namespace memel::train {

using FaultHook = void (*)(const char* point, int64_t step);
void set_fault_hook(FaultHook hook);
// Points: "step" (after step N, before its evaluation and checkpoint) and the checkpoint
// writer's "begin", "model", "memel", "optimizer", "state", "replacing", "renamed", "pruning".
void fault_point(const char* point, int64_t step);

}  // namespace memel::train
