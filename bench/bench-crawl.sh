#!/usr/bin/env bash
# Benchmark of `weft crawl` (issue 4), each figure beside its peers from the same run:
#   1. throughput: 2,000 static ~4 KB pages on nginx (loopback, 0 ms), async mode with title and
#      description extraction vs `curl -Z --parallel-max 100 -o /dev/null` on the same list, plus
#      weft's seq/threads modes and the seed's Python crawlers (requests + ThreadPoolExecutor(5),
#      aiohttp + asyncio, both with BeautifulSoup)
#      targets: async >= 20,000 pages/s and >= curl -Z
#   2. latency-bound: 1,000 URLs with a 100 ms delay spread over 20 loopback addresses on the
#      weft fixture: threads(5) >= 90 % of 5 / 0.1 s, async >= 80 % of min(C, hosts x K) / 0.1 s
#   3. memory: 100 k URLs in async mode under 64 MB resident
# usage: bench/bench-crawl.sh   (WEFT_BIN: the weft binary; PYTHON: python3; QUICK=1: smaller)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
WEFT=${WEFT_BIN:-$here/../build/release/weft}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$WEFT" ] || { echo "bench-crawl: no weft binary at $WEFT (set WEFT_BIN)"; exit 2; }
for t in nginx curl "$PY"; do
  command -v "$t" >/dev/null || { echo "bench-crawl: $t missing (scripts/deps.sh bench)"; exit 2; }
done
tmp=$(mktemp -d /tmp/weft-bench-crawl.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
pages=2000
reps=${QUICK:+5}; reps=${reps:-20}      # the 2,000 pages, this many times over
now() { date +%s.%N; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
check() { # description, value, op, target
  if awk -v v="$2" -v t="$4" -v op="$3" 'BEGIN { exit !((op == ">=") ? v >= t : v <= t) }'; then
    printf '  %-58s %10s %s %-8s met\n' "$1" "$2" "$3" "$4"
  else
    printf '  %-58s %10s %s %-8s MISSED\n' "$1" "$2" "$3" "$4"; fail=1
  fi
}
# weft crawl's summary line "wall time  X s, R pages/s, ..." -> R ; "pages N ok, F failed" -> F
weft_rate() { sed -n 's/^wall time  [0-9.]* s, \([0-9.]*\) pages\/s.*/\1/p' "$1" | tail -1; }
weft_failed() { sed -n 's/^pages      [0-9]* ok, \([0-9]*\) failed.*/\1/p' "$1" | tail -1; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"

# ---- 1. throughput against nginx -----------------------------------------------------------
mkdir -p "$tmp/www" "$tmp/tmp"
"$PY" - "$tmp/www" "$pages" <<'PYEOF'
import random, sys
out, n = sys.argv[1], int(sys.argv[2])
random.seed(4)
w = ("amber basalt cedar delta ember fjord garnet harbor indigo juniper kelp lumen maple "
     "nectar onyx pebble quartz raven saffron tundra umber velvet willow yarrow").split()
for i in range(n):
    parts = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
             f'<title>Static page {i}: {random.choice(w)} {random.choice(w)}</title>\n'
             f'<meta name="description" content="Static benchmark page number {i}.">\n'
             '</head><body>\n']
    size = sum(map(len, parts))
    while size < 4000:
        p = '<p>' + ' '.join(random.choice(w) for _ in range(12)) + '</p>\n'
        parts.append(p); size += len(p)
    parts.append('</body></html>\n')
    open(f'{out}/{i}.html', 'w').write(''.join(parts))
PYEOF
chmod -R a+rX "$tmp/www"
port=$(free_port)
sed -e "s|@DIR@|$tmp|g" -e "s|@PORT@|$port|g" "$here/crawl-nginx.conf.in" > "$tmp/nginx.conf"
nginx -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/nginx-error.log" &
pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/0.html" && break; sleep 0.1; done
base="http://127.0.0.1:$port"
for ((r = 0; r < reps; r++)); do for ((i = 0; i < pages; i++)); do echo "$base/$i.html"; done; done > "$tmp/urls.txt"
head -n "$pages" "$tmp/urls.txt" > "$tmp/urls-2k.txt"
n=$(wc -l < "$tmp/urls.txt")
# curl -Z on the same list: a config file with one url and one output per page
awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $0 }' "$tmp/urls.txt" > "$tmp/curl.cfg"
echo
echo "== throughput: $n URLs ($pages static ~4 KB pages x $reps) from nginx on $base"
"$WEFT" crawl -q --no-progress --mode async "$tmp/urls-2k.txt" > /dev/null # warm-up
t0=$(now); curl -s -Z --parallel-max 100 -K "$tmp/curl.cfg" 2>/dev/null; t1=$(now)
curl_rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
"$WEFT" crawl -q --no-progress --mode async --concurrency 100 "$tmp/urls.txt" > "$tmp/async.out"
async_rate=$(weft_rate "$tmp/async.out"); async_failed=$(weft_failed "$tmp/async.out")
"$WEFT" crawl -q --no-progress --mode threads --threads 5 "$tmp/urls.txt" > "$tmp/threads.out"
threads_rate=$(weft_rate "$tmp/threads.out")
"$WEFT" crawl -q --no-progress --mode seq "$tmp/urls-2k.txt" > "$tmp/seq.out"
seq_rate=$(weft_rate "$tmp/seq.out")
py_threads=$("$PY" "$here/crawl_peer_threads.py" "$tmp/urls-2k.txt" 5 | sed -n 's/.*pages_per_s \([0-9.]*\).*/\1/p')
py_async=$("$PY" "$here/crawl_peer_async.py" "$tmp/urls-2k.txt" 100 | sed -n 's/.*pages_per_s \([0-9.]*\).*/\1/p')
printf '  %-44s %12s\n' "crawler" "pages/s"
printf '  %-44s %12s\n' "weft crawl --mode async (C=100, extraction)" "$async_rate"
printf '  %-44s %12s\n' "curl -Z --parallel-max 100 -o /dev/null" "$curl_rate"
printf '  %-44s %12s\n' "weft crawl --mode threads (5)" "$threads_rate"
printf '  %-44s %12s\n' "weft crawl --mode seq" "$seq_rate"
printf '  %-44s %12s\n' "python requests + ThreadPoolExecutor(5) + bs4" "${py_threads:-failed}"
printf '  %-44s %12s\n' "python aiohttp + asyncio (100) + bs4" "${py_async:-failed}"
check "async pages/s" "$async_rate" ">=" 20000
check "async / curl -Z" "$(ratio "$async_rate" "$curl_rate")" ">=" 1.00
check "async pages failed" "${async_failed:-?}" "<=" 0
echo "  ratios: async/curl $(ratio "$async_rate" "$curl_rate"), async/python-async $(ratio "$async_rate" "${py_async:-0}"), threads/python-threads $(ratio "$threads_rate" "${py_threads:-0}")"

# ---- 3. memory: 100 k URLs in async mode ----------------------------------------------------
big=${QUICK:+20000}; big=${big:-100000}
for ((r = 0; r * pages < big; r++)); do head -n "$pages" "$tmp/urls.txt"; done | head -n "$big" > "$tmp/urls-big.txt"
echo
echo "== memory: $big URLs, async mode"
/usr/bin/time -f '%M' -o "$tmp/rss" "$WEFT" crawl -q --no-progress --mode async "$tmp/urls-big.txt" > "$tmp/big.out"
rss_mb=$(awk '{ printf "%.1f", $1 / 1024 }' "$tmp/rss")
echo "  $(grep '^wall time' "$tmp/big.out")"
check "max resident MB for $big URLs" "$rss_mb" "<=" 64
kill "${pids[0]}" 2>/dev/null; wait "${pids[0]}" 2>/dev/null; pids=()

# ---- 2. latency-bound: 100 ms per page over 20 loopback addresses ----------------------------
fport=$(free_port)
"$WEFT" fixture serve --port "$fport" --hosts 20 > "$tmp/fixture.url" 2> "$tmp/fixture.err" &
pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.20:$fport/page/1" && break; sleep 0.1; done
for i in $(seq 0 999); do echo "http://127.0.0.$((i % 20 + 1)):$fport/delay/100"; done > "$tmp/delay.txt"
echo
echo "== latency-bound: 1,000 URLs x 100 ms over 20 hosts (fixture on port $fport)"
K=5; C=100
"$WEFT" crawl -q --no-progress --mode async --concurrency $C --per-host $K "$tmp/delay.txt" > "$tmp/lat-async.out"
"$WEFT" crawl -q --no-progress --mode threads --threads 5 "$tmp/delay.txt" > "$tmp/lat-threads.out"
la=$(weft_rate "$tmp/lat-async.out"); lt=$(weft_rate "$tmp/lat-threads.out")
bound_async=$(awk -v c=$C -v k=$K 'BEGIN { b = 20 * k; if (c < b) b = c; print b / 0.1 }')
echo "  threads(5): $lt pages/s of a 50 pages/s bound; async (C=$C, K=$K): $la pages/s of $bound_async"
check "threads(5) share of its bound 5 / 0.1 s" "$(ratio "$lt" 50)" ">=" 0.90
check "async share of min(C, hosts x K) / 0.1 s" "$(ratio "$la" "$bound_async")" ">=" 0.80
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $fail
