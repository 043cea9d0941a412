/* Tests for futures (weft/future.h): results, waiting, callbacks, cancellation, wait_all,
 * wait_any, as_completed, and stress tests in the Concurrency Kit manner (threads released by a
 * barrier, invariants checked at the end). */
#include "harness.h"

#include "exec/future-int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <weft/future.h>
#include <weft/sys.h>

#define MS 1000000LL

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    CHECK(d != NULL);
    return d;
}

TEST(complete_sets_status_value_and_wait_returns)
{
    weft_future_t *f = weft_future_create();
    CHECK(f != NULL);
    CHECK(!weft_future_done(f));
    CHECK_EQ(weft_future_status(f), -EINPROGRESS);
    CHECK(weft_future_value(f, NULL) == NULL);
    CHECK_EQ(weft_future_wait(f, 0), -ETIMEDOUT);
    CHECK_EQ(weft_future_wait(f, 2 * MS), -ETIMEDOUT);
    CHECK_EQ(weft_future_complete(f, 0, xstrdup("hello"), 6, free), 0);
    CHECK(weft_future_done(f));
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_wait(f, 0), 0);
    CHECK_EQ(weft_future_status(f), 0);
    size_t n = 0;
    CHECK_STR_EQ(weft_future_value(f, &n), "hello");
    CHECK_EQ(n, 6);
    CHECK(weft_future_message(f) == NULL);
    weft_future_release(f); /* frees the value: ASan's leak check proves it */
}

TEST(fail_carries_status_and_message)
{
    weft_future_t *f = weft_future_create();
    CHECK_EQ(weft_future_fail(f, -EIO, "disk %d is %s", 3, "gone"), 0);
    CHECK_EQ(weft_future_status(f), -EIO);
    CHECK_STR_EQ(weft_future_message(f), "disk 3 is gone");
    CHECK_EQ(weft_future_fail(f, -EPERM, "again"), -EALREADY);
    CHECK_STR_EQ(weft_future_message(f), "disk 3 is gone");
    weft_future_release(f);
}

TEST(complete_twice_returns_ealready_and_frees_the_value)
{
    weft_future_t *f = weft_future_create();
    CHECK_EQ(weft_future_complete(f, 0, xstrdup("first"), 6, free), 0);
    CHECK_EQ(weft_future_complete(f, -EIO, xstrdup("second"), 7, free), -EALREADY);
    CHECK_EQ(weft_future_status(f), 0);
    CHECK_STR_EQ(weft_future_value(f, NULL), "first");
    weft_future_release(f);
}

TEST(retain_and_release_keep_the_future_alive)
{
    weft_future_t *f = weft_future_create();
    weft_future_t *g = weft_future_retain(f);
    CHECK(g == f);
    weft_future_release(f);
    CHECK_EQ(weft_future_complete(g, 0, xstrdup("x"), 2, free), 0);
    CHECK_STR_EQ(weft_future_value(g, NULL), "x");
    weft_future_release(g);
    weft_future_release(NULL);
}

TEST(embedded_future_release_frees_value_not_record)
{
    struct {
        int before;
        weft_future_t f;
        int after;
    } rec = {1, {0}, 2};
    weft_future_init(&rec.f);
    CHECK_EQ(weft_future_start(&rec.f), 0);
    CHECK_EQ(weft_future_start(&rec.f), -EALREADY);
    CHECK_EQ(weft_future_complete(&rec.f, 0, xstrdup("v"), 2, free), 0);
    CHECK_STR_EQ(weft_future_value(&rec.f, NULL), "v");
    weft_future_release(&rec.f);
    CHECK_EQ(rec.before, 1);
    CHECK_EQ(rec.after, 2);
}

/* ---- misuse is diagnosed (issue 8, item 6) ---- */

/* Runs fn in a child process and checks that it aborts with a message containing `needle`. */
static void expect_abort(void (*fn)(void), const char *needle)
{
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        fn();
        _exit(0); /* not reached if fn aborts */
    }
    close(p[1]);
    char buf[512] = "";
    size_t len = 0;
    ssize_t k;
    while (len < sizeof buf - 1 && (k = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)k;
    buf[len] = '\0';
    close(p[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "child status %d, stderr: %s", st, buf);
    CHECK_MSG(strstr(buf, needle) != NULL, "no '%s' in: %s", needle, buf);
}

static void release_embedded_twice(void)
{
    weft_future_t f;
    weft_future_init(&f);
    weft_future_complete(&f, 0, NULL, 0, NULL);
    weft_future_release(&f);
    weft_future_release(&f); /* misuse: aborts */
}

TEST(releasing_an_embedded_future_twice_aborts_with_a_message)
{
    expect_abort(release_embedded_twice, "released more often than once");
}

TEST(completing_an_embedded_future_twice_returns_ealready)
{
    weft_future_t f;
    weft_future_init(&f);
    CHECK_EQ(weft_future_complete(&f, 0, xstrdup("one"), 4, free), 0);
    CHECK_EQ(weft_future_complete(&f, 0, xstrdup("two"), 4, free), -EALREADY); /* freed */
    CHECK_EQ(weft_future_fail(&f, -EIO, "late"), -EALREADY);
    CHECK_EQ(weft_future_cancel(&f), -EALREADY);
    CHECK_EQ(weft_future_start(&f), -EALREADY);
    CHECK_STR_EQ(weft_future_value(&f, NULL), "one");
    CHECK(weft_future_message(&f) == NULL);
    weft_future_release(&f);
}

struct delayed {
    weft_future_t *f;
    int64_t delay_ns;
    int status;
};

static void *complete_later(void *arg)
{
    struct delayed *d = arg;
    struct timespec ts = {0, (long)d->delay_ns};
    nanosleep(&ts, NULL);
    weft_future_complete(d->f, d->status, NULL, 0, NULL);
    return NULL;
}

TEST(wait_wakes_when_another_thread_completes)
{
    weft_future_t *f = weft_future_create();
    struct delayed d = {f, 20 * MS, -EPIPE};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, complete_later, &d), 0);
    CHECK_EQ(weft_future_wait(f, -1), 0);
    CHECK_EQ(weft_future_status(f), -EPIPE);
    pthread_join(t, NULL);
    weft_future_release(f);
}

TEST(wait_with_timeout_returns_when_completed_in_time)
{
    weft_future_t *f = weft_future_create();
    struct delayed d = {f, 1 * MS, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, complete_later, &d), 0);
    CHECK_EQ(weft_future_wait(f, 60000 * MS), 0);
    pthread_join(t, NULL);
    weft_future_release(f);
}

/* ---- callbacks ---- */

struct cbrec {
    atomic_int calls;
    pthread_t thread;
    int order[8];
    atomic_int norder;
};

static void record_cb(weft_future_t *f, void *arg)
{
    struct cbrec *r = arg;
    r->thread = pthread_self();
    CHECK(weft_future_done(f));
    atomic_fetch_add(&r->calls, 1);
}

static struct cbrec order_rec;
static void order_cb(weft_future_t *f, void *arg)
{
    int i = atomic_fetch_add(&order_rec.norder, 1);
    order_rec.order[i] = (int)(intptr_t)arg;
}

static void *complete_now(void *arg)
{
    weft_future_complete(arg, 0, NULL, 0, NULL);
    return NULL;
}

TEST(callbacks_run_once_in_completing_thread_in_order)
{
    weft_future_t *f = weft_future_create();
    struct cbrec r = {0};
    CHECK_EQ(weft_future_on_complete(f, record_cb, &r), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_future_on_complete(f, order_cb, (void *)(intptr_t)i), 0);
    CHECK_EQ(atomic_load(&r.calls), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, complete_now, f), 0);
    pthread_join(t, NULL);
    CHECK_EQ(atomic_load(&r.calls), 1);
    CHECK(pthread_equal(r.thread, t));
    CHECK_EQ(atomic_load(&order_rec.norder), 3);
    for (int i = 0; i < 3; i++) CHECK_EQ(order_rec.order[i], i);
    /* Attached after completion: runs at once, in the caller's thread. */
    struct cbrec r2 = {0};
    CHECK_EQ(weft_future_on_complete(f, record_cb, &r2), 0);
    CHECK_EQ(atomic_load(&r2.calls), 1);
    CHECK(pthread_equal(r2.thread, pthread_self()));
    CHECK_EQ(weft_future_complete(f, 0, NULL, 0, NULL), -EALREADY);
    CHECK_EQ(atomic_load(&r.calls), 1);
    weft_future_release(f);
}

/* ---- cancellation ---- */

TEST(cancel_pending_completes_with_ecanceled)
{
    weft_future_t *f = weft_future_create();
    CHECK(!weft_future_cancel_requested(f));
    CHECK_EQ(weft_future_cancel(f), 0);
    CHECK(weft_future_done(f));
    CHECK_EQ(weft_future_status(f), -ECANCELED);
    CHECK(weft_future_cancel_requested(f));
    CHECK_EQ(weft_future_start(f), -ECANCELED);
    CHECK_EQ(weft_future_cancel(f), -EALREADY);
    CHECK_EQ(weft_future_complete(f, 0, xstrdup("late"), 5, free), -EALREADY);
    weft_future_release(f);
}

TEST(cancel_running_records_request_and_returns_ebusy)
{
    weft_future_t *f = weft_future_create();
    CHECK_EQ(weft_future_start(f), 0);
    CHECK_EQ(weft_future_cancel(f), -EBUSY);
    CHECK(!weft_future_done(f));
    CHECK(weft_future_cancel_requested(f));
    weft_ctx_t ctx;
    weft__ctx_init(&ctx, f);
    CHECK(weft_ctx_cancelled(&ctx));
    CHECK(weft_ctx_future(&ctx) == f);
    weft_ctx_set_message(&ctx, "stopped at %d%%", 40);
    CHECK_EQ(weft__ctx_finish(&ctx, -ECANCELED), 0);
    CHECK_EQ(weft_future_status(f), -ECANCELED);
    CHECK_STR_EQ(weft_future_message(f), "stopped at 40%");
    CHECK_EQ(weft_future_cancel(f), -EALREADY);
    weft_future_release(f);
}

TEST(cancel_of_held_future_is_settled_by_start)
{
    weft_future_t f;
    weft_future_init(&f);
    CHECK_EQ(weft__future_hold(&f), 0);
    CHECK_EQ(weft_future_cancel(&f), 0);
    CHECK(!weft_future_done(&f)); /* the queue still holds the record */
    CHECK(weft_future_cancel_requested(&f));
    CHECK_EQ(weft_future_start(&f), -ECANCELED);
    CHECK(weft_future_done(&f));
    CHECK_EQ(weft_future_status(&f), -ECANCELED);
    CHECK_EQ(weft__future_hold(&f), -EALREADY);
    weft_future_release(&f);
}

TEST(ctx_keeps_value_and_drops_message_on_success)
{
    weft_future_t *f = weft_future_create();
    CHECK_EQ(weft_future_start(f), 0);
    weft_ctx_t ctx;
    weft__ctx_init(&ctx, f);
    CHECK(!weft_ctx_cancelled(&ctx));
    weft_ctx_set_value(&ctx, xstrdup("one"), 4, free);
    weft_ctx_set_value(&ctx, xstrdup("two"), 4, free); /* frees "one" */
    weft_ctx_set_message(&ctx, "unused");
    CHECK_EQ(weft__ctx_finish(&ctx, 0), 0);
    CHECK_STR_EQ(weft_future_value(f, NULL), "two");
    CHECK(weft_future_message(f) == NULL);
    weft_future_release(f);
}

/* ---- wait_all / wait_any / as_completed ---- */

static void make_futures(weft_future_t **fs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fs[i] = weft_future_create();
        CHECK(fs[i] != NULL);
    }
}

static void release_futures(weft_future_t **fs, size_t n)
{
    for (size_t i = 0; i < n; i++) weft_future_release(fs[i]);
}

TEST(wait_all_times_out_then_succeeds)
{
    weft_future_t *fs[3];
    make_futures(fs, 3);
    CHECK_EQ(weft_future_wait_all(fs, 0, 0), 0);
    weft_future_complete(fs[0], 0, NULL, 0, NULL);
    weft_future_complete(fs[2], 0, NULL, 0, NULL);
    CHECK_EQ(weft_future_wait_all(fs, 3, 0), -ETIMEDOUT);
    CHECK_EQ(weft_future_wait_all(fs, 3, 2 * MS), -ETIMEDOUT);
    struct delayed d = {fs[1], 5 * MS, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, complete_later, &d), 0);
    CHECK_EQ(weft_future_wait_all(fs, 3, -1), 0);
    pthread_join(t, NULL);
    release_futures(fs, 3);
}

TEST(wait_any_returns_lowest_done_index_or_times_out)
{
    weft_future_t *fs[4];
    make_futures(fs, 4);
    size_t idx = 99;
    CHECK_EQ(weft_future_wait_any(fs, 0, 0, &idx), -EINVAL);
    CHECK_EQ(weft_future_wait_any(fs, 4, 0, &idx), -ETIMEDOUT);
    CHECK_EQ(weft_future_wait_any(fs, 4, 3 * MS, &idx), -ETIMEDOUT);
    struct delayed d = {fs[2], 5 * MS, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, complete_later, &d), 0);
    CHECK_EQ(weft_future_wait_any(fs, 4, -1, &idx), 0);
    CHECK_EQ(idx, 2);
    pthread_join(t, NULL);
    weft_future_complete(fs[3], 0, NULL, 0, NULL);
    weft_future_complete(fs[1], 0, NULL, 0, NULL);
    CHECK_EQ(weft_future_wait_any(fs, 4, -1, &idx), 0);
    CHECK_EQ(idx, 1);
    /* Nodes were removed: completing the rest calls nothing stale (ASan would see it). */
    weft_future_complete(fs[0], 0, NULL, 0, NULL);
    release_futures(fs, 4);
}

TEST(as_completed_yields_in_completion_order)
{
    weft_future_t *fs[4];
    make_futures(fs, 4);
    weft_future_complete(fs[3], 0, NULL, 0, NULL); /* done before: yielded first */
    weft_future_iter_t *it;
    CHECK_EQ(weft_future_as_completed(fs, 4, &it), 0);
    weft_future_t *g;
    CHECK_EQ(weft_future_iter_next(it, 0, &g), 0);
    CHECK(g == fs[3]);
    CHECK_EQ(weft_future_iter_next(it, 0, &g), -ETIMEDOUT);
    CHECK(g == NULL);
    CHECK_EQ(weft_future_iter_next(it, 2 * MS, &g), -ETIMEDOUT);
    int order[] = {2, 0, 1};
    for (int k = 0; k < 3; k++) weft_future_complete(fs[order[k]], 0, NULL, 0, NULL);
    for (int k = 0; k < 3; k++) {
        CHECK_EQ(weft_future_iter_next(it, -1, &g), 0);
        CHECK(g == fs[order[k]]);
    }
    CHECK_EQ(weft_future_iter_next(it, -1, &g), -ENOENT);
    CHECK(g == NULL);
    weft_future_iter_destroy(it);
    release_futures(fs, 4);
}

TEST(as_completed_holds_references_and_destroys_while_pending)
{
    weft_future_t *fs[3];
    make_futures(fs, 3);
    weft_future_iter_t *it;
    CHECK_EQ(weft_future_as_completed(fs, 3, &it), 0);
    weft_future_t *keep = weft_future_retain(fs[1]);
    release_futures(fs, 3); /* the iterator keeps them alive */
    weft_future_complete(fs[0], 0, xstrdup("v"), 2, free);
    weft_future_t *g;
    CHECK_EQ(weft_future_iter_next(it, -1, &g), 0);
    CHECK(g == fs[0]);
    CHECK_STR_EQ(weft_future_value(g, NULL), "v");
    weft_future_iter_destroy(it); /* frees fs[0] and fs[2]; fs[1] still referenced */
    CHECK_EQ(weft_future_complete(keep, 0, NULL, 0, NULL), 0); /* no stale callback */
    weft_future_release(keep);
    weft_future_iter_destroy(NULL);
}

/* Issue 8, bug 2: a caller-owned (embedded) future given to as_completed is the caller's again
 * once the iterator has yielded it (docs/lifetime.md); the iterator must not touch it afterwards,
 * not even in iter_destroy (it used to hold a reference and detach a node: use-after-free). */
TEST(as_completed_embedded_future_freed_once_yielded)
{
    enum { N = 4 };
    weft_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        fs[i] = malloc(sizeof *fs[i]);
        CHECK(fs[i]);
        weft_future_init(fs[i]);
    }
    CHECK_EQ(weft_future_complete(fs[2], 0, xstrdup("early"), 6, free), 0);
    weft_future_iter_t *it;
    CHECK_EQ(weft_future_as_completed(fs, N, &it), 0);
    CHECK_EQ(weft_future_complete(fs[0], 0, xstrdup("a"), 2, free), 0);
    CHECK_EQ(weft_future_complete(fs[3], 0, xstrdup("b"), 2, free), 0);
    for (int k = 0; k < 3; k++) {
        weft_future_t *g;
        CHECK_EQ(weft_future_iter_next(it, -1, &g), 0);
        CHECK(g == fs[2] || g == fs[0] || g == fs[3]);
        CHECK(weft_future_value(g, NULL) != NULL);
        weft_future_release(g); /* frees the value: no reference held by the iterator */
        free(g);
    }
    weft_future_iter_destroy(it); /* fs[1] still pending: detached, not yielded */
    CHECK_EQ(weft_future_complete(fs[1], 0, NULL, 0, NULL), 0); /* no stale callback */
    weft_future_release(fs[1]);
    free(fs[1]);
}

/* ---- stress ---- */

/* Every waiter frees its heap record as soon as wait returns; the completer must not touch the
 * record after publishing DONE (ASan/TSan would report it). */
struct wrec {
    weft_future_t f;
    pthread_barrier_t *bar;
    atomic_int *waited;
};

static void *waiter_frees(void *arg)
{
    struct wrec *r = arg;
    pthread_barrier_wait(r->bar);
    CHECK_EQ(weft_future_wait(&r->f, -1), 0);
    CHECK_EQ(weft_future_status(&r->f), 7);
    atomic_fetch_add(r->waited, 1);
    weft_future_release(&r->f);
    free(r);
    return NULL;
}

TEST(stress_waiter_frees_embedded_record_as_soon_as_done)
{
    long rounds = weft_test_scale(2000);
    atomic_int waited = 0;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    for (long i = 0; i < rounds; i++) {
        struct wrec *r = malloc(sizeof *r);
        CHECK(r != NULL);
        weft_future_init(&r->f);
        r->bar = &bar;
        r->waited = &waited;
        weft_future_t *f = &r->f;
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, waiter_frees, r), 0);
        pthread_barrier_wait(&bar);
        if (i & 1) sched_yield();
        CHECK_EQ(weft_future_complete(f, 7, NULL, 0, NULL), 0); /* r may be gone after this */
        pthread_join(t, NULL);
    }
    CHECK_EQ(atomic_load(&waited), rounds);
    pthread_barrier_destroy(&bar);
}

#define CB_THREADS 4
struct cbstress {
    weft_future_t *f;
    pthread_barrier_t *bar;
    atomic_int *calls;
    int per_thread;
};

static void count_cb(weft_future_t *f, void *arg)
{
    CHECK(weft_future_done(f));
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void *attach_many(void *arg)
{
    struct cbstress *s = arg;
    pthread_barrier_wait(s->bar);
    for (int i = 0; i < s->per_thread; i++)
        CHECK_EQ(weft_future_on_complete(s->f, count_cb, s->calls), 0);
    return NULL;
}

static void *wait_and_count(void *arg)
{
    struct cbstress *s = arg;
    pthread_barrier_wait(s->bar);
    CHECK_EQ(weft_future_wait(s->f, -1), 0);
    return NULL;
}

TEST(stress_callbacks_attached_while_completing_run_exactly_once)
{
    long rounds = weft_test_scale(300);
    for (long r = 0; r < rounds; r++) {
        weft_future_t *f = weft_future_create();
        atomic_int calls = 0;
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, CB_THREADS + 1);
        struct cbstress s = {f, &bar, &calls, 50};
        pthread_t t[CB_THREADS];
        for (int i = 0; i < CB_THREADS; i++)
            CHECK_EQ(pthread_create(&t[i], NULL, i == 0 ? wait_and_count : attach_many, &s), 0);
        pthread_barrier_wait(&bar);
        weft_future_complete(f, 0, NULL, 0, NULL);
        for (int i = 0; i < CB_THREADS; i++) pthread_join(t[i], NULL);
        CHECK_EQ(atomic_load(&calls), (CB_THREADS - 1) * 50);
        pthread_barrier_destroy(&bar);
        weft_future_release(f);
    }
}

struct race {
    weft_future_t *f;
    pthread_barrier_t *bar;
    int start_rc, cancel_rc;
    bool held;
};

static void *racer_start(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(r->bar);
    r->start_rc = weft_future_start(r->f);
    if (r->start_rc == 0) weft_future_complete(r->f, 1, NULL, 0, NULL);
    return NULL;
}

static void *racer_cancel(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(r->bar);
    r->cancel_rc = weft_future_cancel(r->f);
    return NULL;
}

TEST(stress_cancel_racing_start_has_one_consistent_outcome)
{
    long rounds = weft_test_scale(3000);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    long cancelled = 0, ran = 0;
    for (long i = 0; i < rounds; i++) {
        weft_future_t *f = weft_future_create();
        struct race r = {f, &bar, 0, 0, (i & 1) != 0};
        if (r.held) CHECK_EQ(weft__future_hold(f), 0);
        pthread_t a, b;
        CHECK_EQ(pthread_create(&a, NULL, racer_start, &r), 0);
        CHECK_EQ(pthread_create(&b, NULL, racer_cancel, &r), 0);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        CHECK(weft_future_done(f));
        if (r.start_rc == 0) { /* the work ran: cancel came too late */
            CHECK(r.cancel_rc == -EBUSY || r.cancel_rc == -EALREADY);
            CHECK_EQ(weft_future_status(f), 1);
            ran++;
        } else { /* cancelled before it started: the work was skipped */
            CHECK_EQ(r.start_rc, -ECANCELED);
            CHECK_EQ(r.cancel_rc, 0);
            CHECK_EQ(weft_future_status(f), -ECANCELED);
            cancelled++;
        }
        weft_future_release(f);
    }
    CHECK_EQ(ran + cancelled, rounds);
    pthread_barrier_destroy(&bar);
}

#define AC_N 16
struct acstress {
    weft_future_t **fs;
    pthread_barrier_t *bar;
};

static void *complete_all_shuffled(void *arg)
{
    struct acstress *s = arg;
    pthread_barrier_wait(s->bar);
    for (int i = 0; i < AC_N; i++) weft_future_complete(s->fs[(i * 7) % AC_N], i, NULL, 0, NULL);
    return NULL;
}

TEST(stress_wait_any_and_as_completed_racing_completion)
{
    long rounds = weft_test_scale(400);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    for (long r = 0; r < rounds; r++) {
        weft_future_t *fs[AC_N];
        make_futures(fs, AC_N);
        struct acstress s = {fs, &bar};
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, complete_all_shuffled, &s), 0);
        weft_future_iter_t *it;
        CHECK_EQ(weft_future_as_completed(fs, AC_N, &it), 0);
        pthread_barrier_wait(&bar);
        size_t idx;
        CHECK_EQ(weft_future_wait_any(fs, AC_N, -1, &idx), 0);
        CHECK(weft_future_done(fs[idx]));
        /* Take a few, then destroy the iterator while completions are still arriving. */
        bool seen[AC_N] = {0};
        int take = (int)(r % AC_N);
        for (int k = 0; k < take; k++) {
            weft_future_t *g;
            CHECK_EQ(weft_future_iter_next(it, -1, &g), 0);
            CHECK(weft_future_done(g));
            size_t j = 0;
            while (fs[j] != g) j++;
            CHECK(!seen[j]);
            seen[j] = true;
        }
        weft_future_iter_destroy(it);
        pthread_join(t, NULL);
        release_futures(fs, AC_N);
    }
    pthread_barrier_destroy(&bar);
}

/* ---- allocation failure ---- */

static int never_cb_calls;
static void never_cb(weft_future_t *f, void *arg)
{
    never_cb_calls++;
}

TEST(allocation_failures_return_enomem_cleanly)
{
    weft_test_fail_alloc(1);
    CHECK(weft_future_create() == NULL);
    weft_future_t *fs[2];
    weft_test_fail_alloc(1000);
    make_futures(fs, 2);
    weft_test_fail_alloc(1);
    CHECK_EQ(weft_future_on_complete(fs[0], never_cb, NULL), -ENOMEM);
    weft_test_fail_alloc(1);
    size_t idx;
    CHECK_EQ(weft_future_wait_any(fs, 2, 1 * MS, &idx), -ENOMEM);
    weft_future_iter_t *it = (weft_future_iter_t *)fs;
    weft_test_fail_alloc(1);
    CHECK_EQ(weft_future_as_completed(fs, 2, &it), -ENOMEM);
    CHECK(it == NULL);
    weft_test_fail_alloc(1);
    CHECK_EQ(weft_future_fail(fs[0], -EIO, "no memory for this"), 0);
    CHECK(weft_future_message(fs[0]) == NULL);
    CHECK_EQ(weft_future_status(fs[0]), -EIO);
    weft_future_complete(fs[1], 0, NULL, 0, NULL);
    CHECK_EQ(never_cb_calls, 0);
    release_futures(fs, 2);
    weft_test_restore_alloc();
}
