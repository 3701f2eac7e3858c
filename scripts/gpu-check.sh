#!/usr/bin/env bash
# The one run made on a lent GPU machine (an H200 with nvcc, PyTorch, CMake and ninja, and
# NO package registry): everything the build needs beyond the CUDA toolkit travels with the
# working tree in .gpu-bundle/ (made here by --prepare). From a bare machine, in under 8
# minutes: build for sm_90, the CUDA tests, the cross-backend op test on cuda (and under
# compute-sanitizer's memcheck where it runs), the main job trained on cuda against the
# CPU's accuracy at the same short step count, W1/W3/W4/W5 of ../shared/design/benchmarks.md
# against PyTorch eager on the same GPU in fp32, TF32 and bf16 with the memel overhead
# (bench/gpu_compare.py), and one table printed last. The full log: $OUT/gpu-check.log
# (./gpu-check.log without OUT); the results (table, raw JSON lines, a docs-ready markdown
# file with date and device) beside it.
#
#   scripts/gpu-check.sh --prepare   here (no GPU needed): gathers .gpu-bundle/ (headers and
#                                    libraries of the Debian packages the build needs, a
#                                    Fashion-MNIST subset for the main job), checks that a
#                                    configure against the bundle alone finds everything,
#                                    checks the size that will travel (64 MiB) and prints the
#                                    `run` call with its carry list
#   scripts/gpu-check.sh --dry-run   here: checks the bundle, the scripts and the plan,
#                                    prints what the GPU run would do; runs nothing on a GPU
#   scripts/gpu-check.sh             on the GPU machine (fails at once without a GPU)
#
# Environment: GPU_CHECK_BUDGET_S (default 400: the bench stops starting new runs when
# the whole check has used this much), GPU_CHECK_STEPS (main job steps, default 300),
# GPU_CHECK_MEMCHECK_S (cap of the memcheck run, default 100).
set -uo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
bundle="$root/.gpu-bundle"
limit_mib=64
mode="run"
case "${1:-}" in
  "") ;;
  --prepare) mode="prepare" ;;
  --dry-run) mode="dry" ;;
  -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
  *) echo "gpu-check: unknown argument '$1' (--prepare, --dry-run or none; see --help)" >&2; exit 2 ;;
esac

# Debian packages whose files the build needs beyond the CUDA toolkit (scripts/setup.sh),
# re-rooted under usr/ in deps.tar.xz. OpenMPI is optional in the build and stays behind.
deps_pkgs=(libeigen3-dev nlohmann-json3-dev doctest-dev libstb-dev libstb0 libopenblas-pthread-dev zlib1g-dev)
fmnist_src=/usr/share/datasets/fashion-mnist
fmnist_train=20000  # training images carried for the main job (all 10000 test images go)
run_call='run(command="bash scripts/gpu-check.sh", carry=[".gpu-bundle"], timeout_s=570)'

human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "$1 B"; }

# Bytes of what travels: tracked and untracked-not-ignored files, plus the bundle.
travel_bytes() {
  local tree bun
  tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -L -c %s 2>/dev/null |
         awk '{s += $1} END {print s + 0}')
  bun=0
  [ -d "$bundle" ] && bun=$(find "$bundle" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  echo "$tree $bun"
}

check_bundle_ignored() {
  if ! git check-ignore -q "$bundle/x"; then
    echo "gpu-check: .gpu-bundle/ is not ignored by git (it must travel only as a carried path): add /.gpu-bundle/ to .gitignore" >&2
    return 1
  fi
}

# --- --prepare ------------------------------------------------------------------------
prepare() {
  set -e
  check_bundle_ignored
  for p in "${deps_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      { echo "gpu-check --prepare: Debian package $p is not installed here (bash scripts/setup.sh)" >&2; exit 1; }
  done
  [ -f "$fmnist_src/train-images-idx3-ubyte.gz" ] ||
    { echo "gpu-check --prepare: $fmnist_src missing (bash scripts/setup.sh installs dataset-fashion-mnist)" >&2; exit 1; }
  local stage
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' RETURN
  local u="$stage/usr" arch=x86_64-linux-gnu
  mkdir -p "$u/include" "$u/lib/$arch" "$u/lib/cmake" "$u/share/cmake" "$u/share/eigen3"
  # Headers and CMake package files, as the packages install them.
  cp -a /usr/include/eigen3 /usr/include/nlohmann /usr/include/doctest /usr/include/stb "$u/include/"
  cp -a /usr/share/eigen3/cmake "$u/share/eigen3/"
  cp -a /usr/share/cmake/nlohmann_json "$u/share/cmake/"
  cp -a /usr/lib/cmake/doctest "$u/lib/cmake/"
  # doctest's exported target names /usr literally: make it relative to where it lies.
  sed -i 's|^set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
    "$u/lib/cmake/doctest/doctestTargets.cmake"
  grep -q 'CMAKE_CURRENT_LIST_DIR' "$u/lib/cmake/doctest/doctestTargets.cmake" ||
    { echo "gpu-check --prepare: could not relocate doctestTargets.cmake" >&2; exit 1; }
  cp /usr/include/zlib.h /usr/include/zconf.h "$u/include/"
  mkdir -p "$u/include/openblas"
  cp -L /usr/include/$arch/openblas-pthread/*.h "$u/include/openblas/"
  # Libraries: real files under their sonames, the link names as relative symlinks.
  local lib="$u/lib/$arch"
  cp -L /usr/lib/$arch/openblas-pthread/libopenblas.so.0 "$lib/libopenblas.so.0"
  ln -s libopenblas.so.0 "$lib/libopenblas.so"
  cp -L /usr/lib/$arch/libstb.so.0 "$lib/libstb.so.0"
  ln -s libstb.so.0 "$lib/libstb.so"
  cp -L "$(ldconfig -p | awk '/libz.so.1 .*x86-64/ {print $NF; exit}')" "$lib/libz.so.1"
  ln -s libz.so.1 "$lib/libz.so"
  # OpenBLAS's Fortran runtime (the GPU image may have none).
  local dep
  for dep in libgfortran.so.5 libquadmath.so.0; do
    cp -L "$(ldd /usr/lib/$arch/openblas-pthread/libopenblas.so.0 | awk -v d=$dep '$1 == d {print $3}')" "$lib/$dep"
  done
  # Everything a library of the bundle needs resolves (in the bundle or libc's own set).
  local missing
  missing=$(LD_LIBRARY_PATH="$lib" ldd "$lib"/*.so.* | grep "not found" || true)
  [ -z "$missing" ] || { echo "gpu-check --prepare: unresolved libraries in the bundle: $missing" >&2; exit 1; }

  rm -rf "$bundle"
  mkdir -p "$bundle/fmnist"
  tar -C "$stage" -cJf "$bundle/deps.tar.xz" usr
  # The main job's data: the first $fmnist_train training images and every test image,
  # IDX files with their counts rewritten, gzip as the Debian package has them.
  python3 - "$fmnist_src" "$bundle/fmnist" "$fmnist_train" <<'EOF'
import gzip, shutil, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def subset(name, keep):
    with gzip.open(f"{src}/{name}", "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = list(struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim]))
    per = 1
    for d in dims[1:]:
        per *= d
    keep = min(keep, dims[0]) if keep else dims[0]
    head = data[:4] + struct.pack(">" + "I" * ndim, keep, *dims[1:])
    body = data[4 + 4 * ndim: 4 + 4 * ndim + keep * per]
    with open(f"{dst}/{name}", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(head + body)
for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
    subset(name, n)
for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    subset(name, 0)
EOF
  git rev-parse HEAD > "$bundle/COMMIT"
  (cd "$bundle" && find . -type f ! -name MANIFEST -printf '%P\n' | sort | xargs sha256sum > MANIFEST)

  # A configure of the CPU part against the unpacked bundle alone (find_* re-rooted there),
  # as the GPU machine will configure it: every dependency must be found inside it.
  local unpack="$stage/unpack" vb="$stage/verify-build"
  mkdir -p "$unpack"
  tar -C "$unpack" -xJf "$bundle/deps.tar.xz"
  echo "[prepare] configuring against the bundle alone (CMAKE_FIND_ROOT_PATH=bundle, ONLY)"
  if ! cmake -S "$root" -B "$vb" -DCMAKE_BUILD_TYPE=Release -DMEMEL_CUDA=OFF \
       -DCMAKE_FIND_ROOT_PATH="$unpack" -DCMAKE_FIND_ROOT_PATH_MODE_PACKAGE=ONLY \
       -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY \
       -DCMAKE_PREFIX_PATH=/usr > "$stage/verify.log" 2>&1; then
    tail -20 "$stage/verify.log" >&2
    echo "gpu-check --prepare: a configure against the bundle alone failed (above)" >&2
    exit 1
  fi
  local outside
  outside=$(grep -E '^(Eigen3_DIR|nlohmann_json_DIR|doctest_DIR|STB_INCLUDE_DIR|STB_LIBRARY|OPENBLAS_INCLUDE_DIR|OPENBLAS_LIBRARY|ZLIB_INCLUDE_DIR|ZLIB_LIBRARY_RELEASE):' \
            "$vb/CMakeCache.txt" | grep -v "$unpack" || true)
  [ -z "$outside" ] || { echo "gpu-check --prepare: found outside the bundle: $outside" >&2; exit 1; }
  grep -E '^(Eigen3_DIR|doctest_DIR|OPENBLAS_LIBRARY|ZLIB_LIBRARY_RELEASE):' "$vb/CMakeCache.txt" |
    sed "s|$unpack|<bundle>|; s|^|  found |"

  # What travels, and its size.
  local sizes tree bun total
  sizes=$(travel_bytes)
  tree=${sizes% *}
  bun=${sizes#* }
  total=$((tree + bun))
  echo
  echo "[prepare] .gpu-bundle/ (carried; git ignores it):"
  (cd "$bundle" && find . -type f -printf '%s %P\n' | sort -k2 | while read -r s f; do printf '  %10s  %s\n' "$(human "$s")" "$f"; done)
  printf '  deps.tar.xz holds: %s\n' "$(tar -tJf "$bundle/deps.tar.xz" | grep -c -v '/$') files (${deps_pkgs[*]}, libgfortran5, zlib)"
  printf '  fmnist/: %s training and 10000 test images of %s\n' "$fmnist_train" "$fmnist_src"
  echo "[prepare] working tree (tracked + untracked-not-ignored): $(git ls-files --cached --others --exclude-standard | wc -l) files, $(human "$tree")"
  echo "[prepare] total that travels: $(human "$total") of ${limit_mib} MiB"
  if [ "$total" -gt $((limit_mib * 1024 * 1024)) ]; then
    echo "gpu-check --prepare: FAILED: $(human "$total") is over the ${limit_mib} MiB that a run carries" >&2
    exit 1
  fi
  echo "[prepare] ok. On the GPU machine (the device tool, from this checkout):"
  echo "  $run_call"
  echo "  then: files land under files_at (gpu-check.log, gpu-check.md, gpu-bench.jsonl); copy gpu-check.md to docs/"
}

# --- --dry-run ------------------------------------------------------------------------
dry_run() {
  local rc=0
  echo "[dry-run] scripts parse:"
  bash -n "$0" && echo "  scripts/gpu-check.sh ok" || rc=1
  for py in bench/gpu_compare.py bench/torch_ref.py; do
    python3 -m py_compile "$py" && echo "  $py ok" || rc=1
  done
  if [ -f "$bundle/deps.tar.xz" ] && (cd "$bundle" && sha256sum --quiet -c MANIFEST); then
    echo "[dry-run] bundle ok (commit $(cat "$bundle/COMMIT"); now $(git rev-parse HEAD))"
  else
    echo "[dry-run] bundle missing or damaged: run scripts/gpu-check.sh --prepare"; rc=1
  fi
  local sizes
  sizes=$(travel_bytes)
  echo "[dry-run] would travel: $(human $(( ${sizes% *} + ${sizes#* } ))) of ${limit_mib} MiB"
  echo "[dry-run] the GPU run would do, in this order (budget ${GPU_CHECK_BUDGET_S:-400} s):"
  plan | sed 's/^/  /'
  echo "[dry-run] the benchmark plan:"
  python3 bench/gpu_compare.py --plan --workloads W1,W3,W4,W5 --precisions fp32,tf32,bf16 | sed 's/^/  /' || rc=1
  echo "[dry-run] without a GPU the run stops at once with:"
  ( gpu_present 2>&1 ) | sed 's/^/  /'
  echo "[dry-run] call: $run_call"
  return $rc
}

plan() {
  cat <<EOF
preflight: nvidia-smi -L lists a GPU; nvcc; .gpu-bundle/deps.tar.xz matches its MANIFEST
deps: tar -xJf .gpu-bundle/deps.tar.xz -C /tmp/memel-deps; LD_LIBRARY_PATH=/tmp/memel-deps/usr/lib/x86_64-linux-gnu
configure: cmake -G Ninja -B build-gpu -DMEMEL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH=/tmp/memel-deps/usr
build: cmake --build build-gpu -j \$(nproc) --target memel-train memel-bench test_cuda test_backends
cuda tests: build-gpu/tests/test_cuda (host-emulated kernels, device discovery, round trip)
op test on cuda: MEMEL_BACKEND_DEVICES=cuda build-gpu/tests/test_backends (every op vs the CPU, fused and composed)
memcheck: compute-sanitizer --tool memcheck over the op test on cuda (capped at ${GPU_CHECK_MEMCHECK_S:-100} s)
main job: memel-train configs/fmnist-mlp-memel.json, ${GPU_CHECK_STEPS:-300} steps, on cpu (16 threads) and on cuda; test accuracy within 0.01
bench: python3 bench/gpu_compare.py (GEMM ceilings; W1 W3 W4 W5 x fp32 tf32 bf16, memel-bench --memel paired vs PyTorch eager)
table: step results, then the benchmark table (last)
EOF
}

gpu_present() {
  if ! command -v nvidia-smi > /dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    echo "gpu-check: no NVIDIA GPU found (nvidia-smi -L lists none): this script runs on the lent GPU machine;" \
         "here run scripts/gpu-check.sh --prepare (or --dry-run)" >&2
    return 3
  fi
  if ! command -v nvcc > /dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
    echo "gpu-check: a GPU but no nvcc (CUDA toolkit) on this machine" >&2
    return 3
  fi
  return 0
}

case "$mode" in
  prepare) prepare; exit $? ;;
  dry) dry_run; exit $? ;;
esac

# --- the GPU run ------------------------------------------------------------------------
t_start=$(date +%s)
gpu_present || exit 3
[ -f "$bundle/deps.tar.xz" ] ||
  { echo "gpu-check: .gpu-bundle/deps.tar.xz missing: run scripts/gpu-check.sh --prepare where the packages are, and carry .gpu-bundle" >&2; exit 4; }
(cd "$bundle" && sha256sum --quiet -c MANIFEST) ||
  { echo "gpu-check: .gpu-bundle does not match its MANIFEST (damaged in transit?): prepare it again" >&2; exit 4; }
case ":$PATH:" in *:/usr/local/cuda/bin:*) ;; *) export PATH="$PATH:/usr/local/cuda/bin" ;; esac

out_dir="${OUT:-$root}"
mkdir -p "$out_dir"
log="$out_dir/gpu-check.log"
table="$out_dir/gpu-check.table"
: > "$log"
: > "$table"
budget="${GPU_CHECK_BUDGET_S:-400}"
steps="${GPU_CHECK_STEPS:-300}"
memcheck_s="${GPU_CHECK_MEMCHECK_S:-100}"
gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
{
  echo "== gpu-check $(date -u '+%F %T UTC') commit $(git rev-parse --short HEAD 2>/dev/null || cat "$bundle/COMMIT")"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  nvcc --version | tail -2
  echo "cpu cores: $(nproc)"
} >> "$log" 2>&1

# step NAME COMMAND...: runs it with its output in the log; one line to the table.
failed=0
step() {
  local name="$1"; shift
  local t0 r
  t0=$(date +%s)
  echo "---- $name: $*" >> "$log"
  if "$@" >> "$log" 2>&1; then r=ok; else r="FAILED($?)"; failed=1; fi
  printf '%-34s %-11s %4ss\n' "$name" "$r" "$(( $(date +%s) - t0 ))" | tee -a "$log" >> "$table"
  [ "$r" = ok ]
}
note() { printf '%-34s %s\n' "$1" "$2" | tee -a "$log" >> "$table"; }

deps=/tmp/memel-deps
step "deps (bundle, no registry)" bash -c "rm -rf $deps && mkdir -p $deps && tar -C $deps -xJf '$bundle/deps.tar.xz'"
export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
gen=()
command -v ninja > /dev/null 2>&1 && gen=(-G Ninja)
# cuDNN: the toolkit's, else the one in PyTorch's environment (pip's nvidia/cudnn).
cudnn=()
if [ ! -f /usr/local/cuda/include/cudnn.h ]; then
  cudnn_root=$(python3 -c "import nvidia.cudnn as m; print(list(m.__path__)[0])" 2>/dev/null || true)
  if [ -n "$cudnn_root" ] && [ -f "$cudnn_root/include/cudnn.h" ]; then
    cudnn=(-DCUDNN_ROOT="$cudnn_root")
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$cudnn_root/lib"
  fi
fi
echo "cuDNN: ${cudnn[*]:-toolkit or none}" >> "$log"
built=0
if step "configure (CUDA sm_90)" cmake "${gen[@]}" -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DMEMEL_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$deps/usr" "${cudnn[@]}"; then
  step "build" cmake --build build-gpu -j "$(nproc)" --target memel-train memel-bench test_cuda test_backends && built=1
fi

if [ "$built" = 1 ]; then
  step "cuda tests (test_cuda)" build-gpu/tests/test_cuda
  step "op test on cuda (test_backends)" env MEMEL_BACKEND_DEVICES=cuda build-gpu/tests/test_backends
  if command -v compute-sanitizer > /dev/null 2>&1; then
    t0=$(date +%s)
    echo "---- memcheck (capped at ${memcheck_s}s)" >> "$log"
    MEMEL_BACKEND_DEVICES=cuda timeout "$memcheck_s" compute-sanitizer --tool memcheck --error-exitcode 99 \
      --print-limit 20 build-gpu/tests/test_backends >> "$log" 2>&1
    rc=$?
    case $rc in
      0) r=ok ;;
      124) r="partial (stopped at the ${memcheck_s}s cap, no error before)" ;;
      99) r="FAILED (memcheck errors, see log)"; failed=1 ;;
      *) r="FAILED($rc)"; failed=1 ;;
    esac
    note "memcheck over the op test" "$r $(( $(date +%s) - t0 ))s"
  else
    note "memcheck over the op test" "skipped: no compute-sanitizer"
  fi

  # The main job: the same config, data subset and step count on the CPU and on the GPU.
  data="$deps/fmnist"
  mkdir -p "$data" && cp "$bundle"/fmnist/*.gz "$data/"
  job() {  # job DEVICE THREADS
    build-gpu/tools/memel-train --config configs/fmnist-mlp-memel.json --out "$deps/runs/main-$1" \
      --set device="$1" --set threads="$2" --set data.dir="$data" --set train.steps="$steps" \
      --set train.log_every=100
  }
  step "main job on cpu ($steps steps)" job cpu "$(nproc)"
  step "main job on cuda ($steps steps)" job cuda 1
  acc() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['final']['accuracy'])" "$1" 2>/dev/null; }
  a_cpu=$(acc "$deps/runs/main-cpu/summary.json")
  a_gpu=$(acc "$deps/runs/main-cuda/summary.json")
  if [ -n "$a_cpu" ] && [ -n "$a_gpu" ]; then
    verdict=$(python3 -c "import sys; c, g = float(sys.argv[1]), float(sys.argv[2]); print('ok' if abs(c - g) <= 0.01 else 'FAILED')" "$a_cpu" "$a_gpu")
    [ "$verdict" = ok ] || failed=1
    note "main job accuracy cpu / cuda" "$verdict $a_cpu / $a_gpu"
  else
    note "main job accuracy cpu / cuda" "FAILED (no summary)"
    failed=1
  fi

  # The benchmarks, with what is left of the budget.
  left=$(( budget - ($(date +%s) - t_start) ))
  bench_raw="$out_dir/gpu-bench.jsonl"
  bench_md="$out_dir/gpu-bench.md"
  step "bench (W1 W3 W4 W5, ${left}s left)" python3 bench/gpu_compare.py --bench build-gpu/tools/memel-bench \
    --workloads W1,W3,W4,W5 --precisions fp32,tf32,bf16 --budget-s "$left" --raw "$bench_raw" --table "$bench_md"
else
  note "tests, main job, bench" "skipped: the build failed (see log)"
fi

# The results, docs-ready (date, device, commit), and the table last.
{
  echo "# GPU check $(date -u '+%F') on $gpu_name"
  echo
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || cat "$bundle/COMMIT"), \`bash scripts/gpu-check.sh\`, $(( $(date +%s) - t_start )) s in all"
  echo
  echo '```'
  cat "$table"
  echo '```'
  [ -f "${bench_md:-/nonexistent}" ] && { echo; cat "$bench_md"; }
} > "$out_dir/gpu-check.md"
echo
echo "== gpu-check $(date -u '+%F') on $gpu_name: $(( $(date +%s) - t_start )) s; full log $log"
cat "$table"
[ -f "${bench_md:-/nonexistent}" ] && { echo; cat "$bench_md"; }
exit $failed
