"""Independent safetensors reader/writer (json + struct + torch.frombuffer, no
safetensors package) used by tests/core/test_safetensors_torch.cpp.

    safetensors_interop.py roundtrip IN OUT

reads IN (written by memel), checks its tensors against the values the C++ test built,
and writes OUT with this module's own writer: the same tensors (reverse name order,
unpadded header) plus F16, BF16, U8, I8 and BOOL tensors for memel to read back.
Exit status 0 when everything matches, 1 with a message otherwise.
"""
import json
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32, "I64": torch.int64,
          "F16": torch.float16, "BF16": torch.bfloat16, "U8": torch.uint8, "I8": torch.int8,
          "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}


def read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    buf = data[8 + n:]
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        dt = DTYPES[e["dtype"]]
        flat = torch.frombuffer(bytearray(buf[begin:end]), dtype=dt) if end > begin else torch.empty(0, dtype=dt)
        out[name] = flat.reshape(e["shape"])
    return out, meta


def write(path, tensors, meta):
    header, chunks, pos = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, t in tensors.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [pos, pos + len(raw)]}
        chunks.append(raw)
        pos += len(raw)
    text = json.dumps(header).encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def expected():
    """The tensors the C++ test writes (same formulas on both sides)."""
    i = torch.arange(12, dtype=torch.int64)
    return {
        "w.f32": ((i * 37 % 101 - 50).to(torch.float64) / 8).to(torch.float32).reshape(3, 4),
        "w.f64": (torch.arange(6, dtype=torch.float64) / 3).reshape(2, 3),
        "ids.i32": torch.tensor([-7, 0, 2147483647, -2147483648], dtype=torch.int32),
        "ids.i64": torch.tensor([2 ** 53 + 1, -1, 0], dtype=torch.int64),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 2, dtype=torch.float32),
    }


def fail(msg):
    print("safetensors_interop: " + msg)
    sys.exit(1)


def main():
    if len(sys.argv) != 4 or sys.argv[1] != "roundtrip":
        fail("usage: safetensors_interop.py roundtrip IN OUT")
    got, meta = read(sys.argv[2])
    want = expected()
    if sorted(got) != sorted(want):
        fail("names differ: %s vs %s" % (sorted(got), sorted(want)))
    for name, w in want.items():
        g = got[name]
        if g.dtype != w.dtype or g.shape != w.shape or not torch.equal(g, w):
            fail("%s differs: got %s %s %s, want %s %s %s" % (name, g.dtype, tuple(g.shape), g, w.dtype,
                                                              tuple(w.shape), w))
    if meta != {"producer": "memel", "note": "ünïcode ok"}:
        fail("metadata differs: %r" % meta)
    out = {k: got[k] for k in sorted(got, reverse=True)}
    out["h.f16"] = want["w.f32"].half()
    out["h.bf16"] = want["w.f32"].bfloat16()
    out["m.u8"] = torch.arange(6, dtype=torch.uint8) * 40
    out["m.i8"] = torch.tensor([-128, 5, 127], dtype=torch.int8)
    out["m.bool"] = torch.tensor([[True, False], [False, True]])
    write(sys.argv[3], out, {"producer": "python", "torch": torch.__version__})
    print("safetensors_interop: ok, %d tensors checked, %d written" % (len(want), len(out)))


if __name__ == "__main__":
    main()
