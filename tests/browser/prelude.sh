# Sourced by the browser tests (tests/orders/dashboard.sh and load-report.sh, tests/logs/html.sh
# and serve.sh, tests/crawl/report.sh): finds weft, Debian's chromium and playwright-core
# (tests/browser/package.json, installed by `npm ci` from scripts/deps.sh), exits 0 with
# "SKIP: why" when one is missing, and makes a scratch directory $dir (removed on exit) for a
# test named $1. Screenshots go to $WEFT_ARTIFACTS (default: the build directory, ctest's working
# directory). Their node side shares tests/browser/lib.mjs.
src=${WEFT_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
weft=${WEFT_BIN:-$src/build/release/weft}
chromium=${WEFT_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "SKIP: $chromium not installed (scripts/deps.sh installs chromium)"; exit 0; }
command -v node >/dev/null || { echo "SKIP: node not installed"; exit 0; }
[ -d "$src/tests/browser/node_modules/playwright-core" ] ||
  { echo "SKIP: playwright-core not installed (scripts/deps.sh runs npm ci in tests/browser)"; exit 0; }
dir=$(mktemp -d "/tmp/weft-test-$1.XXXXXX")
trap 'rm -rf "$dir"' EXIT
export WEFT_ARTIFACTS=${WEFT_ARTIFACTS:-$PWD}
