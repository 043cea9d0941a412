# weft run: job-file errors fail before anything runs (exit 2, file:line: reason), the plan,
# outcomes and exit codes, and resuming a failed run.
$ weft run --help
? 0
~ usage: weft run [OPTIONS] JOBFILE
~ --resume STATE

$ weft run
? 2
! weft run: no job file given

$ weft run --bogus jobs.yaml
? 2
! unknown option '--bogus'

$ weft run no-such-file.yaml
? 2
! weft run: cannot read no-such-file.yaml

$ printf 'jobs:\n  build:\n    run: make\n    retires: 3\n' > j.yaml; weft run j.yaml
? 2
! weft run: j.yaml:4: unknown key 'retires' in job 'build' (did you mean 'retries'?)

$ printf 'jobs:\n  a:\n    run: "true"\n    deps: [b]\n  b:\n    run: "true"\n    deps: c\n  c:\n    run: "true"\n    deps: a\n' > j.yaml; cd "$(mktemp -d -p .)"; weft run ../j.yaml; r=$?; test ! -e weft-run.logs && exit $r
? 2
! weft run: ../j.yaml:2: dependency cycle: a -> b -> c -> a

$ printf 'jobs:\n  a:\n    deps: [b]\n  b:\n    run: "true"\n' > j.yaml; weft run j.yaml
? 2
! j.yaml:2: job 'a' has no 'run' command

$ printf 'jobs:\n  a:\n    run: "true"\n    deps: [bb]\n  b:\n    run: "true"\n' > j.yaml; weft run j.yaml
? 2
! j.yaml:4: job 'a' depends on unknown job 'bb'

$ printf 'jobs:\n  a:\n    run: "true"\n    timeout: soon\n' > j.yaml; weft run j.yaml
? 2
! j.yaml:4: bad timeout 'soon' in job 'a'

$ printf 'jobs:\n  a:\n    run: "true"\n    type: gpu\n' > j.yaml; weft run j.yaml
? 2
! j.yaml:4: bad type 'gpu'

$ printf 'jobs:\n  a:\n    run: x\n   deps: [b\n' > j.yaml; weft run j.yaml
? 2
! j.yaml:4: YAML error

$ printf 'jobz:\n  a: {run: x}\n' > j.yaml; weft run j.yaml
? 2
! j.yaml:1: unknown key 'jobz' at the top level (did you mean 'jobs'?)

$ printf 'jobs:\n  a: {run: x}\n  a: {run: y}\n' > j.yaml; weft run j.yaml
? 2
! j.yaml:3: duplicate job 'a' (first at line 2)

$ printf 'jobs:\n  "bad name": {run: x}\n' > j.yaml; weft run j.yaml
? 2
! bad job name 'bad name'

$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  deploy: {run: "echo d", deps: [test]}\n  test: {run: "echo t", deps: build}\n  build: {run: "echo b", type: cpu}\n' > j.yaml; weft run --dry-run j.yaml; test ! -e weft-run.logs
? 0
~ plan for j.yaml: 3 jobs, dependencies first
~    1  build
~    2  test
~    3  deploy

$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  a: {run: "echo hello-a"}\n  b: {run: "echo out; exit 3", deps: [a]}\n  c: {run: "echo c", deps: [b]}\n  d: {kind: sleep, duration: 10ms}\n' > j.yaml; weft run j.yaml --state st; r=$?; cat weft-run.logs/a.log weft-run.logs/b.log; cut -f1,5 st; exit $r
? 1
~ ok       a
~ FAILED   b: exit status 3 (log: weft-run.logs/b.log)
~ skipped  c: dependency 'b' failed: exit status 3
~ weft run: 4 jobs: 2 ok, 1 failed, 1 skipped, 0 cancelled
~ hello-a
~ == weft run: exit status 3
~ weft-run-journal 1
~ failed	b
~ skipped	c

$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  a: {run: "echo a >> runs"}\n  b: {run: "test -e fixed", deps: [a]}\n  c: {run: "echo c >> runs", deps: [b]}\n' > j.yaml; weft run j.yaml --state st >/dev/null; touch fixed; weft run --resume st j.yaml; r=$?; echo "runs: $(tr '\n' ' ' < runs)"; exit $r
? 0
~ resumed  a (succeeded in the earlier run)
~ ok       b
~ ok       c
~ 3 ok (1 from the earlier run)
~ runs: a c

$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  slow: {run: "sleep 30", timeout: 200ms}\n  r: {run: "exit 1", retries: 2, backoff: 1ms}\n' > j.yaml; weft run j.yaml; r=$?; grep -c "weft run" weft-run.logs/r.log; exit $r
? 1
~ FAILED   slow: timed out after 0.2 s; its process group was killed
~ FAILED   r: exit status 1 (after 3 attempts: WEFT_EEXIT, WEFT_EEXIT, WEFT_EEXIT)
~ 6

# getopt_long forms: -j2, --procs=2, --threads=2, options after the job file
$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  a: {run: "true"}\n' > j.yaml; weft run -j2 j.yaml --procs=2 --threads=3 --log-dir=L --plain
? 0
~ weft run: 1 jobs: 1 ok

$ weft run -j0 j.yaml
? 2
! weft run: bad -j '0' (1..256)

$ weft run --state
? 2
! weft run: --state needs a value

$ weft run /tmp
? 2
! weft run: /tmp: is a directory

# Ctrl-C: the running command is stopped (its process is gone when weft run returns), exit 130
$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  a: {run: "echo $$ > pid; exec sleep 30"}\n  b: {run: "sleep 30"}\n' > j.yaml; weft run j.yaml >out 2>err & p=$!; while ! test -s pid; do sleep 0.02; done; kill -INT $p; wait $p; r=$?; kill -0 "$(cat pid)" 2>/dev/null || echo gone; cat out err; exit $r
? 130
~ gone
~ cancelled
~ interrupted: stopping the running jobs

# kill -9 of weft run: no job command survives (thread and process routes), the state journal
# has what finished, and --resume runs only the rest
$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  fast1: {run: "echo f1 >> ran"}\n  fast2: {run: "echo f2 >> ran"}\n  slow1: {run: "test -e quick || { sleep 30 & echo $! >> pids; wait; }; echo s1 >> ran", deps: [fast1]}\n  slow2: {run: "test -e quick || { sleep 30 & echo $! >> pids; wait; }; echo s2 >> ran", type: cpu}\n' > j.yaml; weft run --state st j.yaml >out 2>&1 & p=$!; for i in $(seq 1500); do [ "$(cat pids 2>/dev/null | wc -l)" = 2 ] && [ "$(grep -c '^ok' st 2>/dev/null)" = 2 ] && break; sleep 0.02; done; kill -9 $p; wait $p; for i in $(seq 250); do s=; for q in $(cat pids); do kill -0 $q 2>/dev/null && s="$s $q"; done; [ -z "$s" ] && break; sleep 0.02; done; echo "survivors:$s."; touch quick; weft run --resume st j.yaml; r=$?; echo "ran: $(sort ran | tr '\n' ' ')"; exit $r
? 0
~ survivors:.
~ resumed  fast1
~ resumed  fast2
~ ok       slow1
~ ok       slow2
~ ran: f1 f2 s1 s2

# --resume notices an edited command (and reruns what depends on it)
$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  a: {run: "echo a1 >> runs"}\n  b: {run: "echo b >> runs"}\n  c: {run: "echo c >> runs; exit 1", deps: [a]}\n' > j.yaml; weft run --state st j.yaml >/dev/null; sed -i 's/a1/a2/' j.yaml; weft run --resume st j.yaml; echo "runs: $(sort runs | tr "\\n" " ")"
? 0
~ weft run: 1 job changed since it succeeded: run again
~ ok       a
~ resumed  b
~ FAILED   c
~ runs: a1 a2 b c c

# --state and --stats-json are checked before anything runs
$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  a: {run: "touch ran"}\n' > j.yaml; weft run --state nodir/st j.yaml; r=$?; test ! -e ran && test ! -e weft-run.logs && exit $r
? 2
! weft run: cannot write state nodir/st: No such file or directory

$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  a: {run: "touch ran"}\n' > j.yaml; weft run --stats-json nodir/s.json j.yaml; r=$?; test ! -e ran && test ! -e weft-run.logs && exit $r
? 2
! weft run: cannot write --stats-json nodir/s.json: No such file or directory

$ cd "$(mktemp -d -p .)"; printf 'jobs:\n  a: {run: "true"}\n' > j.yaml; weft run --resume /tmp j.yaml
? 2
! weft run: --resume: /tmp: is a directory

# the plain log has every start, retry and outcome, fast jobs included (events, not polling)
$ cd "$(mktemp -d -p .)"; { printf 'jobs:\n  r: {run: "exit 1", retries: 2, backoff: 1ms}\n'; for i in $(seq 30); do printf '  t%d: {run: "true"}\n' $i; done; } > j.yaml; weft run j.yaml > out; echo "starts $(grep -c '] start ' out) retries $(grep -c '] retry ' out) ok $(grep -c '] ok ' out) failed $(grep -c '] FAILED ' out)"
? 0
~ starts 33 retries 2 ok 30 failed 1

# AUTO shell jobs of a class start about one per CPU until the class is measured...
$ cd "$(mktemp -d -p .)"; { printf 'jobs:\n'; for i in $(seq 8); do printf '  g%d: {run: "sleep 0.2", class: g}\n' $i; done; } > g.yaml; weft run --threads 16 g.yaml > out; n=$(awk '/\] ok /{exit} /\] start /{n++} END{print n+0}' out); [ "$n" -le "$(nproc)" ] && echo "at most one per CPU" || echo "$n started at once"
? 0
~ at most one per CPU

# ...and the rest are routed as measured (with -j 2 too: no "8 of 3 samples")
$ cd "$(mktemp -d -p .)"; { printf 'jobs:\n'; for i in $(seq 8); do printf '  s%d: {run: "sleep 0.05"}\n' $i; done; } > j.yaml; weft run -j 2 --stats-json s.json j.yaml >/dev/null; tail -1 s.json | grep -o '"why":"[^"]*"'
? 0
~ "why":"AUTO task measured
