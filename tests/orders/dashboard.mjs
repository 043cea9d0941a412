// The order engine's dashboard in headless chromium (playwright-core): the page connects to
// /events, its charts receive points while `weft orders load` runs, its accepted/s agrees with
// the load generator's achieved rate (within 2 %) and its totals with /metrics; then the engine
// is killed (-9) and restarted on the same port, and the page shows the gap and recovers.
// Screenshots go to $WEFT_ARTIFACTS. Every process this starts is stopped by pid at the end.
import { readFileSync } from "node:fs";
import path from "node:path";
import { artifacts, fail, finish, launch, run, sleep, tmp, until } from "../browser/lib.mjs";

async function serve(listen) {
  const c = run(["orders", "serve", "--listen", listen, "--db", `sqlite:${tmp}/o.db`]);
  const m = await until("the engine to listen", () =>
    c.out.match(/listening on (http:\/\/[0-9.:]+)/) || (c.exitCode !== null && fail(c.out)));
  c.url = m[1];
  return c;
}

async function metric(url, line) {
  const t = await (await fetch(url + "/metrics")).text();
  const l = t.split("\n").find((x) => x.startsWith(line + " "));
  if (!l) fail("no " + line + " in /metrics");
  return Number(l.split(" ")[1]);
}

async function main() {
  let eng = await serve("127.0.0.1:0");
  const url = eng.url, port = url.split(":")[2];
  for (const sku of ["sku-0", "sku-1", "sku-2"]) {
    const r = await fetch(`${url}/stock/${sku}`, { method: "PUT", body: '{"qty":1000000}' });
    if (r.status !== 200) fail("PUT /stock: " + r.status);
  }
  const page = await launch({ width: 1240, height: 900 });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url + "/");
  const dash = () => page.evaluate(() => ({ ...window.__dash, last: null }));
  await until("the page to connect", async () => (await dash()).connected);
  if ((await page.locator(".uplot canvas").count()) < 5) fail("the five uPlot charts are missing");

  // A short open-loop load; the page's 5-second rate is read while it runs at full rate.
  const rate = 200, seconds = 9;
  const load = run(["orders", "load", "--url", url, "--rate", String(rate), "--duration",
                    String(seconds), "--skus", "3", "--sample", "0", "--json",
                    `${tmp}/load.json`]);
  await sleep(7000);
  const mid = await dash();
  const code = await load.done;
  if (code !== 0) fail("load exited " + code + ": " + load.out);
  const lj = JSON.parse(readFileSync(`${tmp}/load.json`, "utf8"));
  const achieved = lj.steps[0].achieved;
  if (mid.rate5 === null || Math.abs(mid.rate5 - achieved) > 0.02 * achieved)
    fail(`page rate ${mid.rate5} vs load generator ${achieved}`);
  const before = await until("chart points", async () => { const d = await dash();
                                                            return d.points >= 5 && d; });
  // Once the numbers settle, the page shows what /metrics says.
  await until("the page to agree with /metrics", async () => {
    const acc = await metric(url, 'orders_received_total{result="accepted"}');
    const shp = await metric(url, 'orders_completed_total{status="shipped"}');
    const pa = Number(await page.locator("#accepted_total").textContent());
    const ps = Number(await page.locator("#shipped_total").textContent());
    return acc === lj.steps[0].acked && pa === acc && ps === shp && shp === acc;
  }, 30000);
  const skus = await page.locator("#skus tbody tr").count();
  if (skus < 1) fail("no hottest SKUs shown");
  // Every pool's busy workers and every queue are on the page; the pool sizes agree with /metrics.
  const wk = (await page.locator("#workers").textContent()).match(/^(\d+)\/(\d+) · (\d+) · (\d+) · (\d+) · (\d+)\/(\d+)$/);
  if (!wk) fail("workers per pool not shown: " + (await page.locator("#workers").textContent()));
  if (Number(wk[2]) !== await metric(url, 'workers{pool="intake"}') ||
      Number(wk[7]) !== await metric(url, 'workers{pool="cpu"}'))
    fail(`pool sizes on the page ${wk[0]} differ from /metrics`);
  if (!/^(\d+\/){6}\d+$/.test(await page.locator("#queues").textContent()))
    fail("the seven queues are not shown");
  await page.screenshot({ path: path.join(artifacts, "orders-dashboard.png"), fullPage: true });

  // kill -9 the engine: the page says so and draws a gap; restart it: the page recovers.
  eng.kill("SIGKILL");
  await eng.done;
  await until("the page to notice", async () => !(await dash()).connected);
  await sleep(2500);
  eng = await serve("127.0.0.1:" + port);
  await until("the page to reconnect", async () => { const d = await dash();
                                                     return d.connected && d.reconnects >= 1; });
  const load2 = run(["orders", "load", "--url", url, "--rate", "100", "--duration", "3",
                     "--skus", "3", "--sample", "0"]);
  if ((await load2.done) !== 0) fail("second load: " + load2.out);
  const after = await until("points after the restart", async () => { const d = await dash();
    return d.points >= before.points + 4 && d; });
  if (after.gaps < 1) fail("no gap recorded");
  // The new engine counts from zero: the page follows it (a new segment, no negative rate).
  await until("the page to show the new engine's total", async () => {
    const acc = await metric(url, 'orders_received_total{result="accepted"}');
    return acc === 300 && Number(await page.locator("#accepted_total").textContent()) === acc;
  });
  if (errors.length) fail("page errors: " + errors.join("; "));
  await page.screenshot({ path: path.join(artifacts, "orders-dashboard-restart.png"),
                          fullPage: true });
  eng.kill("SIGTERM");
  await eng.done;
  console.log(`dashboard: ok (page ${mid.rate5.toFixed(1)}/s vs load ${achieved}/s; ` +
              `${after.points} points, ${after.gaps} gap(s); screenshots in ${artifacts})`);
}

finish(main);
