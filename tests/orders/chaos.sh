#!/usr/bin/env bash
# The short chaos run (bench/orders-chaos.sh --short): one kill -9 of the engine under an
# open-loop load, restart on the same port, clients retry with the same key; the audit passes,
# every order terminal within 10 s of the restart.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
WEFT_BIN=${WEFT_BIN:-$src/build/release/weft} bash "$src/bench/orders-chaos.sh" --short >"$out" 2>&1 ||
  { cat "$out"; echo "FAIL: orders-chaos.sh --short exited $?"; exit 1; }
grep -q "first 201 after" "$out" || { cat "$out"; echo "FAIL: no restart measured"; exit 1; }
grep -q "^PASSED" "$out" || { cat "$out"; echo "FAIL: audit did not pass"; exit 1; }
grep -q "^ok   terminal: every order is terminal, within 10 s of" "$out" ||
  { cat "$out"; echo "FAIL: the audit did not check completion within 10 s of the restart"; exit 1; }
grep "^chaos: kill -9" "$out"
echo "chaos: ok"
