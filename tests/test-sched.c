/* Tests for the hybrid scheduler (weft/sched.h): the pure policies with fake clocks and injected
 * measurements (src/sched/sched-int.h), then the scheduler itself over real executors. */
#include "harness.h"

#include "sched/sched-int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/loop.h>
#include <weft/procpool.h>
#include <weft/sched.h>
#include <weft/sys.h>

#define MS 1000000ull

#if defined(__SANITIZE_ADDRESS__) || defined(WEFT_TSAN)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

/* libuv opens a process-wide pipe the first time a loop is created and keeps it; make that
 * happen before the tests so that the per-test descriptor check sees only their own. */
__attribute__((constructor)) static void warm_up(void)
{
    weft_loop_opts_t o = {.own_thread = true};
    weft_loop_t *loop;
    if (weft_loop_create(&loop, &o) == 0) weft_loop_destroy(loop);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- pure policies ----------------------------------------------------------------------- */

TEST(ready_queue_pops_highest_key_first)
{
    weft__rq_t q = {0};
    long n = weft_test_scale(20000);
    uint64_t rng = 12345;
    for (long i = 0; i < n; i++)
        CHECK_EQ(weft__rq_push(&q, (int64_t)(weft_rand(&rng) % 1000) - 500, (uint32_t)i, 0), 0);
    int64_t last = INT64_MAX;
    weft__rq_ent_t e;
    long popped = 0;
    while (weft__rq_pop(&q, &e)) {
        CHECK(e.key <= last);
        last = e.key;
        popped++;
    }
    CHECK_EQ(popped, n);
    weft__rq_free(&q);
}

TEST(aging_key_lets_a_long_wait_beat_a_higher_priority)
{
    uint64_t aging = 100 * MS; /* +1 priority per 100 ms queued */
    /* Priority 0 queued at t=0 against priority 5 queued at t=400 ms: 0 + 4 < 5 at any later
     * time t, so the later, higher one wins... */
    CHECK(weft__sched_key(5, 400 * MS, aging) > weft__sched_key(0, 0, aging));
    /* ...but against priority 5 queued at t=600 ms: 0 + 6 > 5: the old one wins. */
    CHECK(weft__sched_key(5, 600 * MS, aging) < weft__sched_key(0, 0, aging));
    /* Equal priorities: first come, first served. */
    CHECK(weft__sched_key(3, 10, aging) > weft__sched_key(3, 11, aging));
}

static const char *why(const weft__route_cfg_t *cfg, const weft__class_t *c)
{
    static char buf[256];
    weft__route_why(cfg, c, buf, sizeof buf);
    return buf;
}

TEST(routing_by_type_with_fake_clock)
{
    weft__route_cfg_t cfg;
    weft__route_cfg_default(&cfg);
    cfg.io_loop_threshold = 8;
    weft__class_t c;
    weft__class_init(&c, "k");
    bool probe;
    unsigned all = WEFT__FORM_THREAD | WEFT__FORM_PROC | WEFT__FORM_ASYNC;
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_CPU, all, 0, 0, &probe), WEFT_ROUTE_PROCS);
    CHECK(strstr(why(&cfg, &c), "processes") != NULL);
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_CPU, WEFT__FORM_THREAD, 0, 0, &probe),
             WEFT_ROUTE_THREADS);
    /* IO: threads while few are in flight, the loop from the threshold on. */
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_IO, all, 7, 0, &probe), WEFT_ROUTE_THREADS);
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_IO, all, 8, 0, &probe), WEFT_ROUTE_LOOP);
    CHECK(strstr(why(&cfg, &c), "8 in flight") != NULL);
    /* No async form: threads however many are in flight. */
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_IO, WEFT__FORM_THREAD | WEFT__FORM_PROC, 100, 0,
                              &probe),
             WEFT_ROUTE_THREADS);
    /* Missing executor: a CPU task with only a process form and no process pool. */
    cfg.has[WEFT_ROUTE_PROCS] = false;
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_CPU, WEFT__FORM_PROC, 0, 0, &probe),
             WEFT_ROUTE_NONE);
}

TEST(routing_auto_follows_measurements_with_hysteresis_and_reprobes)
{
    weft__route_cfg_t cfg;
    weft__route_cfg_default(&cfg);
    weft__class_t c;
    weft__class_init(&c, "auto");
    unsigned forms = WEFT__FORM_THREAD | WEFT__FORM_PROC;
    bool probe;
    uint64_t now = 0;
    /* Unmeasured: probed on threads until min_samples. */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_AUTO, forms, 0, now, &probe),
                 WEFT_ROUTE_THREADS);
        CHECK(probe);
        CHECK(strstr(why(&cfg, &c), "measuring") != NULL);
        weft__route_sample(&cfg, &c, 95 * MS, 100 * MS, now); /* CPU-bound: 0.95 */
        now += 10 * MS;
    }
    CHECK_EQ(c.mode, WEFT__MODE_CPU);
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_AUTO, forms, 0, now, &probe), WEFT_ROUTE_PROCS);
    CHECK(!probe);
    CHECK(strstr(why(&cfg, &c), "cpu-bound") != NULL);
    /* Re-probe every probe_every tasks sent elsewhere (one was just sent). */
    int probes = 0;
    for (uint32_t i = 2; i < cfg.probe_every; i++) {
        weft_sched_route_t r = weft__route_pick(&cfg, &c, WEFT_SCHED_AUTO, forms, 0, now, &probe);
        probes += r == WEFT_ROUTE_THREADS;
    }
    CHECK_EQ(probes, 0);
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_AUTO, forms, 0, now, &probe),
             WEFT_ROUTE_THREADS);
    CHECK(probe);
    /* ...or when the last sample is older than probe_ns, whatever the count. */
    weft__route_sample(&cfg, &c, 95 * MS, 100 * MS, now);
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_AUTO, forms, 0, now + cfg.probe_ns, &probe),
             WEFT_ROUTE_THREADS);
    CHECK(probe);
    /* Hysteresis: a ratio between hi_leave and hi_enter keeps the CPU mode. */
    for (int i = 0; i < 20; i++) weft__route_sample(&cfg, &c, 55 * MS, 100 * MS, now);
    CHECK(c.ratio > 0.5 && c.ratio < 0.6);
    CHECK_EQ(c.mode, WEFT__MODE_CPU);
    /* The class changes: it now waits. The EWMA passes through the middle band (mixed:
     * threads) and ends IO-bound. */
    bool saw_mixed = false;
    for (int i = 0; i < 30; i++) {
        if (weft__route_sample(&cfg, &c, 2 * MS, 100 * MS, now) && c.mode == WEFT__MODE_MIXED)
            saw_mixed = true;
    }
    CHECK(saw_mixed);
    CHECK_EQ(c.mode, WEFT__MODE_IO);
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_AUTO, forms, 0, now, &probe),
             WEFT_ROUTE_THREADS);
    CHECK(strstr(why(&cfg, &c), "io-bound") != NULL);
    /* Fixed routes: AUTO stays on threads whatever was measured. */
    cfg.fixed = true;
    c.mode = WEFT__MODE_CPU;
    CHECK_EQ(weft__route_pick(&cfg, &c, WEFT_SCHED_AUTO, forms, 0, now, &probe),
             WEFT_ROUTE_THREADS);
}

TEST(backoff_is_full_jitter_within_bounds)
{
    uint64_t rng = 99, base = 10 * MS, max = 500 * MS;
    for (int k = 1; k <= 10; k++) {
        uint64_t cap = base << (k - 1);
        if (cap > max) cap = max;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 2000; i++) {
            uint64_t d = weft_backoff(base, max, k, &rng);
            CHECK_MSG(d <= cap, "attempt %d: %llu > cap %llu", k, (unsigned long long)d,
                      (unsigned long long)cap);
            if (d < lo) lo = d;
            if (d > hi) hi = d;
        }
        /* Full jitter: spread over the whole [0, cap] range. */
        CHECK(lo < cap / 10);
        CHECK(hi > cap - cap / 10);
    }
    CHECK_EQ(weft_backoff(0, max, 3, &rng), 0);
}

TEST(retry_only_on_listed_errors)
{
    int on[] = {-EIO};
    CHECK(weft__retry_on(on, 1, -EIO));
    CHECK(!weft__retry_on(on, 1, -ETIMEDOUT));
    CHECK(!weft__retry_on(on, 1, 0));
    /* Default: the transient set. */
    CHECK(weft__retry_on(NULL, 0, -ETIMEDOUT));
    CHECK(weft__retry_on(NULL, 0, WEFT_ECRASHED));
    CHECK(!weft__retry_on(NULL, 0, -EINVAL));
    CHECK(!weft__retry_on(NULL, 0, WEFT_ESKIPPED));
}

TEST(thread_sizing_follows_littles_law_and_blocking_ratio)
{
    char why[256];
    int low = 0;
    weft__tsize_in_t in = {.current = 2,
                           .min = 2,
                           .max = 64,
                           .cpus = 2,
                           .queued = 100,
                           .running = 2,
                           .blocking = 0.95,
                           .busy = 2,
                           .wait_ns = 50 * MS};
    /* Work waits and tasks block 95 % of the time: 2 CPUs keep 40 threads busy. */
    int n = weft__size_threads(&in, &low, why, sizeof why);
    CHECK_EQ(n, 40);
    CHECK(strstr(why, "blocking ratio 0.95") != NULL);
    /* CPU-bound tasks (blocking 0): no more threads than CPUs, however long the queue. */
    in.blocking = 0;
    CHECK_EQ(weft__size_threads(&in, &low, why, sizeof why), 2);
    /* Only as many threads as there is work (queued + running). */
    in.blocking = 0.95;
    in.queued = 3;
    CHECK_EQ(weft__size_threads(&in, &low, why, sizeof why), 5);
    /* Idle: shrinks only after 5 ticks, by at most half. */
    in = (weft__tsize_in_t){.current = 40, .min = 2, .max = 64, .cpus = 2, .blocking = 0.9};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(weft__size_threads(&in, &low, why, sizeof why), 40);
        in.low_ticks = low;
    }
    CHECK_EQ(weft__size_threads(&in, &low, why, sizeof why), 20);
    CHECK(strstr(why, "idle") != NULL);
    CHECK_EQ(low, 0);
    /* Stuck threads (timed-out tasks still running) do not count as capacity. */
    in = (weft__tsize_in_t){.current = 4,
                            .min = 2,
                            .max = 64,
                            .cpus = 2,
                            .queued = 10,
                            .running = 0,
                            .stuck = 4,
                            .blocking = 0.9};
    CHECK(weft__size_threads(&in, &low, why, sizeof why) > 4);
}

TEST(process_sizing_follows_cpus_and_load)
{
    char why[256];
    int low = 0;
    weft__psize_in_t in = {.current = 4, .cpus = 2, .queued = 10, .running = 4};
    CHECK_EQ(weft__size_procs(&in, &low, why, sizeof why), 2); /* quota dropped to 2 CPUs */
    CHECK(strstr(why, "usable") != NULL);
    in = (weft__psize_in_t){.current = 1, .cpus = 4, .queued = 10, .running = 1};
    CHECK_EQ(weft__size_procs(&in, &low, why, sizeof why), 4);
    in = (weft__psize_in_t){.current = 4, .cpus = 4, .queued = 0, .running = 1};
    int n = 4;
    for (int i = 0; i < 19; i++) {
        n = weft__size_procs(&in, &low, why, sizeof why);
        in.low_ticks = low;
    }
    CHECK_EQ(n, 4);
    CHECK_EQ(weft__size_procs(&in, &low, why, sizeof why), 1);
}

TEST(toposort_orders_and_names_a_cycle)
{
    /* 0 <- 1 <- 2, 3 free */
    int d1[] = {0}, d2[] = {1};
    const int *deps[] = {NULL, d1, d2, NULL};
    size_t nd[] = {0, 1, 1, 0};
    int order[4], cyc[4];
    size_t nc;
    CHECK_EQ(weft__toposort(4, deps, nd, order, cyc, &nc), 0);
    CHECK_EQ(order[0], 0);
    CHECK_EQ(order[1], 1);
    CHECK_EQ(order[2], 2);
    CHECK_EQ(order[3], 3);
    /* 0 -> 2 -> 1 -> 0 (each depends on the next), 3 depends on the cycle. */
    int e0[] = {2}, e1[] = {0}, e2[] = {1}, e3[] = {0};
    const int *deps2[] = {e0, e1, e2, e3};
    size_t nd2[] = {1, 1, 1, 1};
    CHECK_EQ(weft__toposort(4, deps2, nd2, order, cyc, &nc), WEFT_ECYCLE);
    CHECK_EQ(nc, 3);
    for (size_t i = 0; i < nc; i++) CHECK(cyc[i] != 3);
}

/* ---- the scheduler ----------------------------------------------------------------------- */

static weft_sched_t *mk(int procs, int tmin, int tmax, int loop_max)
{
    weft_sched_opts_t o = {.procs = procs,
                           .threads_min = tmin,
                           .threads_max = tmax,
                           .loop_max = loop_max,
                           .tick_ns = 20 * MS,
                           .name = "t"};
    weft_sched_t *s = NULL;
    int rc = weft_sched_create(&s, &o);
    CHECK_MSG(rc == 0, "weft_sched_create: %s", weft_strerror(rc));
    return s;
}

static int add_one(void *arg, weft_ctx_t *ctx)
{
    int *v = malloc(sizeof *v);
    *v = *(int *)arg + 1;
    weft_ctx_set_value(ctx, v, sizeof *v, free);
    return 0;
}

static int fail_with(void *arg, weft_ctx_t *ctx)
{
    weft_ctx_set_message(ctx, "failing on purpose");
    return *(int *)arg;
}

TEST(thread_tasks_return_values_and_errors)
{
    weft_sched_t *s = mk(-1, 2, 2, -1);
    int args[100];
    weft_future_t *fs[100];
    for (int i = 0; i < 100; i++) {
        args[i] = i;
        weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = add_one, .arg = &args[i]};
        CHECK_EQ(weft_sched_submit(s, &t, NULL, &fs[i]), 0);
    }
    int bad = -EPROTO;
    weft_sched_task_t tf = {.type = WEFT_SCHED_IO, .fn = fail_with, .arg = &bad};
    weft_future_t *ff;
    weft_sched_id_t id;
    CHECK_EQ(weft_sched_submit(s, &tf, &id, &ff), 0);
    CHECK_EQ(weft_future_wait_all(fs, 100, -1), 0);
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(weft_future_status(fs[i]), 0);
        CHECK_EQ(*(int *)weft_future_value(fs[i], NULL), i + 1);
        weft_future_release(fs[i]);
    }
    CHECK_EQ(weft_future_wait(ff, -1), 0);
    CHECK_EQ(weft_future_status(ff), -EPROTO);
    CHECK_STR_EQ(weft_future_message(ff), "failing on purpose");
    weft_future_release(ff);
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    weft_sched_info_t in;
    CHECK_EQ(weft_sched_info(s, id, &in), 0);
    CHECK_EQ(in.state, WEFT_TASK_FAILED);
    CHECK_EQ(in.status, -EPROTO);
    weft_sched_stats_t st;
    weft_sched_stats(s, &st);
    CHECK_EQ(st.succeeded, 100);
    CHECK_EQ(st.failed, 1);
    CHECK_EQ(st.exec[WEFT_ROUTE_THREADS].done, 100);
    /* No form, bad priority: refused. */
    weft_sched_task_t none = {.type = WEFT_SCHED_IO};
    CHECK_EQ(weft_sched_submit(s, &none, NULL, NULL), -EINVAL);
    weft_sched_task_t hi = {.fn = add_one, .arg = &args[0], .priority = 2000000};
    CHECK_EQ(weft_sched_submit(s, &hi, NULL, NULL), -EINVAL);
    weft_sched_destroy(s);
}

/* A gate: tasks block on it until the test opens it. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int order_log[64];
static atomic_int order_n;

static atomic_int blockers_in;

static int blocker(void *arg, weft_ctx_t *ctx)
{
    atomic_fetch_add(&blockers_in, 1);
    pthread_mutex_lock(&gate_mu);
    while (!gate_open) pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    return 0;
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static int log_order(void *arg, weft_ctx_t *ctx)
{
    int i = atomic_fetch_add(&order_n, 1);
    if (i < 64) order_log[i] = (int)(intptr_t)arg;
    return 0;
}

/* Waits until n blocker tasks are inside their function. */
static void wait_running(weft_sched_t *s, int n)
{
    (void)s;
    for (int i = 0; i < 5000; i++) {
        if (atomic_load(&blockers_in) >= n) return;
        sleep_ms(1);
    }
    CHECK_MSG(false, "task never started");
}

TEST(late_high_priority_task_runs_next)
{
    weft_sched_t *s = mk(-1, 1, 1, -1);
    weft_sched_task_t b = {.type = WEFT_SCHED_IO, .fn = blocker};
    CHECK_EQ(weft_sched_submit(s, &b, NULL, NULL), 0);
    wait_running(s, 1);
    /* The only worker is busy: everything below waits in the scheduler's queue, none of it in
     * the pool's (no prefetching). */
    for (int i = 1; i <= 20; i++) {
        weft_sched_task_t t = {
            .type = WEFT_SCHED_IO, .fn = log_order, .arg = (void *)(intptr_t)i, .priority = 0};
        CHECK_EQ(weft_sched_submit(s, &t, NULL, NULL), 0);
    }
    weft_sched_task_t urgent = {
        .type = WEFT_SCHED_IO, .fn = log_order, .arg = (void *)100, .priority = 10};
    CHECK_EQ(weft_sched_submit(s, &urgent, NULL, NULL), 0);
    weft_pool_stats_t ps;
    weft_pool_stats(weft_sched_thread_pool(s), &ps);
    CHECK_EQ(ps.queued, 0);
    open_gate();
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    CHECK_EQ(atomic_load(&order_n), 21);
    CHECK_EQ(order_log[0], 100);
    for (int i = 1; i <= 20; i++) CHECK_EQ(order_log[i], i); /* equal priorities: FIFO */
    weft_sched_destroy(s);
}

TEST(aging_runs_a_long_waiting_low_priority_task_first)
{
    weft_sched_opts_t o = {
        .procs = -1, .threads_min = 1, .threads_max = 1, .loop_max = -1, .aging_ns = 2 * MS};
    weft_sched_t *s;
    CHECK_EQ(weft_sched_create(&s, &o), 0);
    weft_sched_task_t b = {.type = WEFT_SCHED_IO, .fn = blocker};
    CHECK_EQ(weft_sched_submit(s, &b, NULL, NULL), 0);
    wait_running(s, 1);
    weft_sched_task_t low = {.type = WEFT_SCHED_IO, .fn = log_order, .arg = (void *)1};
    CHECK_EQ(weft_sched_submit(s, &low, NULL, NULL), 0);
    sleep_ms(40); /* +20 priority levels at 2 ms each */
    weft_sched_task_t high = {
        .type = WEFT_SCHED_IO, .fn = log_order, .arg = (void *)2, .priority = 5};
    CHECK_EQ(weft_sched_submit(s, &high, NULL, NULL), 0);
    open_gate();
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    CHECK_EQ(order_log[0], 1);
    CHECK_EQ(order_log[1], 2);
    weft_sched_destroy(s);
}

static atomic_int runs[8];

static int count_run(void *arg, weft_ctx_t *ctx)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&runs[i], 1);
    return 0;
}

static atomic_bool flaky_ok;

static int flaky(void *arg, weft_ctx_t *ctx)
{
    atomic_fetch_add(&runs[(int)(intptr_t)arg], 1);
    if (atomic_load(&flaky_ok)) return 0;
    weft_ctx_set_message(ctx, "not today");
    return -EIO;
}

static int graph_add(weft_sched_graph_t *g, const char *name, weft_task_fn fn, int slot)
{
    weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = fn, .arg = (void *)(intptr_t)slot};
    int i = weft_sched_graph_add(g, name, &t);
    CHECK_MSG(i >= 0, "graph_add %s: %d", name, i);
    return i;
}

TEST(graph_refuses_a_cycle_naming_it)
{
    weft_sched_t *s = mk(-1, 1, 1, -1);
    weft_sched_graph_t *g;
    CHECK_EQ(weft_sched_graph_create(&g), 0);
    int a = graph_add(g, "fetch", count_run, 0), b = graph_add(g, "build", count_run, 0),
        c = graph_add(g, "test", count_run, 0), d = graph_add(g, "lint", count_run, 0);
    CHECK_EQ(weft_sched_graph_add(g, "build", &(weft_sched_task_t){.fn = count_run}), -EEXIST);
    CHECK_EQ(weft_sched_graph_depend(g, b, a), 0);
    CHECK_EQ(weft_sched_graph_depend(g, c, b), 0);
    CHECK_EQ(weft_sched_graph_depend(g, b, c), 0); /* build <-> test */
    CHECK_EQ(weft_sched_graph_depend(g, d, c), 0);
    weft_buf_t why;
    weft_buf_init(&why, 0);
    CHECK_EQ(weft_sched_graph_submit(s, g, &why), WEFT_ECYCLE);
    CHECK_MSG(strcmp(why.data, "dependency cycle: build -> test -> build") == 0 ||
                  strcmp(why.data, "dependency cycle: test -> build -> test") == 0,
              "why: %s", why.data);
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    CHECK_EQ(atomic_load(&runs[0]), 0); /* nothing ran */
    weft_sched_stats_t st;
    weft_sched_stats(s, &st);
    CHECK_EQ(st.submitted, 0);
    weft_buf_free(&why);
    weft_sched_graph_destroy(g);
    weft_sched_destroy(s);
}

TEST(failure_skips_dependents_with_cause_and_resume_reruns_only_those)
{
    char state[512];
    snprintf(state, sizeof state, "%s/state", weft_test_tmpdir());
    for (int round = 0; round < 2; round++) {
        weft_sched_t *s = mk(-1, 2, 2, -1);
        weft_sched_graph_t *g;
        CHECK_EQ(weft_sched_graph_create(&g), 0);
        /* fetch -> build -> test -> deploy; lint independent */
        int fetch = graph_add(g, "fetch", count_run, 0);
        int build = graph_add(g, "build", flaky, 1);
        int test = graph_add(g, "test", count_run, 2);
        int deploy = graph_add(g, "deploy", count_run, 3);
        int lint = graph_add(g, "lint", count_run, 4);
        weft_sched_graph_depend(g, build, fetch);
        weft_sched_graph_depend(g, test, build);
        weft_sched_graph_depend(g, deploy, test);
        weft_buf_t why;
        weft_buf_init(&why, 0);
        if (round == 1) {
            atomic_store(&flaky_ok, true);
            CHECK_EQ(weft_sched_graph_resume(g, state, &why), 0);
        }
        CHECK_EQ(weft_sched_graph_submit(s, g, &why), 0);
        int rc = weft_sched_graph_wait(g, -1);
        weft_sched_info_t in;
        if (round == 0) {
            CHECK_EQ(rc, 1);
            weft_sched_graph_info(g, build, &in);
            CHECK_EQ(in.state, WEFT_TASK_FAILED);
            weft_sched_graph_info(g, test, &in);
            CHECK_EQ(in.state, WEFT_TASK_SKIPPED);
            CHECK_EQ(in.status, WEFT_ESKIPPED);
            const char *m = weft_future_message(weft_sched_graph_future(g, test));
            CHECK_MSG(m && strstr(m, "'build' failed: not today"), "message: %s", m);
            m = weft_future_message(weft_sched_graph_future(g, deploy));
            CHECK_MSG(m && strstr(m, "'build' failed"), "transitive cause: %s", m);
            weft_sched_graph_info(g, lint, &in);
            CHECK_EQ(in.state, WEFT_TASK_DONE);
            CHECK_EQ(weft_sched_graph_save(g, state), 0);
        } else {
            CHECK_EQ(rc, 0);
            weft_sched_graph_info(g, fetch, &in);
            CHECK_EQ(in.state, WEFT_TASK_RESUMED);
            weft_sched_graph_info(g, deploy, &in);
            CHECK_EQ(in.state, WEFT_TASK_DONE);
        }
        weft_buf_free(&why);
        weft_sched_graph_destroy(g);
        weft_sched_destroy(s);
    }
    /* fetch and lint ran once (round 0 only); build twice; test and deploy once (round 1). */
    CHECK_EQ(atomic_load(&runs[0]), 1);
    CHECK_EQ(atomic_load(&runs[1]), 2);
    CHECK_EQ(atomic_load(&runs[2]), 1);
    CHECK_EQ(atomic_load(&runs[3]), 1);
    CHECK_EQ(atomic_load(&runs[4]), 1);
}

TEST(dependencies_by_id_and_by_future)
{
    weft_sched_t *s = mk(-1, 2, 2, -1);
    weft_future_t *ext = weft_future_create();
    weft_sched_id_t a;
    weft_sched_task_t ta = {.type = WEFT_SCHED_IO, .fn = count_run, .arg = (void *)0};
    CHECK_EQ(weft_sched_submit(s, &ta, &a, NULL), 0);
    weft_sched_task_t tb = {.type = WEFT_SCHED_IO,
                            .fn = count_run,
                            .arg = (void *)1,
                            .deps = &a,
                            .ndeps = 1,
                            .dep_futures = &ext,
                            .ndep_futures = 1};
    weft_future_t *fb;
    CHECK_EQ(weft_sched_submit(s, &tb, NULL, &fb), 0);
    sleep_ms(20);
    CHECK(!weft_future_done(fb)); /* still waiting for ext */
    weft_future_complete(ext, 0, NULL, 0, NULL);
    CHECK_EQ(weft_future_wait(fb, -1), 0);
    CHECK_EQ(weft_future_status(fb), 0);
    weft_future_release(fb);
    /* A failed dependency future skips the task; so does a failed dependency id. */
    weft_future_t *bad = weft_future_create();
    weft_future_fail(bad, -EPIPE, "upstream broke");
    weft_sched_task_t tc = {.type = WEFT_SCHED_IO,
                            .fn = count_run,
                            .arg = (void *)2,
                            .dep_futures = &bad,
                            .ndep_futures = 1};
    weft_future_t *fc;
    CHECK_EQ(weft_sched_submit(s, &tc, NULL, &fc), 0);
    CHECK_EQ(weft_future_wait(fc, -1), 0);
    CHECK_EQ(weft_future_status(fc), WEFT_ESKIPPED);
    CHECK(strstr(weft_future_message(fc), "upstream broke") != NULL);
    weft_future_release(fc);
    int e = -EBADMSG;
    weft_sched_id_t fid;
    weft_sched_task_t tf = {.type = WEFT_SCHED_IO, .fn = fail_with, .arg = &e, .name = "parse"};
    CHECK_EQ(weft_sched_submit(s, &tf, &fid, NULL), 0);
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    weft_sched_task_t td = {
        .type = WEFT_SCHED_IO, .fn = count_run, .arg = (void *)3, .deps = &fid, .ndeps = 1};
    weft_future_t *fd;
    CHECK_EQ(weft_sched_submit(s, &td, NULL, &fd), 0);
    CHECK_EQ(weft_future_wait(fd, -1), 0);
    CHECK_EQ(weft_future_status(fd), WEFT_ESKIPPED);
    weft_future_release(fd);
    /* Unknown ids are refused. */
    weft_sched_id_t nope = 0x7777777700000001ull;
    weft_sched_task_t tn = {.fn = count_run, .deps = &nope, .ndeps = 1};
    CHECK_EQ(weft_sched_submit(s, &tn, NULL, NULL), -ENOENT);
    CHECK_EQ(atomic_load(&runs[2]), 0);
    CHECK_EQ(atomic_load(&runs[3]), 0);
    weft_future_release(ext);
    weft_future_release(bad);
    weft_sched_destroy(s);
}

static atomic_int flaky_left;

static int fail_n_times(void *arg, weft_ctx_t *ctx)
{
    atomic_fetch_add(&runs[0], 1);
    if (atomic_fetch_sub(&flaky_left, 1) > 0) {
        weft_ctx_set_message(ctx, "transient");
        return *(int *)arg;
    }
    return 0;
}

TEST(retries_count_attempts_keep_errors_and_respect_the_list)
{
    weft_sched_t *s = mk(-1, 2, 2, -1);
    int on[] = {-EIO, -EAGAIN};
    weft_sched_retry_t pol = {
        .attempts = 4, .backoff_ns = 1 * MS, .backoff_max_ns = 5 * MS, .on = on, .n_on = 2};
    int eio = -EIO;
    /* Fails twice, then succeeds: 3 attempts, both errors kept. */
    atomic_store(&flaky_left, 2);
    weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = fail_n_times, .arg = &eio, .retry = &pol};
    weft_sched_id_t id;
    weft_future_t *f;
    CHECK_EQ(weft_sched_submit(s, &t, &id, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), 0);
    weft_future_release(f);
    weft_sched_info_t in;
    CHECK_EQ(weft_sched_info(s, id, &in), 0);
    CHECK_EQ(in.attempts, 3);
    CHECK_EQ(atomic_load(&runs[0]), 3);
    /* Always fails: gives up after 4 attempts, message lists each error. */
    atomic_store(&flaky_left, 100);
    CHECK_EQ(weft_sched_submit(s, &t, &id, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), -EIO);
    CHECK_MSG(strstr(weft_future_message(f), "after 4 attempts: EIO, EIO, EIO, EIO"), "msg: %s",
              weft_future_message(f));
    weft_future_release(f);
    CHECK_EQ(atomic_load(&runs[0]), 7);
    /* An error not on the list: one attempt only. */
    int einval = -EINVAL;
    atomic_store(&flaky_left, 100);
    t.arg = &einval;
    CHECK_EQ(weft_sched_submit(s, &t, &id, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), -EINVAL);
    weft_future_release(f);
    CHECK_EQ(atomic_load(&runs[0]), 8);
    weft_sched_stats_t st;
    weft_sched_stats(s, &st);
    CHECK_EQ(st.exec[WEFT_ROUTE_THREADS].retried, 5);
    weft_sched_destroy(s);
}

static int spin_until_cancelled(void *arg, weft_ctx_t *ctx)
{
    atomic_int *saw = arg;
    uint64_t end = weft_now_ns() + 10000 * MS;
    while (!weft_ctx_cancelled(ctx) && weft_now_ns() < end) sleep_ms(1);
    atomic_store(saw, weft_ctx_cancelled(ctx) ? 1 : 2);
    return -ECANCELED;
}

TEST(timeout_on_threads_sets_the_cancel_token_and_waits_for_the_thread)
{
    weft_sched_t *s = mk(-1, 1, 1, -1);
    atomic_int saw = 0;
    weft_sched_task_t t = {
        .type = WEFT_SCHED_IO, .fn = spin_until_cancelled, .arg = &saw, .timeout_ns = 50 * MS};
    weft_future_t *f;
    uint64_t t0 = weft_now_ns();
    CHECK_EQ(weft_sched_submit(s, &t, NULL, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), -ETIMEDOUT);
    CHECK(weft_now_ns() - t0 < 5000 * MS);
    CHECK(strstr(weft_future_message(f), "cannot be killed") != NULL);
    CHECK_EQ(atomic_load(&saw), 1); /* DONE: the thread saw the token and returned */
    weft_future_release(f);
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    weft_sched_destroy(s);
}

/* Process-pool functions for the tests below; they run in worker processes. */
static int pf_pid_then_hang(const void *arg, size_t len, weft_buf_t *out)
{
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)arg);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
    }
    for (;;) sleep_ms(1000);
    return 0;
}
WEFT_PROCPOOL_FN("test.pid_then_hang", pf_pid_then_hang)

static int pf_burn(const void *arg, size_t len, weft_buf_t *out)
{
    volatile uint64_t x = 0;
    uint64_t end = weft_now_ns() + 20 * MS;
    while (weft_now_ns() < end) x += 1;
    (void)x;
    return weft_buf_printf(out, "burned in %d", (int)getpid());
}
WEFT_PROCPOOL_FN("test.burn", pf_burn)

static int tf_burn(void *arg, weft_ctx_t *ctx)
{
    volatile uint64_t x = 0;
    uint64_t end = weft_thread_cpu_ns() + 20 * MS;
    while (weft_thread_cpu_ns() < end) x += 1;
    (void)x;
    return 0;
}

static int tf_nap(void *arg, weft_ctx_t *ctx)
{
    sleep_ms(20);
    return 0;
}

static bool pid_gone(int pid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen(p, "r");
        if (!f) return true;
        char buf[256] = {0};
        fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        (void)buf;
        sleep_ms(10);
    }
    return false;
}

/* A CPU task that writes its worker's pid to `path` (filled in: a file in the test's directory)
 * and hangs. */
static weft_sched_task_t pid_then_hang_task(char *path, size_t size, uint64_t timeout_ns)
{
    snprintf(path, size, "%s/pid", weft_test_tmpdir());
    return (weft_sched_task_t){.type = WEFT_SCHED_CPU,
                               .proc_fn = "test.pid_then_hang",
                               .proc_arg = path,
                               .proc_len = strlen(path),
                               .timeout_ns = timeout_ns};
}

TEST(timeout_on_processes_kills_the_worker)
{
    weft_sched_t *s = mk(1, 1, 1, -1);
    char path[512];
    weft_sched_task_t t = pid_then_hang_task(path, sizeof path, 200 * MS);
    weft_future_t *f;
    CHECK_EQ(weft_sched_submit(s, &t, NULL, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), -ETIMEDOUT);
    weft_future_release(f);
    FILE *pf = fopen(path, "r");
    CHECK(pf != NULL);
    int pid = 0;
    CHECK_EQ(fscanf(pf, "%d", &pid), 1);
    fclose(pf);
    CHECK(pid > 0 && pid != getpid());
    CHECK_MSG(pid_gone(pid), "worker %d still exists (running or zombie)", pid);
    /* The pool replaced it and keeps working. */
    weft_sched_task_t b = {.type = WEFT_SCHED_CPU, .proc_fn = "test.burn"};
    CHECK_EQ(weft_sched_submit(s, &b, NULL, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), 0);
    size_t n;
    const char *v = weft_future_value(f, &n);
    CHECK(v && strncmp(v, "burned in", 9) == 0);
    weft_future_release(f);
    weft_sched_stats_t st;
    weft_sched_stats(s, &st);
    CHECK_EQ(st.exec[WEFT_ROUTE_PROCS].timed_out, 1);
    weft_sched_destroy(s);
}

/* Cancelling a running task on the processes route kills its worker (processes can be killed
 * safely); its dependent is skipped and the pool goes on with a replacement. */
TEST(cancel_running_process_task_kills_it)
{
    weft_sched_t *s = mk(1, 1, 1, -1);
    char path[512];
    weft_sched_task_t t = pid_then_hang_task(path, sizeof path, 0);
    weft_future_t *f, *fd;
    weft_sched_id_t id;
    CHECK_EQ(weft_sched_submit(s, &t, &id, &f), 0);
    weft_sched_task_t d = {.type = WEFT_SCHED_CPU, .proc_fn = "test.burn", .deps = &id, .ndeps = 1};
    CHECK_EQ(weft_sched_submit(s, &d, NULL, &fd), 0);
    int pid = 0;
    while (pid <= 0) { /* the task runs once its pid is in the file */
        FILE *pf = fopen(path, "r");
        if (pf) {
            if (fscanf(pf, "%d", &pid) != 1) pid = 0;
            fclose(pf);
        }
        if (pid <= 0) sleep_ms(5);
    }
    CHECK_EQ(weft_future_cancel(f), -EBUSY);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), -ECANCELED);
    CHECK_MSG(pid_gone(pid), "worker %d still exists (running or zombie)", pid);
    CHECK_EQ(weft_future_wait(fd, -1), 0);
    CHECK_EQ(weft_future_status(fd), WEFT_ESKIPPED);
    weft_future_release(f);
    weft_future_release(fd);
    weft_sched_task_t b = {.type = WEFT_SCHED_CPU, .proc_fn = "test.burn"};
    CHECK_EQ(weft_sched_submit(s, &b, NULL, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), 0);
    weft_future_release(f);
    weft_sched_destroy(s);
}

TEST(timeout_on_the_loop_cancels_the_io)
{
    weft_sched_t *s = mk(-1, 1, 1, 64);
    weft_sched_task_t t = {.type = WEFT_SCHED_IO,
                           .async_fn = weft_sched_async_sleep,
                           .async_arg = (void *)(uintptr_t)10000,
                           .timeout_ns = 50 * MS};
    weft_future_t *f;
    CHECK_EQ(weft_sched_submit(s, &t, NULL, &f), 0);
    CHECK_EQ(weft_future_wait(f, 5000 * MS), 0);
    CHECK_EQ(weft_future_status(f), -ETIMEDOUT);
    /* DONE waits for the operation to finish (weft_sched_aop_done), so it came within 5 s of a
     * 10 s sleep only because the timeout ran the cancel hook. */
    weft_future_release(f);
    /* A short nap completes normally on the loop. */
    t.async_arg = (void *)(uintptr_t)5;
    weft_sched_id_t id;
    CHECK_EQ(weft_sched_submit(s, &t, &id, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), 0);
    weft_future_release(f);
    weft_sched_info_t in;
    CHECK_EQ(weft_sched_info(s, id, &in), 0);
    CHECK_EQ(in.route, WEFT_ROUTE_LOOP);
    weft_sched_destroy(s);
}

TEST(io_goes_to_the_loop_when_many_are_in_flight)
{
    weft_sched_opts_t o = {
        .procs = -1, .threads_min = 2, .threads_max = 2, .loop_max = 256, .io_loop_threshold = 4};
    weft_sched_t *s;
    CHECK_EQ(weft_sched_create(&s, &o), 0);
    enum { N = 64 };
    weft_future_t *fs[N];
    weft_sched_id_t ids[N];
    for (int i = 0; i < N; i++) {
        weft_sched_task_t t = {.type = WEFT_SCHED_IO,
                               .fn = tf_nap,
                               .async_fn = weft_sched_async_sleep,
                               .async_arg = (void *)(uintptr_t)20,
                               .cls = "nap"};
        CHECK_EQ(weft_sched_submit(s, &t, &ids[i], &fs[i]), 0);
    }
    CHECK_EQ(weft_future_wait_all(fs, N, -1), 0);
    int on_loop = 0, on_threads = 0;
    for (int i = 0; i < N; i++) {
        CHECK_EQ(weft_future_status(fs[i]), 0);
        weft_future_release(fs[i]);
        weft_sched_info_t in;
        CHECK_EQ(weft_sched_info(s, ids[i], &in), 0);
        on_loop += in.route == WEFT_ROUTE_LOOP;
        on_threads += in.route == WEFT_ROUTE_THREADS;
    }
    CHECK(on_threads >= 2);  /* the first few */
    CHECK(on_loop >= N - 8); /* the rest, once 4 were in flight on threads */
    weft_buf_t b;
    weft_buf_init(&b, 0);
    CHECK_EQ(weft_sched_stats_text(s, &b), 0);
    CHECK(strstr(b.data, "so the event loop") != NULL);
    weft_buf_free(&b);
    weft_sched_destroy(s);
}

TEST(auto_class_is_measured_then_routed_by_its_behaviour)
{
    weft_sched_t *s = mk(2, 2, 8, -1);
    /* A CPU burner with thread and process forms, typed AUTO. */
    for (int round = 0; round < 3; round++) {
        weft_future_t *fs[12];
        for (int i = 0; i < 12; i++) {
            weft_sched_task_t t = {
                .type = WEFT_SCHED_AUTO, .cls = "burn", .fn = tf_burn, .proc_fn = "test.burn"};
            CHECK_EQ(weft_sched_submit(s, &t, NULL, &fs[i]), 0);
        }
        CHECK_EQ(weft_future_wait_all(fs, 12, -1), 0);
        for (int i = 0; i < 12; i++) weft_future_release(fs[i]);
    }
    /* A sleeper, typed AUTO. */
    weft_future_t *fs[12];
    for (int i = 0; i < 12; i++) {
        weft_sched_task_t t = {
            .type = WEFT_SCHED_AUTO, .cls = "nap", .fn = tf_nap, .proc_fn = "test.burn"};
        CHECK_EQ(weft_sched_submit(s, &t, NULL, &fs[i]), 0);
    }
    CHECK_EQ(weft_future_wait_all(fs, 12, -1), 0);
    for (int i = 0; i < 12; i++) weft_future_release(fs[i]);
    weft_buf_t b;
    weft_buf_init(&b, 0);
    CHECK_EQ(weft_sched_stats_text(s, &b), 0);
    /* The burner ends on processes, the sleeper on threads, each with its reason. */
    const char *burn = strstr(b.data, "  burn ["), *nap = strstr(b.data, "  nap [");
    CHECK_MSG(burn && nap, "%s", b.data);
    CHECK_MSG(strstr(burn, "cpu-bound") && strstr(burn, "-> processes"), "%s", b.data);
    CHECK_MSG(strstr(nap, "io-bound") && strstr(nap, "-> threads"), "%s", b.data);
    weft_buf_free(&b);
    weft_sched_destroy(s);
}

TEST(adaptive_thread_pool_grows_under_blocking_load_and_shrinks_when_idle)
{
    weft_sched_t *s = mk(-1, 1, 16, -1);
    enum { N = 60 };
    weft_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = tf_nap};
        CHECK_EQ(weft_sched_submit(s, &t, NULL, &fs[i]), 0);
    }
    int peak = 0;
    for (int i = 0; i < 2000 && !weft_future_done(fs[N - 1]); i++) {
        weft_sched_stats_t st;
        weft_sched_stats(s, &st);
        if (st.exec[WEFT_ROUTE_THREADS].workers > peak) peak = st.exec[WEFT_ROUTE_THREADS].workers;
        sleep_ms(5);
    }
    CHECK_EQ(weft_future_wait_all(fs, N, -1), 0);
    for (int i = 0; i < N; i++) weft_future_release(fs[i]);
    CHECK_MSG(peak > 4, "peak %d threads", peak);
    int now = peak;
    for (int i = 0; i < 400 && now > 2; i++) {
        sleep_ms(10);
        weft_sched_stats_t st;
        weft_sched_stats(s, &st);
        now = st.exec[WEFT_ROUTE_THREADS].workers;
    }
    CHECK_MSG(now < peak, "still %d threads", now);
    weft_buf_t b;
    weft_buf_init(&b, 0);
    CHECK_EQ(weft_sched_stats_json(s, &b), 0);
    CHECK(b.data[0] == '{' && b.data[b.len - 1] == '}');
    CHECK(strstr(b.data, "\"events\":[{") != NULL);
    CHECK(strstr(b.data, "threads 1 -> ") != NULL);
    CHECK(strstr(b.data, "idle") != NULL);
    weft_buf_free(&b);
    weft_sched_destroy(s);
}

TEST(cancel_a_queued_task_and_shutdown_cancel)
{
    weft_sched_t *s = mk(-1, 1, 1, -1);
    weft_sched_task_t b = {.type = WEFT_SCHED_IO, .fn = blocker};
    CHECK_EQ(weft_sched_submit(s, &b, NULL, NULL), 0);
    wait_running(s, 1);
    weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = count_run, .arg = (void *)0};
    weft_future_t *f1, *f2;
    weft_sched_id_t id1;
    CHECK_EQ(weft_sched_submit(s, &t, &id1, &f1), 0);
    weft_sched_task_t dep = {
        .type = WEFT_SCHED_IO, .fn = count_run, .arg = (void *)1, .deps = &id1, .ndeps = 1};
    CHECK_EQ(weft_sched_submit(s, &dep, NULL, &f2), 0);
    CHECK_EQ(weft_future_cancel(f1), 0);
    CHECK_EQ(weft_future_status(f1), -ECANCELED);
    weft_future_t *f3;
    CHECK_EQ(weft_sched_submit(s, &t, NULL, &f3), 0);
    CHECK_EQ(weft_sched_shutdown(s, WEFT_SHUTDOWN_CANCEL), 0);
    CHECK_EQ(weft_future_wait(f3, -1), 0);
    CHECK_EQ(weft_future_status(f3), -ECANCELED);
    CHECK_EQ(weft_sched_submit(s, &t, NULL, NULL), -ESHUTDOWN);
    open_gate();
    CHECK_EQ(weft_future_wait(f2, -1), 0);
    CHECK(weft_future_status(f2) == WEFT_ESKIPPED || weft_future_status(f2) == -ECANCELED);
    CHECK_EQ(atomic_load(&runs[0]), 0);
    CHECK_EQ(atomic_load(&runs[1]), 0);
    weft_future_release(f1);
    weft_future_release(f2);
    weft_future_release(f3);
    weft_sched_destroy(s);
}

static int noop(void *arg, weft_ctx_t *ctx)
{
    return 0;
}

TEST_T(million_pending_tasks_within_256_bytes_each, 120)
{
    weft_sched_t *s = mk(-1, 1, 1, -1);
    weft_sched_task_t b = {.type = WEFT_SCHED_IO, .fn = blocker};
    CHECK_EQ(weft_sched_submit(s, &b, NULL, NULL), 0);
    wait_running(s, 1);
    long n = weft_test_scale(1000000);
#ifdef SANITIZED
    if (n > 200000) n = 200000;
#endif
    weft_future_t **fs = malloc((size_t)n * sizeof *fs); /* the test's own, not counted */
    CHECK(fs != NULL);
    memset(fs, 0, (size_t)n * sizeof *fs);
    long long rss0 = weft_rss_bytes();
    for (long i = 0; i < n; i++) {
        weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = noop, .priority = (int)(i % 7)};
        CHECK_EQ(weft_sched_submit(s, &t, NULL, &fs[i]), 0);
    }
    long long rss1 = weft_rss_bytes();
    weft_sched_stats_t st;
    weft_sched_stats(s, &st);
    double per_rss = (double)(rss1 - rss0) / (double)n;
    double per_acct = (double)st.task_bytes / (double)n;
    printf("    %ld pending: %.0f bytes/task resident, %.0f bytes/task accounted\n", n, per_rss,
           per_acct);
    CHECK_EQ(st.exec[WEFT_ROUTE_THREADS].queued, (size_t)n);
    CHECK_MSG(per_acct <= 256, "%.0f bytes per pending task (accounted)", per_acct);
#ifndef SANITIZED /* sanitizers add their own bytes to every allocation */
    CHECK_MSG(per_rss <= 256, "%.0f bytes per pending task (resident)", per_rss);
#endif
    open_gate();
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    for (long i = 0; i < n; i++) {
        CHECK(weft_future_status(fs[i]) == 0);
        weft_future_release(fs[i]);
    }
    free(fs);
    weft_sched_destroy(s);
}

/* ---- issue 8: lifetime, timers, remembered ids, deliver-then-release, misuse -------------- */

/* A thread task that ignores its cancel token: it holds `arg` for 300 ms. */
struct hog {
    atomic_int in;      /* copies running now */
    atomic_int max_in;  /* most copies ever running at once */
    atomic_int started; /* copies started */
    int touched;        /* written after the sleep: a use after free if arg was freed */
};

static int hog_fn(void *arg, weft_ctx_t *ctx)
{
    struct hog *h = arg;
    (void)ctx;
    int now = atomic_fetch_add(&h->in, 1) + 1;
    atomic_fetch_add(&h->started, 1);
    int m = atomic_load(&h->max_in);
    while (now > m && !atomic_compare_exchange_weak(&h->max_in, &m, now)) {
    }
    sleep_ms(300); /* the work itself, not synchronisation */
    h->touched++;
    atomic_fetch_sub(&h->in, 1);
    return 0;
}

TEST_T(thread_timeout_retry_waits_for_the_abandoned_attempt, 60)
{
    weft_sched_t *s = mk(-1, 4, 4, -1);
    struct hog *h = calloc(1, sizeof *h);
    weft_sched_retry_t rp = {.attempts = 3, .backoff_ns = 1 * MS, .backoff_max_ns = 2 * MS};
    weft_sched_task_t t = {
        .type = WEFT_SCHED_IO, .fn = hog_fn, .arg = h, .timeout_ns = 50 * MS, .retry = &rp};
    weft_future_t *f;
    weft_sched_id_t id;
    CHECK_EQ(weft_sched_submit(s, &t, &id, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), -ETIMEDOUT);
    /* DONE: no attempt holds arg any more. */
    CHECK_EQ(atomic_load(&h->in), 0);
    CHECK_EQ(atomic_load(&h->max_in), 1);
    CHECK_EQ(atomic_load(&h->started), 3);
    weft_sched_info_t in;
    CHECK_EQ(weft_sched_info(s, id, &in), 0);
    CHECK_EQ(in.attempts, 3);
    free(h); /* the caller's again: ASan reports any later touch */
    weft_future_release(f);
    CHECK_EQ(weft_sched_destroy(s), 0);
}

TEST(timers_are_removed_when_attempts_end)
{
    weft_sched_t *s = mk(-1, 2, 2, -1);
    long n = weft_test_scale(20000);
    for (long i = 0; i < n; i++) {
        weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = noop, .timeout_ns = 600000 * MS};
        CHECK_EQ(weft_sched_submit(s, &t, NULL, NULL), 0);
    }
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    CHECK_EQ(weft__sched_timer_count(s), (size_t)0);
    /* A slot reused after a task with a short timeout is not timed out by that task's timer:
     * the old timer went with its attempt. */
    weft_sched_task_t a = {.type = WEFT_SCHED_IO, .fn = noop, .timeout_ns = 30 * MS};
    weft_future_t *fa;
    CHECK_EQ(weft_sched_submit(s, &a, NULL, &fa), 0);
    CHECK_EQ(weft_future_wait(fa, -1), 0);
    CHECK_EQ(weft_future_status(fa), 0);
    weft_future_release(fa);
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0); /* the attempt's end follows its delivery */
    CHECK_EQ(weft__sched_timer_count(s), (size_t)0);
    struct hog *h = calloc(1, sizeof *h);
    weft_sched_task_t b = {.type = WEFT_SCHED_IO, .fn = hog_fn, .arg = h};
    weft_future_t *fb;
    CHECK_EQ(weft_sched_submit(s, &b, NULL, &fb), 0);
    CHECK_EQ(weft_future_wait(fb, -1), 0);
    CHECK_EQ(weft_future_status(fb), 0);
    weft_future_release(fb);
    free(h);
    CHECK_EQ(weft_sched_destroy(s), 0);
}

TEST(dependencies_by_id_are_remembered)
{
    weft_sched_t *s = mk(-1, 2, 2, -1);
    long rounds = weft_test_scale(300);
    uint64_t rng = 99;
    for (long r = 0; r < rounds; r++) {
        weft_sched_id_t ids[4];
        size_t k = 2 + (size_t)(weft_rand(&rng) % 3);
        for (size_t i = 0; i < k; i++) {
            weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = noop};
            weft_future_t *f;
            CHECK_EQ(weft_sched_submit(s, &t, &ids[i], &f), 0);
            if (r % 2) CHECK_EQ(weft_future_wait(f, -1), 0); /* finished before the next */
            weft_future_release(f);
        }
        weft_sched_task_t d = {.type = WEFT_SCHED_IO, .fn = noop, .deps = ids, .ndeps = k};
        weft_future_t *fd;
        int rc = weft_sched_submit(s, &d, NULL, &fd);
        CHECK_MSG(rc == 0, "round %ld: %s", r, weft_strerror(rc));
        CHECK_EQ(weft_future_wait(fd, -1), 0);
        CHECK_EQ(weft_future_status(fd), 0);
        weft_future_release(fd);
    }
    CHECK_EQ(weft_sched_destroy(s), 0);
}

static int make_41(void *arg, weft_ctx_t *ctx)
{
    (void)arg;
    int *v = malloc(sizeof *v);
    *v = 41;
    weft_ctx_set_value(ctx, v, sizeof *v, free);
    return 0;
}

/* Reads its dependency's future (arg): it must be DONE with the value. */
static int read_dep(void *arg, weft_ctx_t *ctx)
{
    weft_future_t *dep = arg;
    (void)ctx;
    if (!weft_future_done(dep) || weft_future_status(dep) != 0) return -EPROTO;
    size_t n = 0;
    const int *v = weft_future_value(dep, &n);
    return v && n == sizeof *v && *v == 41 ? 0 : -EBADMSG;
}

TEST(a_dependent_starts_after_its_dependency_is_done)
{
    weft_sched_t *s = mk(-1, 4, 4, -1);
    long rounds = weft_test_scale(300);
    for (long r = 0; r < rounds; r++) {
        weft_sched_task_t a = {.type = WEFT_SCHED_IO, .fn = make_41};
        weft_sched_id_t ida;
        weft_future_t *fa, *fb, *fc;
        CHECK_EQ(weft_sched_submit(s, &a, &ida, &fa), 0);
        weft_sched_task_t b = {
            .type = WEFT_SCHED_IO, .fn = read_dep, .arg = fa, .deps = &ida, .ndeps = 1};
        weft_future_t *fb2;
        CHECK_EQ(weft_sched_submit(s, &b, NULL, &fb), 0);
        CHECK_EQ(weft_sched_submit(s, &b, NULL, &fb2), 0); /* two: one goes through the pool */
        weft_sched_task_t c = {.type = WEFT_SCHED_IO,
                               .fn = read_dep,
                               .arg = fa,
                               .dep_futures = &fa,
                               .ndep_futures = 1};
        CHECK_EQ(weft_sched_submit(s, &c, NULL, &fc), 0);
        CHECK_EQ(weft_future_wait(fb, -1), 0);
        CHECK_EQ(weft_future_wait(fc, -1), 0);
        CHECK_MSG(weft_future_status(fb) == 0, "round %ld: %s", r,
                  weft_strerror(weft_future_status(fb)));
        CHECK_EQ(weft_future_wait(fb2, -1), 0);
        CHECK_EQ(weft_future_status(fb2), 0);
        CHECK_EQ(weft_future_status(fc), 0);
        weft_future_release(fb2);
        weft_future_release(fa);
        weft_future_release(fb);
        weft_future_release(fc);
    }
    CHECK_EQ(weft_sched_destroy(s), 0);
}

static int destroy_own(void *arg, weft_ctx_t *ctx)
{
    (void)ctx;
    return weft_sched_destroy(arg) == -EDEADLK ? 0 : -EPROTO;
}

static int wait_idle_own(void *arg, weft_ctx_t *ctx)
{
    (void)ctx;
    return weft_sched_wait_idle(arg, 0) == -EDEADLK ? 0 : -EPROTO;
}

static atomic_int destroy_rc;

static void destroy_in_callback(weft_future_t *f, void *arg)
{
    (void)f;
    atomic_store(&destroy_rc, weft_sched_destroy(arg));
}

TEST_T(destroy_from_one_of_its_tasks_returns_edeadlk, 30)
{
    weft_sched_t *s = mk(-1, 2, 2, -1);
    weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = destroy_own, .arg = s};
    weft_future_t *f;
    CHECK_EQ(weft_sched_submit(s, &t, NULL, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), 0);
    weft_future_release(f);
    t.fn = wait_idle_own;
    CHECK_EQ(weft_sched_submit(s, &t, NULL, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), 0);
    weft_future_release(f);
    /* From a completion callback of one of its futures (run by the scheduler's thread). */
    weft_sched_task_t b = {.type = WEFT_SCHED_IO, .fn = blocker};
    CHECK_EQ(weft_sched_submit(s, &b, NULL, &f), 0);
    destroy_rc = 1;
    CHECK_EQ(weft_future_on_complete(f, destroy_in_callback, s), 0);
    open_gate();
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    CHECK_EQ(atomic_load(&destroy_rc), -EDEADLK);
    weft_future_release(f);
    CHECK_EQ(weft_sched_destroy(s), 0);
}

TEST(unknown_process_function_is_rejected_at_submit)
{
    weft_sched_t *s = mk(1, 1, 1, -1);
    weft_sched_task_t t = {.type = WEFT_SCHED_CPU, .proc_fn = "no-such-function"};
    weft_sched_id_t id = 1;
    weft_future_t *f = (weft_future_t *)&id;
    CHECK_EQ(weft_sched_submit(s, &t, &id, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK_EQ(id, (weft_sched_id_t)0);
    CHECK_EQ(weft_sched_submit_many(s, &t, 1, NULL, NULL), -EINVAL);
    weft_sched_graph_t *g;
    CHECK_EQ(weft_sched_graph_create(&g), 0);
    CHECK(weft_sched_graph_add(g, "x", &t) >= 0);
    weft_buf_t why;
    weft_buf_init(&why, 4096);
    CHECK_EQ(weft_sched_graph_submit(s, g, &why), -EINVAL);
    CHECK(why.data && strstr(why.data, "no-such-function") != NULL);
    weft_buf_free(&why);
    weft_sched_graph_destroy(g);
    CHECK_EQ(weft_sched_destroy(s), 0);
}

TEST(graph_depend_on_itself_is_einval)
{
    weft_sched_graph_t *g;
    CHECK_EQ(weft_sched_graph_create(&g), 0);
    weft_sched_task_t t = {.fn = noop};
    int a = weft_sched_graph_add(g, "a", &t);
    int b = weft_sched_graph_add(g, "b", &t);
    CHECK(a >= 0 && b >= 0);
    CHECK_EQ(weft_sched_graph_depend(g, a, a), -EINVAL);
    CHECK_EQ(weft_sched_graph_depend(g, b, a), 0);
    CHECK_EQ(weft_sched_graph_depend(NULL, b, a), -EINVAL);
    weft_sched_graph_destroy(g);
}

TEST(null_arguments_return_einval)
{
    weft_sched_task_t t = {.fn = noop};
    weft_sched_id_t id;
    weft_future_t *f;
    weft_sched_info_t in;
    weft_buf_t why;
    weft_buf_init(&why, 4096);
    CHECK_EQ(weft_sched_create(NULL, NULL), -EINVAL);
    CHECK_EQ(weft_sched_submit(NULL, &t, &id, &f), -EINVAL);
    CHECK_EQ(weft_sched_submit_many(NULL, &t, 1, NULL, NULL), -EINVAL);
    CHECK_EQ(weft_sched_wait_idle(NULL, 0), -EINVAL);
    CHECK_EQ(weft_sched_shutdown(NULL, WEFT_SHUTDOWN_WAIT), -EINVAL);
    CHECK_EQ(weft_sched_resize(NULL, 1, 1), -EINVAL);
    CHECK_EQ(weft_sched_info(NULL, 1, &in), -EINVAL);
    CHECK_EQ(weft_sched_destroy(NULL), -EINVAL);
    CHECK_EQ(weft_sched_graph_submit(NULL, NULL, &why), -EINVAL);
    CHECK_EQ(weft_sched_graph_create(NULL), -EINVAL);
    CHECK_EQ(weft_sched_graph_add(NULL, "a", &t), -EINVAL);
    CHECK_EQ(weft_sched_graph_find(NULL, "a"), -EINVAL);
    CHECK_EQ(weft_sched_graph_wait(NULL, 0), -EINVAL);
    CHECK_EQ(weft_sched_graph_info(NULL, 0, &in), -EINVAL);
    CHECK_EQ(weft_sched_graph_save(NULL, "x"), -EINVAL);
    CHECK_EQ(weft_sched_graph_resume(NULL, "x", &why), -EINVAL);
    CHECK_EQ(weft_sched_stats_text(NULL, &why), -EINVAL);
    weft_sched_t *s = mk(-1, 1, 1, -1);
    CHECK_EQ(weft_sched_submit(s, NULL, &id, &f), -EINVAL);
    CHECK_EQ(weft_sched_submit_many(s, NULL, 1, NULL, NULL), -EINVAL);
    weft_sched_task_t nofn = {.type = WEFT_SCHED_IO};
    CHECK_EQ(weft_sched_submit(s, &nofn, &id, &f), -EINVAL);
    CHECK_EQ(weft_sched_info(s, 1, NULL), -EINVAL);
    CHECK_EQ(weft_sched_graph_submit(s, NULL, &why), -EINVAL);
    weft_buf_free(&why);
    CHECK_EQ(weft_sched_destroy(s), 0);
}

TEST(info_is_final_once_the_future_is_done)
{
    weft_sched_t *s = mk(-1, 2, 2, -1);
    long n = weft_test_scale(500);
    for (long i = 0; i < n; i++) {
        weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = make_41};
        weft_sched_id_t id;
        weft_future_t *f;
        CHECK_EQ(weft_sched_submit(s, &t, &id, &f), 0);
        CHECK_EQ(weft_future_wait(f, -1), 0);
        weft_sched_info_t in;
        CHECK_EQ(weft_sched_info(s, id, &in), 0);
        CHECK_EQ(in.state, WEFT_TASK_DONE);
        CHECK_EQ(in.status, 0);
        weft_future_release(f);
    }
    CHECK_EQ(weft_sched_destroy(s), 0);
}

/* Runs about as long as its timeout: the timeout and the completion race. */
static int brief_hog(void *arg, weft_ctx_t *ctx)
{
    struct hog *h = arg;
    (void)ctx;
    int now = atomic_fetch_add(&h->in, 1) + 1;
    int m = atomic_load(&h->max_in);
    while (now > m && !atomic_compare_exchange_weak(&h->max_in, &m, now)) {
    }
    sleep_ms(2);
    h->touched++;
    atomic_fetch_sub(&h->in, 1);
    return 0;
}

TEST(a_timeout_racing_completion_never_overlaps_attempts)
{
    weft_sched_t *s = mk(-1, 4, 4, -1);
    long n = weft_test_scale(200);
    struct hog *h = calloc((size_t)n, sizeof *h);
    weft_future_t **fs = calloc((size_t)n, sizeof *fs);
    weft_sched_retry_t rp = {.attempts = 3, .backoff_ns = 1000, .backoff_max_ns = 1000};
    for (long i = 0; i < n; i++) {
        weft_sched_task_t t = {.type = WEFT_SCHED_IO,
                               .fn = brief_hog,
                               .arg = &h[i],
                               .timeout_ns = 2 * MS,
                               .retry = &rp};
        CHECK_EQ(weft_sched_submit(s, &t, NULL, &fs[i]), 0);
    }
    for (long i = 0; i < n; i++) {
        CHECK_EQ(weft_future_wait(fs[i], -1), 0);
        int st = weft_future_status(fs[i]);
        CHECK(st == 0 || st == -ETIMEDOUT);
        CHECK_EQ(atomic_load(&h[i].in), 0); /* DONE: no attempt holds arg */
        CHECK_EQ(atomic_load(&h[i].max_in), 1);
        weft_future_release(fs[i]);
    }
    CHECK_EQ(weft_sched_wait_idle(s, -1), 0);
    CHECK_EQ(weft__sched_timer_count(s), (size_t)0);
    free(h);
    free(fs);
    CHECK_EQ(weft_sched_destroy(s), 0);
}
