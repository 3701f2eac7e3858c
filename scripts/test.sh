#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite.
# MEMEL_TEST_ASAN=1 also builds and runs the suite under AddressSanitizer +
# UndefinedBehaviorSanitizer in build-asan/ (scripts/sanitize.sh; CI sets it, see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j "${MEMEL_JOBS:-2}")
if [ "${MEMEL_TEST_ASAN:-0}" = 1 ]; then
  echo "[test] ASan+UBSan build of the test suite (build-asan/; MEMEL_TEST_ASAN=0 skips it)"
  bash scripts/sanitize.sh asan
fi
