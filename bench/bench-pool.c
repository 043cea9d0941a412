/* bench-pool: thread-pool throughput, latency and memory, beside Python's ThreadPoolExecutor.
 *
 *   bench-pool [N]     N no-op tasks per throughput run (default 1000000; env WEFT_BENCH_N)
 *   WEFT_BENCH_NO_PEER=1 skips the Python peer (for quick runs while tuning).
 *
 * Prints one line per figure. Throughput runs create a pool, submit N no-op tasks from one
 * thread and destroy the pool (joining it) inside the timed part. Caller-owned records are used
 * in windows of 65536 (submit the window, wait for it, reuse the records); the Python peer does
 * the same with futures. The peer is bench/pool_peer.py run with $PYTHON or /usr/bin/python3.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peer.h"
#include <weft/hist.h>
#include <weft/pool.h>
#include <weft/sys.h>

#define WINDOW 65536

static int nop_task(void *arg, weft_ctx_t *ctx)
{
    return 0;
}

static weft_pool_t *new_pool(int threads, size_t capacity)
{
    weft_pool_t *p;
    weft_pool_opts_t o = {.threads = threads, .queue_capacity = capacity, .name = "bench"};
    int rc = weft_pool_create(&p, &o);
    if (rc < 0) {
        fprintf(stderr, "bench-pool: weft_pool_create: %s\n", strerror(-rc));
        exit(1);
    }
    return p;
}

static double secs(uint64_t t0)
{
    return (double)(weft_now_ns() - t0) / 1e9;
}

/* Caller-owned records; batch == 1: weft_pool_submit_task, else weft_pool_submit_tasks. */
static double run_records(int threads, long n, size_t batch)
{
    weft_task_t *ts = malloc(WINDOW * sizeof *ts);
    if (!ts) exit(1);
    weft_pool_t *p = new_pool(threads, WINDOW);
    uint64_t t0 = weft_now_ns();
    for (long done = 0; done < n;) {
        size_t k = (size_t)(n - done < WINDOW ? n - done : WINDOW);
        for (size_t i = 0; i < k; i++) weft_task_init(&ts[i], nop_task, NULL);
        if (batch == 1) {
            for (size_t i = 0; i < k; i++) weft_pool_submit_task(p, &ts[i]);
        } else {
            for (size_t i = 0; i < k; i += batch)
                weft_pool_submit_tasks(p, &ts[i], k - i < batch ? k - i : batch);
        }
        for (size_t i = 0; i < k; i++) {
            weft_future_wait(&ts[i].future, -1);
            weft_future_release(&ts[i].future);
        }
        done += (long)k;
    }
    weft_pool_destroy(p);
    double dt = secs(t0);
    free(ts);
    return (double)n / dt;
}

/* weft_pool_submit: one small allocation per task, no future kept. */
static double run_submit(int threads, long n)
{
    weft_pool_t *p = new_pool(threads, WINDOW);
    uint64_t t0 = weft_now_ns();
    for (long i = 0; i < n; i++) weft_pool_submit(p, nop_task, NULL, NULL);
    weft_pool_destroy(p);
    return (double)n / secs(t0);
}

struct lat {
    uint64_t submit_ns, start_ns;
};

static int stamp_task(void *arg, weft_ctx_t *ctx)
{
    ((struct lat *)arg)->start_ns = weft_now_ns();
    return 0;
}

/* Submit-to-start latency: `inflight` tasks submitted back to back, then waited for. */
static void run_latency(int threads, long n, int inflight, const char *label)
{
    static weft_hist_t h;
    weft_hist_init(&h);
    weft_pool_t *p = new_pool(threads, 0);
    struct lat *ls = calloc((size_t)inflight, sizeof *ls);
    weft_task_t *ts = calloc((size_t)inflight, sizeof *ts);
    if (!ls || !ts) exit(1);
    for (long done = 0; done < n; done += inflight) {
        for (int i = 0; i < inflight; i++) {
            weft_task_init(&ts[i], stamp_task, &ls[i]);
            ls[i].submit_ns = weft_now_ns();
            weft_pool_submit_task(p, &ts[i]);
        }
        for (int i = 0; i < inflight; i++) {
            weft_future_wait(&ts[i].future, -1);
            weft_future_release(&ts[i].future);
            weft_hist_record(&h, ls[i].start_ns - ls[i].submit_ns);
        }
    }
    weft_pool_destroy(p);
    printf("latency %-34s p50 %7.1f us   p99 %7.1f us   (%llu tasks)\n", label,
           (double)weft_hist_quantile(&h, 0.50) / 1e3, (double)weft_hist_quantile(&h, 0.99) / 1e3,
           (unsigned long long)h.count);
    free(ls);
    free(ts);
}

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;
    bool open;
};

static int gate_task(void *arg, weft_ctx_t *ctx)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

/* RSS growth per pending weft_pool_submit task, with every worker held by a gate. */
static void run_memory(int threads, long pending)
{
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};
    weft_pool_t *p = new_pool(threads, (size_t)pending + (size_t)threads);
    for (int i = 0; i < threads; i++) weft_pool_submit(p, gate_task, &g, NULL);
    pthread_mutex_lock(&g.mu);
    while (g.arrived < threads) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    long long rss0 = weft_rss_bytes();
    uint64_t t0 = weft_now_ns();
    for (long i = 0; i < pending; i++) {
        int rc = weft_pool_submit(p, nop_task, NULL, NULL);
        if (rc < 0) {
            fprintf(stderr, "bench-pool: submit %ld: %s\n", i, strerror(-rc));
            exit(1);
        }
    }
    double dt = secs(t0);
    long long rss1 = weft_rss_bytes();
    weft_pool_stats_t st;
    weft_pool_stats(p, &st);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    weft_pool_destroy(p);
    double per = (double)(rss1 - rss0) / (double)pending;
    printf("memory  %ld pending (queued %zu): RSS +%.1f MiB = %.0f bytes/task "
           "(record %zu bytes; caller-owned: %zu bytes, yours)   [target <= 256: %s]\n",
           pending, st.queued, (double)(rss1 - rss0) / 1048576.0, per, sizeof(weft_task_t),
           sizeof(weft_task_t), per <= 256 ? "met" : "MISSED");
    printf("        filling the queue took %.3f s (%.2f M submits/s, nothing running)\n", dt,
           (double)pending / dt / 1e6);
}

/* Runs the Python peer; returns its tasks/s or 0. */
static double run_peer(long n, int threads)
{
    char args[64];
    snprintf(args, sizeof args, "%ld %d", n, threads);
    FILE *f = bench_peer_open("pool_peer.py", args);
    if (!f) return 0;
    char line[512];
    double rate = 0;
    while (fgets(line, sizeof line, f)) {
        fputs("peer    ", stdout);
        fputs(line, stdout);
        char *r = strstr(line, "tasks_per_s=");
        if (r) rate = atof(r + strlen("tasks_per_s="));
    }
    bench_peer_close(f, "pool_peer.py");
    return rate;
}

int main(int argc, char **argv)
{
    long n = bench_arg_n(argc, argv, 1000000, "bench-pool");
    int cpus = weft_cpu_count();
    printf("bench-pool: %ld no-op tasks per run, %d usable CPUs, one submitting thread\n", n, cpus);

    /* First, while the heap is fresh: later runs leave freed memory resident, which a new
     * allocation reuses without growing RSS. */
    run_memory(cpus, 1000000);

    double own_default = 0, heap_default = 0;
    int tcounts[] = {cpus, 1};
    for (int k = 0; k < (cpus > 1 ? 2 : 1); k++) {
        int t = tcounts[k];
        double own = run_records(t, n, 1);
        double heap = run_submit(t, n);
        double b64 = run_records(t, n, 64);
        double b1k = run_records(t, n, 1024);
        printf("single  %d worker(s): submit_task (caller-owned) %6.2f M/s   submit (allocates) "
               "%6.2f M/s\n",
               t, own / 1e6, heap / 1e6);
        printf("batched %d worker(s): submit_tasks x64         %6.2f M/s   x1024              "
               "%6.2f M/s\n",
               t, b64 / 1e6, b1k / 1e6);
        if (k == 0) {
            own_default = own;
            heap_default = heap;
            double best_batch = b64 > b1k ? b64 : b1k;
            printf("targets: single >= 2 M/s: %s (best %.2f); batched >= 5 M/s: %s (best %.2f)\n",
                   own >= 2e6 || heap >= 2e6 ? "met" : "MISSED", (own > heap ? own : heap) / 1e6,
                   best_batch >= 5e6 ? "met" : "MISSED", best_batch / 1e6);
        }
    }

    run_latency(cpus, 20000, 1, "idle pool (1 in flight)");
    run_latency(cpus, 200000, 64, "busy pool (64 in flight)");

    if (getenv("WEFT_BENCH_NO_PEER")) return 0; /* for quick runs while tuning */
    double py = run_peer(n, cpus);
    if (py > 0)
        printf("ratio   weft / Python ThreadPoolExecutor, both %d workers, single submits: "
               "caller-owned %.0fx, allocating %.0fx (%.2f and %.2f M/s vs %.3f M/s)\n",
               cpus, own_default / py, heap_default / py, own_default / 1e6, heap_default / 1e6,
               py / 1e6);
    else
        printf("ratio   (Python peer did not run)\n");
    return 0;
}
