#!/usr/bin/env python3
"""memel-train on 2 MPI ranks against one process (issue 24), run by CTest.

A short version of configs/fmnist-mlp-memel.json (1 thread per rank, same global batch):
  - unbroken 2-rank run == unbroken 1-process run: final training loss, final evaluation,
    every memel layer's mean MS, within 1e-4 relative;
  - resume 2 -> 1 and 1 -> 2 from the middle checkpoint == the unbroken run, same tolerance;
  - a rank that fails ends the job with an error naming it (no hang).
  - SIGKILL of rank 1 mid-run ends the job with an error naming the rank (no hang), and
    the resume from the last complete checkpoint equals the unbroken run.
Usage: mpirun_train.py MEMEL_TRAIN MEMEL_TRAIN_FAULTS MPIRUN SOURCE_DIR WORK_DIR
Exit 77 (skipped) when the Fashion-MNIST files are absent.
"""
import json
import os
import shutil
import subprocess
import sys
import time

train, train_faults, mpirun, src, work = sys.argv[1:6]
DATA = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
if not os.path.exists(DATA):
    print("skipped: no Fashion-MNIST at", DATA)
    sys.exit(77)

TOL = 1e-4
SETS = ["threads=1", "train.steps=40", "train.batch_size=64", "train.eval_every=20", "train.log_every=10",
        "data.train_limit=4096", "data.eval_limit=1000", "checkpoint.every=20", "checkpoint.keep_last=0",
        "memel.dump_every=20", "memel.warmup=2"]
MPI = [mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "2"]
ENV = dict(os.environ, OMPI_MCA_btl="self,vader", OMPI_MCA_rmaps_base_oversubscribe="1", MEMEL_DIST_TIMEOUT_S="60")
failures = []


def run(ranks, out, extra=(), expect=0, program=None, env=None):
    cmd = (MPI if ranks == 2 else []) + [program or train, "--config", os.path.join(src, "configs/fmnist-mlp-memel.json"), "--quiet",
                                        "--out", out]
    for s in SETS:
        cmd += ["--set", s]
    cmd += list(extra)
    t = time.time()
    p = subprocess.run(cmd, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    print(f"[{ranks} rank(s)] {' '.join(extra) or 'fresh'} -> rc {p.returncode} in {time.time() - t:.1f} s")
    if (p.returncode == 0) != (expect == 0):
        print(p.stdout[-4000:])
        raise SystemExit(f"FAIL: {' '.join(cmd)} returned {p.returncode}")
    return p


def final(out):
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    loss = None
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("split") == "train":
                loss = r["loss"]
    figs = {"train loss": loss}
    for k, v in s["final"].items():
        if isinstance(v, (int, float)):
            figs["eval " + k] = v
    for k, v in s["memel_mean_ms"].items():
        figs["mean MS " + k] = v
    return figs


def compare(name, a, b):
    assert a.keys() == b.keys(), (a.keys(), b.keys())
    worst = 0.0
    for k in a:
        rel = abs(a[k] - b[k]) / max(abs(a[k]), 1e-12)
        worst = max(worst, rel)
        if rel > TOL:
            failures.append(f"{name}: {k} {a[k]!r} vs {b[k]!r} (relative {rel:.2e})")
    print(f"{name}: {len(a)} figures, largest relative difference {worst:.2e}")


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
one, two = os.path.join(work, "one"), os.path.join(work, "two")
run(1, one)
run(2, two)
f1, f2 = final(one), final(two)
print("one process:", json.dumps(f1))
print("two ranks:  ", json.dumps(f2))
compare("2 ranks vs 1 process", f1, f2)
# Resume across rank counts from the step-20 checkpoint of the other run.
for src_run, ranks, name in ((two, 1, "resume 2 -> 1"), (one, 2, "resume 1 -> 2")):
    d = os.path.join(work, name.replace(" ", "").replace(">", ""))
    shutil.copytree(src_run, d)
    run(ranks, d, ["--resume", os.path.join(d, "checkpoints", "step-00000020")])
    compare(name + " vs unbroken 1 process", f1, final(d))
# SIGKILL of rank 1 after step 30: the job ends (well within the 60 s collective timeout)
# with the rank named; the resume from the step-20 checkpoint equals the unbroken run.
killed = os.path.join(work, "killed")
t = time.time()
p = run(2, killed, expect=1, program=train_faults,
        env=dict(ENV, MEMEL_FAULT_KILL_STEP="30", MEMEL_FAULT_KILL_RANK="1"))
took = time.time() - t
named = "rank 1" in p.stdout
print(f"killed rank 1: job ended in {took:.1f} s, rank named: {named}")
if not named or took > 60:
    print(p.stdout[-3000:])
    failures.append("a killed rank did not end the job promptly with its rank named")
run(2, killed, ["--resume", killed])
compare("killed at 30, resumed on 2 ranks vs unbroken 1 process", f1, final(killed))
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("ok")
