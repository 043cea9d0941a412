// weft logs --follow LOG --serve 127.0.0.1:0 in headless chromium (playwright-core). The page is
// opened from the server; lines are appended to the log; the page must redraw in place (no
// reload: a marker set on window survives) until its cards and tables equal `weft logs --json`
// over the same file, keeping the column the reader sorted and the scroll position; then the
// server is stopped (the page says "reconnecting") and started again on the same port, more
// lines are appended, and the page must recover ("live") and show the new totals.
// Screenshots go to $WEFT_ARTIFACTS. Every process this starts is stopped by pid at the end.
import { execFileSync } from "node:child_process";
import { appendFileSync } from "node:fs";
import path from "node:path";
import { artifacts, eq, fail, finish, launch, run, tmp, until, weft } from "../browser/lib.mjs";

const log = path.join(tmp, "access.log");
function append(seed, size) {
  appendFileSync(log, execFileSync(weft, ["logs", "gen", "--size", size, "--seed", String(seed),
    "--format", "combined"]));
}
const batch = () => JSON.parse(execFileSync(weft, ["logs", "--json", log]));

async function serve(listen) {
  const c = run(["logs", "--follow", log, "--serve", listen]);
  const m = await until("the server to listen", () =>
    c.out.match(/serving (http:\/\/[0-9.:]+\/)/) || (c.exitCode !== null && fail(c.out)));
  c.url = m[1];
  return c;
}

// What the page shows, read from the DOM.
const shown = (page) => page.evaluate(() => {
  const card = (k) => Number(document.querySelector(`.card[data-key="${k}"] .v`)?.dataset.v);
  const rows = (k, i) => [...document.querySelectorAll(`table[data-panel="${k}"] tbody tr`)]
    .map((tr) => tr.children[i].dataset.v);
  return { lines: card("lines"), parsed: card("parsed"), bytes: card("bytes"),
    distinct_ips: card("distinct_ips"), hourly: rows("hourly", 1).map(Number),
    ips: rows("top_ips", 1), counts: rows("top_ips", 2).map(Number),
    report: JSON.parse(document.getElementById("weft-report").textContent) };
});
async function agrees(page, want) {
  const s = await shown(page);
  if (s.lines !== want.lines) return false;
  eq("embedded report", s.report, want);
  for (const k of ["parsed", "bytes", "distinct_ips"]) eq("card " + k, s[k], want[k]);
  eq("hourly", s.hourly, want.hourly);
  // top_ips sorted by the reader (Requests ascending): the same rows, in that order.
  const byCount = [...want.top_ips].sort((a, b) => a.count - b.count);
  eq("top_ips counts (ascending)", s.counts, byCount.map((o) => o.count));
  eq("top_ips", [...s.ips].sort(), want.top_ips.map((o) => o.ip).sort());
  return s;
}

async function main() {
  append(1, "40K");
  let srv = await serve("127.0.0.1:0");
  const port = srv.url.split(":")[2].replace("/", "");
  const page = await launch({ width: 1400, height: 900 });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Network errors are expected here (the server is stopped on purpose; no favicon): not those.
  page.on("console", (m) => {
    if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) errors.push(m.text());
  });
  await page.goto(srv.url);
  await until("the page to go live", () => page.evaluate(() =>
    window.__logs?.ready && window.__live?.state === "live"), 30000);
  await until("the first report", async () => (await shown(page)).lines === batch().lines,
    30000);
  const live = () => page.evaluate(() => ({ ...window.__live }));
  if ((await page.locator("header .live-state").textContent()) !== "live")
    fail("the header does not say live");

  // The reader sorts top_ips by Requests ascending and scrolls down; a marker detects a reload.
  const th = page.locator('table[data-panel="top_ips"] th[data-key="count"]').first();
  await th.click();
  await th.click();
  if ((await th.getAttribute("aria-sort")) !== "ascending") fail("could not sort top_ips");
  await page.evaluate(() => { window.__marker = 1; window.scrollTo(0, 700); });
  const y0 = await page.evaluate(() => window.scrollY);
  if (y0 < 600) fail("the page is too short to scroll (" + y0 + ")");
  const u0 = (await live()).updates;

  // Lines arrive: the page redraws in place until it shows the batch report of the file.
  append(2, "30K");
  let want = batch();
  await until("the page to show the appended lines", () => agrees(page, want), 30000);
  const l1 = await live();
  if (l1.updates <= u0) fail("no redraw counted");
  if (!(await page.evaluate(() => window.__marker === 1))) fail("the page reloaded");
  const th1 = page.locator('table[data-panel="top_ips"] th[data-key="count"]').first();
  if ((await th1.getAttribute("aria-sort")) !== "ascending") fail("the sort was lost");
  const y1 = await page.evaluate(() => window.scrollY);
  if (Math.abs(y1 - y0) > 1) fail(`the scroll moved from ${y0} to ${y1}`);
  if (!(await page.locator("#panel-hourly .uplot canvas").count())) fail("no chart after redraw");
  await page.screenshot({ path: path.join(artifacts, "logs-serve.png") });

  // The server stops: the page says so; it starts again on the same port: the page recovers.
  srv.kill("SIGTERM");
  if ((await srv.done) !== 0) fail("the server did not exit 0 on SIGTERM: " + srv.out);
  await until("the page to notice", async () => (await live()).state === "reconnecting",
    30000);
  if ((await page.locator("header .live-state").textContent()) !== "reconnecting")
    fail("the header does not say reconnecting");
  append(3, "20K");
  srv = await serve("127.0.0.1:" + port);
  want = batch();
  await until("the page to recover", () => agrees(page, want), 30000);
  const l2 = await live();
  if (l2.state !== "live" || l2.reconnects < 1) fail("not live again: " + JSON.stringify(l2));
  if (!(await page.evaluate(() => window.__marker === 1))) fail("the page reloaded");
  if (errors.length) fail("page errors: " + errors.join("; "));
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(artifacts, "logs-serve-restart.png") });
  srv.kill("SIGTERM");
  if ((await srv.done) !== 0) fail("the server did not exit 0 on SIGTERM: " + srv.out);
  console.log(`logs-serve: ok (${want.lines} lines, ${l2.updates} redraws, ` +
              `${l2.reconnects} reconnect(s); screenshots in ${artifacts})`);
}

finish(main);
