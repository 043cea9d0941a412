// Shared by the browser tests (node side; tests/browser/prelude.sh is the shell side): the
// environment prelude.sh sets (WEFT_BIN, WEFT_TMP, WEFT_ARTIFACTS, WEFT_CHROMIUM), headless
// chromium through playwright-core, weft processes tracked by pid, and the end of a test (the
// browser closed, every process it started killed, "FAIL: why" and exit 1 on failure).
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const { chromium } = createRequire(path.join(here, "package.json"))("playwright-core");

export const weft = process.env.WEFT_BIN, tmp = process.env.WEFT_TMP;
export const artifacts = process.env.WEFT_ARTIFACTS || tmp;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export function fail(msg) { throw new Error(msg); }

// Fails unless a and b are the same JSON (what the page shows against what weft printed).
export function eq(what, a, b, theirs = "--json") {
  if (JSON.stringify(a) !== JSON.stringify(b))
    fail(`${what}: page has ${JSON.stringify(a)}, ${theirs} has ${JSON.stringify(b)}`);
}

// Polls fn (every 100 ms, at most ms) until it returns something truthy, and returns that.
export async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) fail("timed out waiting for " + what);
    await sleep(100);
  }
}

// Starts weft with args: c.out collects stdout and stderr, c.done resolves to the exit code (or
// the signal). Killed at the end of the test if still running.
const children = new Set();
export function run(args, opts = {}) {
  const c = spawn(weft, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.add(c);
  c.out = "";
  c.stdout.on("data", (d) => (c.out += d));
  c.stderr.on("data", (d) => (c.out += d));
  c.done = new Promise((r) => c.on("exit", (code, sig) => { children.delete(c); r(code ?? sig); }));
  return c;
}

// Headless chromium with a fresh profile in $WEFT_TMP; returns its first page.
let browser = null;
export async function launch(viewport) {
  browser = await chromium.launchPersistentContext(`${tmp}/profile`, {
    executablePath: process.env.WEFT_CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport,
  });
  return browser.pages()[0] || (await browser.newPage());
}

// Runs the test's main and exits: 0, or 1 with "FAIL: why".
export function finish(main) {
  main().then(() => 0, (e) => { console.error("FAIL: " + e.message); return 1; }).then(async (rc) => {
    if (browser) await browser.close().catch(() => {});
    for (const c of children) c.kill("SIGKILL");
    process.exit(rc);
  });
}
