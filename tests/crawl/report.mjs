// weft crawl's HTML report in headless chromium (playwright-core): the summary table's numbers
// per mode (pages, failed, retries, mean ms) agree with the JSON Lines of the same run; both
// charts are drawn, each with a legend outside the plotted area (it must not cover a curve);
// nothing from the pages runs as script. A screenshot goes to $WEFT_ARTIFACTS.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../browser/package.json"));
const { chromium } = require("playwright-core");
const tmp = process.env.WEFT_TMP;
const artifacts = process.env.WEFT_ARTIFACTS || tmp;

function fail(msg) { throw new Error(msg); }

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
  if (Object.keys(want).length !== 3) fail("the JSON Lines hold modes " + Object.keys(want));
  const browser = await chromium.launch({
    executablePath: process.env.WEFT_CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
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
    // The charts: one bar per mode; a CDF curve per mode, its legend below the plot area.
    const charts = await page.evaluate(() => {
      const svgs = [...document.querySelectorAll("svg")];
      const box = (e) => { const b = e.getBoundingClientRect(); return { top: b.top, bottom: b.bottom, left: b.left, right: b.right }; };
      return svgs.map((s) => ({
        rects: s.querySelectorAll("rect").length,
        curves: [...s.querySelectorAll("polyline")].map(box),
        legends: [...s.querySelectorAll("text")].filter((t) => t.textContent.includes("\u25ac")).map(box),
      }));
    });
    if (charts.length !== 2) fail(`${charts.length} charts, want 2`);
    if (charts[0].rects < 3) fail(`the time chart has ${charts[0].rects} bars`);
    const cdf = charts[1];
    if (cdf.curves.length !== 3 || cdf.legends.length !== 3) fail(`CDF: ${cdf.curves.length} curves, ${cdf.legends.length} legends`);
    const plotBottom = Math.max(...cdf.curves.map((c) => c.bottom));
    for (const l of cdf.legends) if (l.top < plotBottom) fail("a legend overlaps the plotted curves");
    if (errors.length || dialogs.length) fail("script ran in the report: " + errors.concat(dialogs).join("; "));
    if ((await page.locator("script").count()) !== 0) fail("a <script> element in the report");
    await page.screenshot({ path: path.join(artifacts, "crawl-report.png"), fullPage: true });
    console.log("crawl report: summary agrees with the JSON Lines in 3 modes; screenshot crawl-report.png");
  } finally {
    await browser.close();
  }
}

main().catch((e) => { console.error("FAIL:", e.message); process.exit(1); });
