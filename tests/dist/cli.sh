#!/usr/bin/env bash
# weft worker / weft run --broker / weft workers against a throw-away Redis: two workers run a
# job file; the plain log names the worker of each job; a failed job is resumed from the
# broker's state; `weft workers` lists both. Redis and the workers stop also when this fails.
set -euo pipefail
. "$(dirname "$0")/common.bash"
cd "$dir"
"$WEFT" worker --broker "$url" --name m1 --threads 2 2>w1.err & pids+=($!)
"$WEFT" worker --broker "$url" --name m2 --threads 2 2>w2.err & pids+=($!)
cat > j.yaml <<'Y'
jobs:
  a: {run: "echo hello-a"}
  b: {run: "echo out; test -e fixed", deps: [a]}
  c: {run: "echo c >> runs", deps: [b]}
  d: {kind: sleep, duration: 10ms}
Y
set +e
"$WEFT" run --broker "$url" j.yaml >log1
rc=$?
set -e
[ $rc -eq 1 ] || fail "first run: exit $rc"
grep -q 'weft run: 4 jobs: 2 ok, 1 failed, 1 skipped, 0 cancelled' log1 || fail "summary: $(cat log1)"
grep -Eq '^\[ *[0-9.]+s\] ok       a \([0-9.]+ s on m[12]\)$' log1 || fail "no worker named: $(cat log1)"
# start lines come from RUNNING events, which workers write only while someone follows (P:follow)
grep -Eq '^\[ *[0-9.]+s\] start    a \(.* on m[12]\)$' log1 || fail "no start line: $(cat log1)"
grep -q 'failed   b: exit status 1 (on m' log1 || fail "b: $(cat log1)"
grep -q 'skipped  c: a dependency failed' log1 || fail "c: $(cat log1)"
[ "$(cat weft-run.logs/a.log)" = hello-a ] || fail "a's log"
"$WEFT" workers --broker "$url" >workers
grep -q '^m1 ' workers && grep -q '^m2 ' workers && grep -q '2 live workers' workers ||
  fail "workers: $(cat workers)"
touch fixed
"$WEFT" run --broker "$url" --resume broker j.yaml >log2 || fail "resume: $(cat log2)"
grep -q '4 jobs: 4 ok (2 from the earlier run)' log2 || fail "resume: $(cat log2)"
grep -q 'resumed  a' log2 || fail "a not resumed: $(cat log2)"
[ "$(cat runs)" = c ] || fail "c ran $(wc -l <runs) times"
# A fresh run (no --resume) runs everything again.
"$WEFT" run --broker "$url" j.yaml >log3 || fail "fresh: $(cat log3)"
grep -q '4 jobs: 4 ok, 0 failed' log3 || fail "fresh: $(cat log3)"
# On a terminal: the live display (workers, each running job with its worker) above the log.
if command -v script >/dev/null; then
  cat > slow.yaml <<'Y'
jobs:
  nap: {kind: sleep, duration: 1500ms}
  after: {run: "true", deps: [nap]}
Y
  script -qec "'$WEFT' run --broker '$url' slow.yaml" /dev/null </dev/null >tty.out ||
    fail "tty run: $(cat tty.out)"
  grep -q 'workers 2 live' tty.out || fail "no live display: $(cat -v tty.out)"
  grep -Eq ' nap +m[12] ' tty.out || fail "running job without its worker: $(cat -v tty.out)"
  grep -Eq 'ok       after \([0-9.]+ s on m[12]\)' tty.out || fail "tty log: $(cat -v tty.out)"
  ! grep -q 'start    nap' tty.out || fail "start lines on a terminal: $(cat -v tty.out)"
fi
# Usage errors.
set +e
"$WEFT" worker 2>err; [ $? -eq 2 ] || fail "worker without --broker"
"$WEFT" worker --broker "$url" --queues high,urgent 2>err; [ $? -eq 2 ] || fail "bad --queues"
grep -q "bad --queues 'high,urgent'" err || fail "bad --queues: $(cat err)"
"$WEFT" workers --broker "redis://127.0.0.1:1" 2>err; [ $? -eq 2 ] || fail "unreachable broker"
set -e
echo "ok: weft worker / run --broker / workers"
