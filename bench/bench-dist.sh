#!/usr/bin/env bash
# bench-dist: end-to-end no-op tasks/s through Redis Streams (weft/broker.h), with Redis' own
# XADD rate as the floor, all from the same run against one throw-away local Redis 7.
#
#   bench/bench-dist.sh [N]      N tasks per mode (default 20000)
#
# Rows: bench-dist round-trip (submit one task per call, workers read COUNT 1) and batched
# (one pipelined submit, COUNT 128, completions recorded in batches), each with
# $WEFT_BENCH_WORKERS worker processes (default 2); reclaim (a worker holding a task killed with
# SIGKILL: time until another runs it, lease 1 s, 5 kills); then redis-benchmark XADD with one request
# per round trip and pipelined by 128: no task can go through Redis faster than its XADD.
# (bench-dist also prints the floors of a whole task: see bench-dist-cost.sh.)
# Peers (run by bench-dist itself, on the same Redis, N/10 tasks): RQ and Celery with its Redis
# broker (bench/dist_peer.py; Debian's python3-rq and python3-celery, apt-get install them).
# Environment (set by bench/run.sh): WEFT_BUILD, WEFT_SRC.
set -uo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
build=${WEFT_BUILD:-$src/build/release}
n=${1:-20000}
dir=$(mktemp -d)
trap 'bash "$src/scripts/services.sh" stop "$dir"; rm -rf "$dir"' EXIT
url=$(bash "$src/scripts/services.sh" start redis "$dir") || exit 1
port=${url##*:}
WEFT_REDIS_URL=$url WEFT_SRC=$src "$build/bench-dist" "$n"
for p in 1 128; do
  r=$(redis-benchmark -p "$port" -q -n 200000 -c 1 -P "$p" XADD bench:floor '*' f v 2>/dev/null |
    tr '\r' '\n' | grep 'requests per second' | tail -1 |
    sed -E 's/.*: ([0-9.]+) requests per second.*/\1/')
  printf 'floor redis-benchmark XADD, pipeline %-3d: %s requests/s\n' "$p" "$r"
done
