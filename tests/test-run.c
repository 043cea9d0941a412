/* Tests for `weft run` (tools/run/): the job-file parser's results and errors, and the shell
 * runner: output captured, exit statuses, and a timeout or cancel that kills the whole process
 * group (no process left behind, no zombie). The command itself is tested as data in
 * tests/cli/run.t. */
#include "harness.h"

#include "run/run.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/sys.h>

static int parse(const char *text, struct jobfile *jf, char *err, size_t n)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    int rc = jobfile_parse("t.yaml", text, strlen(text), jf, &b);
    snprintf(err, n, "%s", b.data ? b.data : "");
    weft_buf_free(&b);
    return rc;
}

TEST(jobfile_reads_jobs_defaults_and_pools)
{
    const char *text = "defaults:\n"
                       "  retries: 2\n"
                       "  timeout: 1m\n"
                       "pools: {processes: 3, threads: 9}\n"
                       "jobs:\n"
                       "  a:\n"
                       "    run: echo a\n"
                       "    env: {X: '1'}\n"
                       "  b:\n"
                       "    kind: cpu-burn\n"
                       "    duration: 250ms\n"
                       "    deps: a\n"
                       "    retries: 0\n"
                       "    priority: -4\n"
                       "  c:\n"
                       "    kind: http-get\n"
                       "    url: http://127.0.0.1:1/\n"
                       "    deps: [a, b]\n"
                       "    retry-on: [timeout, http]\n";
    struct jobfile jf;
    char err[512];
    CHECK_MSG(parse(text, &jf, err, sizeof err) == 0, "%s", err);
    CHECK_EQ(jf.n, 3);
    CHECK_EQ(jf.procs, 3);
    CHECK_EQ(jf.threads, 9);
    CHECK_STR_EQ(jf.jobs[0].name, "a");
    CHECK_EQ(jf.jobs[0].line, 6);
    CHECK_EQ(jf.jobs[0].retries, 2);
    CHECK_EQ(jf.jobs[0].timeout_ns, 60000000000ull);
    CHECK_STR_EQ(jf.jobs[0].env[0], "X=1");
    CHECK_EQ(jf.jobs[0].type, WEFT_SCHED_AUTO);
    CHECK_EQ(jf.jobs[1].kind, JOB_CPU_BURN);
    CHECK_EQ(jf.jobs[1].type, WEFT_SCHED_CPU);
    CHECK_EQ(jf.jobs[1].duration_ns, 250000000ull);
    CHECK_EQ(jf.jobs[1].retries, 0);
    CHECK_EQ(jf.jobs[1].priority, -4);
    CHECK_EQ(jf.jobs[1].ndeps, 1);
    CHECK_EQ(jf.jobs[2].type, WEFT_SCHED_IO);
    CHECK_EQ(jf.jobs[2].ndeps, 2);
    CHECK_EQ(jf.jobs[2].n_retry_on, 2);
    CHECK_EQ(jf.jobs[2].retry_on[1], WEFT_EHTTP);
    jobfile_free(&jf);
}

TEST(jobfile_errors_name_the_line)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"jobs:\n  a:\n    run: x\n    retires: 1\n",
         "t.yaml:4: unknown key 'retires' in job 'a' (did you mean 'retries'?)"},
        {"jobs:\n  a: {run: x, deps: [z]}\n", "t.yaml:2: job 'a' depends on unknown job 'z'"},
        {"jobs:\n  a: {run: x, deps: [b]}\n  b: {run: y, deps: [a]}\n",
         "t.yaml:2: dependency cycle: a -> b -> a"},
        {"jobs:\n  a: {run: x, deps: a}\n", "t.yaml:2: job 'a' depends on itself"},
        {"jobs:\n  a: {kind: sleep}\n", "t.yaml:2: job 'a' (kind sleep) needs a 'duration'"},
        {"jobs:\n  a: {kind: fly}\n", "t.yaml:2: unknown kind 'fly' in job 'a'"},
        {"jobs:\n  a: {run: x, priority: high}\n", "t.yaml:2: bad priority 'high'"},
        {"jobs:\n  a: {run: x, retries: 99}\n", "t.yaml:2: bad retries '99'"},
        {"jobs: {}\n", "t.yaml:1: 'jobs' is empty"},
        {"", "t.yaml:1: expected a map with a 'jobs' key"},
        {"pools: {processes: 0}\njobs:\n  a: {run: x}\n", "t.yaml:1: bad processes count"},
        {"jobs:\n  a: [1, 2]\n", "t.yaml:2: job 'a' must be a map"},
        {"jobs:\n  a: {run: x, run: y}\n", "t.yaml:2: key 'run' given twice in job 'a'"},
        {"jobs:\n  a:\n    run: \"x\n", "t.yaml:4: YAML error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jobfile jf;
        char err[512];
        CHECK_EQ(parse(cases[i].text, &jf, err, sizeof err), WEFT_EPARSE);
        CHECK_MSG(strncmp(err, cases[i].want, strlen(cases[i].want)) == 0,
                  "case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].want);
        CHECK_EQ(jf.n, 0);
    }
}

TEST(jobfile_second_jobs_key_and_second_document_are_errors)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"jobs:\n  a: {run: x}\njobs:\n  b: {run: y}\n",
         "t.yaml:3: 'jobs' given twice at the top level (first at line 1)"},
        {"defaults: {retries: 1}\ndefaults: {retries: 2}\njobs:\n  a: {run: x}\n",
         "t.yaml:2: 'defaults' given twice at the top level (first at line 1)"},
        {"jobs:\n  a: {run: x}\n---\njobs:\n  b: {run: y}\n",
         "t.yaml:4: a second YAML document (after '---')"},
        {"jobs:\n  a: {<<: 3, run: x}\n", "t.yaml:2: '<<' in job 'a' must merge a map"},
        {"x-base: &b {retires: 2}\njobs:\n  a: {<<: *b, run: x}\n",
         "t.yaml:1: unknown key 'retires' in job 'a' (did you mean 'retries'?)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jobfile jf;
        char err[512];
        CHECK_EQ(parse(cases[i].text, &jf, err, sizeof err), WEFT_EPARSE);
        CHECK_MSG(strncmp(err, cases[i].want, strlen(cases[i].want)) == 0,
                  "case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].want);
    }
}

TEST(jobfile_merge_keys)
{
    const char *text = "x-base: &base\n"
                       "  type: cpu\n"
                       "  retries: 3\n"
                       "  env: &env {A: '1', B: '2'}\n"
                       "x-more: &more {priority: 7, retries: 9}\n"
                       "jobs:\n"
                       "  a:\n"
                       "    <<: *base\n"
                       "    run: echo a\n"
                       "    retries: 1\n"
                       "  b:\n"
                       "    <<: [*base, *more]\n"
                       "    run: echo b\n"
                       "    env: {<<: *env, B: '3'}\n";
    struct jobfile jf;
    char err[512];
    CHECK_MSG(parse(text, &jf, err, sizeof err) == 0, "%s", err);
    CHECK_EQ(jf.n, 2);
    CHECK_EQ(jf.jobs[0].type, WEFT_SCHED_CPU);
    CHECK_EQ(jf.jobs[0].retries, 1); /* its own key wins */
    CHECK_EQ(jf.jobs[0].nenv, 2);
    CHECK_EQ(jf.jobs[1].retries, 3); /* the first merged map wins over the second */
    CHECK_EQ(jf.jobs[1].priority, 7);
    CHECK_EQ(jf.jobs[1].nenv, 2);
    CHECK_STR_EQ(jf.jobs[1].env[0], "B=3");
    CHECK_STR_EQ(jf.jobs[1].env[1], "A=1");
    jobfile_free(&jf);
}

TEST(jobfile_cwd_is_relative_to_the_file)
{
    const char *text = "jobs:\n  a: {run: x, cwd: src}\n  b: {run: x, cwd: /abs}\n  c: {run: x}\n";
    struct jobfile jf;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    CHECK_EQ(jobfile_parse("some/dir/j.yaml", text, strlen(text), &jf, &b), 0);
    CHECK_STR_EQ(jf.jobs[0].cwd, "some/dir/src");
    CHECK_STR_EQ(jf.jobs[1].cwd, "/abs");
    CHECK(jf.jobs[2].cwd == NULL);
    jobfile_free(&jf);
    CHECK_EQ(jobfile_parse("j.yaml", text, strlen(text), &jf, &b), 0);
    CHECK_STR_EQ(jf.jobs[0].cwd, "src");
    CHECK_EQ(jobfile_find(&jf, "b"), 1);
    CHECK_EQ(jobfile_find(&jf, "zz"), -1);
    jobfile_free(&jf);
    weft_buf_free(&b);
}

/* 40,000 jobs in a chain: the parse and the checks must be linear. Not a timing assertion: the
 * test's timeout (the harness kills it) is the bound, about 100x what a linear parse takes. */
TEST_T(jobfile_many_jobs, 60)
{
    weft_buf_t t;
    weft_buf_init(&t, 0);
    weft_buf_printf(&t, "jobs:\n");
    for (int i = 0; i < 40000; i++)
        if (i)
            weft_buf_printf(&t, "  j%d: {run: 'true', deps: j%d}\n", i, i - 1);
        else
            weft_buf_printf(&t, "  j0: {run: 'true'}\n");
    struct jobfile jf;
    weft_buf_t err;
    weft_buf_init(&err, 0);
    CHECK_MSG(jobfile_parse("t.yaml", t.data, t.len, &jf, &err) == 0, "%s", err.data);
    CHECK_EQ(jf.n, 40000);
    CHECK_EQ(jobfile_find(&jf, "j39999"), 39999);
    jobfile_free(&jf);
    weft_buf_free(&err);
    weft_buf_free(&t);
}

TEST(durations)
{
    uint64_t ns;
    CHECK_EQ(run_parse_duration("250ms", &ns), 0);
    CHECK_EQ(ns, 250000000ull);
    CHECK_EQ(run_parse_duration("1.5", &ns), 0);
    CHECK_EQ(ns, 1500000000ull);
    CHECK_EQ(run_parse_duration("2m", &ns), 0);
    CHECK_EQ(ns, 120000000000ull);
    CHECK_EQ(run_parse_duration("-1s", &ns), -EINVAL);
    CHECK_EQ(run_parse_duration("5 parsecs", &ns), -EINVAL);
    CHECK_EQ(run_parse_duration("", &ns), -EINVAL);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

TEST(shell_output_goes_to_the_log_with_exit_status)
{
    char log[600], msg[256];
    snprintf(log, sizeof log, "%s/a.log", weft_test_tmpdir());
    uint64_t cpu;
    char *env[] = {"WEFT_T=xyz"};
    CHECK_EQ(run_shell("echo out $WEFT_T; echo err >&2; exit 4", NULL, env, 1, log, 0, NULL, NULL,
                       msg, sizeof msg, &cpu),
             WEFT_EEXIT);
    CHECK_STR_EQ(msg, "exit status 4");
    char *text = slurp(log);
    CHECK(text && strstr(text, "out xyz\n") && strstr(text, "err\n"));
    CHECK(strstr(text, "== weft run: exit status 4") != NULL);
    CHECK_EQ(run_shell("kill -SEGV $$", NULL, NULL, 0, log, 0, NULL, NULL, msg, sizeof msg, &cpu),
             WEFT_ESIGNAL);
    CHECK(strstr(msg, "signal 11") != NULL);
    CHECK_EQ(run_shell("true", "/", NULL, 0, log, 0, NULL, NULL, msg, sizeof msg, &cpu), 0);
}

static bool pid_alive(pid_t pid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f) return false;
    char buf[512] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *st = strrchr(buf, ')');
    return !(st && st[1] == ' ' && st[2] == 'Z'); /* a zombie is as good as gone to its group */
}

static pid_t read_pid(const char *path)
{
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f) {
            if (fscanf(f, "%d", &pid) != 1) pid = 0;
            fclose(f);
        }
        if (pid > 0) return pid;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

TEST(timeout_kills_the_whole_process_group)
{
    char log[600], pidf[600], cmd[1400], msg[256];
    snprintf(log, sizeof log, "%s/t.log", weft_test_tmpdir());
    snprintf(pidf, sizeof pidf, "%s/grandchild", weft_test_tmpdir());
    /* A grandchild in the background that would outlive a plain kill of the shell. */
    snprintf(cmd, sizeof cmd, "sleep 60 & echo $! > %s; wait", pidf);
    uint64_t cpu, t0 = weft_now_ns();
    CHECK_EQ(run_shell(cmd, NULL, NULL, 0, log, 200000000u, NULL, NULL, msg, sizeof msg, &cpu),
             -ETIMEDOUT);
    CHECK(weft_now_ns() - t0 < 5000000000ull);
    CHECK(strstr(msg, "timed out") != NULL);
    pid_t gc = read_pid(pidf);
    CHECK(gc > 0);
    bool gone = false;
    for (int i = 0; i < 300 && !gone; i++) {
        gone = !pid_alive(gc);
        struct timespec ts = {0, 10000000};
        if (!gone) nanosleep(&ts, NULL);
    }
    CHECK_MSG(gone, "grandchild %d survived the timeout", (int)gc);
}

static bool after_100ms(void *arg)
{
    return weft_now_ns() > *(uint64_t *)arg;
}

TEST(cancel_stops_the_command)
{
    char log[600], msg[256];
    snprintf(log, sizeof log, "%s/c.log", weft_test_tmpdir());
    uint64_t cpu, when = weft_now_ns() + 100000000u;
    CHECK_EQ(
        run_shell("sleep 60", NULL, NULL, 0, log, 0, after_100ms, &when, msg, sizeof msg, &cpu),
        -ECANCELED);
    CHECK(weft_now_ns() - when < 5000000000ull);
}

static void append_raw(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

TEST(journal_keeps_finished_jobs_and_ignores_torn_records)
{
    const char *text = "jobs:\n  a: {run: x}\n  b: {run: y}\n  c: {run: z}\n  d: {run: w}\n";
    struct jobfile jf;
    char err[512], path[600];
    CHECK_MSG(parse(text, &jf, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/state", weft_test_tmpdir());
    int order[] = {0, 1, 2, 3};
    uint64_t fp[4];
    CHECK_EQ(job_fingerprints(&jf, order, fp), 0);
    CHECK(fp[0] != fp[1]);
    struct journal jr;
    CHECK_EQ(journal_create(&jr, path, &jf, fp, NULL), 0);
    journal_add(&jr, "ok", 0, 1, fp[0], "a");
    journal_add(&jr, "failed", WEFT_EEXIT, 1, fp[1], "b");
    CHECK_EQ(journal_sync(&jr), 0);
    journal_add(&jr, "ok", 0, 2, fp[1], "b"); /* a later record replaces the earlier one */
    CHECK_EQ(journal_sync(&jr), 0);
    journal_close(&jr);
    /* A damaged record for c, then one torn by a crash in the middle of writing it for d. */
    char line[256];
    snprintf(line, sizeof line, "ok\t0\t1\t%016llx\tc\t0123456789abcdef\n",
             (unsigned long long)fp[2]);
    append_raw(path, line);
    snprintf(line, sizeof line, "ok\t0\t1\t%016llx\td", (unsigned long long)fp[3]);
    append_raw(path, line);
    bool ok[4];
    size_t changed;
    weft_buf_t why;
    weft_buf_init(&why, 0);
    CHECK_EQ(journal_load(path, &jf, fp, ok, &changed, &why), 0);
    CHECK(ok[0] && ok[1] && !ok[2] && !ok[3]);
    CHECK_EQ(changed, 0);
    /* b's definition changed: it runs again. */
    fp[1] ^= 1;
    CHECK_EQ(journal_load(path, &jf, fp, ok, &changed, &why), 0);
    CHECK(ok[0] && !ok[1]);
    CHECK_EQ(changed, 1);
    /* A new journal carries the resumed jobs over. */
    CHECK_EQ(journal_create(&jr, path, &jf, fp, ok), 0);
    journal_close(&jr);
    CHECK_EQ(journal_load(path, &jf, fp, ok, &changed, &why), 0);
    CHECK(ok[0] && !ok[1] && !ok[2] && !ok[3]);
    weft_buf_free(&why);
    jobfile_free(&jf);
}

TEST(journal_fingerprint_follows_dependencies)
{
    const char *t1 = "jobs:\n  a: {run: x}\n  b: {run: y, deps: a}\n  c: {run: z}\n";
    const char *t2 = "jobs:\n  a: {run: X}\n  b: {run: y, deps: a}\n  c: {run: z, retries: 3}\n";
    struct jobfile j1, j2;
    char err[512];
    CHECK_EQ(parse(t1, &j1, err, sizeof err), 0);
    CHECK_EQ(parse(t2, &j2, err, sizeof err), 0);
    int order[] = {0, 1, 2};
    uint64_t f1[3], f2[3];
    CHECK_EQ(job_fingerprints(&j1, order, f1), 0);
    CHECK_EQ(job_fingerprints(&j2, order, f2), 0);
    CHECK(f1[0] != f2[0]);  /* edited */
    CHECK(f1[1] != f2[1]);  /* its dependency was edited */
    CHECK_EQ(f1[2], f2[2]); /* retries say how, not what: the same job */
    jobfile_free(&j1);
    jobfile_free(&j2);
}

TEST(shell_cpu_time_is_the_commands)
{
    char log[600], msg[256];
    snprintf(log, sizeof log, "%s/cpu.log", weft_test_tmpdir());
    uint64_t cpu = 0;
    /* A busy loop in a grandchild: the keeper waits for the shell, which waits for it. */
    CHECK_EQ(run_shell("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done", NULL, NULL, 0, log, 0,
                       NULL, NULL, msg, sizeof msg, &cpu),
             0);
    CHECK_MSG(cpu > 0, "cpu %llu", (unsigned long long)cpu);
}

/* Columns a terminal shows for a line: escape sequences take none, a UTF-8 character one. */
static int visible_cols(const char *s, size_t n)
{
    int cols = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0x1b && i + 1 < n && s[i + 1] == '[') {
            for (i += 2; i < n && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e);
                 i++) {
            }
            continue;
        }
        if ((c & 0xc0) != 0x80) cols++;
    }
    return cols;
}

TEST(live_display_fits_the_terminal)
{
    struct live_job jobs[20];
    for (int i = 0; i < 20; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].name = i % 2 ? "a-rather-long-job-name-indeed" : "short";
        jobs[i].route = "processes";
        jobs[i].elapsed_s = 12.5;
        jobs[i].total_s = i % 3 ? 600 : 0;
        snprintf(jobs[i].tail, sizeof jobs[i].tail,
                 "compiling src/some/long/path/file%d.c ... \xc3\xa9t\xc3\xa9 done 99%%", i);
    }
    struct live_view v = {.n = 40000,
                          .finished = 12345,
                          .ok = 12000,
                          .failed = 300,
                          .skipped = 45,
                          .running = 20,
                          .waiting = 27635,
                          .t_s = 1234.5,
                          .procs_busy = 2,
                          .procs = 2,
                          .threads_busy = 18,
                          .threads = 64,
                          .jobs = jobs,
                          .njobs = 20};
    static const int widths[] = {20, 40, 60, 80, 104, 105, 160};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
        for (int rows = 5; rows <= 30; rows += 25) {
            char *out = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&out, &len);
            CHECK(f != NULL);
            int lines = run_live_draw(f, &v, rows, widths[w]);
            fclose(f);
            CHECK(lines <= rows - 2);
            int counted = 0;
            for (const char *p = out, *end = out + len; p < end; counted++) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                int cols = visible_cols(p, n);
                CHECK_MSG(cols < widths[w], "width %d: a line of %d columns: %.*s", widths[w], cols,
                          (int)n, p);
                p += n + 1;
            }
            CHECK(counted >= lines); /* the last "line" may be the autowrap switch alone */
            if (rows == 5) CHECK(strstr(out, " +20 more running") != NULL);
            if (rows == 30) CHECK(strstr(out, "more running") == NULL);
            free(out);
        }
}

struct pusher {
    struct run_events *q;
    int id;
};

static void *push_many(void *arg)
{
    struct pusher *p = arg;
    for (int i = 0; i < 2000; i++) run_events_push(p->q, p->id, EV_START, 0, 0);
    return NULL;
}

/* Events pushed from many threads all arrive, sorted by time; none is lost or doubled. */
TEST(events_from_threads_arrive_in_time_order)
{
    struct run_events *q;
    CHECK_EQ(run_events_open(&q), 0);
    pthread_t th[4];
    struct pusher ps[4];
    for (int i = 0; i < 4; i++) {
        ps[i] = (struct pusher){q, i};
        CHECK_EQ(pthread_create(&th[i], NULL, push_many, &ps[i]), 0);
    }
    struct run_event *evs = NULL;
    size_t cap = 0, got = 0, per[4] = {0};
    bool lost = false;
    uint64_t last = 0;
    while (got < 8000) { /* taking while the threads push: the arrays are swapped under them */
        int fds[2];
        run_events_fds(q, fds);
        struct pollfd pf = {.fd = fds[0], .events = POLLIN};
        poll(&pf, 1, 100);
        size_t k = run_events_take(q, 4, &evs, &cap, &lost);
        for (size_t i = 0; i < k; i++) {
            CHECK(i == 0 || evs[i - 1].t_ns <= evs[i].t_ns);
            per[evs[i].job]++;
        }
        if (k) last = evs[k - 1].t_ns;
        got += k;
    }
    CHECK(last > 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK(!lost);
    CHECK_EQ(got, 8000);
    for (int i = 0; i < 4; i++) CHECK_EQ(per[i], 2000);
    free(evs);
    run_events_close(q);
}
