#!/usr/bin/env bash
# Installs the built memel into a scratch prefix, then builds and runs every project in
# examples/ against the installed package (find_package(Memel CONFIG)). Argument: the
# build dir. Fashion-MNIST runs are short when the dataset is installed (skipped when
# not); the sentence-similarity example runs on the small Hugging Face BERT of the tests
# and, when fetched (scripts/fetch-minilm.sh), on all-MiniLM-L6-v2, where its nearest
# neighbours are checked.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$src/build}" && pwd)"
prefix="$build/install-test"
rm -rf "$prefix" "$build/examples"
cmake --install "$build" --prefix "$prefix" >/dev/null
for ex in train_mlp sentence_similarity swin_finetune; do
  cmake -S "$src/examples/$ex" -B "$build/examples/$ex" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build/examples/$ex" -j 2 >/dev/null
done
bin="$build/examples"
fmnist=/usr/share/datasets/fashion-mnist
if [ -f "$fmnist/train-images-idx3-ubyte.gz" ]; then
  "$bin/train_mlp/train_mlp" 1
  (cd "$bin/swin_finetune" && ./swin_finetune 30 "$fmnist") | tee "$bin/swin_finetune.log"
  # Fine-tuning must learn the new classes: test accuracy well above chance (0.25).
  awk '/^fine-tuned 30 steps on classes 6-9/ { ok = ($NF > 0.4) } END { exit !ok }' "$bin/swin_finetune.log"
else
  "$bin/train_mlp/train_mlp" 0
  echo "examples: Fashion-MNIST not installed, swin_finetune not run"
fi
"$bin/sentence_similarity/sentence_similarity" "$src/tests/data/text/tiny-sentence-bert"
minilm="${MEMEL_MINILM_DIR:-$src/models/all-MiniLM-L6-v2}"
if [ -f "$minilm/model.safetensors" ]; then
  "$bin/sentence_similarity/sentence_similarity" "$minilm" | tee "$bin/sentence_similarity.log"
  grep -q "^nearest: A man is eating food. -> A man is eating a piece of bread." "$bin/sentence_similarity.log"
  grep -q "^nearest: A man is riding a horse. -> A man rides a white horse." "$bin/sentence_similarity.log"
else
  echo "examples: no all-MiniLM-L6-v2 at $minilm (scripts/fetch-minilm.sh), run on the small test BERT only"
fi
