#!/usr/bin/env bash
# make bench: every benchmark, each printing weft's figures beside its peers' from the same run.
#   bench/run.sh BUILD_DIR [NAME...]    NAME: pool, procpool, logs, crawl, sched, run, orders (default:
#                                       all)
# The C benchmarks are build/.../bench-<name>; the scripted ones bench/bench-<name>.sh, which
# run their C part themselves.
set -uo pipefail
build=$(realpath "${1:-build/release}"); shift || true
here=$(cd "$(dirname "$0")" && pwd)
export WEFT_BIN="$build/weft" WEFT_BUILD="$build" WEFT_SRC="$(dirname "$here")" PYTHON=/usr/bin/python3
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=()
  for f in "$build"/bench-* "$here"/bench-*.sh; do
    [ -e "$f" ] || continue
    n=$(basename "$f"); n=${n#bench-}; n=${n%.sh}
    [[ " ${names[*]} " == *" $n "* ]] || names+=("$n")
  done
fi
status=0
for n in "${names[@]}"; do
  echo; echo "################ bench: $n ($(date +%T), load: $(cut -d' ' -f1-3 /proc/loadavg))"
  # A script drives its C benchmark itself (bench-logs.sh, bench-dist.sh): run only the script.
  if [ -f "$here/bench-$n.sh" ]; then
    bash "$here/bench-$n.sh" || status=1
  elif [ -x "$build/bench-$n" ]; then
    "$build/bench-$n" || status=1
  fi
done
exit $status
