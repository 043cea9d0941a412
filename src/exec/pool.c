/* The thread pool (weft/pool.h): worker threads, a bounded queue of task records, batching,
 * map, live resizing and shutdown.
 *
 * DESIGN
 * Threads: any number of submitters; `live` worker threads, one per slot index below `target`;
 * a thread calling resize/destroy. Workers run user tasks and completion callbacks (through
 * weft__ctx_finish) with no lock held.
 *
 * Submission takes no lock in the common case (measured: with a mutex-protected queue, the
 * submitter and two workers on two CPUs spent most of their time in futex calls, ~1.4 M/s):
 *   1. reserve room: a CAS on `count` (records reserved or queued), never above `capacity`;
 *   2. check `shutdown` (seq_cst, after the reservation: see below);
 *   3. push the record (or a pre-linked batch) on `inbox`, a lock-free LIFO stack of records
 *      linked through weft_task_t.next_ (one CAS; pushes have no ABA problem and the only pop is
 *      an exchange of the whole stack);
 *   4. if `idle` > 0, take mu and signal one sleeping worker.
 * Workers take mu, move the whole inbox (exchange with NULL, reversed into arrival order) to
 * the tail of the FIFO head..tail that mu protects, and pop one record at a time from it, so
 * ordering is FIFO per submitter and work is shared one task at a time between workers.
 *
 * No lost wake-up: a worker decides to sleep under mu by incrementing `idle` (seq_cst) and then
 * re-reading `inbox` (seq_cst); a submitter pushes (seq_cst) and then reads `idle` (seq_cst).
 * In the single total order of seq_cst operations one of the two sees the other: either the
 * worker sees the record, or the submitter sees idle > 0 and signals under mu, which it can only
 * take once the worker is inside pthread_cond_wait. `idle` counts sleepers not yet signalled and
 * `signals` signals not yet consumed; a submitter moves one from idle to signals (under mu), and
 * a woken worker consumes a signal, or its own idle count if none is pending (a spurious or
 * broadcast wake-up). So no syscall is made while every worker is busy.
 *
 * Shutdown: `shutdown` is set under mu (seq_cst). A submitter reserves (seq_cst RMW on count)
 * before it reads `shutdown`, and a worker only exits on shutdown when it sees count == 0, so a
 * record whose submitter saw shutdown == false is always taken by a worker; a submitter that
 * sees shutdown == true gives its reservation back and wakes the workers. WAIT runs every
 * accepted record; CANCEL completes the queued ones with -ECANCELED at once, and workers settle
 * records that arrive later (reserved before the shutdown) the same way.
 *
 * Backpressure: a blocked submitter increments space_waiters and re-checks count under mu
 * before sleeping on space_cv; every decrement of count is made under mu (workers) or followed
 * by taking mu (a reservation given back), so it cannot miss the wake-up.
 *
 * Records: caller-owned records are HELD (weft__future_hold) while queued: cancelling one only
 * records the request, and the worker that dequeues it completes it with -ECANCELED without
 * running it, so the pool never holds a DONE caller-owned record that its owner may have freed.
 * Records made by weft_pool_submit are heap futures on which the pool holds one reference until
 * a worker (or shutdown) is done with them; cancelling those completes them at once. A worker
 * reads everything it needs from a caller-owned record before completing its future and never
 * touches it afterwards.
 *
 * Lock order: resize_mu -> mu. resize_mu serializes resize and destroy (they start and join
 * threads). No user code runs under either; no future stripe lock is taken under mu
 * (weft__future_hold is one CAS).
 */
#include "exec/future-int.h"

#include "core/alloc.h"
#include "core/slist.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <weft/pool.h>
#include <weft/sys.h>

#define MAX_THREADS 1024
#define DEFAULT_CAPACITY 65536
#define MAP_WINDOW 1024 /* chunk records per weft_pool_map round */

enum slot_state { SLOT_EMPTY = 0, SLOT_LIVE, SLOT_EXITED };

struct slot {
    pthread_t tid;
    weft_pool_t *pool;
    int index;
    int state; /* enum slot_state, under p->mu */
};

struct weft_pool {
    /* Submission side: one cache line that every submit touches. */
    _Alignas(64) _Atomic(weft_task_t *) inbox; /* newest first */
    atomic_size_t count;                       /* reserved + queued records */
    atomic_int idle;                           /* sleeping workers not yet signalled */
    atomic_int space_waiters;                  /* submitters blocked on a full queue */
    atomic_bool shutdown;
    size_t capacity;

    /* Worker side, under mu. */
    _Alignas(64) pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* workers sleep here */
    pthread_cond_t space_cv; /* blocked submitters sleep here */
    weft_task_t *head, *tail;
    int signals;
    bool cancel_all; /* shutdown CANCEL: settle whatever is dequeued from now on */
    int target, live;
    size_t running;
    uint64_t completed, failed, cancelled, wait_ns_sum;

    pthread_mutex_t resize_mu;
    struct slot *slots; /* MAX_THREADS */
    char name[11];
    void *raw; /* what weft__malloc returned; the pool is aligned to 64 inside it */
};

/* ---- records ----------------------------------------------------------------------------- */

void weft_task_init(weft_task_t *t, weft_task_fn fn, void *arg)
{
    t->fn = fn;
    t->arg = arg;
    weft_future_init(&t->future);
    t->next_ = NULL;
    t->enqueued_ns_ = 0;
}

/* A record from weft_pool_submit: a heap future, freed with its last reference. */
static weft_task_t *record_new(weft_task_fn fn, void *arg)
{
    weft_task_t *t = weft__malloc(sizeof *t);
    if (!t) return NULL;
    weft_task_init(t, fn, arg);
    weft__future_init_heap(&t->future, offsetof(weft_task_t, future));
    return t;
}

static bool record_is_heap(const weft_task_t *t)
{
    return weft__future_is_heap(&t->future);
}

/* The pool whose task the calling thread is running, if any: destroy and map refuse to run
 * there (they would join or wait for the calling worker itself). */
static _Thread_local weft_pool_t *current_pool;

/* ---- workers ----------------------------------------------------------------------------- */

enum outcome { OUT_OK, OUT_FAILED, OUT_CANCELLED };

/* Runs one dequeued record, or settles it with -ECANCELED if `cancel`. Touches a caller-owned
 * record only before completing it. */
static enum outcome run_record(weft_task_t *t, bool cancel)
{
    weft_future_t *f = &t->future;
    bool heap = record_is_heap(t);
    weft_task_fn fn = t->fn;
    void *arg = t->arg;
    enum outcome out;
    if (cancel) {
        weft__future_settle(f, -ECANCELED, NULL, 0, NULL, NULL);
        out = OUT_CANCELLED;
    } else if (weft_future_start(f) != 0) { /* cancelled (start settled a held record) */
        out = OUT_CANCELLED;
    } else {
        weft_ctx_t ctx;
        weft__ctx_init(&ctx, f);
        int rc = fn(arg, &ctx);
        out = rc < 0 ? OUT_FAILED : OUT_OK;
        weft__ctx_finish(&ctx, rc);
    }
    if (heap) weft_future_release(f); /* the pool's reference */
    return out;
}

/* Completes records that will never run with `status`; returns how many. */
static uint64_t settle_list(weft_task_t *t, int status)
{
    uint64_t n = 0;
    while (t) {
        weft_task_t *next = t->next_;
        bool heap = record_is_heap(t);
        weft_future_t *f = &t->future;
        weft__future_settle(f, status, NULL, 0, NULL, NULL);
        if (heap) weft_future_release(f);
        n++;
        t = next;
    }
    return n;
}

/* Takes the whole inbox (newest first) and returns it oldest first; *last gets its tail. */
static weft_task_t *take_inbox(weft_pool_t *p, weft_task_t **last)
{
    /* Acquire pairs with the pushers' release half: the records' fields are visible. */
    weft_task_t *t = atomic_exchange_explicit(&p->inbox, NULL, memory_order_acquire);
    *last = t;
    WEFT__SLIST_REVERSE(t, next_);
    return t;
}

/* Appends the inbox to the FIFO. Called with mu held. */
static void drain_inbox_locked(weft_pool_t *p)
{
    weft_task_t *last, *first = take_inbox(p, &last);
    if (!first) return;
    if (p->tail)
        p->tail->next_ = first;
    else
        p->head = first;
    p->tail = last;
}

static void *worker_main(void *arg)
{
    struct slot *sl = arg;
    weft_pool_t *p = sl->pool;
    char name[16];
    snprintf(name, sizeof name, "%s-%d", p->name, sl->index);
    pthread_setname_np(pthread_self(), name);
    current_pool = p;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (sl->index >= p->target) break;
        if (!p->head) drain_inbox_locked(p);
        weft_task_t *t = p->head;
        if (!t) {
            /* seq_cst: pairs with the reservation before a submitter reads `shutdown`. */
            if (atomic_load(&p->shutdown) && atomic_load(&p->count) == 0) break;
            /* seq_cst increment, then re-read inbox: pairs with push-then-read-idle. */
            atomic_fetch_add(&p->idle, 1);
            if (atomic_load(&p->inbox) != NULL) {
                atomic_fetch_sub(&p->idle, 1); /* nobody claimed it: claims need mu */
                continue;
            }
            pthread_cond_wait(&p->work_cv, &p->mu);
            if (p->signals > 0)
                p->signals--;
            else
                atomic_fetch_sub_explicit(&p->idle, 1, memory_order_relaxed); /* under mu */
            continue;
        }
        p->head = t->next_;
        if (!p->head) p->tail = NULL;
        /* Under mu, so a submitter about to sleep for room re-checks after this. */
        atomic_fetch_sub_explicit(&p->count, 1, memory_order_relaxed);
        bool wake_submitter = atomic_load_explicit(&p->space_waiters, memory_order_relaxed) > 0;
        bool cancel = p->cancel_all;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        if (wake_submitter) pthread_cond_signal(&p->space_cv);

        uint64_t waited = weft_now_ns() - t->enqueued_ns_;
        enum outcome out = run_record(t, cancel); /* t may be gone now */

        pthread_mutex_lock(&p->mu);
        p->running--;
        p->wait_ns_sum += waited;
        if (out == OUT_CANCELLED) {
            p->cancelled++;
        } else {
            p->completed++;
            if (out == OUT_FAILED) p->failed++;
        }
    }
    p->live--;
    sl->state = SLOT_EXITED;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Starts the thread of slot i (EMPTY). Called with resize_mu held, not mu. */
static int start_slot(weft_pool_t *p, int i)
{
    struct slot *sl = &p->slots[i];
    sl->pool = p;
    sl->index = i;
    pthread_mutex_lock(&p->mu);
    sl->state = SLOT_LIVE;
    p->live++;
    pthread_mutex_unlock(&p->mu);
    /* Workers block every signal, so that signals go to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&sl->tid, NULL, worker_main, sl);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_mutex_lock(&p->mu);
        sl->state = SLOT_EMPTY;
        p->live--;
        pthread_mutex_unlock(&p->mu);
        return -rc;
    }
    return 0;
}

/* Joins every EXITED slot, and starts EMPTY slots below target. Called with resize_mu held. */
static int reconcile_threads(weft_pool_t *p)
{
    for (int i = 0; i < MAX_THREADS; i++) {
        pthread_mutex_lock(&p->mu);
        int state = p->slots[i].state, target = p->target;
        bool stopping = atomic_load_explicit(&p->shutdown, memory_order_relaxed);
        pthread_mutex_unlock(&p->mu);
        if (state == SLOT_EXITED) {
            pthread_join(p->slots[i].tid, NULL);
            pthread_mutex_lock(&p->mu);
            p->slots[i].state = SLOT_EMPTY;
            pthread_mutex_unlock(&p->mu);
            state = SLOT_EMPTY;
        }
        if (state == SLOT_EMPTY && i < target && !stopping) {
            int rc = start_slot(p, i);
            if (rc < 0) {
                pthread_mutex_lock(&p->mu);
                p->target = i > 0 ? i : 1;
                pthread_mutex_unlock(&p->mu);
                pthread_cond_broadcast(&p->work_cv);
                return rc;
            }
        }
    }
    return 0;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void pool_free(weft_pool_t *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->resize_mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->space_cv);
    weft__free(p->slots);
    weft__free(p->raw);
}

int weft_pool_create(weft_pool_t **out, const weft_pool_opts_t *opts)
{
    if (!out) return -EINVAL;
    *out = NULL;
    weft_pool_opts_t o = {0};
    if (opts) o = *opts;
    if (o.threads < 0 || o.threads > MAX_THREADS) return -EINVAL;
    if (o.threads == 0) o.threads = weft_cpu_count();
    if (o.threads > MAX_THREADS) o.threads = MAX_THREADS;
    if (o.queue_capacity == 0) o.queue_capacity = DEFAULT_CAPACITY;

    /* Aligned for the cache-line layout above. */
    weft_pool_t *p = weft__malloc(sizeof *p + 64);
    if (!p) return -ENOMEM;
    void *raw = p;
    p = (weft_pool_t *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    memset(p, 0, sizeof *p);
    p->raw = raw;
    p->slots = weft__calloc(MAX_THREADS, sizeof *p->slots);
    if (!p->slots) {
        weft__free(raw);
        return -ENOMEM;
    }
    atomic_init(&p->inbox, NULL);
    atomic_init(&p->count, 0);
    atomic_init(&p->idle, 0);
    atomic_init(&p->space_waiters, 0);
    atomic_init(&p->shutdown, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->resize_mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->space_cv, NULL);
    p->capacity = o.queue_capacity;
    p->target = o.threads;
    snprintf(p->name, sizeof p->name, "%s", o.name ? o.name : "weft");

    pthread_mutex_lock(&p->resize_mu);
    int rc = reconcile_threads(p);
    pthread_mutex_unlock(&p->resize_mu);
    if (rc < 0) {
        weft_pool_destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

int weft_pool_shutdown(weft_pool_t *p, weft_shutdown_t mode)
{
    if (!p || (mode != WEFT_SHUTDOWN_WAIT && mode != WEFT_SHUTDOWN_CANCEL)) return -EINVAL;
    pthread_mutex_lock(&p->mu);
    if (atomic_load_explicit(&p->shutdown, memory_order_relaxed)) {
        pthread_mutex_unlock(&p->mu);
        return -EALREADY;
    }
    atomic_store(&p->shutdown, true); /* seq_cst: see DESIGN (reserve, then read shutdown) */
    weft_task_t *drop = NULL;
    if (mode == WEFT_SHUTDOWN_CANCEL) {
        p->cancel_all = true;
        drain_inbox_locked(p);
        drop = p->head;
        p->head = p->tail = NULL;
        size_t n = 0;
        for (weft_task_t *t = drop; t; t = t->next_) n++;
        atomic_fetch_sub_explicit(&p->count, n, memory_order_relaxed);
    }
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->work_cv);
    pthread_cond_broadcast(&p->space_cv);
    if (drop) {
        uint64_t n = settle_list(drop, -ECANCELED); /* runs callbacks: no lock held */
        pthread_mutex_lock(&p->mu);
        p->cancelled += n;
        pthread_mutex_unlock(&p->mu);
    }
    return 0;
}

int weft_pool_destroy(weft_pool_t *p)
{
    if (!p) return 0;
    /* A worker cannot join itself, and freeing the pool under it would be a use-after-free. */
    if (current_pool == p) return -EDEADLK;
    weft_pool_shutdown(p, WEFT_SHUTDOWN_WAIT);
    pthread_mutex_lock(&p->resize_mu);
    for (int i = 0; i < MAX_THREADS; i++) {
        pthread_mutex_lock(&p->mu);
        int state = p->slots[i].state;
        pthread_mutex_unlock(&p->mu);
        if (state != SLOT_EMPTY) pthread_join(p->slots[i].tid, NULL);
    }
    pthread_mutex_unlock(&p->resize_mu);
    /* Only if no worker could ever start (creation failed): nothing may stay PENDING. */
    drain_inbox_locked(p);
    settle_list(p->head, -ECANCELED);
    pool_free(p);
    return 0;
}

int weft_pool_resize(weft_pool_t *p, int threads)
{
    if (!p || threads < 1 || threads > MAX_THREADS) return -EINVAL;
    pthread_mutex_lock(&p->resize_mu);
    pthread_mutex_lock(&p->mu);
    if (atomic_load_explicit(&p->shutdown, memory_order_relaxed)) {
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_unlock(&p->resize_mu);
        return -ESHUTDOWN;
    }
    bool shrink = threads < p->target;
    p->target = threads;
    pthread_mutex_unlock(&p->mu);
    if (shrink) pthread_cond_broadcast(&p->work_cv); /* sleepers above target leave */
    int rc = reconcile_threads(p);
    pthread_mutex_unlock(&p->resize_mu);
    return rc;
}

void weft_pool_stats(weft_pool_t *p, weft_pool_stats_t *out)
{
    if (!p) {
        memset(out, 0, sizeof *out);
        return;
    }
    pthread_mutex_lock(&p->mu);
    out->threads = p->live;
    out->queued = atomic_load_explicit(&p->count, memory_order_relaxed);
    out->running = p->running;
    out->completed = p->completed;
    out->failed = p->failed;
    out->cancelled = p->cancelled;
    out->wait_ns_sum = p->wait_ns_sum;
    pthread_mutex_unlock(&p->mu);
}

/* ---- submission -------------------------------------------------------------------------- */

/* Wakes up to n sleeping workers. */
static void wake_workers(weft_pool_t *p, size_t n)
{
    pthread_mutex_lock(&p->mu);
    int k = 0;
    while ((size_t)k < n && atomic_load_explicit(&p->idle, memory_order_relaxed) > 0) {
        atomic_fetch_sub_explicit(&p->idle, 1, memory_order_relaxed); /* under mu */
        p->signals++;
        k++;
    }
    pthread_mutex_unlock(&p->mu);
    while (k-- > 0) pthread_cond_signal(&p->work_cv);
}

/* Gives back `n` reserved slots that will not be used. */
static void unreserve(weft_pool_t *p, size_t n)
{
    if (n == 0) return;
    atomic_fetch_sub(&p->count, n);
    /* Rare path: wake blocked submitters (room) and, after shutdown, workers waiting for
     * count to reach 0. Taking mu orders this with their check-then-sleep. */
    pthread_mutex_lock(&p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->space_cv);
    if (atomic_load(&p->shutdown)) pthread_cond_broadcast(&p->work_cv);
}

/* Reserves between 1 and `want` slots (*got). Blocks for room if `block`. Returns 0,
 * -EAGAIN or -ESHUTDOWN. */
static int reserve(weft_pool_t *p, size_t want, bool block, size_t *got)
{
    for (;;) {
        size_t c = atomic_load_explicit(&p->count, memory_order_relaxed);
        while (c < p->capacity) {
            size_t k = p->capacity - c < want ? p->capacity - c : want;
            /* seq_cst: ordered before the read of `shutdown` below (see DESIGN). */
            if (atomic_compare_exchange_weak(&p->count, &c, c + k)) {
                if (atomic_load(&p->shutdown)) {
                    unreserve(p, k);
                    return -ESHUTDOWN;
                }
                *got = k;
                return 0;
            }
        }
        if (atomic_load(&p->shutdown)) return -ESHUTDOWN;
        if (!block) return -EAGAIN;
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add_explicit(&p->space_waiters, 1, memory_order_relaxed);
        while (!atomic_load(&p->shutdown) &&
               atomic_load_explicit(&p->count, memory_order_relaxed) >= p->capacity)
            pthread_cond_wait(&p->space_cv, &p->mu);
        atomic_fetch_sub_explicit(&p->space_waiters, 1, memory_order_relaxed);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Pushes a chain linked newest -> oldest through next_ (newest first) onto the inbox and wakes
 * up to n sleeping workers. */
static void push_chain(weft_pool_t *p, weft_task_t *newest, weft_task_t *oldest, size_t n)
{
    weft_task_t *h = atomic_load_explicit(&p->inbox, memory_order_relaxed);
    do {
        oldest->next_ = h;
        /* seq_cst: releases the records to take_inbox's acquire, and is ordered before the
         * read of `idle` (pairs with a worker's increment-then-reread, see DESIGN). */
    } while (!atomic_compare_exchange_weak(&p->inbox, &h, newest));
    if (atomic_load(&p->idle) > 0) wake_workers(p, n);
}

/* Queues one record. `hold`: caller-owned (see DESIGN). */
static int enqueue(weft_pool_t *p, weft_task_t *t, bool block, bool hold)
{
    size_t got;
    int rc = reserve(p, 1, block, &got);
    if (rc < 0) return rc;
    if (hold && (rc = weft__future_hold(&t->future)) != 0) { /* -EBUSY: queued already */
        unreserve(p, 1);
        return rc;
    }
    t->enqueued_ns_ = weft_now_ns();
    push_chain(p, t, t, 1);
    return 0;
}

static int submit(weft_pool_t *p, weft_task_fn fn, void *arg, weft_future_t **out, bool block)
{
    if (out) *out = NULL;
    if (!p || !fn) return -EINVAL;
    weft_task_t *t = record_new(fn, arg);
    if (!t) return -ENOMEM;
    weft_future_t *f = out ? weft_future_retain(&t->future) : NULL;
    int rc = enqueue(p, t, block, false);
    if (rc < 0) {
        weft_future_release(f);
        weft_future_release(&t->future); /* frees the record */
        return rc;
    }
    if (out) *out = f;
    return 0;
}

int weft_pool_submit(weft_pool_t *p, weft_task_fn fn, void *arg, weft_future_t **out)
{
    return submit(p, fn, arg, out, true);
}

int weft_pool_try_submit(weft_pool_t *p, weft_task_fn fn, void *arg, weft_future_t **out)
{
    return submit(p, fn, arg, out, false);
}

int weft_pool_submit_task(weft_pool_t *p, weft_task_t *t)
{
    if (!p || !t || !t->fn) return -EINVAL;
    return enqueue(p, t, true, true);
}

int weft_pool_try_submit_task(weft_pool_t *p, weft_task_t *t)
{
    if (!p || !t || !t->fn) return -EINVAL;
    return enqueue(p, t, false, true);
}

int weft_pool_submit_tasks(weft_pool_t *p, weft_task_t *tasks, size_t n)
{
    if (!p || (n && !tasks)) return -EINVAL;
    for (size_t k = 0; k < n; k++)
        if (!tasks[k].fn) return -EINVAL; /* before anything is queued */
    uint64_t now = weft_now_ns();
    size_t i = 0;
    int skipped = 0; /* -EBUSY (one was still queued) wins over -EALREADY (not PENDING) */
    int rc = 0;
    while (i < n) {
        size_t got;
        rc = reserve(p, n - i, true, &got);
        if (rc < 0) break;
        /* Link the next `got` holdable records newest first, as the inbox wants them. */
        weft_task_t *newest = NULL, *oldest = NULL;
        size_t queued = 0;
        for (; i < n && queued < got; i++) {
            weft_task_t *t = &tasks[i];
            int hrc = weft__future_hold(&t->future);
            if (hrc != 0) { /* never queue a record twice, or one that may be gone */
                if (skipped != -EBUSY) skipped = hrc;
                continue;
            }
            t->enqueued_ns_ = now;
            t->next_ = newest;
            newest = t;
            if (!oldest) oldest = t;
            queued++;
        }
        unreserve(p, got - queued);
        if (queued) push_chain(p, newest, oldest, queued);
    }
    if (rc < 0) {
        /* Hold first: never settle a record that another queue still holds (submitted twice). */
        for (; i < n; i++)
            if (weft__future_hold(&tasks[i].future) == 0)
                weft__future_settle(&tasks[i].future, rc, NULL, 0, NULL, NULL);
        return rc;
    }
    return skipped;
}

/* ---- map --------------------------------------------------------------------------------- */

struct map_chunk {
    int (*fn)(void *item, void *arg);
    void *arg;
    char *items;
    size_t count, item_size;
};

static int map_task(void *arg, weft_ctx_t *ctx)
{
    struct map_chunk *c = arg;
    for (size_t i = 0; i < c->count; i++) {
        int rc = c->fn(c->items + i * c->item_size, c->arg);
        if (rc < 0) return rc; /* the rest of the chunk cannot change the result */
    }
    return 0;
}

int weft_pool_map(weft_pool_t *p, int (*fn)(void *item, void *arg), void *items, size_t n,
                  size_t item_size, size_t chunksize, void *arg)
{
    if (!p) return -EINVAL;
    if (current_pool == p) return -EDEADLK; /* it would wait for chunks behind its own task */
    if (n == 0) return 0;
    if (!fn || !items || item_size == 0) return -EINVAL;
    if (chunksize == 0) {
        pthread_mutex_lock(&p->mu);
        size_t workers = (size_t)(p->target > 0 ? p->target : 1);
        pthread_mutex_unlock(&p->mu);
        chunksize = (n + workers * 4 - 1) / (workers * 4);
    }
    size_t nchunks = (n + chunksize - 1) / chunksize;
    size_t window = nchunks < MAP_WINDOW ? nchunks : MAP_WINDOW;
    /* One allocation: the task records (contiguous, for the batch submit), then the chunks. */
    weft_task_t *ts = weft__malloc(window * (sizeof(weft_task_t) + sizeof(struct map_chunk)));
    if (!ts) return -ENOMEM;
    struct map_chunk *cs = (struct map_chunk *)(ts + window);
    int result = 0;
    /* Windows of chunks in index order; stop after the first window with a failure, since
     * later items cannot hold the lowest-indexed failure (Executor.map cancels the rest too). */
    for (size_t c0 = 0; c0 < nchunks && result == 0; c0 += window) {
        size_t w = nchunks - c0 < window ? nchunks - c0 : window;
        for (size_t j = 0; j < w; j++) {
            size_t first = (c0 + j) * chunksize;
            struct map_chunk *c = &cs[j];
            c->fn = fn;
            c->arg = arg;
            c->items = (char *)items + first * item_size;
            c->count = n - first < chunksize ? n - first : chunksize;
            c->item_size = item_size;
            weft_task_init(&ts[j], map_task, c);
        }
        /* On shutdown the records not queued are completed with -ESHUTDOWN; the queued ones
         * complete too (run or cancelled), so waiting for all of them always ends. */
        weft_pool_submit_tasks(p, ts, w);
        for (size_t j = 0; j < w; j++) {
            weft_future_wait(&ts[j].future, -1);
            int st = weft_future_status(&ts[j].future);
            if (st < 0 && result == 0) result = st; /* the lowest chunk; its first failure */
            weft_future_release(&ts[j].future);
        }
    }
    weft__free(ts);
    return result;
}
