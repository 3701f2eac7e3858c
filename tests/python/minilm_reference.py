#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 for tests/models/test_minilm.cpp and
examples/sentence_similarity.

DEV TOOLING ONLY (never run by the build or the tests; its output is committed as
tests/data/text/minilm_reference.json). It needs the checkpoint (scripts/fetch-minilm.sh)
and sentence-transformers on top of Debian's python3-torch:

    /usr/bin/python3 -m venv --system-site-packages /tmp/st
    /tmp/st/bin/pip install "transformers==4.30.2" nltk
    /tmp/st/bin/pip install --no-deps "sentence-transformers==2.2.2"
    /tmp/st/bin/python tests/python/minilm_reference.py models/all-MiniLM-L6-v2 \
        tests/data/text/minilm_reference.json

A second mode writes the small fixture the test suite always runs (the checkpoint is an
optional asset that CI does not have): a 2-layer BERT with hidden size 32, random weights
(torch.manual_seed(0)), whose vocabulary is the [PAD]/[UNK]/[CLS]/[SEP]/[MASK] tokens plus
the word pieces MiniLM's tokenizer makes of TEXTS, saved with save_pretrained, and its
embeddings computed by sentence-transformers (Transformer + mean Pooling) the same way:

    /tmp/st/bin/python tests/python/minilm_reference.py --tiny models/all-MiniLM-L6-v2 \
        tests/data/text/tiny-sentence-bert

The embeddings are SentenceTransformer(dir).encode(texts, normalize_embeddings=True)
(the fast tokenizer, max_seq_length 256, mean pooling, L2 normalisation). As a second
check the same texts go through transformers' BertModel with the pooling written here;
the largest difference between the two is printed and stored.
"""
import hashlib
import json
import sys

import torch
from sentence_transformers import SentenceTransformer, models
from transformers import AutoTokenizer, BertConfig, BertModel

LONG = " ".join(["The committee reviewed the proposal line by line and asked for more detail."] * 30)
TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A monkey is playing drums.",
    "Héllo, WORLD! Naïve café owners don't over-think: résumé-writing isn't 100% fun.",
    "北京是中国的首都。",
    "",
    LONG,  # ~390 word pieces: cut to 256 tokens
]


def tiny(minilm_dir, out_dir):
    import os
    os.makedirs(out_dir, exist_ok=True)
    big = AutoTokenizer.from_pretrained(minilm_dir)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for t in TEXTS:
        for piece in big.tokenize(t):
            if piece not in vocab:
                vocab.append(piece)
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": 256}, f)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=256)
    BertModel(cfg).eval().save_pretrained(out_dir, safe_serialization=True)
    body = models.Transformer(out_dir, max_seq_length=256)
    st = SentenceTransformer(modules=[body, models.Pooling(32, "mean")], device="cpu")
    write_reference(st, out_dir, os.path.join(out_dir, "reference.json"))


def main(model_dir, out):
    st = SentenceTransformer(model_dir, device="cpu")
    write_reference(st, model_dir, out)


def write_reference(st, model_dir, out):
    assert st.max_seq_length == 256, st.max_seq_length
    emb = st.encode(TEXTS, batch_size=4, convert_to_tensor=True, normalize_embeddings=True).double()

    tok = AutoTokenizer.from_pretrained(model_dir)
    bert = BertModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        b = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
        h = bert(**b).last_hidden_state.double()
        m = b["attention_mask"].unsqueeze(-1).double()
        own = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        own = own / own.norm(dim=1, keepdim=True).clamp(min=1e-12)
    diff = (own - emb).abs().max().item()
    lengths = [len(tok(t, truncation=True, max_length=256)["input_ids"]) for t in TEXTS]
    print("max |sentence-transformers - BertModel + own pooling| = %.3g" % diff)
    print("token counts:", lengths)
    sha = hashlib.sha256(open(model_dir + "/model.safetensors", "rb").read()).hexdigest()
    import sentence_transformers, transformers, tokenizers
    doc = {
        "source": "sentence-transformers %s (transformers %s, tokenizers %s, torch %s): "
                  "SentenceTransformer(dir).encode(texts, normalize_embeddings=True)"
                  % (sentence_transformers.__version__, transformers.__version__, tokenizers.__version__,
                     torch.__version__),
        "model_sha256": sha,
        "max_seq_length": 256,
        "check_vs_bertmodel_own_pooling": diff,
        "token_counts": lengths,
        "texts": TEXTS,
        "embeddings": [[float("%.8g" % v) for v in row] for row in emb.tolist()],
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
        f.write("\n")
    print("wrote", out)


if __name__ == "__main__":
    if sys.argv[1] == "--tiny":
        tiny(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])
