#!/usr/bin/env bash
# The dashboard (GET /) in a real browser: Debian's chromium driven by playwright-core
# (tests/browser/package.json, installed by `npm ci` from scripts/deps.sh). See dashboard.mjs.
# Skipped, saying why, only where chromium or the npm packages are not installed.
set -euo pipefail
source "$(dirname "$0")/../browser/env.sh"
dir=$(mktemp -d /tmp/weft-test-dashboard.XXXXXX)
trap 'rm -rf "$dir"' EXIT
WEFT_BIN=$weft WEFT_CHROMIUM=$chromium WEFT_TMP=$dir \
  timeout 240 node "$src/tests/orders/dashboard.mjs"
