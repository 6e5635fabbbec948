#!/usr/bin/env bash
# Runs every libFuzzer target (built with -DMN_FUZZ=ON, see tests/fuzz) for a bounded time,
# starting from its seed corpus in tests/fuzz/corpus/<target>, two at a time (the CI machine
# has two cores). New inputs go to a scratch copy, never into the repository. Any crash,
# sanitizer finding, timeout or failed property fails the run; the input is kept under
# $FUZZ_WORK/<target>/ (default BUILD_DIR/fuzz-work) and its libFuzzer log is printed.
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS_PER_TARGET [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."

build=$(realpath "${1:?usage: scripts/fuzz.sh BUILD_DIR SECONDS [target ...]}")
seconds=${2:?usage: scripts/fuzz.sh BUILD_DIR SECONDS [target ...]}
shift 2
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/*_fuzz.cpp; do
    name=$(basename "$f" .cpp)
    targets+=("${name%_fuzz}")
  done
fi
if [[ -n ${FUZZ_WORK:-} ]]; then
  work=$FUZZ_WORK
else
  work=$build/fuzz-work
  rm -rf "$work"
fi
parallel=${FUZZ_PARALLEL:-2}
mkdir -p "$work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
if [[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

run_one() {
  local t=$1 bin="$build/tests/fuzz/$1_fuzz" dir="$work/$1"
  mkdir -p "$dir/corpus"
  cp -n tests/fuzz/corpus/"$t"/* "$dir/corpus/" 2>/dev/null || true
  local rc=0
  (cd "$dir" && "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
     -artifact_prefix="$dir/" corpus >"$dir/log" 2>&1) || rc=$?
  local execs rate
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
  printf 'fuzz %-16s %4ss  execs %-10s exec/s %-7s corpus %-5s %s\n' "$t" "$seconds" "${execs:-?}" \
    "${rate:-?}" "$(find "$dir/corpus" -type f | wc -l)" "$([[ $rc == 0 ]] && echo clean || echo "FAILED rc=$rc")"
  if [[ $rc != 0 ]]; then
    tail -n 60 "$dir/log"
    ls "$dir"/crash-* "$dir"/timeout-* "$dir"/oom-* "$dir"/leak-* 2>/dev/null || true
    return 1
  fi
}

failed=0
pids=()
for t in "${targets[@]}"; do
  [[ -x "$build/tests/fuzz/${t}_fuzz" ]] || { echo "fuzz: $build/tests/fuzz/${t}_fuzz is not built"; exit 1; }
  run_one "$t" &
  pids+=($!)
  if ((${#pids[@]} >= parallel)); then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
echo "fuzz: work directory $work"
exit $failed
