/* The thread pool (weft/pool.h): worker threads, a bounded FIFO of task records, batching,
 * map, live resizing and shutdown.
 *
 * DESIGN
 * Threads: any number of submitters; `live` worker threads, one per slot index below `target`;
 * a thread calling resize/destroy. Workers run user tasks and completion callbacks (through
 * weft__ctx_finish) with no lock held.
 *
 * State under p->mu: the queue (an intrusive singly-linked FIFO through weft_task_t.next_),
 * count, shutdown, target, slot states and the statistics. p->resize_mu serializes resize and
 * destroy, which start and join threads. Lock order: resize_mu -> mu. No user code runs under
 * either, and no future's stripe lock is taken while p->mu is held except through
 * weft__future_hold, which takes none (it is one CAS).
 *
 * Invariants:
 *   - count <= capacity; submitters wait on space_cv (blocking submit) or get -EAGAIN.
 *   - No lost wake-up: a worker decides to sleep while holding mu and with the queue empty;
 *     `idle` counts sleepers not yet signalled, `signals` signals sent and not yet consumed;
 *     every sleeper is in one of the two, and a submitter signals only when idle > 0, moving one
 *     from idle to signals. A woken worker consumes a signal (or, if none is pending, its own
 *     idle count: a spurious or broadcast wake-up) and then drains the queue before it sleeps
 *     again. So no syscall is made while all workers are busy, and none is needed. Signals are
 *     sent after unlocking so that the woken thread does not block on mu at once.
 *   - Caller-owned records are HELD (weft__future_hold) while queued: cancelling one only
 *     records the request, and the worker that dequeues it completes it with -ECANCELED without
 *     running it. A queue therefore never holds a DONE caller-owned record that its owner may
 *     have freed already. Records made by weft_pool_submit are heap futures on which the pool
 *     holds one reference until a worker (or shutdown) is done with them; cancelling them
 *     completes them at once, and the worker just drops them.
 *   - A worker reads everything it needs from a caller-owned record before completing its
 *     future, and never touches it afterwards.
 *   - A worker leaves when its slot index >= target (resize) or when shutdown is set and the
 *     queue is empty; it marks its slot EXITED and resize/destroy join it.
 */
#include "exec/future-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
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
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* workers sleep here */
    pthread_cond_t space_cv; /* blocked submitters sleep here */
    weft_task_t *head, *tail;
    size_t count, capacity;
    int idle, signals, space_waiters;
    bool shutdown;
    int target, live;
    size_t running;
    uint64_t completed, failed, cancelled, wait_ns_sum;

    pthread_mutex_t resize_mu;
    struct slot *slots; /* MAX_THREADS */
    char name[11];
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
    return t->future.flags_ & 1u; /* FL_HEAP in future.c; set before the record is shared */
}

/* ---- workers ----------------------------------------------------------------------------- */

enum outcome { OUT_OK, OUT_FAILED, OUT_CANCELLED };

/* Runs one dequeued record. Touches a caller-owned record only before completing it. */
static enum outcome run_record(weft_task_t *t)
{
    weft_future_t *f = &t->future;
    bool heap = record_is_heap(t);
    weft_task_fn fn = t->fn;
    void *arg = t->arg;
    enum outcome out;
    if (weft_future_start(f) != 0) { /* cancelled (start settled a held record) */
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

/* Completes records that will never run with `status`; returns how many it settled. */
static uint64_t settle_list(weft_task_t *t, int status)
{
    uint64_t n = 0;
    while (t) {
        weft_task_t *next = t->next_;
        bool heap = record_is_heap(t);
        weft_future_t *f = &t->future;
        if (weft__future_settle(f, status, NULL, 0, NULL, NULL) == 0 || heap) n++;
        if (heap) weft_future_release(f);
        t = next;
    }
    return n;
}

static void *worker_main(void *arg)
{
    struct slot *sl = arg;
    weft_pool_t *p = sl->pool;
    char name[16];
    snprintf(name, sizeof name, "%s-%d", p->name, sl->index);
    pthread_setname_np(pthread_self(), name);

    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (sl->index >= p->target) break;
        weft_task_t *t = p->head;
        if (!t) {
            if (p->shutdown) break;
            p->idle++;
            pthread_cond_wait(&p->work_cv, &p->mu);
            if (p->signals > 0)
                p->signals--;
            else
                p->idle--;
            continue;
        }
        p->head = t->next_;
        if (!p->head) p->tail = NULL;
        p->count--;
        bool wake_submitter = p->space_waiters > 0;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        if (wake_submitter) pthread_cond_signal(&p->space_cv);

        uint64_t waited = weft_now_ns() - t->enqueued_ns_;
        enum outcome out = run_record(t); /* t may be gone now */

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
        bool stopping = p->shutdown;
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
                pthread_cond_broadcast(&p->work_cv);
                pthread_mutex_unlock(&p->mu);
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
    weft__free(p);
}

int weft_pool_create(weft_pool_t **out, const weft_pool_opts_t *opts)
{
    *out = NULL;
    weft_pool_opts_t o = {0};
    if (opts) o = *opts;
    if (o.threads < 0 || o.threads > MAX_THREADS) return -EINVAL;
    if (o.threads == 0) o.threads = weft_cpu_count();
    if (o.threads > MAX_THREADS) o.threads = MAX_THREADS;
    if (o.queue_capacity == 0) o.queue_capacity = DEFAULT_CAPACITY;

    weft_pool_t *p = weft__calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->slots = weft__calloc(MAX_THREADS, sizeof *p->slots);
    if (!p->slots) {
        weft__free(p);
        return -ENOMEM;
    }
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
    pthread_mutex_lock(&p->mu);
    if (p->shutdown) {
        pthread_mutex_unlock(&p->mu);
        return -EALREADY;
    }
    p->shutdown = true;
    weft_task_t *drop = NULL;
    if (mode == WEFT_SHUTDOWN_CANCEL) {
        drop = p->head;
        p->head = p->tail = NULL;
        p->count = 0;
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

void weft_pool_destroy(weft_pool_t *p)
{
    if (!p) return;
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
    settle_list(p->head, -ECANCELED);
    pool_free(p);
}

int weft_pool_resize(weft_pool_t *p, int threads)
{
    if (threads < 1 || threads > MAX_THREADS) return -EINVAL;
    pthread_mutex_lock(&p->resize_mu);
    pthread_mutex_lock(&p->mu);
    if (p->shutdown) {
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
    pthread_mutex_lock(&p->mu);
    out->threads = p->live;
    out->queued = p->count;
    out->running = p->running;
    out->completed = p->completed;
    out->failed = p->failed;
    out->cancelled = p->cancelled;
    out->wait_ns_sum = p->wait_ns_sum;
    pthread_mutex_unlock(&p->mu);
}

/* ---- submission -------------------------------------------------------------------------- */

/* Moves up to n sleeping workers from idle to signals; the caller signals after unlocking. */
static int claim_wakeups(weft_pool_t *p, size_t n)
{
    int k = 0;
    while ((size_t)k < n && p->idle > 0) {
        p->idle--;
        p->signals++;
        k++;
    }
    return k;
}

static void send_wakeups(weft_pool_t *p, int k)
{
    while (k-- > 0) pthread_cond_signal(&p->work_cv);
}

/* Queues one record. `hold`: caller-owned (see DESIGN). */
static int enqueue(weft_pool_t *p, weft_task_t *t, bool block, bool hold)
{
    t->enqueued_ns_ = weft_now_ns();
    t->next_ = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->shutdown) {
            pthread_mutex_unlock(&p->mu);
            return -ESHUTDOWN;
        }
        if (p->count < p->capacity) break;
        if (!block) {
            pthread_mutex_unlock(&p->mu);
            return -EAGAIN;
        }
        p->space_waiters++;
        pthread_cond_wait(&p->space_cv, &p->mu);
        p->space_waiters--;
    }
    if (hold && weft__future_hold(&t->future) != 0) {
        pthread_mutex_unlock(&p->mu);
        return -EALREADY;
    }
    if (p->tail)
        p->tail->next_ = t;
    else
        p->head = t;
    p->tail = t;
    p->count++;
    int k = claim_wakeups(p, 1);
    pthread_mutex_unlock(&p->mu);
    send_wakeups(p, k);
    return 0;
}

static int submit(weft_pool_t *p, weft_task_fn fn, void *arg, weft_future_t **out, bool block)
{
    if (out) *out = NULL;
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
    return enqueue(p, t, true, true);
}

int weft_pool_try_submit_task(weft_pool_t *p, weft_task_t *t)
{
    return enqueue(p, t, false, true);
}

int weft_pool_submit_tasks(weft_pool_t *p, weft_task_t *tasks, size_t n)
{
    uint64_t now = weft_now_ns();
    size_t i = 0;
    bool skipped = false;
    pthread_mutex_lock(&p->mu);
    while (i < n && !p->shutdown) {
        size_t room = p->capacity - p->count;
        if (room == 0) {
            p->space_waiters++;
            pthread_cond_wait(&p->space_cv, &p->mu);
            p->space_waiters--;
            continue;
        }
        weft_task_t *first = NULL, *last = NULL;
        size_t queued = 0;
        for (; i < n && queued < room; i++) {
            weft_task_t *t = &tasks[i];
            if (weft__future_hold(&t->future) != 0) {
                skipped = true; /* not PENDING: never queue a record that may be gone */
                continue;
            }
            t->enqueued_ns_ = now;
            t->next_ = NULL;
            if (last)
                last->next_ = t;
            else
                first = t;
            last = t;
            queued++;
        }
        if (!first) continue;
        if (p->tail)
            p->tail->next_ = first;
        else
            p->head = first;
        p->tail = last;
        p->count += queued;
        int k = claim_wakeups(p, queued);
        /* Wake sleepers now even if more of the batch must wait for room. */
        pthread_mutex_unlock(&p->mu);
        send_wakeups(p, k);
        pthread_mutex_lock(&p->mu);
    }
    bool stopped = i < n;
    pthread_mutex_unlock(&p->mu);
    if (stopped) {
        for (; i < n; i++) weft__future_settle(&tasks[i].future, -ESHUTDOWN, NULL, 0, NULL, NULL);
        return -ESHUTDOWN;
    }
    return skipped ? -EALREADY : 0;
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
