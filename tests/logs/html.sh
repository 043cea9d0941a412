#!/usr/bin/env bash
# weft logs --html in a real browser (see html.mjs); skipped, saying why, only where chromium
# or the npm packages are not installed (tests/browser/prelude.sh).
set -euo pipefail
source "$(dirname "$0")/../browser/prelude.sh" logs-html
WEFT_BIN=$weft WEFT_CHROMIUM=$chromium WEFT_TMP=$dir timeout 240 node "$src/tests/logs/html.mjs"
