#!/usr/bin/env python3
"""Optimizer parity reference: runs torch.optim on the cases written by
tests/optim/test_adamw_parity.cpp and writes the final parameters.

usage: adamw_parity.py IN.json OUT.json

IN:  {"cases": [{"name": str, "optimizer": "AdamW" | "Adam" | "SGD",
                 "defaults": {optimizer keyword arguments, "betas" as a list},
                 "groups": [{"params": [param indices], optional "lr", "weight_decay"}],
                 "params": [{"shape": [...], "data": [flat float32 values]}],
                 "grads": [[flat gradient per parameter] per step]}]}
OUT: {"torch": version, "cases": {name: [[flat final values] per parameter]}}
"""
import json
import sys

import torch


def run_case(case):
    params = [torch.tensor(p["data"], dtype=torch.float32).reshape(p["shape"]).requires_grad_()
              for p in case["params"]]
    groups = []
    for g in case["groups"]:
        group = {k: v for k, v in g.items() if k != "params"}
        group["params"] = [params[i] for i in g["params"]]
        groups.append(group)
    kwargs = dict(case["defaults"])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    cls = {"AdamW": torch.optim.AdamW, "Adam": torch.optim.Adam, "SGD": torch.optim.SGD}[case["optimizer"]]
    opt = cls(groups, **kwargs)
    for step_grads in case["grads"]:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=torch.float32).reshape(p.shape)
        opt.step()
    return [p.detach().reshape(-1).tolist() for p in params]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: adamw_parity.py IN.json OUT.json")
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    out = {"torch": torch.__version__, "cases": {c["name"]: run_case(c) for c in spec["cases"]}}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
