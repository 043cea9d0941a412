#!/usr/bin/env bash
# weft demo orders: runs end to end (Redis if installed, the mock, the engine, 20 s of open-loop
# load with one kill -9 and restart of the engine mid-run, the audit, the latency table), finds
# every acknowledged order once, the stock exact, every order terminal, nothing captured twice,
# and leaves no temporary directory. Bounded: killed after 240 s.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
before=$({ compgen -G "/tmp/weft-demo-orders-*" || true; } | wc -l)
rc=0
timeout -k 10 240 "$weft" demo orders >"$out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$out"; echo "FAIL: exit $rc"; exit 1; }
for want in "dashboard: http://127.0.0.1:" "kill -9:   the engine at" "restarted: http://" \
  "orders captured more than once: 0" "ok   terminal:" "ok   acknowledged:" "ok   stock:" \
  "gave up 0" "not terminal 0" "p99.9 ms"; do
  grep -qF -- "$want" "$out" || { cat "$out"; echo "FAIL: output lacks '$want'"; exit 1; }
done
grep -q "^PASSED" "$out" || { cat "$out"; echo "FAIL: audit did not pass"; exit 1; }
after=$({ compgen -G "/tmp/weft-demo-orders-*" || true; } | wc -l)
[ "$after" = "$before" ] || { echo "FAIL: temporary directory left"; exit 1; }
echo "demo: ok"
