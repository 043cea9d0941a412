#!/usr/bin/env bash
# weft demo orders: runs end to end (Redis if installed, the mock, the engine, a burst, the audit),
# finds the stock exact and every order terminal, and leaves no process or temporary directory.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
before=$({ compgen -G "/tmp/weft-demo-orders-*" || true; } | wc -l)
"$weft" demo orders >"$out" 2>&1 || { cat "$out"; echo "FAIL: exit $?"; exit 1; }
for want in "(exact)" "0 not terminal" "orders captured more than once: 0" "audit"; do
  grep -qF -- "$want" "$out" || { cat "$out"; echo "FAIL: output lacks '$want'"; exit 1; }
done
grep -q "^PASSED" "$out" || grep -q "not available in this build" "$out" ||
  { cat "$out"; echo "FAIL: audit did not pass"; exit 1; }
after=$({ compgen -G "/tmp/weft-demo-orders-*" || true; } | wc -l)
[ "$after" = "$before" ] || { echo "FAIL: temporary directory left"; exit 1; }
echo "demo: ok"
