#!/usr/bin/env bash
# bench-logs: `weft logs` against the physical floor and its peers, whole-process times on a
# warm page cache, all from the same run.
#
#   bench/bench-logs.sh [--size SIZE] [--peer-size SIZE] [--runs N]
#
# Generates SIZE (default 1G) of log once with 1 M distinct client IPs (cached under
# build/bench-data/), warms the page cache, then times: a memchr-only line count (over a mapping
# and through pread: the floor), weft logs -j1, -j2, -j2 --mode processes, -j2 --io mmap, mawk
# computing the same four statistics (bench/logs_peer.awk), GoAccess (JSON output) and the
# seed's Python version (bench/logs_peer.py) with 1 and 2 processes. The slow peers (GoAccess,
# Python: 10-240 s per GB) run on the first --peer-size bytes (default 256M); every row reports
# throughput, and the ratios compare throughputs. Peak RSS is /usr/bin/time's maximum resident
# set size of the whole process.
# Environment (set by bench/run.sh): WEFT_BIN, WEFT_BUILD, WEFT_SRC, PYTHON.
set -uo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
build=${WEFT_BUILD:-$src/build/release}
weft=${WEFT_BIN:-$build/weft}
python=${PYTHON:-/usr/bin/python3}
size=1G peer_size=256M runs=3
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --peer-size) peer_size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench-logs: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$weft" ] || { echo "bench-logs: no weft binary at $weft (make build first)" >&2; exit 2; }
floor_bin=$build/bench-logs
data=$src/build/bench-data
mkdir -p "$data"
log=$data/access-$size-seed1.log
if [ ! -s "$log" ]; then
  echo "generating $size of access log into $log (once) ..."
  "$weft" logs gen --size "$size" --seed 1 --ips 1000000 -o "$log.tmp" &&
    mv "$log.tmp" "$log" || exit 1
fi
bytes=$(stat -c %s "$log")
log5m=$data/access-$size-seed1-ips5m.log
if [ ! -s "$log5m" ]; then
  echo "generating $size of access log with 5 M distinct clients into $log5m (once) ..."
  "$weft" logs gen --size "$size" --seed 1 --ips 5000000 -o "$log5m.tmp" &&
    mv "$log5m.tmp" "$log5m" || exit 1
fi
peer_log=$log
if [ -n "$peer_size" ] && [ "$(numfmt --from=iec "$peer_size")" -lt "$bytes" ]; then
  peer_log=$data/access-$size-seed1-first-$peer_size.log
  if [ ! -s "$peer_log" ]; then
    n=$(numfmt --from=iec "$peer_size")
    head -c "$n" "$log" | sed '$d' > "$peer_log"  # whole lines only
  fi
fi
peer_bytes=$(stat -c %s "$peer_log")
cat "$log" "$peer_log" > /dev/null; cat "$log" > /dev/null   # warm the page cache
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# time_it LABEL BYTES RUNS CMD... -> appends "label seconds bytes rss_kb" to $tmp/rows
time_it() {
  local label=$1 nbytes=$2 n=$3; shift 3
  local best="" rss=0
  for ((i = 0; i < n; i++)); do
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f %M -o "$tmp/rss" "$@" > "$tmp/out.$label" 2>"$tmp/err" || {
      echo "bench-logs: '$label' failed:" >&2; tail -3 "$tmp/err" >&2; return 1; }
    t1=$(date +%s.%N)
    local s; s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    if [ -z "$best" ] || awk -v s="$s" -v b="$best" 'BEGIN { exit !(s < b) }'; then
      best=$s; rss=$(tail -1 "$tmp/rss")
    fi
  done
  printf '%s %s %s %s\n' "$label" "$best" "$nbytes" "$rss" >> "$tmp/rows"
  printf '  %-34s %8.3f s\n' "$label" "$best" >&2
}

echo "input: $log ($bytes bytes, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
[ "$peer_log" != "$log" ] && echo "slow peers on the first $peer_bytes bytes: $peer_log"
if [ -x "$floor_bin" ]; then
  time_it "memchr lines, mmap, 1 thread" "$bytes" "$runs" "$floor_bin" "$log" mmap 1
  time_it "memchr lines, pread, 1 thread" "$bytes" "$runs" "$floor_bin" "$log" read 1
  time_it "memchr lines, pread, 2 threads" "$bytes" "$runs" "$floor_bin" "$log" read 2
fi
time_it "weft logs -j1" "$bytes" "$runs" "$weft" logs -j1 --json "$log"
time_it "weft logs -j2" "$bytes" "$runs" "$weft" logs -j2 --json "$log"
time_it "weft logs -j2 --mode processes" "$bytes" "$runs" "$weft" logs -j2 --mode processes --json "$log"
time_it "weft logs -j2 --io mmap" "$bytes" "$runs" "$weft" logs -j2 --io mmap --json "$log"
cat "$log5m" > /dev/null; bytes5m=$(stat -c %s "$log5m")
time_it "weft logs -j1, 5 M distinct IPs" "$bytes5m" "$runs" "$weft" logs -j1 --json "$log5m"
time_it "weft logs -j2, 5 M distinct IPs" "$bytes5m" "$runs" "$weft" logs -j2 --json "$log5m"
time_it "weft logs -j2 --mode processes, 5 M IPs" "$bytes5m" "$runs" "$weft" logs -j2 --mode processes --json "$log5m"
time_it "mawk (4 statistics)" "$bytes" 1 mawk -f "$src/bench/logs_peer.awk" "$log"
if command -v goaccess >/dev/null; then
  time_it "goaccess (JSON)" "$peer_bytes" 1 goaccess "$peer_log" --no-global-config \
    --log-format='%h %^ %^ [%d:%t %^] "%r" %s %b %T' --date-format=%d/%b/%Y \
    --time-format=%H:%M:%S -o "$tmp/goaccess.json"
fi
time_it "python seed version, 1 process" "$peer_bytes" 1 "$python" "$src/bench/logs_peer.py" "$peer_log" --workers 1
time_it "python seed version, 2 processes" "$peer_bytes" 1 "$python" "$src/bench/logs_peer.py" "$peer_log" --workers 2

# the table: ratios of throughput against weft logs -j2
ref=$(awk '$0 ~ /^weft logs -j2 / {print $(NF-1)/$(NF-2); exit}' "$tmp/rows")
echo
printf '%-34s %9s %8s %12s %10s\n' "" seconds GB/s "vs weft -j2" "peak RSS"
while read -r line; do
  set -- $line
  rss=${!#}; nb=${@: -2:1}; s=${@: -3:1}; label=${line% * * *}
  awk -v l="$label" -v s="$s" -v b="$nb" -v r="$rss" -v ref="$ref" 'BEGIN {
    gbs = b / 1e9 / s; ratio = (b / s) / ref
    printf "%-34s %9.3f %8.3f %11.3fx %7.0f MB\n", l, s, gbs, ratio, r / 1024 }'
done < "$tmp/rows"
echo "(vs weft -j2: throughput relative to weft logs -j2; below 1 is slower)"

# sanity: the peers agree with weft on what they compute
if command -v "$python" >/dev/null; then
  "$python" - "$tmp/out.weft logs -j2" "$tmp/out.mawk (4 statistics)" <<'PY'
import json, sys
w = json.load(open(sys.argv[1])); m = json.load(open(sys.argv[2]))
ok = w['hourly'] == m['hourly'] and w['status'] == m['status'] and \
     w['distinct_ips'] == m['distinct_ips'] and abs(w['response_time']['avg'] - m['avg']) < 1e-5
print('mawk agrees with weft on hourly, status, distinct IPs and the average:', 'yes' if ok else 'NO')
print('weft: %d lines, %d distinct IPs, top %s' % (w['lines'], w['distinct_ips'], w['top_ips'][0]))
PY
fi
