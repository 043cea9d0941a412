/* Tests for the thread pool (weft/pool.h): submission forms, backpressure, shutdown modes,
 * cancellation, map, resize, statistics, allocation failures, and stress tests in the
 * Concurrency Kit manner (threads released by a barrier; every task runs exactly once). */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft/pool.h>
#include <weft/sys.h>

static weft_pool_t *make_pool(int threads, size_t capacity, const char *name)
{
    weft_pool_opts_t o = {.threads = threads, .queue_capacity = capacity, .name = name};
    weft_pool_t *p = NULL;
    CHECK_EQ(weft_pool_create(&p, &o), 0);
    CHECK(p != NULL);
    return p;
}

/* A gate that blocks tasks until opened, and counts the tasks that reached it. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;
    bool open;
};

static void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->arrived = 0;
    g->open = false;
}

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

static void gate_wait_arrived(struct gate *g, int n)
{
    pthread_mutex_lock(&g->mu);
    while (g->arrived < n) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(struct gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static int count_task(void *arg, weft_ctx_t *ctx)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static int nop_task(void *arg, weft_ctx_t *ctx)
{
    return 0;
}

/* ---- basics ---- */

TEST(create_with_defaults_and_bad_options)
{
    weft_pool_t *p = (weft_pool_t *)&p;
    weft_pool_opts_t bad = {.threads = -1};
    CHECK_EQ(weft_pool_create(&p, &bad), -EINVAL);
    CHECK(p == NULL);
    bad.threads = 1025;
    CHECK_EQ(weft_pool_create(&p, &bad), -EINVAL);
    CHECK_EQ(weft_pool_create(&p, NULL), 0);
    weft_pool_stats_t st;
    weft_pool_stats(p, &st);
    CHECK_EQ(st.threads, weft_cpu_count());
    CHECK_EQ(st.queued, 0);
    weft_pool_destroy(p);
    weft_pool_destroy(NULL);
}

static int value_task(void *arg, weft_ctx_t *ctx)
{
    int n = (int)(intptr_t)arg;
    if (n < 0) {
        weft_ctx_set_message(ctx, "item %d is negative", n);
        return -EDOM;
    }
    int *v = malloc(sizeof *v);
    if (!v) return -ENOMEM;
    *v = n * n;
    weft_ctx_set_value(ctx, v, sizeof *v, free);
    return 0;
}

TEST(submit_returns_future_with_value_status_and_message)
{
    weft_pool_t *p = make_pool(2, 0, NULL);
    weft_future_t *ok, *bad;
    CHECK_EQ(weft_pool_submit(p, value_task, (void *)(intptr_t)12, &ok), 0);
    CHECK_EQ(weft_pool_submit(p, value_task, (void *)(intptr_t)-3, &bad), 0);
    CHECK_EQ(weft_future_wait(ok, -1), 0);
    CHECK_EQ(weft_future_wait(bad, -1), 0);
    size_t n;
    CHECK_EQ(*(int *)weft_future_value(ok, &n), 144);
    CHECK_EQ(n, sizeof(int));
    CHECK_EQ(weft_future_status(bad), -EDOM);
    CHECK_STR_EQ(weft_future_message(bad), "item -3 is negative");
    CHECK_EQ(weft_pool_submit(p, nop_task, NULL, NULL), 0); /* no future wanted */
    weft_pool_destroy(p);
    weft_future_release(ok);
    weft_future_release(bad);
}

TEST(caller_owned_records_run_without_allocation)
{
    weft_pool_t *p = make_pool(2, 0, NULL);
    atomic_int count = 0;
    weft_task_t ts[64];
    for (int i = 0; i < 64; i++) {
        weft_task_init(&ts[i], count_task, &count);
        CHECK_EQ(weft_pool_submit_task(p, &ts[i]), 0);
    }
    for (int i = 0; i < 64; i++) {
        CHECK_EQ(weft_future_wait(&ts[i].future, -1), 0);
        CHECK_EQ(weft_future_status(&ts[i].future), 0);
        weft_future_release(&ts[i].future);
    }
    CHECK_EQ(atomic_load(&count), 64);
    /* A record whose future is not PENDING is refused. */
    weft_task_init(&ts[0], count_task, &count);
    CHECK_EQ(weft_future_cancel(&ts[0].future), 0);
    CHECK_EQ(weft_pool_submit_task(p, &ts[0]), -EALREADY);
    weft_future_release(&ts[0].future);
    weft_pool_destroy(p);
}

/* ---- misuse is diagnosed (issue 8, bug 6) ---- */

/* Submitting a record that is still queued used to link it into the queue twice: two workers
 * then span forever on the cycle. Now the second submission is refused with -EBUSY. */
TEST_T(double_submit_of_a_queued_record_returns_ebusy, 20)
{
    weft_pool_t *p = make_pool(1, 0, NULL);
    struct gate g;
    gate_init(&g);
    weft_task_t block, t;
    weft_task_init(&block, gate_task, &g);
    CHECK_EQ(weft_pool_submit_task(p, &block), 0);
    gate_wait_arrived(&g, 1); /* the only worker is busy: t stays queued */
    atomic_int count = 0;
    weft_task_init(&t, count_task, &count);
    CHECK_EQ(weft_pool_submit_task(p, &t), 0);
    CHECK_EQ(weft_pool_submit_task(p, &t), -EBUSY);
    CHECK_EQ(weft_pool_try_submit_task(p, &t), -EBUSY);
    CHECK_EQ(weft_pool_submit_tasks(p, &t, 1), -EBUSY);
    gate_open(&g);
    CHECK_EQ(weft_future_wait(&t.future, -1), 0);
    CHECK_EQ(weft_future_status(&t.future), 0);
    CHECK_EQ(atomic_load(&count), 1);
    CHECK_EQ(weft_pool_submit_task(p, &t), -EALREADY); /* DONE: not PENDING */
    CHECK_EQ(weft_future_wait(&block.future, -1), 0);
    weft_future_release(&t.future);
    weft_future_release(&block.future);
    CHECK_EQ(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

struct self_destroy {
    weft_pool_t *p;
    int destroy_rc, map_rc;
};

static int add_one(void *item, void *arg)
{
    (*(int *)item)++;
    return 0;
}

static int self_destroy_task(void *arg, weft_ctx_t *ctx)
{
    struct self_destroy *sd = arg;
    int item = 0;
    sd->map_rc = weft_pool_map(sd->p, add_one, &item, 1, sizeof item, 0, NULL);
    sd->destroy_rc = weft_pool_destroy(sd->p); /* used to free the pool under this worker */
    return 0;
}

TEST_T(destroy_and_map_from_own_task_return_edeadlk, 20)
{
    weft_pool_t *p = make_pool(1, 0, NULL);
    struct self_destroy sd = {.p = p, .destroy_rc = 1, .map_rc = 1};
    weft_future_t *f;
    CHECK_EQ(weft_pool_submit(p, self_destroy_task, &sd, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), 0);
    weft_future_release(f);
    CHECK_EQ(sd.destroy_rc, -EDEADLK);
    CHECK_EQ(sd.map_rc, -EDEADLK);
    /* The pool is intact: it still runs work, and destroy from outside works. */
    atomic_int count = 0;
    CHECK_EQ(weft_pool_submit(p, count_task, &count, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    weft_future_release(f);
    CHECK_EQ(atomic_load(&count), 1);
    CHECK_EQ(weft_pool_destroy(p), 0);
    CHECK_EQ(weft_pool_destroy(NULL), 0);
}

TEST(null_pool_or_fn_returns_einval)
{
    weft_future_t *f = (weft_future_t *)1;
    CHECK_EQ(weft_pool_create(NULL, NULL), -EINVAL);
    CHECK_EQ(weft_pool_submit(NULL, nop_task, NULL, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK_EQ(weft_pool_try_submit(NULL, nop_task, NULL, NULL), -EINVAL);
    weft_task_t t;
    weft_task_init(&t, nop_task, NULL);
    CHECK_EQ(weft_pool_submit_task(NULL, &t), -EINVAL);
    CHECK_EQ(weft_pool_try_submit_task(NULL, &t), -EINVAL);
    CHECK_EQ(weft_pool_submit_tasks(NULL, &t, 1), -EINVAL);
    CHECK_EQ(weft_pool_shutdown(NULL, WEFT_SHUTDOWN_WAIT), -EINVAL);
    CHECK_EQ(weft_pool_resize(NULL, 2), -EINVAL);
    int item = 0;
    CHECK_EQ(weft_pool_map(NULL, add_one, &item, 1, sizeof item, 0, NULL), -EINVAL);
    weft_pool_t *p = make_pool(1, 0, NULL);
    f = (weft_future_t *)1;
    CHECK_EQ(weft_pool_submit(p, NULL, NULL, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK_EQ(weft_pool_try_submit(p, NULL, NULL, NULL), -EINVAL);
    weft_task_t nofn;
    weft_task_init(&nofn, NULL, NULL);
    CHECK_EQ(weft_pool_submit_task(p, &nofn), -EINVAL);
    CHECK_EQ(weft_pool_submit_task(p, NULL), -EINVAL);
    weft_task_t two[2];
    weft_task_init(&two[0], nop_task, NULL);
    weft_task_init(&two[1], NULL, NULL);
    CHECK_EQ(weft_pool_submit_tasks(p, two, 2), -EINVAL);
    CHECK(!weft_future_done(&two[0].future));  /* nothing was queued */
    CHECK_EQ(weft_pool_submit_task(p, &t), 0); /* t was left untouched and still works */
    CHECK_EQ(weft_future_wait(&t.future, -1), 0);
    weft_future_release(&t.future);
    weft_future_release(&two[0].future);
    weft_future_release(&two[1].future);
    weft_future_release(&nofn.future);
    CHECK_EQ(weft_pool_destroy(p), 0);
}

static int name_task(void *arg, weft_ctx_t *ctx)
{
    pthread_getname_np(pthread_self(), arg, 16);
    return 0;
}

TEST(workers_are_named_prefix_index)
{
    weft_pool_t *p = make_pool(1, 0, "averylongprefix");
    char name[16] = "";
    weft_future_t *f;
    CHECK_EQ(weft_pool_submit(p, name_task, name, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_STR_EQ(name, "averylongp-0");
    weft_future_release(f);
    weft_pool_destroy(p);
}

struct where {
    pthread_t thread;
    atomic_int calls;
};

static void where_cb(weft_future_t *f, void *arg)
{
    struct where *w = arg;
    w->thread = pthread_self();
    atomic_fetch_add(&w->calls, 1);
}

static int self_task(void *arg, weft_ctx_t *ctx)
{
    *(pthread_t *)arg = pthread_self();
    return 0;
}

TEST(completion_callbacks_run_once_on_the_worker)
{
    weft_pool_t *p = make_pool(1, 0, NULL);
    struct gate g;
    gate_init(&g);
    weft_future_t *gf, *f;
    CHECK_EQ(weft_pool_submit(p, gate_task, &g, &gf), 0);
    pthread_t worker;
    CHECK_EQ(weft_pool_submit(p, self_task, &worker, &f), 0);
    struct where w = {0};
    CHECK_EQ(weft_future_on_complete(f, where_cb, &w), 0);
    gate_open(&g);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    weft_pool_destroy(p); /* joins: the callback has run */
    CHECK_EQ(atomic_load(&w.calls), 1);
    CHECK(pthread_equal(w.thread, worker));
    weft_future_release(gf);
    weft_future_release(f);
    gate_destroy(&g);
}

/* ---- backpressure ---- */

TEST(try_submit_returns_eagain_on_a_full_queue)
{
    weft_pool_t *p = make_pool(1, 2, NULL);
    struct gate g;
    gate_init(&g);
    CHECK_EQ(weft_pool_submit(p, gate_task, &g, NULL), 0);
    gate_wait_arrived(&g, 1); /* the only worker is blocked: the queue is empty */
    atomic_int count = 0;
    weft_future_t *f1, *f2, *f3 = (weft_future_t *)&f3;
    CHECK_EQ(weft_pool_try_submit(p, count_task, &count, &f1), 0);
    CHECK_EQ(weft_pool_try_submit(p, count_task, &count, &f2), 0);
    CHECK_EQ(weft_pool_try_submit(p, count_task, &count, &f3), -EAGAIN);
    CHECK(f3 == NULL);
    weft_task_t t;
    weft_task_init(&t, count_task, &count);
    CHECK_EQ(weft_pool_try_submit_task(p, &t), -EAGAIN);
    weft_pool_stats_t st;
    weft_pool_stats(p, &st);
    CHECK_EQ(st.queued, 2);
    CHECK_EQ(st.running, 1);
    gate_open(&g);
    CHECK_EQ(weft_pool_submit_task(p, &t), 0); /* blocks until there is room */
    CHECK_EQ(weft_future_wait(&t.future, -1), 0);
    CHECK_EQ(weft_future_wait(f1, -1), 0);
    CHECK_EQ(weft_future_wait(f2, -1), 0);
    CHECK_EQ(atomic_load(&count), 3);
    weft_future_release(&t.future);
    weft_future_release(f1);
    weft_future_release(f2);
    weft_pool_destroy(p);
    gate_destroy(&g);
}

struct blocked_submit {
    weft_pool_t *p;
    atomic_int *count;
    int rc;
};

static void *submit_blocking(void *arg)
{
    struct blocked_submit *b = arg;
    b->rc = weft_pool_submit(b->p, count_task, b->count, NULL);
    return NULL;
}

TEST(blocked_submit_wakes_on_shutdown_with_eshutdown)
{
    weft_pool_t *p = make_pool(1, 1, NULL);
    struct gate g;
    gate_init(&g);
    CHECK_EQ(weft_pool_submit(p, gate_task, &g, NULL), 0);
    gate_wait_arrived(&g, 1);
    atomic_int count = 0;
    CHECK_EQ(weft_pool_submit(p, count_task, &count, NULL), 0); /* fills the queue */
    struct blocked_submit b = {p, &count, 1};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, submit_blocking, &b), 0);
    /* Usually the submitter is blocked by now; either way shutdown must release it. */
    usleep(2000);
    CHECK_EQ(weft_pool_shutdown(p, WEFT_SHUTDOWN_CANCEL), 0);
    pthread_join(t, NULL);
    CHECK(b.rc == -ESHUTDOWN || b.rc == 0);
    gate_open(&g);
    weft_pool_destroy(p);
    gate_destroy(&g);
}

/* ---- shutdown and cancel ---- */

TEST(shutdown_wait_runs_queued_then_rejects)
{
    weft_pool_t *p = make_pool(1, 0, NULL);
    struct gate g;
    gate_init(&g);
    CHECK_EQ(weft_pool_submit(p, gate_task, &g, NULL), 0);
    gate_wait_arrived(&g, 1);
    atomic_int count = 0;
    for (int i = 0; i < 10; i++) CHECK_EQ(weft_pool_submit(p, count_task, &count, NULL), 0);
    CHECK_EQ(weft_pool_shutdown(p, WEFT_SHUTDOWN_WAIT), 0);
    CHECK_EQ(weft_pool_shutdown(p, WEFT_SHUTDOWN_CANCEL), -EALREADY);
    weft_future_t *f = (weft_future_t *)&f;
    CHECK_EQ(weft_pool_submit(p, count_task, &count, &f), -ESHUTDOWN);
    CHECK(f == NULL);
    weft_task_t t;
    weft_task_init(&t, count_task, &count);
    CHECK_EQ(weft_pool_submit_task(p, &t), -ESHUTDOWN);
    CHECK_EQ(weft_pool_resize(p, 2), -ESHUTDOWN);
    gate_open(&g);
    weft_pool_destroy(p);
    CHECK_EQ(atomic_load(&count), 10);
    CHECK(!weft_future_done(&t.future)); /* refused records stay the caller's, untouched */
    weft_future_release(&t.future);
    gate_destroy(&g);
}

TEST(shutdown_cancel_completes_queued_with_ecanceled)
{
    weft_pool_t *p = make_pool(1, 0, NULL);
    struct gate g;
    gate_init(&g);
    weft_future_t *running;
    CHECK_EQ(weft_pool_submit(p, gate_task, &g, &running), 0);
    gate_wait_arrived(&g, 1);
    atomic_int count = 0;
    weft_future_t *fs[5];
    weft_task_t ts[5];
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(weft_pool_submit(p, count_task, &count, &fs[i]), 0);
        weft_task_init(&ts[i], count_task, &count);
        CHECK_EQ(weft_pool_submit_task(p, &ts[i]), 0);
    }
    CHECK_EQ(weft_pool_shutdown(p, WEFT_SHUTDOWN_CANCEL), 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(weft_future_status(fs[i]), -ECANCELED); /* DONE at once */
        CHECK_EQ(weft_future_status(&ts[i].future), -ECANCELED);
    }
    CHECK(!weft_future_done(running)); /* the running task is not interrupted */
    gate_open(&g);
    weft_pool_destroy(p);
    CHECK_EQ(weft_future_status(running), 0);
    CHECK_EQ(atomic_load(&count), 0);
    for (int i = 0; i < 5; i++) {
        weft_future_release(fs[i]);
        weft_future_release(&ts[i].future);
    }
    weft_future_release(running);
    gate_destroy(&g);
}

static int poll_cancel_task(void *arg, weft_ctx_t *ctx)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    while (!weft_ctx_cancelled(ctx)) sched_yield();
    weft_ctx_set_message(ctx, "stopped on request");
    return -ECANCELED;
}

TEST(cancel_queued_running_and_done_tasks)
{
    weft_pool_t *p = make_pool(1, 0, NULL);
    struct gate g;
    gate_init(&g);
    weft_future_t *running;
    CHECK_EQ(weft_pool_submit(p, poll_cancel_task, &g, &running), 0);
    gate_wait_arrived(&g, 1);
    atomic_int count = 0;
    weft_future_t *heap;
    CHECK_EQ(weft_pool_submit(p, count_task, &count, &heap), 0);
    weft_task_t own;
    weft_task_init(&own, count_task, &count);
    CHECK_EQ(weft_pool_submit_task(p, &own), 0);
    /* A heap record is cancelled at once; a caller-owned one when the worker reaches it. */
    CHECK_EQ(weft_future_cancel(heap), 0);
    CHECK_EQ(weft_future_status(heap), -ECANCELED);
    CHECK_EQ(weft_future_cancel(&own.future), 0);
    CHECK_EQ(weft_future_cancel(running), -EBUSY);
    CHECK_EQ(weft_future_wait(running, -1), 0);
    CHECK_EQ(weft_future_status(running), -ECANCELED);
    CHECK_STR_EQ(weft_future_message(running), "stopped on request");
    CHECK_EQ(weft_future_wait(&own.future, -1), 0);
    CHECK_EQ(weft_future_status(&own.future), -ECANCELED);
    CHECK_EQ(weft_future_cancel(&own.future), -EALREADY);
    weft_pool_destroy(p);
    CHECK_EQ(atomic_load(&count), 0);
    weft_future_release(heap);
    weft_future_release(&own.future);
    weft_future_release(running);
    gate_destroy(&g);
}

TEST(stats_count_completed_failed_cancelled)
{
    weft_pool_t *p = make_pool(1, 0, NULL);
    struct gate g;
    gate_init(&g);
    CHECK_EQ(weft_pool_submit(p, gate_task, &g, NULL), 0);
    gate_wait_arrived(&g, 1);
    weft_future_t *fs[6];
    for (int i = 0; i < 6; i++)
        CHECK_EQ(weft_pool_submit(p, value_task, (void *)(intptr_t)(i < 2 ? -1 : i), &fs[i]), 0);
    CHECK_EQ(weft_future_cancel(fs[5]), 0);
    gate_open(&g);
    CHECK_EQ(weft_future_wait_all(fs, 6, -1), 0);
    /* Counters are updated after a future completes; wait until all 7 are counted. */
    weft_pool_stats_t st;
    do {
        weft_pool_stats(p, &st);
    } while (st.completed + st.cancelled < 7);
    CHECK_EQ(st.completed, 6); /* the gate and five value tasks */
    CHECK_EQ(st.failed, 2);
    CHECK_EQ(st.cancelled, 1);
    CHECK_EQ(st.running, 0);
    CHECK(st.wait_ns_sum > 0); /* six tasks waited behind the gate */
    weft_pool_destroy(p);
    for (int i = 0; i < 6; i++) weft_future_release(fs[i]);
    gate_destroy(&g);
}

TEST(stats_after_concurrent_work)
{
    weft_pool_t *p = make_pool(2, 0, NULL);
    weft_future_t *fs[6];
    for (int i = 0; i < 6; i++)
        CHECK_EQ(weft_pool_submit(p, value_task, (void *)(intptr_t)(i < 2 ? -1 : i), &fs[i]), 0);
    CHECK_EQ(weft_future_wait_all(fs, 6, -1), 0);
    /* Counters are updated after the future completes; wait for them to settle. */
    weft_pool_stats_t st;
    do {
        weft_pool_stats(p, &st);
    } while (st.completed < 6);
    CHECK_EQ(st.completed, 6);
    CHECK_EQ(st.failed, 2);
    CHECK_EQ(st.cancelled, 0);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.threads, 2);
    for (int i = 0; i < 6; i++) weft_future_release(fs[i]);
    weft_pool_destroy(p);
}

TEST(idle_workers_use_no_cpu)
{
    weft_pool_t *p = make_pool(2, 0, NULL);
    atomic_int count = 0;
    for (int i = 0; i < 100; i++) CHECK_EQ(weft_pool_submit(p, count_task, &count, NULL), 0);
    struct timespec a, b;
    usleep(20000);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    usleep(200000);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    double cpu_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    /* Two spinning workers would burn ~400 ms here; sleeping ones burn ~0. */
    CHECK_MSG(cpu_ms < 50, "idle pool used %.1f ms of CPU in 200 ms", cpu_ms);
    weft_pool_destroy(p);
    CHECK_EQ(atomic_load(&count), 100);
}

/* ---- batches and map ---- */

TEST(batched_submit_larger_than_the_queue)
{
    weft_pool_t *p = make_pool(2, 16, NULL);
    enum { N = 1000 };
    static weft_task_t ts[N];
    atomic_int count = 0;
    for (int i = 0; i < N; i++) weft_task_init(&ts[i], count_task, &count);
    CHECK_EQ(weft_pool_submit_tasks(p, ts, N), 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(weft_future_wait(&ts[i].future, -1), 0);
        CHECK_EQ(weft_future_status(&ts[i].future), 0);
        weft_future_release(&ts[i].future);
    }
    CHECK_EQ(atomic_load(&count), N);
    weft_pool_destroy(p);
}

TEST(batched_submit_after_shutdown_completes_records_with_eshutdown)
{
    weft_pool_t *p = make_pool(1, 0, NULL);
    weft_pool_shutdown(p, WEFT_SHUTDOWN_WAIT);
    weft_task_t ts[3];
    atomic_int count = 0;
    for (int i = 0; i < 3; i++) weft_task_init(&ts[i], count_task, &count);
    CHECK_EQ(weft_pool_submit_tasks(p, ts, 3), -ESHUTDOWN);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft_future_status(&ts[i].future), -ESHUTDOWN);
        weft_future_release(&ts[i].future);
    }
    weft_pool_destroy(p);
    CHECK_EQ(atomic_load(&count), 0);
}

static int square_item(void *item, void *arg)
{
    long *v = item;
    if (arg && (*v == 500 || *v == 700)) return *v == 500 ? -EDOM : -ERANGE;
    *v = *v * *v;
    return 0;
}

TEST(map_with_several_chunk_sizes_and_errors)
{
    weft_pool_t *p = make_pool(2, 8, NULL);
    enum { N = 1000 };
    static long items[N];
    size_t sizes[] = {0, 1, 3, 7, 64, 999, 1000, 5000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (long i = 0; i < N; i++) items[i] = i;
        CHECK_EQ(weft_pool_map(p, square_item, items, N, sizeof(long), sizes[s], NULL), 0);
        for (long i = 0; i < N; i++) CHECK_EQ(items[i], i * i);
        for (long i = 0; i < N; i++) items[i] = i;
        /* Items 500 and 700 fail: the error is that of the lowest index. */
        CHECK_EQ(weft_pool_map(p, square_item, items, N, sizeof(long), sizes[s], p), -EDOM);
        for (long i = 0; i < 500; i++) CHECK_EQ(items[i], i * i);
    }
    CHECK_EQ(weft_pool_map(p, square_item, items, 0, sizeof(long), 0, NULL), 0);
    CHECK_EQ(weft_pool_map(p, square_item, items, N, 0, 0, NULL), -EINVAL);
    weft_pool_shutdown(p, WEFT_SHUTDOWN_WAIT);
    CHECK_EQ(weft_pool_map(p, square_item, items, N, sizeof(long), 10, NULL), -ESHUTDOWN);
    weft_pool_destroy(p);
}

/* ---- resize ---- */

static void wait_threads(weft_pool_t *p, int n)
{
    for (;;) {
        weft_pool_stats_t st;
        weft_pool_stats(p, &st);
        if (st.threads == n) return;
        usleep(1000);
    }
}

TEST(resize_grows_and_shrinks)
{
    weft_pool_t *p = make_pool(1, 0, NULL);
    CHECK_EQ(weft_pool_resize(p, 0), -EINVAL);
    CHECK_EQ(weft_pool_resize(p, 1025), -EINVAL);
    CHECK_EQ(weft_pool_resize(p, 4), 0);
    wait_threads(p, 4);
    struct gate g;
    gate_init(&g);
    for (int i = 0; i < 4; i++) CHECK_EQ(weft_pool_submit(p, gate_task, &g, NULL), 0);
    gate_wait_arrived(&g, 4); /* four tasks at once: four threads */
    gate_open(&g);
    CHECK_EQ(weft_pool_resize(p, 1), 0);
    wait_threads(p, 1);
    atomic_int count = 0;
    for (int i = 0; i < 100; i++) CHECK_EQ(weft_pool_submit(p, count_task, &count, NULL), 0);
    CHECK_EQ(weft_pool_resize(p, 3), 0);
    weft_pool_destroy(p);
    CHECK_EQ(atomic_load(&count), 100);
    gate_destroy(&g);
}

/* ---- stress ---- */

enum { STRESS_SUBMITTERS = 4 };

struct stress {
    weft_pool_t *p;
    pthread_barrier_t bar;
    atomic_uchar *ran; /* per task: how often it ran */
    long per_thread;
    atomic_long accepted, rejected;
    atomic_bool stop;
};

static int mark_id_task(void *arg, weft_ctx_t *ctx)
{
    atomic_fetch_add((atomic_uchar *)arg, 1);
    return 0;
}

struct submitter {
    struct stress *s;
    int index;
};

/* Submits per_thread tasks, mixing the three forms. */
static void *submit_mixed(void *arg)
{
    struct submitter *sub = arg;
    struct stress *s = sub->s;
    long base = sub->index * s->per_thread;
    weft_task_t batch[32];
    pthread_barrier_wait(&s->bar);
    for (long i = 0; i < s->per_thread;) {
        long id = base + i;
        switch (i % 3) {
        case 0:
            CHECK_EQ(weft_pool_submit(s->p, mark_id_task, &s->ran[id], NULL), 0);
            i++;
            break;
        case 1: {
            weft_task_t t;
            weft_task_init(&t, mark_id_task, &s->ran[id]);
            CHECK_EQ(weft_pool_submit_task(s->p, &t), 0);
            CHECK_EQ(weft_future_wait(&t.future, -1), 0);
            weft_future_release(&t.future);
            i++;
            break;
        }
        default: {
            long k = 0;
            for (; k < 32 && i + k < s->per_thread; k++)
                weft_task_init(&batch[k], mark_id_task, &s->ran[id + k]);
            CHECK_EQ(weft_pool_submit_tasks(s->p, batch, (size_t)k), 0);
            for (long j = 0; j < k; j++) {
                CHECK_EQ(weft_future_wait(&batch[j].future, -1), 0);
                weft_future_release(&batch[j].future);
            }
            i += k;
        }
        }
    }
    return NULL;
}

static void run_submitters(struct stress *s, void *(*fn)(void *), int n)
{
    pthread_t t[STRESS_SUBMITTERS];
    struct submitter subs[STRESS_SUBMITTERS];
    pthread_barrier_init(&s->bar, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        subs[i] = (struct submitter){s, i};
        CHECK_EQ(pthread_create(&t[i], NULL, fn, &subs[i]), 0);
    }
    pthread_barrier_wait(&s->bar);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&s->bar);
}

TEST(stress_n_submitters_every_task_runs_exactly_once)
{
    struct stress s = {0};
    s.p = make_pool(3, 64, NULL);
    s.per_thread = weft_test_scale(20000);
    long total = s.per_thread * STRESS_SUBMITTERS;
    s.ran = calloc((size_t)total, 1);
    CHECK(s.ran != NULL);
    run_submitters(&s, submit_mixed, STRESS_SUBMITTERS);
    weft_pool_destroy(s.p); /* WAIT: everything queued has run */
    for (long i = 0; i < total; i++) CHECK_MSG(s.ran[i] == 1, "task %ld ran %d times", i, s.ran[i]);
    free(s.ran);
}

/* Submits until the pool refuses; counts what it accepted, remembering the futures. */
static void *submit_until_shutdown(void *arg)
{
    struct submitter *sub = arg;
    struct stress *s = sub->s;
    long base = sub->index * s->per_thread;
    pthread_barrier_wait(&s->bar);
    for (long i = 0; i < s->per_thread; i++) {
        int rc;
        if (i & 1) {
            rc = weft_pool_submit(s->p, mark_id_task, &s->ran[base + i], NULL);
        } else {
            weft_future_t *f;
            rc = weft_pool_submit(s->p, mark_id_task, &s->ran[base + i], &f);
            if (rc == 0) {
                CHECK_EQ(weft_future_wait(f, -1), 0);
                int st = weft_future_status(f);
                CHECK(st == 0 || st == -ECANCELED);
                weft_future_release(f);
            }
        }
        if (rc == -ESHUTDOWN) {
            atomic_fetch_add(&s->rejected, 1);
            break;
        }
        CHECK_EQ(rc, 0);
        atomic_fetch_add(&s->accepted, 1);
    }
    return NULL;
}

struct shutter {
    struct stress *s;
    weft_shutdown_t mode;
    long after;
};

static void *shut_down_midway(void *arg)
{
    struct shutter *sh = arg;
    while (atomic_load(&sh->s->accepted) < sh->after) sched_yield();
    weft_pool_shutdown(sh->s->p, sh->mode);
    return NULL;
}

TEST(stress_shutdown_racing_submit)
{
    long rounds = weft_test_scale(40);
    for (long r = 0; r < rounds; r++) {
        struct stress s = {0};
        s.p = make_pool(2, 32, NULL);
        s.per_thread = 2000;
        long total = s.per_thread * STRESS_SUBMITTERS;
        s.ran = calloc((size_t)total, 1);
        CHECK(s.ran != NULL);
        struct shutter sh = {&s, (r & 1) ? WEFT_SHUTDOWN_CANCEL : WEFT_SHUTDOWN_WAIT,
                             (r * 97) % 3000};
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, shut_down_midway, &sh), 0);
        run_submitters(&s, submit_until_shutdown, STRESS_SUBMITTERS);
        pthread_join(t, NULL);
        weft_pool_destroy(s.p);
        long ran = 0;
        for (long i = 0; i < total; i++) {
            CHECK(s.ran[i] <= 1);
            ran += s.ran[i];
        }
        CHECK(ran <= atomic_load(&s.accepted));
        if (sh.mode == WEFT_SHUTDOWN_WAIT) CHECK_EQ(ran, atomic_load(&s.accepted));
        free(s.ran);
    }
}

struct cancel_race {
    weft_future_t **fs;
    long n;
    atomic_long published; /* fs[0..published) are submitted */
    pthread_barrier_t *bar;
    int *cancel_rc;
};

static void *cancel_all(void *arg)
{
    struct cancel_race *c = arg;
    pthread_barrier_wait(c->bar);
    for (long i = 0; i < c->n; i++) {
        while (atomic_load(&c->published) <= i) sched_yield();
        c->cancel_rc[i] = weft_future_cancel(c->fs[i]);
    }
    return NULL;
}

TEST(stress_cancel_racing_start)
{
    weft_pool_t *p = make_pool(2, 0, NULL);
    long n = weft_test_scale(20000);
    atomic_uchar *ran = calloc((size_t)n, 1);
    weft_future_t **fs = calloc((size_t)n, sizeof *fs);
    weft_task_t *ts = calloc((size_t)n, sizeof *ts);
    int *rcs = calloc((size_t)n, sizeof *rcs);
    CHECK(ran && fs && ts && rcs);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    struct cancel_race c = {fs, n, 0, &bar, rcs};
    pthread_t t;
    /* Half heap records, half caller-owned; the canceller races the workers. */
    for (long i = 0; i < n; i++) {
        if (i & 1) {
            weft_task_init(&ts[i], mark_id_task, &ran[i]);
            fs[i] = &ts[i].future;
        }
    }
    CHECK_EQ(pthread_create(&t, NULL, cancel_all, &c), 0);
    for (long i = 0; i < n; i++) {
        if (i & 1)
            CHECK_EQ(weft_pool_submit_task(p, &ts[i]), 0);
        else
            CHECK_EQ(weft_pool_submit(p, mark_id_task, &ran[i], &fs[i]), 0);
        atomic_store(&c.published, i + 1);
        if (i == 0) pthread_barrier_wait(&bar);
    }
    pthread_join(t, NULL);
    long cancelled = 0;
    for (long i = 0; i < n; i++) {
        CHECK_EQ(weft_future_wait(fs[i], -1), 0);
        int st = weft_future_status(fs[i]);
        if (st == -ECANCELED) {
            CHECK_EQ(rcs[i], 0);
            CHECK_EQ(ran[i], 0);
            cancelled++;
        } else {
            CHECK_EQ(st, 0);
            CHECK(rcs[i] == -EBUSY || rcs[i] == -EALREADY);
            CHECK_EQ(ran[i], 1);
        }
        weft_future_release(fs[i]);
    }
    weft_pool_destroy(p);
    pthread_barrier_destroy(&bar);
    free(ran);
    free(fs);
    free(ts);
    free(rcs);
    (void)cancelled; /* how many lost the race varies; the invariants above are what count */
}

struct resizer {
    weft_pool_t *p;
    atomic_bool *stop;
};

static void *resize_loop(void *arg)
{
    struct resizer *r = arg;
    unsigned k = 1;
    while (!atomic_load(r->stop)) {
        k = k * 1103515245u + 12345u;
        CHECK_EQ(weft_pool_resize(r->p, 1 + (int)((k >> 16) % 4)), 0);
        sched_yield();
    }
    return NULL;
}

TEST(stress_resize_under_load)
{
    struct stress s = {0};
    s.p = make_pool(2, 64, NULL);
    s.per_thread = weft_test_scale(10000);
    long total = s.per_thread * 2;
    s.ran = calloc((size_t)total, 1);
    CHECK(s.ran != NULL);
    atomic_bool stop = false;
    struct resizer r = {s.p, &stop};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, resize_loop, &r), 0);
    run_submitters(&s, submit_mixed, 2);
    atomic_store(&stop, true);
    pthread_join(t, NULL);
    weft_pool_destroy(s.p);
    for (long i = 0; i < total; i++) CHECK_MSG(s.ran[i] == 1, "task %ld ran %d times", i, s.ran[i]);
    free(s.ran);
}

/* ---- allocation failure ---- */

static int items_double(void *item, void *arg)
{
    *(int *)item *= 2;
    return 0;
}

TEST(allocation_failure_in_create_submit_and_map)
{
    int failures = 0;
    for (long nth = 1;; nth++) {
        weft_test_fail_alloc(nth);
        weft_pool_t *p = (weft_pool_t *)&p;
        int rc = weft_pool_create(&p, &(weft_pool_opts_t){.threads = 2});
        bool failed_here = rc != 0;
        if (rc != 0) {
            CHECK_EQ(rc, -ENOMEM);
            CHECK(p == NULL);
            failures++;
            continue;
        }
        atomic_int count = 0;
        int ok = 0;
        weft_future_t *fs[4];
        for (int i = 0; i < 4; i++) {
            rc = weft_pool_submit(p, count_task, &count, &fs[i]);
            if (rc == 0) {
                ok++;
            } else {
                CHECK_EQ(rc, -ENOMEM);
                CHECK(fs[i] == NULL);
                failed_here = true;
                failures++;
            }
        }
        int items[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        rc = weft_pool_map(p, items_double, items, 10, sizeof(int), 3, NULL);
        if (rc != 0) {
            CHECK_EQ(rc, -ENOMEM);
            failed_here = true;
            failures++;
        } else {
            CHECK_EQ(items[9], 20);
        }
        weft_pool_destroy(p);
        CHECK_EQ(atomic_load(&count), ok);
        for (int i = 0; i < 4; i++)
            if (fs[i]) weft_future_release(fs[i]);
        if (!failed_here) break; /* the Nth allocation is past the last one: done */
        CHECK(nth < 100);
    }
    weft_test_restore_alloc();
    CHECK(failures >= 3);
}
