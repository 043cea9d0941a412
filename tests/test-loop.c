/* Tests for the event loop (weft/loop.h): timers, the cross-thread queue, awaiting futures,
 * HTTP on the loop and in a blocking session, cancellation and clean teardown. HTTP tests run
 * against `weft fixture serve --port 0`, started as a child process ($WEFT_BIN, or the weft
 * binary next to this test). */
#include "harness.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/http.h>
#include <weft/loop.h>
#include <weft/pool.h>
#include <weft/sys.h>

extern char **environ;

/* ---- the fixture, as a child process ---- */

typedef struct fixture {
    pid_t pid;
    char url[128];
} fixture_t;

static void fixture_start(fixture_t *fx)
{
    char bin[4096];
    const char *env = getenv("WEFT_BIN");
    if (env) {
        snprintf(bin, sizeof bin, "%s", env);
    } else {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        CHECK(n > 0);
        self[n] = '\0';
        snprintf(bin, sizeof bin, "%s/weft", dirname(self));
    }
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {bin, "fixture", "serve", "--port", "0", NULL};
    int rc = posix_spawn(&fx->pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    CHECK_MSG(rc == 0, "cannot start %s: %s", bin, strerror(rc));
    FILE *f = fdopen(p[0], "r");
    CHECK(f);
    CHECK_MSG(fgets(fx->url, sizeof fx->url, f) != NULL, "no URL from the fixture");
    fclose(f);
    fx->url[strcspn(fx->url, "\n")] = '\0';
    CHECK(strncmp(fx->url, "http://", 7) == 0);
}

static void fixture_stop(fixture_t *fx)
{
    kill(fx->pid, SIGTERM);
    int st;
    CHECK(waitpid(fx->pid, &st, 0) == fx->pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fixture exit status %d", st);
}

static void url_of(char *out, size_t size, const fixture_t *fx, const char *path)
{
    snprintf(out, size, "%s%s", fx->url, path);
}

/* libuv opens a process-wide pipe (its signal lock) the first time any loop is created and keeps
 * it for the life of the process, and ThreadSanitizer starts a background thread at the first
 * pthread_create. Create one loop with its own thread before the tests, so that the per-test leak
 * check sees only what a test itself leaves behind. */
__attribute__((constructor)) static void warm_up(void)
{
    weft_loop_opts_t o = {.own_thread = true};
    weft_loop_t *loop;
    if (weft_loop_create(&loop, &o) == 0) weft_loop_destroy(loop);
}

/* ---- timers ---- */

typedef struct timer_state {
    weft_loop_t *loop;
    int once, repeats;
    uint64_t start_ms, once_at_ms;
    bool on_thread;
} timer_state_t;

static void on_once(weft_loop_timer_t *t, void *arg)
{
    timer_state_t *s = arg;
    s->once++;
    s->once_at_ms = weft_loop_now_ms(s->loop);
    s->on_thread = weft_loop_on_loop_thread(s->loop);
    weft_loop_timer_destroy(t); /* from its own callback */
}

static void on_repeat(weft_loop_timer_t *t, void *arg)
{
    timer_state_t *s = arg;
    if (++s->repeats == 3) {
        weft_loop_timer_stop(t);
        weft_loop_stop(s->loop);
    }
}

TEST(timers)
{
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    timer_state_t s = {.loop = loop};
    weft_loop_timer_t *t1, *t2;
    CHECK_EQ(weft_loop_timer_create(loop, on_once, &s, &t1), 0);
    CHECK_EQ(weft_loop_timer_create(loop, on_repeat, &s, &t2), 0);
    s.start_ms = weft_loop_now_ms(loop);
    CHECK_EQ(weft_loop_timer_start(t1, 20, 0), 0);
    CHECK_EQ(weft_loop_timer_start(t2, 30, 10), 0);
    CHECK(!weft_loop_on_loop_thread(loop));
    CHECK_EQ(weft_loop_run(loop), 0);
    CHECK_EQ(s.once, 1);
    CHECK_EQ(s.repeats, 3);
    CHECK(s.on_thread);
    CHECK(s.once_at_ms >= s.start_ms + 20); /* a timer never fires early */
    weft_loop_destroy(loop);                /* t2 is still open: destroy closes it */
}

/* ---- the handoff queue ---- */

#define PRODUCERS 4

typedef struct post_state {
    weft_loop_t *loop;
    long per_thread;
    long seen[PRODUCERS]; /* loop thread only: next expected sequence number per producer */
    long total;
    bool order_ok, thread_ok;
    pthread_barrier_t barrier;
} post_state_t;

typedef struct post_item {
    post_state_t *s;
    int producer;
    long seq;
    weft_loop_work_t w;
} post_item_t;

static void on_post(void *arg, int status)
{
    post_item_t *it = arg;
    post_state_t *s = it->s;
    if (status != 0 || !weft_loop_on_loop_thread(s->loop)) s->thread_ok = false;
    if (s->seen[it->producer] != it->seq) s->order_ok = false;
    s->seen[it->producer] = it->seq + 1;
    if (++s->total == s->per_thread * PRODUCERS) weft_loop_stop(s->loop);
    free(it);
}

static void *producer(void *arg)
{
    post_item_t *first = arg;
    post_state_t *s = first->s;
    int id = first->producer;
    free(first);
    pthread_barrier_wait(&s->barrier);
    for (long i = 0; i < s->per_thread; i++) {
        post_item_t *it = malloc(sizeof *it);
        it->s = s;
        it->producer = id;
        it->seq = i;
        if (i % 2) { /* both kinds of post */
            it->w.fn = on_post;
            it->w.arg = it;
            if (weft_loop_post_work(s->loop, &it->w) != 0) abort();
        } else if (weft_loop_post(s->loop, on_post, it) != 0) {
            abort();
        }
    }
    return NULL;
}

TEST(post_from_threads_stress)
{
    post_state_t s = {.per_thread = weft_test_scale(20000), .order_ok = true, .thread_ok = true};
    CHECK_EQ(weft_loop_create(&s.loop, NULL), 0);
    pthread_barrier_init(&s.barrier, NULL, PRODUCERS);
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        post_item_t *a = malloc(sizeof *a);
        a->s = &s;
        a->producer = i;
        CHECK_EQ(pthread_create(&th[i], NULL, producer, a), 0);
    }
    /* The loop runs while producers post; it stops itself after the last item. */
    CHECK_EQ(weft_loop_run(&*s.loop), 0);
    for (int i = 0; i < PRODUCERS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&s.barrier);
    CHECK_EQ(s.total, s.per_thread * PRODUCERS);
    CHECK(s.order_ok);  /* FIFO per producer */
    CHECK(s.thread_ok); /* every call on the loop thread, status 0 */
    weft_loop_destroy(s.loop);
}

typedef struct cancel_state {
    int calls, cancelled;
} cancel_state_t;

static void count_status(void *arg, int status)
{
    cancel_state_t *c = arg;
    c->calls++;
    if (status == -ECANCELED) c->cancelled++;
}

TEST(destroy_cancels_queued_work)
{
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    cancel_state_t c = {0};
    for (int i = 0; i < 10; i++) CHECK_EQ(weft_loop_post(loop, count_status, &c), 0);
    weft_loop_destroy(loop); /* never ran: each is called once, with -ECANCELED */
    CHECK_EQ(c.calls, 10);
    CHECK_EQ(c.cancelled, 10);
}

/* ---- own thread, stop, run again ---- */

typedef struct sync_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    bool on_loop;
    int status;
} sync_state_t;

#define SYNC_INIT                                                                                  \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, 0                           \
    }

static weft_loop_t *g_loop;

static void signal_done(sync_state_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->done++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void wait_done(sync_state_t *s, int n)
{
    pthread_mutex_lock(&s->mu);
    while (s->done < n) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void on_own(void *arg, int status)
{
    sync_state_t *s = arg;
    s->on_loop = weft_loop_on_loop_thread(g_loop);
    s->status = status;
    signal_done(s);
}

TEST(own_thread)
{
    weft_loop_opts_t o = {.own_thread = true, .name = "test-loop"};
    CHECK_EQ(weft_loop_create(&g_loop, &o), 0);
    CHECK_EQ(weft_loop_run(g_loop), -EINVAL);
    CHECK_EQ(weft_loop_stop(g_loop), -EINVAL);
    sync_state_t s = SYNC_INIT;
    CHECK_EQ(weft_loop_post(g_loop, on_own, &s), 0);
    wait_done(&s, 1);
    CHECK(s.on_loop);
    CHECK_EQ(s.status, 0);
    CHECK(!weft_loop_on_loop_thread(g_loop));
    weft_loop_destroy(g_loop); /* joins the thread: the harness checks none leaked */
}

static void stop_it(void *arg, int status)
{
    (void)status;
    weft_loop_stop(arg);
}

TEST(stop_and_run_again)
{
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    for (int round = 0; round < 3; round++) {
        cancel_state_t c = {0};
        CHECK_EQ(weft_loop_post(loop, count_status, &c), 0);
        CHECK_EQ(weft_loop_post(loop, stop_it, loop), 0);
        CHECK_EQ(weft_loop_run(loop), 0);
        CHECK_EQ(c.calls, 1);
        CHECK_EQ(c.cancelled, 0);
    }
    /* A stop from another thread before run: the next run returns promptly. */
    CHECK_EQ(weft_loop_stop(loop), 0);
    CHECK_EQ(weft_loop_run(loop), 0);
    weft_loop_destroy(loop);
}

/* Loop-thread-only calls from another thread used to run (a data race on libuv's state) and
 * return 0; now they return -EPERM and do nothing (issue 8, bug 6). */
typedef struct other_thread_calls {
    weft_loop_t *loop;
    weft_loop_timer_t *timer;
    int create_rc, start_rc, stop_rc, destroy_rc, http_rc;
    weft_loop_timer_t *created;
    weft_http_t *h;
} other_thread_calls_t;

static void never_timer(weft_loop_timer_t *t, void *arg)
{
    (void)t;
    (void)arg;
}

static void never_http(weft_http_t *h, weft_http_resp_t *resp, void *arg)
{
    (void)h;
    (void)resp;
    (void)arg;
}

static void *call_from_other_thread(void *arg)
{
    other_thread_calls_t *c = arg;
    c->created = (weft_loop_timer_t *)1;
    c->create_rc = weft_loop_timer_create(c->loop, never_timer, NULL, &c->created);
    if (c->timer) {
        c->start_rc = weft_loop_timer_start(c->timer, 1, 0);
        c->stop_rc = weft_loop_timer_stop(c->timer);
        c->destroy_rc = weft_loop_timer_destroy(c->timer);
    }
    weft_http_opts_t o = {.url = "http://127.0.0.1:1/"};
    c->h = (weft_http_t *)1;
    c->http_rc = weft_http_start(c->loop, &o, never_http, NULL, &c->h);
    return NULL;
}

static void run_other_thread(other_thread_calls_t *c)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, call_from_other_thread, c), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(c->create_rc, -EPERM);
    CHECK(c->created == NULL);
    CHECK_EQ(c->http_rc, -EPERM);
    CHECK(c->h == NULL);
}

TEST(loop_thread_only_calls_from_another_thread_return_eperm)
{
    /* A caller-driven loop: its creator may use it while it is stopped, nobody else may. */
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    weft_loop_timer_t *t;
    CHECK_EQ(weft_loop_timer_create(loop, never_timer, NULL, &t), 0);
    other_thread_calls_t c = {.loop = loop, .timer = t};
    run_other_thread(&c);
    CHECK_EQ(c.start_rc, -EPERM);
    CHECK_EQ(c.stop_rc, -EPERM);
    CHECK_EQ(c.destroy_rc, -EPERM);
    CHECK_EQ(weft_loop_timer_start(t, 1000, 0), 0);
    CHECK_EQ(weft_loop_timer_stop(t), 0);
    CHECK_EQ(weft_loop_timer_destroy(t), 0);
    weft_loop_destroy(loop);

    /* An own-thread loop: only its thread. */
    weft_loop_opts_t o = {.own_thread = true};
    CHECK_EQ(weft_loop_create(&loop, &o), 0);
    other_thread_calls_t c2 = {.loop = loop};
    run_other_thread(&c2);
    weft_loop_timer_t *t2 = (weft_loop_timer_t *)1;
    CHECK_EQ(weft_loop_timer_create(loop, never_timer, NULL, &t2), -EPERM); /* the creator too */
    CHECK(t2 == NULL);
    weft_loop_destroy(loop);
}

/* weft_loop_destroy from one of the loop's own callbacks used to free the loop under uv_run
 * (use-after-free; an own-thread loop also joined itself). Now it returns -EDEADLK. */
typedef struct destroy_inside {
    weft_loop_t *loop;
    int rc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} destroy_inside_t;

static void destroy_from_callback(void *arg, int status)
{
    destroy_inside_t *d = arg;
    if (status < 0) return;
    int rc = weft_loop_destroy(d->loop);
    pthread_mutex_lock(&d->mu);
    d->rc = rc;
    d->done = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (!weft_loop_on_loop_thread(d->loop)) return;
    weft_loop_stop(d->loop); /* -EINVAL for an own-thread loop: harmless */
}

static void no_op_work(void *arg, int status)
{
    (void)arg;
    (void)status;
}

static void no_op_await(weft_future_t *f, void *arg, int status)
{
    (void)f;
    (void)arg;
    (void)status;
}

TEST(loop_destroy_from_its_own_callback_returns_edeadlk)
{
    for (int own = 0; own < 2; own++) {
        weft_loop_opts_t o = {.own_thread = own};
        destroy_inside_t d = {.rc = 1};
        pthread_mutex_init(&d.mu, NULL);
        pthread_cond_init(&d.cv, NULL);
        CHECK_EQ(weft_loop_create(&d.loop, &o), 0);
        CHECK_EQ(weft_loop_post(d.loop, destroy_from_callback, &d), 0);
        if (!own) CHECK_EQ(weft_loop_run(d.loop), 0);
        pthread_mutex_lock(&d.mu);
        while (!d.done) pthread_cond_wait(&d.cv, &d.mu);
        pthread_mutex_unlock(&d.mu);
        CHECK_EQ(d.rc, -EDEADLK);
        CHECK_EQ(weft_loop_destroy(d.loop), 0); /* from outside: fine */
        pthread_mutex_destroy(&d.mu);
        pthread_cond_destroy(&d.cv);
    }
    CHECK_EQ(weft_loop_destroy(NULL), 0);
}

/* A caller-driven loop that another thread is running cannot be destroyed: -EBUSY. */
typedef struct runner {
    weft_loop_t *loop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running;
} runner_t;

static void mark_running(void *arg, int status)
{
    runner_t *r = arg;
    if (status < 0) return;
    pthread_mutex_lock(&r->mu);
    r->running = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void *run_loop_thread(void *arg)
{
    runner_t *r = arg;
    weft_loop_run(r->loop);
    return NULL;
}

TEST(loop_destroy_while_another_thread_runs_it_returns_ebusy)
{
    runner_t r = {.running = false};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    CHECK_EQ(weft_loop_create(&r.loop, NULL), 0);
    CHECK_EQ(weft_loop_post(r.loop, mark_running, &r), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, run_loop_thread, &r), 0);
    pthread_mutex_lock(&r.mu);
    while (!r.running) pthread_cond_wait(&r.cv, &r.mu);
    pthread_mutex_unlock(&r.mu);
    CHECK_EQ(weft_loop_destroy(r.loop), -EBUSY);
    CHECK_EQ(weft_loop_stop(r.loop), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(weft_loop_destroy(r.loop), 0);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
}

TEST(loop_null_arguments_return_einval)
{
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    CHECK_EQ(weft_loop_post(NULL, no_op_work, NULL), -EINVAL);
    CHECK_EQ(weft_loop_post(loop, NULL, NULL), -EINVAL);
    weft_loop_work_t w = {.fn = NULL};
    CHECK_EQ(weft_loop_post_work(loop, &w), -EINVAL);
    CHECK_EQ(weft_loop_post_work(loop, NULL), -EINVAL);
    weft_future_t *f = weft_future_create();
    CHECK(f);
    CHECK_EQ(weft_loop_await(NULL, f, no_op_await, NULL), -EINVAL);
    CHECK_EQ(weft_loop_await(loop, NULL, no_op_await, NULL), -EINVAL);
    CHECK_EQ(weft_loop_await(loop, f, NULL, NULL), -EINVAL);
    weft_loop_timer_t *t = (weft_loop_timer_t *)1;
    CHECK_EQ(weft_loop_timer_create(loop, NULL, NULL, &t), -EINVAL);
    CHECK(t == NULL);
    CHECK_EQ(weft_loop_timer_start(NULL, 1, 0), -EINVAL);
    CHECK_EQ(weft_loop_timer_stop(NULL), -EINVAL);
    CHECK_EQ(weft_loop_timer_destroy(NULL), 0);
    weft_http_opts_t ho = {.url = "http://127.0.0.1:1/"};
    CHECK_EQ(weft_http_start(loop, &ho, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(weft_http_cancel(NULL), -EINVAL);
    weft_future_t *hf = (weft_future_t *)1;
    CHECK_EQ(weft_http_fetch(NULL, &ho, &hf), -EINVAL);
    CHECK(hf == NULL);
    weft_future_release(f);
    CHECK_EQ(weft_loop_destroy(loop), 0);
}

/* ---- awaiting futures ---- */

typedef struct await_state {
    weft_loop_t *loop;
    int calls, ok, cancelled;
    bool on_loop;
    int value;
    long stop_after;
} await_state_t;

static void on_awaited(weft_future_t *f, void *arg, int status)
{
    await_state_t *s = arg;
    s->calls++;
    if (status == -ECANCELED) s->cancelled++;
    if (status == 0 && weft_future_status(f) == 0) {
        s->ok++;
        int *v = weft_future_value(f, NULL);
        if (v) s->value += *v;
    }
    s->on_loop = weft_loop_on_loop_thread(s->loop);
    if (s->calls == s->stop_after) weft_loop_stop(s->loop);
}

static int square_task(void *arg, weft_ctx_t *ctx)
{
    int n = (int)(intptr_t)arg;
    int *v = malloc(sizeof *v);
    if (!v) return -ENOMEM;
    *v = n * n;
    weft_ctx_set_value(ctx, v, sizeof *v, free);
    return 0;
}

TEST(await_pool_futures)
{
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    weft_pool_t *pool;
    weft_pool_opts_t po = {.threads = 3};
    CHECK_EQ(weft_pool_create(&pool, &po), 0);
    long n = weft_test_scale(2000);
    await_state_t s = {.loop = loop, .stop_after = n};
    int expect = 0;
    for (long i = 0; i < n; i++) {
        weft_future_t *f;
        CHECK_EQ(weft_pool_submit(pool, square_task, (void *)(intptr_t)(i % 100), &f), 0);
        expect += (int)((i % 100) * (i % 100));
        CHECK_EQ(weft_loop_await(loop, f, on_awaited, &s), 0);
        weft_future_release(f); /* the await holds its own reference */
    }
    CHECK_EQ(weft_loop_run(loop), 0);
    CHECK_EQ(s.calls, n);
    CHECK_EQ(s.ok, n);
    CHECK_EQ(s.value, expect);
    CHECK(s.on_loop);
    weft_pool_destroy(pool);
    weft_loop_destroy(loop);
}

TEST(await_pending_at_destroy)
{
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    weft_future_t *pending = weft_future_create(), *done = weft_future_create();
    CHECK(pending && done);
    int forty_two = 42;
    CHECK_EQ(weft_future_complete(done, 0, &forty_two, sizeof forty_two, NULL), 0);
    await_state_t s = {.loop = loop};
    CHECK_EQ(weft_loop_await(loop, pending, on_awaited, &s), 0);
    CHECK_EQ(weft_loop_await(loop, done, on_awaited, &s), 0);
    weft_loop_destroy(loop);
    CHECK_EQ(s.calls, 2);     /* each exactly once, */
    CHECK_EQ(s.cancelled, 2); /* with -ECANCELED since the loop never ran them */
    /* Completing the future now must not reach the destroyed loop. */
    CHECK_EQ(weft_future_complete(pending, 0, NULL, 0, NULL), 0);
    CHECK_EQ(s.calls, 2);
    weft_future_release(pending);
    weft_future_release(done);
}

/* Issue 8, bug 2: an awaited caller-owned record is the caller's again inside the await
 * callback (docs/lifetime.md), so the callback may release its future and free it; the loop
 * must not touch the record afterwards (it used to drop a reference on it: use-after-free). */
typedef struct embedded_state {
    weft_loop_t *loop;
    long calls, ok, stop_after;
} embedded_state_t;

typedef struct owned_task {
    weft_task_t t;
    embedded_state_t *s;
} owned_task_t;

static void free_in_callback(weft_future_t *f, void *arg, int status)
{
    owned_task_t *ot = arg;
    embedded_state_t *s = ot->s;
    CHECK(f == &ot->t.future);
    if (status == 0 && weft_future_status(f) == 0) {
        int *v = weft_future_value(f, NULL);
        if (v && *v == 49) s->ok++;
    }
    weft_future_release(f); /* frees the value */
    free(ot);               /* the record is ours again here */
    if (++s->calls == s->stop_after) weft_loop_stop(s->loop);
}

TEST(await_embedded_record_freed_in_callback)
{
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    weft_pool_t *pool;
    weft_pool_opts_t po = {.threads = 2};
    CHECK_EQ(weft_pool_create(&pool, &po), 0);
    long n = weft_test_scale(500);
    embedded_state_t s = {.loop = loop, .stop_after = n + 1};
    for (long i = 0; i < n; i++) {
        owned_task_t *ot = malloc(sizeof *ot);
        CHECK(ot);
        ot->s = &s;
        weft_task_init(&ot->t, square_task, (void *)(intptr_t)7);
        CHECK_EQ(weft_pool_submit_task(pool, &ot->t), 0);
        CHECK_EQ(weft_loop_await(loop, &ot->t.future, free_in_callback, ot), 0);
    }
    /* And one completed by hand before the await. */
    owned_task_t *ot = malloc(sizeof *ot);
    CHECK(ot);
    ot->s = &s;
    weft_task_init(&ot->t, square_task, NULL);
    int *v = malloc(sizeof *v);
    CHECK(v);
    *v = 49;
    CHECK_EQ(weft_future_complete(&ot->t.future, 0, v, sizeof *v, free), 0);
    CHECK_EQ(weft_loop_await(loop, &ot->t.future, free_in_callback, ot), 0);
    CHECK_EQ(weft_loop_run(loop), 0);
    CHECK_EQ(s.calls, n + 1);
    CHECK_EQ(s.ok, n + 1);
    weft_pool_destroy(pool);
    weft_loop_destroy(loop);
}

/* The same at destroy: a pending embedded future's await is called with -ECANCELED, and the
 * callback may free the record then (the future stays PENDING and is never completed). */
TEST(await_embedded_pending_at_destroy_freed_in_callback)
{
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    embedded_state_t s = {.loop = loop};
    owned_task_t *ot = malloc(sizeof *ot);
    CHECK(ot);
    ot->s = &s;
    weft_task_init(&ot->t, square_task, NULL);
    CHECK_EQ(weft_loop_await(loop, &ot->t.future, free_in_callback, ot), 0);
    weft_loop_destroy(loop);
    CHECK_EQ(s.calls, 1);
}

/* Completers race with destroy: every await is called exactly once, nothing after destroy. */
typedef struct race_arg {
    weft_future_t **fs;
    long n;
    pthread_barrier_t *barrier;
} race_arg_t;

static void *completer(void *arg)
{
    race_arg_t *r = arg;
    pthread_barrier_wait(r->barrier);
    for (long i = 0; i < r->n; i++) weft_future_complete(r->fs[i], 0, NULL, 0, NULL);
    return NULL;
}

static void count_await(weft_future_t *f, void *arg, int status)
{
    (void)f;
    (void)status;
    atomic_fetch_add_explicit((_Atomic long *)arg, 1, memory_order_relaxed);
}

TEST(await_destroy_race_stress)
{
    long n = weft_test_scale(2000);
    for (int round = 0; round < 5; round++) {
        weft_loop_opts_t o = {.own_thread = true};
        weft_loop_t *loop;
        CHECK_EQ(weft_loop_create(&loop, &o), 0);
        weft_future_t **fs = calloc((size_t)n, sizeof *fs);
        _Atomic long calls = 0;
        for (long i = 0; i < n; i++) {
            fs[i] = weft_future_create();
            CHECK_EQ(weft_loop_await(loop, fs[i], count_await, (void *)&calls), 0);
        }
        pthread_barrier_t b;
        pthread_barrier_init(&b, NULL, 2);
        race_arg_t r = {fs, n, &b};
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, completer, &r), 0);
        pthread_barrier_wait(&b);
        weft_loop_destroy(loop);
        long after = atomic_load(&calls);
        pthread_join(th, NULL);
        CHECK_EQ(after, n);
        CHECK_EQ(atomic_load(&calls), n);
        for (long i = 0; i < n; i++) weft_future_release(fs[i]);
        free(fs);
        pthread_barrier_destroy(&b);
    }
}

/* ---- HTTP ---- */

typedef struct http_state {
    weft_loop_t *loop;
    int done, expected;
    weft_http_resp_t last;
    int errors[8];
    long statuses[8];
    int nerr;
    weft_http_t *to_cancel;
} http_state_t;

static void on_http(weft_http_t *h, weft_http_resp_t *resp, void *arg)
{
    http_state_t *s = arg;
    if (s->nerr < 8) {
        s->errors[s->nerr] = resp->error;
        s->statuses[s->nerr++] = resp->status;
    }
    weft_http_resp_free(&s->last);
    s->last = *resp;
    memset(resp, 0, sizeof *resp); /* take every field */
    if (++s->done == s->expected) weft_loop_stop(s->loop);
}

TEST_T(http_on_loop, 60)
{
    fixture_t fx;
    fixture_start(&fx);
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    http_state_t s = {.loop = loop, .expected = 1};
    char url[256];
    url_of(url, sizeof url, &fx, "/redirect/3");
    weft_http_opts_t o = {.url = url, .keep_body = true};
    CHECK_EQ(weft_http_start(loop, &o, on_http, &s, NULL), 0);
    CHECK_EQ(weft_loop_run(loop), 0);
    CHECK_EQ(s.last.error, 0);
    CHECK_EQ(s.last.status, 200);
    CHECK_EQ(s.last.redirects, 3);
    CHECK(strstr(s.last.final_url, "/redirect/0") != NULL);
    CHECK(strstr(s.last.body.data, "<title>Redirected 0") != NULL);
    CHECK_EQ(s.last.bytes, s.last.body.len);
    CHECK(s.last.t.total_us > 0 && s.last.t.first_byte_us <= s.last.t.total_us);
    CHECK(s.last.content_type && strstr(s.last.content_type, "text/html"));

    /* Many at once: 100 requests that each wait 300 ms finish together, not one by one. */
    s.done = 0;
    s.expected = 100;
    url_of(url, sizeof url, &fx, "/delay/300");
    uint64_t t0 = weft_now_ns();
    for (int i = 0; i < 100; i++) CHECK_EQ(weft_http_start(loop, &o, on_http, &s, NULL), 0);
    CHECK_EQ(weft_http_active(loop), 100);
    CHECK_EQ(weft_loop_run(loop), 0);
    double secs = (double)(weft_now_ns() - t0) / 1e9;
    CHECK_EQ(s.done, 100);
    CHECK_MSG(secs < 15, "100 concurrent 300 ms requests took %.1f s (sequential: 30 s)", secs);
    CHECK_EQ(weft_http_active(loop), 0);
    weft_http_resp_free(&s.last);
    weft_loop_destroy(loop);
    fixture_stop(&fx);
}

static void cancel_timer(weft_loop_timer_t *t, void *arg)
{
    http_state_t *s = arg;
    CHECK_EQ(weft_http_cancel(s->to_cancel), 0);
    weft_loop_timer_destroy(t);
}

TEST_T(http_errors_and_cancel, 60)
{
    fixture_t fx;
    fixture_start(&fx);
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, NULL), 0);
    http_state_t s = {.loop = loop};
    char u[6][256];
    url_of(u[0], sizeof u[0], &fx, "/redirect-loop");
    url_of(u[1], sizeof u[1], &fx, "/huge/4");
    url_of(u[2], sizeof u[2], &fx, "/delay/5000");
    url_of(u[3], sizeof u[3], &fx, "/retry-after/7/loop-test");
    snprintf(u[4], sizeof u[4], "%s", weft_test_refused_url());
    snprintf(u[5], sizeof u[5], "ftp://127.0.0.1/x");
    weft_http_opts_t o[6] = {
        {.url = u[0]},
        {.url = u[1], .max_body = 100000},
        {.url = u[2], .timeout_ms = 300},
        {.url = u[3]},
        {.url = u[4]},
        {.url = u[5]},
    };
    for (int i = 0; i < 6; i++) CHECK_EQ(weft_http_start(loop, &o[i], on_http, &s, NULL), 0);
    s.expected = 6;
    CHECK_EQ(weft_loop_run(loop), 0);
    int want[6] = {WEFT_EREDIRECTS, -EMSGSIZE, -ETIMEDOUT, 0, -ECONNREFUSED, -EINVAL};
    for (int i = 0; i < 6; i++) {
        bool found = false;
        for (int k = 0; k < s.nerr; k++) found |= s.errors[k] == want[i];
        CHECK_MSG(found, "no transfer ended with %s", weft_err_name(want[i]));
    }
    weft_http_resp_free(&s.last);

    /* Retry-After is captured raw. */
    s = (http_state_t){.loop = loop, .expected = 1};
    url_of(u[3], sizeof u[3], &fx, "/retry-after/9/loop-test2");
    CHECK_EQ(weft_http_start(loop, &o[3], on_http, &s, NULL), 0);
    CHECK_EQ(weft_loop_run(loop), 0);
    CHECK_EQ(s.last.status, 429);
    CHECK_STR_EQ(s.last.retry_after, "9");
    weft_http_resp_free(&s.last);

    /* Cancel a transfer from a timer: its callback runs once, with -ECANCELED. */
    s = (http_state_t){.loop = loop, .expected = 1};
    weft_http_opts_t slow = {.url = u[2]};
    CHECK_EQ(weft_http_start(loop, &slow, on_http, &s, &s.to_cancel), 0);
    weft_loop_timer_t *t;
    CHECK_EQ(weft_loop_timer_create(loop, cancel_timer, &s, &t), 0);
    CHECK_EQ(weft_loop_timer_start(t, 50, 0), 0);
    CHECK_EQ(weft_loop_run(loop), 0);
    CHECK_EQ(s.done, 1);
    CHECK_EQ(s.last.error, -ECANCELED);
    weft_http_resp_free(&s.last);

    /* Destroy with transfers in flight: each callback runs once, with -ECANCELED. */
    s = (http_state_t){.loop = loop, .expected = 100};
    for (int i = 0; i < 3; i++) CHECK_EQ(weft_http_start(loop, &slow, on_http, &s, NULL), 0);
    weft_loop_destroy(loop);
    CHECK_EQ(s.done, 3);
    for (int i = 0; i < 3; i++) CHECK_EQ(s.errors[i], -ECANCELED);
    weft_http_resp_free(&s.last);
    fixture_stop(&fx);
}

TEST_T(http_fetch_future, 60)
{
    fixture_t fx;
    fixture_start(&fx);
    weft_loop_opts_t lo = {.own_thread = true};
    weft_loop_t *loop;
    CHECK_EQ(weft_loop_create(&loop, &lo), 0);
    char url[256];
    url_of(url, sizeof url, &fx, "/page/7");
    weft_http_opts_t o = {.url = url, .keep_body = true};
    weft_future_t *f;
    CHECK_EQ(weft_http_fetch(loop, &o, &f), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), 0);
    weft_http_resp_t *r = weft_future_value(f, NULL);
    CHECK(r && r->status == 200 && strstr(r->body.data, "<title>Page 7:"));
    weft_future_release(f);

    /* Cancelling the future aborts the running transfer. */
    url_of(url, sizeof url, &fx, "/delay/20000");
    CHECK_EQ(weft_http_fetch(loop, &o, &f), 0);
    usleep(100000);
    int rc = weft_future_cancel(f);
    CHECK(rc == -EBUSY || rc == 0);
    CHECK_EQ(weft_future_wait(f, 10 * 1000000000LL), 0);
    CHECK_EQ(weft_future_status(f), -ECANCELED);
    weft_future_release(f);

    /* A fetch still running at destroy completes with -ECANCELED. */
    CHECK_EQ(weft_http_fetch(loop, &o, &f), 0);
    weft_loop_destroy(loop);
    CHECK(weft_future_done(f));
    CHECK_EQ(weft_future_status(f), -ECANCELED);
    weft_future_release(f);
    fixture_stop(&fx);
}

static int count_data(void *arg, const char *data, size_t len, const weft_http_resp_t *resp)
{
    size_t *n = arg;
    if (resp->status != 200) return -EPROTO;
    *n += len;
    return *n > 3000 ? 1 : 0; /* stop early once we have enough */
}

TEST_T(http_session, 60)
{
    fixture_t fx;
    fixture_start(&fx);
    weft_http_session_t *s;
    CHECK_EQ(weft_http_session_create(&s), 0);
    char url[256];
    url_of(url, sizeof url, &fx, "/gzip");
    weft_http_opts_t o = {.url = url, .keep_body = true};
    weft_http_resp_t r = {0};
    CHECK_EQ(weft_http_session_perform(s, &o, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK(strstr(r.body.data, "<title>Compressed 1:")); /* decoded for us */
    weft_http_resp_free(&r);

    /* The second request reuses the connection: no new connect. */
    url_of(url, sizeof url, &fx, "/page/1");
    CHECK_EQ(weft_http_session_perform(s, &o, &r), 0);
    CHECK_EQ(r.t.connect_us, 0);
    weft_http_resp_free(&r);

    /* Streaming with an early stop. */
    size_t got = 0;
    url_of(url, sizeof url, &fx, "/huge/2");
    weft_http_opts_t so = {.url = url, .on_data = count_data, .data_arg = &got};
    CHECK_EQ(weft_http_session_perform(s, &so, &r), 0);
    CHECK(r.stopped);
    CHECK(got > 3000 && got < (2u << 20));
    weft_http_resp_free(&r);

    /* Low speed: one byte every 400 ms is below 100 B/s for a second. */
    url_of(url, sizeof url, &fx, "/drip/100/400");
    weft_http_opts_t lo = {.url = url, .low_speed_limit = 100, .low_speed_time_s = 1};
    CHECK_EQ(weft_http_session_perform(s, &lo, &r), WEFT_ESLOW);
    weft_http_resp_free(&r);

    /* A cancel flag. */
    atomic_bool cancel = true;
    weft_http_opts_t co = {.url = url, .cancel = &cancel};
    CHECK_EQ(weft_http_session_perform(s, &co, &r), -ECANCELED);
    weft_http_resp_free(&r);
    weft_http_opts_t bad = {.url = NULL};
    CHECK_EQ(weft_http_session_perform(s, &bad, &r), -EINVAL);
    weft_http_resp_free(&r);
    weft_http_session_destroy(s);
    fixture_stop(&fx);
}
