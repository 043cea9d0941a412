/* bench-dist.c - end-to-end no-op tasks/s through Redis Streams (weft/broker.h): a submitter and
 * W worker processes on one local Redis ($WEFT_REDIS_URL; bench-dist.sh starts one).
 *
 *   bench-dist [N]   N no-op tasks (default 20000), each mode:
 *     round-trip: submit one task per call, workers read one entry per XREADGROUP (batch 1);
 *     batched:    one pipelined submit, workers read COUNT 128 and record in batches.
 * $WEFT_BENCH_WORKERS (default 2) worker processes, each with one process worker.
 * Prints "dist <mode> N tasks: T s, R tasks/s", then runs the peers on the same Redis
 * (bench/dist_peer.py: RQ and Celery, N/10 tasks) and prints the ratios. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/broker.h>
#include <weft/procpool.h>
#include <weft/sys.h>

#include "peer.h"

static int pf_noop(const void *arg, size_t len, weft_buf_t *out)
{
    (void)arg, (void)len, (void)out;
    return 0;
}
WEFT_PROCPOOL_FN("bench.noop", pf_noop)

static weft_broker_worker_t *g_w;
static void on_term(int sig)
{
    (void)sig;
    weft_broker_worker_stop(g_w);
}

static pid_t worker(const char *url, const char *ns, int batch, int slots, int i)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    char name[32];
    snprintf(name, sizeof name, "bench%d", i);
    weft_broker_opts_t bo = {.ns = ns};
    weft_broker_worker_opts_t wo = {
        .name = name, .procs = 1, .threads = 1, .slots = slots, .batch = batch};
    if (weft_broker_worker_create(&g_w, url, &bo, &wo) != 0) _exit(2);
    signal(SIGTERM, on_term);
    weft_broker_worker_run(g_w);
    weft_broker_worker_destroy(g_w);
    _exit(0);
}

static double run(const char *url, const char *mode, long n, int nworkers)
{
    bool rt = strcmp(mode, "round-trip") == 0;
    weft_broker_opts_t bo = {.ns = mode};
    weft_broker_t *b;
    if (weft_broker_create(&b, url, &bo) != 0 || weft_broker_reset(b) != 0) {
        fprintf(stderr, "bench-dist: cannot reach %s\n", url);
        exit(1);
    }
    pid_t w[64];
    for (int i = 0; i < nworkers; i++) w[i] = worker(url, mode, rt ? 1 : 128, rt ? 1 : 256, i);
    char(*ids)[24] = malloc((size_t)n * sizeof *ids);
    weft_broker_task_t *t = calloc((size_t)n, sizeof *t);
    for (long i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "n%ld", i);
        t[i] = (weft_broker_task_t){.id = ids[i], .fn = "bench.noop"};
    }
    uint64_t t0 = weft_now_ns();
    if (rt) {
        for (long i = 0; i < n; i++) weft_broker_submit(b, &t[i], 1);
    } else {
        weft_broker_submit(b, t, (size_t)n);
    }
    weft_broker_wait(b, (uint64_t)n, -1);
    double s = (double)(weft_now_ns() - t0) / 1e9;
    for (int i = 0; i < nworkers; i++) kill(w[i], SIGTERM);
    for (int i = 0; i < nworkers; i++) waitpid(w[i], NULL, 0);
    weft_broker_reset(b);
    weft_broker_destroy(b);
    free(ids);
    free(t);
    printf("dist %-10s %ld tasks, %d workers: %.3f s, %.0f tasks/s\n", mode, n, nworkers, s,
           (double)n / s);
    fflush(stdout);
    return (double)n / s;
}

int main(int argc, char **argv)
{
    long n = bench_arg_n(argc, argv, 20000, "bench-dist");
    const char *url = getenv("WEFT_REDIS_URL");
    if (!url) {
        fprintf(stderr, "bench-dist: set WEFT_REDIS_URL (bench/bench-dist.sh starts a Redis)\n");
        return 2;
    }
    const char *ws = getenv("WEFT_BENCH_WORKERS");
    int nworkers = ws ? atoi(ws) : 2;
    if (nworkers < 1 || nworkers > 64) nworkers = 2;
    /* WEFT_BENCH_ONLY=round-trip|batched: that mode alone, no peers (for profiling). */
    const char *only = getenv("WEFT_BENCH_ONLY");
    if (only) return run(url, only, n, nworkers) > 0 ? 0 : 1;
    double rt = run(url, "round-trip", n, nworkers);
    double batched = run(url, "batched", n, nworkers);
    /* Peers on the same Redis (bench/dist_peer.py: python3-rq, python3-celery), fewer tasks:
     * they are slow. */
    long pn = n / 10 < 500 ? 500 : n / 10;
    const char *peers[] = {"rq", "celery"};
    for (int i = 0; i < 2; i++) {
        char args[512], line[512];
        snprintf(args, sizeof args, "%s %ld %d '%s'", peers[i], pn, nworkers, url);
        FILE *f = bench_peer_open("dist_peer.py", args);
        double rate = 0;
        while (f && fgets(line, sizeof line, f)) {
            fputs(line, stdout);
            const char *c = strrchr(line, ',');
            if (c) rate = atof(c + 1);
        }
        bench_peer_close(f, "dist_peer.py");
        if (rate > 0)
            printf("ratio weft/%s: %.1fx (round-trip), %.1fx (batched)\n", peers[i], rt / rate,
                   batched / rate);
        else
            printf("peer %s: did not run (python3-%s installed? apt-get install python3-%s)\n",
                   peers[i], peers[i], peers[i]);
    }
    return 0;
}
