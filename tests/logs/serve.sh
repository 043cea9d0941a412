#!/usr/bin/env bash
# weft logs --follow --serve in a real browser (see serve.mjs): the served dashboard redraws in
# place as lines arrive and recovers when the server restarts. Skipped, saying why, only where
# chromium or the npm packages are not installed (tests/browser/prelude.sh).
set -euo pipefail
source "$(dirname "$0")/../browser/prelude.sh" logs-serve
WEFT_BIN=$weft WEFT_CHROMIUM=$chromium WEFT_TMP=$dir timeout 240 node "$src/tests/logs/serve.mjs"
