#!/usr/bin/env bash
# Run every test: install dependencies, then build and run the whole suite twice, once optimised (build/) and once
# with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/, without the benchmark program, whose smoke run is
# in the optimised suite); the optimised build's scalar-target kernel tests once more under valgrind; the threaded
# tests under ThreadSanitizer (build-tsan/); and every fuzz target for 30 s (build-fuzz/). Exits non-zero on any
# failure. CI's budget is kept near 15 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

stage() { echo "==== $* ($(date +%T), ${SECONDS}s in)"; }

run_suite() {  # build dir, ctest arguments..., --, extra cmake args...
  local dir=$1 ctest_args=()
  shift
  while (($#)) && [[ $1 != -- ]]; do ctest_args+=("$1"); shift; done
  shift
  stage "$dir: build"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  stage "$dir: test"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" "${ctest_args[@]}"
}

run_suite build -- -DCMAKE_BUILD_TYPE=Release
# Valgrind over the optimised build's scalar-target kernel tests: GCC vectorizes the scalar target's code and may
# load ahead of a loop's test, which the sanitizer build (Debug, unvectorized) never does. It caught the planar gemm
# reading one row past its panel (a segfault only where the next page was unmapped). Valgrind cannot run AVX-512.
stage "valgrind: scalar target"
valgrind --error-exitcode=1 -q build/tests/tdconv_unit_tests --gtest_filter='AllTargets/EngineTarget.*/SCALAR'
# The sanitizer builds leave out Highway's SSSE3 target: its kernels are the SSE4 target's code at the same width,
# which they check (the optimised suite runs both). The PyTorch agreement test drives the command over the same
# code paths as the optimised suite's run of it and the fuzzed command (cli_fuzz); under ASan it took 2 minutes.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -E "python.torch_agreement_test" -- -DCMAKE_BUILD_TYPE=Debug -DTDCONV_SANITIZE=ON \
  -DTDCONV_BUILD_BENCH=OFF -DTDCONV_HWY_DISABLED_TARGETS=HWY_SSSE3
# ThreadSanitizer: the tests that share one plan between threads. OpenMP is off in this build because libgomp is
# not instrumented (TSan would report its internals); the threads under test are the callers' std::threads. What
# is under test is the sharing, not the SIMD code: AVX2 (or AVX-512) and the scalar fallback only.
stage "build-tsan: build"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTDCONV_TSAN=ON -DTDCONV_BUILD_BENCH=OFF \
  "-DTDCONV_HWY_DISABLED_TARGETS=(HWY_SSSE3|HWY_SSE4)" >/dev/null
cmake --build build-tsan -j "$jobs" --target tdconv_unit_tests
stage "build-tsan: test"
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -j "$jobs" \
  -R "Concurrency|Determinism|EngineTarget|Plan\\."
# Fuzzing: every libFuzzer target for 30 s (TDCONV_FUZZ_SECONDS overrides), after replaying its regressions. The
# differential target fuzzes the planner and the engines' index arithmetic on one SIMD target (AVX2, or scalar),
# the others parse; every target's kernels are checked by the suites above.
stage "fuzz"
TDCONV_HWY_DISABLED_TARGETS="(HWY_SSSE3|HWY_SSE4|HWY_AVX3)" scripts/fuzz.sh "${TDCONV_FUZZ_SECONDS:-30}"
stage "all tests passed"
