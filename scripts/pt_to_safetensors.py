#!/usr/bin/env python3
"""Converts a PyTorch checkpoint (pytorch_model.bin, a pickled state dict) to safetensors.

    /usr/bin/python3 scripts/pt_to_safetensors.py pytorch_model.bin model.safetensors

Needs torch (Debian's python3-torch); the safetensors file is written by the small writer
below, so the `safetensors` package is not needed. Layout written: 8-byte little-endian
header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}
padded with spaces to a multiple of 8, then the raw little-endian tensor bytes in header
order. Tensors that share storage (tied weights) are written as separate copies.
"""
import json
import struct
import sys

import torch

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL"}


def tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def save(state, path, metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        if t.dtype not in DTYPES:
            raise SystemExit("unsupported dtype %s for %s" % (t.dtype, name))
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return header


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: pt_to_safetensors.py pytorch_model.bin model.safetensors")
    state = torch.load(sys.argv[1], map_location="cpu")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    header = save(state, sys.argv[2])
    print("wrote %s: %d tensors" % (sys.argv[2], len(header) - 1))


if __name__ == "__main__":
    main()
