#!/usr/bin/env bash
# The figures of record of `weft orders` (issue 10), run by bench/run.sh as "orders-load", all
# measured by `weft orders load` (open loop: latency from each request's scheduled start):
#   1. the step curve ORDERS_STEPS (1k:12k:1k) at ORDERS_STEP_S (10 s) per step, with SQLite and
#      with PostgreSQL + Redis (+ `weft orders logistics`), the knee marked: the first step where
#      achieved < 98 % of offered or p99 > 2 s;
#   2. acknowledgement and completion p99 at ORDERS_RATE (5000/s) for ORDERS_SECONDS (20 s), each
#      store;
#   3. the Python peer of issue 9 (bench/orders_peer.py: FastAPI/uvicorn, asyncpg, Redis) on the
#      same PostgreSQL and Redis, at its own best rate: its step curve ORDERS_PEER_STEPS
#      (100:1500:100, ORDERS_PEER_STEP_S 5 s each), then ORDERS_SECONDS at the last step it held;
#      weft's best held rate on PostgreSQL over the peer's is the ratio;
#   4. Locust (bench/locustfile.py, Debian's python3-locust) with the same traffic at
#      ORDERS_LOCUST_RATE (1000/s) for ORDERS_SECONDS beside `weft orders load` at that rate.
# Locust's users are a closed loop: each waits for its answer before sending again, so when the
# server slows down the slow period is sampled by fewer requests and the tail is under-reported.
# Environment: WEFT_BIN, PYTHON (/usr/bin/python3), ORDERS_STEPS, ORDERS_STEP_S, ORDERS_RATE,
# ORDERS_SECONDS, ORDERS_PEER_STEPS, ORDERS_PEER_STEP_S, ORDERS_LOCUST_RATE, ORDERS_STORES
# ("sqlite postgres"), ORDERS_OUT (reports; default bench-out/orders-load).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
weft=${WEFT_BIN:-$src/build/release/weft}
py=${PYTHON:-/usr/bin/python3}
steps=${ORDERS_STEPS:-1k:12k:1k} step_s=${ORDERS_STEP_S:-10}
rate=${ORDERS_RATE:-5000} seconds=${ORDERS_SECONDS:-20} lrate=${ORDERS_LOCUST_RATE:-1000}
psteps=${ORDERS_PEER_STEPS:-100:1500:100} pstep_s=${ORDERS_PEER_STEP_S:-5}
stores=${ORDERS_STORES:-sqlite postgres}
out=${ORDERS_OUT:-$src/bench-out/orders-load}
mkdir -p "$out"
dir=$(mktemp -d /tmp/weft-bench-load.XXXXXX)
engine_pid= mock_pid= worker_pid=
stop_engine() { # SIGTERM, then SIGKILL after 10 s (the Python peer drains its backlog first)
  local p
  for p in $engine_pid $worker_pid $mock_pid; do kill "$p" 2>/dev/null || true; done
  for p in $engine_pid $worker_pid $mock_pid; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  engine_pid= worker_pid= mock_pid=
}
cleanup() {
  stop_engine
  "$src/scripts/services.sh" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

start_mock() {
  "$weft" orders payment-mock --listen 127.0.0.1:0 >"$dir/mock.out" 2>&1 &
  mock_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$dir/mock.out" && break; sleep 0.1; done
  mock=$(grep -o 'http://[0-9.:]*' "$dir/mock.out" | head -1)
}
start_engine() { # db [redis]
  local db=$1 redis=${2:-} args
  start_mock
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
  "$weft" orders load --url "$url" --skus 100 --stock 1000000000 --duration 0 >/dev/null
}
start_peer() { # pg-url redis-url
  start_mock
  local port=$((20000 + RANDOM % 30000))
  PEER_DB=$1 PEER_REDIS=$2 PEER_PAYMENT=$mock "$py" "$src/bench/orders_peer.py" 127.0.0.1 "$port" \
    >"$dir/peer.out" 2>"$dir/peer.err" &
  engine_pid=$!
  url=http://127.0.0.1:$port
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" = 200 ] && break
    sleep 0.1
  done
  "$weft" orders load --url "$url" --skus 100 --stock 1000000000 --duration 0 >/dev/null
}
# Where the time goes during a fixed-rate run: CPU seconds per process (the engine, the logistics
# worker, PostgreSQL's processes, Redis) and the group commits from /metrics (commits/s, operations
# per commit = the pipeline depth, commit p50/p99; each commit is one round trip and one WAL flush).
cpu_of() { # pids...: CPU seconds of them and their children
  local p t=0 c
  for p in "$@"; do
    [ -n "$p" ] || continue
    [ "$p" = - ] && continue
    for c in $p $(pgrep -P "$p" 2>/dev/null); do
      t=$((t + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
    done
  done
  echo "$t"
}
prof_pids() { # four words, "-" for none
  local pg rd
  pg=$(cat "$dir/postgres.pid" 2>/dev/null) rd=$(cat "$dir/redis.pid" 2>/dev/null)
  echo "${engine_pid:--} ${worker_pid:--} ${pg:--} ${rd:--}"
}
prof_begin() {
  curl -s "$url/metrics" >"$dir/m0" || true
  read -r -a cpu0 < <(for p in $(prof_pids); do printf '%s ' "$(cpu_of "$p")"; done) || true
  t0=$(date +%s.%N)
}
prof_end() { # label
  curl -s "$url/metrics" >"$dir/m1" || true
  read -r -a cpu1 < <(for p in $(prof_pids); do printf '%s ' "$(cpu_of "$p")"; done) || true
  "$py" - "$1" "$dir/m0" "$dir/m1" "$t0" "$(date +%s.%N)" "$(getconf CLK_TCK)" \
    "${cpu0[*]:-}" "${cpu1[*]:-}" "$(prof_pids)" <<'PY' || true
import sys
label, f0, f1, t0, t1, hz, c0, c1, pids = sys.argv[1:10]
def m(f):
    d = {}
    for l in open(f):
        if l and l[0] != "#" and " " in l:
            k, v = l.rsplit(" ", 1); d[k] = float(v)
    return d
a, b = m(f0), m(f1)
dt = float(t1) - float(t0)
d = lambda k: b.get(k, 0) - a.get(k, 0)
commits, ops = d("store_commits_total"), d("store_commit_operations_total")
les = sorted((float(k.split('le="')[1].rstrip('"}')), d(k)) for k in b
             if k.startswith("store_commit_duration_seconds_bucket") and "+Inf" not in k)
def q(p):
    for le, n in les:
        if commits and n >= p * commits: return le * 1000
    return float("nan")
names = ["engine", "logistics worker", "postgresql", "redis"]
c0, c1 = c0.split(), c1.split()
cpu = ["%s %.1f s" % (names[i], (int(c1[i]) - int(c0[i])) / int(hz))
       for i in range(min(len(c0), len(c1), len(names))) if int(c1[i]) > int(c0[i])]
print("  profile %s: %.0f group commits/s, %.1f operations per commit (pipeline depth; one round"
      " trip and one WAL flush each), commit p50 <= %.1f ms, p99 <= %.1f ms; CPU over %.0f s (run + drain): %s"
      % (label, commits / dt, ops / commits if commits else 0, q(0.5), q(0.99), dt, ", ".join(cpu)))
PY
}
warm() { # a short warm-up at a tenth of the rate (connections, caches, JIT-less Python imports)
  "$weft" orders load --url "$url" --rate "$(($1 / 10 + 1))" --duration 2 --skus 100 --sample 0 \
    >/dev/null 2>&1 || true
}
# Of a step-curve report: "held achieved best": the rate of the last step held before the knee
# (the first step below 98 % of offered or p99 > 2 s; 0 when even the first failed), what it
# achieved, and the best rate achieved by any step (the ratio's measure: on a loaded machine even
# the first step may miss 98 %).
held() {
  "$py" - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
k = r["knee_step"]  # 1-based; 0: every step held
st = r["steps"] if k == 0 else r["steps"][:k - 1]
best = max(s["achieved"] for s in r["steps"])
print("%.0f %.0f %.0f" % (((st[-1]["rate"], st[-1]["achieved"]) if st else (0, 0)) + (best,)))
PY
}
summary() { # label json: one line, acknowledgement and completion
  "$py" - "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[2])); s = r["steps"][0]; q = r["latency_ms"]; c = r.get("completion_ms", {})
print("  %-30s offered %6.0f/s achieved %6.0f/s  ack p50 %7.1f p99 %8.1f p99.9 %8.1f ms%s" % (
      sys.argv[1], s["offered"], s["achieved"], q["p50"], q["p99"], q["p99.9"],
      "; completion p50 %.0f p99 %.0f ms (%d sampled)" % (c["p50"], c["p99"], c["count"])
      if c.get("count") else ""))
PY
}

echo "orders-load: open loop, latency from each request's scheduled start; load $(cut -d' ' -f1-3 /proc/loadavg)"
pg= rd=
weft_pg_held= weft_pg_best=
for store in $stores; do
  if [ "$store" = sqlite ]; then
    start_engine "sqlite:$dir/orders-$RANDOM.db"
  else
    pg=$("$src/scripts/services.sh" start postgres "$dir") || { echo "no PostgreSQL: skipped"; continue; }
    rd=$("$src/scripts/services.sh" start redis "$dir") || { echo "no Redis: skipped"; continue; }
    start_engine "$pg" "$rd"
  fi
  echo; echo "== step curve $steps, $step_s s each: $store (knee: first step < 98 % of offered or p99 > 2 s)"
  "$weft" orders load --url "$url" --steps "$steps" --duration "$step_s" --skus 100 \
    --sample 0.01 --slo-ms 2000 --json "$out/steps-$store.json" --html "$out/steps-$store.html" || true
  read -r hr ha hb < <(held "$out/steps-$store.json")
  echo "  held up to: $hr/s offered ($ha/s achieved); best achieved by a step: $hb/s"
  [ "$store" = postgres ] && weft_pg_held=$ha weft_pg_best=$hb
  stop_engine
  # A fresh engine and database for the fixed rate, so the curve's backlog does not count.
  if [ "$store" = sqlite ]; then
    start_engine "sqlite:$dir/orders-$RANDOM.db"
  else
    psql -qtAX "$pg" -c "CREATE DATABASE rate" >/dev/null && start_engine "${pg%/postgres}/rate" "$rd"
  fi
  warm "$rate"
  echo; echo "== $rate orders/s for $seconds s: $store (after 2 s at a tenth of it)"
  prof_begin
  "$weft" orders load --url "$url" --rate "$rate" --duration "$seconds" --skus 100 \
    --sample 0.05 --json "$out/rate-$store.json" || true
  prof_end "$store"
  summary "weft ($store) at $rate/s" "$out/rate-$store.json"
  if [ "$store" = sqlite ]; then
    echo; echo "== Locust beside weft orders load at $lrate/s for $seconds s: $store"
    "$weft" orders load --url "$url" --rate "$lrate" --duration "$seconds" --skus 100 --sample 0 \
      --json "$out/weft-$lrate.json" >/dev/null || true
    if command -v locust >/dev/null; then
      users=$((lrate / 10))
      ORDERS_PER_USER=10 locust -f "$src/bench/locustfile.py" --headless -u "$users" -r "$users" \
        -t "${seconds}s" --host "$url" --csv "$out/locust" --only-summary >"$out/locust.log" 2>&1 || true
      "$py" - "$out/weft-$lrate.json" "$out/locust_stats.csv" "$lrate" <<'PY' || true
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

# The Python peer on the same PostgreSQL and Redis, its own database, at its own best rate.
if [ -n "$pg" ] && "$py" -c 'import fastapi, uvicorn, asyncpg, redis, httpx' 2>/dev/null; then
  psql -qtAX "$pg" -c "CREATE DATABASE peer" >/dev/null
  start_peer "${pg%/postgres}/peer" "$rd"
  echo; echo "== the Python peer (bench/orders_peer.py, PostgreSQL + Redis): step curve $psteps, $pstep_s s each"
  "$weft" orders load --url "$url" --steps "$psteps" --duration "$pstep_s" --skus 100 --sample 0 \
    --slo-ms 2000 --retry-for 10 --json "$out/steps-peer.json" || true
  read -r pr pa pb < <(held "$out/steps-peer.json")
  echo "  held up to: $pr/s offered ($pa/s achieved); best achieved by a step: $pb/s"
  [ "$pr" = 0 ] && pr=$(awk -v b="$pb" 'BEGIN { printf "%d", b }') # none held: at its best
  stop_engine
  if [ "$pr" != 0 ]; then
    psql -qtAX "$pg" -c "CREATE DATABASE peer2" >/dev/null
    start_peer "${pg%/postgres}/peer2" "$rd"
    warm "$pr"
    echo; echo "== the Python peer at its best held rate, $pr/s for $seconds s (after 2 s at a tenth of it)"
    "$weft" orders load --url "$url" --rate "$pr" --duration "$seconds" --skus 100 --sample 0 \
      --json "$out/rate-peer.json" || true
    sleep 5 # its orders finish; completion from its database (it has no GET /orders/{id})
    read -r c50 c99 < <(psql -qtAX "${pg%/postgres}/peer2" -F ' ' -c "SELECT
      percentile_disc(0.5) WITHIN GROUP (ORDER BY completed_ms - created_ms),
      percentile_disc(0.99) WITHIN GROUP (ORDER BY completed_ms - created_ms)
      FROM orders WHERE status = 'shipped'")  || true
    summary "python peer at $pr/s" "$out/rate-peer.json"
    echo "  python peer completion (its database, shipped): p50 ${c50:-?} ms, p99 ${c99:-?} ms"
    stop_engine
  fi
  echo
  echo "== PostgreSQL + Redis, best rate achieved by a step: weft ${weft_pg_best:-?}/s, python peer" \
    "${pb}/s, ratio $(awk -v w="${weft_pg_best:-0}" -v p="$pb" 'BEGIN { printf (p > 0 ? "%.1fx" : "-"), w / p }');" \
    "held (before the knee): weft ${weft_pg_held:-?}/s, peer ${pa}/s"
else
  echo; echo "the Python peer needs PostgreSQL and python3-fastapi, -uvicorn, -asyncpg, -redis, -httpx: skipped"
fi
echo; echo "reports in $out"
