#!/usr/bin/env bash
# weft crawl's HTML report in a real browser: Debian's chromium driven by playwright-core
# (tests/browser/package.json, installed by `npm ci` from scripts/deps.sh). See report.mjs.
# Skipped, saying why, only where chromium or the npm packages are not installed.
set -euo pipefail
source "$(dirname "$0")/../browser/prelude.sh" crawl-report
# A crawl of the fixture in the three modes, with failures and a retry, writing both the
# report and the JSON Lines it must agree with.
{
  for i in $(seq 1 12); do echo "/page/$i"; done
  echo /status/500; echo /status/404; echo /xss; echo /flaky/1/report-tok
} > "$dir/paths.txt"
"$weft" fixture run --port 0 -- sh -c "sed \"s|^|\$WEFT_FIXTURE|\" '$dir/paths.txt' > '$dir/urls.txt' &&
  '$weft' crawl --mode all -q --no-progress --attempts 2 --backoff 10:20 \
    --jsonl '$dir/out.jsonl' --report '$dir/report.html' '$dir/urls.txt'" > "$dir/crawl.out" 2>&1 ||
  [ $? = 1 ] || { cat "$dir/crawl.out"; exit 1; } # exit 1: some pages failed, as meant
WEFT_CHROMIUM=$chromium WEFT_TMP=$dir timeout 120 node "$src/tests/crawl/report.mjs"
