/* The order engine (engine.h): intake on a thread pool, durable stages through one group-commit
 * writer, IO stages on the event loop.
 *
 * DESIGN
 * Threads and what each owns:
 *   - HTTP threads (api.c) call engine_submit_order/engine_set_stock and the synchronous reads.
 *   - The intake pool (weft/pool.h, 2 threads) parses and validates a POST body, checks the
 *     idempotency key against the in-flight table, and queues the order's CREATE operation.
 *   - The writer thread owns the store's write connection. It takes every queued operation (up
 *     to batch_max) and applies them as one transaction (group commit: one fsync for hundreds of
 *     orders), then completes them: HTTP answers (201 only now, after COMMIT), and orders handed
 *     to the loop for their next stage. A failed transaction answers its CREATEs with 503 and
 *     re-queues the stage operations after a pause; nothing was applied, and every operation is
 *     idempotent (store.h), so retrying is exact.
 *   - The loop thread (weft/loop.h) drives each order's stages: it queues the stock operation,
 *     runs the payment call (pay.c, retried with the same key and backoff), queues the
 *     transition that follows, and retires terminal orders into the statistics.
 * An order is in exactly one place at a time: the pool, the writer queue, the loop queue, or
 *   held by the loop (a payment attempt or its backoff timer). The `all` list (all_mu) only
 *   remembers every live order so that engine_destroy can free those a stop left behind.
 * Handoffs: writer -> loop through loopq (lq_mu) and ONE caller-owned weft_loop_work_t, posted
 *   when the queue goes from idle to busy (the loop drains all of it per wake-up); anything ->
 *   writer through wq (wq_mu + wq_cv).
 * Idempotency: keys in flight (intake to COMMIT) are in `inflight` (idem_mu): a second request
 *   meanwhile gets 409. After commit the database's UNIQUE(idem_key) decides: the CREATE is an
 *   INSERT ... ON CONFLICT DO NOTHING and, on conflict, the same body hash returns the first id
 *   (200), another body 422. That holds across restarts, with no table of all keys in memory.
 * Crash safety: an order exists for clients only once committed; each later transition is one
 *   transaction guarded by the previous status; on start every accepted/reserved/paid order is
 *   loaded and re-enters its stage. The payment key is the order id, so a resumed payment cannot
 *   capture twice.
 * Overload: live orders (intake to terminal) are bounded by max_live and the pool queue by its
 *   capacity; past either, 503 with Retry-After. No queue grows without bound. Payment attempts
 *   in flight are bounded by pay_concurrency (the loop's connection cache is sized to match):
 *   the others wait in `payq` on the loop thread, in arrival order. Without that bound a slow
 *   payment API saw one connection per live order (50,000), and the engine ran out of fds.
 * With Redis (--redis, stock.h): the loop asks Redis first (lua script or lock + fencing token),
 *   then queues the RESERVE with the decision's fences; the database re-checks every unit and
 *   token, and the loop then mirrors (lock: the write's levels, versioned; then unlock) or
 *   undoes (lua: give back; a refused decision also triggers a reconcile). A refused fence
 *   (lease lost) leaves the order 'accepted' and it tries again. A paid order is handed over by
 *   XADD weft:ship and leaves the engine; `weft orders logistics` marks it shipped. A
 *   payment-failed order's units go back to Redis only after the release committed.
 * Stages and where they run: create (intake pool + writer), reserve (writer, or Redis on the
 *   loop + writer), payment (loop: HTTP), logistics (writer, or loop: XADD), statistics (stats.c:
 *   a stats thread and a worker process, never on the request path).
 * Lock order: no two of idem_mu, wq_mu, lq_mu, all_mu, st_mu are ever held together; no
 *   callback runs under any of them.
 */
#include "orders/engine.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/hash.h>
#include <weft/htab.h>
#include <weft/loop.h>
#include <weft/pool.h>
#include <weft/sys.h>

#include "orders/order.h"
#include "orders/pay.h"
#include "orders/stats.h"
#include "orders/stock.h"
#include "orders/store.h"

typedef struct ord {
    store_order_t so;
    engine_t *e;
    /* intake only (until CREATE commits) */
    char *key;
    char *body;
    size_t len;
    engine_call_t *call;
    uint64_t intake_ns;
    /* the one operation this order has in flight */
    store_op_t op;
    /* stage timings */
    uint64_t stage_start_ns;
    uint32_t stage_ms[STATS_NSTAGES], attempts[STATS_NSTAGES];
    char stages[320];
    uint64_t rng;
    /* Redis (loop thread only) */
    stock_hold_t hold;
    bool holding;          /* a Redis reservation awaits its durable write */
    bool releasing;        /* stock_redis_release_begin called, _end owed */
    store_level_t *levels; /* per item: what the stock write left, for Redis' mirror (lazy) */
    int op_rc;             /* the last operation's rc, as the loop sees it */
    bool op_fenced;
    void (*later)(struct ord *o); /* what the retry timer runs */
    struct ord *next;             /* loopq */
    struct ord *all_prev, *all_next;
} ord_t;

typedef struct setstock {
    store_op_t op;
    engine_call_t *call;
    char sku[ORDER_MAX_SKU + 1];
} setstock_t;

struct engine {
    engine_opts_t o;
    char *payment_url;
    store_t *store;
    weft_pool_t *pool;
    weft_loop_t *loop;
    stats_t *stats;
    stock_redis_t *redis; /* loop thread only; NULL without --redis */
    atomic_size_t live;
    atomic_bool stopping;
    /* Gauges for /metrics, relaxed (read once per scrape; nothing is ordered by them). */
    atomic_size_t writer_busy; /* 1 while the writer's transaction runs */
    atomic_size_t io_inflight; /* payment and Redis calls started on the loop, not yet back */
    atomic_size_t io_backoff;  /* orders on a retry timer */

    pthread_mutex_t idem_mu;
    weft_htab_t inflight; /* hash(key) -> ord_t* */

    pthread_mutex_t wq_mu;
    pthread_cond_t wq_cv;
    store_op_t *wq_head, *wq_tail;
    bool wq_stop;
    pthread_t writer;
    bool writer_started;

    pthread_mutex_t lq_mu;
    ord_t *lq_head, *lq_tail;
    bool lq_posted, lq_closed;
    weft_loop_work_t lq_work;

    pthread_mutex_t all_mu;
    ord_t *all;

    /* The payment window (loop thread only; the counts are atomic for engine_gauges). */
    ord_t *payq_head, *payq_tail; /* waiting for a slot, linked through `next` */
    bool pay_draining;            /* pay_next is starting attempts (no re-entry) */
    atomic_size_t pay_running, pay_queued;
};

/* ---- order records ---- */

static ord_t *ord_new(engine_t *e)
{
    ord_t *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->e = e;
    o->rng = weft_now_ns() | 1;
    o->so.stages = o->stages;
    strcpy(o->stages, "{}");
    pthread_mutex_lock(&e->all_mu);
    o->all_next = e->all;
    if (e->all) e->all->all_prev = o;
    e->all = o;
    pthread_mutex_unlock(&e->all_mu);
    return o;
}

static void ord_free(ord_t *o)
{
    engine_t *e = o->e;
    pthread_mutex_lock(&e->all_mu);
    if (o->all_prev)
        o->all_prev->all_next = o->all_next;
    else
        e->all = o->all_next;
    if (o->all_next) o->all_next->all_prev = o->all_prev;
    pthread_mutex_unlock(&e->all_mu);
    free(o->key);
    free(o->body);
    free(o->hold.fences); /* a lock-mode hold a stop left behind (NULL otherwise) */
    free(o->levels);
    order_req_free(&o->so.req);
    free(o);
    /* Release: pairs with the acquire loads of engine_live, which only reads a count. */
    atomic_fetch_sub_explicit(&e->live, 1, memory_order_release);
}

static void stage_begin(ord_t *o, stats_stage_t s)
{
    o->stage_start_ns = weft_now_ns();
    (void)s;
}

/* Closes stage s (its time since stage_begin) and rewrites the stages JSON the next
 * transition stores. */
static void stage_end(ord_t *o, stats_stage_t s)
{
    uint64_t ns = weft_now_ns() - o->stage_start_ns;
    o->stage_ms[s] = (uint32_t)(ns / 1000000);
    if (!o->attempts[s]) o->attempts[s] = 1;
    stats_stage(o->e->stats, s, ns / 1000, o->attempts[s]);
    size_t n = 0;
    n += (size_t)snprintf(o->stages + n, sizeof o->stages - n, "{");
    for (int i = 0; i < STATS_NSTAGES; i++) {
        if (!o->attempts[i]) continue;
        n +=
            (size_t)snprintf(o->stages + n, sizeof o->stages - n,
                             "%s\"%s\":{\"ms\":%" PRIu32 ",\"attempts\":%" PRIu32 "}",
                             n > 1 ? "," : "", stats_stage_name(i), o->stage_ms[i], o->attempts[i]);
    }
    snprintf(o->stages + n, sizeof o->stages - n, "}");
}

/* Restores timings from a stored stages JSON (resume). */
static void stages_load(ord_t *o, const char *json)
{
    json_t *j = json ? json_loads(json, 0, NULL) : NULL;
    for (int i = 0; j && i < STATS_NSTAGES; i++) {
        json_t *s = json_object_get(j, stats_stage_name(i));
        if (!s) continue;
        o->stage_ms[i] = (uint32_t)json_integer_value(json_object_get(s, "ms"));
        o->attempts[i] = (uint32_t)json_integer_value(json_object_get(s, "attempts"));
    }
    json_decref(j);
    snprintf(o->stages, sizeof o->stages, "%s", json && j ? json : "{}");
}

/* ---- replies ---- */

static void reply(engine_call_t *c, int status, int retry_after, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply(engine_call_t *c, int status, int retry_after, const char *fmt, ...)
{
    c->status = status;
    c->retry_after = retry_after;
    va_list ap;
    va_start(ap, fmt);
    weft_buf_vprintf(&c->body, fmt, ap);
    va_end(ap);
}

static void reply_error(engine_call_t *c, int status, const char *msg)
{
    c->status = status;
    c->retry_after = status == 503 ? 1 : 0;
    weft_buf_append(&c->body, "{\"error\":", 9);
    order_json_str(&c->body, msg);
    weft_buf_append(&c->body, "}", 1);
}

/* ---- the writer ---- */

static void wq_push(engine_t *e, store_op_t *op)
{
    op->next = NULL;
    pthread_mutex_lock(&e->wq_mu);
    if (e->wq_tail)
        e->wq_tail->next = op;
    else
        e->wq_head = op;
    e->wq_tail = op;
    pthread_cond_signal(&e->wq_cv);
    pthread_mutex_unlock(&e->wq_mu);
}

static void loop_drain(void *arg, int status);

static void lq_push(engine_t *e, ord_t *o)
{
    o->next = NULL;
    pthread_mutex_lock(&e->lq_mu);
    if (e->lq_tail)
        e->lq_tail->next = o;
    else
        e->lq_head = o;
    e->lq_tail = o;
    bool post = !e->lq_posted && !e->lq_closed;
    if (post) e->lq_posted = true;
    /* Posted under lq_mu so that engine_destroy, which sets lq_closed under it, never destroys
     * the loop between our check and the post. Posting takes only the loop's own queue lock. */
    if (post && weft_loop_post_work(e->loop, &e->lq_work) < 0) e->lq_posted = false;
    pthread_mutex_unlock(&e->lq_mu);
}

static void inflight_remove(engine_t *e, ord_t *o);

static void reconcile_fn(void *arg, int status)
{
    engine_t *e = arg;
    if (status == 0 && e->redis && !atomic_load_explicit(&e->stopping, memory_order_acquire))
        stock_redis_reconcile(e->redis);
}

/* After PUT /stock: Redis takes the new figure from the database (on the loop). */
static void post_reconcile(engine_t *e)
{
    if (!e->o.redis_url) return;
    pthread_mutex_lock(&e->lq_mu);
    if (!e->lq_closed) weft_loop_post(e->loop, reconcile_fn, e);
    pthread_mutex_unlock(&e->lq_mu);
}

/* Runs fn(e) on the loop thread and waits for it (setup and teardown of loop-side state). */
typedef struct on_loop {
    engine_t *e;
    int (*fn)(engine_t *e, char *err, size_t errsz);
    int rc;
    bool done;
    char *err;
    size_t errsz;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} on_loop_t;

static void on_loop_fn(void *arg, int status)
{
    on_loop_t *r = arg;
    int rc = status == 0 ? r->fn(r->e, r->err, r->errsz) : status;
    pthread_mutex_lock(&r->mu);
    r->rc = rc;
    r->done = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int run_on_loop(engine_t *e, int (*fn)(engine_t *, char *, size_t), char *err, size_t errsz)
{
    on_loop_t r = {.e = e, .fn = fn, .err = err, .errsz = errsz};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    int rc = weft_loop_post(e->loop, on_loop_fn, &r);
    if (rc == 0) {
        pthread_mutex_lock(&r.mu);
        while (!r.done) pthread_cond_wait(&r.cv, &r.mu);
        pthread_mutex_unlock(&r.mu);
        rc = r.rc;
    }
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    return rc;
}

static int redis_start(engine_t *e, char *err, size_t errsz)
{
    return stock_redis_create(e->loop, e->o.redis_url, e->o.stock, e->store, &e->redis, err, errsz);
}

static int redis_stop(engine_t *e, char *err, size_t errsz)
{
    stock_redis_destroy(e->redis);
    e->redis = NULL;
    return 0;
}

static void complete_op(engine_t *e, store_op_t *op)
{
    if (op->kind == STORE_SET_STOCK) {
        setstock_t *s = (setstock_t *)op;
        engine_call_t *c = s->call;
        if (op->rc < 0)
            reply_error(c, 503, "database unavailable");
        else {
            reply(c, 200, 0, "{\"sku\":");
            order_json_str(&c->body, s->sku);
            weft_buf_printf(&c->body, ",\"available\":%" PRId64 "}", s->op.qty);
        }
        bool set = op->rc == 0;
        free(s);
        if (set) post_reconcile(e);
        c->done(c);
        return;
    }
    ord_t *o = (ord_t *)((char *)op - offsetof(ord_t, op));
    if (op->kind == STORE_CREATE) {
        engine_call_t *c = o->call;
        o->call = NULL;
        inflight_remove(e, o);
        if (op->rc == 0) {
            o->so.status = ORDER_ACCEPTED;
            stats_count(e->stats, STATS_ACCEPTED, 1);
            reply(c, 201, 0, "{\"id\":\"%s\",\"status\":\"accepted\"}", o->so.id);
            free(o->body);
            o->body = NULL;
            c->done(c);
            lq_push(e, o);
            return;
        }
        if (op->rc == 1 && op->dup_same) {
            stats_count(e->stats, STATS_DUPLICATE, 1);
            reply(c, 200, 0, "{\"id\":\"%s\",\"duplicate\":true}", op->dup_id);
        } else if (op->rc == 1) {
            stats_count(e->stats, STATS_KEY_CONFLICT, 1);
            reply(c, 422, 0,
                  "{\"error\":\"Idempotency-Key already used with another body (order %s)\"}",
                  op->dup_id);
        } else {
            stats_count(e->stats, STATS_OVERLOAD, 1);
            reply_error(c, 503, "database unavailable");
        }
        ord_free(o);
        c->done(c);
        return;
    }
    o->op_rc = op->rc;
    o->op_fenced = op->fenced;
    o->so.status = op->status;
    lq_push(e, o);
}

static void *writer_main(void *arg)
{
    engine_t *e = arg;
    size_t cap = e->o.batch_max;
    store_op_t **batch = calloc(cap, sizeof *batch);
    char err[256];
    uint64_t last_log = 0;
    pthread_mutex_lock(&e->wq_mu);
    for (;;) {
        if (!e->wq_head) atomic_store_explicit(&e->writer_busy, 0, memory_order_relaxed);
        while (!e->wq_head && !e->wq_stop) pthread_cond_wait(&e->wq_cv, &e->wq_mu);
        if (!e->wq_head) break;
        size_t n = 0;
        while (e->wq_head && n < cap) {
            batch[n++] = e->wq_head;
            e->wq_head = e->wq_head->next;
        }
        if (!e->wq_head) e->wq_tail = NULL;
        bool stop = e->wq_stop;
        pthread_mutex_unlock(&e->wq_mu);
        uint64_t t0 = weft_now_ns();
        atomic_store_explicit(&e->writer_busy, 1, memory_order_relaxed);
        int rc = store_apply(e->store, batch, n, err, sizeof err);
        stats_commit(e->stats, n, (weft_now_ns() - t0) / 1000, rc == 0);
        if (rc < 0 && n > 1) {
            /* One operation may be what fails (a bug, a constraint): apply each alone, so the
             * others go through and only the failing one waits for another try. */
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                if (store_apply(e->store, &batch[i], 1, err, sizeof err) == 0)
                    complete_op(e, batch[i]);
                else
                    batch[k++] = batch[i];
            }
            n = k;
            if (n == 0) {
                pthread_mutex_lock(&e->wq_mu);
                continue;
            }
        }
        if (rc < 0) {
            uint64_t now = weft_now_ns();
            if (now - last_log > 1000000000ull) {
                fprintf(stderr, "weft orders: group commit of %zu failed: %s\n", n, err);
                last_log = now;
            }
            /* Answer what a client waits for; keep stage operations for another try. */
            store_op_t *keep = NULL, **tail = &keep;
            for (size_t i = 0; i < n; i++) {
                if (batch[i]->kind == STORE_CREATE || batch[i]->kind == STORE_SET_STOCK || stop) {
                    if (stop && batch[i]->kind != STORE_CREATE && batch[i]->kind != STORE_SET_STOCK)
                        continue; /* stays in the database at its stage; freed at destroy */
                    complete_op(e, batch[i]);
                } else {
                    *tail = batch[i];
                    tail = &batch[i]->next;
                }
            }
            *tail = NULL;
            pthread_mutex_lock(&e->wq_mu);
            if (keep) {
                store_op_t *last = keep;
                while (last->next) last = last->next;
                last->next = e->wq_head;
                e->wq_head = keep;
                if (!e->wq_tail) e->wq_tail = last;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 100000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                if (!e->wq_stop) pthread_cond_timedwait(&e->wq_cv, &e->wq_mu, &ts);
                if (e->wq_stop) {
                    /* Stopping with the database down: drop the retries (they resume on the
                     * next start), but not the requests a client waits for. */
                    store_op_t **pp = &e->wq_head;
                    while (*pp) {
                        if ((*pp)->kind == STORE_CREATE || (*pp)->kind == STORE_SET_STOCK)
                            pp = &(*pp)->next;
                        else
                            *pp = (*pp)->next;
                    }
                    e->wq_tail = NULL;
                    for (store_op_t *q = e->wq_head; q; q = q->next) e->wq_tail = q;
                }
            }
            continue;
        }
        for (size_t i = 0; i < n; i++) complete_op(e, batch[i]);
        pthread_mutex_lock(&e->wq_mu);
    }
    pthread_mutex_unlock(&e->wq_mu);
    free(batch);
    return NULL;
}

/* ---- the loop side: stages ---- */

static void pay_attempt(ord_t *o);

/* The array the stock write fills with its levels for Redis (NULL: out of memory; Redis is
 * then reconciled instead of mirrored). */
static store_level_t *ord_levels(ord_t *o)
{
    if (!o->levels) o->levels = calloc(o->so.req.nitems, sizeof *o->levels);
    return o->levels;
}

static void queue_op(ord_t *o, store_op_kind_t kind)
{
    memset(&o->op, 0, sizeof o->op);
    o->op.kind = kind;
    o->op.ord = &o->so;
    if (o->releasing) o->op.levels = ord_levels(o); /* PAYFAIL with Redis */
    wq_push(o->e, &o->op);
}

static void retire(ord_t *o)
{
    engine_t *e = o->e;
    stats_order_t s = {
        .status = o->so.status,
        .amount_cents = o->so.req.amount_cents,
        .total_ms = order_wall_ms() - o->so.created_ms,
        .items = o->so.req.items,
        .nitems = o->so.req.nitems,
    };
    stats_order(e->stats, &s);
    ord_free(o);
}

static void on_later_timer(weft_loop_timer_t *t, void *arg)
{
    ord_t *o = arg;
    atomic_fetch_sub_explicit(&o->e->io_backoff, 1, memory_order_relaxed);
    weft_loop_timer_destroy(t);
    o->later(o);
}

/* Runs fn(o) on the loop after `ms` (a retry). */
static void later(ord_t *o, uint64_t ms, void (*fn)(ord_t *o))
{
    weft_loop_timer_t *t;
    o->later = fn;
    if (weft_loop_timer_create(o->e->loop, on_later_timer, o, &t) == 0) {
        atomic_fetch_add_explicit(&o->e->io_backoff, 1, memory_order_relaxed);
        weft_loop_timer_start(t, ms, 0);
    } else
        fn(o);
}

static void advance(ord_t *o);

static void on_stock(void *arg, stock_result_t r, const char *reason)
{
    ord_t *o = arg;
    engine_t *e = o->e;
    atomic_fetch_sub_explicit(&e->io_inflight, 1, memory_order_relaxed);
    if (atomic_load_explicit(&e->stopping, memory_order_acquire)) return;
    switch (r) {
    case STOCK_RESERVED:
        o->holding = true;
        memset(&o->op, 0, sizeof o->op);
        o->op.kind = STORE_RESERVE;
        o->op.ord = &o->so;
        o->op.fences = o->hold.fences;
        o->op.levels = ord_levels(o);
        wq_push(e, &o->op);
        return;
    case STOCK_REJECTED:
        snprintf(o->so.reason, sizeof o->so.reason, "%s", reason);
        queue_op(o, STORE_REJECT);
        return;
    default:
        o->attempts[STATS_RESERVE]++;
        stats_count(e->stats, STATS_STOCK_RETRY, 1);
        later(o, 5 + weft_backoff(10, 500, (int)o->attempts[STATS_RESERVE], &o->rng), advance);
    }
}

static void on_shipped(void *arg, int rc)
{
    ord_t *o = arg;
    engine_t *e = o->e;
    atomic_fetch_sub_explicit(&e->io_inflight, 1, memory_order_relaxed);
    if (atomic_load_explicit(&e->stopping, memory_order_acquire)) return;
    if (rc < 0) {
        o->attempts[STATS_SHIP]++;
        later(o, 5 + weft_backoff(20, 1000, (int)o->attempts[STATS_SHIP], &o->rng), advance);
        return;
    }
    /* Handed to the logistics worker, which marks it shipped (exactly once) in the database. */
    stage_end(o, STATS_SHIP);
    retire(o);
}

static void advance(ord_t *o)
{
    engine_t *e = o->e;
    if (o->holding) { /* the durable write of a Redis reservation is done: mirror or undo */
        o->holding = false;
        /* Lock strategy, "already applied" (op_rc 1): the reservation was written before, by
         * another engine that took over while this one was stopped (SIGSTOP, a long pause), or
         * by this one in a commit whose answer was lost. This write returned no levels to
         * mirror: release the locks and reconcile Redis from the database instead. */
        bool unknown = o->op_rc == 1 && e->o.stock == ENGINE_STOCK_LOCK;
        if (o->so.status == ORDER_RESERVED && !unknown)
            stock_redis_done(e->redis, &o->hold, o->op.levels);
        else
            stock_redis_abort(e->redis, &o->hold, o->so.status == ORDER_REJECTED || unknown);
    }
    if (o->releasing && (o->so.status != ORDER_RESERVED || o->op_rc == 1)) {
        /* Released by this write (its levels go to Redis), or by another engine (op_rc 1:
         * nothing to mirror here, but the _begin still ends, or this engine never reconciles
         * again). */
        o->releasing = false;
        bool wrote = o->op_rc == 0 && o->so.status == ORDER_PAYMENT_FAILED;
        stock_redis_release_end(e->redis, o->so.id, o->so.req.items, o->so.req.nitems,
                                wrote ? o->op.levels : NULL);
        if (wrote && !o->op.levels) stock_redis_reconcile(e->redis);
    }
    if (o->op_rc == 1 && !o->op_fenced) {
        /* Nothing to do: another process moved this order on (the logistics worker shipped it,
         * or a second engine runs on this database). It is no longer ours to drive. */
        ord_free(o);
        return;
    }
    o->op_rc = 0;
    o->op_fenced = false;
    switch (o->so.status) {
    case ORDER_ACCEPTED:
        if (!o->stage_start_ns || !o->attempts[STATS_RESERVE]) stage_begin(o, STATS_RESERVE);
        if (e->redis) {
            o->hold.items = o->so.req.items;
            o->hold.nitems = o->so.req.nitems;
            memcpy(o->hold.order_id, o->so.id, sizeof o->hold.order_id);
            atomic_fetch_add_explicit(&e->io_inflight, 1, memory_order_relaxed);
            stock_redis_reserve(e->redis, &o->hold, on_stock, o);
        } else {
            queue_op(o, STORE_RESERVE);
        }
        break;
    case ORDER_RESERVED:
        stage_end(o, STATS_RESERVE);
        stage_begin(o, STATS_PAYMENT);
        pay_attempt(o);
        break;
    case ORDER_PAID:
        if (!o->attempts[STATS_SHIP]) stage_begin(o, STATS_SHIP);
        if (e->redis) {
            atomic_fetch_add_explicit(&e->io_inflight, 1, memory_order_relaxed);
            stock_redis_ship(e->redis, o->so.id, o->so.req.items, o->so.req.nitems, on_shipped, o);
        } else
            queue_op(o, STORE_SHIP);
        break;
    case ORDER_REJECTED:
        stage_end(o, STATS_RESERVE);
        retire(o);
        break;
    case ORDER_PAYMENT_FAILED:
        retire(o);
        break;
    case ORDER_SHIPPED:
        stage_end(o, STATS_SHIP);
        retire(o);
        break;
    default:
        ord_free(o);
    }
}

static void loop_drain(void *arg, int status)
{
    engine_t *e = arg;
    pthread_mutex_lock(&e->lq_mu);
    ord_t *list = status == 0 ? e->lq_head : NULL;
    if (status == 0) e->lq_head = e->lq_tail = NULL;
    e->lq_posted = false;
    pthread_mutex_unlock(&e->lq_mu);
    while (list) {
        ord_t *o = list;
        list = list->next;
        if (atomic_load_explicit(&e->stopping, memory_order_acquire)) continue; /* freed later */
        advance(o);
    }
}

static void pay_next(engine_t *e);

static void on_pay(void *arg, pay_result_t r, const char *detail)
{
    ord_t *o = arg;
    engine_t *e = o->e;
    atomic_fetch_sub_explicit(&e->io_inflight, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&e->pay_running, 1, memory_order_relaxed);
    if (r == PAY_CANCELED || atomic_load_explicit(&e->stopping, memory_order_acquire)) return;
    pay_next(e);
    switch (r) {
    case PAY_CAPTURED:
        stage_end(o, STATS_PAYMENT);
        if (e->redis) {
            queue_op(o, STORE_PAID); /* then XADD for the logistics worker */
        } else {
            /* In-process logistics: its write joins the payment's transaction (one statement
             * instead of two, one hand-off fewer); the order goes reserved -> shipped. */
            stage_begin(o, STATS_SHIP);
            queue_op(o, STORE_PAID_SHIP);
        }
        return;
    case PAY_DECLINED:
    case PAY_REFUSED:
        stage_end(o, STATS_PAYMENT);
        snprintf(o->so.reason, sizeof o->so.reason, "payment %s (%s)",
                 r == PAY_DECLINED ? "declined" : "refused", detail);
        if (e->redis) {
            stock_redis_release_begin(e->redis);
            o->releasing = true;
        }
        queue_op(o, STORE_PAYFAIL);
        return;
    default:
        break;
    }
    stats_count(e->stats, STATS_PAY_RETRY, 1);
    later(o, 10 + weft_backoff(20, 2000, (int)o->attempts[STATS_PAYMENT], &o->rng), pay_attempt);
}

static void pay_launch(ord_t *o)
{
    engine_t *e = o->e;
    o->attempts[STATS_PAYMENT]++;
    atomic_fetch_add_explicit(&e->io_inflight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->pay_running, 1, memory_order_relaxed);
    int rc = pay_start(e->loop, e->payment_url, o->so.id, o->so.req.amount_cents,
                       o->so.req.payment_token, e->o.pay_timeout_ms, on_pay, o);
    if (rc < 0) on_pay(o, PAY_RETRY, "cannot start the request");
}

/* Starts waiting attempts while slots are free. A launch that fails at once ends in on_pay,
 * which calls back here: pay_draining makes that a no-op, so the stack stays flat. */
static void pay_next(engine_t *e)
{
    if (e->pay_draining) return;
    e->pay_draining = true;
    while (e->payq_head &&
           atomic_load_explicit(&e->pay_running, memory_order_relaxed) < e->o.pay_concurrency) {
        ord_t *o = e->payq_head;
        e->payq_head = o->next;
        if (!e->payq_head) e->payq_tail = NULL;
        o->next = NULL;
        atomic_fetch_sub_explicit(&e->pay_queued, 1, memory_order_relaxed);
        pay_launch(o);
    }
    e->pay_draining = false;
}

/* One payment attempt: now when a slot is free and nobody waits, else after those waiting. */
static void pay_attempt(ord_t *o)
{
    engine_t *e = o->e;
    o->next = NULL;
    if (e->payq_tail)
        e->payq_tail->next = o;
    else
        e->payq_head = o;
    e->payq_tail = o;
    atomic_fetch_add_explicit(&e->pay_queued, 1, memory_order_relaxed);
    pay_next(e);
}

/* ---- intake ---- */

static bool key_eq(uint64_t val, const void *key, const void *ctx)
{
    return strcmp(((ord_t *)(uintptr_t)val)->key, key) == 0;
}

static void inflight_remove(engine_t *e, ord_t *o)
{
    pthread_mutex_lock(&e->idem_mu);
    weft_htab_remove(&e->inflight, weft_hash_str(o->key), key_eq, o->key, NULL, NULL);
    pthread_mutex_unlock(&e->idem_mu);
}

static int intake(void *arg, weft_ctx_t *ctx)
{
    ord_t *o = arg;
    engine_t *e = o->e;
    engine_call_t *c = o->call;
    char err[200];
    int rc = order_parse(o->body, o->len, &o->so.req, err, sizeof err);
    if (rc < 0) {
        if (rc == -ENOMEM) snprintf(err, sizeof err, "out of memory");
        stats_count(e->stats, STATS_BAD_REQUEST, 1);
        reply_error(c, rc == -ENOMEM ? 503 : 400, err);
        ord_free(o);
        c->done(c);
        return 0;
    }
    o->so.body_hash = o->so.req.body_hash;
    o->so.idem_key = o->key;
    order_new_id(o->so.id);
    o->so.created_ms = order_wall_ms();
    bool added = false;
    pthread_mutex_lock(&e->idem_mu);
    uint64_t *v = weft_htab_put(&e->inflight, weft_hash_str(o->key), key_eq, o->key, NULL, &added);
    if (v && added) *v = (uintptr_t)o;
    pthread_mutex_unlock(&e->idem_mu);
    if (!v || !added) {
        stats_count(e->stats, v ? STATS_IN_FLIGHT : STATS_OVERLOAD, 1);
        reply_error(c, v ? 409 : 503,
                    v ? "a request with this Idempotency-Key is in flight; retry later"
                      : "out of memory");
        ord_free(o);
        c->done(c);
        return 0;
    }
    o->stage_start_ns = o->intake_ns;
    stage_end(o, STATS_CREATE);
    memset(&o->op, 0, sizeof o->op);
    o->op.kind = STORE_CREATE;
    o->op.ord = &o->so;
    wq_push(e, &o->op);
    return 0;
}

int engine_submit_order(engine_t *e, engine_call_t *c, const char *key, const char *body,
                        size_t len)
{
    /* Relaxed: the bound is approximate by nature; a few over max_live is harmless. */
    if (atomic_fetch_add_explicit(&e->live, 1, memory_order_relaxed) >= e->o.max_live) {
        atomic_fetch_sub_explicit(&e->live, 1, memory_order_relaxed);
        stats_count(e->stats, STATS_OVERLOAD, 1);
        return -EAGAIN;
    }
    ord_t *o = ord_new(e);
    if (!o) {
        atomic_fetch_sub_explicit(&e->live, 1, memory_order_relaxed);
        return -EAGAIN;
    }
    o->key = strdup(key);
    o->body = malloc(len + 1);
    o->len = len;
    o->call = c;
    o->intake_ns = weft_now_ns();
    if (!o->key || !o->body) {
        ord_free(o);
        return -EAGAIN;
    }
    memcpy(o->body, body, len);
    o->body[len] = 0;
    if (weft_pool_try_submit(e->pool, intake, o, NULL) < 0) {
        stats_count(e->stats, STATS_OVERLOAD, 1);
        ord_free(o);
        return -EAGAIN;
    }
    return 0;
}

int engine_set_stock(engine_t *e, engine_call_t *c, const char *sku, int64_t qty)
{
    setstock_t *s = calloc(1, sizeof *s);
    if (!s) return -EAGAIN;
    snprintf(s->sku, sizeof s->sku, "%s", sku);
    s->call = c;
    s->op.kind = STORE_SET_STOCK;
    s->op.sku = s->sku;
    s->op.qty = qty;
    wq_push(e, &s->op);
    return 0;
}

/* ---- reads ---- */

void engine_get_order(engine_t *e, engine_call_t *c, const char *id)
{
    int rc = store_get_order(e->store, id, &c->body);
    if (rc == 0)
        c->status = 200;
    else if (rc == -ENOENT)
        reply_error(c, 404, "no such order");
    else
        reply_error(c, 503, "database unavailable");
}

void engine_get_stock(engine_t *e, engine_call_t *c, const char *sku)
{
    int64_t a, r;
    int rc = store_get_stock(e->store, sku, &a, &r);
    if (rc == -ENOENT) {
        reply_error(c, 404, "no such sku");
        return;
    }
    if (rc < 0) {
        reply_error(c, 503, "database unavailable");
        return;
    }
    reply(c, 200, 0, "{\"sku\":");
    order_json_str(&c->body, sku);
    weft_buf_printf(&c->body, ",\"available\":%" PRId64 ",\"reserved\":%" PRId64 "}", a, r);
}

void engine_health(engine_t *e, engine_call_t *c)
{
    bool db = store_ping(e->store) == 0;
    /* e->redis is set once before the API starts and cleared only after it stopped. */
    bool redis = !e->o.redis_url || (e->redis && stock_redis_healthy(e->redis));
    bool ok = db && redis;
    reply(c, ok ? 200 : 503, ok ? 0 : 1, "{\"status\":\"%s\",\"db\":\"%s\",\"redis\":\"%s\"}",
          ok ? "ok" : "unavailable", db ? "ok" : "unavailable",
          !e->o.redis_url ? "not used"
          : redis         ? "ok"
                          : "unavailable");
}

void engine_get_stats(engine_t *e, engine_call_t *c)
{
    c->status = 200;
    if (stats_json(e->stats, &c->body, engine_live(e)) < 0) reply_error(c, 503, "out of memory");
}

size_t engine_live(engine_t *e)
{
    return atomic_load_explicit(&e->live, memory_order_acquire);
}

struct stats *engine_stats(engine_t *e)
{
    return e->stats;
}

void engine_gauges(engine_t *e, engine_gauges_t *g)
{
    memset(g, 0, sizeof *g);
    g->live = engine_live(e);
    weft_pool_stats_t ps;
    weft_pool_stats(e->pool, &ps);
    g->intake_threads = ps.threads;
    g->intake_running = ps.running;
    g->intake_queued = ps.queued;
    /* Walks the queues under their locks: once per scrape, bounded by max_live. */
    pthread_mutex_lock(&e->wq_mu);
    for (store_op_t *q = e->wq_head; q; q = q->next) g->writer_queued++;
    pthread_mutex_unlock(&e->wq_mu);
    pthread_mutex_lock(&e->lq_mu);
    for (ord_t *o = e->lq_head; o; o = o->next) g->loop_queued++;
    pthread_mutex_unlock(&e->lq_mu);
    g->writer_running = atomic_load_explicit(&e->writer_busy, memory_order_relaxed);
    g->io_running = atomic_load_explicit(&e->io_inflight, memory_order_relaxed);
    g->io_backoff = atomic_load_explicit(&e->io_backoff, memory_order_relaxed);
    stats_gauges(e->stats, &g->cpu_workers, &g->cpu_running, &g->cpu_queued, &g->stats_queued);
    g->pay_running = atomic_load_explicit(&e->pay_running, memory_order_relaxed);
    g->pay_queued = atomic_load_explicit(&e->pay_queued, memory_order_relaxed);
    g->pay_concurrency = e->o.pay_concurrency;
}

/* ---- lifecycle ---- */

static int resume_one(void *arg, store_order_t *so)
{
    engine_t *e = arg;
    ord_t *o = ord_new(e);
    if (!o) return -ENOMEM;
    atomic_fetch_add_explicit(&e->live, 1, memory_order_relaxed);
    memcpy(o->so.id, so->id, sizeof o->so.id);
    o->so.status = so->status;
    o->so.created_ms = so->created_ms;
    o->so.req.amount_cents = so->req.amount_cents;
    o->so.req.user = strdup(so->req.user ? so->req.user : "");
    o->so.req.payment_token = strdup(so->req.payment_token ? so->req.payment_token : "");
    o->so.req.items = so->req.items; /* take the array */
    o->so.req.nitems = so->req.nitems;
    so->req.items = NULL;
    so->req.nitems = 0;
    stages_load(o, so->stages);
    o->stage_start_ns = weft_now_ns();
    if (!o->so.req.user || !o->so.req.payment_token) {
        ord_free(o);
        return -ENOMEM;
    }
    stats_count(e->stats, STATS_RESUMED, 1);
    lq_push(e, o);
    return 0;
}

int engine_create(const engine_opts_t *opts, engine_t **out, char *err, size_t errsz)
{
    *out = NULL;
    engine_t *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    e->o = *opts;
    if (!e->o.intake_threads) e->o.intake_threads = 2;
    if (!e->o.max_live) e->o.max_live = 50000;
    if (!e->o.pay_timeout_ms) e->o.pay_timeout_ms = 1000;
    if (!e->o.pay_concurrency) e->o.pay_concurrency = 256;
    if (!e->o.batch_max) e->o.batch_max = 512;
    pthread_mutex_init(&e->idem_mu, NULL);
    pthread_mutex_init(&e->wq_mu, NULL);
    pthread_cond_init(&e->wq_cv, NULL);
    pthread_mutex_init(&e->lq_mu, NULL);
    pthread_mutex_init(&e->all_mu, NULL);
    weft_htab_init(&e->inflight);
    e->lq_work.fn = loop_drain;
    e->lq_work.arg = e;
    e->lq_closed = true; /* until the loop exists */
    int rc = -ENOMEM;
    e->payment_url = strdup(opts->payment_url ? opts->payment_url : "");
    if (!e->payment_url || (rc = stats_create(&e->stats)) < 0) {
        snprintf(err, errsz, "out of memory");
        goto fail;
    }
    size_t l = strlen(e->payment_url);
    while (l && e->payment_url[l - 1] == '/') e->payment_url[--l] = 0;
    if ((rc = store_open(opts->db_url, &e->store, err, errsz)) < 0) goto fail;
    weft_pool_opts_t po = {
        .threads = e->o.intake_threads, .queue_capacity = 8192, .name = "ord-intake"};
    if ((rc = weft_pool_create(&e->pool, &po)) < 0) {
        snprintf(err, errsz, "cannot start the intake pool: %s", strerror(-rc));
        goto fail;
    }
    weft_loop_opts_t lo = {.own_thread = true,
                           .name = "orders-loop",
                           .max_connections = (int)e->o.pay_concurrency + 64};
    if ((rc = weft_loop_create(&e->loop, &lo)) < 0) {
        snprintf(err, errsz, "cannot start the event loop: %s", strerror(-rc));
        goto fail;
    }
    if ((rc = pthread_create(&e->writer, NULL, writer_main, e)) != 0) {
        snprintf(err, errsz, "cannot start the writer thread: %s", strerror(rc));
        rc = -rc;
        goto fail;
    }
    e->writer_started = true;
    if (e->o.redis_url && (rc = run_on_loop(e, redis_start, err, errsz)) < 0) goto fail;
    pthread_mutex_lock(&e->lq_mu);
    e->lq_closed = false;
    pthread_mutex_unlock(&e->lq_mu);
    if ((rc = store_load_pending(e->store, resume_one, e)) < 0) {
        snprintf(err, errsz, "cannot load the orders to resume from the database");
        goto fail;
    }
    *out = e;
    return 0;
fail:
    engine_destroy(e);
    return rc < 0 ? rc : -EIO;
}

void engine_destroy(engine_t *e)
{
    if (!e) return;
    atomic_store_explicit(&e->stopping, true, memory_order_release);
    if (e->pool) weft_pool_destroy(e->pool); /* intake finishes: its CREATEs reach the writer */
    /* Redis first, on its thread: holds in progress end (their orders stay 'accepted'). */
    if (e->loop && e->redis) run_on_loop(e, redis_stop, NULL, 0);
    pthread_mutex_lock(&e->lq_mu);
    e->lq_closed = true;
    pthread_mutex_unlock(&e->lq_mu);
    /* Payments in progress are cancelled (on_pay ignores them); their orders stay 'reserved'. */
    if (e->loop) weft_loop_destroy(e->loop);
    if (e->writer_started) {
        pthread_mutex_lock(&e->wq_mu);
        e->wq_stop = true;
        pthread_cond_signal(&e->wq_cv);
        pthread_mutex_unlock(&e->wq_mu);
        pthread_join(e->writer, NULL);
    }
    while (e->all) ord_free(e->all);
    store_close(e->store);
    stats_destroy(e->stats);
    weft_htab_free(&e->inflight);
    free(e->payment_url);
    pthread_mutex_destroy(&e->idem_mu);
    pthread_mutex_destroy(&e->wq_mu);
    pthread_cond_destroy(&e->wq_cv);
    pthread_mutex_destroy(&e->lq_mu);
    pthread_mutex_destroy(&e->all_mu);
    free(e);
}
