#!/usr/bin/env bash
# Chaos for `weft orders serve` (issue 10): an open-loop load runs while the engine is killed
# with SIGKILL at random instants and restarted on the same port (and, in the full run, Redis
# and PostgreSQL are each killed -9 once and restarted). The load generator keeps retrying every
# unacknowledged order with the same Idempotency-Key, as a real client would. At the end
# `weft orders audit` must pass: every acknowledged order exists exactly once, no key twice,
# stock exact, at most one capture per order (the payment mock runs apart, so it survives the
# engine's deaths), every order terminal within 10 s of the later of its creation and the last
# restart (audit --restart-ms). Printed: each kill's restart time to the
# first 201 and the latency around it (from the load generator's per-second timeline).
#
# usage: bench/orders-chaos.sh [--short] [--rate R] [--seconds S] [--kills N] [--sqlite]
#   default (full): PostgreSQL + Redis + `weft orders logistics`, 2000/s for 180 s, 10 kills of
#   the engine, then one kill -9 of Redis and one of PostgreSQL.
#   --short: SQLite, no Redis, 200/s for 8 s, one kill (what `make check` runs,
#   tests/orders/chaos.sh).
# Environment: WEFT_BIN (default build/release/weft). Exit 0 only if the audit passes and the
# load generator gave up on no order.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
weft=${WEFT_BIN:-$src/build/release/weft}
rate=2000 seconds=180 kills=10 short=0 sqlite=0
while [ $# -gt 0 ]; do
  case $1 in
    --short) short=1 rate=200 seconds=8 kills=1 sqlite=1 ;;
    --rate) rate=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --kills) kills=$2; shift ;;
    --sqlite) sqlite=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "orders-chaos.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$weft" ] || { echo "orders-chaos.sh: no weft binary at $weft (set WEFT_BIN)" >&2; exit 2; }

dir=$(mktemp -d /tmp/weft-chaos.XXXXXX)
engine_pid= mock_pid= load_pid= worker_pid=
cleanup() {
  for p in $load_pid $engine_pid $worker_pid $mock_pid; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$src/scripts/services.sh" stop "$dir" >/dev/null 2>&1 || true
  [ -n "${CHAOS_KEEP:-}" ] && echo "chaos: kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # so that a timeout still runs cleanup
now() { date +%s.%N; }
last_restart_ms=0 # the last instant something killed was back (engine listening, service up)
mark_restart() { last_restart_ms=$(date +%s%3N); }
say() { echo "chaos: $*"; }

redis_url= db="sqlite:$dir/orders.db" use_redis=0
if [ "$sqlite" = 0 ]; then
  db=$("$src/scripts/services.sh" start postgres "$dir")
  redis_url=$("$src/scripts/services.sh" start redis "$dir")
  use_redis=1
fi

"$weft" orders payment-mock --listen 127.0.0.1:0 >"$dir/mock.out" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/mock.out" && break; sleep 0.1; done
mock=$(grep -o 'http://[0-9.:]*' "$dir/mock.out" | head -1)
[ -n "$mock" ] || { cat "$dir/mock.out"; exit 1; }

port=0
start_engine() {
  local args=(orders serve --listen "127.0.0.1:$port" --db "$db" --payment "$mock")
  [ -n "$redis_url" ] && args+=(--redis "$redis_url")
  : >"$dir/engine.out"
  "$weft" "${args[@]}" >>"$dir/engine.out" 2>&1 &
  engine_pid=$!
  local i
  for i in $(seq 600); do
    grep -q "listening on" "$dir/engine.out" && break
    kill -0 "$engine_pid" 2>/dev/null || { sleep 0.2; "$weft" "${args[@]}" >>"$dir/engine.out" 2>&1 &
                                           engine_pid=$!; }
    sleep 0.05
  done
  url=$(grep -o 'listening on http://[0-9.:]*' "$dir/engine.out" | grep -o 'http://.*') ||
    { cat "$dir/engine.out"; exit 1; }
  port=${url##*:}
}
start_engine
say "engine $url ($db${redis_url:+, $redis_url}), payment mock $mock"
if [ -n "$redis_url" ]; then
  "$weft" orders logistics --redis "$redis_url" --db "$db" >"$dir/logistics.out" 2>&1 &
  worker_pid=$!
fi
"$weft" orders load --url "$url" --skus 100 --stock 100000000 --duration 0 >/dev/null

# The first 201 after a restart: a probe order, retried until the engine takes it.
first_201() { # t_kill what
  local n=0 st end=$(($(date +%s) + 60))
  while :; do
    if [ "$(date +%s)" -gt "$end" ]; then
      say "no 201 within 60 s of the kill at $1; engine log:"; tail -n 20 "$dir/engine.out"
      echo "$1 $(now) $2" >>"$dir/restarts"
      return 1
    fi
    n=$((n + 1))
    st=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -X POST -H "Idempotency-Key: probe-$1-$n" \
      -H 'Content-Type: application/json' \
      -d '{"user":"probe","items":[{"sku":"sku-1","qty":1}],"amount_cents":100,"payment_token":"t"}' \
      "$url/orders" || true)
    [ "$st" = 201 ] && break
    sleep 0.01
  done
  echo "$1 $(now) $2" >>"$dir/restarts"
}

t_load=$(now)
"$weft" orders load --url "$url" --rate "$rate" --duration "$seconds" --skus 100 --hot-sku 0.1 \
  --retry-for 120 --timeout 5 --sample 0.02 --drain 10 --acked "$dir/acked" \
  --json "$dir/load.json" >"$dir/load.out" 2>&1 &
load_pid=$!

# Kill instants: uniformly random within the middle 80 % of the run, sorted.
instants=$(awk -v n="$kills" -v s="$seconds" -v seed="$RANDOM" 'BEGIN { srand(seed);
  for (i = 0; i < n; i++) printf "%.3f\n", s * (0.1 + 0.8 * rand()) }' | sort -n)
rc=0
: >"$dir/restarts"
for at in $instants; do
  while awk -v a="$at" -v t0="$t_load" -v t="$(now)" 'BEGIN { exit !(t - t0 < a) }'; do
    sleep 0.02
  done
  tk=$(now)
  kill -9 "$engine_pid" 2>/dev/null || true
  wait "$engine_pid" 2>/dev/null || true
  start_engine
  mark_restart
  first_201 "$tk" engine || rc=1
done
if [ "$short" = 0 ] && [ "$use_redis" = 1 ]; then
  for svc in redis postgres; do
    pid=$(cat "$dir/$svc.pid") svc_port=$(cat "$dir/$svc.port")
    tk=$(now)
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    # PostgreSQL's backends outlive a killed postmaster for a moment: retry until it starts.
    up=0
    for _ in $(seq 30); do
      "$src/scripts/services.sh" restart "$svc" "$dir" >>"$dir/restart.out" 2>&1 && { up=1; break; }
      sleep 1
    done
    [ "$up" = 1 ] || { say "$svc did not restart:"; tail -n 5 "$dir/restart.out"; rc=1; }
    mark_restart
    say "$svc killed -9 at $(awk -v a="$tk" -v b="$t_load" 'BEGIN { printf "%.1f", a - b }') s," \
      "restarted on port $svc_port"
    first_201 "$tk" "$svc" || rc=1
    sleep 5
  done
fi
wait "$load_pid" || rc=$?
load_pid=
cat "$dir/load.out"
[ "$rc" = 0 ] || say "the load generator exited $rc (gave up on some order, or a resent key differed)"

# Each kill: the restart time to the first 201, and the latency around it.
python3 - "$dir/load.json" "$dir/restarts" "$t_load" <<'PY'
import json, sys
load = json.load(open(sys.argv[1]))
secs = load["seconds"]
t0 = float(sys.argv[3])
for line in open(sys.argv[2]):
    a, b, what = line.split()
    tk, t201 = float(a), float(b)
    s = int(tk - t0)
    around = secs[max(0, s - 1): s + 4]
    worst = max((x["max_ms"] for x in around), default=0)
    p99 = max((x["p99_ms"] for x in around), default=0)
    base = [x["p99_ms"] for x in secs[max(0, s - 6): max(0, s - 1)]]
    print("chaos: kill -9 %-8s at %6.2f s: first 201 after %6.0f ms; around it p99 %.0f ms, "
          "max %.0f ms (before: p99 %.1f ms)" % (what, tk - t0, (t201 - tk) * 1000, p99, worst,
                                     max(base) if base else 0))
PY

# Every order terminal within 10 s of the later of its creation and the last restart.
audit=(orders audit --db "$db" --payment "$mock" --acked "$dir/acked" --wait 10)
[ "$last_restart_ms" -gt 0 ] && audit+=(--restart-ms "$last_restart_ms" --within 10)
[ -n "$redis_url" ] && audit+=(--redis "$redis_url")
if "$weft" "${audit[@]}"; then
  say "audit passed after $kills engine kill(s)$([ "$short" = 0 ] && [ "$use_redis" = 1 ] &&
    echo ", Redis and PostgreSQL killed once each")"
else
  say "AUDIT FAILED"
  rc=1
fi
kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null || true
engine_pid=
exit "$rc"
