#!/usr/bin/env bash
# Benchmark of `weft crawl` (issues 4 and 11), each figure beside its peers from the same run.
# Every crawler is timed the same way: the whole process, start to exit, by this script's clock
# (never a crawler's own timer), in several runs that alternate weft and its peer, reported as
# the median and the range; the ratio printed is of the medians.
#   1. throughput: 100 k URLs of static ~4 KB pages on nginx (loopback, HTTP/1.1), weft's async
#      mode with title and description extraction vs `curl -Z --parallel-max 100 -o /dev/null`
#      on the same list (weft by default opens at most 8 connections to the host, curl up to 100:
#      weft with --per-host 100 is shown too); Python aiohttp + asyncio + BeautifulSoup (the brief's way) on 2,000
#      targets: weft >= 1.2 x curl, >= 50 x Python aiohttp
#   1b. HTTPS + HTTP/2 on one host (nginx, a self-signed certificate made here): weft --cacert
#      vs curl -Z --parallel-max 100 --cacert; target: weft >= curl
#   2. latency-bound: 1,000 URLs with a 100 ms delay spread over 20 loopback addresses on the
#      weft fixture: threads(5) >= 90 % of 5 / 0.1 s, async >= 80 % of min(C, hosts x K) / 0.1 s
#   3. memory: 100 k URLs in async mode under 64 MB resident
# usage: bench/bench-crawl.sh   (WEFT_BIN: the weft binary; PYTHON: python3; RUNS: runs per
#        crawler, default 5; QUICK=1: 20 k URLs and 3 runs)
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
reps=${QUICK:+10}; reps=${reps:-50}     # the 2,000 pages, this many times over: 100 k URLs
runs=${RUNS:-${QUICK:+3}}; runs=${runs:-5}
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
# timed NAME CMD...: runs CMD as a whole process (stdout to $tmp/NAME.out), appends its wall
# seconds to $tmp/NAME.times
timed() {
  local name=$1; shift
  local t0 t1; t0=$(now); "$@" > "$tmp/$name.out" 2> "$tmp/$name.err"; t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }' >> "$tmp/$name.times"
}
# stats NAME N: "median min max" of N / seconds over the runs (pages/s)
stats() {
  sort -n "$tmp/$1.times" | awk -v n="$2" '{ t[NR] = $1 } END {
    m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
    printf "%.0f %.0f %.0f\n", n / m, n / t[NR], n / t[1] }'
}
show() { # label, "median min max"
  set -- "$1" $2
  printf '  %-50s %9s   %9s .. %-9s\n' "$1" "$2" "$3" "$4"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs; $runs alternating runs each"

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
port=$(free_port); tport=$(free_port)
tls=1
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  >/dev/null 2>&1 || tls=0
sed -e "s|@DIR@|$tmp|g" -e "s|@PORT@|$port|g" -e "s|@TLSPORT@|$tport|g" \
  "$here/crawl-nginx.conf.in" > "$tmp/nginx.conf"
[ $tls = 1 ] || sed -i '/# tls-begin/,/# tls-end/d' "$tmp/nginx.conf"
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
echo "== throughput: $n URLs ($pages static ~4 KB pages x $reps), HTTP/1.1 from nginx on $base"
"$WEFT" crawl -q --no-progress --mode async "$tmp/urls-2k.txt" > /dev/null # warm-up
for ((k = 0; k < runs; k++)); do
  timed weft "$WEFT" crawl -q --no-progress --mode async --concurrency 100 "$tmp/urls.txt"
  timed curl curl -s -Z --parallel-max 100 -K "$tmp/curl.cfg"
  timed weft100 "$WEFT" crawl -q --no-progress --mode async --concurrency 100 --per-host 100 "$tmp/urls.txt"
  timed pyasync "$PY" "$here/crawl_peer_async.py" "$tmp/urls-2k.txt" 100
done
async_failed=$(weft_failed "$tmp/weft.out")
w=$(stats weft "$n"); c=$(stats curl "$n"); pa=$(stats pyasync "$pages"); w100=$(stats weft100 "$n")
printf '  %-50s %9s   %-22s\n' "crawler (whole process, same clock)" "median/s" "range (pages/s)"
show "weft crawl --mode async (C=100, extraction)" "$w"
show "  the same with --per-host 100 (curl's connections)" "$w100"
show "curl -Z --parallel-max 100 -o /dev/null" "$c"
show "python aiohttp + asyncio (100) + bs4, 2,000 URLs" "$pa"
wm=${w%% *}; cm=${c%% *}; pm=${pa%% *}
echo "  ratios of medians: weft/curl $(ratio "$wm" "$cm") (--per-host 100: $(ratio "${w100%% *}" "$cm")), weft/python-aiohttp $(ratio "$wm" "$pm")"
check "weft / curl -Z (HTTP/1.1, extraction)" "$(ratio "$wm" "$cm")" ">=" 1.20
check "weft / python aiohttp" "$(ratio "$wm" "$pm")" ">=" 50
check "weft pages failed" "${async_failed:-?}" "<=" 0

# ---- 1b. HTTPS + HTTP/2 on one host ----------------------------------------------------------
if [ $tls = 1 ] && curl -sf --cacert "$tmp/cert.pem" -o /dev/null "https://127.0.0.1:$tport/0.html"; then
  h2reps=${QUICK:+2}; h2reps=${h2reps:-5}
  hn=$((pages * h2reps))
  for ((r = 0; r * pages < hn; r++)); do sed "s|^http://127.0.0.1:$port|https://127.0.0.1:$tport|" "$tmp/urls-2k.txt"; done | head -n "$hn" > "$tmp/urls-h2.txt"
  awk '{ printf "url = \"%s\"\noutput = \"/dev/null\"\n", $0 }' "$tmp/urls-h2.txt" > "$tmp/curl-h2.cfg"
  echo
  echo "== HTTPS + HTTP/2: $hn URLs on one host (https://127.0.0.1:$tport, self-signed CA)"
  proto=$(curl -s --cacert "$tmp/cert.pem" -o /dev/null -w '%{http_version}' "https://127.0.0.1:$tport/0.html")
  echo "  negotiated by curl: HTTP/$proto"
  for ((k = 0; k < runs; k++)); do
    timed weft-h2 "$WEFT" crawl -q --no-progress --mode async --concurrency 100 --cacert "$tmp/cert.pem" "$tmp/urls-h2.txt"
    timed curl-h2 curl -s -Z --parallel-max 100 --cacert "$tmp/cert.pem" -K "$tmp/curl-h2.cfg"
  done
  w=$(stats weft-h2 "$hn"); c=$(stats curl-h2 "$hn")
  show "weft crawl --mode async (C=100, extraction)" "$w"
  show "curl -Z --parallel-max 100 -o /dev/null" "$c"
  echo "  ratio of medians: weft/curl $(ratio "${w%% *}" "${c%% *}")"
  check "weft / curl -Z (HTTPS + HTTP/2, one host)" "$(ratio "${w%% *}" "${c%% *}")" ">=" 1.00
  check "weft pages failed (HTTPS)" "$(weft_failed "$tmp/weft-h2.out")" "<=" 0
else
  echo
  echo "== HTTPS + HTTP/2: skipped (openssl could not make a certificate, or nginx has no TLS)"
fi

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
