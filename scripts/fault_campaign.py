#!/usr/bin/env python3
"""SIGKILL campaign against memel-train (docs/hardening.md).

Trains a small MEmeL run on Fashion-MNIST and kills it again and again, each time at a
random point, then resumes it with --resume. Half of the kills come from a timer at a
random moment of the run (of a resumed run: after it reported where it resumed from);
they land in training, evaluation, dumps or checkpoint writing, wherever the process
happens to be. The other half are placed inside the
checkpoint writer with MEMEL_FAULT_KILL_CHECKPOINT=STEP:POINT (random step, random
point between its files, after its rename, or while older checkpoints are pruned).

After every kill the run directory is checked: every checkpoints/step-N/ must be
complete (every file present and readable, state.json naming step N); step-N.tmp/ or
step-N.old/ directories are leftovers being written or removed, not checkpoints. The
next resume must start from the newest complete checkpoint. When a run finally ends,
its metrics and final weights must equal those of an unbroken run bit for bit.

  python3 scripts/fault_campaign.py [--kills 50] [--seed 1] [--build build] [--out DIR]

Prints the figures and writes them to OUT/campaign.json. Exit status 1 when any check
failed. Needs build/tests/memel-train-faults (a test build) and Debian's dataset-fashion-mnist.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

POINTS = ["begin", "model", "memel", "optimizer", "state", "renamed", "pruning"]


def config(data_dir):
    return {
        "task": "image-classification",
        "threads": 2,
        "model": {"name": "mlp", "config": {"hidden": [256, 256], "dropout": 0.1}},
        "data": {"dir": data_dir, "train_limit": 4096, "eval_limit": 512},
        "optimizer": {"type": "adamw", "lr": 1e-3},
        "schedule": {"kind": "cosine", "warmup_steps": 8},
        "train": {"steps": 240, "batch_size": 32, "eval_every": 16, "log_every": 4},
        "checkpoint": {"every": 8, "keep_last": 2},
        "memel": {"at": "paper", "mode": "rd", "warmup": 2, "dump_every": 16},
    }


CKPT_EVERY, TOTAL = 8, 240


def safetensors_ok(path):
    """The file holds a complete safetensors document (header, tensors tiling the buffer)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("header longer than the file")
    header = json.loads(data[8:8 + n])
    end = max([v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"] + [0])
    if end != len(data) - 8 - n:
        raise ValueError(f"tensors cover {end} of {len(data) - 8 - n} buffer bytes")


def inspect_checkpoints(run):
    """(complete step numbers, partial checkpoint problems, leftover names)."""
    d = os.path.join(run, "checkpoints")
    complete, partial, leftovers = [], [], []
    if not os.path.isdir(d):
        return complete, partial, leftovers
    for name in sorted(os.listdir(d)):
        if name == "best":
            continue
        if not re.fullmatch(r"step-\d+", name):
            leftovers.append(name)
            continue
        p = os.path.join(d, name)
        try:
            for f in ("model.safetensors", "memel.safetensors", "optimizer.safetensors"):
                safetensors_ok(os.path.join(p, f))
            with open(os.path.join(p, "state.json")) as f:
                st = json.load(f)
            if f"step-{st['step']:08d}" != name:
                raise ValueError(f"state.json says step {st['step']}")
            complete.append(int(name[5:]))
        except Exception as e:  # noqa: BLE001 - any problem makes the checkpoint partial
            partial.append(f"{name}: {e}")
    return complete, partial, leftovers


def metric_lines(path):
    with open(path) as f:
        return [l for l in f.read().splitlines() if '"perf"' not in l]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default=None)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # memel-train with the test-only fault hooks (MEMEL_FAULT_KILL_CHECKPOINT works only there)
    binary = os.path.join(root, args.build, "tests", "memel-train-faults")
    out = os.path.abspath(args.out or os.path.join(root, args.build, "fault-campaign"))
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build first (bash scripts/build.sh)")
    if not os.path.exists(os.path.join(args.data, "train-images-idx3-ubyte.gz")):
        sys.exit("Fashion-MNIST not found: bash scripts/setup.sh installs dataset-fashion-mnist")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    cfg = os.path.join(out, "config.json")
    with open(cfg, "w") as f:
        json.dump(config(args.data), f, indent=2)
    rng = random.Random(args.seed)
    t_start = time.time()

    def start(run, resume, env_extra, log):
        cmd = [binary, "--config", cfg, "--out", run]
        if resume:
            cmd += ["--resume", run]
        env = dict(os.environ, **env_extra)
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    # The unbroken reference run, timed.
    ref = os.path.join(out, "unbroken")
    t0 = time.time()
    with open(os.path.join(out, "unbroken.log"), "w") as log:
        rc = start(ref, False, {}, log).wait()
    ref_seconds = time.time() - t0
    if rc != 0:
        sys.exit(f"the unbroken run failed (exit {rc}); see {out}/unbroken.log")
    ref_metrics = metric_lines(os.path.join(ref, "metrics.jsonl"))
    final = f"checkpoints/step-{TOTAL:08d}"
    ref_final = {f: read(os.path.join(ref, final, f)) for f in ("model.safetensors", "optimizer.safetensors", "memel.safetensors")}

    fig = {
        "kills": 0, "kills_timer": 0, "kills_hook": {p: 0 for p in POINTS},
        "kills_during_checkpoint_writing_seen": 0, "timer_runs_finished_before_kill": 0,
        "resumes": 0, "resumes_succeeded": 0, "resumes_from_newest_complete": 0,
        "resumes_killed_before_reporting": 0, "restarts_no_checkpoint_yet": 0,
        "partial_checkpoints_seen": 0, "leftover_dirs_seen": 0,
        "runs_completed": 0, "runs_identical_to_unbroken": 0,
        "unbroken_run_s": round(ref_seconds, 2),
    }
    problems = []
    lineage = 0
    run = os.path.join(out, f"run-{lineage}")
    resume = False
    expected = None
    attempt = 0
    while True:
        attempt += 1
        want_kill = fig["kills"] < args.kills
        env, mode, delay = {}, None, None
        if want_kill:
            done = max(inspect_checkpoints(run)[0] + [0]) if resume else 0
            if rng.random() < 0.5:
                # A moment within what is left of the run (a resumed run is shorter).
                mode = "timer"
                delay = rng.uniform(0.0, ref_seconds * max(0.3, (TOTAL - done) / TOTAL))
            else:
                steps = list(range(done + CKPT_EVERY, TOTAL + 1, CKPT_EVERY))
                point = rng.choice(POINTS)
                if point == "pruning":  # needs more than keep_last checkpoints on disk
                    steps = [s for s in steps if s >= 3 * CKPT_EVERY]
                if not steps:
                    point, steps = "state", [TOTAL]
                mode = f"{rng.choice(steps)}:{point}"
                env["MEMEL_FAULT_KILL_CHECKPOINT"] = mode
        log_path = os.path.join(out, f"attempt-{attempt:03d}.log")
        with open(log_path, "w") as log:
            p = start(run, resume, env, log)
            if mode == "timer":
                if resume:  # the moment is taken in the resumed training, after its start-up
                    while p.poll() is None and "resumed from" not in open(log_path).read():
                        time.sleep(0.002)
                try:
                    rc = p.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    rc = p.wait()
            else:
                rc = p.wait()
        text = open(log_path).read()
        if resume:
            fig["resumes"] += 1
            m = re.search(r"resumed from (\S+) at step", text)
            if m:
                fig["resumes_succeeded"] += 1
                if expected is not None and os.path.basename(m.group(1)) == f"step-{expected:08d}":
                    fig["resumes_from_newest_complete"] += 1
                else:
                    problems.append(f"attempt {attempt}: resumed from {m.group(1)}, newest complete was {expected}")
            elif rc == -signal.SIGKILL:
                fig["resumes_killed_before_reporting"] += 1
            else:
                problems.append(f"attempt {attempt}: resume failed (exit {rc}): {text[-400:]}")
        killed = rc == -signal.SIGKILL
        if killed:
            fig["kills"] += 1
            if mode == "timer":
                fig["kills_timer"] += 1
            else:
                fig["kills_hook"][mode.split(":")[1]] += 1
        elif rc != 0:
            problems.append(f"attempt {attempt}: exit {rc}: {text[-400:]}")
            break
        elif mode == "timer":
            fig["timer_runs_finished_before_kill"] += 1

        complete, partial, leftovers = inspect_checkpoints(run)
        fig["partial_checkpoints_seen"] += len(partial)
        problems += [f"attempt {attempt}: partial checkpoint {p}" for p in partial]
        fig["leftover_dirs_seen"] += len(leftovers)
        if killed and (leftovers or mode != "timer"):
            fig["kills_during_checkpoint_writing_seen"] += 1
        if killed:
            if complete:
                resume, expected = True, max(complete)
            else:  # killed before the first checkpoint: start again
                fig["restarts_no_checkpoint_yet"] += 1
                shutil.rmtree(run, ignore_errors=True)
                resume, expected = False, None
            continue
        # The run ended: it must equal the unbroken one.
        fig["runs_completed"] += 1
        same = metric_lines(os.path.join(run, "metrics.jsonl")) == ref_metrics and all(
            read(os.path.join(run, final, f)) == b for f, b in ref_final.items())
        if same:
            fig["runs_identical_to_unbroken"] += 1
        else:
            problems.append(f"{run}: final metrics or weights differ from the unbroken run")
        if fig["kills"] >= args.kills:
            break
        lineage += 1
        run = os.path.join(out, f"run-{lineage}")
        resume, expected = False, None

    fig["attempts"] = attempt
    fig["wall_s"] = round(time.time() - t_start, 1)
    fig["problems"] = problems
    with open(os.path.join(out, "campaign.json"), "w") as f:
        json.dump(fig, f, indent=2)
    print(f"[campaign] {fig['kills']} SIGKILLs ({fig['kills_timer']} at random moments, "
          f"{sum(fig['kills_hook'].values())} inside checkpoint writing by hook: "
          + ", ".join(f"{k} {v}" for k, v in fig["kills_hook"].items()) + ")")
    print(f"[campaign] kills that left a checkpoint being written or removed: {fig['kills_during_checkpoint_writing_seen']}")
    print(f"[campaign] resumes: {fig['resumes']}, succeeded {fig['resumes_succeeded']} "
          f"(from the newest complete checkpoint: {fig['resumes_from_newest_complete']}), "
          f"killed again before reporting: {fig['resumes_killed_before_reporting']}, "
          f"fresh starts (no checkpoint yet): {fig['restarts_no_checkpoint_yet']}")
    print(f"[campaign] partial checkpoints seen: {fig['partial_checkpoints_seen']} (must be 0); "
          f"leftover .tmp/.old directories seen: {fig['leftover_dirs_seen']} (removed at the next start)")
    print(f"[campaign] runs completed: {fig['runs_completed']}, identical to the unbroken run: "
          f"{fig['runs_identical_to_unbroken']}; {fig['attempts']} starts ({fig['timer_runs_finished_before_kill']} timed "
          f"runs ended before their kill); unbroken run {fig['unbroken_run_s']} s; campaign {fig['wall_s']} s")
    for p in problems:
        print("[campaign] PROBLEM:", p)
    print(f"[campaign] figures: {out}/campaign.json")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
