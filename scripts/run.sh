#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs a short real training run with
# MEmeL (reverse deactivation at the model's paper placement, with monitor layers beside
# it), then summarises and plots the per-neuron statistics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
config="${1:-configs/fmnist-mlp-memel.json}"
out="runs/main"
rm -rf "$out"
./build/tools/memel-train --config "$config" --out "$out"
last=$(ls "$out"/stats/*.json | sort | tail -n 1)
echo
./build/tools/memel-inspect stats "${last%.json}" --plot "$out/ms-histograms.png"
echo
echo "results: $out/summary.json   metrics: $out/metrics.jsonl   dumps: $out/stats/   picture: $out/ms-histograms.png"
