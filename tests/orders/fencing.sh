#!/usr/bin/env bash
# Fencing, end to end (issue 9's leftover): engine A (PostgreSQL + Redis, --stock lock) takes an
# open-loop load and is frozen with SIGSTOP mid-run, holding whatever it had in flight (SKU locks,
# payment calls, a half-built group commit); engine B starts on the same database and Redis,
# resumes the orders A left in the database and takes more load; then A is resumed with SIGCONT
# and runs on beside B with its stale in-memory state. Nothing may be applied twice: the audit
# (every acknowledged order once, keys unique, the stock ledger exact, at most one capture per
# order, Redis equal to the database, every order terminal) must pass. SIGSTOP is no sleep: the
# instants are chosen, not awaited.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
svc=$src/scripts/services.sh
command -v redis-server >/dev/null && command -v psql >/dev/null ||
  { echo "SKIP: redis-server or PostgreSQL not installed"; exit 0; }
dir=$(mktemp -d /tmp/weft-test-fencing.XXXXXX)
a_pid= b_pid= mock_pid= w_pid= l1_pid=
cleanup() {
  [ -n "$a_pid" ] && kill -CONT "$a_pid" 2>/dev/null
  for p in $l1_pid $a_pid $b_pid $w_pid $mock_pid; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$svc" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.out; do echo "== $f"; tail -n 20 "$f"; done; exit 1; }

pg=$("$svc" start postgres "$dir") || fail "PostgreSQL did not start"
redis=$("$svc" start redis "$dir") || fail "Redis did not start"
"$weft" orders payment-mock --listen 127.0.0.1:0 --latency 20:100 >"$dir/mock.out" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/mock.out" && break; sleep 0.1; done
mock=$(grep -o 'http://[0-9.:]*' "$dir/mock.out" | head -1)
[ -n "$mock" ] || fail "mock did not start"

serve() { # name -> sets $url and $pid
  "$weft" orders serve --listen 127.0.0.1:0 --db "$pg" --redis "$redis" --stock lock \
    --payment "$mock" >"$dir/$1.out" 2>&1 &
  pid=$!
  for _ in $(seq 600); do grep -q "listening on" "$dir/$1.out" && break; sleep 0.05; done
  url=$(grep -o 'listening on http://[0-9.:]*' "$dir/$1.out" | grep -o 'http://.*') ||
    fail "engine $1 did not start"
}
serve a; url_a=$url a_pid=$pid
"$weft" orders logistics --redis "$redis" --db "$pg" >"$dir/logistics.out" 2>&1 &
w_pid=$!
# Few SKUs, so that A holds locks on most of them when it stops; stock runs out mid-run, so that
# rejections and releases happen on both sides.
"$weft" orders load --url "$url_a" --skus 4 --stock 1500 --duration 0 >/dev/null || fail "stock"

# Load 1 on A: 400/s for 6 s; A is frozen 2 s in. Its unanswered requests retry on A (same key)
# until A answers after SIGCONT.
"$weft" orders load --url "$url_a" --rate 400 --duration 6 --skus 4 --hot-sku 0.5 --items 2 \
  --retry-for 60 --timeout 5 --sample 0 --acked "$dir/acked1" >"$dir/load1.out" 2>&1 &
l1_pid=$!
until [ "$(curl -s "$url_a/metrics" | sed -n 's/^orders_received_total{result="accepted"} //p')" -ge 800 ] 2>/dev/null; do
  kill -0 "$l1_pid" 2>/dev/null || fail "load 1 ended before A was stopped"
  sleep 0.05
done
kill -STOP "$a_pid"

# B takes over: same database and Redis, resumes A's unfinished orders, takes load 2.
serve b; url_b=$url b_pid=$pid
"$weft" orders load --url "$url_b" --rate 400 --duration 4 --skus 4 --hot-sku 0.5 --items 2 \
  --retry-for 30 --timeout 5 --sample 0 --acked "$dir/acked2" >"$dir/load2.out" 2>&1 ||
  fail "load 2 on B exited $?"

# A wakes up with its stale state (locks long expired, fences moved on) and runs beside B.
kill -CONT "$a_pid"
wait "$l1_pid" || fail "load 1 on A exited $?"
l1_pid=
cat "$dir/acked1" "$dir/acked2" >"$dir/acked"
"$weft" orders audit --db "$pg" --redis "$redis" --payment "$mock" --acked "$dir/acked" \
  --wait 60 >"$dir/audit.out" 2>&1 || { cat "$dir/audit.out"; fail "audit after SIGSTOP/SIGCONT"; }
cat "$dir/audit.out"
grep -q "^PASSED" "$dir/audit.out" || fail "audit did not pass"
# Both stop cleanly on SIGTERM, the resumed one included.
kill -TERM "$a_pid" "$b_pid"
for _ in $(seq 300); do kill -0 "$a_pid" 2>/dev/null || kill -0 "$b_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$a_pid" 2>/dev/null && fail "engine A did not stop on SIGTERM"
kill -0 "$b_pid" 2>/dev/null && fail "engine B did not stop on SIGTERM"
wait "$a_pid" || fail "engine A exited $? on SIGTERM"
wait "$b_pid" || fail "engine B exited $? on SIGTERM"
a_pid= b_pid=
echo "fencing: ok ($(wc -l <"$dir/acked1") orders acknowledged by A, $(wc -l <"$dir/acked2") by B)"
