#!/usr/bin/env python3
"""Corruption campaign against memel-train's checkpoints (docs/hardening.md).

Trains a small MEmeL run on Fashion-MNIST to the end, keeps a pristine copy, then N times:
copies it, damages one thing in its checkpoints and state, and resumes it with --resume.
The damage is drawn at random:

  flip       one byte of a checkpoint file (tensor data, safetensors header or state.json)
  truncate   a checkpoint file cut at a random length
  delete     a checkpoint file removed
  nan        a NaN written over one value of a weight or optimizer tensor
  nan+digest the same, with the file's digest in state.json recomputed (as a tool that
             "repairs" digests would): only the finite-value check can see it
  field      one field of state.json set to another value (step, loader position, RNG,
             schedule, best, wall time)
  range      a field set out of its range (negative, huge, wrong type), digest recomputed:
             only the range checks can see it

Each resume is classified:
  detected   the resume stopped with an error, or warned, naming the damaged file or
             checkpoint
  harmless   it said nothing, and its final weights, optimizer and memel state, metric
             lines and summary equal the pristine run's bit for bit (the damage was in a
             checkpoint the resume never needed)
  silent     it said nothing and something differs: a silently wrong result

The campaign fails (exit status 1) when any resume is silent.

  python3 scripts/integrity_campaign.py [--n 100] [--seed 1] [--build build] [--out DIR]
"""
import argparse
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import hashlib

FILES = ["model.safetensors", "memel.safetensors", "optimizer.safetensors", "state.json"]
KINDS = ["flip", "truncate", "delete", "nan", "nan+digest", "field", "range"]
TOTAL, EVERY = 48, 8


def config(data_dir):
    return {
        "task": "image-classification",
        "threads": 2,
        "model": {"name": "mlp", "config": {"hidden": [64], "dropout": 0.1}},
        "data": {"dir": data_dir, "train_limit": 2048, "eval_limit": 256},
        "optimizer": {"type": "adamw", "lr": 1e-3},
        "schedule": {"kind": "cosine", "warmup_steps": 4},
        "train": {"steps": TOTAL, "batch_size": 32, "eval_every": 16, "log_every": 4},
        "checkpoint": {"every": EVERY, "keep_last": 3},
        "memel": {"at": "paper", "mode": "rd", "warmup": 2, "dump_every": 16},
    }


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def state_digest(st):
    st = {k: v for k, v in st.items() if k != "digest"}
    # nlohmann::json dumps objects with sorted keys and no spaces: the same bytes here.
    return hashlib.sha256(json.dumps(st, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def rewrite_state(ckpt, edit):
    p = os.path.join(ckpt, "state.json")
    st = json.loads(read(p))
    edit(st)
    st["digest"] = state_digest(st)
    write(p, json.dumps(st, indent=2).encode())


def tensor_ranges(path):
    """(name, begin, end) of each F32 tensor's bytes in a safetensors file."""
    data = read(path)
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = []
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        b, e = v["data_offsets"]
        if e > b:
            out.append((k, 8 + n + b, 8 + n + e))
    return out


def damage(rng, run):
    """Applies one random damage to one checkpoint of `run`; returns its description."""
    ck_root = os.path.join(run, "checkpoints")
    steps = sorted(d for d in os.listdir(ck_root) if re.fullmatch(r"step-\d+", d))
    # The newest checkpoint is the one a resume reads: give it half the damage.
    name = steps[-1] if rng.random() < 0.5 else rng.choice(steps)
    ck = os.path.join(ck_root, name)
    kind = rng.choice(KINDS)
    if kind in ("flip", "truncate", "delete"):
        f = rng.choice(FILES)
        p = os.path.join(ck, f)
        data = read(p)
        if kind == "flip":
            i = rng.randrange(len(data))
            bit = 1 << rng.randrange(8)
            write(p, data[:i] + bytes([data[i] ^ bit]) + data[i + 1:])
            return kind, f"{name}/{f} byte {i} bit {bit}", name, f
        if kind == "truncate":
            n = rng.randrange(len(data))
            write(p, data[:n])
            return kind, f"{name}/{f} cut to {n} of {len(data)} bytes", name, f
        os.remove(p)
        return kind, f"{name}/{f} deleted", name, f
    if kind in ("nan", "nan+digest"):
        f = rng.choice(["model.safetensors", "memel.safetensors", "optimizer.safetensors"])
        p = os.path.join(ck, f)
        ranges = tensor_ranges(p)
        t, b, e = rng.choice(ranges)
        i = b + 4 * rng.randrange((e - b) // 4)
        data = read(p)
        write(p, data[:i] + struct.pack("<f", float("nan")) + data[i + 4:])
        if kind == "nan+digest":
            digest = hashlib.sha256(read(p)).hexdigest()
            rewrite_state(ck, lambda st: st["files"].__setitem__(f, digest))
        return kind, f"{name}/{f} tensor {t}: NaN at byte {i}", name, f
    p = os.path.join(ck, "state.json")
    st = json.loads(read(p))
    fields = [("step",), ("loader", "epoch"), ("loader", "batch"), ("rng", "offset"), ("rng", "seed"),
              ("schedule", "step"), ("best",), ("wall_s",)]
    path = rng.choice(fields)
    if kind == "field":
        obj = st
        for k in path[:-1]:
            obj = obj[k]
        old = obj[path[-1]]
        new = (old or 0) + rng.choice([1, 2, 7]) if not isinstance(old, float) else old * 1.5 + 0.01
        obj[path[-1]] = new
        write(p, json.dumps(st, indent=2).encode())
        return kind, f"{name}/state.json {'.'.join(path)}: {old} -> {new}", name, "state.json"
    bad = rng.choice([-1, -(2 ** 40), 2 ** 62, "12", 1.5, None, float("inf") if path[-1] in ("best", "wall_s") else -3])

    def edit(s):
        obj = s
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = bad
    if bad == float("inf"):
        # JSON has no inf: written as a huge number that parses to inf
        rewrite_state(ck, lambda s: edit(s))
        text = read(p).decode().replace("Infinity", "1e999")
        write(p, text.encode())
    else:
        rewrite_state(ck, edit)
    return kind, f"{name}/state.json {'.'.join(path)} = {bad!r} (digest recomputed)", name, "state.json"


def outcome_files(run):
    final = os.path.join(run, "checkpoints", f"step-{TOTAL:08d}")
    out = {}
    for f in ("model.safetensors", "memel.safetensors", "optimizer.safetensors"):
        p = os.path.join(final, f)
        out[f] = read(p) if os.path.exists(p) else None
    with open(os.path.join(run, "metrics.jsonl")) as f:
        out["metrics"] = [l for l in f.read().splitlines() if '"perf"' not in l]
    sp = os.path.join(run, "summary.json")
    s = json.loads(read(sp)) if os.path.exists(sp) else {}
    out["summary"] = {k: s.get(k) for k in ("steps", "final", "best", "memel_mean_ms")}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default=None)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = os.path.join(root, args.build, "tools", "memel-train")
    out = os.path.abspath(args.out or os.path.join(root, args.build, "integrity-campaign"))
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build first (bash scripts/build.sh)")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    cfg = os.path.join(out, "config.json")
    with open(cfg, "w") as f:
        json.dump(config(args.data), f, indent=2)
    pristine = os.path.join(out, "pristine")
    t0 = time.time()
    r = subprocess.run([binary, "--config", cfg, "--quiet", "--out", pristine], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"the reference run failed: {r.stderr}")
    reference = outcome_files(pristine)
    rng = random.Random(args.seed)
    fig = {"n": args.n, "detected": 0, "harmless": 0, "silent": 0, "by_kind": {}, "silent_cases": [],
           "stopped_with_error": 0, "fell_back_with_warning": 0}
    for i in range(args.n):
        run = os.path.join(out, "work")
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(pristine, run)
        kind, what, ck_name, fname = damage(rng, run)
        r = subprocess.run([binary, "--config", cfg, "--quiet", "--out", run, "--resume", run],
                           capture_output=True, text=True)
        text = r.stdout + r.stderr
        named = ck_name in text or fname in text
        if r.returncode != 0 and named:
            result = "detected"
            fig["stopped_with_error"] += 1
        elif r.returncode == 0 and "warning:" in text and named:
            result = "detected"
            fig["fell_back_with_warning"] += 1
            # A fallback must still end in the pristine run's result.
            if outcome_files(run) != reference:
                result = "silent"
        elif r.returncode == 0 and outcome_files(run) == reference:
            result = "harmless"
        else:
            result = "silent"
        fig[result] += 1
        k = fig["by_kind"].setdefault(kind, {"detected": 0, "harmless": 0, "silent": 0})
        k[result] += 1
        line = f"{i + 1:3d} {kind:10s} {result:8s} {what}"
        if result == "silent":
            fig["silent_cases"].append({"damage": what, "exit": r.returncode, "output": text[-600:]})
        print(line, flush=True)
    fig["seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(out, "campaign.json"), "w") as f:
        json.dump(fig, f, indent=2)
    print(json.dumps({k: v for k, v in fig.items() if k != "silent_cases"}, indent=2))
    return 1 if fig["silent"] else 0


if __name__ == "__main__":
    sys.exit(main())
