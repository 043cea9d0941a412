/* The event loop: libuv plus a cross-thread handoff queue, timers and future awaiting
 * (weft/loop.h). HTTP on the loop is in loop-http.c.
 *
 * DESIGN
 * Threads: the loop thread (the loop's own thread, or the caller inside weft_loop_run) runs every
 * libuv callback and touches every libuv handle and all "loop-thread state" in struct weft_loop.
 * Any thread may post work, await a future, or stop the loop; future completers (pool workers and
 * the like) run on_future_done. weft_loop_destroy runs on a thread that is not running the loop.
 *
 * Handoff (libuv's pattern): a poster links its record into the FIFO under `mu` and calls
 * uv_async_send while still holding `mu`. The async callback takes the whole list under `mu` and
 * runs it with no lock held: sends coalesce, so one wake-up must drain everything. Holding `mu`
 * across uv_async_send is what makes teardown safe: destroy sets `closed` under `mu`, so no send
 * can start after it, and uv_close(async) happens only later.
 *
 * Awaits: weft_loop_await links a node into `awaits` and attaches it to the future (as a
 * removable callback node, exec/future-int.h) in one critical section of `mu`. The completer's
 * on_future_done takes `mu`, unlinks the node and moves it onto the FIFO. Destroy, under `mu`,
 * detaches every node it can from its future (those will never be called by a completer) and
 * then waits on `cv` until the completers already running have moved the rest; so after destroy
 * returns no completer touches the loop.
 *
 * Invariants: a node is on exactly one of `awaits` or the FIFO; once `closed` is set nothing new
 * is accepted and the FIFO is drained only by destroy, which calls each record with -ECANCELED.
 *
 * Lock order: mu -> a future's stripe mutex (weft__future_add_node / _remove_node under mu). The
 * completer calls on_future_done with no stripe lock held, so the reverse never happens. `mu` is
 * never held while user code runs.
 */
#include "loop/loop-int.h"

#include "core/alloc.h"
#include "exec/future-int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct await_node {
    weft__cbnode_t cbn;    /* attached to the future */
    weft_loop_work_t work; /* queued on the loop */
    weft_loop_t *loop;
    weft_future_t *f; /* a reference if heap; borrowed until cb is called if embedded */
    bool heap;
    weft_loop_await_cb cb;
    void *arg;
    await_node_t *prev, *next; /* in loop->awaits */
};

struct weft_loop_timer {
    uv_timer_t h;
    weft_loop_t *loop;
    weft_loop_timer_cb cb;
    void *arg;
    struct weft_loop_timer *prev, *next;
};

/* The loop the calling thread is running, if any: how weft_loop_on_loop_thread knows. */
static _Thread_local weft_loop_t *current_loop;

bool weft__loop_thread_ok(const weft_loop_t *loop)
{
    if (current_loop == loop) return true;
    /* Acquire pairs with weft_loop_run's release store: the last run happened before this. */
    return !loop->own_thread && pthread_equal(loop->creator, pthread_self()) &&
           !atomic_load_explicit(&loop->running, memory_order_acquire);
}

void weft__loop_thread_check(const weft_loop_t *loop, const char *fn)
{
    if (weft__loop_thread_ok(loop)) return;
    fprintf(stderr, "weft: %s called from a thread that is not the loop thread\n", fn);
    abort();
}

/* ---- the handoff queue ---- */

/* mu held. */
static void queue_push(weft_loop_t *loop, weft_loop_work_t *w)
{
    w->next_ = NULL;
    if (loop->qtail)
        loop->qtail->next_ = w;
    else
        loop->qhead = w;
    loop->qtail = w;
}

static weft_loop_work_t *queue_take(weft_loop_t *loop)
{
    pthread_mutex_lock(&loop->mu);
    weft_loop_work_t *w = loop->qhead;
    loop->qhead = loop->qtail = NULL;
    pthread_mutex_unlock(&loop->mu);
    return w;
}

static void run_list(weft_loop_work_t *w, int status)
{
    while (w) {
        weft_loop_work_t *next = w->next_; /* fn may free or re-post w */
        w->fn(w->arg, status);
        w = next;
    }
}

static void on_async(uv_async_t *a)
{
    weft_loop_t *loop = a->data;
    run_list(queue_take(loop), 0);
    /* Acquire pairs with the release store in weft_loop_stop: work posted before the stop has
     * been drained above. */
    if (atomic_load_explicit(&loop->stop_req, memory_order_acquire)) uv_stop(&loop->uv);
}

int weft_loop_post_work(weft_loop_t *loop, weft_loop_work_t *w)
{
    if (!loop || !w || !w->fn) return -EINVAL;
    pthread_mutex_lock(&loop->mu);
    if (loop->closed) {
        pthread_mutex_unlock(&loop->mu);
        return -ESHUTDOWN;
    }
    queue_push(loop, w);
    uv_async_send(&loop->async);
    pthread_mutex_unlock(&loop->mu);
    return 0;
}

void weft__loop_push_internal(weft_loop_t *loop, weft_loop_work_t *w)
{
    pthread_mutex_lock(&loop->mu);
    queue_push(loop, w);
    if (!loop->closed) uv_async_send(&loop->async);
    pthread_mutex_unlock(&loop->mu);
}

typedef struct posted {
    weft_loop_work_t w;
    weft_loop_fn fn;
    void *arg;
} posted_t;

static void posted_run(void *arg, int status)
{
    posted_t *p = arg;
    weft_loop_fn fn = p->fn;
    void *fn_arg = p->arg;
    weft__free(p);
    fn(fn_arg, status);
}

int weft_loop_post(weft_loop_t *loop, weft_loop_fn fn, void *arg)
{
    if (!loop || !fn) return -EINVAL;
    posted_t *p = weft__malloc(sizeof *p);
    if (!p) return -ENOMEM;
    p->w.fn = posted_run;
    p->w.arg = p;
    p->fn = fn;
    p->arg = arg;
    int rc = weft_loop_post_work(loop, &p->w);
    if (rc < 0) weft__free(p);
    return rc;
}

/* ---- awaiting futures ---- */

/* Calls the await's callback last: inside it an embedded future is its owner's again (it may
 * be released and freed there), so nothing here touches it afterwards. A heap future is kept
 * alive by the await's reference until the callback has returned. */
static void await_run(void *arg, int status)
{
    await_node_t *n = arg;
    weft_future_t *f = n->f;
    weft_loop_await_cb cb = n->cb;
    void *cb_arg = n->arg;
    bool heap = n->heap;
    weft__free(n);
    cb(f, cb_arg, status);
    if (heap) weft_future_release(f);
}

/* mu held. */
static void await_unlink(weft_loop_t *loop, await_node_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        loop->awaits = n->next;
    if (n->next) n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* Runs on the completing thread, with no lock held. */
static void on_future_done(weft_future_t *f, void *arg)
{
    await_node_t *n = arg;
    weft_loop_t *loop = n->loop;
    pthread_mutex_lock(&loop->mu);
    await_unlink(loop, n);
    queue_push(loop, &n->work);
    if (!loop->closed)
        uv_async_send(&loop->async);
    else
        pthread_cond_broadcast(&loop->cv); /* destroy waits for every detached node */
    pthread_mutex_unlock(&loop->mu);
    /* From here on, destroy may free the loop: touch nothing. */
}

int weft_loop_await(weft_loop_t *loop, weft_future_t *f, weft_loop_await_cb cb, void *arg)
{
    if (!loop || !f || !cb) return -EINVAL;
    await_node_t *n = weft__calloc(1, sizeof *n);
    if (!n) return -ENOMEM;
    n->cbn.cb = on_future_done;
    n->cbn.arg = n;
    n->work.fn = await_run;
    n->work.arg = n;
    n->loop = loop;
    n->heap = weft__future_is_heap(f);
    n->f = n->heap ? weft_future_retain(f) : f;
    n->cb = cb;
    n->arg = arg;
    pthread_mutex_lock(&loop->mu);
    if (loop->closed) {
        pthread_mutex_unlock(&loop->mu);
        if (n->heap) weft_future_release(f);
        weft__free(n);
        return -ESHUTDOWN;
    }
    if (weft__future_add_node(f, &n->cbn) == 0) {
        n->next = loop->awaits;
        if (n->next) n->next->prev = n;
        loop->awaits = n;
    } else { /* already DONE: straight onto the queue */
        queue_push(loop, &n->work);
        uv_async_send(&loop->async);
    }
    pthread_mutex_unlock(&loop->mu);
    return 0;
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *h)
{
    weft_loop_timer_t *t = h->data;
    t->cb(t, t->arg);
}

int weft_loop_timer_create(weft_loop_t *loop, weft_loop_timer_cb cb, void *arg,
                           weft_loop_timer_t **out)
{
    if (!out) return -EINVAL;
    *out = NULL;
    if (!loop || !cb) return -EINVAL;
    if (!weft__loop_thread_ok(loop)) return -EPERM;
    weft_loop_timer_t *t = weft__calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    uv_timer_init(&loop->uv, &t->h);
    t->h.data = t;
    t->loop = loop;
    t->cb = cb;
    t->arg = arg;
    t->next = loop->timers;
    if (t->next) t->next->prev = t;
    loop->timers = t;
    *out = t;
    return 0;
}

int weft_loop_timer_start(weft_loop_timer_t *t, uint64_t timeout_ms, uint64_t repeat_ms)
{
    if (!t) return -EINVAL;
    if (!weft__loop_thread_ok(t->loop)) return -EPERM;
    return uv_timer_start(&t->h, on_timer, timeout_ms, repeat_ms);
}

int weft_loop_timer_stop(weft_loop_timer_t *t)
{
    if (!t) return -EINVAL;
    if (!weft__loop_thread_ok(t->loop)) return -EPERM;
    uv_timer_stop(&t->h);
    return 0;
}

static void free_timer(uv_handle_t *h)
{
    weft__free(h->data);
}

int weft_loop_timer_destroy(weft_loop_timer_t *t)
{
    if (!t) return 0;
    weft_loop_t *loop = t->loop;
    if (!weft__loop_thread_ok(loop)) return -EPERM;
    if (t->prev)
        t->prev->next = t->next;
    else
        loop->timers = t->next;
    if (t->next) t->next->prev = t->prev;
    uv_close((uv_handle_t *)&t->h, free_timer);
    return 0;
}

/* ---- lifecycle ---- */

static void run_here(weft_loop_t *loop)
{
    weft_loop_t *outer = current_loop; /* a loop may be run from another loop's callback */
    current_loop = loop;
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    current_loop = outer;
}

static void *loop_thread(void *arg)
{
    weft_loop_t *loop = arg;
    pthread_setname_np(pthread_self(), loop->name);
    run_here(loop);
    return NULL;
}

int weft_loop_create(weft_loop_t **out, const weft_loop_opts_t *opts)
{
    *out = NULL;
    weft_loop_opts_t o = {0};
    if (opts) o = *opts;
    if (o.max_connections < 0) return -EINVAL;
    weft_loop_t *loop = weft__calloc(1, sizeof *loop);
    if (!loop) return -ENOMEM;
    int rc = uv_loop_init(&loop->uv);
    if (rc < 0) {
        weft__free(loop);
        return rc;
    }
    uv_async_init(&loop->uv, &loop->async, on_async);
    loop->async.data = loop;
    pthread_mutex_init(&loop->mu, NULL);
    pthread_cond_init(&loop->cv, NULL);
    loop->own_thread = o.own_thread;
    loop->creator = pthread_self();
    loop->max_connections = o.max_connections ? o.max_connections : 256;
    snprintf(loop->name, sizeof loop->name, "%s", o.name ? o.name : "weft-loop");
    if (o.own_thread) {
        rc = -pthread_create(&loop->thread, NULL, loop_thread, loop);
        if (rc < 0) {
            uv_close((uv_handle_t *)&loop->async, NULL);
            uv_run(&loop->uv, UV_RUN_DEFAULT);
            uv_loop_close(&loop->uv);
            pthread_mutex_destroy(&loop->mu);
            pthread_cond_destroy(&loop->cv);
            weft__free(loop);
            return rc;
        }
    }
    *out = loop;
    return 0;
}

int weft_loop_run(weft_loop_t *loop)
{
    if (loop->own_thread) return -EINVAL;
    bool expected = false;
    /* Acquire pairs with the release store below by the previous runner: what it did to the
     * loop happened before this run. */
    if (!atomic_compare_exchange_strong_explicit(&loop->running, &expected, true,
                                                 memory_order_acquire, memory_order_relaxed))
        return -EBUSY;
    run_here(loop);
    atomic_store_explicit(&loop->stop_req, false, memory_order_relaxed);
    atomic_store_explicit(&loop->running, false, memory_order_release);
    return 0;
}

int weft_loop_stop(weft_loop_t *loop)
{
    if (loop->own_thread) return -EINVAL;
    /* Release pairs with the acquire load in on_async. */
    atomic_store_explicit(&loop->stop_req, true, memory_order_release);
    if (weft_loop_on_loop_thread(loop)) {
        uv_stop(&loop->uv);
        return 0;
    }
    pthread_mutex_lock(&loop->mu);
    if (!loop->closed) uv_async_send(&loop->async);
    pthread_mutex_unlock(&loop->mu);
    return 0;
}

bool weft_loop_on_loop_thread(const weft_loop_t *loop)
{
    return current_loop == loop;
}

uint64_t weft_loop_now_ms(const weft_loop_t *loop)
{
    weft__loop_thread_check(loop, "weft_loop_now_ms");
    return uv_now(&loop->uv);
}

uv_loop_t *weft_loop_uv(weft_loop_t *loop)
{
    return &loop->uv;
}

static void free_data(uv_handle_t *h)
{
    weft__free(h->data);
}

/* Closes whatever is still open: only poll handles libcurl never asked us to remove can be left,
 * and their data is the allocation that embeds them. */
static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, h->type == UV_POLL ? free_data : NULL);
}

int weft_loop_destroy(weft_loop_t *loop)
{
    if (!loop) return 0;
    /* From a callback of this loop: it would free the loop under uv_run (or join itself). */
    if (current_loop == loop) return -EDEADLK;
    /* A caller-driven loop that another thread is running: stop it and wait for run first. */
    if (!loop->own_thread && atomic_load_explicit(&loop->running, memory_order_acquire))
        return -EBUSY;
    if (loop->own_thread) {
        atomic_store_explicit(&loop->stop_req, true, memory_order_release);
        pthread_mutex_lock(&loop->mu);
        uv_async_send(&loop->async);
        pthread_mutex_unlock(&loop->mu);
        pthread_join(loop->thread, NULL);
    }
    /* From here the calling thread stands in for the loop thread. */
    loop->destroying = true;
    weft_loop_t *outer = current_loop;
    current_loop = loop;

    /* Refuse new work; detach awaits from their futures, or wait for their completers. */
    pthread_mutex_lock(&loop->mu);
    loop->closed = true;
    for (await_node_t *n = loop->awaits, *next; n; n = next) {
        next = n->next;
        if (weft__future_remove_node(n->f, &n->cbn)) {
            await_unlink(loop, n);
            queue_push(loop, &n->work);
        }
    }
    while (loop->awaits) pthread_cond_wait(&loop->cv, &loop->mu);
    pthread_mutex_unlock(&loop->mu);

    /* Transfers end with -ECANCELED (their callbacks run here); then everything queued. */
    weft__loop_http_cancel_all(loop);
    for (weft_loop_work_t *w; (w = queue_take(loop)) != NULL;) run_list(w, -ECANCELED);

    weft__loop_http_close(loop);
    while (loop->timers) weft_loop_timer_destroy(loop->timers);
    uv_close((uv_handle_t *)&loop->async, NULL);
    uv_walk(&loop->uv, walk_close, NULL); /* nothing should remain; be safe */
    uv_run(&loop->uv, UV_RUN_DEFAULT);    /* runs the close callbacks */
    uv_loop_close(&loop->uv);
    current_loop = outer;
    pthread_mutex_destroy(&loop->mu);
    pthread_cond_destroy(&loop->cv);
    weft__free(loop);
    return 0;
}
