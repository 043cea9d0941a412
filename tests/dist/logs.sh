#!/usr/bin/env bash
# The worked example of docs/distributed.md: docs/examples/logs-on-workers.yaml analyses 4 access
# logs on two `weft worker`s (--save-partial) and merges the partials; the merged JSON report is
# byte-identical to one local `weft logs --json` run over the same files.
set -euo pipefail
. "$(dirname "$0")/common.bash"
# The jobs call `weft`: the one under test.
mkdir "$dir/bin"
ln -s "$WEFT" "$dir/bin/weft"
export PATH=$dir/bin:$PATH
mkdir -p "$dir/shared/logs" "$dir/w1" "$dir/w2"
cp "$SRC/docs/examples/logs-on-workers.yaml" "$dir/shared/"
for i in 1 2 3 4; do
  weft logs gen --size $((40 + 30 * i))K --seed "$i" -o "$dir/shared/logs/access-$i.log"
done
# Workers start elsewhere: the jobs' cwd takes them to the shared directory.
(cd "$dir/w1" && exec weft worker --broker "$url" --ns logs --name w1 --threads 2 2>w.err) &
pids+=($!)
(cd "$dir/w2" && exec weft worker --broker "$url" --ns logs --name w2 --threads 2 2>w.err) &
pids+=($!)
cd "$dir"
weft run --broker "$url" --ns logs shared/logs-on-workers.yaml >run.log ||
  fail "run: $(cat run.log)"
grep -q 'weft run: 5 jobs: 5 ok, 0 failed' run.log || fail "summary: $(cat run.log)"
grep -Eq 'ok       merge \([0-9.]+ s on w[12]\)' run.log || fail "merge: $(cat run.log)"
weft logs --json shared/logs/access-{1,2,3,4}.log >local.json
cmp local.json shared/report.json || fail "merged report differs from one local run"
# The text report: the same but for its title line (it names the files, the merge "partials").
weft logs shared/logs/access-{1,2,3,4}.log | tail -n +2 >local.txt
tail -n +2 shared/report.txt | cmp local.txt - || fail "merged text report differs"
echo "ok: logs analysed on workers, merged partials = one local run"
