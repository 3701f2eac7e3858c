#!/usr/bin/env bash
# Training steps W1-W4 side by side: memel-bench against the PyTorch references
# (bench/torch_ref.py under each interpreter of --torch), same machine, same run, plus the
# GEMM ceiling (bench/gemm_compare.sh). Prints markdown tables on stdout, progress on stderr.
#
# PyTorch runs as its users run it: torch.set_num_threads(T), no environment changes. The
# references (--torch, comma-separated interpreters): Debian's /usr/bin/python3 (PyTorch
# 1.13) and, when present, the development venv .venv-torch with the current PyTorch from
# PyPI (scripts/dev-torch-venv.sh makes it). The processor and the kernels each side uses
# (memel's OpenBLAS core; torch's BLAS, oneDNN and CPU capability) are printed first.
#
#   bench/compare.sh [--bench PATH/TO/memel-bench] [--workloads W1,W2,W3,W4] [--threads "1 2"]
#                    [--torch /usr/bin/python3,.venv-torch/bin/python]
#                    [--steps N] [--warmup W] [--heavy-steps N] [--heavy-warmup W]
#                    [--gemm-size 2048] [--no-gemm] [--no-paper] [--raw FILE]
#
# Workloads by id (W1..W4) or name (bert-mini, swin-t, swin-mini, convgru). For each
# workload and each thread count T, in this order: memel-bench at T, torch_ref.py at T,
# memel-bench --memel paired at T (so memel and PyTorch alternate and drift hits both; the
# paired run times a plain and a paper-placement model with their steps interleaved).
# --steps/--warmup apply to every workload (default 5 and 2); --heavy-steps/--heavy-warmup
# override them for W2 and W4, whose steps take seconds. The GEMM ceiling: one round of
# gemm_compare.sh at --gemm-size for the same thread counts, run first.
#
# Summary table: memel's and PyTorch's best median step over the thread counts, the ratio
# memel / PyTorch-best (below 1: memel faster), memel's achieved GFLOP/s at its best
# (analytic FLOPs, see tools/memel-bench.cpp) and its share of the best GEMM rate measured
# in this run, and the memel overhead at memel's best thread count: the paired run's
# median over its step pairs of paper / plain - 1.
# Quick run: bench/compare.sh --workloads W1,W3 --steps 3 --warmup 1 --no-gemm
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="${MEMEL_BENCH:-$here/../build/tools/memel-bench}"
python=/usr/bin/python3   # runs the table script (any python3)
torch_pythons="/usr/bin/python3"
[ -x "$here/../.venv-torch/bin/python" ] && torch_pythons="$torch_pythons,$(cd "$here/.." && pwd)/.venv-torch/bin/python"
workloads="W1,W2,W3,W4"
threads_list="1 2"
steps=5
warmup=2
heavy_steps=""
heavy_warmup=""
gemm_size=2048
do_gemm=1
do_paper=1
raw=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bench) bench="$2"; shift 2 ;;
    --workloads) workloads="$2"; shift 2 ;;
    --threads) threads_list="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --heavy-steps) heavy_steps="$2"; shift 2 ;;
    --heavy-warmup) heavy_warmup="$2"; shift 2 ;;
    --gemm-size) gemm_size="$2"; shift 2 ;;
    --no-gemm) do_gemm=0; shift ;;
    --no-paper) do_paper=0; shift ;;
    --raw) raw="$2"; shift 2 ;;
    --torch) torch_pythons="$2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$bench" ] || { echo "compare.sh: memel-bench not found at $bench (build it, or pass --bench)" >&2; exit 1; }
IFS=',' read -r -a tpy <<<"$torch_pythons"
for p in "${tpy[@]}"; do
  "$p" -c "import torch, torchvision" 2>/dev/null ||
    { echo "compare.sh: $p cannot import torch and torchvision (Debian: apt-get install python3-torch python3-torchvision; PyPI: scripts/dev-torch-venv.sh)" >&2; exit 1; }
done
heavy_steps="${heavy_steps:-$steps}"
heavy_warmup="${heavy_warmup:-$warmup}"

names=()
IFS=',' read -r -a wl <<<"$workloads"
for w in "${wl[@]}"; do
  case "$w" in
    W1|w1|bert-mini) names+=(bert-mini) ;;
    W2|w2|swin-t) names+=(swin-t) ;;
    W3|w3|swin-mini) names+=(swin-mini) ;;
    W4|w4|convgru) names+=(convgru) ;;
    *) echo "compare.sh: unknown workload '$w' (W1..W4, bert-mini, swin-t, swin-mini, convgru)" >&2; exit 2 ;;
  esac
done

results="$(mktemp)"
gemm_table="$(mktemp)"
trap 'rm -f "$results" "$gemm_table"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
load_before="$(load)"
started="$(date -u '+%Y-%m-%d %H:%M UTC')"
t_start=$SECONDS

if [ "$do_gemm" = 1 ]; then
  echo "gemm ceiling: size $gemm_size, threads $threads_list" >&2
  for p in "${tpy[@]}"; do
    echo "against $p:" >>"$gemm_table"
    echo >>"$gemm_table"
    PYTHON="$p" bash "$here/gemm_compare.sh" --bench "$bench" --rounds 1 --sizes "$gemm_size" --threads "$threads_list" >>"$gemm_table"
    echo >>"$gemm_table"
  done
fi

# impl workload threads -> appends {"impl", "r": <the JSON line>} or {"impl", "error"}
record() {
  local impl="$1" out rc=0
  shift
  out="$("$@" 2>/tmp/compare_sh_err.$$)" || rc=$?
  if [ "$rc" = 0 ] && [ -n "$out" ]; then
    echo "{\"impl\": \"$impl\", \"r\": $out}" >>"$results"
  else
    local msg
    msg="$(tail -c 300 /tmp/compare_sh_err.$$ | tr '\n"\\' '   ')"
    echo "compare.sh: $impl $* failed (exit $rc): $msg" >&2
    echo "{\"impl\": \"$impl\", \"error\": \"exit $rc: $msg\", \"workload\": \"$W\", \"threads\": $T}" >>"$results"
  fi
  rm -f /tmp/compare_sh_err.$$
}

for W in "${names[@]}"; do
  s="$steps" wu="$warmup"
  if [ "$W" = swin-t ] || [ "$W" = convgru ]; then s="$heavy_steps" wu="$heavy_warmup"; fi
  for T in $threads_list; do
    echo "$W threads $T: memel" >&2
    record memel "$bench" --workload "$W" --threads "$T" --steps "$s" --warmup "$wu"
    for i in "${!tpy[@]}"; do
      echo "$W threads $T: pytorch (${tpy[$i]})" >&2
      record "torch$i" "${tpy[$i]}" "$here/torch_ref.py" --workload "$W" --threads "$T" --steps "$s" --warmup "$wu"
    done
    if [ "$do_paper" = 1 ]; then
      echo "$W threads $T: memel --memel paired" >&2
      record memel-paired "$bench" --workload "$W" --threads "$T" --steps "$s" --warmup "$wu" --memel paired
    fi
  done
done

load_after="$(load)"
[ -n "$raw" ] && cp "$results" "$raw"

echo "Started $started on $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1) ($(nproc) cores);" \
  "load average before: $load_before, after: $load_after; $(( (SECONDS - t_start) / 60 )) min."
echo "Steps: $steps timed after $warmup warm-up (W2, W4: $heavy_steps after $heavy_warmup); thread counts: $threads_list."
echo
if [ "$do_gemm" = 1 ]; then
  echo "GEMM ceiling ($gemm_size x $gemm_size single precision; bench/gemm_compare.sh, one round):"
  echo
  cat "$gemm_table"
  echo
fi

"$python" - "$results" "$gemm_table" "${names[*]}" <<'PY'
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ceiling = None
for line in open(sys.argv[2]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 5 and cells[0].isdigit():
        for c in cells[2:4]:
            ceiling = max(ceiling or 0.0, float(c))
ids = {"bert-mini": "W1", "swin-t": "W2", "swin-mini": "W3", "convgru": "W4"}
by, errors, refs, kernels = {}, [], {}, {}
for row in rows:
    if "error" in row:
        errors.append(f"{row['impl']} {row['workload']} threads {row['threads']}: {row['error']}")
        continue
    r = row["r"]
    by.setdefault(r["workload"], {}).setdefault(row["impl"], {})[r["threads"]] = r
    if row["impl"].startswith("torch"):
        refs[row["impl"]] = f"PyTorch {r['torch']}"
        kernels[row["impl"]] = f"{refs[row['impl']]} ({r.get('python', '?')}): {r.get('kernels', '?')}"
    elif "kernels" in r:
        kernels["memel"] = f"memel: {r['kernels']}"
refs = dict(sorted(refs.items()))

print("Kernels in use:")
print()
for k in ["memel"] + list(refs):
    if k in kernels:
        print(f"- {kernels[k]}")
print()

def fmt(x, d=0):
    return "-" if x is None else f"{x:.{d}f}"

print("All measurements (median step, ms):")
print()
print("| workload | threads | memel | memel + paper | " + " | ".join(refs.values()) + " | " +
      " | ".join(f"memel / {v}" for v in refs.values()) + " |")
print("| --- | ---: | ---: | ---: |" + " ---: |" * (2 * len(refs)))
for w in sys.argv[3].split():
    d = by.get(w, {})
    ts = sorted(set().union(*[set(v) for v in d.values()])) if d else []
    for t in ts:
        m = d.get("memel", {}).get(t, {}).get("step_ms")
        p = d.get("memel-paired", {}).get(t, {}).get("memel_step_ms")
        qs = [d.get(k, {}).get(t, {}).get("step_ms") for k in refs]
        ratios = [f"{m / q:.2f}" if m and q else "-" for q in qs]
        print(f"| {ids[w]} {w} | {t} | {fmt(m)} | {fmt(p)} | " + " | ".join(fmt(q) for q in qs) + " | " +
              " | ".join(ratios) + " |")
print()

def best(d):
    if not d:
        return None, None
    t = min(d, key=lambda k: d[k]["step_ms"])
    return t, d[t]

print("Best over the thread counts (below 1: memel faster):")
print()
print("| workload | memel best ms (threads) | " + " | ".join(f"{v} best ms (threads)" for v in refs.values()) + " | " +
      " | ".join(f"memel / {v}" for v in refs.values()) +
      " | memel GFLOP/s" + (" (share of GEMM ceiling)" if ceiling else "") + " | memel overhead |")
print("| --- | ---: |" + " ---: |" * (2 * len(refs)) + " ---: | ---: |")
for w in sys.argv[3].split():
    d = by.get(w, {})
    mt, m = best(d.get("memel", {}))
    qb = [best(d.get(k, {})) for k in refs]
    ratios = [f"{m['step_ms'] / q['step_ms']:.2f}" if m and q else "-" for _, q in qb]
    if m:
        g = f"{m['gflops']:.1f}" + (f" ({100 * m['gflops'] / ceiling:.0f} %)" if ceiling else "")
    else:
        g = "-"
    over = "-"
    p = d.get("memel-paired", {}).get(mt) if m else None
    if p:
        over = f"{100 * p['memel_overhead']:+.1f} %"
    ms = f"{m['step_ms']:.0f} ({mt})" if m else "-"
    qs = [f"{q['step_ms']:.0f} ({qt})" if q else "-" for qt, q in qb]
    print(f"| {ids[w]} {w} | {ms} | " + " | ".join(qs) + " | " + " | ".join(ratios) + f" | {g} | {over} |")
if ceiling:
    print()
    print(f"GEMM ceiling in this run: {ceiling:.1f} GFLOP/s (the best rate in the GEMM table).")
for e in errors:
    print(f"\nfailed: {e}")
PY
