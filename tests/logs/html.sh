#!/usr/bin/env bash
# weft logs --html in a real browser: Debian's chromium driven by playwright-core
# (tests/browser/package.json, installed by `npm ci` from scripts/deps.sh). See html.mjs.
# Skipped, saying why, only where chromium or the npm packages are not installed.
set -euo pipefail
src=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
chromium=${WEFT_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "SKIP: $chromium not installed (scripts/deps.sh installs chromium)"; exit 0; }
command -v node >/dev/null || { echo "SKIP: node not installed"; exit 0; }
[ -d "$src/tests/browser/node_modules/playwright-core" ] ||
  { echo "SKIP: playwright-core not installed (scripts/deps.sh runs npm ci in tests/browser)"; exit 0; }
dir=$(mktemp -d /tmp/weft-test-logs-html.XXXXXX)
trap 'rm -rf "$dir"' EXIT
# The screenshots are the CI artifact: into the build directory (ctest's working directory).
export WEFT_ARTIFACTS=${WEFT_ARTIFACTS:-$PWD}
WEFT_BIN=$weft WEFT_CHROMIUM=$chromium WEFT_TMP=$dir \
  timeout 240 node "$src/tests/logs/html.mjs"
