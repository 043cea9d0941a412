/* `weft demo primes`: count primes in ranges sequentially, with the thread pool and with the
 * process pool (the tutorial's count_primes_in_ranges), and say what the numbers show. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/buf.h>
#include <weft/err.h>
#include <weft/pool.h>
#include <weft/procpool.h>
#include <weft/sys.h>

#include "demo/demo.h"
#include "common/cli-int.h"

typedef struct prime_range {
    uint64_t lo, hi; /* [lo, hi) */
    uint64_t count;  /* OUT */
} prime_range_t;

/* Trial division, deliberately simple: this is the tutorial's CPU-bound example. */
static bool is_prime(uint64_t n)
{
    if (n < 2) return false;
    if (n % 2 == 0) return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0) return false;
    return true;
}

static uint64_t count_primes(uint64_t lo, uint64_t hi)
{
    uint64_t c = 0;
    for (uint64_t n = lo; n < hi; n++) c += is_prime(n);
    return c;
}

static int range_task(void *item, void *arg)
{
    prime_range_t *r = item;
    r->count = count_primes(r->lo, r->hi);
    return 0;
}

/* The same work in a worker process: argument = two little-endian u64, result = one u64. */
static int proc_count_primes(const void *arg, size_t len, weft_buf_t *out)
{
    uint64_t b[2];
    if (len != sizeof b) return -EINVAL;
    memcpy(b, arg, sizeof b);
    uint64_t c = count_primes(b[0], b[1]);
    return weft_buf_append(out, &c, sizeof c);
}
WEFT_PROCPOOL_FN("demo.count_primes", proc_count_primes)

enum { NRANGES = 8 };

static void make_ranges(prime_range_t *r, uint64_t limit)
{
    for (int i = 0; i < NRANGES; i++) {
        r[i].lo = limit / NRANGES * (uint64_t)i;
        r[i].hi = i == NRANGES - 1 ? limit : limit / NRANGES * (uint64_t)(i + 1);
        r[i].count = 0;
    }
}

static int run_procs(prime_range_t *r, int workers, double *startup_ms)
{
    uint64_t t0 = weft_now_ns();
    weft_procpool_t *pp;
    weft_procpool_opts_t o = {.workers = workers};
    int rc = weft_procpool_create(&pp, &o);
    if (rc) return rc;
    *startup_ms = (double)(weft_now_ns() - t0) / 1e6;
    weft_future_t *f[NRANGES];
    int n = 0;
    for (; n < NRANGES; n++) {
        uint64_t b[2] = {r[n].lo, r[n].hi};
        if ((rc = weft_procpool_submit(pp, "demo.count_primes", b, sizeof b, 0, &f[n]))) break;
    }
    for (int i = 0; i < n; i++) {
        weft_future_wait(f[i], -1);
        size_t sz = 0;
        void *v = weft_future_value(f[i], &sz);
        if (!rc) rc = weft_future_status(f[i]);
        if (!rc && (!v || sz != sizeof r[i].count)) rc = -EPROTO;
        if (!rc) memcpy(&r[i].count, v, sizeof r[i].count);
        weft_future_release(f[i]);
    }
    weft_procpool_destroy(pp);
    return rc;
}

static int demo_primes(int argc, char **argv)
{
    uint64_t limit = 4000000;
    long workers = weft_cpu_count();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            if (weft_cli_parse_size(argv[++i], &limit) || limit < NRANGES)
                return weft_cli_usage_error("demo primes", "bad --limit '%s'", argv[i]);
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            if (weft_cli_parse_int(argv[++i], 1, 256, &workers))
                return weft_cli_usage_error("demo primes", "bad --workers '%s'", argv[i]);
        } else {
            return weft_cli_usage_error("demo primes",
                                        "unknown argument '%s' (options: --limit "
                                        "N, --workers N)",
                                        argv[i]);
        }
    }
    weft_demo_heading("primes: CPU-bound work on threads and on processes");
    printf("Counting primes below %" PRIu64 " by trial division, in %d ranges, %ld workers.\n\n",
           limit, NRANGES, workers);

    prime_range_t seq[NRANGES], thr[NRANGES], prc[NRANGES];
    make_ranges(seq, limit);
    make_ranges(thr, limit);
    make_ranges(prc, limit);

    uint64_t t0 = weft_now_ns();
    for (int i = 0; i < NRANGES; i++) range_task(&seq[i], NULL);
    double seq_ms = (double)(weft_now_ns() - t0) / 1e6;

    t0 = weft_now_ns();
    weft_pool_t *pool;
    weft_pool_opts_t po = {.threads = (int)workers, .name = "primes"};
    int rc = weft_pool_create(&pool, &po);
    if (!rc) {
        rc = weft_pool_map(pool, range_task, thr, NRANGES, sizeof thr[0], 1, NULL);
        weft_pool_destroy(pool);
    }
    double thr_ms = (double)(weft_now_ns() - t0) / 1e6;
    if (rc)
        return weft_cli_error("demo primes", WEFT_EXIT_INTERNAL, "thread pool: %s",
                              weft_strerror(rc));

    double startup_ms = 0;
    t0 = weft_now_ns();
    rc = run_procs(prc, (int)workers, &startup_ms);
    double prc_ms = (double)(weft_now_ns() - t0) / 1e6;
    if (rc)
        return weft_cli_error("demo primes", WEFT_EXIT_INTERNAL, "process pool: %s",
                              weft_strerror(rc));

    uint64_t total = 0;
    bool same = true;
    for (int i = 0; i < NRANGES; i++) {
        total += seq[i].count;
        same &= seq[i].count == thr[i].count && seq[i].count == prc[i].count;
    }
    printf("  %-22s %10s %9s  %s\n", "mode", "wall (ms)", "speed-up", "primes found");
    printf("  %-22s %10.1f %8.2fx  %" PRIu64 "\n", "sequential", seq_ms, 1.0, total);
    printf("  %-22s %10.1f %8.2fx  %s\n", "thread pool", thr_ms, seq_ms / thr_ms,
           same ? "same" : "DIFFERENT");
    printf("  %-22s %10.1f %8.2fx  %s (start-up %.1f ms)\n", "process pool", prc_ms,
           seq_ms / prc_ms, same ? "same" : "DIFFERENT", startup_ms);
    printf("\nC threads have no GIL, so on CPU-bound work threads scale just as processes do;\n"
           "processes add crash isolation and hard timeouts, and cost start-up and copying.\n");
    return same ? WEFT_EXIT_OK : WEFT_EXIT_FAILED;
}

WEFT_DEMO("primes", 10, demo_primes, "count primes in ranges: sequential vs threads vs processes")
