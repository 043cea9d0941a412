/* Statistics of the order engine (stats.h).
 *
 * DESIGN
 * Threads: producers (loop, writer, intake workers) append fixed-size event records, and the SKU
 * names of retired orders to an arena, under ev_mu, which is held only for that append. The
 * stats thread wakes once per second, swaps the event buffers for empty ones (so producers never
 * wait for aggregation), folds the events into a fresh `second` aggregate and then, under
 * snap_mu, makes it the last complete second and merges it into the cumulative aggregate.
 * Readers (GET /stats) serialise under snap_mu. Histograms merge by adding bucket counts
 * (weft_hist), so the cumulative percentiles are exactly those of all records, whatever the
 * grouping into seconds. Lock order: ev_mu and snap_mu are never held together.
 * The CPU side runs in a process (weft/procpool.h, one worker): each second's events go to it as
 * bytes (records + SKU arena), it folds them into histograms and per-SKU totals and sends back
 * the aggregate as sparse buckets with exact totals, which this side adds into the cumulative
 * state (weft_hist_add_bucket/add_totals: the same counts as recording in place). A worker that
 * crashes or times out costs nothing: that second is folded in-process instead.
 */
#include "orders/stats.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft/hash.h>
#include <weft/hist.h>
#include <weft/htab.h>
#include <weft/procpool.h>
#include <weft/sys.h>

#include "orders/store.h"

enum { EV_STAGE, EV_ORDER, EV_COMMIT };

typedef struct ev {
    uint8_t kind, stage, status, ok;
    uint32_t attempts; /* EV_STAGE; EV_ORDER: nitems; EV_COMMIT: ops */
    uint64_t v;        /* us (stage, commit) or total_ms (order) */
    int64_t amount;
    size_t sku_off; /* EV_ORDER: offset of its items in the arena: {qty int64, NUL-ended sku}... */
} ev_t;

typedef struct sku_tot {
    char *sku;
    uint64_t units, orders, revenue_share;
} sku_tot_t;

typedef struct agg {
    uint64_t by_status[ORDER_PAYMENT_FAILED + 1];
    uint64_t revenue_cents, retries[STATS_NSTAGES], commits, commit_ops, commit_fail;
    weft_hist_t stage_us[STATS_NSTAGES], total_ms, commit_us, batch;
} agg_t;

struct stats {
    _Atomic uint64_t counters[STATS_NCOUNTERS];
    uint64_t start_ns;

    pthread_mutex_t ev_mu;
    ev_t *ev;
    size_t nev, cap;
    weft_buf_t arena;

    pthread_mutex_t snap_mu;
    agg_t last, cum;
    sku_tot_t *skus;
    size_t nskus, skus_cap;
    weft_htab_t sku_index;
    uint64_t seconds;

    weft_procpool_t *pp; /* NULL: fold in-process */
    uint64_t folded_remote, folded_local;

    pthread_mutex_t run_mu;
    pthread_cond_t run_cv;
    bool stop;
    pthread_t th;
};

static const char *const stage_names[STATS_NSTAGES] = {"create", "reserve", "payment", "ship"};
static const char *const counter_names[STATS_NCOUNTERS] = {
    "accepted",     "duplicate",       "key_conflict", "in_flight_409", "bad_request",
    "overload_503", "payment_retries", "resumed",      "stock_retries"};

const char *stats_stage_name(int stage)
{
    return stage >= 0 && stage < STATS_NSTAGES ? stage_names[stage] : "?";
}

static void agg_init(agg_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < STATS_NSTAGES; i++) weft_hist_init(&a->stage_us[i]);
    weft_hist_init(&a->total_ms);
    weft_hist_init(&a->commit_us);
    weft_hist_init(&a->batch);
}

static void agg_merge(agg_t *d, const agg_t *s)
{
    for (int i = 0; i <= ORDER_PAYMENT_FAILED; i++) d->by_status[i] += s->by_status[i];
    d->revenue_cents += s->revenue_cents;
    d->commits += s->commits;
    d->commit_ops += s->commit_ops;
    d->commit_fail += s->commit_fail;
    for (int i = 0; i < STATS_NSTAGES; i++) {
        d->retries[i] += s->retries[i];
        weft_hist_merge(&d->stage_us[i], &s->stage_us[i]);
    }
    weft_hist_merge(&d->total_ms, &s->total_ms);
    weft_hist_merge(&d->commit_us, &s->commit_us);
    weft_hist_merge(&d->batch, &s->batch);
}

static bool sku_eq(uint64_t val, const void *key, const void *ctx)
{
    const stats_t *s = ctx;
    return strcmp(s->skus[val].sku, key) == 0;
}

/* Under snap_mu. */
static void sku_add(stats_t *s, const char *sku, int64_t qty, int64_t orders)
{
    bool added;
    uint64_t *v = weft_htab_put(&s->sku_index, weft_hash_str(sku), sku_eq, sku, s, &added);
    if (!v) return;
    if (added) {
        if (s->nskus == s->skus_cap) {
            size_t nc = s->skus_cap ? 2 * s->skus_cap : 64;
            sku_tot_t *n = realloc(s->skus, nc * sizeof *n);
            char *d = strdup(sku);
            if (!n || !d) {
                if (n) s->skus = n;
                free(d);
                weft_htab_remove(&s->sku_index, weft_hash_str(sku), NULL, NULL, NULL, NULL);
                return;
            }
            s->skus = n;
            s->skus_cap = nc;
            memset(&s->skus[s->nskus], 0, sizeof s->skus[0]);
            s->skus[s->nskus].sku = d;
        } else {
            char *d = strdup(sku);
            if (!d) {
                weft_htab_remove(&s->sku_index, weft_hash_str(sku), NULL, NULL, NULL, NULL);
                return;
            }
            memset(&s->skus[s->nskus], 0, sizeof s->skus[0]);
            s->skus[s->nskus].sku = d;
        }
        *v = s->nskus++;
    }
    s->skus[*v].units += (uint64_t)qty;
    s->skus[*v].orders += (uint64_t)orders;
}

/* Folds one second's events into `sec` (pure: runs in the worker or in-process). SKU units of
 * shipped orders go to `skus` as "sku\0" + int64 units + int64 orders entries. */
static void fold_events(agg_t *sec, const ev_t *ev, size_t n, const char *arena, size_t arena_len,
                        weft_buf_t *skus)
{
    agg_init(sec);
    for (size_t i = 0; i < n; i++) {
        const ev_t *e = &ev[i];
        if (e->kind == EV_STAGE && e->stage < STATS_NSTAGES) {
            weft_hist_record(&sec->stage_us[e->stage], e->v);
            if (e->attempts > 1) sec->retries[e->stage] += e->attempts - 1;
        } else if (e->kind == EV_COMMIT) {
            sec->commits++;
            sec->commit_ops += e->attempts;
            if (!e->ok) sec->commit_fail++;
            weft_hist_record(&sec->commit_us, e->v);
            weft_hist_record(&sec->batch, e->attempts);
        } else if (e->kind == EV_ORDER) {
            if (e->status <= ORDER_PAYMENT_FAILED) sec->by_status[e->status]++;
            weft_hist_record(&sec->total_ms, e->v);
            if (e->status != ORDER_SHIPPED) continue;
            sec->revenue_cents += (uint64_t)e->amount;
            size_t off = e->sku_off;
            for (uint32_t k = 0; k < e->attempts; k++) {
                int64_t qty, one = 1;
                if (off + sizeof qty >= arena_len) break;
                memcpy(&qty, arena + off, sizeof qty);
                off += sizeof qty;
                const char *sku = arena + off;
                size_t l = strnlen(sku, arena_len - off);
                if (off + l >= arena_len) break;
                off += l + 1;
                weft_buf_append(skus, sku, l + 1);
                weft_buf_append(skus, &qty, sizeof qty);
                weft_buf_append(skus, &one, sizeof one);
            }
        }
    }
}

/* Adds a folded second: under snap_mu. */
static void publish(stats_t *s, const agg_t *sec, const char *skus, size_t len, bool remote)
{
    pthread_mutex_lock(&s->snap_mu);
    for (size_t off = 0; off < len;) {
        const char *sku = skus + off;
        size_t l = strnlen(sku, len - off);
        if (off + l + 1 + 16 > len) break;
        int64_t units, orders;
        memcpy(&units, skus + off + l + 1, 8);
        memcpy(&orders, skus + off + l + 9, 8);
        sku_add(s, sku, units, orders);
        off += l + 1 + 16;
    }
    s->last = *sec;
    agg_merge(&s->cum, sec);
    s->seconds++;
    if (remote)
        s->folded_remote++;
    else if (sec->commits || sec->total_ms.count)
        s->folded_local++; /* (an idle second is not counted) */
    pthread_mutex_unlock(&s->snap_mu);
}

/* ---- the worker side: bytes in, bytes out ---- */

typedef struct fold_hdr {
    uint64_t nev, arena_len;
} fold_hdr_t;

static int put_hist(weft_buf_t *b, const weft_hist_t *h)
{
    uint64_t nz = 0;
    for (size_t i = 0; i < WEFT_HIST_BUCKETS; i++) nz += weft_hist_bucket_count(h, i) != 0;
    uint64_t head[5] = {h->count, h->sum, h->min, h->max, nz};
    int rc = weft_buf_append(b, head, sizeof head);
    for (size_t i = 0; i < WEFT_HIST_BUCKETS && !rc; i++) {
        uint64_t c = weft_hist_bucket_count(h, i);
        if (!c) continue;
        uint64_t pair[2] = {i, c};
        rc = weft_buf_append(b, pair, sizeof pair);
    }
    return rc;
}

static int get_hist(const char **p, const char *end, weft_hist_t *h)
{
    uint64_t head[5];
    if ((size_t)(end - *p) < sizeof head) return -EINVAL;
    memcpy(head, *p, sizeof head);
    *p += sizeof head;
    weft_hist_init(h);
    if (head[4] > WEFT_HIST_BUCKETS || (size_t)(end - *p) < head[4] * 16) return -EINVAL;
    for (uint64_t i = 0; i < head[4]; i++) {
        uint64_t pair[2];
        memcpy(pair, *p, sizeof pair);
        *p += sizeof pair;
        if (weft_hist_add_bucket(h, (size_t)pair[0], pair[1]) < 0) return -EINVAL;
    }
    if (head[0]) weft_hist_add_totals(h, head[1], head[2], head[3]);
    return h->count == head[0] ? 0 : -EINVAL;
}

/* The aggregate as bytes: the plain counters, then each histogram, then the SKU entries. */
static int put_agg(weft_buf_t *b, const agg_t *a, const weft_buf_t *skus)
{
    int rc = weft_buf_append(b, a->by_status, sizeof a->by_status);
    uint64_t plain[4 + STATS_NSTAGES] = {a->revenue_cents, a->commits, a->commit_ops,
                                         a->commit_fail};
    memcpy(plain + 4, a->retries, sizeof a->retries);
    if (!rc) rc = weft_buf_append(b, plain, sizeof plain);
    for (int i = 0; i < STATS_NSTAGES && !rc; i++) rc = put_hist(b, &a->stage_us[i]);
    if (!rc) rc = put_hist(b, &a->total_ms);
    if (!rc) rc = put_hist(b, &a->commit_us);
    if (!rc) rc = put_hist(b, &a->batch);
    if (!rc && skus->len) rc = weft_buf_append(b, skus->data, skus->len);
    return rc;
}

static int get_agg(const char *p, size_t len, agg_t *a, const char **skus, size_t *skus_len)
{
    const char *end = p + len;
    uint64_t plain[4 + STATS_NSTAGES];
    agg_init(a);
    if (len < sizeof a->by_status + sizeof plain) return -EINVAL;
    memcpy(a->by_status, p, sizeof a->by_status);
    p += sizeof a->by_status;
    memcpy(plain, p, sizeof plain);
    p += sizeof plain;
    a->revenue_cents = plain[0];
    a->commits = plain[1];
    a->commit_ops = plain[2];
    a->commit_fail = plain[3];
    memcpy(a->retries, plain + 4, sizeof a->retries);
    for (int i = 0; i < STATS_NSTAGES; i++)
        if (get_hist(&p, end, &a->stage_us[i]) < 0) return -EINVAL;
    if (get_hist(&p, end, &a->total_ms) < 0 || get_hist(&p, end, &a->commit_us) < 0 ||
        get_hist(&p, end, &a->batch) < 0)
        return -EINVAL;
    *skus = p;
    *skus_len = (size_t)(end - p);
    return 0;
}

/* Runs in the worker process. */
static int proc_fold(const void *arg, size_t len, weft_buf_t *out)
{
    fold_hdr_t h;
    if (len < sizeof h) return -EINVAL;
    memcpy(&h, arg, sizeof h);
    if (h.nev > len / sizeof(ev_t) || sizeof h + h.nev * sizeof(ev_t) + h.arena_len != len)
        return -EINVAL;
    ev_t *ev = malloc(h.nev ? h.nev * sizeof *ev : 1);
    agg_t *sec = malloc(sizeof *sec);
    weft_buf_t skus;
    weft_buf_init(&skus, 0);
    int rc = ev && sec ? 0 : -ENOMEM;
    if (!rc) {
        memcpy(ev, (const char *)arg + sizeof h, h.nev * sizeof *ev);
        fold_events(sec, ev, h.nev, (const char *)arg + sizeof h + h.nev * sizeof *ev, h.arena_len,
                    &skus);
        rc = put_agg(out, sec, &skus);
    }
    weft_buf_free(&skus);
    free(ev);
    free(sec);
    return rc;
}
WEFT_PROCPOOL_FN("orders.stats.fold", proc_fold)

/* Folds a second's events, in the worker if there is one, and publishes the result. */
static void fold(stats_t *s, ev_t *ev, size_t n, const weft_buf_t *arena)
{
    static _Thread_local agg_t sec; /* 200 KB: not on the stack */
    if (s->pp && n) {
        weft_buf_t msg;
        weft_buf_init(&msg, 0);
        fold_hdr_t h = {n, arena->len};
        weft_future_t *f = NULL;
        int rc = weft_buf_append(&msg, &h, sizeof h);
        if (!rc) rc = weft_buf_append(&msg, ev, n * sizeof *ev);
        if (!rc && arena->len) rc = weft_buf_append(&msg, arena->data, arena->len);
        if (!rc)
            rc = weft_procpool_submit(s->pp, "orders.stats.fold", msg.data, msg.len, 5000000000ull,
                                      &f);
        weft_buf_free(&msg);
        if (!rc) rc = weft_future_wait(f, -1);
        if (!rc) rc = weft_future_status(f);
        size_t rlen = 0;
        const char *res = rc ? NULL : weft_future_value(f, &rlen);
        const char *skus = NULL;
        size_t skus_len = 0;
        if (res && get_agg(res, rlen, &sec, &skus, &skus_len) == 0) {
            publish(s, &sec, skus, skus_len, true);
            weft_future_release(f);
            return;
        }
        weft_future_release(f);
    }
    weft_buf_t skus;
    weft_buf_init(&skus, 0);
    fold_events(&sec, ev, n, arena->data, arena->len, &skus);
    publish(s, &sec, skus.data, skus.len, false);
    weft_buf_free(&skus);
}

static void *stats_main(void *arg)
{
    stats_t *s = arg;
    ev_t *spare = NULL;
    size_t spare_cap = 0;
    weft_buf_t spare_arena;
    weft_buf_init(&spare_arena, 0);
    pthread_mutex_lock(&s->run_mu);
    while (!s->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&s->run_cv, &s->run_mu, &ts);
        pthread_mutex_unlock(&s->run_mu);
        pthread_mutex_lock(&s->ev_mu);
        ev_t *ev = s->ev;
        size_t n = s->nev, cap = s->cap;
        weft_buf_t arena = s->arena;
        s->ev = spare;
        s->cap = spare_cap;
        s->nev = 0;
        s->arena = spare_arena;
        pthread_mutex_unlock(&s->ev_mu);
        fold(s, ev, n, &arena);
        spare = ev;
        spare_cap = cap;
        spare_arena = arena;
        weft_buf_reset(&spare_arena);
        pthread_mutex_lock(&s->run_mu);
    }
    pthread_mutex_unlock(&s->run_mu);
    free(spare);
    weft_buf_free(&spare_arena);
    return NULL;
}

int stats_create(stats_t **out)
{
    *out = NULL;
    stats_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->start_ns = weft_now_ns();
    pthread_mutex_init(&s->ev_mu, NULL);
    pthread_mutex_init(&s->snap_mu, NULL);
    pthread_mutex_init(&s->run_mu, NULL);
    pthread_cond_init(&s->run_cv, NULL);
    weft_buf_init(&s->arena, 0);
    agg_init(&s->last);
    agg_init(&s->cum);
    weft_htab_init(&s->sku_index);
    weft_procpool_opts_t po = {.workers = 1, .max_message = 64u << 20};
    if (weft_procpool_create(&s->pp, &po) < 0) s->pp = NULL; /* folds in-process instead */
    int rc = pthread_create(&s->th, NULL, stats_main, s);
    if (rc) {
        if (s->pp) weft_procpool_destroy(s->pp);
        free(s);
        return -rc;
    }
    *out = s;
    return 0;
}

void stats_destroy(stats_t *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->run_mu);
    s->stop = true;
    pthread_cond_signal(&s->run_cv);
    pthread_mutex_unlock(&s->run_mu);
    pthread_join(s->th, NULL);
    if (s->pp) weft_procpool_destroy(s->pp);
    free(s->ev);
    weft_buf_free(&s->arena);
    for (size_t i = 0; i < s->nskus; i++) free(s->skus[i].sku);
    free(s->skus);
    weft_htab_free(&s->sku_index);
    pthread_mutex_destroy(&s->ev_mu);
    pthread_mutex_destroy(&s->snap_mu);
    pthread_mutex_destroy(&s->run_mu);
    pthread_cond_destroy(&s->run_cv);
    free(s);
}

void stats_count(stats_t *s, stats_counter_t c, uint64_t n)
{
    /* Relaxed: independent counters, read as a snapshot with no ordering promise. */
    atomic_fetch_add_explicit(&s->counters[c], n, memory_order_relaxed);
}

/* Under ev_mu. Drops the event when memory runs out (statistics are best effort; orders are
 * not). */
static ev_t *ev_push(stats_t *s)
{
    if (s->nev == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 1024;
        ev_t *n = realloc(s->ev, nc * sizeof *n);
        if (!n) return NULL;
        s->ev = n;
        s->cap = nc;
    }
    ev_t *e = &s->ev[s->nev++];
    memset(e, 0, sizeof *e);
    return e;
}

void stats_stage(stats_t *s, stats_stage_t st, uint64_t us, uint32_t attempts)
{
    pthread_mutex_lock(&s->ev_mu);
    ev_t *e = ev_push(s);
    if (e) {
        e->kind = EV_STAGE;
        e->stage = (uint8_t)st;
        e->v = us;
        e->attempts = attempts;
    }
    pthread_mutex_unlock(&s->ev_mu);
}

void stats_commit(stats_t *s, size_t ops, uint64_t us, int ok)
{
    pthread_mutex_lock(&s->ev_mu);
    ev_t *e = ev_push(s);
    if (e) {
        e->kind = EV_COMMIT;
        e->attempts = (uint32_t)ops;
        e->v = us;
        e->ok = ok ? 1 : 0;
    }
    pthread_mutex_unlock(&s->ev_mu);
}

void stats_order(stats_t *s, const stats_order_t *o)
{
    pthread_mutex_lock(&s->ev_mu);
    size_t off = s->arena.len;
    int rc = 0;
    for (size_t i = 0; i < o->nitems && rc == 0; i++) {
        rc = weft_buf_append(&s->arena, &o->items[i].qty, sizeof o->items[i].qty);
        if (rc == 0) rc = weft_buf_append(&s->arena, o->items[i].sku, strlen(o->items[i].sku) + 1);
    }
    ev_t *e = rc == 0 ? ev_push(s) : NULL;
    if (e) {
        e->kind = EV_ORDER;
        e->status = (uint8_t)o->status;
        e->amount = o->amount_cents;
        e->v = o->total_ms;
        e->attempts = (uint32_t)o->nitems;
        e->sku_off = off;
    } else {
        s->arena.len = off;
    }
    pthread_mutex_unlock(&s->ev_mu);
}

static int hist_json(weft_buf_t *b, const char *name, const weft_hist_t *h)
{
    return weft_buf_printf(b,
                           "\"%s\":{\"count\":%" PRIu64 ",\"sum\":%" PRIu64 ",\"p50\":%" PRIu64
                           ",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"max\":%" PRIu64 "}",
                           name, h->count, h->sum, weft_hist_quantile(h, 0.5),
                           weft_hist_quantile(h, 0.9), weft_hist_quantile(h, 0.99),
                           h->count ? h->max : 0);
}

static int agg_json(weft_buf_t *b, const agg_t *a)
{
    int rc = weft_buf_printf(b, "{\"orders\":{");
    for (int i = ORDER_SHIPPED; i <= ORDER_PAYMENT_FAILED && !rc; i++)
        rc = weft_buf_printf(b, "%s\"%s\":%" PRIu64, i > ORDER_SHIPPED ? "," : "",
                             order_status_name(i), a->by_status[i]);
    if (!rc)
        rc = weft_buf_printf(b, "},\"revenue_cents\":%" PRIu64 ",\"stage_us\":{", a->revenue_cents);
    for (int i = 0; i < STATS_NSTAGES && !rc; i++) {
        if (i) rc = weft_buf_append(b, ",", 1);
        if (!rc) rc = hist_json(b, stage_names[i], &a->stage_us[i]);
    }
    if (!rc) rc = weft_buf_printf(b, "},\"retries\":{");
    for (int i = 0; i < STATS_NSTAGES && !rc; i++)
        rc = weft_buf_printf(b, "%s\"%s\":%" PRIu64, i ? "," : "", stage_names[i], a->retries[i]);
    if (!rc) rc = weft_buf_printf(b, "},");
    if (!rc) rc = hist_json(b, "completion_ms", &a->total_ms);
    if (!rc)
        rc = weft_buf_printf(
            b, ",\"commits\":{\"count\":%" PRIu64 ",\"ops\":%" PRIu64 ",\"failed\":%" PRIu64 ",",
            a->commits, a->commit_ops, a->commit_fail);
    if (!rc) rc = hist_json(b, "us", &a->commit_us);
    if (!rc) rc = weft_buf_append(b, ",", 1);
    if (!rc) rc = hist_json(b, "batch", &a->batch);
    if (!rc) rc = weft_buf_printf(b, "}}");
    return rc;
}

static int cmp_units(const void *a, const void *b)
{
    const sku_tot_t *x = *(sku_tot_t *const *)a, *y = *(sku_tot_t *const *)b;
    return x->units < y->units ? 1 : x->units > y->units ? -1 : strcmp(x->sku, y->sku);
}

int stats_json(stats_t *s, weft_buf_t *b, size_t live)
{
    int rc = weft_buf_printf(b, "{\"uptime_s\":%.3f,\"live\":%zu,\"counters\":{",
                             (double)(weft_now_ns() - s->start_ns) / 1e9, live);
    for (int i = 0; i < STATS_NCOUNTERS && !rc; i++)
        rc = weft_buf_printf(b, "%s\"%s\":%" PRIu64, i ? "," : "", counter_names[i],
                             atomic_load_explicit(&s->counters[i], memory_order_relaxed));
    pthread_mutex_lock(&s->snap_mu);
    if (!rc)
        rc = weft_buf_printf(b,
                             "},\"seconds\":%" PRIu64 ",\"folded\":{\"process\":%" PRIu64
                             ",\"in_process\":%" PRIu64 "},\"last_second\":",
                             s->seconds, s->folded_remote, s->folded_local);
    if (!rc) rc = agg_json(b, &s->last);
    if (!rc) rc = weft_buf_printf(b, ",\"cumulative\":");
    if (!rc) rc = agg_json(b, &s->cum);
    sku_tot_t **top = s->nskus ? malloc(s->nskus * sizeof *top) : NULL;
    size_t ntop = top ? s->nskus : 0;
    for (size_t i = 0; i < ntop; i++) top[i] = &s->skus[i];
    if (ntop) qsort(top, ntop, sizeof *top, cmp_units);
    if (!rc) rc = weft_buf_printf(b, ",\"top_skus\":[");
    for (size_t i = 0; i < ntop && i < 20 && !rc; i++) {
        rc = weft_buf_printf(b, "%s{\"sku\":", i ? "," : "");
        if (!rc) rc = order_json_str(b, top[i]->sku);
        if (!rc)
            rc = weft_buf_printf(b, ",\"units\":%" PRIu64 ",\"orders\":%" PRIu64 "}", top[i]->units,
                                 top[i]->orders);
    }
    pthread_mutex_unlock(&s->snap_mu);
    free(top);
    if (!rc) rc = weft_buf_printf(b, "]}");
    return rc;
}

static void view_agg(struct stats_view_agg *v, const agg_t *a)
{
    v->by_status = a->by_status;
    v->revenue_cents = a->revenue_cents;
    v->commits = a->commits;
    v->commit_ops = a->commit_ops;
    v->commit_fail = a->commit_fail;
    v->retries = a->retries;
    for (int i = 0; i < STATS_NSTAGES; i++) v->stage_us[i] = &a->stage_us[i];
    v->total_ms = &a->total_ms;
    v->commit_us = &a->commit_us;
}

void stats_gauges(stats_t *s, int *cpu_workers, size_t *cpu_running, size_t *cpu_queued,
                  size_t *events_queued)
{
    weft_procpool_stats_t ps = {0};
    if (s->pp) weft_procpool_stats(s->pp, &ps); /* NULL: folding in-process, no workers */
    *cpu_workers = ps.workers;
    *cpu_running = ps.running;
    *cpu_queued = ps.queued;
    pthread_mutex_lock(&s->ev_mu);
    *events_queued = s->nev;
    pthread_mutex_unlock(&s->ev_mu);
}

int stats_view(stats_t *s, int (*fn)(const stats_view_t *v, void *arg), void *arg)
{
    stats_view_t v;
    memset(&v, 0, sizeof v);
    v.uptime_s = (double)(weft_now_ns() - s->start_ns) / 1e9;
    for (int i = 0; i < STATS_NCOUNTERS; i++)
        v.counters[i] = atomic_load_explicit(&s->counters[i], memory_order_relaxed);
    pthread_mutex_lock(&s->snap_mu);
    v.seconds = s->seconds;
    view_agg(&v.cum, &s->cum);
    view_agg(&v.last, &s->last);
    /* The top SKUs by a partial selection: STATS_VIEW_TOP passes, no allocation. */
    for (size_t i = 0; i < s->nskus; i++) {
        const sku_tot_t *t = &s->skus[i];
        size_t pos = v.ntop;
        while (pos > 0 &&
               (t->units > v.top_units[pos - 1] ||
                (t->units == v.top_units[pos - 1] && strcmp(t->sku, v.top_sku[pos - 1]) < 0)))
            pos--;
        if (pos >= STATS_VIEW_TOP) continue;
        size_t last = v.ntop < STATS_VIEW_TOP ? v.ntop : STATS_VIEW_TOP - 1;
        for (size_t j = last; j > pos; j--) {
            v.top_sku[j] = v.top_sku[j - 1];
            v.top_units[j] = v.top_units[j - 1];
        }
        v.top_sku[pos] = t->sku;
        v.top_units[pos] = t->units;
        if (v.ntop < STATS_VIEW_TOP) v.ntop++;
    }
    int rc = fn(&v, arg);
    pthread_mutex_unlock(&s->snap_mu);
    return rc;
}
