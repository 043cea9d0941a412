/* The durable store of `weft orders serve`: SQLite (sqlite:PATH, the embedded default) or
 * PostgreSQL (postgresql://...), one schema (docs/orders.md, orders-contract):
 *   orders, stock, stock_moves (the ledger, idempotent by primary key), stock_sets (PUT /stock
 *   history: qty and delta = qty - available before), shipments.
 *
 * Writes come as batches of operations from ONE writer thread (engine.c), each batch one
 * transaction: group commit. Every operation is idempotent and guarded by the order's current
 * status (UPDATE ... WHERE status = 'previous'), so replaying one after a crash, or applying it
 * twice, changes nothing the second time. The reserve operation decides stock inside the
 * transaction (all items or none, the ledger row and the stock row together), so without Redis
 * the single writer is the stock's concurrency control and stock can never go negative
 * (CHECK(available >= 0) backs this up).
 *
 * Reads (GET /orders, GET /stock, /healthz, audit, resume) use a second connection under a
 * mutex, from any thread.
 */
#ifndef WEFT_TOOLS_ORDERS_STORE_H
#define WEFT_TOOLS_ORDERS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>

#include "orders/order.h"

typedef enum order_status {
    ORDER_NEW = 0, /* not yet committed */
    ORDER_ACCEPTED,
    ORDER_RESERVED,
    ORDER_PAID,
    ORDER_SHIPPED,        /* terminal */
    ORDER_REJECTED,       /* terminal: out of stock or invalid */
    ORDER_PAYMENT_FAILED, /* terminal: stock released */
} order_status_t;

/* "accepted", ...; NULL for ORDER_NEW. */
const char *order_status_name(order_status_t s);
order_status_t order_status_parse(const char *s); /* ORDER_NEW if unknown */
static inline bool order_status_terminal(order_status_t s)
{
    return s >= ORDER_SHIPPED;
}

typedef enum store_op_kind {
    STORE_CREATE,    /* insert the order (accepted) unless its key exists: then dup_id/dup_same */
    STORE_RESERVE,   /* accepted -> reserved (moves + stock) or rejected (reason) */
    STORE_PAID,      /* reserved -> paid */
    STORE_PAYFAIL,   /* reserved -> payment_failed, releasing exactly what was reserved */
    STORE_SHIP,      /* paid -> shipped + shipments row (in-process logistics) */
    STORE_PAID_SHIP, /* reserved -> shipped + shipments row in one transaction: payment and
                        in-process logistics committed together (no Redis) */
    STORE_SET_STOCK, /* PUT /stock: available = qty, a stock_sets row with the delta */
    STORE_REJECT,    /* accepted -> rejected (reason): Redis found the stock short */
} store_op_kind_t;

/* The order as the store sees it. */
typedef struct store_order {
    char id[ORDER_ID_LEN + 1];
    const char *idem_key; /* STORE_CREATE only; borrowed */
    uint64_t body_hash;
    order_req_t req; /* user, token, amount, items */
    order_status_t status;
    uint64_t created_ms;
    const char *stages; /* JSON text of per-stage timings, written with every transition */
    char reason[160];   /* set by the caller (PAYFAIL) or the store (RESERVE -> rejected) */
} store_order_t;

/* A SKU's stock row after a write: what Redis mirrors (stock.h). Every write that changes
 * `available` (reserve, release, PUT /stock) raises the row's `ver` (to one more, and at least
 * the clock in microseconds, so that a new database starts above an old one's versions), so of
 * two levels of one SKU the one with the higher ver is the newer, whatever order they arrive
 * in. */
typedef struct store_level {
    int64_t available;
    int64_t ver; /* 0: this operation did not write the SKU */
} store_level_t;

/* One operation of a batch; caller-owned, borrowed by store_apply until it returns. */
typedef struct store_op {
    store_op_kind_t kind;  /* in */
    store_order_t *ord;    /* in: every kind but SET_STOCK; borrowed */
    const int64_t *fences; /* in: RESERVE under Redis locks: per item, the fencing token from
                              INCR weft:fence:{sku}; the write applies only if each is above the
                              SKU's stored fence (then stored), so a holder whose lease expired
                              cannot write after a newer holder; NULL: no fencing */
    const char *sku;       /* in: SET_STOCK */
    int64_t qty;           /* in: SET_STOCK */
    store_level_t *levels; /* in: NULL, or the caller's array to fill: RESERVE and PAYFAIL one
                              per item (in item order), SET_STOCK one; out: each SKU's level
                              right after this operation's write ({0, 0} if it wrote none) */
    /* out */
    int rc;                /* 0 applied, 1 nothing to do (already applied), < 0 error */
    order_status_t status; /* the order's status after the op (RESERVE: reserved/rejected) */
    char dup_id[ORDER_ID_LEN + 1]; /* CREATE with an existing key: that order's id ... */
    bool dup_same;                 /* ... and whether its body hash is the same */
    bool fenced;                   /* RESERVE: refused, a newer lock holder wrote (status kept) */
    struct store_op *next;         /* free for the caller's queues */
} store_op_t;

typedef struct store store_t;

/* Opens (creating the schema if missing) "sqlite:PATH" or "postgresql://...". Returns 0,
 * -EINVAL (unknown scheme), or -EIO with a one-line message in err. Ownership: returns owned;
 * free with store_close. Thread safety: any thread. */
int store_open(const char *url, store_t **out, char *err, size_t errsz);

/* Applies `n` operations in ONE transaction, in order, and fills their results. Returns 0 when
 * the transaction committed (then each op's rc says what it did), or a negative error when it
 * did not (nothing applied; err says why; each op's rc is that error). Thread safety: one thread
 * (the writer) at a time. */
int store_apply(store_t *s, store_op_t **ops, size_t n, char *err, size_t errsz);

/* Appends GET /orders/{id}'s JSON for `id` to out. Returns 0, -ENOENT or -EIO. Thread safety:
 * any thread. */
int store_get_order(store_t *s, const char *id, weft_buf_t *out);

/* Reads one SKU's stock. Returns 0, -ENOENT or -EIO. Thread safety: any thread. */
int store_get_stock(store_t *s, const char *sku, int64_t *available, int64_t *reserved);

/* Calls cb for every order that is not terminal, oldest first; stops at cb's first non-zero
 * return and returns it; -EIO on a database error. The order passed is borrowed for the call.
 * Thread safety: any thread. */
int store_load_pending(store_t *s, int (*cb)(void *arg, store_order_t *o), void *arg);

/* Runs a read-only query and calls cb once per row with its columns as text (NULL for SQL NULL).
 * For the audit. Returns 0, cb's non-zero return, or -EIO (err). Thread safety: any thread. */
int store_query(store_t *s, const char *sql, int (*cb)(void *arg, int ncols, char **cols),
                void *arg, char *err, size_t errsz);

/* 0 when the database answers, -EIO otherwise. Thread safety: any thread. */
int store_ping(store_t *s);

/* "sqlite" or "postgresql". */
const char *store_kind(const store_t *s);

/* Closes the connections. NULL is ignored. Ownership: takes `s`. Thread safety: no other call
 * may be running. */
void store_close(store_t *s);

#endif
