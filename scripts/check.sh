#!/usr/bin/env bash
# make check: format check, then the whole test suite in three builds. Fails on the first error.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
t0=$(date +%s)

echo "== clang-format"
files=$(git ls-files '*.c' '*.h'; git ls-files --others --exclude-standard '*.c' '*.h')
clang-format --dry-run --Werror $files

run_suite() { # name, build dir, cmake args...
  local name=$1 dir=$2; shift 2
  echo "== $name: configure and build ($dir)"
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null 2>"$dir.build.log" || { cat "$dir.build.log"; exit 1; }
  echo "== $name: tests"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600)
}

run_suite "release -Werror" build/check-release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_WERROR=ON

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite "ASan+UBSan (and fuzzers)" build/check-asan -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=Debug -DWEFT_SANITIZE=address -DWEFT_FUZZ=ON -DWEFT_WERROR=ON

export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
run_suite "ThreadSanitizer" build/check-tsan -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=thread -DWEFT_WERROR=ON

echo "== make check passed in $(( $(date +%s) - t0 )) s"
