# Sourced by the browser tests (tests/orders/dashboard.sh, tests/crawl/report.sh): sets $src,
# $weft and $chromium, and exits 0 with "SKIP: why" where chromium, node or the npm packages
# (tests/browser/package.json, `npm ci` from scripts/deps.sh) are not installed. Screenshots go
# to $WEFT_ARTIFACTS: the build directory (ctest's working directory) unless set.
src=${WEFT_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
chromium=${WEFT_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "SKIP: $chromium not installed (scripts/deps.sh installs chromium)"; exit 0; }
command -v node >/dev/null || { echo "SKIP: node not installed"; exit 0; }
[ -d "$src/tests/browser/node_modules/playwright-core" ] ||
  { echo "SKIP: playwright-core not installed (scripts/deps.sh runs npm ci in tests/browser)"; exit 0; }
export WEFT_ARTIFACTS=${WEFT_ARTIFACTS:-$PWD}
