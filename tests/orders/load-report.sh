#!/usr/bin/env bash
# weft orders load --html in a real browser: Debian's chromium driven by playwright-core
# (tests/browser/package.json, installed by `npm ci` from scripts/deps.sh). See load-report.mjs.
# Skipped, saying why, only where chromium or the npm packages are not installed.
set -euo pipefail
source "$(dirname "$0")/../browser/prelude.sh" load-report
WEFT_BIN=$weft WEFT_CHROMIUM=$chromium WEFT_TMP=$dir \
  timeout 180 node "$src/tests/orders/load-report.mjs"
