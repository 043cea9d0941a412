/* Futures: a result that completes exactly once, awaited from any thread (weft/future.h).
 *
 * DESIGN
 * Threads: any number of producers (an executor's worker, a canceller, a user completing by
 * hand), consumers (waiters, pollers) and callback registrars act on one future concurrently.
 *
 * State word (state_, atomic): two phase bits and four flag bits.
 *   phase PENDING -> RUNNING (weft_future_start) -> COMPLETING -> DONE
 *         PENDING ------------------------------> COMPLETING -> DONE   (cancel, or by hand)
 *   WAITERS    a thread sleeps (or is about to) on f's stripe condvar
 *   CALLBACKS  callbacks_ holds at least one node
 *   CANCEL     cancellation was requested
 *   HELD       an executor's queue holds the record (weft__future_hold): cancel only records
 *              the request; the executor settles the future when start() reports it
 * COMPLETING is a claim: the one thread whose CAS moved the phase there owns status_, value_,
 * size_, free_value_ and message_ until it publishes DONE with a release operation. Every reader
 * of those fields first sees DONE with an acquire load, so a DONE future is read without locks.
 * The flags_ field is written once, before the future is shared (HEAP bit and the offset of the
 * future inside its heap allocation).
 *
 * No per-future lock: waiting and the callback list use a global table of STRIPES mutex+condvar
 * pairs keyed by the future's address, so a future is 56 bytes. callbacks_ and the decision to
 * sleep are protected by the stripe mutex. WAITERS and CALLBACKS are only set under the stripe
 * mutex, and only by a CAS that sees the phase below DONE, so:
 *   - fast completion: claim (one CAS), write the result, then a CAS from exactly "COMPLETING
 *     without WAITERS/CALLBACKS" to DONE. No lock, no syscall. If the CAS fails because a flag
 *     appeared, the completer takes the slow path.
 *   - slow completion: lock the stripe, detach the callback list, publish DONE (fetch_add: the
 *     phase goes 2 -> 3 and keeps any flag), unlock, broadcast the stripe condvar, then run the
 *     detached callbacks with no lock held, in registration order.
 * A waiter that does not take the lock may see DONE and free an embedded record at once, so the
 * completer reads callbacks_ BEFORE publishing DONE and never touches *f afterwards: only the
 * detached nodes (which are not in *f) and the stripe (global). Callbacks receive f; whoever owns
 * an embedded record must keep it alive until its own callbacks have run.
 *
 * Removable nodes (wait_any, as_completed, an event loop's await): the owner removes its node
 * under the stripe lock; if the completer has already detached it, the node's callback is
 * running or about to run, and the owner waits for a sign from that callback (a count under the
 * owner's own mutex) before freeing the node. The completer reads a node's fields before calling
 * its callback and never touches the node afterwards.
 *
 * Lock order: a stripe mutex is a leaf; a waitset mutex (wait_any, as_completed) is a leaf too.
 * No user code runs under either.
 */
#include "exec/future-int.h"

#include "core/alloc.h"
#include "core/cpu.h"
#include "core/slist.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft/sys.h>

enum {
    PH_PENDING = 0,
    PH_RUNNING = 1,
    PH_COMPLETING = 2,
    PH_DONE = 3,
    PH_MASK = 3,
    F_WAITERS = 1u << 2,
    F_CALLBACKS = 1u << 3,
    F_CANCEL = 1u << 4,
    F_HELD = 1u << 5,
};

/* flags_: bit 0 = heap; bits 8..31 = offset of the future inside its allocation. */
#define FL_HEAP 1u
#define FL_OFFSET_SHIFT 8

_Static_assert(sizeof(weft_future_t) <= 64, "a future fits in a cache line");

/* The public struct keeps state_ and refs_ as plain uint32_t, so that weft/future.h has no
 * _Atomic and compiles as C++; they are only ever accessed as atomics, through these. */
_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t) &&
                   _Alignof(_Atomic uint32_t) == _Alignof(uint32_t),
               "an atomic uint32_t is a plain uint32_t in memory");
#define STATE(f) ((_Atomic uint32_t *)&(f)->state_)
#define REFS(f) ((_Atomic uint32_t *)&(f)->refs_)

/* ---- stripes ----------------------------------------------------------------------------- */

#define STRIPES 128

static struct stripe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
} __attribute__((aligned(128))) stripes[STRIPES];

static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

static void stripes_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&stripes[i].mu, NULL);
        pthread_cond_init(&stripes[i].cv, &a);
    }
    pthread_condattr_destroy(&a);
}

static struct stripe *stripe_of(const weft_future_t *f)
{
    pthread_once(&stripes_once, stripes_init);
    uint64_t h = (uint64_t)(uintptr_t)f >> 4;
    h *= UINT64_C(0x9E3779B97F4A7C15);
    return &stripes[h >> (64 - 7)];
}

_Static_assert(STRIPES == 128, "stripe_of takes 7 bits of the hash");

/* ---- time -------------------------------------------------------------------------------- */

/* Absolute CLOCK_MONOTONIC deadline for pthread_cond_timedwait. */
static struct timespec deadline_ts(uint64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    return ts;
}

/* Returns the absolute deadline, or UINT64_MAX for "forever" (timeout_ns < 0). */
static uint64_t deadline_of(int64_t timeout_ns)
{
    if (timeout_ns < 0) return UINT64_MAX;
    uint64_t now = weft_now_ns();
    return now + (uint64_t)timeout_ns < now ? UINT64_MAX : now + (uint64_t)timeout_ns;
}

/* Waits on cv; returns false once the deadline has passed. */
static bool cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline)
{
    if (deadline == UINT64_MAX) {
        pthread_cond_wait(cv, mu);
        return true;
    }
    if (weft_now_ns() >= deadline) return false;
    struct timespec ts = deadline_ts(deadline);
    pthread_cond_timedwait(cv, mu, &ts);
    return true;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

void weft_future_init(weft_future_t *f)
{
    atomic_init(STATE(f), PH_PENDING);
    atomic_init(REFS(f), 1);
    f->status_ = -EINPROGRESS;
    f->flags_ = 0;
    f->value_ = NULL;
    f->size_ = 0;
    f->free_value_ = NULL;
    f->message_ = NULL;
    f->callbacks_ = NULL;
}

void weft__future_init_heap(weft_future_t *f, size_t offset)
{
    f->flags_ = FL_HEAP | (uint32_t)(offset << FL_OFFSET_SHIFT);
}

weft_future_t *weft_future_create(void)
{
    weft_future_t *f = weft__malloc(sizeof *f);
    if (!f) return NULL;
    weft_future_init(f);
    weft__future_init_heap(f, 0);
    return f;
}

bool weft__future_is_heap(const weft_future_t *f)
{
    return f->flags_ & FL_HEAP; /* written before f is shared */
}

weft_future_t *weft_future_retain(weft_future_t *f)
{
    /* Relaxed: a new reference is made from an existing one, which already orders access. */
    atomic_fetch_add_explicit(REFS(f), 1, memory_order_relaxed);
    return f;
}

static void free_result(void *value, weft_free_fn free_fn, char *message)
{
    if (value && free_fn) free_fn(value);
    weft__free(message);
}

void weft_future_release(weft_future_t *f)
{
    if (!f) return;
    /* acq_rel: the release half pairs with the acquire half of the decrement that drops the
     * last reference, so every use of the future happens before it is freed. (Not release plus
     * an acquire fence: ThreadSanitizer does not model fences, and on x86 both cost the same.) */
    uint32_t refs = atomic_fetch_sub_explicit(REFS(f), 1, memory_order_acq_rel);
    if (refs == 0) { /* only an embedded future can be seen here: a heap one would be freed */
        fprintf(stderr,
                "weft: weft_future_release: future %p released more often than once "
                "(docs/lifetime.md)\n",
                (void *)f);
        abort();
    }
    if (refs != 1) return;
    free_result(f->value_, f->free_value_, f->message_);
    f->value_ = NULL;
    f->message_ = NULL;
    /* Nodes left on a future nobody completes (its last reference dropped while pending). */
    for (weft__cbnode_t *n = f->callbacks_, *next; n; n = next) {
        next = n->next;
        if (n->heap) weft__free(n);
    }
    f->callbacks_ = NULL;
    if (f->flags_ & FL_HEAP) weft__free((char *)f - (f->flags_ >> FL_OFFSET_SHIFT));
}

/* ---- consumer side ----------------------------------------------------------------------- */

static uint32_t load_state(const weft_future_t *f)
{
    /* Acquire pairs with the release that publishes DONE in publish(): after seeing DONE, the
     * result fields are visible. The cast drops const only for the atomic load. */
    return atomic_load_explicit(STATE(f), memory_order_acquire);
}

bool weft_future_done(const weft_future_t *f)
{
    return (load_state(f) & PH_MASK) == PH_DONE;
}

int weft_future_status(const weft_future_t *f)
{
    return weft_future_done(f) ? f->status_ : -EINPROGRESS;
}

void *weft_future_value(const weft_future_t *f, size_t *size)
{
    if (!weft_future_done(f)) {
        if (size) *size = 0;
        return NULL;
    }
    if (size) *size = f->size_;
    return f->value_;
}

const char *weft_future_message(const weft_future_t *f)
{
    return weft_future_done(f) ? f->message_ : NULL;
}

bool weft_future_cancel_requested(const weft_future_t *f)
{
    uint32_t s = load_state(f);
    if (s & F_CANCEL) return true;
    return (s & PH_MASK) == PH_DONE && f->status_ == -ECANCELED;
}

/* Sets `flag` under the stripe lock unless the future is DONE. Returns false if DONE. */
static bool set_flag_unless_done(weft_future_t *f, uint32_t flag)
{
    uint32_t s = atomic_load_explicit(STATE(f), memory_order_acquire);
    for (;;) {
        if ((s & PH_MASK) == PH_DONE) return false;
        if (s & flag) return true;
        /* Acquire on failure pairs with publish()'s release (we may then read the result). */
        if (atomic_compare_exchange_weak_explicit(STATE(f), &s, s | flag, memory_order_acq_rel,
                                                  memory_order_acquire))
            return true;
    }
}

/* A short spin before sleeping, bounded by time (the cost of `pause` varies 20-140 cycles
 * between CPUs): short tasks often finish within it, which saves the completer a futex wake and
 * the waiter a sleep. Measured on the 2-vCPU dev VM: waiting in order for windows of batched
 * no-op tasks went from ~4 M/s (no spin) to ~6-8 M/s; a futex sleep and wake costs ~10-20 us
 * there. */
#define WAIT_SPIN_NS 10000

int weft_future_wait(weft_future_t *f, int64_t timeout_ns)
{
    if (weft_future_done(f)) return 0;
    if (timeout_ns == 0) return -ETIMEDOUT;
    uint64_t spin_start = 0;
    for (unsigned i = 1;; i++) {
        weft__cpu_relax();
        if (weft_future_done(f)) return 0;
        if ((i & 63) == 0) {
            uint64_t now = weft_now_ns();
            if (!spin_start)
                spin_start = now;
            else if (now - spin_start >= WAIT_SPIN_NS ||
                     (timeout_ns > 0 && now - spin_start >= (uint64_t)timeout_ns))
                break;
        }
    }
    uint64_t deadline = deadline_of(timeout_ns);
    struct stripe *st = stripe_of(f);
    int rc = 0;
    pthread_mutex_lock(&st->mu);
    /* The completer sees WAITERS (set under this lock while not DONE) and then publishes DONE
     * under this lock before broadcasting, so the check-then-sleep below cannot miss it. */
    while (set_flag_unless_done(f, F_WAITERS)) {
        if (!cond_wait_until(&st->cv, &st->mu, deadline)) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int weft__future_add_node(weft_future_t *f, weft__cbnode_t *node)
{
    struct stripe *st = stripe_of(f);
    pthread_mutex_lock(&st->mu);
    if (!set_flag_unless_done(f, F_CALLBACKS)) {
        pthread_mutex_unlock(&st->mu);
        return -EALREADY;
    }
    node->next = f->callbacks_; /* newest first; the completer reverses the list */
    f->callbacks_ = node;
    pthread_mutex_unlock(&st->mu);
    return 0;
}

bool weft__future_remove_node(weft_future_t *f, weft__cbnode_t *node)
{
    struct stripe *st = stripe_of(f);
    bool found = false;
    pthread_mutex_lock(&st->mu);
    weft__cbnode_t *prev = NULL, *n = f->callbacks_;
    while (n && n != node) {
        prev = n;
        n = n->next;
    }
    if (n) {
        if (prev)
            prev->next = n->next;
        else
            f->callbacks_ = n->next;
        found = true;
    }
    pthread_mutex_unlock(&st->mu);
    return found;
}

int weft_future_on_complete(weft_future_t *f, weft_future_cb cb, void *arg)
{
    if (!weft_future_done(f)) {
        weft__cbnode_t *n = weft__malloc(sizeof *n);
        if (!n) return -ENOMEM;
        n->cb = cb;
        n->arg = arg;
        n->heap = 1;
        if (weft__future_add_node(f, n) == 0) return 0;
        weft__free(n);
    }
    cb(f, arg);
    return 0;
}

/* ---- producer side ----------------------------------------------------------------------- */

/* Runs detached callbacks (newest first in the list) in registration order. */
static void run_callbacks(weft_future_t *f, weft__cbnode_t *list)
{
    weft__cbnode_t *fifo = list;
    WEFT__SLIST_REVERSE(fifo, next);
    while (fifo) {
        /* Read everything before the call: the node's owner may free it once cb has run. */
        weft__cbnode_t *next = fifo->next;
        weft_future_cb cb = fifo->cb;
        void *arg = fifo->arg;
        if (fifo->heap) weft__free(fifo);
        cb(f, arg);
        fifo = next;
    }
}

/* Claims the completion: moves the phase from one in `from` (a bit set of phases) to
 * COMPLETING, adding `extra` flags in the same step. Returns the new state word, or 0 if the
 * phase was not in `from`. */
static uint32_t claim(weft_future_t *f, unsigned from, uint32_t extra)
{
    uint32_t s = atomic_load_explicit(STATE(f), memory_order_relaxed);
    for (;;) {
        if (!(from & (1u << (s & PH_MASK)))) return 0;
        uint32_t n = (s & ~(uint32_t)PH_MASK) | PH_COMPLETING | extra;
        /* Acquire pairs with the release in init/hold/start by other threads: we then own the
         * result fields. */
        if (atomic_compare_exchange_weak_explicit(STATE(f), &s, n, memory_order_acquire,
                                                  memory_order_relaxed))
            return n;
    }
}

/* Publishes DONE after the claimer wrote the result, then wakes waiters and runs callbacks.
 * Touches nothing in *f after the publishing store. */
static void publish(weft_future_t *f, uint32_t s)
{
    while (!(s & (F_WAITERS | F_CALLBACKS))) {
        /* Release pairs with the acquire in load_state(): the result is visible with DONE. */
        if (atomic_compare_exchange_weak_explicit(STATE(f), &s, (s & ~(uint32_t)PH_MASK) | PH_DONE,
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
    struct stripe *st = stripe_of(f);
    pthread_mutex_lock(&st->mu);
    weft__cbnode_t *list = f->callbacks_;
    f->callbacks_ = NULL;
    /* COMPLETING (2) + 1 = DONE (3), keeping every flag; release as above. */
    uint32_t old = atomic_fetch_add_explicit(STATE(f), 1, memory_order_release);
    pthread_mutex_unlock(&st->mu);
    if (old & F_WAITERS) pthread_cond_broadcast(&st->cv);
    run_callbacks(f, list);
}

#define FROM_PENDING (1u << PH_PENDING)
#define FROM_ACTIVE ((1u << PH_PENDING) | (1u << PH_RUNNING))

static int settle_from(weft_future_t *f, unsigned from, uint32_t extra, int status, void *value,
                       size_t size, weft_free_fn free_fn, char *message)
{
    uint32_t s = claim(f, from, extra);
    if (!s) {
        free_result(value, free_fn, message);
        return -EALREADY;
    }
    f->status_ = status;
    f->value_ = value;
    f->size_ = value ? size : 0;
    f->free_value_ = free_fn;
    f->message_ = message;
    publish(f, s);
    return 0;
}

int weft__future_settle(weft_future_t *f, int status, void *value, size_t size,
                        weft_free_fn free_fn, char *message)
{
    return settle_from(f, FROM_ACTIVE, 0, status, value, size, free_fn, message);
}

int weft_future_complete(weft_future_t *f, int status, void *value, size_t size,
                         weft_free_fn free_fn)
{
    return settle_from(f, FROM_ACTIVE, 0, status, value, size, free_fn, NULL);
}

__attribute__((format(printf, 1, 0))) static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return NULL;
    char *s = weft__malloc((size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

int weft_future_fail(weft_future_t *f, int status, const char *fmt, ...)
{
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        msg = vformat(fmt, ap); /* on allocation failure the future fails without a message */
        va_end(ap);
    }
    return settle_from(f, FROM_ACTIVE, 0, status, NULL, 0, NULL, msg);
}

int weft__future_hold(weft_future_t *f)
{
    uint32_t s = atomic_load_explicit(STATE(f), memory_order_relaxed);
    for (;;) {
        if ((s & PH_MASK) != PH_PENDING) return -EALREADY;
        if (s & F_HELD) return -EBUSY; /* already queued: a second link would make a cycle */
        /* Relaxed: the executor's queue lock orders the record's publication. */
        if (atomic_compare_exchange_weak_explicit(STATE(f), &s, s | F_HELD, memory_order_relaxed,
                                                  memory_order_relaxed))
            return 0;
    }
}

int weft_future_start(weft_future_t *f)
{
    uint32_t s = atomic_load_explicit(STATE(f), memory_order_acquire);
    for (;;) {
        switch (s & PH_MASK) {
        case PH_PENDING:
            if (s & F_CANCEL) { /* a cancel deferred by HELD: settle it now, skip the work */
                settle_from(f, FROM_PENDING, F_CANCEL, -ECANCELED, NULL, 0, NULL, NULL);
                return -ECANCELED;
            }
            /* Acquire pairs with the release of whoever prepared the work (a CAS in hold or
             * the queue lock in practice); relaxed would do, acquire costs nothing on x86. */
            if (atomic_compare_exchange_weak_explicit(STATE(f), &s,
                                                      (s & ~(uint32_t)PH_MASK) | PH_RUNNING,
                                                      memory_order_acquire, memory_order_acquire))
                return 0;
            break;
        case PH_DONE:
            return f->status_ == -ECANCELED ? -ECANCELED : -EALREADY;
        default: /* RUNNING, or COMPLETING by a cancel (flagged) or by another completer */
            return (s & PH_MASK) == PH_COMPLETING && (s & F_CANCEL) ? -ECANCELED : -EALREADY;
        }
    }
}

void weft__future_request_cancel(weft_future_t *f)
{
    uint32_t s = atomic_load_explicit(STATE(f), memory_order_relaxed);
    /* CAS, never a blind fetch_or: once DONE the record may be freed. */
    while ((s & PH_MASK) < PH_COMPLETING &&
           !atomic_compare_exchange_weak_explicit(STATE(f), &s, s | F_CANCEL, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

int weft_future_cancel(weft_future_t *f)
{
    uint32_t s = atomic_load_explicit(STATE(f), memory_order_relaxed);
    for (;;) {
        switch (s & PH_MASK) {
        case PH_PENDING:
            if (!(s & F_HELD)) {
                if (settle_from(f, FROM_PENDING, F_CANCEL, -ECANCELED, NULL, 0, NULL, NULL) == 0)
                    return 0;
                s = atomic_load_explicit(STATE(f), memory_order_relaxed);
                continue; /* it started or completed meanwhile */
            }
            /* Held by a queue: record the request; the executor settles it (see hold). */
            if (atomic_compare_exchange_weak_explicit(STATE(f), &s, s | F_CANCEL,
                                                      memory_order_relaxed, memory_order_relaxed))
                return 0;
            break;
        case PH_RUNNING:
            if (atomic_compare_exchange_weak_explicit(STATE(f), &s, s | F_CANCEL,
                                                      memory_order_relaxed, memory_order_relaxed))
                return -EBUSY;
            break;
        default:
            return -EALREADY;
        }
    }
}

/* ---- task context ------------------------------------------------------------------------ */

void weft__ctx_init(weft_ctx_t *ctx, weft_future_t *f)
{
    ctx->future = f;
    ctx->value = NULL;
    ctx->size = 0;
    ctx->free_fn = NULL;
    ctx->message = NULL;
}

int weft__ctx_finish(weft_ctx_t *ctx, int status)
{
    char *msg = ctx->message;
    if (status >= 0) {
        weft__free(msg);
        msg = NULL;
    }
    int rc = weft__future_settle(ctx->future, status, ctx->value, ctx->size, ctx->free_fn, msg);
    weft__ctx_init(ctx, NULL);
    return rc;
}

void weft_ctx_set_value(weft_ctx_t *ctx, void *value, size_t size, weft_free_fn free_fn)
{
    free_result(ctx->value, ctx->free_fn, NULL);
    ctx->value = value;
    ctx->size = size;
    ctx->free_fn = free_fn;
}

void weft_ctx_set_message(weft_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    weft__free(ctx->message);
    ctx->message = msg;
}

bool weft_ctx_cancelled(const weft_ctx_t *ctx)
{
    return weft_future_cancel_requested(ctx->future);
}

weft_future_t *weft_ctx_future(const weft_ctx_t *ctx)
{
    return ctx->future;
}

/* ---- wait_all, wait_any, as_completed ---------------------------------------------------- */

int weft_future_wait_all(weft_future_t *const *fs, size_t n, int64_t timeout_ns)
{
    uint64_t deadline = deadline_of(timeout_ns);
    for (size_t i = 0; i < n; i++) {
        int64_t left = -1;
        if (deadline != UINT64_MAX) {
            uint64_t now = weft_now_ns();
            left = now >= deadline ? 0 : (int64_t)(deadline - now);
        }
        if (weft_future_wait(fs[i], left) != 0) return -ETIMEDOUT;
    }
    return 0;
}

/* A set of removable nodes whose callbacks report to one waiter. */
struct waitset {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t fired;  /* callbacks that ran (under mu) */
    size_t *ready; /* as_completed: indexes in completion order, ready[head..tail) */
    size_t head, tail;
    struct wnode {
        weft__cbnode_t node;
        struct waitset *ws;
        size_t index;
        bool attached;  /* registered and not yet known to be removed */
        bool has_fired; /* its callback ran (under mu): the future may be yielded, so never
                           touch it again (an embedded one may be freed once yielded) */
        bool heap;      /* as_completed holds a reference (heap futures only) */
    } * nodes;
};

static void waitset_cb(weft_future_t *f, void *arg)
{
    (void)f; /* never touched: once it is yielded, its owner may free it */
    struct wnode *wn = arg;
    struct waitset *ws = wn->ws;
    size_t index = wn->index;
    pthread_mutex_lock(&ws->mu);
    if (ws->ready) ws->ready[ws->tail++] = index;
    ws->fired++;
    wn->has_fired = true;
    pthread_cond_broadcast(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
}

static void waitset_init(struct waitset *ws, struct wnode *nodes, size_t *ready)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->cv, &a);
    pthread_condattr_destroy(&a);
    ws->fired = 0;
    ws->ready = ready;
    ws->head = ws->tail = 0;
    ws->nodes = nodes;
}

/* Attaches node i to fs[i]; returns false if fs[i] is already DONE. */
static bool waitset_attach(struct waitset *ws, weft_future_t *f, size_t i)
{
    struct wnode *wn = &ws->nodes[i];
    wn->node.cb = waitset_cb;
    wn->node.arg = wn;
    wn->node.heap = 0;
    wn->ws = ws;
    wn->index = i;
    wn->has_fired = false;
    wn->attached = weft__future_add_node(f, &wn->node) == 0;
    return wn->attached;
}

/* Detaches every node and waits until no callback can still touch the waitset. A future whose
 * node has fired is not touched at all: as_completed may have yielded it, and an embedded
 * future is its owner's again once yielded (docs/lifetime.md). */
static void waitset_destroy(struct waitset *ws, weft_future_t *const *fs, size_t n)
{
    bool must_wait = false;
    for (size_t i = 0; i < n; i++) {
        struct wnode *wn = &ws->nodes[i];
        if (!wn->attached) continue;
        pthread_mutex_lock(&ws->mu);
        bool fired = wn->has_fired;
        pthread_mutex_unlock(&ws->mu);
        /* Not fired: not yielded either, so fs[i] is still borrowed and may be touched. */
        if (fired || weft__future_remove_node(fs[i], &wn->node))
            wn->attached = false;
        else
            must_wait = true; /* its completer detached it: the callback is on its way */
    }
    pthread_mutex_lock(&ws->mu);
    for (size_t i = 0; must_wait && i < n; i++)
        while (ws->nodes[i].attached && !ws->nodes[i].has_fired)
            pthread_cond_wait(&ws->cv, &ws->mu);
    pthread_mutex_unlock(&ws->mu);
    pthread_cond_destroy(&ws->cv);
    pthread_mutex_destroy(&ws->mu);
}

static bool lowest_done(weft_future_t *const *fs, size_t n, size_t *index)
{
    for (size_t i = 0; i < n; i++) {
        if (weft_future_done(fs[i])) {
            *index = i;
            return true;
        }
    }
    return false;
}

int weft_future_wait_any(weft_future_t *const *fs, size_t n, int64_t timeout_ns, size_t *index)
{
    if (n == 0) return -EINVAL;
    if (lowest_done(fs, n, index)) return 0;
    if (timeout_ns == 0) return -ETIMEDOUT;
    uint64_t deadline = deadline_of(timeout_ns);
    struct waitset ws;
    struct wnode *nodes = weft__malloc(n * sizeof *nodes);
    if (!nodes) return -ENOMEM;
    waitset_init(&ws, nodes, NULL);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        nodes[i].attached = false;
        if (!any && !waitset_attach(&ws, fs[i], i)) any = true;
    }
    pthread_mutex_lock(&ws.mu);
    while (!any && ws.fired == 0)
        if (!cond_wait_until(&ws.cv, &ws.mu, deadline)) break;
    pthread_mutex_unlock(&ws.mu);
    waitset_destroy(&ws, fs, n);
    weft__free(nodes);
    return lowest_done(fs, n, index) ? 0 : -ETIMEDOUT;
}

struct weft_future_iter {
    struct waitset ws;
    size_t n, yielded;
    weft_future_t **fs;
};

int weft_future_as_completed(weft_future_t *const *fs, size_t n, weft_future_iter_t **out)
{
    *out = NULL;
    /* One allocation: the iterator, then fs[n], nodes[n], ready[n]. */
    size_t sz = sizeof(weft_future_iter_t) +
                n * (sizeof(weft_future_t *) + sizeof(struct wnode) + sizeof(size_t));
    weft_future_iter_t *it = weft__malloc(sz);
    if (!it) return -ENOMEM;
    it->n = n;
    it->yielded = 0;
    it->fs = (weft_future_t **)(it + 1);
    struct wnode *nodes = (struct wnode *)(it->fs + n);
    size_t *ready = (size_t *)(nodes + n);
    waitset_init(&it->ws, nodes, ready);
    for (size_t i = 0; i < n; i++) {
        /* A reference on heap futures only: an embedded one is borrowed until it is yielded
         * (or the iterator destroyed), and is never touched after it was yielded. */
        nodes[i].heap = weft__future_is_heap(fs[i]);
        it->fs[i] = nodes[i].heap ? weft_future_retain(fs[i]) : fs[i];
        if (!waitset_attach(&it->ws, fs[i], i)) {
            pthread_mutex_lock(&it->ws.mu);
            it->ws.ready[it->ws.tail++] = i;
            pthread_mutex_unlock(&it->ws.mu);
        }
    }
    *out = it;
    return 0;
}

int weft_future_iter_next(weft_future_iter_t *it, int64_t timeout_ns, weft_future_t **out)
{
    *out = NULL;
    if (it->yielded == it->n) return -ENOENT;
    uint64_t deadline = deadline_of(timeout_ns);
    int rc = 0;
    pthread_mutex_lock(&it->ws.mu);
    while (it->ws.head == it->ws.tail) {
        if (timeout_ns == 0 || !cond_wait_until(&it->ws.cv, &it->ws.mu, deadline)) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    if (rc == 0) {
        *out = it->fs[it->ws.ready[it->ws.head++]];
        it->yielded++;
    }
    pthread_mutex_unlock(&it->ws.mu);
    return rc;
}

void weft_future_iter_destroy(weft_future_iter_t *it)
{
    if (!it) return;
    waitset_destroy(&it->ws, it->fs, it->n);
    /* The heap bit was read at creation: a yielded embedded future may be gone by now. */
    for (size_t i = 0; i < it->n; i++)
        if (it->ws.nodes[i].heap) weft_future_release(it->fs[i]);
    weft__free(it);
}
