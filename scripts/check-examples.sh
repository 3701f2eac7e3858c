#!/usr/bin/env bash
# Installs the built memel into a scratch prefix and builds + runs examples/train_mlp
# against the installed package (find_package(Memel CONFIG)). Argument: the build dir.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$src/build}" && pwd)"
prefix="$build/install-test"
rm -rf "$prefix" "$build/example-build"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$src/examples/train_mlp" -B "$build/example-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build/example-build" -j 2 >/dev/null
epochs=0
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && epochs=1
"$build/example-build/train_mlp" "$epochs"
