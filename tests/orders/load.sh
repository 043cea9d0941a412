#!/usr/bin/env bash
# weft orders load against a running engine (SQLite, built-in payment mock): every scheduled
# order is answered as expected (201, or 400 for the deliberately bad ones), resent keys return
# the same id, the JSON report adds up, and the audit finds every acknowledged id exactly once.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
dir=$(mktemp -d /tmp/weft-test-load.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.out; do echo "== $f"; cat "$f"; done; exit 1; }

"$weft" orders serve --listen 127.0.0.1:0 --db "sqlite:$dir/o.db" >"$dir/serve.out" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "listening on" "$dir/serve.out" && break; sleep 0.1; done
url=$(grep -o 'listening on http://[0-9.:]*' "$dir/serve.out" | grep -o 'http://.*') ||
  fail "engine did not start"
# --stock: the load seeds the stock itself (PUT /stock on each SKU); --duration 0 only that.
rc=0; "$weft" orders load --url "$url" --duration 0 >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--duration 0 without --stock: exit $rc, not 2"
"$weft" orders load --url "$url" --skus 4 --stock 7 --duration 0 >"$dir/seed.out" 2>&1 ||
  fail "--stock --duration 0"
[ "$(curl -sf "$url/stock/sku-3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["available"])')" = 7 ] ||
  fail "--stock 7 did not set sku-3"

"$weft" orders load --url "$url" --rate 200 --duration 2 --skus 4 --stock 100000 --hot-sku 0.5 --bad 0.1 \
  --resend 0.1 --sample 1 --acked "$dir/acked" --json "$dir/r.json" --html "$dir/r.html" \
  >"$dir/load.out" 2>&1 || fail "load exited $?"
python3 - "$dir/r.json" <<'PY' || fail "report"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["steps"][0]
assert s["scheduled"] == 400, s
assert s["dropped"] == 0 and s["failed"] == 0, s
assert r["bad_sent"] > 0 and r["bad_rejected"] == r["bad_sent"], r
assert s["acked"] + r["bad_rejected"] == s["scheduled"], r
assert r["resent"] > 0 and r["resent_same_id"] == r["resent"] and r["resent_other"] == 0, r
assert r["latency_ms"]["count"] == s["acked"], r
assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["p100"], r
assert r["status"]["201"] == s["acked"], r
assert r["completion_ms"]["count"] == s["acked"] and r["not_terminal"] == 0, r
PY
[ "$(wc -l <"$dir/acked")" -gt 0 ] || fail "no acknowledged ids"
grep -q "<figure class=\"weft-chart\">" "$dir/r.html" || fail "HTML report has no chart"
"$weft" orders audit --db "sqlite:$dir/o.db" --acked "$dir/acked" --wait 10 >"$dir/audit.out" 2>&1 ||
  fail "audit"
echo "load: ok"
