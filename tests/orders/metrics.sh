#!/usr/bin/env bash
# GET /metrics parses as Prometheus text 0.0.4 with a real parser (python3-prometheus-client),
# its numbers agree with the load generator and /stats; GET /events sends SSE (id:, retry:, each
# event <= 2 KiB, 1 Hz) whose numbers agree with /metrics; GET / serves the dashboard and uPlot.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
# Debian's python3 (the one python3-prometheus-client installs into), not a pyenv shim.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" -c 'import prometheus_client.parser' 2>/dev/null || {
  echo "SKIP: python3-prometheus-client is not installed (scripts/deps.sh installs it)"; exit 0; }
dir=$(mktemp -d /tmp/weft-test-metrics.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.out; do echo "== $f"; cat "$f"; done; exit 1; }

"$weft" orders serve --listen 127.0.0.1:0 --db "sqlite:$dir/o.db" >"$dir/serve.out" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "listening on" "$dir/serve.out" && break; sleep 0.1; done
url=$(grep -o 'listening on http://[0-9.:]*' "$dir/serve.out" | grep -o 'http://.*') ||
  fail "engine did not start"
curl -sf -X PUT -d '{"qty":100000}' "$url/stock/sku-0" >/dev/null || fail "PUT /stock"
curl -sf -X PUT -d '{"qty":5}' "$url/stock/sku-1" >/dev/null || fail "PUT /stock"
"$weft" orders load --url "$url" --rate 200 --duration 1 --skus 2 --bad 0.05 --sample 0 \
  --json "$dir/load.json" >"$dir/load.out" 2>&1 || fail "load exited $?"
# The statistics fold once per second: wait until every order is counted as terminal.
acked=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"][0]["acked"])' \
  "$dir/load.json")
for _ in $(seq 100); do
  curl -sf "$url/metrics" >"$dir/metrics.txt" || fail "GET /metrics"
  done_n=$(awk '/^orders_completed_total/ {s += $2} END {print s + 0}' "$dir/metrics.txt")
  [ "$done_n" = "$acked" ] && break
  sleep 0.2
done
ct=$(curl -sf -o /dev/null -w '%{content_type}' "$url/metrics")
[[ "$ct" == "text/plain; version=0.0.4"* ]] || fail "Content-Type $ct"
"$py" - "$dir/metrics.txt" "$dir/load.json" <<'PY' || fail "metrics check"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
load = json.load(open(sys.argv[2]))
fams = {f.name: f for f in text_string_to_metric_families(text)}
def val(fam, **labels):
    for s in fams[fam].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((fam, labels))
for name, typ in [("orders_received", "counter"), ("orders_completed", "counter"),
                  ("order_stage_duration_seconds", "histogram"),
                  ("order_completion_duration_seconds", "histogram"),
                  ("order_stage_retries", "counter"), ("order_stage_failures", "counter"),
                  ("workers_active", "gauge"), ("queue_depth", "gauge"),
                  ("store_commit_duration_seconds", "histogram")]:
    assert name in fams, name
    assert fams[name].type == typ, (name, fams[name].type)
    assert fams[name].documentation, name
for pool in ("intake", "writer", "io", "payment", "cpu"):  # every pool, busy and size
    assert val("workers_active", pool=pool) >= 0 and val("workers", pool=pool) >= 1, pool
for queue in ("intake", "writer", "loop", "backoff", "payment", "cpu", "stats"):
    assert val("queue_depth", queue=queue) >= 0, queue
acked = load["steps"][0]["acked"]
assert val("orders_received", result="accepted") == acked, (acked, text[:400])
assert val("orders_received", result="bad_request") == load["bad_rejected"]
done = sum(val("orders_completed", status=s) for s in ("shipped", "rejected", "payment_failed"))
assert done == acked, (done, acked)
assert val("order_stage_failures", stage="reserve", reason="rejected") == \
    val("orders_completed", status="rejected")
# histograms: cumulative, +Inf == _count, one series per stage, no ids in labels
for fam in ("order_stage_duration_seconds", "order_completion_duration_seconds",
            "store_commit_duration_seconds"):
    series = {}
    for s in fams[fam].samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, {"b": []})
        if s.name.endswith("_bucket"):
            series[key]["b"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            series[key]["count"] = s.value
        elif s.name.endswith("_sum"):
            series[key]["sum"] = s.value
    for key, d in series.items():
        b = d["b"]
        assert b[-1][0] == math.inf and b[-1][1] == d["count"], (fam, key, b[-1], d)
        assert all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), (fam, key, b)
        assert d["sum"] >= 0
    if fam == "order_stage_duration_seconds":
        assert sorted(k[0][1] for k in series) == ["create", "payment", "reserve", "ship"]
        assert series[(("stage", "create"),)]["count"] == acked
for f in fams.values():
    for s in f.samples:
        for k, v in s.labels.items():
            assert k != "id" and not v.startswith("o0"), (s,)
PY

# /events: three events in a bit over two seconds, each <= 2 KiB, agreeing with /metrics.
curl -s -N -m 2.6 "$url/events" >"$dir/events.txt" || true
"$py" - "$dir/events.txt" "$dir/metrics.txt" <<'PY' || fail "events check"
import json, sys
raw = open(sys.argv[1]).read()
events = [e for e in raw.split("\n\n") if e.strip()]
assert 2 <= len(events) <= 4, (len(events), raw[:300])
ids = []
for e in events:
    assert len(e.encode()) + 2 <= 2048, len(e)
    lines = dict(l.split(": ", 1) for l in e.split("\n"))
    assert lines["retry"] == "1000"
    ids.append(int(lines["id"]))
    data = json.loads(lines["data"])
acc = [l for l in open(sys.argv[2]) if l.startswith('orders_received_total{result="accepted"}')]
assert data["accepted"] == float(acc[0].split()[1]), (data["accepted"], acc)
assert ids == list(range(ids[0], ids[0] + len(ids))), ids
assert data["t"] > 0 and "queues" in data and "workers" in data
assert set(data["workers"]) >= {"intake", "writer", "io", "payment", "cpu"}, data["workers"]
assert set(data["queues"]) >= {"intake", "writer", "loop", "backoff", "payment", "cpu",
                               "stats"}, data["queues"]
PY

# Each page is saved first: `curl | grep -q` under pipefail fails when grep exits before curl has
# written the whole body (SIGPIPE), which made this check flaky on the 50 KB uPlot file.
get() { curl -sf -o "$dir/page" "$url$1" && grep -q -- "$2" "$dir/page"; }
get / 'src="/uPlot.iife.min.js"' || fail "GET / is not the dashboard"
get /uPlot.iife.min.js "uPlot" || fail "GET /uPlot.iife.min.js"
get /dashboard.js "EventSource" || fail "GET /dashboard.js"
echo "metrics: ok"
