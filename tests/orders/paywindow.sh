#!/usr/bin/env bash
# The payment window: with --payment-concurrency N and a slow payment API, the engine never holds
# more than N connections to it, the rest of the orders wait their turn (queue_depth{queue=
# "payment"}), and every order still completes. Before the window existed, each live order opened
# its own connection: a 1-hour soak at 5,000/s reached the engine's 20,000-fd limit.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
dir=$(mktemp -d /tmp/weft-test-paywin.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.out; do echo "== $f"; cat "$f"; done; exit 1; }
started() { # file: prints the URL once "listening on" is there
  local i
  for i in $(seq 300); do
    grep -q "listening on" "$1" && { grep -o 'listening on http://[0-9.:]*' "$1" | grep -o 'http://.*'; return 0; }
    sleep 0.1
  done
  return 1
}
# Engine-side connections to PORT that are established, from /proc/net/tcp (no ss needed).
conns_to() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" '$3 ~ p"$" && $4 == "01" {n++} END {print n + 0}' /proc/net/tcp /proc/net/tcp6
}

"$weft" orders payment-mock --listen 127.0.0.1:0 --latency 100:100 >"$dir/mock.out" 2>&1 &
pids+=($!)
mock=$(started "$dir/mock.out") || fail "mock did not start"
"$weft" orders serve --listen 127.0.0.1:0 --db "sqlite:$dir/o.db" --payment "$mock" \
  --payment-concurrency 3 >"$dir/serve.out" 2>&1 &
pids+=($!)
url=$(started "$dir/serve.out") || fail "engine did not start"
curl -sf -X PUT -d '{"qty":100000}' "$url/stock/sku-0" >/dev/null || fail "PUT /stock"
"$weft" orders load --url "$url" --rate 100 --duration 1 --skus 1 --sample 0 \
  --json "$dir/load.json" >"$dir/load.out" 2>&1 || fail "load exited $?"
acked=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"][0]["acked"])' \
  "$dir/load.json")
[ "$acked" -ge 50 ] || fail "only $acked orders acknowledged"
port=${mock##*:}
max=0 queued=0
for _ in $(seq 600); do
  n=$(conns_to "$port")
  [ "$n" -gt "$max" ] && max=$n
  curl -sf "$url/metrics" >"$dir/metrics.txt" || fail "GET /metrics"
  q=$(awk '/^queue_depth\{queue="payment"\}/ {print $2}' "$dir/metrics.txt")
  [ "${q:-0}" -gt "$queued" ] && queued=$q
  a=$(awk '/^workers_active\{pool="payment"\}/ {print $2}' "$dir/metrics.txt")
  [ "${a:-0}" -le 3 ] || fail "workers_active{pool=payment} $a > 3"
  done_n=$(awk '/^orders_completed_total/ {s += $2} END {print s + 0}' "$dir/metrics.txt")
  [ "$done_n" = "$acked" ] && break
  sleep 0.1
done
[ "$done_n" = "$acked" ] || fail "$done_n of $acked orders completed"
[ "$max" -ge 1 ] || fail "never saw a connection to the payment API"
[ "$max" -le 3 ] || fail "$max connections to the payment API at once (window 3)"
[ "$queued" -ge 1 ] || fail "no order ever waited for a payment slot"
grep -q '^orders_completed_total{status="shipped"} '"$acked"'$' "$dir/metrics.txt" ||
  fail "not every order shipped: $(grep '^orders_completed_total' "$dir/metrics.txt")"
echo "paywindow: ok ($acked orders, at most $max payment connections, up to $queued waiting)"
