# Sourced by tests/dist/*.sh (not a test itself: no .sh): a throw-away Redis in a temporary
# directory, stopped with the workers the test started (their pids in `pids`) also when the test
# fails. Sets SRC, WEFT (absolute), dir, url; defines fail.
SRC=${WEFT_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
WEFT=${WEFT_BIN:?set WEFT_BIN to the weft binary}
case $WEFT in /*) ;; *) WEFT=$PWD/$WEFT ;; esac
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$SRC/scripts/services.sh" stop "$dir"
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
url=$(bash "$SRC/scripts/services.sh" start redis "$dir")
