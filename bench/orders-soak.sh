#!/usr/bin/env bash
# Soak of `weft orders serve` (issue 10): an open-loop load at a constant rate for a long time
# (1 hour at 5,000 orders/s by default) against the engine on PostgreSQL and Redis, with the
# logistics worker and the payment mock apart. Every 10 s it samples the engine's RSS and open
# file descriptors; at the end it checks zero crashes, RSS and non-socket fds flat after warm-up
# (the mean of the last third of the samples within +-10 % of the first third's, after the first
# 10 % of the run: a drift, not noise), all fds not growing past 10 % (sockets follow the
# clients' connections), and the audit; it writes a
# report (CSV + an HTML page with the RSS/fd curves, drawn like weft's reports with the vendored
# uPlot and tools/common/charts.js, and the load generator's report).
#
# usage: bench/orders-soak.sh [--minutes M] [--rate R] [--sqlite] [--out DIR]
#   --out DIR: where the report goes (default bench-out/orders-soak-DATE). Not run in CI.
# Environment: WEFT_BIN (default build/release/weft).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
weft=${WEFT_BIN:-$src/build/release/weft}
minutes=60 rate=5000 sqlite=0 out=
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) minutes=$2; shift ;;
    --rate) rate=$2; shift ;;
    --sqlite) sqlite=1 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "orders-soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$weft" ] || { echo "orders-soak.sh: no weft binary at $weft (set WEFT_BIN)" >&2; exit 2; }
out=${out:-$src/bench-out/orders-soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
dir=$(mktemp -d /tmp/weft-soak.XXXXXX)
engine_pid= mock_pid= load_pid= worker_pid=
cleanup() {
  for p in $load_pid $engine_pid $worker_pid $mock_pid; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$src/scripts/services.sh" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # so that a timeout still runs cleanup
say() { echo "soak: $*"; }

db="sqlite:$dir/orders.db" redis_url=
if [ "$sqlite" = 0 ]; then
  db=$("$src/scripts/services.sh" start postgres "$dir")
  redis_url=$("$src/scripts/services.sh" start redis "$dir")
fi
touch "$dir/mock.out" "$dir/engine.out"
"$weft" orders payment-mock --listen 127.0.0.1:0 >"$dir/mock.out" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/mock.out" && break; sleep 0.1; done
mock=$(grep -o 'http://[0-9.:]*' "$dir/mock.out" | head -1)
args=(orders serve --listen 127.0.0.1:0 --db "$db" --payment "$mock")
[ -n "$redis_url" ] && args+=(--redis "$redis_url")
"$weft" "${args[@]}" >"$dir/engine.out" 2>&1 &
engine_pid=$!
for _ in $(seq 300); do grep -q "listening on" "$dir/engine.out" && break; sleep 0.1; done
url=$(grep -o 'listening on http://[0-9.:]*' "$dir/engine.out" | grep -o 'http://.*') ||
  { cat "$dir/engine.out"; exit 1; }
if [ -n "$redis_url" ]; then
  "$weft" orders logistics --redis "$redis_url" --db "$db" --batch 512 >"$dir/logistics.out" 2>&1 &
  worker_pid=$!
fi
"$weft" orders load --url "$url" --skus 100 --stock 1000000000 --duration 0 >/dev/null
say "engine $url ($db${redis_url:+, $redis_url}), $rate orders/s for $minutes min; report in $out"

seconds=$((minutes * 60))
"$weft" orders load --url "$url" --rate "$rate" --duration "$seconds" --skus 100 --hot-sku 0.1 \
  --bad 0.001 --resend 0.001 --sample 0.01 --json "$out/load.json" --html "$out/load.html" \
  --acked "$dir/acked" >"$out/load.txt" 2>&1 &
load_pid=$!

echo "t_s,rss_kb,fds,fds_nonsocket" >"$out/samples.csv"
t0=$(date +%s) crashed=0
while kill -0 "$load_pid" 2>/dev/null; do
  sleep 10
  if ! kill -0 "$engine_pid" 2>/dev/null; then
    crashed=1
    say "the engine died at $(($(date +%s) - t0)) s"
    break
  fi
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$engine_pid/status" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$engine_pid/fd" 2>/dev/null | wc -l)
  nonsock=$(find "/proc/$engine_pid/fd" -mindepth 1 -printf '%l\n' 2>/dev/null | grep -vc '^socket:' || true)
  echo "$(($(date +%s) - t0)),$rss,$fds,$nonsock" >>"$out/samples.csv"
done
rc=0
wait "$load_pid" || rc=$?
load_pid=
cat "$out/load.txt"

audit=(orders audit --db "$db" --payment "$mock" --acked "$dir/acked" --wait 30)
[ -n "$redis_url" ] && audit+=(--redis "$redis_url")
"$weft" "${audit[@]}" | tee "$out/audit.txt" || rc=1
[ "$crashed" = 0 ] || rc=1

python3 - "$out" "$minutes" "$rate" "$src" <<'PY' || rc=1
import csv, html, json, sys
out, minutes, rate, src = sys.argv[1:5]
rows = list(csv.DictReader(open(out + "/samples.csv")))
t = [int(r["t_s"]) for r in rows]
rss = [int(r["rss_kb"]) / 1024 for r in rows]
fds = [int(r["fds"]) for r in rows]
nonsock = [int(r["fds_nonsocket"]) for r in rows]
ok = True
lines = []
if len(rows) >= 3:
    warm = t[-1] * 0.1
    # Sockets follow the clients' connections (up to the load generator's 256, opened and
    # closed as it goes), so all fds may only not grow; RSS and the other fds (files, pipes,
    # eventfds, timers) must stay within 10 % both ways.
    for name, ys, both in (("RSS MiB", rss, True), ("open fds", fds, False),
                           ("fds other than sockets", nonsock, True)):
        after = [y for x, y in zip(t, ys) if x >= warm]
        k = max(1, len(after) // 3)
        first, last = sum(after[:k]) / k, sum(after[-k:]) / k
        lo, hi = min(after), max(after)
        # Drift, not noise: open connections come and go, so single samples wander; a leak
        # shows as the last third of the run above the first.
        flat = abs(last - first) <= 0.1 * first if both else last <= 1.1 * first
        ok &= flat
        lines.append("%s after warm-up (%d samples): first third %.1f, last third %.1f (min %.1f,"
                     " max %.1f): %s" % (name, len(after), first, last, lo, hi,
                                         ("flat (within 10 %)" if both else "no growth")
                                         if flat else "NOT FLAT"))
else:
    lines.append("too few samples for a flatness check")
for l in lines:
    print("soak: " + l)
# The curves are drawn as weft's own reports draw theirs (tools/common/charts.js with the
# vendored uPlot, both inlined): the page works offline, from file://.
def chart(title, ys, unit):
    c = {"title": title, "xlabel": "s", "ylabel": unit,
         "series": [{"label": unit, "color": "#0275d8", "x": t, "y": ys}]}
    return ("<figure class='weft-chart'><script type='application/json'>%s</script></figure>"
            % json.dumps(c).replace("<", "\\u003c"))
read = lambda p: open(src + "/" + p).read()
with open(out + "/report.html", "w") as f:
    f.write("<!doctype html><meta charset='utf-8'><title>weft orders soak</title>"
            "<style>%s figure.weft-chart{margin:1em 0;max-width:60em}</style>"
            "<body style='font-family:sans-serif'><h1>weft orders soak: %s min at %s/s</h1>"
            "<pre>%s</pre>" % (read("third_party/uplot/uPlot.min.css"), minutes, rate,
                               html.escape("\n".join(lines))))
    f.write(chart("engine RSS, MiB (every 10 s)", rss, "MiB"))
    f.write(chart("engine open file descriptors", fds, "fds"))
    f.write(chart("engine file descriptors other than sockets", nonsock, "fds"))
    f.write("<pre>%s</pre><pre>%s</pre><p><a href='load.html'>load report</a></p>"
            % (html.escape(open(out + "/load.txt").read()), html.escape(open(out + "/audit.txt").read())))
    f.write("<script>%s</script><script>%s</script>"
            % (read("third_party/uplot/uPlot.iife.min.js"), read("tools/common/charts.js")))
sys.exit(0 if ok else 1)
PY
say "$([ "$rc" = 0 ] && echo PASSED || echo FAILED): crashes $crashed; report $out/report.html"
kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null || true
engine_pid=
exit "$rc"
