#!/usr/bin/env bash
# bench-run: `weft run` against GNU parallel on a DAG of trivial shell commands (jobs/s).
#   bench/bench-run.sh            (WEFT_BIN: the weft binary; default build/release/weft)
# The DAG: LAYERS layers of WIDTH jobs running `true`; every job depends on one job of the layer
# before it. GNU parallel has no dependencies, so it runs the layers one after the other (its
# best schedule for this DAG); both use as many jobs at once as there are usable CPUs x 4.
set -euo pipefail
weft=$(realpath "${WEFT_BIN:-build/release/weft}")
layers=${LAYERS:-5} width=${WIDTH:-100}
jobs=$((layers * width))
cpus=$(nproc)
par=$((cpus * 4))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

{
  echo "jobs:"
  for ((l = 0; l < layers; l++)); do
    for ((i = 0; i < width; i++)); do
      if ((l == 0)); then
        echo "  j${l}_$i: {run: 'true', type: io}"
      else
        echo "  j${l}_$i: {run: 'true', type: io, deps: [j$((l - 1))_$(((i * 7) % width))]}"
      fi
    done
  done
} >"$tmp/dag.yaml"

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

echo "bench-run: $jobs trivial jobs ('true') in $layers layers of $width, $par at once, $cpus CPUs"
t0=$(now)
(cd "$tmp" && "$weft" run --plain --threads "$par" dag.yaml >/dev/null)
t1=$(now)
weft_rate=$(rate "$jobs" "$t0" "$t1")
echo "weft run        $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s   $weft_rate jobs/s"
# The same with the state journal: a record per job, synced as jobs finish (group commit).
t0=$(now)
(cd "$tmp" && "$weft" run --plain --threads "$par" --state st dag.yaml >/dev/null)
t1=$(now)
echo "weft run --state $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s   $(rate "$jobs" "$t0" "$t1") jobs/s   (journal synced as jobs finish)"

if command -v parallel >/dev/null; then
  t0=$(now)
  for ((l = 0; l < layers; l++)); do
    seq "$width" | parallel --will-cite -j "$par" true >/dev/null
  done
  t1=$(now)
  par_rate=$(rate "$jobs" "$t0" "$t1")
  echo "GNU parallel    $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s   $par_rate jobs/s   (layer by layer)"
  t0=$(now)
  seq "$jobs" | parallel --will-cite -j "$par" true >/dev/null
  t1=$(now)
  echo "GNU parallel    $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s   $(rate "$jobs" "$t0" "$t1") jobs/s   (flat, no DAG: its ceiling)"
  echo "ratio           weft run / GNU parallel (DAG): $(awk -v a="$weft_rate" -v b="$par_rate" 'BEGIN{printf "%.1f", a/b}')x"
else
  echo "GNU parallel    (not installed: apt-get install parallel)"
fi
