#!/usr/bin/env bash
# On a GPU machine: builds memel with the CUDA part for sm_90, runs the whole test suite
# (GPU tests included), and prints a short table last. The full log goes to
# gpu-check.log (or $OUT/gpu-check.log when OUT is set, as on the lent device machine).
# The GPU benchmarks (W1, W3, W4, W5 against PyTorch) join here as the CUDA backend lands.
set -uo pipefail
cd "$(dirname "$0")/.."
log="${OUT:-.}/gpu-check.log"
: > "$log"
step() { local name="$1"; shift; local t0=$(date +%s); if "$@" >>"$log" 2>&1; then r=ok; else r=FAILED; fi
         printf '%-28s %-7s %4ss\n' "$name" "$r" "$(( $(date +%s) - t0 ))" >> "$log.table"; }
: > "$log.table"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$log" 2>&1 || true
step "setup (apt)" bash scripts/setup.sh
step "configure (CUDA sm_90)" cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DMEMEL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90
step "build" cmake --build build-gpu -j "$(nproc)"
step "tests (ctest)" bash -c "cd build-gpu && ctest --output-on-failure -j 4"
step "cuda tests" bash -c "cd build-gpu && ./tests/test_cuda -s"
echo "== gpu-check $(date -u +%F) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) =="
cat "$log.table"
