#!/usr/bin/python3
"""Reference side of tests/models/test_bert_parity.cpp: an independent BERT in PyTorch.

Written from torch primitives (Debian has no transformers package) with Hugging Face's
parameter names, so the weights memel saved load by name. In DIR the C++ test wrote
  bert.json                  the config (HF config.json fields)
  bert.weights.safetensors   bert.* (with pooler), cls.predictions.*, classifier.*
  bert.inputs.safetensors    input_ids, attention_mask, token_type_ids (B, T),
                             mlm_labels (B, T) (-100 = no loss), cls_labels (B)
This script computes in float64: hidden (B, T, C), pooled (B, C), mlm_logits (B, T, V),
cls_logits (B, L), mlm_loss, cls_loss, and the gradients of each loss with respect to
every parameter ("grad_mlm.<name>", "grad_cls.<name>"; zeros where unused), and writes
them to DIR/bert.torch.safetensors. Usage: bert_parity.py DIR
Exits with status 77 when torch cannot be imported (the C++ test then skips).
"""
import json
import math
import struct
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit(77)

from st_io import read_safetensors, write_safetensors

ACT = {"gelu": F.gelu, "relu": F.relu, "gelu_new": lambda x: F.gelu(x, approximate="tanh")}


def bert(P, cfg, ids, mask, tt):
    """Returns hidden (B, T, C) and pooled (B, C); P maps HF names to tensors."""
    B, T = ids.shape
    C, H = cfg["hidden_size"], cfg["num_attention_heads"]
    D, eps, act = C // H, cfg["layer_norm_eps"], ACT[cfg["hidden_act"]]

    def lin(x, name):
        return F.linear(x, P[name + ".weight"], P[name + ".bias"])

    def ln(x, name):
        return F.layer_norm(x, (C,), P[name + ".weight"], P[name + ".bias"], eps)

    e = "bert.embeddings."
    x = (F.embedding(ids, P[e + "word_embeddings.weight"], padding_idx=cfg["pad_token_id"])
         + P[e + "position_embeddings.weight"][torch.arange(T)] + P[e + "token_type_embeddings.weight"][tt])
    x = ln(x, e + "LayerNorm")
    dt = x.dtype
    ext = (1.0 - mask[:, None, None, :].to(dt)) * torch.finfo(dt).min  # (B, 1, 1, T)
    for i in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        heads = lambda t: t.view(B, T, H, D).transpose(1, 2)  # noqa: E731
        q, k, v = (heads(lin(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + ext, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, C)
        x = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        f = act(lin(x, p + "intermediate.dense"))
        x = ln(lin(f, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = torch.tanh(lin(x[:, 0], "bert.pooler.dense"))
    return x, pooled


def mlm_head(P, cfg, hidden):
    t = "cls.predictions.transform."
    h = F.linear(hidden, P[t + "dense.weight"], P[t + "dense.bias"])
    h = F.layer_norm(ACT[cfg["hidden_act"]](h), (cfg["hidden_size"],), P[t + "LayerNorm.weight"],
                     P[t + "LayerNorm.bias"], cfg["layer_norm_eps"])
    return F.linear(h, P["bert.embeddings.word_embeddings.weight"], P["cls.predictions.bias"])  # tied decoder


def main(d):
    cfg = json.load(open(f"{d}/bert.json"))
    P = {k: v.double().requires_grad_() for k, v in read_safetensors(f"{d}/bert.weights.safetensors").items()}
    inp = read_safetensors(f"{d}/bert.inputs.safetensors")
    ids, mask, tt = inp["input_ids"], inp["attention_mask"], inp["token_type_ids"]
    out = {}
    hidden, pooled = bert(P, cfg, ids, mask, tt)
    logits = mlm_head(P, cfg, hidden)
    mlm_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), inp["mlm_labels"].reshape(-1), ignore_index=-100)
    cls_logits = F.linear(pooled, P["classifier.weight"], P["classifier.bias"])
    cls_loss = F.cross_entropy(cls_logits, inp["cls_labels"])
    names = sorted(P)
    for tag, loss in (("mlm", mlm_loss), ("cls", cls_loss)):
        grads = torch.autograd.grad(loss, [P[n] for n in names], retain_graph=True, allow_unused=True)
        for n, g in zip(names, grads):
            out[f"grad_{tag}.{n}"] = g if g is not None else torch.zeros_like(P[n])
    out.update(hidden=hidden, pooled=pooled, mlm_logits=logits, cls_logits=cls_logits,
               mlm_loss=mlm_loss.reshape(1), cls_loss=cls_loss.reshape(1))
    write_safetensors(f"{d}/bert.torch.safetensors", {k: v.detach().double() for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1])
