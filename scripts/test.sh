#!/usr/bin/env bash
# Run every test: install dependencies, then build and run the whole suite twice, once optimised (build/) and once
# with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/, without the benchmark program, whose smoke run is
# in the optimised suite); the threaded tests under ThreadSanitizer (build-tsan/); and every fuzz target for 30 s
# (build-fuzz/). Exits non-zero on any failure. CI's budget is kept near 15 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

run_suite() {  # build dir, extra cmake args...
  local dir=$1
  shift
  echo "==== $dir: build"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "==== $dir: test"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
}

run_suite build -DCMAKE_BUILD_TYPE=Release
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DTDCONV_SANITIZE=ON -DTDCONV_BUILD_BENCH=OFF
# ThreadSanitizer: the tests that share one plan between threads. OpenMP is off in this build because libgomp is
# not instrumented (TSan would report its internals); the threads under test are the callers' std::threads.
echo "==== build-tsan: build"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTDCONV_TSAN=ON -DTDCONV_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j "$jobs" --target tdconv_unit_tests
echo "==== build-tsan: test"
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -j "$jobs" \
  -R "Concurrency|Determinism|EngineTarget|Plan\\."
# Fuzzing: every libFuzzer target for 30 s (TDCONV_FUZZ_SECONDS overrides), after replaying its regressions.
echo "==== fuzz"
scripts/fuzz.sh "${TDCONV_FUZZ_SECONDS:-30}"
echo "==== all tests passed"
