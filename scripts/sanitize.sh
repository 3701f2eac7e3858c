#!/usr/bin/env bash
# Sanitizer builds of the test suite (docs/hardening.md), with GCC's runtimes:
#
#   bash scripts/sanitize.sh asan [CTEST ARGS...]   AddressSanitizer + UndefinedBehaviorSanitizer:
#                                                   every test, in build-asan/
#   bash scripts/sanitize.sh tsan                   ThreadSanitizer: the thread pool and
#                                                   data loader tests, in build-tsan/
#
# UBSan stops at the first finding (-fno-sanitize-recover); LeakSanitizer runs with ASan.
# Every test runs under ASan+UBSan, the PyTorch comparisons included (the Python side runs
# in its own, uninstrumented process).
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-asan}"
shift || true
jobs="${MEMEL_JOBS:-2}"
bash scripts/setup.sh
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Kernels with high mmap randomisation (vm.mmap_rnd_bits=32) break GCC 12's ASan and TSan
# runtimes ("unexpected memory mapping", endless DEADLYSIGNAL); the tests run without
# address randomisation where setarch allows it.
run=()
if command -v setarch >/dev/null && setarch "$(uname -m)" -R true 2>/dev/null; then run=(setarch "$(uname -m)" -R); fi
case "$kind" in
  asan)
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}"
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DMEMEL_SANITIZE=ON -DMEMEL_CUDA=OFF >/dev/null
    cmake --build build-asan -j "$jobs"
    cd build-asan && "${run[@]}" ctest --output-on-failure -j "$jobs" "$@"
    ;;
  tsan)
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
    cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Release -DMEMEL_TSAN=ON -DMEMEL_CUDA=OFF -DMEMEL_BUILD_TOOLS=OFF >/dev/null
    cmake --build build-tsan -j "$jobs" --target test_core test_data
    export MEMEL_SOURCE_DIR="$PWD"
    "${run[@]}" build-tsan/tests/test_core --test-case="*thread pool*"
    "${run[@]}" build-tsan/tests/test_data
    ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan [ctest args]" >&2; exit 2 ;;
esac
