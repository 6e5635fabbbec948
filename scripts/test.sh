#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every test: unit tests,
# integration tests against throwaway PostgreSQL clusters the tests start themselves, the
# Socket.IO tests with the real socket.io-client, and the systemd unit check. Then the same
# suite built with AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer, and every
# libFuzzer target for FUZZ_SECONDS (default 45) over its seed corpus. Any sanitizer report
# fails the run, even one from a sidecar child whose test did not notice. Every stage runs
# even when an earlier one failed; the summary at the end names the failed ones.
# Usage: scripts/test.sh [extra ctest arguments, e.g. -R delivery]
#   SANITIZE=0 / FUZZ=0 skip those stages (while iterating; CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
failed=()
stage() { echo "== $1 ($((SECONDS - start)) s so far)"; }

bash scripts/install-deps.sh
for dir in tests/node examples; do   # examples: socket.io-client, served to the browser test's page
  if [[ -f $dir/package-lock.json ]]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
done
jobs=$(nproc)

stage "build and test"
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMN_WERROR=ON >/dev/null
cmake --build "$build" -j "$jobs"
(cd "$build" && ctest --output-on-failure -j "$jobs" "$@") || failed+=("tests")

if [[ ${SANITIZE:-1} != 0 ]]; then
  stage "build and test with ASan, LSan and UBSan"
  asan=${ASAN_BUILD_DIR:-build-asan}
  cmake -S . -B "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMN_WERROR=ON -DMN_SANITIZE=ON >/dev/null
  cmake --build "$asan" -j "$jobs"
  reports=$(realpath "$asan")/sanitizer-reports
  rm -rf "$reports" && mkdir -p "$reports"
  # Reports go to files as well as failing the process: a sidecar's stderr is only a log.
  # Some tests assert wall-clock latency (30 ms) or RSS growth (a few MB), which the
  # sanitizers' slowdown and quarantine make meaningless; the run above checks them.
  rc=0
  (cd "$asan" &&
    ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:log_path=$reports/asan" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
    GTEST_FILTER="${GTEST_FILTER:--AdaptiveWakeUp.ChangesRightAfterAStreamAboveTheLimitDoNotWaitABusyPollIntervalEach:LimitsTest.ClientsThatStopReadingAreClosedWhileAReadingClientOfTheSameUserGetsEveryEvent:ClientLimitsTest.*Flood*:ClientLimitsTest.PongsAreWithheld*}" \
    ctest --output-on-failure -j "$jobs" "$@") || rc=$?
  if compgen -G "$reports/*" >/dev/null; then
    # The first report in full, then one line per report.
    first=$(ls "$reports" | head -n 1)
    cat "$reports/$first"
    for f in "$reports"/*; do
      printf '%s: %s\n' "$(basename "$f")" "$(grep -m1 -E 'SUMMARY|runtime error' "$f" || echo '?')"
    done
    echo "$(ls "$reports" | wc -l) sanitizer reports in $reports"
    failed+=("sanitizers")
  elif ((rc != 0)); then
    failed+=("tests under sanitizers")
  fi
fi

if [[ ${FUZZ:-1} != 0 ]]; then
  stage "fuzz"
  fuzz=${FUZZ_BUILD_DIR:-build-fuzz}
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMN_WERROR=ON \
    -DMN_FUZZ=ON >/dev/null
  cmake --build "$fuzz" -j "$jobs"
  FUZZ_PARALLEL=$jobs bash scripts/fuzz.sh "$fuzz" "${FUZZ_SECONDS:-45}" || failed+=("fuzz")
fi

if ((${#failed[@]})); then
  stage "FAILED: ${failed[*]}"
  exit 1
fi
stage "all passed"
