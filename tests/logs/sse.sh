#!/usr/bin/env bash
# weft logs --follow LOG --serve 127.0.0.1:0 over plain HTTP (curl): GET /events is a
# Server-Sent Events stream (id:, retry:, event: report, data: the report's JSON) whose last
# event, once appended lines are counted, equals `weft logs --json LOG`; GET / is the dashboard
# naming its stream; SIGTERM stops the server and prints the final report (the same JSON). A bad
# --serve and a port in use exit 2 with one line naming it, having started nothing.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 0; }
dir=$(mktemp -d /tmp/weft-test-logs-sse.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
log=$dir/access.log

# Waits (at most 30 s) until the command succeeds.
until_ok() {
  for _ in $(seq 300); do "$@" && return 0; sleep 0.1; done
  fail "timed out waiting for: $*"
}
served() { grep -o 'serving http://[0-9.:]*/' "$1" | cut -d' ' -f2; }
last_data() { grep '^data: ' "$dir/events" | tail -1 | cut -c7-; }
shows_want() { [ "$(last_data)" = "$want" ]; } # the last event is the report wanted

"$weft" logs gen --size 40K --seed 1 --format combined -o "$log"
"$weft" logs --follow "$log" --serve 127.0.0.1:0 --json >"$dir/out" 2>"$dir/err" &
pid=$!; pids+=("$pid")
until_ok grep -q serving "$dir/err"
url=$(served "$dir/err")
[ -n "$url" ] || fail "no URL in: $(cat "$dir/err")"
port=${url##*:}; port=${port%/}
[ "$port" != 0 ] || fail "port 0 was not replaced by the port bound"

curl -sN --max-time 60 "${url}events" >"$dir/events" &
cpid=$!; pids+=("$cpid")
want=$("$weft" logs --json "$log")
until_ok shows_want
"$weft" logs gen --size 30K --seed 2 --format combined >>"$log"
want=$("$weft" logs --json "$log")
until_ok shows_want
# The framing: each event has an id, a retry, its name and one data line; ids increase.
python3 - "$dir/events" <<'PY' || fail "event framing"
import json, sys
events = [e for e in open(sys.argv[1]).read().split("\n\n") if e.strip()]
assert len(events) >= 2, events
ids = []
for e in events:
    f = e.split("\n")
    assert f[0].startswith("id: ") and f[1] == "retry: 1000" and f[2] == "event: report", f[:3]
    assert len(f) == 4 and f[3].startswith("data: "), f
    json.loads(f[3][6:])
    ids.append(int(f[0][4:]))
assert ids == sorted(set(ids)), ids
PY
# GET / is the dashboard with the stream's URL; anything else is 404, a POST 405.
curl -sf "$url" >"$dir/page.html" || fail "GET / failed"
grep -q '<script type="application/json" id="weft-report">' "$dir/page.html" || fail "no report"
grep -q '"events":"/events"' "$dir/page.html" || fail "the page does not name /events"
[ "$(curl -s -o /dev/null -w '%{http_code}' "${url}nope")" = 404 ] || fail "GET /nope is not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "${url}events")" = 405 ] ||
  fail "POST /events is not 405"

# The port is taken now: a second server says so (exit 2, one line) and starts nothing.
rc=0
"$weft" logs --follow "$log" --serve "127.0.0.1:$port" >"$dir/out2" 2>"$dir/err2" || rc=$?
[ "$rc" = 2 ] || fail "port in use: exit $rc, want 2: $(cat "$dir/err2")"
[ "$(wc -l <"$dir/err2")" = 1 ] && grep -q "127.0.0.1:$port" "$dir/err2" &&
  grep -q "in use" "$dir/err2" || fail "port in use: $(cat "$dir/err2")"
[ ! -s "$dir/out2" ] || fail "port in use: a report was printed"

# SIGTERM: the server stops, the stream ends, the final report is the same JSON.
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM: exit $rc"
[ "$(tail -1 "$dir/out")" = "$want" ] || fail "the final report differs from --json"
wait "$cpid" || true

# Before the first report is published (a FIFO nobody writes to yet: the follower waits in its
# open), GET / embeds an empty object, valid JSON; it embedded two bytes of an empty buffer's
# storage and the page failed to parse them and never went live (logs-serve, a CI failure).
mkfifo "$dir/fifo"
"$weft" logs --follow "$dir/fifo" --serve 127.0.0.1:0 >"$dir/out5" 2>"$dir/err5" &
fpid=$!; pids+=("$fpid")
until_ok grep -q serving "$dir/err5"
curl -s --max-time 10 "$(served "$dir/err5")" >"$dir/page5.html" || fail "GET / before a report"
python3 - "$dir/page5.html" <<'PY' || fail "GET / before the first report: the embedded report is not JSON"
import json, re, sys
page = open(sys.argv[1], "rb").read()
m = re.search(rb'<script[^>]*id="weft-report"[^>]*>(.*?)</script>', page, re.S)
assert m, "no embedded report"
json.loads(m.group(1).decode("utf-8"))
PY
kill -9 "$fpid"; wait "$fpid" 2>/dev/null || true

# Bad --serve values and --serve without --follow: usage errors (2), one line naming the value.
for bad in 99999 127.0.0.1:65536 127.0.0.1:x 300.1.1.1:80 example.com:80 ""; do
  rc=0
  "$weft" logs --follow "$log" --serve "$bad" >"$dir/out3" 2>"$dir/err3" || rc=$?
  [ "$rc" = 2 ] || fail "--serve '$bad': exit $rc"
  # one error line naming the value (and the usual "Try 'weft logs --help'." of a usage error)
  [ "$(grep -c '^weft logs:' "$dir/err3")" = 1 ] && grep -qF "'$bad'" "$dir/err3" ||
    fail "--serve '$bad': $(cat "$dir/err3")"
  grep -q serving "$dir/err3" && fail "--serve '$bad' started serving"
done
rc=0
"$weft" logs --serve 0 "$log" >/dev/null 2>"$dir/err4" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--serve needs --follow" "$dir/err4" || fail "--serve without --follow"
echo "logs-sse: ok ($(grep -c '^data: ' "$dir/events") events)"
