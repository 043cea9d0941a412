/* docs/pool.md example: a thread pool squaring numbers three ways - a submitted task with a
 * future, caller-owned records in one batch, and map. Built and run by ctest as example-pool. */
#include <stdio.h>
#include <stdlib.h>
#include <weft/err.h>
#include <weft/pool.h>

static int square(void *arg, weft_ctx_t *ctx)
{
    long n = (long)(intptr_t)arg;
    if (n < 0) {
        weft_ctx_set_message(ctx, "cannot take %ld", n);
        return -EDOM;
    }
    long *v = malloc(sizeof *v);
    if (!v) return -ENOMEM;
    *v = n * n;
    weft_ctx_set_value(ctx, v, sizeof *v, free); /* the future frees it */
    return 0;
}

static int square_in_place(void *item, void *arg)
{
    long *v = item;
    *v *= *v;
    return 0;
}

int main(void)
{
    weft_pool_t *pool;
    weft_pool_opts_t opts = {.threads = 2, .queue_capacity = 1024, .name = "example"};
    int rc = weft_pool_create(&pool, &opts);
    if (rc < 0) {
        fprintf(stderr, "weft_pool_create: %s\n", weft_strerror(rc));
        return 1;
    }

    /* 1. One task, one future. */
    weft_future_t *f;
    if (weft_pool_submit(pool, square, (void *)(intptr_t)12, &f) == 0) {
        weft_future_wait(f, -1);
        if (weft_future_status(f) == 0) printf("12^2 = %ld\n", *(long *)weft_future_value(f, NULL));
        weft_future_release(f);
    }

    /* 2. Caller-owned records, queued with one call, no allocation by the pool. */
    weft_task_t tasks[4];
    long inputs[4] = {1, 2, -3, 4};
    for (int i = 0; i < 4; i++) weft_task_init(&tasks[i], square, (void *)(intptr_t)inputs[i]);
    weft_pool_submit_tasks(pool, tasks, 4);
    for (int i = 0; i < 4; i++) {
        weft_future_t *tf = &tasks[i].future;
        weft_future_wait(tf, -1);
        if (weft_future_status(tf) == 0)
            printf("%ld^2 = %ld\n", inputs[i], *(long *)weft_future_value(tf, NULL));
        else
            printf("%ld: %s (%s)\n", inputs[i], weft_strerror(weft_future_status(tf)),
                   weft_future_message(tf));
        weft_future_release(tf); /* frees the value; the record is ours again */
    }

    /* 3. map over an array, 100 items per task. */
    long items[1000];
    for (long i = 0; i < 1000; i++) items[i] = i;
    rc = weft_pool_map(pool, square_in_place, items, 1000, sizeof items[0], 100, NULL);
    printf("map: %s, items[999] = %ld\n", rc == 0 ? "ok" : weft_strerror(rc), items[999]);

    weft_pool_destroy(pool); /* waits for queued work, joins the threads */
    return 0;
}
