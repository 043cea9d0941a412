/* The store's backends (store_sqlite.c, store_pg.c) behind store.h's functions. */
#ifndef WEFT_TOOLS_ORDERS_STORE_INT_H
#define WEFT_TOOLS_ORDERS_STORE_INT_H

#include "orders/store.h"

typedef struct store_vt {
    const char *kind;
    int (*apply)(store_t *s, store_op_t **ops, size_t n, char *err, size_t errsz);
    int (*get_order)(store_t *s, const char *id, weft_buf_t *out);
    int (*get_stock)(store_t *s, const char *sku, int64_t *available, int64_t *reserved);
    int (*load_pending)(store_t *s, int (*cb)(void *, store_order_t *), void *arg);
    int (*query)(store_t *s, const char *sql, int (*cb)(void *, int, char **), void *arg, char *err,
                 size_t errsz);
    int (*ping)(store_t *s);
    void (*close)(store_t *s);
} store_vt_t;

struct store {
    const store_vt_t *vt;
};

int store_sqlite_open(const char *path, store_t **out, char *err, size_t errsz);
int store_pg_open(const char *url, store_t **out, char *err, size_t errsz);

/* The GET /orders/{id} JSON from a row's text columns (id, status, items, amount_cents,
 * created_ms, completed_ms, stages, reason; NULL for SQL NULL). Returns 0 or -ENOMEM. */
int store_order_json(weft_buf_t *out, char **cols);

/* The columns of that row, for both backends. */
#define STORE_ORDER_COLS "id, status, items, amount_cents, created_ms, completed_ms, stages, reason"

/* Row callbacks both backends' readers share (cols: text columns, NULL for SQL NULL). */
typedef struct store_stock_out {
    int64_t a, r;
} store_stock_out_t;
/* "available, reserved" into a store_stock_out_t; returns 1 (one row). */
int store_stock_row(void *arg, int n, char **cols);

/* The orders to resume at start (STORE_PENDING_SQL's columns), each passed to cb. */
typedef struct store_pend {
    int (*cb)(void *, store_order_t *);
    void *arg;
} store_pend_t;
#define STORE_PENDING_SQL                                                                          \
    "SELECT id, status, items, amount_cents, created_ms, stages, payment_token, user_id FROM "     \
    "orders WHERE status IN ('accepted','reserved','paid') ORDER BY created_ms"
/* Returns cb's result, or -EIO for unreadable items. */
int store_pending_row(void *arg, int n, char **cols);

/* Sets op->levels (if any) to "nothing written": before the op runs and when it rolls back. */
void store_levels_clear(store_op_t *op);

/* The schema, as statements each backend runs (types valid in both dialects). */
extern const char *const store_schema[];

/* Adds stock.ver to a database created before it existed; each backend runs it only when the
 * column is missing (SQLite has no ADD COLUMN IF NOT EXISTS; PostgreSQL's would lock the table). */
#define STORE_STOCK_VER_SQL "ALTER TABLE stock ADD COLUMN ver BIGINT NOT NULL DEFAULT 0"

#endif
