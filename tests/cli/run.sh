#!/usr/bin/env bash
# CLI behaviour as data. Each tests/cli/*.t file holds one or more cases:
#   $ weft ARGS...          the command line (run through bash, with `weft` on PATH)
#   < INPUT LINE            optional stdin lines
#   ? N                     expected exit code
#   > EXPECTED LINE         expected stdout lines (exact); omit to not check stdout
#   ! SUBSTRING             stderr must contain it (any number)
#   ~ SUBSTRING             stdout must contain it (any number)
# Cases are separated by blank lines.
set -uo pipefail
bin=$1
dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" && ln -s "$(realpath "$bin")" "$tmp/bin/weft"
export PATH="$tmp/bin:$PATH" WEFT_NO_PROGRESS=1
pass=0 fail=0

run_case() { # file, line number of the case
  local cmd=$1 want_rc=$2 src=$3
  (cd "$tmp" && bash -c "$cmd" <"$tmp/in" >"$tmp/out" 2>"$tmp/err"); local rc=$?
  local ok=1
  [ "$rc" = "$want_rc" ] || { echo "  exit code $rc, wanted $want_rc"; ok=0; }
  if [ -f "$tmp/want_out" ] && ! diff -u "$tmp/want_out" "$tmp/out" >"$tmp/diff"; then
    echo "  stdout differs:"; cat "$tmp/diff"; ok=0
  fi
  while IFS= read -r s; do
    grep -qF -- "$s" "$tmp/err" || { echo "  stderr lacks: $s"; echo "  stderr was:"; sed 's/^/    /' "$tmp/err"; ok=0; }
  done <"$tmp/want_err"
  while IFS= read -r s; do
    grep -qF -- "$s" "$tmp/out" || { echo "  stdout lacks: $s"; echo "  stdout was:"; sed 's/^/    /' "$tmp/out"; ok=0; }
  done <"$tmp/want_has"
  if [ $ok = 1 ]; then pass=$((pass+1)); else echo "FAIL $src: $cmd"; fail=$((fail+1)); fi
}

for t in "$dir"/*.t; do
  n=0; cmd=""; rc=0; start=0
  : >"$tmp/in"; rm -f "$tmp/want_out"; : >"$tmp/want_err"; : >"$tmp/want_has"
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n+1))
    case "$line" in
      '$ '*) cmd=${line#\$ }; start=$n ;;
      '< '*) printf '%s\n' "${line#< }" >>"$tmp/in" ;;
      '? '*) rc=${line#\? } ;;
      '> '*|'>') printf '%s\n' "${line#>}" | sed 's/^ //' >>"$tmp/want_out" ;;
      '! '*) printf '%s\n' "${line#! }" >>"$tmp/want_err" ;;
      '~ '*) printf '%s\n' "${line#\~ }" >>"$tmp/want_has" ;;
      '') if [ -n "$cmd" ]; then run_case "$cmd" "$rc" "$(basename "$t"):$start"; fi
          cmd=""; rc=0; : >"$tmp/in"; rm -f "$tmp/want_out"; : >"$tmp/want_err"; : >"$tmp/want_has" ;;
      '#'*) ;;
    esac
  done <"$t"
  [ -n "$cmd" ] && run_case "$cmd" "$rc" "$(basename "$t"):$start"
done
echo "$pass passed, $fail failed"
[ $fail = 0 ]
