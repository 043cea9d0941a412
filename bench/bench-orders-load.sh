#!/usr/bin/env bash
# The load generator's figures of record (issue 10), run by bench/run.sh as "orders-load":
#   1. the step curve ORDERS_STEPS (1k:12k:1k) at ORDERS_STEP_S (10 s) per step, with SQLite and
#      with PostgreSQL + Redis (+ the logistics worker), each with its knee marked;
#   2. acknowledgement and completion p99 at ORDERS_RATE (5000/s) for ORDERS_SECONDS (20 s);
#   3. Locust (bench/locustfile.py, Debian's python3-locust) with the same traffic at
#      ORDERS_LOCUST_RATE (1000/s) for ORDERS_SECONDS beside `weft orders load` at that rate.
# Locust's users are a closed loop: each waits for its answer before sending again, so when the
# server slows down the slow period is sampled by fewer requests and the tail is under-reported.
# Environment: WEFT_BIN, ORDERS_STEPS, ORDERS_STEP_S, ORDERS_RATE, ORDERS_SECONDS,
# ORDERS_LOCUST_RATE, ORDERS_OUT (reports; default bench-out/orders-load).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
weft=${WEFT_BIN:-$src/build/release/weft}
steps=${ORDERS_STEPS:-1k:12k:1k} step_s=${ORDERS_STEP_S:-10}
rate=${ORDERS_RATE:-5000} seconds=${ORDERS_SECONDS:-20} lrate=${ORDERS_LOCUST_RATE:-1000}
out=${ORDERS_OUT:-$src/bench-out/orders-load}
mkdir -p "$out"
dir=$(mktemp -d /tmp/weft-bench-load.XXXXXX)
engine_pid= mock_pid= worker_pid=
stop_engine() {
  for p in $engine_pid $worker_pid $mock_pid; do kill "$p" 2>/dev/null || true; done
  for p in $engine_pid $worker_pid $mock_pid; do wait "$p" 2>/dev/null || true; done
  engine_pid= worker_pid= mock_pid=
}
cleanup() {
  stop_engine
  "$src/scripts/services.sh" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

start_engine() { # db [redis]
  local db=$1 redis=${2:-}
  "$weft" orders payment-mock --listen 127.0.0.1:0 >"$dir/mock.out" 2>&1 &
  mock_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$dir/mock.out" && break; sleep 0.1; done
  local mock args
  mock=$(grep -o 'http://[0-9.:]*' "$dir/mock.out" | head -1)
  args=(orders serve --listen 127.0.0.1:0 --db "$db" --payment "$mock")
  [ -n "$redis" ] && args+=(--redis "$redis")
  "$weft" "${args[@]}" >"$dir/engine.out" 2>&1 &
  engine_pid=$!
  for _ in $(seq 300); do grep -q "listening on" "$dir/engine.out" && break; sleep 0.1; done
  url=$(grep -o 'listening on http://[0-9.:]*' "$dir/engine.out" | grep -o 'http://.*')
  if [ -n "$redis" ]; then
    "$weft" orders logistics --redis "$redis" --db "$db" --batch 512 --quiet \
      >"$dir/logistics.out" 2>&1 &
    worker_pid=$!
  fi
  for s in $(seq 0 99); do curl -sf -X PUT -d '{"qty":1000000000}' "$url/stock/sku-$s" >/dev/null; done
}

echo "orders-load: open loop, latency from each request's scheduled start; load $(cut -d' ' -f1-3 /proc/loadavg)"
for store in sqlite postgres; do
  if [ "$store" = sqlite ]; then
    start_engine "sqlite:$dir/orders-$RANDOM.db"
  else
    pg=$("$src/scripts/services.sh" start postgres "$dir") || { echo "no PostgreSQL: skipped"; continue; }
    rd=$("$src/scripts/services.sh" start redis "$dir") || { echo "no Redis: skipped"; continue; }
    start_engine "$pg" "$rd"
  fi
  echo; echo "== step curve $steps, $step_s s each: $store"
  "$weft" orders load --url "$url" --steps "$steps" --duration "$step_s" --skus 100 \
    --sample 0.01 --json "$out/steps-$store.json" --html "$out/steps-$store.html" || true
  echo; echo "== $rate orders/s for $seconds s: $store"
  "$weft" orders load --url "$url" --rate "$rate" --duration "$seconds" --skus 100 \
    --sample 0.05 --json "$out/rate-$store.json" || true
  if [ "$store" = sqlite ]; then
    echo; echo "== Locust beside weft orders load at $lrate/s for $seconds s: $store"
    "$weft" orders load --url "$url" --rate "$lrate" --duration "$seconds" --skus 100 --sample 0 \
      --json "$out/weft-$lrate.json" >/dev/null || true
    if command -v locust >/dev/null; then
      users=$((lrate / 10))
      ORDERS_PER_USER=10 locust -f "$src/bench/locustfile.py" --headless -u "$users" -r "$users" \
        -t "${seconds}s" --host "$url" --csv "$out/locust" --only-summary >"$out/locust.log" 2>&1 || true
      /usr/bin/python3 - "$out/weft-$lrate.json" "$out/locust_stats.csv" "$lrate" <<'PY' || true
import csv, json, sys
w = json.load(open(sys.argv[1]))
rows = {r["Name"]: r for r in csv.DictReader(open(sys.argv[2]))}
l = rows.get("POST /orders") or rows.get("Aggregated")
print("%-26s %10s %8s %8s %8s %9s" % ("", "orders/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms"))
s = w["steps"][0]; q = w["latency_ms"]
print("%-26s %10.0f %8.1f %8.1f %8.1f %9.1f" % ("weft orders load (open)", s["achieved"], q["p50"],
                                               q["p99"], q["p99.9"], q["p100"]))
print("%-26s %10.0f %8.1f %8.1f %8.1f %9.1f" % ("locust (closed loop)", float(l["Requests/s"]),
      float(l["50%"]), float(l["99%"]), float(l["99.9%"]), float(l["Max Response Time"])))
print("Locust's users wait for each answer before the next request, so a slow period is sampled"
      " by fewer requests: its tail is under-reported (coordinated omission); weft orders load"
      " measures every request from its scheduled instant. Asked for %s/s." % sys.argv[3])
PY
    else
      echo "locust not installed (python3-locust): skipped"
    fi
  fi
  stop_engine
done
echo; echo "reports in $out"
