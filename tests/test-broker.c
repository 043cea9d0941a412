/* test-broker.c - the Redis-Streams executor (weft/broker.h) against a real Redis started by
 * scripts/services.sh, with workers as separate processes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/broker.h>
#include <weft/err.h>
#include <weft/procpool.h>
#include <weft/sys.h>

#include "harness.h"

/* ---- registered functions the workers run ---- */

static int pf_echo(const void *arg, size_t len, weft_buf_t *out)
{
    return weft_buf_append(out, arg, len);
}
WEFT_PROCPOOL_FN("tb.echo", pf_echo)

/* Sleeps the milliseconds given as decimal text. */
static int pf_sleep(const void *arg, size_t len, weft_buf_t *out)
{
    char s[32] = {0};
    memcpy(s, arg, len < sizeof s - 1 ? len : sizeof s - 1);
    long ms = atol(s);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return weft_buf_append(out, "slept", 5);
}
WEFT_PROCPOOL_FN("tb.sleep", pf_sleep)

/* Writes its pid to the file named by its argument, then hangs. */
static int pf_pid_hang(const void *arg, size_t len, weft_buf_t *out)
{
    (void)out;
    char path[600], tmp[610];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)arg);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
        rename(tmp, path);
    }
    for (;;) pause();
    return 0;
}
WEFT_PROCPOOL_FN("tb.pid_hang", pf_pid_hang)

/* Waits until the file named by its argument exists. */
static int pf_gate(const void *arg, size_t len, weft_buf_t *out)
{
    char path[600];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)arg);
    while (access(path, F_OK) != 0) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return weft_buf_append(out, "opened", 6);
}
WEFT_PROCPOOL_FN("tb.gate", pf_gate)

/* ---- Redis, stopped also when the test fails ---- */

typedef struct redis {
    char dir[512];
    char url[128];
    char services[512];
    pid_t watchdog;
    int wfd; /* the watchdog stops Redis when this closes (the test process died) */
} redis_t;

static void services_path(char *out, size_t n)
{
    const char *src = getenv("WEFT_SRC");
    if (src) {
        snprintf(out, n, "%s/scripts/services.sh", src);
        return;
    }
    /* __FILE__ is .../tests/test-broker.c */
    snprintf(out, n, "%s", __FILE__);
    char *p = strrchr(out, '/');
    if (p) *p = 0;
    p = strrchr(out, '/');
    if (p) *p = 0;
    strncat(out, "/scripts/services.sh", n - strlen(out) - 1);
}

static void redis_start(redis_t *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", weft_test_tmpdir());
    services_path(r->services, sizeof r->services);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "bash %s start redis %s", r->services, r->dir);
    FILE *f = popen(cmd, "r");
    CHECK(f);
    CHECK(fgets(r->url, sizeof r->url, f));
    CHECK_EQ(pclose(f), 0);
    r->url[strcspn(r->url, "\n")] = 0;
    int p[2];
    CHECK(pipe(p) == 0);
    r->watchdog = fork();
    CHECK(r->watchdog >= 0);
    if (r->watchdog == 0) {
        setpgid(0, 0); /* outlives the harness's kill of a timed-out test's process group */
        close(p[1]);
        char c;
        while (read(p[0], &c, 1) > 0) {
        }
        execlp("bash", "bash", r->services, "stop", r->dir, (char *)NULL);
        _exit(127);
    }
    close(p[0]);
    r->wfd = p[1];
    fcntl(r->wfd, F_SETFD, FD_CLOEXEC);
}

static void redis_stop(redis_t *r)
{
    close(r->wfd); /* the watchdog stops Redis and exits */
    int st;
    CHECK(waitpid(r->watchdog, &st, 0) == r->watchdog);
}

/* ---- workers as processes ---- */

static weft_broker_worker_t *g_worker;
static void on_term(int sig)
{
    (void)sig;
    weft_broker_worker_stop(g_worker);
}

static pid_t worker_start(const redis_t *r, const char *name, const weft_broker_worker_opts_t *o,
                          const weft_broker_opts_t *bo)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(r->wfd);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no worker behind */
        weft_broker_worker_opts_t wo = o ? *o : (weft_broker_worker_opts_t){0};
        wo.name = name;
        if (weft_broker_worker_create(&g_worker, r->url, bo, &wo) != 0) _exit(2);
        struct sigaction sa = {0};
        sa.sa_handler = on_term;
        sigaction(SIGTERM, &sa, NULL);
        int rc = weft_broker_worker_run(g_worker);
        weft_broker_worker_destroy(g_worker);
        _exit(rc == 0 ? 0 : 3);
    }
    return pid;
}

static void worker_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker exit status %d", st);
}

static weft_broker_result_t result_of(weft_broker_t *b, const char *id)
{
    weft_broker_result_t res;
    CHECK_EQ(weft_broker_result(b, id, &res), 0);
    return res;
}

/* Checks that task `id` is in `state`. */
static void check_state(weft_broker_t *b, const char *id, weft_broker_state_t state)
{
    weft_broker_result_t res = result_of(b, id);
    CHECK_MSG(res.state == state, "task %s in state %d, not %d", id, (int)res.state, (int)state);
    weft_broker_result_free(&res);
}

/* Checks that task `id` is DONE, recorded by `worker`. */
static void check_done_on(weft_broker_t *b, const char *id, const char *worker)
{
    weft_broker_result_t res = result_of(b, id);
    CHECK_EQ(res.state, WEFT_BROKER_DONE);
    CHECK_STR_EQ(res.worker, worker);
    weft_broker_result_free(&res);
}

/* Waits until task `id` is in `state` (bounded by the test's timeout). */
static void await_state(weft_broker_t *b, const char *id, weft_broker_state_t state)
{
    for (;;) {
        weft_broker_result_t res = result_of(b, id);
        weft_broker_result_free(&res);
        if (res.state == state) return;
        weft_broker_event_t ev;
        weft_broker_events(b, "$", &ev, 1, 50);
    }
}

/* Calls fn for every event of the namespace's event stream, oldest first. */
static void each_event(weft_broker_t *b, void (*fn)(const weft_broker_event_t *, void *), void *ctx)
{
    char after[32] = "0";
    weft_broker_event_t ev[256];
    for (;;) {
        int k = weft_broker_events(b, after, ev, 256, 0);
        CHECK(k >= 0);
        if (k == 0) break;
        for (int i = 0; i < k; i++) fn(&ev[i], ctx);
        snprintf(after, sizeof after, "%s", ev[k - 1].stream_id);
    }
}

struct once {
    unsigned char *seen;
    long n, done;
    char prefix;
};

static void count_done(const weft_broker_event_t *ev, void *ctx)
{
    struct once *o = ctx;
    if (ev->state != WEFT_BROKER_DONE) return;
    CHECK(ev->id[0] == o->prefix);
    long idx = strtol(ev->id + 1, NULL, 10);
    CHECK(idx >= 0 && idx < o->n);
    CHECK_MSG(o->seen[idx] == 0, "task %s recorded twice", ev->id);
    o->seen[idx] = 1;
    o->done++;
}

/* Counts the DONE events per task (they must be exactly one each) and checks the totals. */
static void check_recorded_once(weft_broker_t *b, long n, char prefix)
{
    struct once o = {calloc((size_t)n, 1), n, 0, prefix};
    CHECK(o.seen);
    each_event(b, count_done, &o);
    free(o.seen);
    CHECK_EQ(o.done, n);
}

/* Reads the pid a task wrote to `path`, waiting for it (bounded by the test's timeout). */
static pid_t await_pid(weft_broker_t *b, const char *path)
{
    long pid = 0;
    while (pid <= 0) {
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &pid) != 1) pid = 0;
            fclose(f);
        }
        if (pid <= 0) {
            weft_broker_event_t ev;
            weft_broker_events(b, "$", &ev, 1, 20);
        }
    }
    return (pid_t)pid;
}

struct match {
    const char *id;
    weft_broker_state_t state;
    int n;
};

static void count_match(const weft_broker_event_t *ev, void *ctx)
{
    struct match *m = ctx;
    m->n += ev->state == m->state && strcmp(ev->id, m->id) == 0;
}

/* Counts the events of task `id` in `state`. */
static int count_events(weft_broker_t *b, const char *id, weft_broker_state_t state)
{
    struct match m = {id, state, 0};
    each_event(b, count_match, &m);
    return m.n;
}

/* n tasks running `true`, ids PREFIX<i>, priorities cycling through low, normal, high. */
static void true_tasks(weft_broker_task_t *t, char (*ids)[8], int n, char prefix)
{
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "%c%d", prefix, i);
        t[i] = (weft_broker_task_t){.id = ids[i], .cmd = "true", .priority = i % 3 - 1};
    }
}

static void connect_fresh(const redis_t *r, weft_broker_t **b, const weft_broker_opts_t *o)
{
    CHECK_EQ(weft_broker_create(b, r->url, o), 0);
    CHECK_EQ(weft_broker_reset(*b), 0);
}

/* Follows the events as `weft run --broker` does, so that the workers write RUNNING events. */
static void follow(weft_broker_t *b)
{
    char last[32];
    CHECK_EQ(weft_broker_events_last(b, last), 0);
}

/* ---- tests ---- */

TEST_T(url_and_misuse, 30)
{
    weft_broker_t *b = (weft_broker_t *)1;
    CHECK_EQ(weft_broker_create(&b, "http://x", NULL), -EINVAL);
    CHECK(b == NULL);
    CHECK_EQ(weft_broker_create(&b, "redis://", NULL), -EINVAL);
    CHECK_EQ(weft_broker_create(&b, "redis://h:99999", NULL), -EINVAL);
    weft_broker_opts_t o = {.ns = "bad ns"};
    CHECK_EQ(weft_broker_create(&b, "redis://127.0.0.1:1", &o), -EINVAL);
    CHECK(weft_broker_create(&b, weft_test_refused_url(), NULL) < 0);
    CHECK(b == NULL);
    CHECK_EQ(weft_broker_submit(NULL, NULL, 0), -EINVAL);
    weft_broker_destroy(NULL);
}

TEST_T(one_task_value_and_errors, 60)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    const char *dep1[] = {"a"};
    weft_broker_task_t t[] = {
        {.id = "a", .fn = "tb.echo", .arg = "hello", .len = 5},
        {.id = "b", .cmd = "echo out; exit 3", .deps = dep1, .ndeps = 1},
        {.id = "c", .cmd = "true", .deps = (const char *[]){"b"}, .ndeps = 1},
        {.id = "d", .fn = "tb.nosuch"},
    };
    weft_broker_task_t bad = {.id = "x", .fn = "f", .cmd = "c"};
    CHECK_EQ(weft_broker_submit(b, &bad, 1), -EINVAL);
    weft_broker_task_t orphan = {
        .id = "o", .cmd = "true", .deps = (const char *[]){"zz"}, .ndeps = 1};
    CHECK_EQ(weft_broker_submit(b, &orphan, 1), -ENOENT);
    CHECK_EQ(weft_broker_submit(b, t, 4), 0);
    CHECK_EQ(weft_broker_submit(b, t, 1), 0); /* known: left as it is */
    uint64_t sub = 0;
    CHECK_EQ(weft_broker_counts(b, &sub, NULL), 0);
    CHECK_EQ(sub, 4);
    pid_t w = worker_start(&r, "w1", NULL, NULL);
    CHECK_EQ(weft_broker_wait(b, 4, -1), 0);
    weft_broker_result_t res = result_of(b, "a");
    CHECK_EQ(res.state, WEFT_BROKER_DONE);
    CHECK_EQ(res.value.len, 5);
    CHECK(memcmp(res.value.data, "hello", 5) == 0);
    CHECK_STR_EQ(res.worker, "w1");
    weft_broker_result_free(&res);
    res = result_of(b, "b");
    CHECK_EQ(res.state, WEFT_BROKER_FAILED);
    CHECK_EQ(res.status, WEFT_EEXIT);
    CHECK_STR_EQ(res.value.data, "out\n");
    CHECK_STR_EQ(res.error.data, "exit status 3");
    weft_broker_result_free(&res);
    res = result_of(b, "c");
    CHECK_EQ(res.state, WEFT_BROKER_SKIPPED);
    CHECK_EQ(res.status, WEFT_ESKIPPED);
    weft_broker_result_free(&res);
    res = result_of(b, "d");
    CHECK_EQ(res.state, WEFT_BROKER_FAILED);
    CHECK_EQ(res.status, WEFT_ENOFUNC);
    weft_broker_result_free(&res);
    check_state(b, "nope", WEFT_BROKER_UNKNOWN);
    /* Resume: b and c run again; b fails again the same way, a is not rerun. */
    const char *ids[] = {"a", "b", "c"};
    CHECK_EQ(weft_broker_resume(b, ids, 3), 2);
    CHECK_EQ(weft_broker_wait(b, 4, -1), 0);
    check_state(b, "c", WEFT_BROKER_SKIPPED);
    weft_buf_t list;
    weft_buf_init(&list, 0);
    CHECK_EQ(weft_broker_workers(b, &list), 1);
    CHECK(strstr(list.data, "w1") != NULL);
    weft_buf_free(&list);
    worker_stop(w);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* Submit goes in windows of tasks, one script each: dependencies across windows of one call,
 * an unknown dependency stops the call after the tasks before it (which stay submitted). */
TEST_T(submit_windows_and_unknown_dependency, 60)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    enum { N = 700 };
    static char ids[N][16];
    static const char *deps[N];
    weft_broker_task_t t[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "w%d", i);
        t[i] = (weft_broker_task_t){.id = ids[i], .fn = "tb.echo", .arg = "e", .len = 1};
        if (i > 0) {
            deps[i] = ids[i * 7 / 11]; /* earlier, often in an earlier window */
            t[i].deps = &deps[i];
            t[i].ndeps = 1;
        }
    }
    CHECK_EQ(weft_broker_submit(b, t, N), 0);
    uint64_t sub = 0, fin = 0;
    CHECK_EQ(weft_broker_counts(b, &sub, &fin), 0);
    CHECK_EQ(sub, N);
    CHECK_EQ(fin, 0);
    check_state(b, "w0", WEFT_BROKER_QUEUED);
    check_state(b, ids[N - 1], WEFT_BROKER_WAITING);
    weft_broker_task_t two[] = {
        {.id = "w700", .cmd = "true"}, /* submitted */
        {.id = "o2", .cmd = "true", .deps = (const char *[]){"zz"}, .ndeps = 1},
        {.id = "p3", .cmd = "true"}, /* not: after the error */
    };
    CHECK_EQ(weft_broker_submit(b, two, 3), -ENOENT);
    CHECK_EQ(weft_broker_counts(b, &sub, NULL), 0);
    CHECK_EQ(sub, N + 1);
    check_state(b, "w700", WEFT_BROKER_QUEUED);
    check_state(b, "o2", WEFT_BROKER_UNKNOWN);
    check_state(b, "p3", WEFT_BROKER_UNKNOWN);
    weft_broker_worker_opts_t o = {.procs = 1, .threads = 2, .slots = 16};
    pid_t w = worker_start(&r, "w1", &o, NULL);
    CHECK_EQ(weft_broker_wait(b, N + 1, -1), 0);
    worker_stop(w);
    CHECK_EQ(weft_broker_counts(b, &sub, &fin), 0);
    CHECK_EQ(fin, N + 1);
    check_recorded_once(b, N + 1, 'w');
    weft_broker_destroy(b);
    redis_stop(&r);
}

TEST_T(retry_with_backoff, 60)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    char cmd[1400];
    /* Fails twice, then succeeds: the counter file lives in the test's directory. */
    snprintf(cmd, sizeof cmd,
             "n=$(cat %s/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s/n; [ $n -ge 3 ]", r.dir,
             r.dir);
    weft_broker_task_t t = {.id = "flaky", .cmd = cmd, .attempts = 5, .backoff_ms = 20};
    CHECK_EQ(weft_broker_submit(b, &t, 1), 0);
    pid_t w = worker_start(&r, "w1", NULL, NULL);
    CHECK_EQ(weft_broker_wait(b, 1, -1), 0);
    weft_broker_result_t res = result_of(b, "flaky");
    CHECK_EQ(res.state, WEFT_BROKER_DONE);
    CHECK_EQ(res.attempts, 3);
    weft_broker_result_free(&res);
    worker_stop(w);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* Every task of a large DAG runs and is recorded exactly once across 4 worker processes. */
TEST_T(dag_exactly_once_4_workers, 240)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    long n = weft_test_scale(10000);
    weft_broker_task_t *t = calloc((size_t)n, sizeof *t);
    char(*ids)[24] = calloc((size_t)n, sizeof *ids);
    const char *(*deps)[2] = calloc((size_t)n, sizeof *deps);
    CHECK(t && ids && deps);
    for (long i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "t%ld", i);
        t[i].id = ids[i];
        t[i].fn = "tb.echo";
        t[i].arg = ids[i];
        t[i].len = strlen(ids[i]);
        t[i].priority = (int)(i % 3) - 1;
        size_t nd = 0;
        if (i > 0) deps[i][nd++] = ids[(i - 1) / 2];
        if (i % 7 == 0 && i >= 3) deps[i][nd++] = ids[i - 3];
        t[i].deps = deps[i];
        t[i].ndeps = nd;
    }
    pid_t w[4];
    weft_broker_worker_opts_t o = {.procs = 1, .threads = 1, .slots = 16};
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i);
        w[i] = worker_start(&r, name, &o, NULL);
    }
    CHECK_EQ(weft_broker_submit(b, t, (size_t)n), 0);
    CHECK_EQ(weft_broker_wait(b, (uint64_t)n, -1), 0);
    for (int i = 0; i < 4; i++) worker_stop(w[i]);
    check_recorded_once(b, n, 't');
    int used = 0;
    for (long i = 0; i < n; i += n / 50 + 1) {
        weft_broker_result_t res = result_of(b, ids[i]);
        CHECK_EQ(res.state, WEFT_BROKER_DONE);
        CHECK_STR_EQ(res.value.data, ids[i]);
        CHECK_EQ(res.deliveries, 1);
        used |= 1 << (res.worker[1] - '0');
        weft_broker_result_free(&res);
    }
    (void)used; /* which workers ran what is up to the race; all of them exist */
    free(t);
    free(ids);
    free(deps);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* kill -9 of a worker mid-task: another worker reclaims the task after the lease and finishes
 * it; nothing lost, nothing recorded twice. */
TEST_T(killed_worker_task_reclaimed, 120)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    follow(b);
    weft_broker_worker_opts_t o = {.procs = 1, .threads = 1, .slots = 1, .lease_ms = 600};
    pid_t victim = worker_start(&r, "victim", &o, NULL);
    weft_broker_task_t t = {.id = "long", .fn = "tb.sleep", .arg = "400", .len = 3};
    CHECK_EQ(weft_broker_submit(b, &t, 1), 0);
    await_state(b, "long", WEFT_BROKER_RUNNING);
    weft_broker_result_t res = result_of(b, "long");
    CHECK_STR_EQ(res.worker, "victim");
    weft_broker_result_free(&res);
    kill(victim, SIGKILL);
    int st;
    CHECK(waitpid(victim, &st, 0) == victim);
    /* More tasks behind it, and a rescuer under another name. */
    char ids[20][8];
    weft_broker_task_t more[20];
    for (int i = 0; i < 20; i++) {
        snprintf(ids[i], sizeof ids[i], "m%d", i);
        more[i] = (weft_broker_task_t){.id = ids[i], .fn = "tb.echo", .arg = "x", .len = 1};
    }
    CHECK_EQ(weft_broker_submit(b, more, 20), 0);
    pid_t rescuer = worker_start(&r, "rescuer", &o, NULL);
    CHECK_EQ(weft_broker_wait(b, 21, -1), 0);
    res = result_of(b, "long");
    CHECK_EQ(res.state, WEFT_BROKER_DONE);
    CHECK_STR_EQ(res.worker, "rescuer");
    CHECK_EQ(res.deliveries, 2);
    CHECK_STR_EQ(res.value.data, "slept");
    weft_broker_result_free(&res);
    worker_stop(rescuer);
    /* Started twice, recorded once; the tasks behind it once each. */
    CHECK_EQ(count_events(b, "long", WEFT_BROKER_RUNNING), 2);
    CHECK_EQ(count_events(b, "long", WEFT_BROKER_DONE), 1);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(count_events(b, ids[i], WEFT_BROKER_DONE), 1);
        CHECK_EQ(count_events(b, ids[i], WEFT_BROKER_RUNNING), 1);
    }
    uint64_t sub = 0, fin = 0;
    CHECK_EQ(weft_broker_counts(b, &sub, &fin), 0);
    CHECK_EQ(sub, 21);
    CHECK_EQ(fin, 21);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* A task that kills its worker on every delivery lands in the dead-letter stream after
 * attempts + max_redeliveries deliveries; its dependents are skipped; the rest goes on. */
TEST_T(poison_task_dead_lettered, 120)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    weft_broker_opts_t bo = {.max_redeliveries = 2};
    connect_fresh(&r, &b, &bo);
    weft_broker_task_t t[] = {
        {.id = "poison", .cmd = "kill -9 $PPID; sleep 5"},
        {.id = "after", .cmd = "true", .deps = (const char *[]){"poison"}, .ndeps = 1},
        {.id = "fine", .cmd = "true"},
    };
    CHECK_EQ(weft_broker_submit(b, t, 3), 0);
    weft_broker_worker_opts_t o = {.procs = -1, .threads = 1, .slots = 1, .lease_ms = 300};
    int starts = 0;
    for (;;) {
        uint64_t fin = 0;
        CHECK_EQ(weft_broker_counts(b, NULL, &fin), 0);
        if (fin == 3) break;
        /* A restarted worker of the same name first takes its own pending entry again. */
        pid_t w = worker_start(&r, "w1", &o, &bo);
        starts++;
        CHECK(starts < 20);
        int st;
        for (;;) {
            pid_t x = waitpid(w, &st, WNOHANG);
            if (x == w) break;
            CHECK_EQ(weft_broker_counts(b, NULL, &fin), 0);
            if (fin == 3) {
                worker_stop(w);
                break;
            }
            weft_broker_event_t ev;
            weft_broker_events(b, "$", &ev, 1, 50);
        }
    }
    weft_broker_result_t res = result_of(b, "poison");
    CHECK_EQ(res.state, WEFT_BROKER_FAILED);
    CHECK_EQ(res.deliveries, 4); /* 1 attempt + 2 redeliveries, the 4th goes to dead letter */
    CHECK(strstr(res.error.data, "dead-lettered") != NULL);
    weft_broker_result_free(&res);
    check_state(b, "after", WEFT_BROKER_SKIPPED);
    check_state(b, "fine", WEFT_BROKER_DONE);
    uint64_t dead = 0;
    CHECK_EQ(weft_broker_dead_count(b, &dead), 0);
    CHECK_EQ(dead, 1);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* Cancel reaches tasks running on a remote worker and kills them: a shell command (its process
 * group) and a registered function in the worker's process pool (its process worker). Each is
 * recorded CANCELLED once (no retry although it had attempts left), its dependent is skipped, and
 * the task running beside them in the same worker is not disturbed. */
TEST_T(cancel_running_remote_tasks, 60)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    follow(b);
    char cmd[2000], cmdpid[600], pidfile[600], gate[600];
    snprintf(cmdpid, sizeof cmdpid, "%s/pid", r.dir);
    snprintf(cmd, sizeof cmd, "echo $$ > %s.tmp && mv %s.tmp %s && exec sleep 60", cmdpid, cmdpid,
             cmdpid);
    snprintf(pidfile, sizeof pidfile, "%s/fnpid", r.dir);
    snprintf(gate, sizeof gate, "%s/gate", r.dir);
    weft_broker_task_t t[] = {
        {.id = "hang", .fn = "tb.pid_hang", .arg = pidfile, .len = strlen(pidfile), .attempts = 3},
        {.id = "dep",
         .fn = "tb.echo",
         .arg = "d",
         .len = 1,
         .deps = (const char *[]){"hang"},
         .ndeps = 1},
        {.id = "beside", .fn = "tb.gate", .arg = gate, .len = strlen(gate)},
        {.id = "sleeper", .cmd = cmd, .attempts = 3},
        {.id = "cdep", .cmd = "true", .deps = (const char *[]){"sleeper"}, .ndeps = 1},
    };
    CHECK_EQ(weft_broker_submit(b, t, 5), 0);
    weft_broker_worker_opts_t o = {.procs = 2, .threads = 1, .slots = 4, .lease_ms = 500};
    pid_t w = worker_start(&r, "w1", &o, NULL);
    pid_t pid = await_pid(b, pidfile);
    CHECK_EQ(kill(pid, 0), 0);
    pid_t cpid = await_pid(b, cmdpid);
    CHECK_EQ(kill(cpid, 0), 0);
    await_state(b, "beside", WEFT_BROKER_RUNNING);
    CHECK_EQ(weft_broker_cancel(b, "sleeper"), 0);
    await_state(b, "sleeper", WEFT_BROKER_CANCELLED);
    /* The command was reaped by the worker when it recorded the cancel. */
    CHECK(kill(cpid, 0) < 0 && errno == ESRCH);
    CHECK_EQ(weft_broker_cancel(b, "sleeper"), -EALREADY);
    CHECK_EQ(weft_broker_cancel(b, "nosuch"), -ENOENT);
    CHECK_EQ(weft_broker_cancel(b, "hang"), 0);
    await_state(b, "hang", WEFT_BROKER_CANCELLED);
    /* The process worker that ran it is killed and reaped (by the worker's process pool). */
    while (kill(pid, 0) == 0) {
        weft_broker_event_t ev;
        weft_broker_events(b, "$", &ev, 1, 20);
    }
    CHECK_EQ(errno, ESRCH);
    weft_broker_result_t res = result_of(b, "hang");
    CHECK_EQ(res.status, -ECANCELED);
    CHECK_EQ(res.deliveries, 1);
    CHECK_STR_EQ(res.worker, "w1");
    weft_broker_result_free(&res);
    check_state(b, "beside", WEFT_BROKER_RUNNING);
    FILE *f = fopen(gate, "w");
    CHECK(f);
    fclose(f);
    CHECK_EQ(weft_broker_wait(b, 5, -1), 0);
    res = result_of(b, "beside");
    CHECK_EQ(res.state, WEFT_BROKER_DONE);
    CHECK_EQ(res.deliveries, 1);
    CHECK_STR_EQ(res.value.data, "opened");
    weft_broker_result_free(&res);
    check_state(b, "dep", WEFT_BROKER_SKIPPED);
    check_state(b, "cdep", WEFT_BROKER_SKIPPED);
    /* The worker goes on with a replacement process. */
    weft_broker_task_t more = {.id = "more", .fn = "tb.echo", .arg = "m", .len = 1};
    CHECK_EQ(weft_broker_submit(b, &more, 1), 0);
    CHECK_EQ(weft_broker_wait(b, 6, -1), 0);
    check_state(b, "more", WEFT_BROKER_DONE);
    worker_stop(w);
    CHECK_EQ(count_events(b, "hang", WEFT_BROKER_CANCELLED), 1);
    CHECK_EQ(count_events(b, "hang", WEFT_BROKER_RUNNING), 1);
    CHECK_EQ(count_events(b, "sleeper", WEFT_BROKER_CANCELLED), 1);
    CHECK_EQ(count_events(b, "sleeper", WEFT_BROKER_RUNNING), 1);
    uint64_t sub = 0, fin = 0;
    CHECK_EQ(weft_broker_counts(b, &sub, &fin), 0);
    CHECK_EQ(sub, 6);
    CHECK_EQ(fin, 6);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* Redis restarted mid-run (AOF on, fsync always): the workers reconnect, the run finishes,
 * nothing lost, nothing recorded twice. */
TEST_T(redis_restart_mid_run, 240)
{
    setenv("WEFT_REDIS_AOF", "1", 1);
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    long n = weft_test_scale(3000);
    weft_broker_task_t *t = calloc((size_t)n, sizeof *t);
    char(*ids)[24] = calloc((size_t)n, sizeof *ids);
    const char **deps = calloc((size_t)n, sizeof *deps);
    CHECK(t && ids && deps);
    for (long i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "r%ld", i);
        t[i] = (weft_broker_task_t){.id = ids[i], .fn = "tb.echo", .arg = "v", .len = 1};
        if (i > 0) {
            deps[i] = ids[(i - 1) / 2];
            t[i].deps = &deps[i];
            t[i].ndeps = 1;
        }
    }
    weft_broker_worker_opts_t o = {.procs = 1, .threads = 1, .slots = 8, .lease_ms = 2000};
    pid_t w[2] = {worker_start(&r, "w0", &o, NULL), worker_start(&r, "w1", &o, NULL)};
    CHECK_EQ(weft_broker_submit(b, t, (size_t)n), 0);
    uint64_t fin = 0;
    while (fin < (uint64_t)n / 3) {
        CHECK_EQ(weft_broker_counts(b, NULL, &fin), 0);
        weft_broker_event_t ev;
        weft_broker_events(b, "$", &ev, 1, 20);
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "bash %s restart redis %s >/dev/null", r.services, r.dir);
    CHECK_EQ(system(cmd), 0);
    /* The same client goes on: it reconnects (the server may still be loading its AOF). */
    CHECK_EQ(weft_broker_wait(b, (uint64_t)n, -1), 0);
    for (int i = 0; i < 2; i++) worker_stop(w[i]);
    uint64_t sub = 0;
    CHECK_EQ(weft_broker_counts(b, &sub, &fin), 0);
    CHECK_EQ(sub, (uint64_t)n);
    CHECK_EQ(fin, (uint64_t)n);
    check_recorded_once(b, n, 'r');
    free(t);
    free(ids);
    free(deps);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* A slow worker holds only what it runs (no prefetch): while it runs a long task, the other
 * worker takes every other task. */
TEST_T(slow_worker_no_prefetch_inversion, 120)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "while [ ! -e %s/go ]; do sleep 0.02; done", r.dir);
    weft_broker_task_t lt = {.id = "long", .cmd = cmd};
    CHECK_EQ(weft_broker_submit(b, &lt, 1), 0);
    weft_broker_worker_opts_t slow = {.procs = -1, .threads = 1, .slots = 1, .lease_ms = 1000};
    pid_t ws = worker_start(&r, "slow", &slow, NULL);
    await_state(b, "long", WEFT_BROKER_RUNNING);
    char ids[40][8];
    weft_broker_task_t t[40];
    true_tasks(t, ids, 40, 's');
    CHECK_EQ(weft_broker_submit(b, t, 40), 0);
    weft_broker_worker_opts_t fast = {.procs = -1, .threads = 2, .lease_ms = 1000};
    pid_t wf = worker_start(&r, "fast", &fast, NULL);
    CHECK_EQ(weft_broker_wait(b, 40, -1), 0);
    for (int i = 0; i < 40; i++) {
        check_done_on(b, ids[i], "fast");
    }
    check_state(b, "long", WEFT_BROKER_RUNNING);
    char go[600];
    snprintf(go, sizeof go, "%s/go", r.dir);
    FILE *f = fopen(go, "w");
    CHECK(f);
    fclose(f);
    CHECK_EQ(weft_broker_wait(b, 41, -1), 0);
    check_done_on(b, "long", "slow");
    worker_stop(ws);
    worker_stop(wf);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* A worker given only the high queue takes only high-priority tasks (also when idle, blocked on
 * its streams); the others wait for a worker of their queues. */
TEST_T(worker_takes_only_its_queues, 60)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    weft_broker_worker_opts_t hi = {.procs = -1, .threads = 2, .queues = 1};
    pid_t wh = worker_start(&r, "hi", &hi, NULL);
    char ids[30][8];
    weft_broker_task_t t[30];
    true_tasks(t, ids, 30, 'q');
    CHECK_EQ(weft_broker_submit(b, t, 30), 0);
    CHECK_EQ(weft_broker_wait(b, 10, -1), 0); /* the 10 high ones */
    for (int i = 0; i < 30; i++)
        if (t[i].priority > 0) {
            check_done_on(b, ids[i], "hi");
        } else {
            check_state(b, ids[i], WEFT_BROKER_QUEUED);
        }
    weft_broker_worker_opts_t rest = {.procs = -1, .threads = 2, .queues = 6};
    pid_t wr = worker_start(&r, "rest", &rest, NULL);
    CHECK_EQ(weft_broker_wait(b, 30, -1), 0);
    for (int i = 0; i < 30; i++) {
        check_done_on(b, ids[i], t[i].priority > 0 ? "hi" : "rest");
    }
    worker_stop(wh);
    worker_stop(wr);
    weft_broker_worker_t *bad;
    weft_broker_worker_opts_t o8 = {.queues = 8};
    CHECK_EQ(weft_broker_worker_create(&bad, r.url, NULL, &o8), -EINVAL);
    CHECK(bad == NULL);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* One completion queues two dependents in two bands within one script, so both entries get
 * the same id (ids are per stream). The worker must run both (it once took the second for one
 * it already ran, and only the lease brought it back: with a long lease, never in time). */
TEST_T(same_entry_id_in_two_bands, 60)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    const char *root[] = {"root"};
    weft_broker_task_t t[] = {
        {.id = "root", .cmd = "true"},
        {.id = "hi", .cmd = "true", .priority = 1, .deps = root, .ndeps = 1},
        {.id = "lo", .cmd = "true", .priority = -1, .deps = root, .ndeps = 1},
    };
    CHECK_EQ(weft_broker_submit(b, t, 3), 0);
    weft_broker_worker_opts_t o = {.procs = -1, .threads = 1, .slots = 2, .lease_ms = 600000};
    pid_t w = worker_start(&r, "w1", &o, NULL);
    CHECK_EQ(weft_broker_wait(b, 3, -1), 0);
    for (int i = 0; i < 3; i++) {
        weft_broker_result_t res = result_of(b, t[i].id);
        CHECK_EQ(res.state, WEFT_BROKER_DONE);
        CHECK_EQ(res.deliveries, 1);
        weft_broker_result_free(&res);
    }
    worker_stop(w);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* A field of Redis' INFO section `sec` (redis-cli), e.g. ("commandstats", "cmdstat_xreadgroup",
 * "calls="): the number after `field` on the line that starts with `line`, 0 if none. */
static long long redis_info(const redis_t *r, const char *sec, const char *line, const char *field)
{
    char cmd[512], buf[1024];
    snprintf(cmd, sizeof cmd, "redis-cli -p %s INFO %s", strrchr(r->url, ':') + 1, sec);
    FILE *f = popen(cmd, "r");
    CHECK(f);
    long long v = 0;
    while (fgets(buf, sizeof buf, f)) {
        if (strncmp(buf, line, strlen(line)) != 0 || buf[strlen(line)] != ':') continue;
        const char *p = strstr(buf, field);
        if (p) v = atoll(p + strlen(field));
    }
    pclose(f);
    return v;
}

/* An idle worker blocks in one XREADGROUP over its streams and keeps its connection. It used to
 * send the streams as one argument: Redis refused the read ("syntax error"), the worker dropped
 * the connection, reconnected (loading its scripts again) and looped, burning a core and Redis
 * while idle. The mechanism is checked, not the CPU time: over many idle turns no script is
 * loaded again (only a connect loads them) and no read fails. */
TEST_T(idle_worker_blocks_without_reconnecting, 60)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    /* lease 250 ms: the idle read blocks for a heartbeat, 50 ms. */
    weft_broker_worker_opts_t o = {.procs = -1, .threads = 1, .lease_ms = 250};
    pid_t w = worker_start(&r, "idler", &o, NULL);
    for (;;) { /* it is up: its heartbeat is written */
        weft_buf_t list;
        weft_buf_init(&list, 0);
        int live = weft_broker_workers(b, &list);
        weft_buf_free(&list);
        CHECK(live >= 0);
        if (live >= 1) break;
        weft_broker_event_t ev;
        weft_broker_events(b, "$", &ev, 1, 5);
    }
    long long loads = redis_info(&r, "commandstats", "cmdstat_script|load", "calls=");
    long long reads = redis_info(&r, "commandstats", "cmdstat_xreadgroup", "calls=");
    CHECK(loads > 0);
    /* Wait for 10 more reads (the worker's idle turns), whatever the machine's speed. */
    while (redis_info(&r, "commandstats", "cmdstat_xreadgroup", "calls=") < reads + 10) {
        weft_broker_event_t ev;
        weft_broker_events(b, "$", &ev, 1, 20);
    }
    CHECK_EQ(redis_info(&r, "commandstats", "cmdstat_script|load", "calls="), loads);
    CHECK_EQ(redis_info(&r, "commandstats", "cmdstat_xreadgroup", "failed_calls="), 0);
    worker_stop(w);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* A task an older weft submitted has no `hd` flag (the "has dependents" flag added later): a new
 * worker that completes it must still read its dependents list and release them. It read the
 * list only when the flag was set, so the dependent waited forever (the test's timeout). */
TEST_T(dependents_of_a_task_without_the_hd_flag_are_released, 60)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    weft_broker_task_t t[] = {
        {.id = "old", .cmd = "true"},
        {.id = "dep", .cmd = "true", .deps = (const char *[]){"old"}, .ndeps = 1},
    };
    CHECK_EQ(weft_broker_submit(b, t, 2), 0);
    check_state(b, "dep", WEFT_BROKER_WAITING);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "redis-cli -p %s HDEL weft:weft:t:old hd >/dev/null",
             strrchr(r.url, ':') + 1);
    CHECK_EQ(system(cmd), 0); /* as an older weft wrote it */
    pid_t w = worker_start(&r, "w1", NULL, NULL);
    CHECK_EQ(weft_broker_wait(b, 2, -1), 0);
    worker_stop(w);
    check_state(b, "dep", WEFT_BROKER_DONE);
    weft_broker_destroy(b);
    redis_stop(&r);
}

/* RUNNING events cost Redis an XADD per task: the workers write them only while someone follows
 * the events (weft_broker_events_last / weft_broker_events). The other events always come. A
 * task's fields left at their default at submit read as before (status -EINPROGRESS, no worker,
 * no value). */
TEST_T(running_events_only_while_followed, 60)
{
    redis_t r;
    redis_start(&r);
    weft_broker_t *b;
    connect_fresh(&r, &b, NULL);
    weft_broker_task_t t[6];
    char ids[6][8];
    for (int i = 0; i < 6; i++) {
        snprintf(ids[i], sizeof ids[i], "%c%d", i < 3 ? 'q' : 'f', i);
        t[i] = (weft_broker_task_t){.id = ids[i], .fn = "tb.echo", .arg = "0", .len = 1};
    }
    CHECK_EQ(weft_broker_submit(b, t, 3), 0);
    weft_broker_result_t res = result_of(b, "q0");
    CHECK_EQ(res.state, WEFT_BROKER_QUEUED);
    CHECK_EQ(res.status, -EINPROGRESS);
    CHECK_EQ(res.deliveries, 0);
    CHECK_EQ(res.attempts, 0);
    CHECK_STR_EQ(res.worker, "");
    CHECK_EQ(res.value.len, 0);
    weft_broker_result_free(&res);
    pid_t w = worker_start(&r, "w1", NULL, NULL);
    CHECK_EQ(weft_broker_wait(b, 3, -1), 0); /* reads no events: not following */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(count_events(b, ids[i], WEFT_BROKER_RUNNING), 0);
        CHECK_EQ(count_events(b, ids[i], WEFT_BROKER_DONE), 1);
        res = result_of(b, ids[i]);
        CHECK_EQ(res.status, 0);
        CHECK_STR_EQ(res.worker, "w1");
        CHECK_STR_EQ(res.value.data, "0"); /* an argument "0" is kept */
        weft_broker_result_free(&res);
    }
    follow(b); /* (count_events read them too) */
    CHECK_EQ(weft_broker_submit(b, t + 3, 3), 0);
    CHECK_EQ(weft_broker_wait(b, 6, -1), 0);
    worker_stop(w);
    for (int i = 3; i < 6; i++) {
        CHECK_EQ(count_events(b, ids[i], WEFT_BROKER_RUNNING), 1);
        CHECK_EQ(count_events(b, ids[i], WEFT_BROKER_DONE), 1);
    }
    weft_broker_destroy(b);
    redis_stop(&r);
}
