#!/usr/bin/env bash
# Development tooling (never needed by the build or the tests): a venv .venv-torch with the
# current PyTorch from PyPI, the second reference of bench/compare.sh (the first is
# Debian's python3-torch). A CPU-only machine needs only the CPU parts, but PyPI's wheel
# brings its CUDA libraries along (several GB).
#
#   scripts/dev-torch-venv.sh [TORCH_VERSION]      (default: the newest on PyPI)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python3}"
spec="torch${1:+==$1}"   # torchvision: the version pip matches to it
"$py" -m venv "$root/.venv-torch"
"$root/.venv-torch/bin/pip" install -q --disable-pip-version-check "$spec" torchvision numpy
"$root/.venv-torch/bin/python" -c "import torch; print('torch', torch.__version__, 'in', '$root/.venv-torch')"
