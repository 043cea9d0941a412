/* Redis in the order engine (`--redis URL`): the stock gate (`--stock lua|lock`) and the
 * logistics hand-off (XADD weft:ship). Redis is never the system of record: the database's
 * ledger is, and every Redis decision is re-checked by the durable write (store.h); Redis is
 * rebuilt from the database at start, after a reconnect and after PUT /stock (reconcile).
 *
 * Keys (orders-contract): weft:stock:{sku} available units; weft:lock:{sku} lock token;
 * weft:fence:{sku} fencing counter; weft:stockver:{sku} the database version (stock.ver) of
 * the level in weft:stock:{sku}; weft:ord:{order} the lua strategy's per-order decision;
 * weft:rel:{order} release done; weft:stock:ready set once reconciled; stream weft:ship with
 * group logistics.
 *
 * Everything here runs on the engine's loop thread (hiredis' libuv adapter on weft_loop_uv),
 * except stock_redis_healthy. Callbacks run on the loop thread, exactly once per call.
 */
#ifndef WEFT_TOOLS_ORDERS_STOCK_H
#define WEFT_TOOLS_ORDERS_STOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <weft/loop.h>

#include "orders/engine.h"
#include "orders/order.h"
#include "orders/store.h"

typedef struct stock_redis stock_redis_t;

typedef enum stock_result {
    STOCK_RESERVED, /* taken in Redis (lua) or locked with fences (lock): now write durably */
    STOCK_REJECTED, /* short or unknown SKU (reason set) */
    STOCK_RETRY,    /* Redis unavailable, reconciling, or a lock is busy: try again later */
} stock_result_t;

/* A reservation in progress: the caller's, alive until stock_redis_done/abort. */
typedef struct stock_hold {
    char token[33];  /* lock mode: this holder's random lock value */
    int64_t *fences; /* lock mode: per item (owned; freed by done/abort) */
    const order_item_t *items;
    size_t nitems;
    char order_id[ORDER_ID_LEN + 1];
    size_t nlocked; /* private */
} stock_hold_t;

typedef void (*stock_cb)(void *arg, stock_result_t r, const char *reason);

/* Connects (asynchronously; reconnects by itself) and reconciles from `store`. Returns 0,
 * -EINVAL (bad URL) or -ENOMEM. Thread safety: loop thread only. */
int stock_redis_create(weft_loop_t *loop, const char *url, engine_stock_mode_t mode, store_t *store,
                       stock_redis_t **out, char *err, size_t errsz);

/* Disconnects and frees; callbacks still owed run first with STOCK_RETRY. Loop thread only. */
void stock_redis_destroy(stock_redis_t *s);

/* True when connected and reconciled. Thread safety: any thread. */
bool stock_redis_healthy(stock_redis_t *s);

/* Decides the order's stock in Redis. On STOCK_RESERVED the caller writes durably (with
 * h->fences in lock mode) and then calls stock_redis_done (written; `levels`: the write's
 * store_op_t levels, one per item, borrowed for the call; lock mode mirrors them) or
 * stock_redis_abort (the database refused: give Redis back what it took). On the other results
 * the hold is finished. */
void stock_redis_reserve(stock_redis_t *s, stock_hold_t *h, stock_cb cb, void *arg);
void stock_redis_done(stock_redis_t *s, stock_hold_t *h, const store_level_t *levels);
void stock_redis_abort(stock_redis_t *s, stock_hold_t *h, bool reconcile);

/* A payment-failed order's release: _begin before its durable write is queued, _end after it
 * committed, with the write's levels (one per item, borrowed for the call): Redis gets the units
 * back, once per order; `levels` NULL: this engine's write changed nothing (another one released
 * the order), only the _begin is ended. */
void stock_redis_release_begin(stock_redis_t *s);
void stock_redis_release_end(stock_redis_t *s, const char *order_id, const order_item_t *items,
                             size_t n, const store_level_t *levels);

/* Calls cb(arg) on the loop thread, exactly once, after Redis answered every command sent
 * before (or the connection was lost): a barrier, for tests. Loop thread only. */
void stock_redis_sync(stock_redis_t *s, void (*cb)(void *arg), void *arg);

/* Rebuilds Redis from the database when nothing is in flight (after PUT /stock). */
void stock_redis_reconcile(stock_redis_t *s);

/* XADD weft:ship * order_id ID items JSON at_ms MS; cb(arg, 0 or -EIO). */
void stock_redis_ship(stock_redis_t *s, const char *order_id, const order_item_t *items, size_t n,
                      void (*cb)(void *arg, int rc), void *arg);

#endif
