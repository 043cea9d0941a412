/* docs/loop.md example: one caller-driven event loop that awaits thread-pool futures, runs a
 * timer, and makes an HTTP request (to a closed port, so that the example runs offline and
 * shows how a failed transfer looks). Built and run by ctest as example-loop. */
#include <stdio.h>
#include <stdlib.h>
#include <weft/err.h>
#include <weft/http.h>
#include <weft/loop.h>
#include <weft/pool.h>

typedef struct app {
    weft_loop_t *loop;
    int pending; /* loop thread only: no lock needed */
    long sum;
} app_t;

static void one_done(app_t *a)
{
    if (--a->pending == 0) weft_loop_stop(a->loop);
}

/* Runs on a pool worker. */
static int cube(void *arg, weft_ctx_t *ctx)
{
    long *v = malloc(sizeof *v);
    if (!v) return -ENOMEM;
    *v = (long)(intptr_t)arg * (long)(intptr_t)arg * (long)(intptr_t)arg;
    weft_ctx_set_value(ctx, v, sizeof *v, free);
    return 0;
}

/* Runs on the loop thread when a pool future completes. */
static void on_cube(weft_future_t *f, void *arg, int status)
{
    app_t *a = arg;
    if (status == 0 && weft_future_status(f) == 0) a->sum += *(long *)weft_future_value(f, NULL);
    one_done(a);
}

static void on_timer(weft_loop_timer_t *t, void *arg)
{
    printf("timer fired after 50 ms\n");
    weft_loop_timer_destroy(t);
    one_done(arg);
}

static void on_http(weft_http_t *h, weft_http_resp_t *resp, void *arg)
{
    printf("GET http://127.0.0.1:1/ -> %s (%s)\n", weft_err_name(resp->error), resp->errmsg);
    one_done(arg);
}

int main(void)
{
    app_t a = {0};
    weft_pool_t *pool;
    if (weft_loop_create(&a.loop, NULL) < 0 ||
        weft_pool_create(&pool, &(weft_pool_opts_t){.threads = 2}) < 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    /* Ten pool tasks; each result comes back to the loop thread. */
    for (long i = 1; i <= 10; i++) {
        weft_future_t *f;
        if (weft_pool_submit(pool, cube, (void *)(intptr_t)i, &f) == 0 &&
            weft_loop_await(a.loop, f, on_cube, &a) == 0)
            a.pending++;
        weft_future_release(f); /* the await holds its own reference */
    }
    /* A timer and an HTTP request, set up before the loop runs (allowed for a caller-driven loop
     * on the thread that will run it). */
    weft_loop_timer_t *t;
    if (weft_loop_timer_create(a.loop, on_timer, &a, &t) == 0 &&
        weft_loop_timer_start(t, 50, 0) == 0)
        a.pending++;
    weft_http_opts_t req = {.url = "http://127.0.0.1:1/", .connect_timeout_ms = 2000};
    if (weft_http_start(a.loop, &req, on_http, &a, NULL) == 0) a.pending++;

    weft_loop_run(a.loop); /* returns when the last callback calls weft_loop_stop */
    printf("sum of cubes 1..10 = %ld\n", a.sum);
    weft_pool_destroy(pool);
    weft_loop_destroy(a.loop);
    return a.sum == 3025 ? 0 : 1;
}
