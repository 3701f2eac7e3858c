#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, in build-fuzz/) and runs each for
# SECONDS (default 60), one target at a time, one process each; prints executions and
# coverage per target and exits non-zero when any target found a crash, hang or leak.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]      targets: safetensors idx config image
#                                                   glue tokenizer frames memel_dump
#
# Seeds are regenerated into build-fuzz/seeds/<target> (fuzz/make_corpus.cpp); the
# corpus each run grows is kept in build-fuzz/corpus/<target>; a finding is written to
# build-fuzz/artifacts/<target>/ and the log to build-fuzz/logs/<target>.log. Reproduce
# one with: build-fuzz/fuzz/fuzz_<target> FILE
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
all=(safetensors idx config image glue tokenizer frames memel_dump)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
bash scripts/setup.sh fuzz
B=build-fuzz
cmake -S . -B "$B" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release -DMEMEL_FUZZ=ON -DMEMEL_CUDA=OFF \
      -DMEMEL_BUILD_TESTS=OFF -DMEMEL_BUILD_TOOLS=OFF >/dev/null
build_targets=(fuzz_make_corpus)
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$B" -j "${MEMEL_JOBS:-2}" --target "${build_targets[@]}"
rm -rf "$B/seeds"
"$B/fuzz/fuzz_make_corpus" "$B/seeds" "$PWD" >/dev/null

dict_for() {
  case "$1" in
    safetensors|config|memel_dump) echo fuzz/dicts/json.dict ;;
    *) [ -f "fuzz/dicts/$1.dict" ] && echo "fuzz/dicts/$1.dict" || true ;;
  esac
}

summary="$B/fuzz-summary.tsv"
printf "target\tseconds\texecs\texec_per_s\tcov\tft\tcorpus\tpeak_rss_mb\tresult\n" > "$summary"
status=0
for t in "${targets[@]}"; do
  mkdir -p "$B/corpus/$t" "$B/artifacts/$t" "$B/logs"
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$B/artifacts/$t/")
  d="$(dict_for "$t")"
  [ -n "$d" ] && args+=(-dict="$d")
  echo "[fuzz] $t for ${secs}s"
  start=$(date +%s)
  rc=0
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
    "$B/fuzz/fuzz_$t" "${args[@]}" "$B/corpus/$t" "$B/seeds/$t" > "$B/logs/$t.log" 2>&1 || rc=$?
  wall=$(( $(date +%s) - start ))
  log="$B/logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<< "$last")
  result=ok
  if [ "$rc" -ne 0 ]; then
    status=1
    art=$(ls -t "$B/artifacts/$t/" 2>/dev/null | head -1)
    result="FAILED(rc=$rc ${art:+artifact=$B/artifacts/$t/$art})"
    grep -E "ERROR: |SUMMARY: |runtime error|uncaught exception" "$log" | head -5 | sed 's/^/    /'
  fi
  printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$t" "$wall" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "${rss:-?}" "$result" >> "$summary"
done
echo
awk -F'\t' '{ printf "%-12s %7s %11s %10s %6s %7s %7s %11s  %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$summary"
exit $status
