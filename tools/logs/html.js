// weft logs --html: the dashboard, rendered from the report's JSON embedded in the page
// (<script id="weft-report">, the same object `weft logs --json` prints) and its description
// (<script id="weft-meta">). tools/logs/html.c embeds this file, html.css and uPlot.
//
// Data-driven: every key of the report gets a place. Numbers at the top level are summary cards;
// known panels have a title and a chart suited to them; any other array of objects becomes a
// panel with a bar chart of its first numeric column and a sortable table of all its columns,
// any other object of numbers a panel of its entries. Text from the log is inserted with
// textContent only, never as HTML. window.__logs tells tests what was drawn.
//
// Live (`weft logs --follow --serve`): the page, loaded over HTTP with an event stream named in
// its description, subscribes to it (EventSource: "report" events carrying the report's JSON)
// and draws each new report in place: it puts the JSON into <script id="weft-report"> and runs
// this function again (`first` false), keeping the sorted columns and the scroll positions; no
// reload. EventSource reconnects by itself when the server goes away (retry: 1000); the header
// says "live" or "reconnecting". window.__live tells tests the state.
(function render(first) {
  "use strict";
  const R = JSON.parse(document.getElementById("weft-report").textContent);
  const META = JSON.parse(document.getElementById("weft-meta").textContent);
  const TITLES = {
    hourly: "Requests per hour of day", daily: "Visitors and requests per day",
    minutely: "Requests per minute", status: "Status codes", status_classes: "Status classes",
    response_time: "Response time (seconds)", top_ips: "Top client IPs",
    ips: "Visitor IPs: hits, bytes and times", urls: "Requested URLs",
    top_paths: "Top paths", top_404_paths: "Not found (404) URLs",
    top_static_paths: "Static requests", os: "Operating systems", browsers: "Browsers",
    crawlers: "Crawlers", referrers: "Referrers", referring_sites: "Referring sites",
    vhosts: "Virtual hosts",
  };
  const CARDS = {
    lines: "Lines", parsed: "Valid requests", malformed: "Malformed", excluded: "Excluded",
    distinct_ips: "Unique visitor IPs", visitors: "Unique visitors", bytes: "Bytes sent",
    static_requests: "Static requests", distinct_paths: "Distinct paths",
  };
  const ORDER = ["daily", "hourly", "minutely", "status_classes", "status", "response_time",
    "urls", "top_paths", "ips", "top_ips", "top_404_paths", "top_static_paths", "os", "browsers",
    "crawlers", "referring_sites", "referrers", "vhosts"];
  const WIDE = { daily: 1, minutely: 1, urls: 1, ips: 1, top_paths: 1, referrers: 1 };
  const COUNT_KEYS = ["count", "hits", "requests"];
  const LABELS = ["path", "url", "ip", "name", "os", "browser", "crawler", "site", "referrer",
    "vhost", "host"];
  const drawn = { panels: [], cards: [], tables: {}, charts: 0, ready: false };
  const charts = [];

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const WORDS = { ip: "IP", rt_avg: "Avg time", rt_sum: "Total time", rt_max: "Max time",
    os: "OS", url: "URL", vhost: "Virtual host" };
  const human = (k) => TITLES[k] || WORDS[k] ||
    (k.charAt(0).toUpperCase() + k.slice(1)).replace(/_/g, " ");
  const grouped = (v) => Number.isInteger(v) ? v.toLocaleString("en-US") : String(v);
  function bytes(v) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    while (v >= 1024 && i < 5) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + " " + u[i];
  }
  const isBytes = (k) => /bytes/.test(k);
  const fmt = (k, v) => v === null || v === undefined ? "-" :
    typeof v !== "number" ? String(v) : isBytes(k) ? bytes(v) : grouped(v);
  const isNum = (v) => typeof v === "number";
  const isObjArray = (v) => Array.isArray(v) && v.length > 0 && v.every(
    (x) => x && typeof x === "object" && !Array.isArray(x));
  const isNumArray = (v) => Array.isArray(v) && v.every(isNum);
  const isNumObject = (v) => v && typeof v === "object" && !Array.isArray(v) &&
    Object.values(v).every(isNum);

  // ---- charts (uPlot) ----
  const zero = (_, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1]; // counts: the axis starts at 0
  function chartWidth(box) { return Math.max(200, box.clientWidth || 300); }
  function barChart(box, labels, series, opts) {
    // series: [{label, values, color}]; x is the index, labelled by labels[i].
    if (!window.uPlot || !labels.length) return;
    const xs = labels.map((_, i) => i);
    const bars = uPlot.paths.bars({ size: [0.7, 60] });
    const data = [xs, ...series.map((s) => s.values)];
    const px = Math.min(10, Math.max(...labels.map((l) => l.length))) * 7 + 14; // a label's room
    const every = Math.max(1, Math.ceil(labels.length / Math.max(1, (chartWidth(box) - 70) / px)));
    const u = new uPlot({
      width: chartWidth(box), height: (opts && opts.height) || 220,
      legend: { show: true, live: true },
      cursor: { points: { show: false } },
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: zero } },
      axes: [
        { splits: () => xs.filter((i) => i % every === 0),
          values: (_, v) => v.map((i) => short(labels[i] ?? "", 10)), gap: 4 },
        { values: (_, v) => v.map((x) => (opts && opts.bytes) ? bytes(x) : grouped(x)),
          size: 64, label: (opts && opts.ylabel) || "requests" },
      ],
      series: [{ label: (opts && opts.xlabel) || "", value: (_, i) => i === null ? "" :
        labels[Math.round(i)] ?? "" },
        ...series.map((s, k) => ({ label: s.label, fill: k ? "#e0823d99" : "#3b7dd8cc",
          stroke: k ? "#e0823d" : "#3b7dd8", paths: bars, points: { show: false },
          value: (_, v) => v === null ? "-" : fmt(s.key || "", v) }))],
    }, data, box);
    charts.push([u, box]);
    drawn.charts++;
  }
  function timeChart(box, xs, series, opts) {
    if (!window.uPlot || !xs.length) return;
    const days = xs.every((x) => x % 86400 === 0), D = 86400;
    const u = new uPlot({
      width: chartWidth(box), height: 240,
      scales: { x: { time: true, range: days ? (_, lo, hi) => [lo - D / 2, hi + D / 2] : undefined },
        y: { range: zero }, b: { range: zero } },
      axes: [days ? { space: 70, incrs: [D, 2 * D, 7 * D, 14 * D, 28 * D, 91 * D, 365 * D],
        values: (_, v) => v.map((t) => new Date(t * 1000).toISOString().slice(0, 10)) } : {},
      { scale: "y", label: "count", size: 64, values: (_, v) => v.map(grouped) },
        ...(opts.bytes ? [{ scale: "b", side: 1, size: 70, label: "bytes",
          values: (_, v) => v.map(bytes), grid: { show: false } }] : [])],
      series: [{ label: "date" }, ...series.map((s, k) => ({
        label: s.label, scale: isBytes(s.label) ? "b" : "y",
        stroke: ["#3b7dd8", "#e0823d", "#3a9a5b", "#9a3ab0"][k % 4], width: 2,
        fill: k === 0 ? "#3b7dd855" : undefined, points: { show: xs.length < 60 },
        paths: k === 0 && xs.length < 60 ? uPlot.paths.bars({ size: [0.5, 60] }) : undefined,
        value: (_, v) => v === null ? "-" : fmt(s.label, v) }))],
    }, [xs, ...series.map((s) => s.values)], box);
    charts.push([u, box]);
    drawn.charts++;
  }
  const short = (s, n) => s.length > n ? s.slice(0, n - 1) + "\u2026" : s;
  const onResize = () => {
    for (const [u, box] of charts) u.setSize({ width: chartWidth(box), height: u.height });
  };
  window.addEventListener("resize", onResize);
  drawn.teardown = () => { // before a redraw: let go of this drawing's charts
    window.removeEventListener("resize", onResize);
    for (const [u] of charts) u.destroy();
  };

  // ---- tables ----
  // columns: [{key, label, num, fmt}]; rows: objects. Sorting by a column header click.
  function table(panelKey, columns, rows, barKey) {
    const wrap = el("div", "tw");
    const t = el("table");
    t.dataset.panel = panelKey;
    const head = el("tr");
    const body = el("tbody");
    const max = barKey ? Math.max(1, ...rows.map((r) => r[barKey] || 0)) : 0;
    let sortKey = null, dir = 0;
    columns.forEach((c) => {
      const th = el("th", c.num ? "n" : "", c.label);
      th.dataset.key = c.key;
      th.addEventListener("click", () => {
        dir = sortKey === c.key ? -dir : (c.num ? -1 : 1);
        sortKey = c.key;
        head.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
        rows.sort((a, b) => {
          const x = a[c.key], y = b[c.key];
          const d = c.num ? (x ?? -Infinity) - (y ?? -Infinity) : String(x).localeCompare(String(y));
          return d * dir || a.__rank - b.__rank;
        });
        fill();
      });
      head.appendChild(th);
    });
    if (barKey) head.appendChild(el("th", "bar", ""));
    function fill() {
      body.textContent = "";
      for (const r of rows) {
        const tr = el("tr");
        for (const c of columns) {
          const v = r[c.key];
          const td = el("td", c.num ? "n" : "t", c.fmt ? c.fmt(v, r) : fmt(c.key, v));
          if (v !== undefined && v !== null) td.dataset.v = typeof v === "object" ? JSON.stringify(v) : String(v);
          tr.appendChild(td);
        }
        if (barKey) {
          const td = el("td", "bar");
          const s = el("span");
          s.style.width = (100 * (r[barKey] || 0) / max).toFixed(1) + "%";
          td.appendChild(s);
          tr.appendChild(td);
        }
        body.appendChild(tr);
      }
    }
    rows.forEach((r, i) => { r.__rank = i; });
    fill();
    const th = el("thead");
    th.appendChild(head);
    t.appendChild(th);
    t.appendChild(body);
    wrap.appendChild(t);
    drawn.tables[panelKey] = rows.length;
    return wrap;
  }

  // ---- panels ----
  const main = document.querySelector("main");
  const nav = document.querySelector("nav");
  main.textContent = ""; // a redraw replaces the previous drawing
  nav.textContent = "";
  const cards = el("div", "cards");
  const panels = el("div", "panels");
  main.appendChild(cards); // in the page before the charts are drawn: they size to their boxes
  main.appendChild(panels);
  function panel(key, sub) {
    const p = el("section", "panel" + (WIDE[key] ? " wide" : ""));
    p.id = "panel-" + key;
    p.dataset.key = key;
    p.appendChild(el("h2", "", human(key)));
    if (sub) p.appendChild(el("p", "sub", sub));
    panels.appendChild(p);
    const a = el("a", "", human(key));
    a.href = "#" + p.id;
    nav.appendChild(a);
    drawn.panels.push(key);
    return p;
  }
  const chartBox = (p) => p.appendChild(el("div", "chart"));
  const share = (v, whole) => whole ? (100 * v / whole).toFixed(2) + "%" : "-";
  const distinctOf = (key) => R["distinct_" + key.replace(/^top_/, "")];

  // A series of counts by position: hours of the day, minutes of the day (HH:MM), or any other.
  function series(key, v) {
    const minutes = v.length === 1440;
    const p = panel(key, key === "hourly" ? "The hour as written in the log." :
      minutes ? "Requests in each minute of the day; the table lists the minutes with any." : "");
    const labels = v.map((_, i) => minutes ? String(Math.floor(i / 60)).padStart(2, "0") + ":" +
      String(i % 60).padStart(2, "0") : String(i).padStart(2, "0"));
    barChart(chartBox(p), labels, [{ label: "requests", values: v }],
      { xlabel: minutes ? "minute" : key === "hourly" ? "hour" : "" });
    const rows = v.map((n, i) => ({ hour: labels[i], requests: n }))
      .filter((r) => !minutes || r.requests);
    p.appendChild(table(key, [{ key: "hour", label: "Hour" },
      { key: "requests", label: "Requests", num: true },
      { key: "requests", label: "Share", num: true, fmt: (x) => share(x, R.parsed) }],
      rows, "requests"));
  }
  function numObject(key, v) {
    const total = Object.values(v).reduce((a, b) => a + b, 0);
    const p = panel(key);
    const labels = Object.keys(v);
    barChart(chartBox(p), labels, [{ label: "requests", values: labels.map((k) => v[k]) }],
      { xlabel: key === "status" || key === "status_classes" ? "status" : "" });
    const rows = labels.map((k) => ({ key: k, count: v[k] }));
    p.appendChild(table(key, [{ key: "key", label: key === "status" ? "Status" : key === "status_classes" ? "Class" : "Key" },
      { key: "count", label: "Requests", num: true },
      { key: "count", label: "Share", num: true, fmt: (x) => share(x, total) }], rows, "count"));
  }
  function statObject(key, v) {
    const p = panel(key);
    const g = el("div", "stats");
    for (const [k, x] of Object.entries(v)) {
      const d = el("div");
      d.dataset.key = k;
      d.appendChild(el("b", "", k === "count" ? grouped(x) : String(x)));
      d.appendChild(el("span", "", k === "count" ? "timed requests" : k));
      g.appendChild(d);
    }
    p.appendChild(g);
  }
  // A date-like column (daily, minutely): "2024-03-01", "2024-03-01T10:05", or epoch seconds.
  const timeKey = (o) => ["date", "day", "time", "minute"].find((k) => k in o);
  function toEpoch(x) {
    if (isNum(x)) return x;
    const t = Date.parse(/T|:/.test(x) ? x.replace(" ", "T") + (/Z|[+-]\d\d:?\d\d$/.test(x) ? "" : "Z") : x + "T00:00:00Z");
    return Number.isNaN(t) ? null : t / 1000;
  }
  function objArray(key, v) {
    const cols = [];
    for (const o of v) for (const k of Object.keys(o)) if (!cols.includes(k)) cols.push(k);
    const num = (k) => v.every((o) => o[k] === null || o[k] === undefined || isNum(o[k]));
    const numCols = cols.filter(num);
    const valueKey = COUNT_KEYS.find((k) => numCols.includes(k)) || numCols[0];
    const labelKey = LABELS.find((k) => cols.includes(k)) || cols.find((k) => !num(k)) || cols[0];
    const d = distinctOf(key);
    const shown = v.length.toLocaleString("en-US");
    const p = panel(key, isNum(d) ? `${shown} shown of ${d.toLocaleString("en-US")} distinct` :
      d === null ? `${shown} shown of more than 65,536 distinct (exact counts)` : `${shown} rows`);
    const tk = timeKey(v[0]);
    if (tk && v.every((o) => toEpoch(o[tk]) !== null)) {
      const series = numCols.filter((k) => k !== tk).slice(0, 3);
      timeChart(chartBox(p), v.map((o) => toEpoch(o[tk])),
        series.map((k) => ({ label: k, values: v.map((o) => o[k] ?? null) })),
        { bytes: series.some(isBytes) });
    } else if (valueKey) {
      const top = v.slice(0, 20);
      barChart(chartBox(p), top.map((o) => String(o[labelKey] ?? "")),
        [{ label: valueKey, key: valueKey, values: top.map((o) => o[valueKey]) }],
        { xlabel: labelKey, bytes: isBytes(valueKey), ylabel: valueKey });
    }
    const columns = [{ key: "__rank", label: "#", num: true, fmt: (x) => String(x + 1) }];
    for (const k of cols) columns.push({ key: k, label: human(k), num: num(k) });
    if (valueKey && COUNT_KEYS.includes(valueKey))
      columns.splice(columns.findIndex((c) => c.key === valueKey) + 1, 0,
        { key: valueKey, label: "Share", num: true,
          fmt: (x) => share(x, key === "top_404_paths" ? (R.status || {})["404"] : R.parsed) });
    p.appendChild(table(key, columns, v.map((o) => ({ ...o })), valueKey));
  }
  function nullPanel(key) {
    const p = panel(key);
    p.appendChild(el("p", "note", "Not computed for this input."));
  }
  function emptyPanel(key) {
    const p = panel(key);
    p.appendChild(el("p", "sub", "None in this log."));
    drawn.tables[key] = 0;
  }

  // ---- the page ----
  const title = document.querySelector("header p");
  title.textContent = [META.inputs, META.formats ? "format: " + META.formats : "",
    META.live ? "live: redrawn every second" : "",
    META.events ? "live: updated as lines arrive" : ""].filter(Boolean).join(" \u00b7 ");
  function card(key, label, value, sub) {
    const c = el("div", "card");
    c.dataset.key = key;
    c.appendChild(el("div", "k", label));
    const v = el("div", "v", value);
    v.dataset.v = String(R[key] ?? value);
    c.appendChild(v);
    if (sub) c.appendChild(el("div", "s", sub));
    cards.appendChild(c);
    drawn.cards.push(key);
  }
  const keys = Object.keys(R);
  const known = new Set();
  for (const k of Object.keys(CARDS)) {
    if (!isNum(R[k])) continue;
    const sub = k === "malformed" || k === "excluded" || k === "static_requests" ?
      share(R[k], R.lines) + " of lines" : k === "bytes" ? grouped(R[k]) + " B" : "";
    card(k, CARDS[k], fmt(k, R[k]), sub);
    known.add(k);
  }
  if (R.response_time && isNum(R.response_time.p50) && R.response_time.count) {
    card("rt_p50", "Median response", R.response_time.p50 + " s", "p99 " + R.response_time.p99 + " s");
  }
  for (const k of keys) {
    if (known.has(k) || !isNum(R[k]) || /^distinct_/.test(k)) continue;
    card(k, human(k), fmt(k, R[k]));
    known.add(k);
  }
  const order = ORDER.filter((k) => k in R).concat(keys.filter((k) => !ORDER.includes(k)));
  for (const k of order) {
    const v = R[k];
    if (known.has(k) || (isNum(v) && /^distinct_/.test(k))) continue;
    if (v === null) { if (TITLES[k] || /^top_/.test(k)) nullPanel(k); continue; }
    if (isNumArray(v) && v.length) series(k, v);
    else if (k === "response_time" && isNumObject(v)) statObject(k, v);
    else if (isNumObject(v)) numObject(k, v);
    else if (isObjArray(v)) objArray(k, v);
    else if (Array.isArray(v) && v.length === 0) emptyPanel(k);
  }
  drawn.ready = true;
  window.__logs = drawn;
  if (first && META.events && /^https?:$/.test(location.protocol)) live();

  // ---- live updates (weft logs --serve) ----
  function live() {
    const st = { state: "connecting", updates: 0, reconnects: 0, id: null };
    window.__live = st;
    const badge = el("span", "live-state");
    document.querySelector("header h1").appendChild(badge);
    const set = (s) => {
      st.state = s;
      badge.textContent = s;
      badge.dataset.state = s;
    };
    set("connecting");
    let shown = document.getElementById("weft-report").textContent, es = null, down = false;
    const sorts = new Map(); // panel -> [column, "ascending" | "descending"]
    function connect() {
      es = new EventSource(META.events);
      es.addEventListener("open", () => { if (down) st.reconnects++; down = false; set("live"); });
      es.addEventListener("error", () => {
        down = true;
        set("reconnecting");
        if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000); // refused for good
      });
      es.addEventListener("report", (ev) => {
        st.id = ev.lastEventId;
        if (ev.data !== shown) redraw(ev.data);
        set("live");
      });
    }
    function redraw(json) {
      JSON.parse(json); // a broken event changes nothing
      // What the reader chose: sorted columns (by position; kept while a panel is empty) and
      // scroll positions.
      for (const t of document.querySelectorAll("table[data-panel]")) {
        const ths = [...t.querySelectorAll("thead th")];
        const i = ths.findIndex((h) => h.hasAttribute("aria-sort"));
        if (i >= 0) sorts.set(t.dataset.panel, [i, ths[i].getAttribute("aria-sort")]);
        else sorts.delete(t.dataset.panel);
      }
      const tws = [...document.querySelectorAll(".panel .tw")].map((w) =>
        [w.closest(".panel").id, w.scrollTop, w.scrollLeft]);
      const x = window.scrollX, y = window.scrollY;
      document.getElementById("weft-report").textContent = json;
      window.__logs.teardown();
      render(false);
      shown = json;
      for (const [k, [i, dir]] of sorts) {
        const th = document.querySelectorAll(`table[data-panel="${k}"] thead th`)[i];
        for (let n = 0; th && n < 2 && th.getAttribute("aria-sort") !== dir; n++) th.click();
      }
      for (const [id, top, left] of tws) {
        const w = document.querySelector(`#${id} .tw`);
        if (w) { w.scrollTop = top; w.scrollLeft = left; }
      }
      window.scrollTo(x, y);
      st.updates++;
    }
    connect();
  }
})(true);
