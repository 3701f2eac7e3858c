#!/usr/bin/python3
"""Reference outputs and input gradients from PyTorch for tests/autograd/test_torch_parity.cpp.

Usage: /usr/bin/python3 tests/python/op_parity.py IN.json OUT.json

IN.json:  {"cases": [{"name", "op", "params": {...},
                      "inputs": {name: {"shape": [...], "data": [...]}},       float32, get gradients
                      "int_inputs": {name: {"shape": [...], "data": [...]}},   int64 (ids, targets)
                      "consts": {name: {"shape": [...], "data": [...]}},       float32, no gradient
                      "grad_out": {"shape": [...], "data": [...]}}]}
OUT.json: {"torch": "<version>", "cases": [{"name", "output": {"shape", "data"},
                                            "grads": {name: {"shape", "data"}}}]}

Every case is computed in float32: its output y, then y.backward(grad_out) gives the
gradients of every float input. Exits with status 77 when torch cannot be imported,
so the caller can skip.
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        print("usage: op_parity.py IN.json OUT.json", file=sys.stderr)
        return 2
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # any import failure means: no reference available
        print("torch unavailable: %s" % e, file=sys.stderr)
        return 77
    torch.set_num_threads(1)

    def tensor(spec, dtype):
        return torch.tensor(spec["data"], dtype=dtype).reshape(spec["shape"])

    def dump(t):
        t = t.detach().to(torch.float32)
        return {"shape": list(t.shape), "data": t.reshape(-1).tolist()}

    def conv_kwargs(p, transposed):
        kw = dict(stride=tuple(p.get("stride", [1, 1])), padding=tuple(p.get("padding", [0, 0])),
                  dilation=tuple(p.get("dilation", [1, 1])), groups=p.get("groups", 1))
        if transposed:
            kw["output_padding"] = tuple(p.get("output_padding", [0, 0]))
        return kw

    with open(sys.argv[1]) as f:
        spec = json.load(f)
    results = []
    for case in spec["cases"]:
        op, p = case["op"], case.get("params", {})
        x = {k: tensor(v, torch.float32).requires_grad_() for k, v in case["inputs"].items()}
        ints = {k: tensor(v, torch.int64) for k, v in case.get("int_inputs", {}).items()}
        consts = {k: tensor(v, torch.float32) for k, v in case.get("consts", {}).items()}
        if op == "linear":
            y = F.linear(x["x"], x["weight"], x.get("bias"))
        elif op == "layer_norm":
            y = F.layer_norm(x["x"], (x["x"].shape[-1],), x.get("weight"), x.get("bias"), eps=p.get("eps", 1e-5))
        elif op == "gelu":
            y = F.gelu(x["x"])  # exact erf form
        elif op == "gelu_tanh":
            y = F.gelu(x["x"], approximate="tanh")
        elif op == "softmax":
            y = torch.softmax(x["x"], dim=p["axis"])
        elif op == "log_softmax":
            y = torch.log_softmax(x["x"], dim=p["axis"])
        elif op == "cross_entropy":
            y = F.cross_entropy(x["logits"], ints["target"], ignore_index=p.get("ignore_index", -100),
                                label_smoothing=p.get("label_smoothing", 0.0), reduction=p.get("reduction", "mean"))
        elif op == "matmul":
            y = torch.matmul(x["a"], x["b"])
        elif op == "conv2d":
            y = F.conv2d(x["x"], x["weight"], x.get("bias"), **conv_kwargs(p, False))
        elif op == "conv_transpose2d":
            y = F.conv_transpose2d(x["x"], x["weight"], x.get("bias"), **conv_kwargs(p, True))
        elif op == "max_pool2d":
            y = F.max_pool2d(x["x"], p["kernel"], p["stride"], p.get("padding", [0, 0]))
        elif op == "avg_pool2d":
            y = F.avg_pool2d(x["x"], p["kernel"], p["stride"], p.get("padding", [0, 0]),
                             count_include_pad=p.get("count_include_pad", True))
        elif op == "attention":  # softmax(scale q k^T + mask) v, written out (torch 1.13 has no fused op)
            s = torch.matmul(x["q"], x["k"].transpose(-1, -2)) * p["scale"]
            if "mask" in consts:
                s = s + consts["mask"]
            y = torch.matmul(torch.softmax(s, dim=-1), x["v"])
        elif op == "embedding":
            y = F.embedding(ints["ids"], x["weight"])
        else:
            print("op_parity.py: unknown op %r in case %r" % (op, case["name"]), file=sys.stderr)
            return 2
        y.backward(tensor(case["grad_out"], torch.float32))
        results.append({"name": case["name"], "output": dump(y),
                        "grads": {k: dump(v.grad) for k, v in x.items() if v.grad is not None}})
    with open(sys.argv[2], "w") as f:
        json.dump({"torch": torch.__version__, "cases": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
