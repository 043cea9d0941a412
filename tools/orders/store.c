/* The store's front: URL dispatch to a backend, status names, and what both backends share
 * (the schema text and the order JSON). See store.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orders/store_int.h"

const char *const store_schema[] = {
    "CREATE TABLE IF NOT EXISTS orders(id TEXT PRIMARY KEY, idem_key TEXT UNIQUE NOT NULL, "
    "body_hash TEXT NOT NULL, user_id TEXT, items TEXT, amount_cents BIGINT, payment_token TEXT, "
    "status TEXT NOT NULL, reason TEXT, created_ms BIGINT, completed_ms BIGINT, stages TEXT, "
    "updated_ms BIGINT)",
    /* No index on status (one existed: dropped where it still does). Every stage changes the
     * status, and an indexed column changing rules out PostgreSQL's HOT updates: each status
     * UPDATE then wrote new entries in every index of orders, and on this low-cardinality,
     * high-churn index kept paying to clean up dead ones. Measured on PostgreSQL: the paid
     * UPDATE cost 8-9x the order's INSERT with the index, ~1x without; the group commit's
     * throughput 2.5x. The price: the resume query and the audit scan the table once. */
    "DROP INDEX IF EXISTS orders_pending",
    /* ver: raised by every write of `available` (store.h), so that Redis keeps the newest level
     * whatever order mirrors and reconciles reach it in (stock_redis.c). Databases made by an
     * older weft get the column at open (STORE_STOCK_VER_SQL, each backend). */
    "CREATE TABLE IF NOT EXISTS stock(sku TEXT PRIMARY KEY, available BIGINT NOT NULL "
    "CHECK(available >= 0), reserved BIGINT NOT NULL, fence BIGINT NOT NULL DEFAULT 0, "
    "ver BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS stock_moves(order_id TEXT, sku TEXT, kind TEXT, qty BIGINT, "
    "PRIMARY KEY(order_id, sku, kind))",
    "CREATE TABLE IF NOT EXISTS stock_sets(sku TEXT, qty BIGINT, at_ms BIGINT, "
    "delta BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS shipments(order_id TEXT PRIMARY KEY, applied_ms BIGINT)",
    NULL,
};

static const char *const status_names[] = {
    [ORDER_NEW] = NULL,
    [ORDER_ACCEPTED] = "accepted",
    [ORDER_RESERVED] = "reserved",
    [ORDER_PAID] = "paid",
    [ORDER_SHIPPED] = "shipped",
    [ORDER_REJECTED] = "rejected",
    [ORDER_PAYMENT_FAILED] = "payment_failed",
};

const char *order_status_name(order_status_t s)
{
    return (unsigned)s <= ORDER_PAYMENT_FAILED ? status_names[s] : NULL;
}

order_status_t order_status_parse(const char *s)
{
    for (int i = ORDER_ACCEPTED; s && i <= ORDER_PAYMENT_FAILED; i++)
        if (strcmp(status_names[i], s) == 0) return (order_status_t)i;
    return ORDER_NEW;
}

void store_levels_clear(store_op_t *op)
{
    size_t n = op->kind == STORE_SET_STOCK ? 1 : op->ord ? op->ord->req.nitems : 0;
    if (op->levels) memset(op->levels, 0, n * sizeof *op->levels);
}

int store_open(const char *url, store_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (strncmp(url, "sqlite:", 7) == 0) return store_sqlite_open(url + 7, out, err, errsz);
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
        return store_pg_open(url, out, err, errsz);
    snprintf(err, errsz, "unknown database URL '%s' (sqlite:PATH or postgresql://...)", url);
    return -EINVAL;
}

int store_apply(store_t *s, store_op_t **ops, size_t n, char *err, size_t errsz)
{
    return s->vt->apply(s, ops, n, err, errsz);
}

int store_get_order(store_t *s, const char *id, weft_buf_t *out)
{
    return s->vt->get_order(s, id, out);
}

int store_get_stock(store_t *s, const char *sku, int64_t *available, int64_t *reserved)
{
    return s->vt->get_stock(s, sku, available, reserved);
}

int store_load_pending(store_t *s, int (*cb)(void *, store_order_t *), void *arg)
{
    return s->vt->load_pending(s, cb, arg);
}

int store_query(store_t *s, const char *sql, int (*cb)(void *, int, char **), void *arg, char *err,
                size_t errsz)
{
    return s->vt->query(s, sql, cb, arg, err, errsz);
}

int store_ping(store_t *s)
{
    return s->vt->ping(s);
}

const char *store_kind(const store_t *s)
{
    return s->vt->kind;
}

void store_close(store_t *s)
{
    if (s) s->vt->close(s);
}

int store_order_json(weft_buf_t *out, char **c)
{
    int rc = weft_buf_append(out, "{\"id\":", 6);
    if (!rc) rc = order_json_str(out, c[0]);
    if (!rc) rc = weft_buf_append(out, ",\"status\":", 10);
    if (!rc) rc = order_json_str(out, c[1]);
    if (!rc)
        rc = weft_buf_printf(out, ",\"items\":%s,\"amount_cents\":%s,\"created_ms\":%s,",
                             c[2] ? c[2] : "[]", c[3] ? c[3] : "0", c[4] ? c[4] : "null");
    if (!rc)
        rc = weft_buf_printf(out,
                             "\"completed_ms\":%s,\"stages\":%s,\"reason\":", c[5] ? c[5] : "null",
                             c[6] ? c[6] : "{}");
    if (!rc) rc = c[7] ? order_json_str(out, c[7]) : weft_buf_append(out, "null", 4);
    if (!rc) rc = weft_buf_append(out, "}", 1);
    return rc;
}

int store_stock_row(void *arg, int n, char **c)
{
    store_stock_out_t *o = arg;
    o->a = strtoll(c[0], NULL, 10);
    o->r = strtoll(c[1], NULL, 10);
    return 1;
}

int store_pending_row(void *arg, int n, char **c)
{
    store_pend_t *p = arg;
    store_order_t o;
    memset(&o, 0, sizeof o);
    snprintf(o.id, sizeof o.id, "%s", c[0]);
    o.status = order_status_parse(c[1]);
    o.req.amount_cents = c[3] ? strtoll(c[3], NULL, 10) : 0;
    o.created_ms = c[4] ? strtoull(c[4], NULL, 10) : 0;
    o.stages = c[5];
    if (order_items_parse(c[2] ? c[2] : "", &o.req.items, &o.req.nitems) < 0) return -EIO;
    o.req.payment_token = c[6];
    o.req.user = c[7];
    int rc = p->cb(p->arg, &o);
    order_items_free(o.req.items, o.req.nitems);
    return rc;
}
