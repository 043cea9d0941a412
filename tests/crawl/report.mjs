// weft crawl's HTML report in headless chromium (playwright-core): the summary table's numbers
// per mode (pages, failed, retries, mean ms) agree with the JSON Lines of the same run; both
// uPlot charts are drawn (tests/browser/charts.mjs: a series per mode with its points, pixels of
// each series' colour on the canvas, the legend below the plot), the bars' times are the
// table's; no page error, and nothing from the pages runs as script (the /xss page's title
// stays text). A screenshot goes to $WEFT_ARTIFACTS.
import { readFileSync } from "node:fs";
import path from "node:path";
import { artifacts, fail, finish, launch, tmp } from "../browser/lib.mjs";
import { checkCharts } from "../browser/charts.mjs";

// Per mode, from the JSON Lines: pages, failed, retries (attempts beyond the first), mean ms.
function fromJsonl() {
  const by = {};
  for (const line of readFileSync(`${tmp}/out.jsonl`, "utf8").split("\n")) {
    if (!line) continue;
    const r = JSON.parse(line);
    const m = (by[r.mode] ??= { pages: 0, failed: 0, retries: 0, msSum: 0, timed: 0 });
    m.pages++;
    if (r.error) m.failed++;
    if (r.attempts > 1) m.retries += r.attempts - 1;
    if (r.attempts > 0) { m.msSum += r.ms; m.timed++; }
  }
  return by;
}

async function main() {
  const want = fromJsonl();
  const modes = Object.keys(want);
  if (modes.length !== 3) fail("the JSON Lines hold modes " + modes);
  const page = await launch({ width: 1100, height: 900 });
  const errors = [], dialogs = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto("file://" + tmp + "/report.html");
  const rows = await page.evaluate(() => {
    const t = [...document.querySelectorAll("table")][0];
    const head = [...t.querySelectorAll("th")].map((th) => th.textContent.trim());
    return [...t.querySelectorAll("tr")].slice(1).map((tr) => {
      const cells = [...tr.querySelectorAll("td")].map((td) => td.textContent.trim());
      return Object.fromEntries(head.map((h, i) => [h, cells[i]]));
    });
  });
  if (rows.length !== 3) fail(`${rows.length} summary rows, want 3`);
  for (const row of rows) {
    const w = want[row.mode];
    if (!w) fail("a row for an unknown mode " + row.mode);
    for (const k of ["pages", "failed", "retries"])
      if (Number(row[k]) !== w[k]) fail(`${row.mode}: ${k} ${row[k]} in the report, ${w[k]} in the JSON`);
    const mean = w.msSum / w.timed;
    // The report's mean is over microseconds, shown rounded to 1 ms.
    if (Math.abs(Number(row["mean ms"]) - mean) > 1) fail(`${row.mode}: mean ${row["mean ms"]} ms vs ${mean.toFixed(2)}`);
    const rate = Number(row["pages/s"]), total = Number(row["total s"]);
    // total s is shown to 0.01 s, pages/s to 0.1: pages / rate must round to the total.
    if (!(rate > 0) || Math.abs(w.pages / rate - total) > 0.0051 + w.pages / rate * 0.001)
      fail(`${row.mode}: ${rate} pages/s but ${w.pages} pages in ${total} s`);
  }
  // The charts: a bar per mode (its time the table's total s), a CDF curve per mode.
  const charts = await checkCharts(page, [
    { title: "total time per mode", series: modes.map(() => 1) },
    { title: "latency distribution", series: modes.map(() => null) },
  ]);
  const mode = (label) => label.split(" ")[0];
  for (const c of charts)
    if (JSON.stringify(c.labels.map(mode).sort()) !== JSON.stringify([...modes].sort()))
      fail(`${c.title}: series ${c.labels}, modes ${modes}`);
  for (const [k, label] of charts[0].labels.entries()) {
    const row = rows.find((r) => r.mode === mode(label));
    const bar = charts[0].data[k + 1].find((v) => v !== null);
    if (bar.toFixed(2) !== row["total s"]) fail(`${row.mode}: bar ${bar} s, table ${row["total s"]} s`);
  }
  if (errors.length || dialogs.length) fail("page errors or script from a page: " + errors.concat(dialogs).join("; "));
  // The /xss page's title is text in the failed/slowest table, never an element.
  const xss = await page.evaluate(() => [...document.querySelectorAll("td")].some((td) =>
    td.textContent.includes("<script>alert(1)</script>")));
  const scripts = await page.locator("script:not([type])").count();
  if (scripts !== 2) fail(`${scripts} scripts in the report, want 2 (uPlot, charts.js)`);
  await page.screenshot({ path: path.join(artifacts, "crawl-report.png"), fullPage: true });
  console.log(`crawl report: summary agrees with the JSON Lines in 3 modes; both charts drawn` +
              `${xss ? "; the /xss title shown as text" : ""}; screenshot crawl-report.png`);
}

finish(main);
