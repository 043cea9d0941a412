/* bench-sched: the hybrid scheduler's cost and gains, beside the raw executors and Python.
 *
 *   bench-sched [N]    N no-op tasks per overhead run (default 300000; env WEFT_BENCH_N)
 *   WEFT_BENCH_NO_PEER=1 skips the Python peer.
 *
 * 1. Overhead per route: no-op tasks/s through the scheduler against the raw executor in the
 *    same run (threads: weft_pool_submit; processes: weft_procpool_submit; loop: weft_loop_post
 *    completing a future), each submitting from one thread and waiting per window of 65536
 *    (4096 for processes), best of 3. Target: the scheduler keeps >= 70 % of the raw rate.
 * 2. 1,000 concurrent tasks (each waits 200 ms, IO with a thread and a loop form): time and
 *    peak resident memory (target < 500 MB).
 * 3. 1,000,000 pending tasks: resident memory and scheduler memory per pending task (<= 256 B).
 * 4. Mixed workload: items of CPU work (4 ms) then I/O (100 ms wait): each single executor
 *    sized as the seed sizes them, and the hybrid scheduler (target >= 1.3x the best single).
 * 5. Peer: bench/sched_peer.py, the seed's TaskScheduler design with Python's executors on the
 *    same mixed workload. (GNU parallel against `weft run` is bench/bench-run.sh.)
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft/loop.h>
#include <weft/pool.h>
#include <weft/procpool.h>
#include <weft/sched.h>
#include <weft/sys.h>

#include "peer.h"

#define WINDOW 65536
#define PWINDOW 4096

static weft_future_t **fs;

static double now_s(void)
{
    return (double)weft_now_ns() / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench-sched: %s: %s\n", what, strerror(-rc));
    exit(1);
}

static void wait_release(long k)
{
    weft_future_wait_all(fs, (size_t)k, -1);
    for (long i = 0; i < k; i++) weft_future_release(fs[i]);
}

/* ---- 1. overhead ------------------------------------------------------------------------- */

static int nop(void *a, weft_ctx_t *c)
{
    (void)a;
    (void)c;
    return 0;
}

static int pnop(const void *arg, size_t len, weft_buf_t *out)
{
    (void)arg;
    (void)len;
    (void)out;
    return 0;
}
WEFT_PROCPOOL_FN("bench.nop", pnop)

static int anop(weft_sched_aop_t *op)
{
    weft_sched_aop_done(op, 0, NULL, 0, NULL);
    return 0;
}

static void loop_nop(void *arg, int status)
{
    weft_future_complete(arg, status, NULL, 0, NULL);
}

static double raw_threads(long n, int threads)
{
    weft_pool_t *p;
    weft_pool_opts_t o = {.threads = threads};
    int rc = weft_pool_create(&p, &o);
    if (rc < 0) die("pool", rc);
    double t0 = now_s();
    for (long d = 0; d < n; d += WINDOW) {
        long k = n - d < WINDOW ? n - d : WINDOW;
        for (long i = 0; i < k; i++) weft_pool_submit(p, nop, NULL, &fs[i]);
        wait_release(k);
    }
    double r = (double)n / (now_s() - t0);
    weft_pool_destroy(p);
    return r;
}

static double raw_procs(long n, int workers)
{
    weft_procpool_t *pp;
    weft_procpool_opts_t o = {.workers = workers};
    int rc = weft_procpool_create(&pp, &o);
    if (rc < 0) die("procpool", rc);
    double t0 = now_s();
    for (long d = 0; d < n; d += PWINDOW) {
        long k = n - d < PWINDOW ? n - d : PWINDOW;
        for (long i = 0; i < k; i++) weft_procpool_submit(pp, "bench.nop", NULL, 0, 0, &fs[i]);
        wait_release(k);
    }
    double r = (double)n / (now_s() - t0);
    weft_procpool_destroy(pp);
    return r;
}

static double raw_loop(long n)
{
    weft_loop_t *l;
    weft_loop_opts_t o = {.own_thread = true};
    int rc = weft_loop_create(&l, &o);
    if (rc < 0) die("loop", rc);
    double t0 = now_s();
    for (long d = 0; d < n; d += WINDOW) {
        long k = n - d < WINDOW ? n - d : WINDOW;
        for (long i = 0; i < k; i++) {
            fs[i] = weft_future_create();
            weft_loop_post(l, loop_nop, fs[i]);
        }
        wait_release(k);
    }
    double r = (double)n / (now_s() - t0);
    weft_loop_destroy(l);
    return r;
}

static double via_sched(long n, int route, int threads, int procs, bool futures)
{
    weft_sched_t *s;
    weft_sched_opts_t o = {.procs = route == WEFT_ROUTE_PROCS ? procs : -1,
                           .threads_min = threads,
                           .threads_max = threads,
                           .loop_max = route == WEFT_ROUTE_LOOP ? 65536 : -1};
    int rc = weft_sched_create(&s, &o);
    if (rc < 0) die("sched", rc);
    weft_sched_task_t t = {.type = route == WEFT_ROUTE_PROCS ? WEFT_SCHED_CPU : WEFT_SCHED_IO};
    if (route == WEFT_ROUTE_THREADS) t.fn = nop;
    if (route == WEFT_ROUTE_PROCS) t.proc_fn = "bench.nop";
    if (route == WEFT_ROUTE_LOOP) t.async_fn = anop;
    long win = route == WEFT_ROUTE_PROCS ? PWINDOW : WINDOW;
    double t0 = now_s();
    for (long d = 0; d < n; d += win) {
        long k = n - d < win ? n - d : win;
        for (long i = 0; i < k; i++) weft_sched_submit(s, &t, NULL, futures ? &fs[i] : NULL);
        if (futures)
            wait_release(k);
        else
            weft_sched_wait_idle(s, -1);
    }
    double r = (double)n / (now_s() - t0);
    weft_sched_destroy(s);
    return r;
}

/* Batches of 64: the raw pool's weft_pool_submit_tasks (caller-owned records, each with its
 * future) against weft_sched_submit_many with a future per task. */
static double raw_threads_batched(long n, int threads)
{
    weft_pool_t *p;
    weft_pool_opts_t o = {.threads = threads, .queue_capacity = WINDOW};
    int rc = weft_pool_create(&p, &o);
    if (rc < 0) die("pool", rc);
    weft_task_t *ts = malloc(WINDOW * sizeof *ts);
    if (!ts) die("malloc", -ENOMEM);
    double t0 = now_s();
    for (long d = 0; d < n; d += WINDOW) {
        long k = n - d < WINDOW ? n - d : WINDOW;
        for (long i = 0; i < k; i++) weft_task_init(&ts[i], nop, NULL);
        for (long i = 0; i < k; i += 64)
            weft_pool_submit_tasks(p, &ts[i], (size_t)(k - i < 64 ? k - i : 64));
        for (long i = 0; i < k; i++) {
            weft_future_wait(&ts[i].future, -1);
            weft_future_release(&ts[i].future);
        }
    }
    double r = (double)n / (now_s() - t0);
    weft_pool_destroy(p);
    free(ts);
    return r;
}

static double sched_batched(long n, int threads)
{
    weft_sched_t *s;
    weft_sched_opts_t o = {
        .procs = -1, .threads_min = threads, .threads_max = threads, .loop_max = -1};
    int rc = weft_sched_create(&s, &o);
    if (rc < 0) die("sched", rc);
    weft_sched_task_t ts[64];
    for (int i = 0; i < 64; i++) ts[i] = (weft_sched_task_t){.type = WEFT_SCHED_IO, .fn = nop};
    double t0 = now_s();
    for (long d = 0; d < n; d += WINDOW) {
        long k = n - d < WINDOW ? n - d : WINDOW;
        for (long i = 0; i < k; i += 64)
            weft_sched_submit_many(s, ts, (size_t)(k - i < 64 ? k - i : 64), NULL, &fs[i]);
        wait_release(k);
    }
    double r = (double)n / (now_s() - t0);
    weft_sched_destroy(s);
    return r;
}

static double best3(double a, double b, double c)
{
    double m = a > b ? a : b;
    return m > c ? m : c;
}

/* ---- 2. and 3. memory -------------------------------------------------------------------- */

static int nap200(void *a, weft_ctx_t *c)
{
    (void)a;
    (void)c;
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    return 0;
}

static atomic_llong peak_rss;
static atomic_bool sampling;

static void *rss_sampler(void *arg)
{
    (void)arg;
    while (atomic_load(&sampling)) {
        long long r = weft_rss_bytes();
        if (r > atomic_load(&peak_rss)) atomic_store(&peak_rss, r);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void concurrent_1000(void)
{
    weft_sched_t *s;
    weft_sched_opts_t o = {0}; /* the defaults: adaptive processes and threads, the loop */
    int rc = weft_sched_create(&s, &o);
    if (rc < 0) die("sched", rc);
    atomic_store(&peak_rss, weft_rss_bytes());
    atomic_store(&sampling, true);
    pthread_t th;
    pthread_create(&th, NULL, rss_sampler, NULL);
    double t0 = now_s();
    for (int i = 0; i < 1000; i++) {
        weft_sched_task_t t = {.type = WEFT_SCHED_IO,
                               .fn = nap200,
                               .async_fn = weft_sched_async_sleep,
                               .async_arg = (void *)(uintptr_t)200};
        weft_sched_submit(s, &t, NULL, &fs[i]);
    }
    wait_release(1000);
    double dt = now_s() - t0;
    atomic_store(&sampling, false);
    pthread_join(th, NULL);
    weft_sched_stats_t st;
    weft_sched_stats(s, &st);
    printf("1000 concurrent tasks (200 ms waits): %.2f s (%.0f at once on average); peak RSS "
           "%.1f MB (target < 500 MB); on threads %llu, on the loop %llu\n",
           dt, 1000 * 0.2 / dt, (double)atomic_load(&peak_rss) / 1e6,
           (unsigned long long)st.exec[WEFT_ROUTE_THREADS].done,
           (unsigned long long)st.exec[WEFT_ROUTE_LOOP].done);
    weft_sched_destroy(s);
}

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_bool gate_in;

static int gate(void *a, weft_ctx_t *c)
{
    (void)a;
    (void)c;
    atomic_store(&gate_in, true);
    pthread_mutex_lock(&gate_mu);
    while (!gate_open) pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    return 0;
}

static void pending_1m(long n)
{
    weft_sched_t *s;
    weft_sched_opts_t o = {.procs = -1, .threads_min = 1, .threads_max = 1, .loop_max = -1};
    int rc = weft_sched_create(&s, &o);
    if (rc < 0) die("sched", rc);
    weft_sched_task_t g = {.type = WEFT_SCHED_IO, .fn = gate};
    weft_sched_submit(s, &g, NULL, NULL);
    while (!atomic_load(&gate_in)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    weft_future_t **all = malloc((size_t)n * sizeof *all);
    if (!all) die("malloc", -ENOMEM);
    memset(all, 0, (size_t)n * sizeof *all); /* the benchmark's own array: touched first */
    long long r0 = weft_rss_bytes();
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        weft_sched_task_t t = {.type = WEFT_SCHED_IO, .fn = nop, .priority = (int)(i & 7)};
        weft_sched_submit(s, &t, NULL, &all[i]);
    }
    double dt = now_s() - t0;
    long long r1 = weft_rss_bytes();
    weft_sched_stats_t st;
    weft_sched_stats(s, &st);
    printf("%ld pending tasks (with futures): RSS +%.1f MB = %.0f bytes/task resident, %.0f "
           "bytes/task scheduler memory (target <= 256); submitted at %.2f M/s\n",
           n, (double)(r1 - r0) / 1e6, (double)(r1 - r0) / (double)n,
           (double)st.task_bytes / (double)n, (double)n / dt / 1e6);
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    weft_sched_wait_idle(s, -1);
    for (long i = 0; i < n; i++) weft_future_release(all[i]);
    free(all);
    weft_sched_destroy(s);
}

/* ---- 4. mixed workload ------------------------------------------------------------------- */

#define BURN_NS 4000000u
#define WAIT_MS 100

static volatile uint64_t sink;

static void burn(void)
{
    uint64_t end = weft_thread_cpu_ns() + BURN_NS, h = 1;
    while (weft_thread_cpu_ns() < end)
        for (int i = 0; i < 5000; i++) h = h * 6364136223846793005u + 1442695040888963407u;
    sink = h;
}

static int t_burn(void *a, weft_ctx_t *c)
{
    (void)a;
    (void)c;
    burn();
    return 0;
}
static int p_burn(const void *a, size_t l, weft_buf_t *o)
{
    (void)a;
    (void)l;
    (void)o;
    burn();
    return 0;
}
WEFT_PROCPOOL_FN("bench.burn", p_burn)
static int a_burn(weft_sched_aop_t *op)
{
    burn();
    weft_sched_aop_done(op, 0, NULL, 0, NULL);
    return 0;
}
static int t_wait(void *a, weft_ctx_t *c)
{
    (void)a;
    (void)c;
    struct timespec ts = {0, WAIT_MS * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}
static int p_wait(const void *a, size_t l, weft_buf_t *o)
{
    return t_wait(NULL, NULL) + 0 * (int)l + 0 * (a != o);
}
WEFT_PROCPOOL_FN("bench.wait", p_wait)

enum { F_T = 1, F_P = 2, F_L = 4 };

struct mixed {
    weft_sched_t *s;
    int forms;
    atomic_int left;
};

static void wait_done(weft_future_t *f, void *arg)
{
    struct mixed *m = arg;
    weft_future_release(f);
    atomic_fetch_sub(&m->left, 1);
}

static void burn_done(weft_future_t *f, void *arg)
{
    struct mixed *m = arg;
    weft_future_release(f);
    weft_sched_task_t t = {.type = WEFT_SCHED_IO, .priority = 1, .cls = "wait"};
    if (m->forms & F_T) t.fn = t_wait;
    if (m->forms & F_P) t.proc_fn = "bench.wait";
    if (m->forms & F_L) {
        t.async_fn = weft_sched_async_sleep;
        t.async_arg = (void *)(uintptr_t)WAIT_MS;
    }
    weft_future_t *g;
    if (weft_sched_submit(m->s, &t, NULL, &g) == 0) weft_future_on_complete(g, wait_done, m);
}

static double mixed(int forms, const weft_sched_opts_t *o, int n)
{
    struct mixed m = {.forms = forms};
    atomic_store(&m.left, n);
    int rc = weft_sched_create(&m.s, o);
    if (rc < 0) die("sched", rc);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        weft_sched_task_t t = {.type = WEFT_SCHED_CPU, .cls = "burn"};
        if (forms & F_T) t.fn = t_burn;
        if (forms & F_P) t.proc_fn = "bench.burn";
        if (forms & F_L) t.async_fn = a_burn;
        weft_future_t *f;
        if (weft_sched_submit(m.s, &t, NULL, &f) == 0) weft_future_on_complete(f, burn_done, &m);
    }
    weft_sched_wait_idle(m.s, -1);
    double r = (double)n / (now_s() - t0);
    weft_sched_destroy(m.s);
    return r;
}

static void run_peer(int n)
{
    if (getenv("WEFT_BENCH_NO_PEER")) return;
    char args[32];
    snprintf(args, sizeof args, "%d", n);
    FILE *f = bench_peer_open("sched_peer.py", args);
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) printf("peer    %s", line);
    bench_peer_close(f, "sched_peer.py");
}

int main(int argc, char **argv)
{
    long n = bench_arg_n(argc, argv, 300000, "bench-sched");
    fs = malloc(WINDOW * sizeof *fs);
    if (!fs) return 1;
    int cpus = weft_cpu_count();
    printf("bench-sched: %ld no-op tasks per overhead run, %d usable CPUs, load %s", n, cpus, "");
    FILE *la = fopen("/proc/loadavg", "r");
    char lbuf[64] = "?";
    if (la) {
        if (!fgets(lbuf, sizeof lbuf, la)) lbuf[0] = '\0';
        fclose(la);
    }
    printf("%s", lbuf);

    /* 1 */
    double rt = best3(raw_threads(n, 2), raw_threads(n, 2), raw_threads(n, 2));
    double st = best3(via_sched(n, WEFT_ROUTE_THREADS, 2, 0, true),
                      via_sched(n, WEFT_ROUTE_THREADS, 2, 0, true),
                      via_sched(n, WEFT_ROUTE_THREADS, 2, 0, true));
    double st0 = best3(via_sched(n, WEFT_ROUTE_THREADS, 2, 0, false),
                       via_sched(n, WEFT_ROUTE_THREADS, 2, 0, false),
                       via_sched(n, WEFT_ROUTE_THREADS, 2, 0, false));
    printf("threads   raw pool %6.2f M/s   scheduler %6.2f M/s (%3.0f %%)   scheduler without "
           "futures %6.2f M/s (%3.0f %%)\n",
           rt / 1e6, st / 1e6, 100 * st / rt, st0 / 1e6, 100 * st0 / rt);
    double rb =
        best3(raw_threads_batched(n, 2), raw_threads_batched(n, 2), raw_threads_batched(n, 2));
    double sb = best3(sched_batched(n, 2), sched_batched(n, 2), sched_batched(n, 2));
    printf("threads   batches of 64: raw pool %6.2f M/s   scheduler %6.2f M/s (%3.0f %%)\n",
           rb / 1e6, sb / 1e6, 100 * sb / rb);
    long pn = n / 4;
    double rp = best3(raw_procs(pn, cpus), raw_procs(pn, cpus), raw_procs(pn, cpus));
    double sp = best3(via_sched(pn, WEFT_ROUTE_PROCS, 1, cpus, true),
                      via_sched(pn, WEFT_ROUTE_PROCS, 1, cpus, true),
                      via_sched(pn, WEFT_ROUTE_PROCS, 1, cpus, true));
    printf("processes raw pool %6.3f M/s   scheduler %6.3f M/s (%3.0f %%)   (the scheduler hands a "
           "worker one task at a time; the raw pool pipelines)\n",
           rp / 1e6, sp / 1e6, 100 * sp / rp);
    double rl = best3(raw_loop(n), raw_loop(n), raw_loop(n));
    double sl =
        best3(via_sched(n, WEFT_ROUTE_LOOP, 1, 0, true), via_sched(n, WEFT_ROUTE_LOOP, 1, 0, true),
              via_sched(n, WEFT_ROUTE_LOOP, 1, 0, true));
    printf("loop      raw post %6.2f M/s   scheduler %6.2f M/s (%3.0f %%)\n", rl / 1e6, sl / 1e6,
           100 * sl / rl);

    /* 2, 3 */
    concurrent_1000();
    pending_1m(1000000);

    /* 4 */
    int items = 400;
    weft_sched_opts_t o_p = {.procs = 4, .threads_min = 1, .threads_max = 1, .loop_max = -1};
    weft_sched_opts_t o_t = {.procs = -1, .threads_min = 10, .threads_max = 10, .loop_max = -1};
    weft_sched_opts_t o_l = {.procs = -1, .threads_min = 1, .threads_max = 1};
    weft_sched_opts_t o_h = {0};
    double mp = mixed(F_P, &o_p, items / 8), mt = mixed(F_T, &o_t, items / 2);
    double ml = mixed(F_L, &o_l, items), mh = mixed(F_T | F_P | F_L, &o_h, items);
    double best = mp > mt ? mp : mt;
    if (ml > best) best = ml;
    printf("mixed (4 ms CPU then 100 ms wait per item): processes(4) %.0f/s, threads(10) %.0f/s, "
           "loop %.0f/s, hybrid %.0f/s = %.2fx the best single (target >= 1.3x)\n",
           mp, mt, ml, mh, mh / best);
    run_peer(items);
    free(fs);
    return 0;
}
