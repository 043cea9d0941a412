// The live dashboard of `weft orders serve` (GET /): one Server-Sent Event per second from
// /events, drawn with uPlot (third_party/uplot). Rates come from the differences of cumulative
// counters between events, divided by the engine's own clock (t), so they agree with /metrics.
// When the engine goes away, EventSource reconnects by itself (retry: 1000); every second
// without data adds a null point, so the charts show the gap, and a restarted engine (counters
// back to zero) starts a new segment instead of a negative rate.
"use strict";
const KEEP = 300; // seconds shown
const STAGES = ["create", "reserve", "payment", "ship"];
const dash = { points: 0, events: 0, reconnects: 0, gaps: 0, connected: false, last: null,
               rate5: null };
window.__dash = dash;

function mk(id, title, series, yLabel) {
  const data = [[]].concat(series.map(() => []));
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf",
                  "#7f7f7f"];
  const opts = {
    title, width: 560, height: 220, spanGaps: false,
    scales: { x: { time: true } },
    axes: [{}, { label: yLabel }],
    series: [{}].concat(series.map((s, i) => ({ label: s, stroke: colors[i % colors.length],
                                                   width: 1.5 }))),
  };
  return { u: new uPlot(opts, data, document.getElementById(id)), data };
}
const charts = {
  rate: mk("c_rate", "orders per second", ["accepted/s", "completed/s", "failed/s"], "/s"),
  stage: mk("c_stage", "stage latency (last second), ms",
            STAGES.map((s) => s + " p50").concat(STAGES.map((s) => s + " p99")), "ms"),
  queue: mk("c_queue", "in flight and queues", ["live", "intake", "writer", "loop", "backoff",
                                                  "payment", "cpu"], ""),
  workers: mk("c_workers", "workers busy per pool", ["intake threads", "writer", "io calls",
                                                     "payment calls", "cpu processes"], ""),
  fail: mk("c_fail", "retries and failures per second", ["retries/s", "failed/s", "503/s",
                                                         "409/s"], "/s"),
};

function push(chart, x, ys) {
  const d = chart.data;
  d[0].push(x);
  ys.forEach((y, i) => d[i + 1].push(y));
  if (d[0].length > KEEP) d.forEach((a) => a.shift());
  chart.u.setData(d);
}
function pushNull(x) {
  for (const k in charts) push(charts[k], x, charts[k].data.slice(1).map(() => null));
  dash.points++;
}
const $ = (id) => document.getElementById(id);
const fmt = (v, d = 0) => (v === null || v === undefined || !isFinite(v) ? "-" : v.toFixed(d));
const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

let prev = null, hist = [], lastWall = 0, gapTimer = null;
function onEvent(ev) {
  const e = JSON.parse(ev.data);
  const now = Date.now() / 1000;
  dash.events++;
  if (prev && (e.t < prev.t || e.accepted < prev.accepted)) { // restarted: a new segment
    pushNull(now - 0.5);
    prev = null;
    hist = [];
  }
  if (prev) {
    const dt = e.t - prev.t;
    if (dt > 0) {
      const acc = (e.accepted - prev.accepted) / dt;
      const comp = (sum(e.completed) - sum(prev.completed)) / dt;
      const failed = (e.completed.rejected + e.completed.payment_failed -
                      prev.completed.rejected - prev.completed.payment_failed) / dt;
      const retries = (sum(e.retries) - sum(prev.retries)) / dt;
      push(charts.rate, now, [acc, comp, failed]);
      push(charts.stage, now, STAGES.map((s) => e.last.stages[s].n ? e.last.stages[s].p50 : null)
        .concat(STAGES.map((s) => e.last.stages[s].n ? e.last.stages[s].p99 : null)));
      const q = e.queues, w = e.workers;
      push(charts.queue, now, [e.live, q.intake, q.writer, q.loop, q.backoff, q.payment,
                               q.cpu]);
      push(charts.workers, now, [w.intake, w.writer, w.io, w.payment, w.cpu]);
      push(charts.fail, now, [retries, failed, (e.overload - prev.overload) / dt,
                              (e.in_flight - prev.in_flight) / dt]);
      dash.points++;
      $("retry_rate").textContent = fmt(retries, 1);
    }
  }
  hist.push({ t: e.t, accepted: e.accepted });
  while (hist.length > 6) hist.shift();
  if (hist.length >= 2) {
    const a = hist[0], b = hist[hist.length - 1];
    dash.rate5 = b.t > a.t ? (b.accepted - a.accepted) / (b.t - a.t) : null;
  }
  $("rate").textContent = fmt(dash.rate5);
  $("done_rate").textContent = fmt(e.last.completed);
  $("fail_rate").textContent = e.last.completed ? fmt(100 * e.last.failed / e.last.completed, 1)
                                                : "0.0";
  $("accepted_total").textContent = e.accepted;
  $("shipped_total").textContent = e.completed.shipped;
  $("live").textContent = e.live;
  const w = e.workers, q = e.queues;
  $("workers").textContent = w.intake + "/" + w.intake_threads + " · " + w.writer + " · " + w.io +
                             " · " + w.payment + " · " + w.cpu + "/" + w.cpu_workers;
  $("queues").textContent = [q.intake, q.writer, q.loop, q.backoff, q.payment, q.cpu, q.stats]
    .join("/");
  $("uptime").textContent = "up " + fmt(e.t) + " s";
  showSkus(e.top);
  dash.last = e;
  prev = e;
  lastWall = now;
}

let skuBusy = false;
function showSkus(top) {
  if (skuBusy) return;
  skuBusy = true;
  Promise.all(top.slice(0, 5).map(([sku, units]) =>
    fetch("/stock/" + encodeURIComponent(sku)).then((r) => r.ok ? r.json() : {})
      .catch(() => ({})).then((s) => [sku, units, s])))
    .then((rows) => {
      const tb = $("skus").tBodies[0];
      tb.replaceChildren(...rows.map(([sku, units, s]) => {
        const tr = document.createElement("tr");
        [sku, units, s.available ?? "-", s.reserved ?? "-"].forEach((v) => {
          const td = document.createElement("td");
          td.textContent = v;
          tr.appendChild(td);
        });
        return tr;
      }));
    }).finally(() => { skuBusy = false; });
}

function setState(up) {
  dash.connected = up;
  $("state").textContent = up ? "live" : "reconnecting";
  $("state").className = up ? "up" : "down";
}

const es = new EventSource("/events");
es.onopen = () => {
  if (dash.events > 0) dash.reconnects++;
  setState(true);
};
es.onerror = () => {
  if (dash.connected) {
    dash.gaps++;
    $("gaps").textContent = dash.gaps;
  }
  setState(false);
};
es.onmessage = onEvent;
// A second with no event while disconnected is a gap on the charts.
gapTimer = setInterval(() => {
  const now = Date.now() / 1000;
  if (!dash.connected && lastWall && now - lastWall > 1.5) {
    pushNull(now);
    lastWall = now;
  }
}, 1000);
