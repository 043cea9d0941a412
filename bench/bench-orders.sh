#!/usr/bin/env bash
# The order engine benchmark: `weft orders serve` (+ `weft orders logistics`) and the brief's
# design in Python (bench/orders_peer.py) on the same machine, the same Redis and PostgreSQL
# (scripts/services.sh), the same payment mock and the same load (wrk + bench/orders.lua: every
# order a new Idempotency-Key), in alternating runs of the same session. Per system: orders
# acknowledged (201) per second, acknowledgement p50/p99 (wrk), completion p50/p99 (accepted ->
# shipped, from the database: completed_ms - created_ms), orders left non-terminal 60 s after the
# load, and `weft orders audit`. Prints medians with [min-max] over the runs and weft/peer ratios;
# then weft on SQLite, and both on one hot SKU (weft with --stock lock: it serialises that SKU).
#
# Environment: WEFT_BIN (weft), PYTHON (/usr/bin/python3), ORDERS_RUNS (3), ORDERS_DURATION (10 s
# of load per run), ORDERS_CONNS (128 wrk connections), ORDERS_LATENCY (payment p50:p99 ms,
# 30:200), ORDERS_SKUS (100), ORDERS_EXTRAS (1: the SQLite and hot-SKU runs).
# Closed-loop wrk, not open-loop: the load generator of the next issue replaces it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
weft=${WEFT_BIN:-$src/build/release/weft}
py=${PYTHON:-/usr/bin/python3}
runs=${ORDERS_RUNS:-3} dur=${ORDERS_DURATION:-10} conns=${ORDERS_CONNS:-128}
lat=${ORDERS_LATENCY:-30:200} skus=${ORDERS_SKUS:-100} extras=${ORDERS_EXTRAS:-1}
svc=$src/scripts/services.sh

for t in wrk redis-server psql curl; do
  command -v $t >/dev/null || { echo "bench-orders: $t is not installed (scripts/deps.sh bench)"; exit 1; }
done
have_peer=1
"$py" -c 'import fastapi, uvicorn, asyncpg, redis, httpx' 2>/dev/null ||
  { have_peer=0; echo "bench-orders: the Python peer needs python3-fastapi, -uvicorn, -asyncpg, -redis, -httpx (scripts/deps.sh bench); weft alone"; }
have_weft=1
"$weft" orders serve --help >/dev/null 2>&1 ||
  { have_weft=0; echo "bench-orders: '$weft orders serve' is not available; the peer alone"; }

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  "$svc" stop "$dir"
  rm -rf "$dir"
}
trap cleanup EXIT
redis=$("$svc" start redis "$dir") || exit 1
pg=$("$svc" start postgres "$dir") || exit 1
rport=${redis##*:}
pgbase=${pg%/postgres}

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo $p; return; }
  done
}
wait_http() { # url seconds
  local i
  for i in $(seq 1 $(($2 * 10))); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}
stop_pid() { kill -TERM "$1" 2>/dev/null; for i in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; kill -9 "$1" 2>/dev/null; }

# run_one SYSTEM LABEL DB(pg|sqlite) NSKUS [serve args...]: one run; appends a result line
# "LABEL tput ack_p50 ack_p99 done_p50 done_p99 left audit" to $dir/results.
run_one() {
  local sys=$1 label=$2 kind=$3 nskus=$4; shift 4
  local n=$((${n_run:-0} + 1)); n_run=$n
  local name="r${n}_${sys}" port dburl q
  redis-cli -p "$rport" flushall >/dev/null
  if [ "$kind" = pg ]; then
    psql -qtAX "$pg" -c "CREATE DATABASE $name" >/dev/null
    dburl=$pgbase/$name
    q() { psql -qtAX "$dburl" -c "$1"; }
  else
    dburl=sqlite:$dir/$name.db
    q() { sqlite3 "$dir/$name.db" "$1"; }
  fi
  "$weft" orders payment-mock --listen 127.0.0.1:0 --latency "$lat" >"$dir/mock.out" 2>/dev/null &
  local mock_pid=$! i
  pids+=("$mock_pid")
  for i in $(seq 1 50); do grep -q http "$dir/mock.out" && break; sleep 0.1; done
  local mock
  mock=$(grep -o 'http://[^ ]*' "$dir/mock.out")
  port=$(free_port)
  local url=http://127.0.0.1:$port spid lpid=""
  if [ "$sys" = weft ]; then
    "$weft" orders serve --listen "127.0.0.1:$port" --db "$dburl" --redis "$redis" \
      --payment "$mock" "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    spid=$!
    pids+=("$spid")
  else
    PEER_DB=$dburl PEER_REDIS=$redis PEER_PAYMENT=$mock "$py" "$here/orders_peer.py" 127.0.0.1 \
      "$port" >"$dir/$name.out" 2>"$dir/$name.err" &
    spid=$!
    pids+=("$spid")
  fi
  if ! wait_http "$url/healthz" 60; then
    echo "  $label: did not start:"; tail -n 5 "$dir/$name.err" | sed 's/^/    /'
    stop_pid "$spid"; [ -n "$lpid" ] && stop_pid "$lpid"; stop_pid "$mock_pid"
    return 1
  fi
  if [ "$sys" = weft ]; then
    "$weft" orders logistics --redis "$redis" --db "$dburl" --batch 512 --quiet >"$dir/$name.log.out" 2>&1 &
    lpid=$!
    pids+=("$lpid")
  fi
  seq 1 "$nskus" | xargs -P 8 -I{} curl -s -o /dev/null -X PUT -d '{"qty":100000000}' "$url/stock/sku-{}"
  ORDERS_RUN=$name ORDERS_SKUS=$nskus wrk -t2 -c"$conns" -d"${dur}s" -s "$here/orders.lua" "$url" \
    >"$dir/$name.wrk" 2>&1
  local created ack50 ack99
  created=$(sed -n 's/^orders: 201=\([0-9]*\).*/\1/p' "$dir/$name.wrk")
  ack50=$(sed -n 's/^latency_us: p50=\([0-9]*\).*/\1/p' "$dir/$name.wrk")
  ack99=$(sed -n 's/^latency_us: .*p99=\([0-9]*\).*/\1/p' "$dir/$name.wrk")
  # Completion: wait (bounded) until every order is terminal.
  local left=0 until=$((SECONDS + 60))
  while :; do
    left=$(q "SELECT count(*) FROM orders WHERE status IN ('accepted','reserved','paid')")
    [ "${left:-1}" = 0 ] || [ $SECONDS -ge $until ] && break
    sleep 0.1
  done
  local done50 done99
  if [ "$kind" = pg ]; then
    read -r done50 done99 < <(q "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY completed_ms - created_ms),
      percentile_disc(0.99) WITHIN GROUP (ORDER BY completed_ms - created_ms) FROM orders WHERE status = 'shipped'" | tr '|' ' ')
  else
    local ns; ns=$(q "SELECT count(*) FROM orders WHERE status = 'shipped'")
    done50=$(q "SELECT completed_ms - created_ms FROM orders WHERE status = 'shipped' ORDER BY 1 LIMIT 1 OFFSET $((ns / 2))")
    done99=$(q "SELECT completed_ms - created_ms FROM orders WHERE status = 'shipped' ORDER BY 1 LIMIT 1 OFFSET $((ns * 99 / 100))")
  fi
  local audit=n/a
  if "$weft" orders audit --help >/dev/null 2>&1; then
    # The peer keeps its stock keys but not the engine's reconcile marker: no Redis check for it.
    local ar=(--redis "$redis"); [ "$sys" = peer ] && ar=()
    if "$weft" orders audit --db "$dburl" "${ar[@]}" --payment "$mock" >"$dir/$name.audit" 2>&1; then
      audit=pass
    else
      audit=FAIL
    fi
  fi
  stop_pid "$spid"; [ -n "$lpid" ] && stop_pid "$lpid"; stop_pid "$mock_pid"
  local tput=$(( ${created:-0} / dur ))
  printf "  %-22s %7s orders/s  ack p50 %6s p99 %6s ms  completion p50 %6s p99 %6s ms  left %s  audit %s\n" \
    "$label" "$tput" "$(awk "BEGIN{printf \"%.1f\", ${ack50:-0}/1000}")" \
    "$(awk "BEGIN{printf \"%.1f\", ${ack99:-0}/1000}")" "${done50:-?}" "${done99:-?}" "$left" "$audit"
  echo "$label $tput $((${ack50:-0} / 1000)) $((${ack99:-0} / 1000)) ${done50:-0} ${done99:-0} $left $audit" >>"$dir/results"
  if [ "$audit" = FAIL ]; then sed 's/^/    audit: /' "$dir/$name.audit"; fi
  if [ "${created:-0}" = 0 ]; then sed 's/^/    wrk: /' "$dir/$name.wrk" | tail -n 5; tail -n 3 "$dir/$name.err" | sed 's/^/    /'; fi
}

echo "orders: $runs alternating runs of ${dur}s, $conns connections, $skus SKUs, payment latency $lat ms (p50:p99)"
: >"$dir/results"
for r in $(seq 1 "$runs"); do
  order=(weft peer); [ $((r % 2)) = 0 ] && order=(peer weft)
  for s in "${order[@]}"; do
    case $s in
      weft) [ $have_weft = 1 ] && run_one weft "weft (pg, lua)" pg "$skus" --stock lua ;;
      peer) [ $have_peer = 1 ] && run_one peer "python peer (pg)" pg "$skus" ;;
    esac
  done
done

# Median [min-max] of column $2 for label $1.
stat() { awk -v l="$1" -v c="$2" '{ lab=$1; for (i=2; i<=NF-7; i++) lab=lab" "$i; if (lab==l) print $(NF-7+c) }' "$dir/results" |
  sort -n | awk '{v[NR]=$1} END { if (NR) printf "%s [%s-%s]", v[int((NR+1)/2)], v[1], v[NR]; else printf "-" }'; }
med() { stat "$1" "$2" | cut -d' ' -f1; }
echo
echo "orders summary (median [min-max] over $runs runs):"
for l in "weft (pg, lua)" "python peer (pg)"; do
  printf "  %-18s  %s orders/s, ack p99 %s ms, completion p99 %s ms\n" "$l" "$(stat "$l" 1)" "$(stat "$l" 3)" "$(stat "$l" 5)"
done
w=$(med "weft (pg, lua)" 1) p=$(med "python peer (pg)" 1)
if [ -n "$w" ] && [ -n "$p" ] && [ "$w" != - ] && [ "$p" != - ] && [ "$p" -gt 0 ]; then
  echo "  ratio weft/peer: throughput $(awk "BEGIN{printf \"%.1f\", $w/$p}")x," \
    "completion p99 peer/weft $(awk "BEGIN{a=$(med "weft (pg, lua)" 5); b=$(med "python peer (pg)" 5); printf \"%.1f\", (a>0? b/a : 0)}")x"
fi

if [ "$extras" = 1 ]; then
  echo
  echo "orders extras (one run each):"
  [ $have_weft = 1 ] && command -v sqlite3 >/dev/null && run_one weft "weft (sqlite, lua)" sqlite "$skus" --stock lua
  [ $have_weft = 1 ] && run_one weft "weft (pg, lock, 1 SKU)" pg 1 --stock lock
  [ $have_weft = 1 ] && run_one weft "weft (pg, lua, 1 SKU)" pg 1 --stock lua
  [ $have_peer = 1 ] && run_one peer "python peer (1 SKU)" pg 1
fi
exit 0
