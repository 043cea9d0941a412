/* docs/sched.md example: the hybrid scheduler routing a CPU task to processes and an I/O task
 * to threads, a dependency carrying a result, a retry, and a graph whose failed task skips its
 * dependents. Built and run by ctest as example-sched. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft/err.h>
#include <weft/procpool.h>
#include <weft/sched.h>

/* CPU work, runnable in a worker process: the sum of the digit sums of 1..n. */
static int digit_sums(const void *arg, size_t len, weft_buf_t *out)
{
    long n = len ? atol(arg) : 0, total = 0;
    for (long i = 1; i <= n; i++)
        for (long x = i; x; x /= 10) total += x % 10;
    return weft_buf_printf(out, "%ld", total);
}
WEFT_PROCPOOL_FN("example.digit_sums", digit_sums)

/* I/O-like work on a thread: waits, and fails the first time (to show a retry). */
static atomic_int calls;
static int flaky_wait(void *arg, weft_ctx_t *ctx)
{
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
    if (atomic_fetch_add(&calls, 1) == 0) {
        weft_ctx_set_message(ctx, "connection reset (first try)");
        return -ECONNRESET;
    }
    return 0;
}

static int fail(void *arg, weft_ctx_t *ctx)
{
    weft_ctx_set_message(ctx, "tests failed");
    return -EPROTO;
}

static int ok(void *arg, weft_ctx_t *ctx)
{
    return 0;
}

int main(void)
{
    weft_sched_t *s;
    weft_sched_opts_t opts = {.procs = 2, .threads_min = 2, .threads_max = 8};
    int rc = weft_sched_create(&s, &opts);
    if (rc < 0) {
        fprintf(stderr, "weft_sched_create: %s\n", weft_strerror(rc));
        return 1;
    }

    /* 1. A CPU task (process form) and an I/O task that depends on it, with a retry policy. */
    weft_sched_task_t cpu = {.type = WEFT_SCHED_CPU,
                             .name = "digits",
                             .proc_fn = "example.digit_sums",
                             .proc_arg = "1000000",
                             .proc_len = 7};
    weft_sched_id_t id;
    weft_future_t *f1, *f2;
    if (weft_sched_submit(s, &cpu, &id, &f1) < 0) return 1;
    weft_sched_retry_t retry = {.attempts = 3, .backoff_ns = 10000000}; /* transient errors */
    weft_sched_task_t io = {.type = WEFT_SCHED_IO,
                            .name = "upload",
                            .fn = flaky_wait,
                            .deps = &id,
                            .ndeps = 1,
                            .retry = &retry,
                            .timeout_ns = 2000000000};
    weft_sched_id_t id2;
    if (weft_sched_submit(s, &io, &id2, &f2) < 0) return 1;
    weft_future_wait(f2, -1);
    weft_sched_info_t in;
    weft_sched_info(s, id2, &in);
    printf("digit sums up to 10^6: %s (on %s)\n", (char *)weft_future_value(f1, NULL), "processes");
    printf("upload: %s after %d attempts (first error %s)\n",
           weft_future_status(f2) == 0 ? "ok" : "failed", in.attempts,
           in.nerrors ? weft_err_name(in.errors[0]) : "-");
    weft_future_release(f1);
    weft_future_release(f2);

    /* 2. A graph: build -> test -> deploy, lint on the side; test fails, deploy is skipped. */
    weft_sched_graph_t *g;
    weft_sched_graph_create(&g);
    weft_sched_task_t t_ok = {.type = WEFT_SCHED_IO, .cls = "step", .fn = ok};
    weft_sched_task_t t_fail = {.type = WEFT_SCHED_IO, .cls = "step", .fn = fail};
    int build = weft_sched_graph_add(g, "build", &t_ok);
    int test = weft_sched_graph_add(g, "test", &t_fail);
    int deploy = weft_sched_graph_add(g, "deploy", &t_ok);
    weft_sched_graph_add(g, "lint", &t_ok);
    weft_sched_graph_depend(g, test, build);
    weft_sched_graph_depend(g, deploy, test);
    weft_buf_t why;
    weft_buf_init(&why, 0);
    if (weft_sched_graph_submit(s, g, &why) < 0) {
        fprintf(stderr, "submit: %s\n", why.data);
        return 1;
    }
    int all_ok = weft_sched_graph_wait(g, -1);
    for (int i = 0; i < (int)weft_sched_graph_size(g); i++) {
        weft_sched_graph_info(g, i, &in);
        const char *m = weft_future_message(weft_sched_graph_future(g, i));
        printf("  %-7s %-8s %s\n", weft_sched_graph_name(g, i), weft_sched_state_name(in.state),
               m ? m : "");
    }
    printf("graph: %s\n", all_ok == 0 ? "all succeeded" : "some failed (as planned)");
    weft_buf_free(&why);
    weft_sched_graph_destroy(g);

    /* 3. Why each class went where it did. */
    weft_buf_t st;
    weft_buf_init(&st, 0);
    weft_sched_stats_text(s, &st);
    fputs(strstr(st.data, "classes") ? strstr(st.data, "classes") : st.data, stdout);
    weft_buf_free(&st);
    weft_sched_destroy(s);
    return all_ok == 1 ? 0 : 1;
}
