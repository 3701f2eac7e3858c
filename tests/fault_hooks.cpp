// Linked into memel-train-faults only (a test program: memel-train plus this file): installs
// the fault hook of train/faults.h, driven by the environment.
//   MEMEL_FAULT_KILL_STEP=N               SIGKILL right after step N
//   MEMEL_FAULT_KILL_CHECKPOINT=STEP:POINT SIGKILL inside the writing of checkpoint STEP at POINT
//   MEMEL_FAULT_KILL_RANK=R               under mpirun: only rank R is killed
#include <csignal>
#include <cstdlib>
#include <string>

#include "train/faults.h"

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

void hook(const char* point, int64_t step) {
  static const std::string kill_step = env("MEMEL_FAULT_KILL_STEP"), kill_ckpt = env("MEMEL_FAULT_KILL_CHECKPOINT");
  static const std::string kill_rank = env("MEMEL_FAULT_KILL_RANK"), rank = env("OMPI_COMM_WORLD_RANK");
  if (!kill_rank.empty() && kill_rank != rank) return;
  const std::string p = point;
  if (p == "step" ? kill_step == std::to_string(step) : kill_ckpt == std::to_string(step) + ":" + p)
    std::raise(SIGKILL);
}

const bool installed = (memel::train::set_fault_hook(hook), true);

}  // namespace
