/* bench-procpool: process-pool round trips and timeout kills, beside Python's
 * ProcessPoolExecutor.
 *
 *   bench-procpool [N]   N tasks per throughput run (default 100000; env WEFT_BENCH_N)
 *   WEFT_BENCH_NO_PEER=1 skips the Python peer (for quick runs while tuning).
 *
 * Prints one line per figure:
 *   - spawn: time to create a pool (workers spawned and ready), per worker;
 *   - round trips/s: one thread submits N tasks (a future each) keeping WINDOW of them in flight
 *     (when WINDOW are outstanding it waits for the oldest); each runs in a worker and its
 *     result comes back. With a no-op and with a 4 KiB argument that the function returns. (All
 *     N in flight at once would mostly measure page faults: N * 4 KiB of live arguments and
 *     results.) The Python peer uses the same window. Context switches per task (parent
 *     threads from getrusage(RUSAGE_SELF), workers from RUSAGE_CHILDREN once reaped) show how
 *     often anyone slept: each sleep is a futex or epoll wait plus a wake-up;
 *   - timeout kill latency: a task records its start time and hangs; its future fails with
 *     -ETIMEDOUT; latency = completion time (a completion callback) - (start + timeout), p50 and
 *     max over 20 kills (target: max < 50 ms). The same from submit (an upper bound that also
 *     counts handing the task to a worker, and waiting for a replacement worker to start);
 *   - the Python peer (bench/procpool_peer.py, $PYTHON or /usr/bin/python3), same N, and ratios.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "peer.h"
#include <weft/err.h>
#include <weft/hist.h>
#include <weft/procpool.h>
#include <weft/sys.h>

static int fn_noop(const void *arg, size_t len, weft_buf_t *out)
{
    return 0;
}

static int fn_echo(const void *arg, size_t len, weft_buf_t *out)
{
    return weft_buf_append(out, arg, len);
}

/* Writes its start time (CLOCK_MONOTONIC ns, comparable across processes) to the file named by
 * arg, then hangs until killed. */
static int fn_stamp_hang(const void *arg, size_t len, weft_buf_t *out)
{
    uint64_t t = weft_now_ns();
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)arg);
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t w = write(fd, &t, sizeof t);
    close(fd);
    if (w != sizeof t) return -EIO;
    for (;;) pause();
    return 0;
}

WEFT_PROCPOOL_FN("bench.noop", fn_noop)
WEFT_PROCPOOL_FN("bench.echo", fn_echo)
WEFT_PROCPOOL_FN("bench.stamp_hang", fn_stamp_hang)

#define WINDOW 4096

static weft_procpool_t *new_pool(int workers, double *spawn_ms)
{
    weft_procpool_t *pp;
    weft_procpool_opts_t o = {.workers = workers};
    uint64_t t0 = weft_now_ns();
    int rc = weft_procpool_create(&pp, &o);
    if (rc < 0) {
        fprintf(stderr, "bench-procpool: weft_procpool_create: %s\n", weft_strerror(rc));
        exit(1);
    }
    if (spawn_ms) *spawn_ms = (double)(weft_now_ns() - t0) / 1e6;
    return pp;
}

static long ctx_switches(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return ru.ru_nvcsw + ru.ru_nivcsw;
}

typedef struct run_result {
    double rate;                 /* round trips per second */
    double parent_cs, worker_cs; /* context switches per task */
} run_result_t;

/* One throughput run on a fresh pool (created and destroyed outside the timed part). */
static run_result_t run_round_trips(int workers, long n, const char *fn, size_t arg_len)
{
    weft_future_t **fs = malloc((size_t)n * sizeof *fs);
    unsigned char *arg = malloc(arg_len + 1);
    if (!fs || !arg) exit(1);
    for (size_t i = 0; i < arg_len; i++) arg[i] = (unsigned char)i;
    weft_procpool_t *pp = new_pool(workers, NULL);
    /* Warm up: the pool sizes its pipelining depth by the tasks' run time. */
    for (int i = 0; i < 2000; i++) {
        weft_future_t *f;
        if (weft_procpool_submit(pp, fn, arg, arg_len, 0, &f) == 0) {
            weft_future_wait(f, -1);
            weft_future_release(f);
        }
    }
    long cs_self0 = ctx_switches(RUSAGE_SELF), cs_kids0 = ctx_switches(RUSAGE_CHILDREN);
    uint64_t t0 = weft_now_ns();
    long bad = 0, waited = 0;
    for (long i = 0; i <= n; i++) {
        while (waited < i && (i - waited >= WINDOW || i == n)) {
            size_t size = 0;
            weft_future_wait(fs[waited], -1);
            weft_future_value(fs[waited], &size);
            bad += weft_future_status(fs[waited]) != 0 || size != arg_len;
            weft_future_release(fs[waited++]);
        }
        if (i == n) break;
        int rc = weft_procpool_submit(pp, fn, arg, arg_len, 0, &fs[i]);
        if (rc < 0) {
            fprintf(stderr, "bench-procpool: submit: %s\n", weft_strerror(rc));
            exit(1);
        }
    }
    double dt = (double)(weft_now_ns() - t0) / 1e9;
    long cs_self = ctx_switches(RUSAGE_SELF) - cs_self0;
    weft_procpool_destroy(pp);
    long cs_kids = ctx_switches(RUSAGE_CHILDREN) - cs_kids0;
    if (bad) fprintf(stderr, "bench-procpool: %ld tasks failed or returned wrong sizes\n", bad);
    free(fs);
    free(arg);
    return (run_result_t){(double)n / dt, (double)cs_self / (double)n, (double)cs_kids / (double)n};
}

static void on_done(weft_future_t *f, void *arg)
{
    *(uint64_t *)arg = weft_now_ns();
}

/* Timeout kills: deadline (task start + timeout) to future failure. */
static void run_timeouts(int kills, uint64_t timeout_ns)
{
    char path[] = "/tmp/weft-bench-procpool-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("bench-procpool: mkstemp");
        return;
    }
    close(fd);
    weft_procpool_t *pp = new_pool(1, NULL);
    weft_hist_t *h = malloc(2 * sizeof *h), *hs = h + 1;
    weft_hist_init(h);
    weft_hist_init(hs);
    int wrong = 0;
    for (int k = 0; k < kills; k++) {
        weft_future_t *f;
        uint64_t done = 0, start = 0, submit = weft_now_ns();
        if (weft_procpool_submit(pp, "bench.stamp_hang", path, strlen(path), timeout_ns, &f) < 0)
            exit(1);
        weft_future_on_complete(f, on_done, &done);
        weft_future_wait(f, -1);
        wrong += weft_future_status(f) != -ETIMEDOUT;
        weft_future_release(f);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, &start, sizeof start) != sizeof start) start = 0;
        if (fd >= 0) close(fd);
        /* The pool's clock starts a few microseconds before the function's own stamp, so a
         * prompt kill can land "before" start + timeout: count that as 0. */
        if (start) weft_hist_record(h, done > start + timeout_ns ? done - start - timeout_ns : 0);
        weft_hist_record(hs, done > submit + timeout_ns ? done - submit - timeout_ns : 0);
    }
    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    weft_procpool_destroy(pp);
    unlink(path);
    double p50 = (double)weft_hist_quantile(h, 0.5) / 1e6, mx = (double)h->max / 1e6;
    printf("timeout kill %d x %.0f ms: deadline to failure p50 %.2f ms, max %.2f ms (%llu "
           "measured, %d not -ETIMEDOUT, %llu workers replaced); target max < 50 ms: %s\n",
           kills, (double)timeout_ns / 1e6, p50, mx, (unsigned long long)h->count, wrong,
           (unsigned long long)st.respawned,
           h->count == (uint64_t)kills && mx < 50 ? "met" : "MISSED");
    printf("             from submit (includes waiting for the replacement worker): p50 %.2f ms, "
           "max %.2f ms\n",
           (double)weft_hist_quantile(hs, 0.5) / 1e6, (double)hs->max / 1e6);
    free(h);
}

/* Runs the Python peer; fills its no-op and 4 KiB rates (0 if it did not run). */
static void run_peer(long n, int workers, double *noop, double *arg4k)
{
    *noop = *arg4k = 0;
    char args[96];
    snprintf(args, sizeof args, "%ld %d %d", n, workers, WINDOW);
    FILE *f = bench_peer_open("procpool_peer.py", args);
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        double r;
        if (sscanf(line, "noop %lf", &r) == 1) *noop = r;
        if (sscanf(line, "arg4k %lf", &r) == 1) *arg4k = r;
    }
    bench_peer_close(f, "procpool_peer.py");
}

int main(int argc, char **argv)
{
    long n = bench_arg_n(argc, argv, 100000, "bench-procpool");
    int cpus = weft_cpu_count();
    printf("bench-procpool: %ld tasks per run, %d usable CPUs, %d workers, one submitting thread, "
           "%d in flight\n",
           n, cpus, cpus, WINDOW);

    double ms1, msn;
    weft_procpool_destroy(new_pool(1, &ms1));
    weft_procpool_destroy(new_pool(cpus, &msn));
    printf("spawn   create with 1 worker %.1f ms; with %d workers %.1f ms (%.1f ms per worker)\n",
           ms1, cpus, msn, msn / cpus);

    run_result_t noop = run_round_trips(cpus, n, "bench.noop", 0);
    printf("noop    %8.0f round trips/s   context switches per task: parent %.3f, workers %.3f\n",
           noop.rate, noop.parent_cs, noop.worker_cs);
    run_result_t a4k = run_round_trips(cpus, n, "bench.echo", 4096);
    printf("arg4k   %8.0f round trips/s   (4 KiB there and back, %.0f MiB/s each way)   "
           "context switches per task: parent %.3f, workers %.3f\n",
           a4k.rate, a4k.rate * 4096 / 1048576, a4k.parent_cs, a4k.worker_cs);
    printf("target  no-op >= 300000 round trips/s: %s\n", noop.rate >= 300000 ? "met" : "MISSED");

    run_timeouts(20, 100000000u);

    if (getenv("WEFT_BENCH_NO_PEER")) return 0;
    double py_noop, py_4k;
    run_peer(n, cpus, &py_noop, &py_4k);
    if (py_noop > 0) {
        printf("peer    Python ProcessPoolExecutor, %d workers: noop %.0f/s, arg4k %.0f/s\n", cpus,
               py_noop, py_4k);
        printf("ratio   weft / Python: noop %.1fx, arg4k %.1fx\n", noop.rate / py_noop,
               py_4k > 0 ? a4k.rate / py_4k : 0);
    } else {
        printf("ratio   (Python peer did not run)\n");
    }
    return 0;
}
