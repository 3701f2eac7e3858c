#!/usr/bin/python3
"""Reference side of tests/models/test_swin_parity.cpp.

For each case NAME in DIR the C++ test wrote
  NAME.json                 the architecture (torchvision SwinTransformer arguments)
  NAME.weights.safetensors  parameters under torchvision's names
  NAME.input.safetensors    "x" (B, 3, H, W) images and "g" (B, classes) output weights
This script builds torchvision.models.swin_transformer.SwinTransformer (0.14) in float64,
loads the weights, computes logits and the gradients of sum(logits * g) with respect to
every parameter, and writes NAME.torch.safetensors ("logits" and "grad.<torchvision
name>", float64). Usage: swin_parity.py DIR NAME [NAME ...]
"""
import json
import struct
import sys

import torch
from torchvision.models.swin_transformer import SwinTransformer

from st_io import read_safetensors, write_safetensors

def run_case(d, name):
    cfg = json.load(open(f"{d}/{name}.json"))
    torch.manual_seed(0)
    model = SwinTransformer(patch_size=[cfg["patch_size"]] * 2, embed_dim=cfg["embed_dim"], depths=cfg["depths"],
                            num_heads=cfg["num_heads"], window_size=[cfg["window_size"]] * 2,
                            mlp_ratio=cfg["mlp_ratio"], stochastic_depth_prob=0.0, num_classes=cfg["num_classes"])
    model = model.double()
    weights = {k: v.double() for k, v in read_safetensors(f"{d}/{name}.weights.safetensors").items()}
    res = model.load_state_dict(weights, strict=False)
    bad_missing = [k for k in res.missing_keys if not k.endswith("relative_position_index")]
    if bad_missing or res.unexpected_keys:
        raise SystemExit(f"{name}: missing {bad_missing} unexpected {res.unexpected_keys}")
    inp = read_safetensors(f"{d}/{name}.input.safetensors")
    model.train()  # stochastic depth is 0 and dropout 0: same as eval, but gradients on
    x = inp["x"].double()
    logits = model(x)
    (logits * inp["g"].double()).sum().backward()
    out = {"logits": logits}
    for k, p in model.named_parameters():
        out["grad." + k] = p.grad
    write_safetensors(f"{d}/{name}.torch.safetensors", out)


def main():
    torch.set_num_threads(1)
    d = sys.argv[1]
    for name in sys.argv[2:]:
        run_case(d, name)
    print("ok", len(sys.argv) - 2)


if __name__ == "__main__":
    main()
