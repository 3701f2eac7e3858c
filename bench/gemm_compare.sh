#!/usr/bin/env bash
# GEMM throughput: memel-bench against PyTorch ($PYTHON, default Debian's /usr/bin/python3), same machine,
# same run, alternating the two so drift hits both. Prints a markdown table.
#
#   bench/gemm_compare.sh [--bench PATH/TO/memel-bench] [--rounds R] [--sizes "512 1024 2048"] [--threads "1 2"]
#
# Each (size, threads) runs memel then PyTorch, R rounds over all configurations; each run
# reports the median of its timed repetitions after warm-up, and the table shows the
# median over rounds. Ratio = memel / PyTorch (higher is better for memel).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="${MEMEL_BENCH:-$here/../build/tools/memel-bench}"
rounds=3
sizes="512 1024 2048"
threads_list="1 2"
python="${PYTHON:-/usr/bin/python3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --bench) bench="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --threads) threads_list="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "gemm_compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$bench" ] || { echo "gemm_compare.sh: memel-bench not found at $bench (build it, or pass --bench)" >&2; exit 1; }
"$python" -c "import torch" 2>/dev/null || { echo "gemm_compare.sh: $python cannot import torch (apt-get install python3-torch)" >&2; exit 1; }

reps_for() { if [ "$1" -ge 2048 ]; then echo 5; else echo 10; fi; }

torch_gemm() {  # size threads reps -> one JSON line like memel-bench's
  "$python" - "$1" "$2" "$3" <<'PY'
import json, statistics, sys, time
import torch
n, t, reps = (int(a) for a in sys.argv[1:4])
torch.set_num_threads(t)
g = torch.Generator().manual_seed(0)
a = torch.rand(n, n, generator=g) * 2 - 1
b = torch.rand(n, n, generator=g) * 2 - 1
with torch.no_grad():
    for _ in range(2):
        torch.matmul(a, b)
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        ms.append((time.perf_counter() - t0) * 1e3)
m = statistics.median(ms)
print(json.dumps({"workload": "gemm", "size": n, "threads": torch.get_num_threads(),
                  "gflops": 2.0 * n ** 3 / (m * 1e6), "ms": m, "torch": torch.__version__}))
PY
}

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for r in $(seq 1 "$rounds"); do
  for n in $sizes; do
    for t in $threads_list; do
      reps="$(reps_for "$n")"
      echo "{\"impl\": \"memel\", \"round\": $r, \"r\": $("$bench" --workload gemm --size "$n" --threads "$t" --reps "$reps")}" >>"$results"
      echo "{\"impl\": \"torch\", \"round\": $r, \"r\": $(torch_gemm "$n" "$t" "$reps")}" >>"$results"
      echo "round $r size $n threads $t done" >&2
    done
  done
done

"$python" - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for row in rows:
    r = row["r"]
    by.setdefault((r["size"], r["threads"]), {}).setdefault(row["impl"], []).append(r["gflops"])
print("| size | threads | memel GFLOP/s | PyTorch GFLOP/s | memel / PyTorch |")
print("| ---: | ---: | ---: | ---: | ---: |")
for (n, t) in sorted(by):
    m = statistics.median(by[(n, t)]["memel"])
    p = statistics.median(by[(n, t)]["torch"])
    print(f"| {n} | {t} | {m:.1f} | {p:.1f} | {m / p:.2f} |")
PY
