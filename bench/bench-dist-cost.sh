#!/usr/bin/env bash
# bench-dist-cost: what one no-op task costs through Redis Streams (weft/broker.h), for comparing
# builds on a shared machine where wall time is noise: CPU per task and Redis calls per task.
#
#   bench/bench-dist-cost.sh [N] [MODE...]   N tasks (default 20000); modes batched, round-trip,
#                                            floor, floor-lua (default all four);
#                                            BENCH_DIST=path/to/bench-dist (BENCH_FLOOR: the one
#                                            for the floors, default the same)
#
# Per mode one line: tasks/s; CPU per task of the clients (the submitter, the worker processes
# and their process pools: getrusage of everything bench-dist waited for) and of Redis (INFO cpu);
# Redis calls per task (INFO commandstats, the calls inside scripts included, and the bench's own
# reset and waiting) and round trips to a script (EVALSHA) per task. Alternate two builds
# (BENCH_DIST=a, then b, a, b) on one machine state and compare ranges. The floors, from the same
# run: the fewest commands a task needs (XADD, XREADGROUP COUNT 128, HSET, XACK) from one client
# with no scheduler, pipelined (floor) and in three scripts per batch (floor-lua): no build of
# the broker can cost Redis less per task than these.
# DIST_COST_CALLGRIND=1: Redis runs under valgrind's callgrind (about 50x slower) and each line also
# gives the instructions Redis executed per task, and those in scripts (EVALSHA): counts that do
# not move with the machine's load, unlike CPU time. Slower Redis means more heartbeats and waits
# per task: compare builds with the same N, the script figure first.
# Environment (set by bench/run.sh): WEFT_BUILD, WEFT_SRC.
set -uo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
build=${WEFT_BUILD:-$src/build/release}
bin=${BENCH_DIST:-$build/bench-dist}
fbin=${BENCH_FLOOR:-$bin}
n=${1:-20000}
shift || true
modes=${*:-batched round-trip floor floor-lua}
dir=$(mktemp -d)
cg=${DIST_COST_CALLGRIND:-0}
if [ "$cg" = 1 ]; then
  port=$((20000 + RANDOM % 20000))
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" redis-server --bind 127.0.0.1 \
    --port "$port" --save "" --appendonly no --dir "$dir" >"$dir/vg.log" 2>&1 &
  vpid=$!
  trap 'kill "$vpid" 2>/dev/null; wait "$vpid" 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 1 300); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  url=redis://127.0.0.1:$port
else
  trap 'bash "$src/scripts/services.sh" stop "$dir"; rm -rf "$dir"' EXIT
  url=$(bash "$src/scripts/services.sh" start redis "$dir") || exit 1
  port=${url##*:}
fi
rc() { redis-cli -p "$port" "$@"; }
# Redis' instructions since the last zeroing, all and inside EVALSHA (callgrind only).
cg_instr() {
  callgrind_control -d "$vpid" >/dev/null 2>&1
  local f
  f=$(ls -t "$dir"/cg.*.* | head -1)
  callgrind_annotate --inclusive=yes "$f" 2>/dev/null |
    awk '/PROGRAM TOTALS/ {gsub(",", "", $1); t = $1} /:evalShaCommand / {gsub(",", "", $1); e = $1}
      END {print t + 0, e + 0}'
  rm -f "$f"
}
rcpu() { rc INFO cpu | awk -F: '/used_cpu_(sys|user):/ {s += $2} END {printf "%.6f", s}'; }
for mode in $modes; do
  rc FLUSHALL >/dev/null
  rc CONFIG RESETSTAT >/dev/null
  [ "$cg" = 1 ] && callgrind_control -z "$vpid" >/dev/null 2>&1
  c0=$(rcpu)
  b=$bin
  case $mode in floor*) b=$fbin ;; esac
  out=$(WEFT_BENCH_ONLY=$mode WEFT_REDIS_URL=$url /usr/bin/time -f 'cpu %U %S' "$b" "$n" 2>&1)
  c1=$(rcpu)
  ins="0 0"
  [ "$cg" = 1 ] && ins=$(cg_instr)
  stats=$(rc INFO commandstats)
  rate=$(echo "$out" | sed -nE 's/.*s, ([0-9]+) tasks\/s.*/\1/p' | head -1)
  ccpu=$(echo "$out" | awk '/^cpu / {print $2 + $3}')
  calls=$(echo "$stats" | awk -F'[:=,]' '/^cmdstat/ {s += $3} END {print s + 0}')
  ev=$(echo "$stats" | awk -F'[:=,]' '/^cmdstat_evalsha:/ {print $3 + 0}')
  awk -v m="$mode" -v n="$n" -v r="${rate:-0}" -v cc="${ccpu:-0}" -v c0="$c0" -v c1="$c1" \
    -v calls="$calls" -v ev="${ev:-0}" -v load="$(cut -d' ' -f1 /proc/loadavg)" -v ins="$ins" 'BEGIN {
      split(ins, i, " ")
      printf "dist-cost %-10s %d tasks: %d tasks/s, CPU per task: clients %.1f us, Redis %.1f us; " \
        "Redis calls per task %.2f, EVALSHA per task %.3f", m, n, r, cc * 1e6 / n,
        (c1 - c0) * 1e6 / n, calls / n, ev / n
      if (i[1] > 0) printf "; Redis instructions per task %.0fk, in scripts %.0fk", i[1] / n / 1000,
        i[2] / n / 1000
      printf " (load %s)\n", load }'
done
