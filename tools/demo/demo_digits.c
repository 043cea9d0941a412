/* `weft demo digits`: the tutorial's exercise "sum of the digit sums of every number up to n",
 * for several n, on the process pool, checked equal to a single-thread run. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/buf.h>
#include <weft/err.h>
#include <weft/procpool.h>
#include <weft/sys.h>

#include "demo/demo.h"
#include "common/cli-int.h"

/* Sum over k in [lo, hi) of the digit sum of k (123 -> 1 + 2 + 3), the obvious way. */
static uint64_t digit_sums(uint64_t lo, uint64_t hi)
{
    uint64_t s = 0;
    for (uint64_t k = lo; k < hi; k++)
        for (uint64_t v = k; v; v /= 10) s += v % 10;
    return s;
}

static int proc_digit_sums(const void *arg, size_t len, weft_buf_t *out)
{
    uint64_t b[2];
    if (len != sizeof b) return -EINVAL;
    memcpy(b, arg, sizeof b);
    uint64_t s = digit_sums(b[0], b[1]);
    return weft_buf_append(out, &s, sizeof s);
}
WEFT_PROCPOOL_FN("demo.digit_sums", proc_digit_sums)

enum { MAX_NS = 16, PIECES = 16 };

/* Splits [1, n] into PIECES tasks per n, submits them all, then sums per n. */
static int parallel_sums(weft_procpool_t *pp, const uint64_t *ns, int count, uint64_t *sums)
{
    weft_future_t *f[MAX_NS * PIECES];
    int rc = 0, nf = 0;
    for (int i = 0; i < count && !rc; i++) {
        uint64_t step = ns[i] / PIECES + 1;
        for (int p = 0; p < PIECES; p++) {
            uint64_t b[2] = {1 + step * (uint64_t)p, 1 + step * (uint64_t)(p + 1)};
            if (b[1] > ns[i] + 1) b[1] = ns[i] + 1;
            if (b[0] > b[1]) b[0] = b[1];
            rc = weft_procpool_submit(pp, "demo.digit_sums", b, sizeof b, 0, &f[nf]);
            if (rc) break;
            nf++;
        }
    }
    for (int j = 0; j < nf; j++) {
        weft_future_wait(f[j], -1);
        size_t sz = 0;
        void *v = weft_future_value(f[j], &sz);
        if (!rc) rc = weft_future_status(f[j]);
        if (!rc && (!v || sz != sizeof(uint64_t))) rc = -EPROTO;
        if (!rc) {
            uint64_t s;
            memcpy(&s, v, sizeof s);
            sums[j / PIECES] += s;
        }
        weft_future_release(f[j]);
    }
    return rc;
}

static int demo_digits(int argc, char **argv)
{
    uint64_t ns[MAX_NS] = {1000000, 10000000, 30000000, 60000000};
    int count = 4;
    if (argc > 1) {
        count = 0;
        for (int i = 1; i < argc; i++) {
            if (count == MAX_NS || weft_cli_parse_size(argv[i], &ns[count]) || ns[count] == 0 ||
                ns[count] > UINT64_C(1) << 40)
                return weft_cli_usage_error("demo digits",
                                            "bad n '%s' (up to %d values, each "
                                            "1..2^40)",
                                            argv[i], MAX_NS);
            count++;
        }
    }
    weft_demo_heading("digits: sum of digit sums up to n, process pool vs one thread");
    uint64_t seq[MAX_NS] = {0}, par[MAX_NS] = {0};

    uint64_t t0 = weft_now_ns();
    for (int i = 0; i < count; i++) seq[i] = digit_sums(1, ns[i] + 1);
    double seq_ms = (double)(weft_now_ns() - t0) / 1e6;

    t0 = weft_now_ns();
    weft_procpool_t *pp;
    int rc = weft_procpool_create(&pp, NULL);
    if (!rc) {
        rc = parallel_sums(pp, ns, count, par);
        weft_procpool_destroy(pp);
    }
    double par_ms = (double)(weft_now_ns() - t0) / 1e6;
    if (rc)
        return weft_cli_error("demo digits", WEFT_EXIT_INTERNAL, "process pool: %s",
                              weft_strerror(rc));

    bool same = true;
    printf("  %14s %20s %20s  %s\n", "n", "one thread", "process pool", "check");
    for (int i = 0; i < count; i++) {
        same &= seq[i] == par[i];
        printf("  %14" PRIu64 " %20" PRIu64 " %20" PRIu64 "  %s\n", ns[i], seq[i], par[i],
               seq[i] == par[i] ? "equal" : "DIFFERENT");
    }
    printf("\n  one thread %.1f ms, process pool (%d workers, incl. start-up) %.1f ms: %.2fx\n",
           seq_ms, weft_cpu_count(), par_ms, seq_ms / par_ms);
    return same ? WEFT_EXIT_OK : WEFT_EXIT_FAILED;
}

WEFT_DEMO("digits", 11, demo_digits, "sum of digit sums up to n on processes, checked vs 1 thread")
