// weft logs --html in headless chromium (playwright-core). One run writes the page and the JSON
// (--json) of the same statistics; the page must embed exactly that JSON, draw a panel for every
// report in it (known ones with a chart, unknown arrays of objects as sortable tables), show
// the same numbers in its cards and tables, sort a table on a header click, and fit the
// viewport (no horizontal scrolling) at 1400 px and at a phone's 390 px. A hostile path must
// stay text. Screenshots go to $WEFT_ARTIFACTS.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, appendFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { artifacts, eq, fail, finish, launch, tmp, weft } from "../browser/lib.mjs";

async function main() {
  const log = path.join(tmp, "access.log");
  execFileSync(weft, ["logs", "gen", "--size", "3M", "--seed", "7", "--format", "combined",
    "-o", log]);
  // A hostile line: its path must be shown as text, never run.
  appendFileSync(log, ('10.9.9.9 - - [15/Jan/2025:10:30:45 +0000] "GET /<img/src/onerror=window.__pwned=1><b>x</b> ' +
    'HTTP/1.1" 404 1 "-" "curl/8.0"\n').repeat(2000));
  const html = path.join(tmp, "report.html");
  const json = JSON.parse(execFileSync(weft, ["logs", "--panels", "all",
    "--html", html, "--json", "-j2", log]));

  const page = await launch({ width: 1400, height: 1000 });
  const errors = [], requests = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("request", (r) => { if (!r.url().startsWith("file:")) requests.push(r.url()); });
  await page.goto(pathToFileURL(html).href);
  await page.waitForFunction(() => window.__logs && window.__logs.ready, null, { timeout: 20000 });
  if (errors.length) fail("page errors: " + errors.join("; "));
  if (requests.length) fail("the page fetched " + requests.join(", "));
  if (await page.evaluate(() => window.__pwned)) fail("a path from the log ran as HTML");

  // The embedded JSON is the --json output.
  eq("embedded report", await page.evaluate(() =>
    JSON.parse(document.getElementById("weft-report").textContent)), json);

  // A panel for every report; the known ones with a chart.
  const drawn = await page.evaluate(() => window.__logs);
  const want = Object.keys(json).filter((k) =>
    (Array.isArray(json[k]) || (json[k] && typeof json[k] === "object")));
  for (const k of want) if (!drawn.panels.includes(k)) fail(`no panel for "${k}"`);
  for (const k of ["hourly", "status", "top_ips", "top_paths", "top_404_paths"]) {
    const n = await page.locator(`#panel-${k} .uplot canvas`).count();
    if (!n) fail(`panel ${k} has no chart`);
  }
  const axes = await page.locator("#panel-hourly .u-axis").count();
  if (axes < 2) fail("the hourly chart has no axes");

  // Cards: the summary numbers.
  for (const k of ["lines", "parsed", "malformed", "distinct_ips", "bytes"]) {
    const v = await page.locator(`.card[data-key="${k}"] .v`).getAttribute("data-v");
    eq(`card ${k}`, Number(v), json[k]);
  }
  // Tables: every row of every list, in order, with its numbers.
  const tables = ["top_ips", "top_paths", "top_404_paths", "top_static_paths"];
  for (const k of tables) {
    const rows = await page.evaluate((k) => [...document.querySelectorAll(
      `table[data-panel="${k}"] tbody tr`)].map((tr) =>
      [...tr.querySelectorAll("td[data-v]")].map((td) => td.dataset.v)), k);
    eq(`rows of ${k}`, rows.length, json[k].length);
    json[k].forEach((o, i) => {
      const label = o.ip ?? o.path;
      if (!rows[i].includes(String(label))) fail(`${k} row ${i}: ${label} missing: ${rows[i]}`);
      if (!rows[i].includes(String(o.count))) fail(`${k} row ${i}: count ${o.count} missing`);
    });
  }
  // The GoAccess panels: every row's hits and visitors (GoAccess's "Visitors" column).
  for (const k of ["urls", "ips", "os", "browsers", "referring_sites", "referrers"]) {
    if (!Array.isArray(json[k]) || !json[k].length) fail(`no rows in ${k}`);
    const got = await page.evaluate((k) => {
      const t = document.querySelector(`table[data-panel="${k}"]`);
      const keys = [...t.querySelectorAll("thead th")].map((th) => th.dataset.key);
      const hi = keys.indexOf("hits"), vi = keys.indexOf("visitors");
      return [...t.querySelectorAll("tbody tr")].map((tr) =>
        [Number(tr.children[hi].dataset.v), vi < 0 ? null : Number(tr.children[vi].dataset.v)]);
    }, k);
    eq(`hits and visitors of ${k}`, got, json[k].map((o) => [o.hits, o.visitors]));
  }
  const hourly = await page.evaluate(() => [...document.querySelectorAll(
    'table[data-panel="hourly"] tbody tr')].map((tr) => Number(tr.children[1].dataset.v)));
  eq("hourly", hourly, json.hourly);
  const status = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll(
    'table[data-panel="status"] tbody tr')].map((tr) =>
    [tr.children[0].dataset.v, Number(tr.children[1].dataset.v)])));
  eq("status", status, json.status);
  const hostile = await page.locator('table[data-panel="top_404_paths"] td', {
    hasText: "<img/src/onerror=window.__pwned=1><b>x</b>" }).count();
  if (!hostile) fail("the hostile path is not shown as text");

  // Sorting: a click on the IP header sorts by IP, another reverses; Requests sorts numerically.
  const col = (k, i) => page.evaluate(([k, i]) => [...document.querySelectorAll(
    `table[data-panel="${k}"] tbody tr`)].map((tr) => tr.children[i].dataset.v), [k, i]);
  await page.locator('table[data-panel="top_ips"] th[data-key="count"]').first().click();
  let c = (await col("top_ips", 2)).map(Number);
  if (c.some((v, i) => i && c[i - 1] < v)) fail("Requests did not sort descending: " + c);
  await page.locator('table[data-panel="top_ips"] th[data-key="count"]').first().click();
  c = (await col("top_ips", 2)).map(Number);
  if (c.some((v, i) => i && c[i - 1] > v)) fail("Requests did not sort ascending: " + c);

  // Layout: nothing wider than the viewport; panels side by side at 1400 px.
  async function layout(width) {
    await page.setViewportSize({ width, height: 1000 });
    await page.waitForTimeout(100); // resize handlers redraw the charts
    const m = await page.evaluate(() => ({
      sw: document.documentElement.scrollWidth, iw: window.innerWidth,
      charts: [...document.querySelectorAll(".uplot")].map((u) => u.getBoundingClientRect().right),
      lefts: [...new Set([...document.querySelectorAll(".panel")].map((p) =>
        Math.round(p.getBoundingClientRect().left)))].length,
    }));
    if (m.sw > m.iw) fail(`at ${width} px the page is ${m.sw} px wide`);
    if (m.charts.some((r) => r > m.iw + 1)) fail(`at ${width} px a chart overflows`);
    return m;
  }
  const wide = await layout(1400);
  if (wide.lefts < 2) fail("at 1400 px the panels are not in columns");
  await page.screenshot({ path: path.join(artifacts, "logs-html-1400.png"), fullPage: true });
  const phone = await layout(390);
  if (phone.lefts !== 1) fail("at 390 px the panels are not in one column");
  await page.screenshot({ path: path.join(artifacts, "logs-html-390.png"), fullPage: true });

  // Data-driven: a report key the page does not know becomes a sortable table.
  const page2 = readFileSync(html, "utf8").replace('"excluded":',
    '"gadgets":[{"name":"a","hits":3,"bytes":10},{"name":"b","hits":7,"bytes":5}],"excluded":');
  writeFileSync(path.join(tmp, "extra.html"), page2);
  await page.goto(pathToFileURL(path.join(tmp, "extra.html")).href);
  await page.waitForFunction(() => window.__logs && window.__logs.ready);
  const g = await col("gadgets", 1);
  eq("unknown panel rows", g, ["a", "b"]);
  if (!(await page.locator("#panel-gadgets .uplot canvas").count())) fail("no chart for gadgets");
  if (errors.length) fail("page errors: " + errors.join("; "));
  console.log(`ok: ${drawn.panels.length} panels, ${drawn.charts} charts; screenshots in ` +
    artifacts);
}

finish(main);
