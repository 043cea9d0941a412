/* Statistics of `weft orders serve`: counters, per-stage latency histograms, revenue and per-SKU
 * totals, per second and cumulative, merged exactly (weft_hist adds counts; nothing averaged).
 *
 * Producers never aggregate: the HTTP and intake threads only add to atomic counters; the loop
 * and the writer append one small record per event to a shard of their own. A stats thread
 * takes the shards once per second and folds them into the second just ended and the
 * cumulative totals, so no request waits for statistics. GET /stats serialises a snapshot;
 * issue 10's /metrics and /events read the same snapshot.
 */
#ifndef WEFT_TOOLS_ORDERS_STATS_H
#define WEFT_TOOLS_ORDERS_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>
#include <weft/hist.h>

#include "orders/order.h"

typedef enum stats_stage {
    STATS_CREATE,  /* intake: parse, validate, id (to the CREATE op queued) */
    STATS_RESERVE, /* stock reservation, with its commit */
    STATS_PAYMENT, /* all payment attempts and backoff */
    STATS_SHIP,    /* logistics hand-off, with its commit */
    STATS_NSTAGES
} stats_stage_t;

typedef enum stats_counter {
    STATS_ACCEPTED,     /* 201 */
    STATS_DUPLICATE,    /* same key, same body: 200 with the first id */
    STATS_KEY_CONFLICT, /* 422 */
    STATS_IN_FLIGHT,    /* 409 */
    STATS_BAD_REQUEST,  /* 400/413 */
    STATS_OVERLOAD,     /* 503 */
    STATS_PAY_RETRY,    /* payment attempts retried */
    STATS_RESUMED,      /* orders resumed from the database at start */
    STATS_STOCK_RETRY,  /* Redis stock decisions retried (lock busy, reconciling, down) */
    STATS_NCOUNTERS
} stats_counter_t;

/* A retired order (terminal), as the loop hands it over. Items are borrowed for the call. */
typedef struct stats_order {
    int status; /* order_status_t */
    int64_t amount_cents;
    uint64_t total_ms; /* created -> terminal */
    const order_item_t *items;
    size_t nitems;
} stats_order_t;

typedef struct stats stats_t;

/* Returns 0 or -ENOMEM/-errno (thread start). Ownership: free with stats_destroy. */
int stats_create(stats_t **out);
void stats_destroy(stats_t *s);

const char *stats_stage_name(int stage);

/* Producers. stats_count: any thread, lock-free. The others append to the caller's shard:
 * stats_stage and stats_order from one thread each at a time (the loop; stats_stage also from
 * intake threads for STATS_CREATE), stats_commit from the writer. */
void stats_count(stats_t *s, stats_counter_t c, uint64_t n);
void stats_stage(stats_t *s, stats_stage_t st, uint64_t us, uint32_t attempts);
void stats_order(stats_t *s, const stats_order_t *o);
void stats_commit(stats_t *s, size_t ops, uint64_t us, int ok);

/* Appends the GET /stats JSON. Returns 0 or -ENOMEM. Thread safety: any thread. */
int stats_json(stats_t *s, weft_buf_t *out, size_t live);

/* A read-only view of the snapshot GET /stats serialises, for issue 10's /metrics and /events
 * (metrics.c): the cumulative aggregate and the last complete second. */
#define STATS_VIEW_TOP 10
typedef struct stats_view {
    double uptime_s;
    uint64_t seconds; /* complete seconds folded */
    uint64_t counters[STATS_NCOUNTERS];
    struct stats_view_agg {
        const uint64_t *by_status; /* [ORDER_PAYMENT_FAILED + 1], by order_status_t */
        uint64_t revenue_cents, commits, commit_ops, commit_fail;
        const uint64_t *retries;                    /* [STATS_NSTAGES] */
        const weft_hist_t *stage_us[STATS_NSTAGES]; /* microseconds */
        const weft_hist_t *total_ms, *commit_us;    /* completion in ms; commit in us */
    } cum, last;
    size_t ntop; /* the SKUs with the most units shipped, most first */
    const char *top_sku[STATS_VIEW_TOP];
    uint64_t top_units[STATS_VIEW_TOP];
} stats_view_t;

/* Calls fn(view, arg) with a consistent view, valid only during the call (snap_mu is held: fn
 * must be quick and must not call back into stats). Returns what fn returns. Thread safety: any
 * thread. */
/* The process pool's workers, busy workers and queue, and the events not yet folded. Thread
 * safety: any thread. */
void stats_gauges(stats_t *s, int *cpu_workers, size_t *cpu_running, size_t *cpu_queued,
                  size_t *events_queued);

int stats_view(stats_t *s, int (*fn)(const stats_view_t *v, void *arg), void *arg);

#endif
