/* The order engine of `weft orders serve`: intake, the five stages, group commit, resume.
 * The HTTP layer (api.c) is a thin client of this header; issue 10's /metrics, /events and the
 * dashboard read engine_stats() (stats.h) the same way.
 *
 * Every call that answers an HTTP request takes a caller-owned engine_call_t and completes it
 * exactly once through its `done` function, from an engine thread, after filling status/body.
 * After `done` the engine never touches the call again (one lifetime rule).
 */
#ifndef WEFT_TOOLS_ORDERS_ENGINE_H
#define WEFT_TOOLS_ORDERS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>

typedef struct engine engine_t;
struct stats;

typedef enum engine_stock_mode {
    ENGINE_STOCK_DB = 0, /* no Redis: decided by the single writer against the ledger */
    ENGINE_STOCK_LOCK,   /* Redis: SET NX PX lock per SKU + fencing token */
    ENGINE_STOCK_LUA,    /* Redis: one idempotent script per order */
} engine_stock_mode_t;

typedef struct engine_opts {
    const char *db_url;      /* "sqlite:PATH" or "postgresql://..." */
    const char *redis_url;   /* NULL: no Redis */
    const char *payment_url; /* base URL of the payment API (POST {url}/pay) */
    engine_stock_mode_t stock;
    int intake_threads;       /* thread pool for parsing/validation; 0: 2 */
    size_t max_live;          /* orders in flight (intake to terminal) before 503; 0: 50000 */
    uint32_t pay_timeout_ms;  /* one payment attempt; 0: 1000 */
    uint32_t pay_concurrency; /* payment attempts in flight at once; 0: 256 (the rest wait) */
    uint32_t batch_max;       /* operations per group commit; 0: 512 */
} engine_opts_t;

typedef struct engine_call {
    void (*done)(struct engine_call *c); /* public: set by the caller; runs on an engine thread */
    void *arg;                           /* public: the caller's */
    int status;                          /* out: HTTP status */
    int retry_after;                     /* out: seconds for Retry-After, 0: none */
    weft_buf_t body;                     /* out: JSON body; the caller frees it */
} engine_call_t;

/* Opens the store, starts the intake pool, the writer and the loop, and resumes every order the
 * database holds in a non-terminal state. Returns 0 or a negative error with a one-line message
 * in err. Ownership: returns owned; free with engine_destroy. Thread safety: any thread. */
int engine_create(const engine_opts_t *opts, engine_t **out, char *err, size_t errsz);

/* POST /orders. key: the Idempotency-Key (validated by the caller: 1..255 bytes); body is copied.
 * Returns 0 (c->done will run), or -EAGAIN when overloaded (c->done never runs; answer 503).
 * Thread safety: any thread. */
int engine_submit_order(engine_t *e, engine_call_t *c, const char *key, const char *body,
                        size_t len);

/* PUT /stock/{sku}: sets available = qty durably. Returns 0 (c->done will run) or -EAGAIN.
 * Thread safety: any thread. */
int engine_set_stock(engine_t *e, engine_call_t *c, const char *sku, int64_t qty);

/* Synchronous reads for GET /orders/{id}, GET /stock/{sku}, /healthz and GET /stats: fill status
 * and body of `c` (done is not called). Thread safety: any thread. */
void engine_get_order(engine_t *e, engine_call_t *c, const char *id);
void engine_get_stock(engine_t *e, engine_call_t *c, const char *sku);
void engine_health(engine_t *e, engine_call_t *c);
void engine_get_stats(engine_t *e, engine_call_t *c);

/* Orders in flight (accepted but not terminal, plus intake). Thread safety: any thread. */
size_t engine_live(engine_t *e);

/* For /metrics and /events (issue 10): the statistics (borrowed, valid until engine_destroy)
 * and the engine's queues and workers now. Thread safety: any thread. */
struct stats *engine_stats(engine_t *e);
typedef struct engine_gauges {
    size_t live;                          /* as engine_live */
    int intake_threads;                   /* the intake pool (threads) */
    size_t intake_running, intake_queued; /* its busy workers and queue */
    size_t writer_running;                /* the writer thread: 1 while a transaction runs */
    size_t writer_queued, loop_queued;    /* operations waiting for the writer / loop */
    size_t io_running;                    /* the IO loop: payment and Redis calls in flight */
    size_t io_backoff;                    /* orders waiting on the loop for a retry's backoff */
    int cpu_workers;                      /* the statistics' process pool */
    size_t cpu_running, cpu_queued;       /* its busy workers and queue */
    size_t stats_queued;                  /* events waiting for the statistics thread */
    size_t pay_running, pay_queued;       /* payment attempts in flight / waiting for a slot */
    uint32_t pay_concurrency;             /* the bound on pay_running */
} engine_gauges_t;
void engine_gauges(engine_t *e, engine_gauges_t *g);

/* Stops: callers must have stopped submitting (the HTTP server quiesced and every call done).
 * Finishes the group commits in progress, cancels payment attempts (their orders stay in the
 * database at their stage and resume on the next start), and frees everything. NULL ignored. */
void engine_destroy(engine_t *e);

#endif
