// weft orders load's HTML report in headless chromium (playwright-core): a short step curve
// (--steps, two steps) against `weft orders serve` (SQLite, built-in payment mock) writes --json
// and --html in the same run; the page, opened from file:// (everything inlined, nothing
// fetched), shows the table the command prints and draws its five uPlot charts
// (tests/browser/charts.mjs: every series with its points and colour on the canvas, the legend
// below the plot), each with as many points as the JSON report's series and the same values:
// the percentile spectrum on a log x axis, achieved and p99 vs offered per step, acknowledged
// and p99 per second. No page error. A screenshot goes to $WEFT_ARTIFACTS. Every process this
// starts is stopped by pid at the end.
import { readFileSync } from "node:fs";
import path from "node:path";
import { artifacts, fail, finish, launch, run, tmp, until } from "../browser/lib.mjs";
import { checkCharts } from "../browser/charts.mjs";

// Fails unless the chart's series k, joined on x (u.data), is the points (x, y): y within tol.
function same(c, k, xs, ys, tol) {
  const at = new Map(c.data[0].map((x, i) => [x, i]));
  xs.forEach((x, i) => {
    const j = [...at.keys()].find((v) => Math.abs(v - x) <= 1e-6 * Math.abs(x));
    const v = j === undefined ? undefined : c.data[k + 1][at.get(j)];
    if (v === undefined || v === null || Math.abs(v - ys[i]) > tol)
      fail(`${c.title}, ${c.labels[k]}: at x ${x} the chart has ${v}, the JSON ${ys[i]}`);
  });
}

async function main() {
  const eng = run(["orders", "serve", "--listen", "127.0.0.1:0", "--db", `sqlite:${tmp}/o.db`]);
  const url = (await until("the engine to listen", () =>
    eng.out.match(/listening on (http:\/\/[0-9.:]+)/) || (eng.exitCode !== null && fail(eng.out))))[1];
  const load = run(["orders", "load", "--url", url, "--steps", "20:40:20", "--duration", "2",
                    "--skus", "4", "--stock", "100000", "--sample", "0",
                    "--json", `${tmp}/r.json`, "--html", `${tmp}/r.html`]);
  const code = await load.done;
  if (code !== 0) fail("load exited " + code + ": " + load.out);
  const r = JSON.parse(readFileSync(`${tmp}/r.json`, "utf8"));
  if (r.steps.length !== 2 || r.seconds.length < 2) fail("steps/seconds in the JSON: " + JSON.stringify(r));

  const page = await launch({ width: 1100, height: 900 });
  const errors = [], requests = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (q) => { if (!q.url().startsWith("file://")) requests.push(q.url()); });
  await page.goto("file://" + tmp + "/r.html");
  // The spectrum's points: every latency_ms quantile but the maximum (1/(1-1) is infinite).
  const qs = Object.keys(r.latency_ms).filter((k) => /^p/.test(k) && k !== "p100");
  const ns = r.steps.length, nsec = r.seconds.length;
  const charts = await checkCharts(page, [
    { title: "percentile spectrum (x = 1/(1-q): 2 is p50, 100 p99, 1000 p99.9)", series: [qs.length] },
    { title: "step curve: achieved vs offered", series: [ns, ns] },
    { title: "step curve: p99 vs offered", series: [ns] },
    { title: "acknowledged per second", series: [nsec] },
    { title: "p99 per second", series: [nsec] },
  ]);
  const [spec, ach, p99, persec, p99sec] = charts;
  if (spec.distr !== 3) fail(`the spectrum's x axis is not logarithmic (distr ${spec.distr})`);
  same(spec, 0, qs.map((k) => 1 / (1 - Number(k.slice(1)) / 100)), qs.map((k) => r.latency_ms[k]), 0.0006);
  const offered = r.steps.map((s) => s.offered);
  // The JSON has offered/achieved to 0.1/s and p99 to 1 us: the chart's x are exact.
  const near = (c) => ({ ...c, data: [c.data[0].map((x) => Number(x.toFixed(1))), ...c.data.slice(1)] });
  same(near(ach), 0, offered, r.steps.map((s) => s.achieved), 0.051);
  same(near(ach), 1, offered, offered, 0.051);
  same(near(p99), 0, offered, r.steps.map((s) => s.latency_ms.p99), 0.0006);
  const secs = r.seconds.map((_, i) => i);
  same(persec, 0, secs, r.seconds.map((s) => s.acked), 0);
  same(p99sec, 0, secs, r.seconds.map((s) => s.p99_ms), 0.0006);
  // The table, as the command prints it: a row per step with its offered and achieved rates.
  const pre = (await page.locator("pre").textContent()).split("\n");
  r.steps.forEach((st, i) => {
    const row = pre.find((l) => l.startsWith(`${i + 1} `));
    const f = row ? row.trim().split(/ +/).map(Number) : [];
    if (!row || Math.abs(f[1] - st.offered) > 0.51 || Math.abs(f[2] - st.achieved) > 0.51)
      fail(`step ${i + 1} in the table: "${row}", the JSON ${st.offered}/s offered, ${st.achieved}/s achieved`);
  });
  if (!pre.some((l) => l.startsWith("all "))) fail("no 'all' row in the table: " + pre.join("\n"));
  if (errors.length) fail("page errors: " + errors.join("; "));
  if (requests.length) fail("the page fetched " + requests.join(", "));
  await page.screenshot({ path: path.join(artifacts, "orders-load-report.png"), fullPage: true });
  eng.kill("SIGTERM");
  await eng.done;
  console.log(`load report: 5 charts agree with --json (${qs.length} quantiles, ${ns} steps, ` +
              `${nsec} seconds); screenshot orders-load-report.png`);
}

finish(main);
