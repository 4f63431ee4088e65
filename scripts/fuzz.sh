#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) into build-fuzz/ and runs each of them, one after
# the other, for SECONDS seconds (default 60), after replaying its regression inputs (fuzz/regressions/TARGET/*).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]        e.g. scripts/fuzz.sh 30, scripts/fuzz.sh 600 diff_fuzz
#
# Each target starts from a copy of its committed seed corpus (fuzz/corpus/TARGET/) in build-fuzz/run/TARGET/corpus,
# so the repository is never modified; inputs that the run found interesting stay there, and crash reproducers go to
# build-fuzz/run/TARGET/artifacts/. Prints a summary table (target, seconds, executions, result) and exits non-zero on
# any crash, sanitizer report, leak, timeout, out-of-memory or mismatch (a target's "BUG:" check).
# A reproducer worth keeping goes into fuzz/regressions/TARGET/ (see fuzz/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]  (SECONDS a positive integer, got '$seconds')" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))
all_targets=(npy_fuzz cli_fuzz diff_fuzz)
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  if [[ ! " ${all_targets[*]} " =~ " $t " ]]; then
    echo "scripts/fuzz.sh: unknown target '$t' (targets: ${all_targets[*]})" >&2
    exit 2
  fi
done

# ---- Dependencies (Debian 12): clang 14 with its sanitizer and libFuzzer runtimes, libomp, and the project's own.
scripts/install-deps.sh clang libclang-rt-14-dev libomp-dev cmake ninja-build libhwy-dev nlohmann-json3-dev || exit 1

# ---- Build.
build=$root/build-fuzz
echo "==== build: $build"
mkdir -p "$build"
# TDCONV_HWY_DISABLED_TARGETS (environment): SIMD targets left out of this build (see CMakeLists.txt).
CC=clang CXX=clang++ cmake -S fuzz -B "$build" -G Ninja \
  -DTDCONV_HWY_DISABLED_TARGETS="${TDCONV_HWY_DISABLED_TARGETS:-}" >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
common=(-rss_limit_mb=2048 -timeout=10)

# What went wrong, from a libFuzzer log ("ok" when nothing did and the exit status is 0).
classify() {  # log, exit status
  local log=$1 rc=$2
  if grep -q "ERROR: libFuzzer: timeout" "$log"; then echo timeout
  elif grep -q "ERROR: libFuzzer: out-of-memory" "$log"; then echo out-of-memory
  elif grep -q "ERROR: LeakSanitizer" "$log"; then echo leak
  elif grep -q "BUG: " "$log"; then echo mismatch
  elif grep -q "ERROR: AddressSanitizer" "$log"; then echo asan
  elif grep -q "runtime error:" "$log"; then echo ubsan
  elif grep -q "ERROR: libFuzzer: deadly signal" "$log"; then echo crash
  elif ((rc != 0)); then echo "failed (exit $rc)"
  else echo ok
  fi
}

report_failure() {  # target, log, artifacts dir
  local t=$1 log=$2 artifacts=$3
  echo "---- $t: last lines of $log"
  grep -E "BUG: |  problem: |  command: |  detail: |ERROR: |SUMMARY: |runtime error:|Test unit written to" "$log" |
    head -20
  echo "----"
  local a
  for a in "$artifacts"/*; do
    [ -f "$a" ] || continue
    # The input itself, so that a failure seen only in CI's log can be rebuilt: readable (cli_fuzz's arguments,
    # separated at newlines and NULs, shown as " | ") and exact (base64 -d recreates the file).
    echo "input ($(wc -c <"$a") bytes): $(head -c 600 "$a" | tr '\n\0' '\036\036' | sed 's/\x1e/ | /g' | cat -v)"
    echo "input (base64): $(head -c 3000 "$a" | base64 -w0)"
    echo "reproduce: $build/$t $a"
    echo "keep it as a regression test: cp $a $root/fuzz/regressions/$t/"
  done
}

run=$build/run
rm -rf "$run"
failed=0
rows=()
for t in "${targets[@]}"; do
  dir=$run/$t
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp "$root/fuzz/corpus/$t/"* "$dir/corpus/" 2>/dev/null
  dict=()
  [ -f "$root/fuzz/$t.dict" ] && dict=(-dict="$root/fuzz/$t.dict")

  # Regressions: every input that once failed must now pass (libFuzzer runs files given as arguments once each).
  regressions=()
  for f in "$root/fuzz/regressions/$t/"*; do
    [ -f "$f" ] && regressions+=("$f")
  done
  if ((${#regressions[@]})); then
    echo "==== $t: ${#regressions[@]} regression inputs"
    start=$SECONDS
    "$build/$t" "${common[@]}" -artifact_prefix="$dir/artifacts/regression-" "${regressions[@]}" \
      >"$dir/regressions.log" 2>&1
    rc=$?
    result=$(classify "$dir/regressions.log" "$rc")
    rows+=("$t (regressions)|$((SECONDS - start))|${#regressions[@]}|$result")
    if [ "$result" != ok ]; then
      failed=1
      report_failure "$t" "$dir/regressions.log" "$dir/artifacts"
    fi
  fi

  echo "==== $t: fuzzing for ${seconds}s"
  start=$SECONDS
  "$build/$t" "$dir/corpus" "${common[@]}" "${dict[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" >"$dir/fuzz.log" 2>&1
  rc=$?
  result=$(classify "$dir/fuzz.log" "$rc")
  executions=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$dir/fuzz.log" | tail -1)
  rows+=("$t|$((SECONDS - start))|${executions:-?}|$result")
  grep -E "^#[0-9]+[[:space:]]+DONE" "$dir/fuzz.log" | tail -1
  if [ "$result" != ok ]; then
    failed=1
    report_failure "$t" "$dir/fuzz.log" "$dir/artifacts"
  fi
done

echo
printf '%-26s %8s %12s  %s\n' target seconds executions result
for row in "${rows[@]}"; do
  IFS='|' read -r name secs execs result <<<"$row"
  printf '%-26s %8s %12s  %s\n' "$name" "$secs" "$execs" "$result"
done
echo "(logs, corpora and artifacts: $run)"
if ((failed)); then
  echo "==== fuzzing FAILED"
  exit 1
fi
echo "==== fuzzing passed"
