/* The PostgreSQL backend of the order store (store.h): `postgresql://...`.
 *
 * DESIGN
 * Two connections. The writer's (writer thread only) runs in libpq pipeline mode: a batch is
 * BEGIN, one prepared statement per operation, COMMIT and a Sync, all sent before any result is
 * read, so a group commit of hundreds of orders costs one round trip and one WAL flush
 * (synchronous_commit=on is set on the connection: COMMIT returns only once durable, because the
 * engine acknowledges 201 right after). Pipelining forbids branching between statements, so
 * every operation is ONE statement whose data-modifying CTEs do the whole job and whose result
 * says what happened: the create is an INSERT ... ON CONFLICT DO NOTHING that also returns the
 * existing row's id and body hash; the reserve checks every item in a CTE and then takes all or
 * none; the payment-failed release re-inserts the order's own reserve moves as release moves,
 * so it gives back exactly what was taken. None of them can fail on valid input (conflicts are
 * DO NOTHING, stock is only taken when sufficient), so one bad operation cannot abort a batch;
 * if the batch fails anyway (connection lost, server restart), it is rolled back and the engine
 * retries it, after PQreset re-establishes the connection. The second connection serves reads
 * (any thread, under rd_mu) in ordinary blocking mode.
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orders/store_int.h"

/* A stock row's next version: one more than its last, and at least the clock in microseconds,
 * so that a database made after another (a new file, a recreated schema) under the same Redis
 * starts above the versions Redis kept from the old one (stock_redis.c). */
#define PG_NOW_US "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
#define PG_NEXT_VER(T) "GREATEST(" T ".ver + 1, " PG_NOW_US ")"

enum { P_CREATE, P_RESERVE, P_PAID, P_PAYFAIL, P_SHIP, P_SET_STOCK, P_REJECT, P_PAID_SHIP, P_N };

static const char *const pg_sql[P_N] = {
    [P_CREATE] =
        "WITH ins AS (INSERT INTO orders(id, idem_key, body_hash, user_id, items, amount_cents, "
        "payment_token, status, created_ms, stages, updated_ms) VALUES($1,$2,$3,$4,$5,$6,$7,"
        "'accepted',$8,$9,$8) ON CONFLICT (idem_key) DO NOTHING RETURNING id, body_hash) "
        "SELECT id, body_hash, 1 FROM ins UNION ALL SELECT id, body_hash, 0 FROM orders "
        "WHERE idem_key = $2 AND NOT EXISTS (SELECT 1 FROM ins)",
    /* The joins with stock also say `s.sku = ANY($2)`: the generic plan of a prepared statement
     * otherwise guessed 10 wanted rows against ~1,000 and scanned all of stock three times per
     * order (a hash join); with it, stock_pkey is probed for the order's SKUs only (measured:
     * 585-665 -> 356-367 us per call on a loaded machine with 100 SKUs; more with more SKUs). */
    [P_RESERVE] =
        "WITH want AS (SELECT * FROM unnest($2::text[], $3::bigint[], COALESCE($6::bigint[], "
        "array_fill(0::bigint, ARRAY[cardinality($2::text[])]))) AS w(sku, qty, fence)), "
        "ord AS (SELECT id FROM orders WHERE id = $1 AND status = 'accepted'), "
        "fenced AS (SELECT 1 AS f FROM ord, want w JOIN stock s ON s.sku = w.sku "
        "AND s.sku = ANY($2::text[]) WHERE $6::bigint[] IS NOT NULL AND s.fence >= w.fence "
        "LIMIT 1), "
        "short AS (SELECT w.sku AS sku, s.available AS available FROM want w LEFT JOIN stock s "
        "ON s.sku = w.sku AND s.sku = ANY($2::text[]) WHERE s.sku IS NULL OR s.available < "
        "w.qty ORDER BY w.sku LIMIT 1), "
        "go AS (SELECT 1 FROM ord WHERE NOT EXISTS (SELECT 1 FROM short) AND NOT EXISTS "
        "(SELECT 1 FROM fenced)), "
        "take AS (UPDATE stock s SET available = s.available - w.qty, reserved = s.reserved + "
        "w.qty, fence = CASE WHEN $6::bigint[] IS NULL THEN s.fence ELSE w.fence END, "
        "ver = " PG_NEXT_VER(
            "s") " FROM want w WHERE s.sku = w.sku AND s.sku = ANY($2::text[]) AND "
                 "EXISTS (SELECT 1 FROM go) RETURNING s.sku, s.available, s.ver), "
                 "mv AS (INSERT INTO stock_moves(order_id, sku, kind, qty) SELECT $1, w.sku, "
                 "'reserve', "
                 "w.qty FROM want w WHERE EXISTS (SELECT 1 FROM go) ON CONFLICT DO NOTHING "
                 "RETURNING 1), "
                 "upd AS (UPDATE orders o SET status = CASE WHEN EXISTS (SELECT 1 FROM short) THEN "
                 "'rejected' ELSE 'reserved' END, reason = (SELECT CASE WHEN available IS NULL "
                 "THEN "
                 "'unknown sku: ' || sku ELSE 'out of stock: ' || sku || ' (' || available || "
                 "' available)' END FROM short), completed_ms = CASE WHEN EXISTS (SELECT 1 FROM "
                 "short) "
                 "THEN $4::bigint END, stages = $5, updated_ms = $4 WHERE o.id = $1 AND o.status = "
                 "'accepted' AND NOT EXISTS (SELECT 1 FROM fenced) RETURNING o.status, o.reason) "
                 "SELECT u.status, u.reason, t.sku, t.available, t.ver FROM upd u LEFT JOIN take t "
                 "ON "
                 "true UNION ALL SELECT 'fenced', NULL, NULL, NULL, NULL FROM fenced",
    [P_PAID_SHIP] =
        "WITH upd AS (UPDATE orders SET status = 'shipped', completed_ms = $2, stages = $3, "
        "updated_ms = $2 WHERE id = $1 AND status = 'reserved' RETURNING id), "
        "sh AS (INSERT INTO shipments(order_id, applied_ms) SELECT id, $2 FROM upd "
        "ON CONFLICT DO NOTHING RETURNING 1) SELECT 1 FROM upd",
    [P_REJECT] = "UPDATE orders SET status = 'rejected', reason = $2, completed_ms = $3, stages = "
                 "$4, updated_ms = $3 WHERE id = $1 AND status = 'accepted' RETURNING 1",
    [P_PAID] = "UPDATE orders SET status = 'paid', stages = $2, updated_ms = $3 WHERE id = $1 AND "
               "status = 'reserved' RETURNING 1",
    [P_PAYFAIL] =
        "WITH upd AS (UPDATE orders SET status = 'payment_failed', reason = $2, completed_ms = "
        "$3, stages = $4, updated_ms = $3 WHERE id = $1 AND status = 'reserved' RETURNING id), "
        "mv AS (INSERT INTO stock_moves(order_id, sku, kind, qty) SELECT m.order_id, m.sku, "
        "'release', m.qty FROM stock_moves m WHERE m.order_id = $1 AND m.kind = 'reserve' AND "
        "EXISTS (SELECT 1 FROM upd) ON CONFLICT DO NOTHING RETURNING sku, qty), "
        "give AS (UPDATE stock s SET available = s.available + mv.qty, reserved = s.reserved - "
        "mv.qty, ver = " PG_NEXT_VER(
            "s") " FROM mv WHERE s.sku = mv.sku RETURNING s.sku, s.available, "
                 "s.ver) SELECT 1, g.sku, g.available, g.ver FROM upd LEFT JOIN give g ON true",
    [P_SHIP] = "WITH upd AS (UPDATE orders SET status = 'shipped', completed_ms = $2, stages = $3, "
               "updated_ms = $2 WHERE id = $1 AND status = 'paid' RETURNING id), "
               "sh AS (INSERT INTO shipments(order_id, applied_ms) SELECT id, $2 FROM upd "
               "ON CONFLICT DO NOTHING RETURNING 1) SELECT 1 FROM upd",
    [P_SET_STOCK] =
        "WITH old AS (SELECT available FROM stock WHERE sku = $1), "
        "up AS (INSERT INTO stock(sku, available, reserved, ver) VALUES($1, $2, 0, " PG_NOW_US ") "
        "ON CONFLICT "
        "(sku) DO UPDATE SET available = EXCLUDED.available, ver = " PG_NEXT_VER(
            "stock") " RETURNING "
                     "available, ver), "
                     "ss AS (INSERT INTO stock_sets(sku, qty, at_ms, delta) VALUES($1, $2, $3, "
                     "$2::bigint - "
                     "COALESCE((SELECT available FROM old), 0)) RETURNING 1) SELECT 1, available, "
                     "ver FROM up",
};

typedef struct pg_store {
    store_t base;
    char *url;
    PGconn *w; /* writer thread only, pipeline mode */
    pthread_mutex_t rd_mu;
    PGconn *r; /* under rd_mu */
} pg_store_t;

static void one_line(char *err, size_t errsz, const char *what, const char *msg)
{
    snprintf(err, errsz, "postgresql: %s: %s", what, msg ? msg : "unknown error");
    char *nl = strchr(err, '\n');
    if (nl) *nl = 0;
}

static int exec_simple(PGconn *c, const char *sql, char *err, size_t errsz)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok && err) one_line(err, errsz, "query", PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -EIO;
}

static int connect_one(const char *url, PGconn **out, char *err, size_t errsz)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        one_line(err, errsz, "cannot connect", PQerrorMessage(c));
        PQfinish(c);
        *out = NULL;
        return -EIO;
    }
    *out = c;
    /* No NOTICEs on stderr ("relation already exists, skipping" at every start). */
    return exec_simple(c, "SET synchronous_commit = on; SET client_min_messages = warning", err,
                       errsz);
}

/* Prepares the writer's statements and enters pipeline mode (after connect and after reset). */
static int writer_setup(pg_store_t *q, char *err, size_t errsz)
{
    if (PQpipelineStatus(q->w) != PQ_PIPELINE_OFF) PQexitPipelineMode(q->w);
    if (exec_simple(q->w, "SET synchronous_commit = on", err, errsz) < 0) return -EIO;
    for (int i = 0; i < P_N; i++) {
        char name[8];
        snprintf(name, sizeof name, "w%d", i);
        PGresult *r = PQprepare(q->w, name, pg_sql[i], 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            one_line(err, errsz, "prepare", PQerrorMessage(q->w));
            return -EIO;
        }
    }
    if (!PQenterPipelineMode(q->w)) {
        one_line(err, errsz, "pipeline mode", PQerrorMessage(q->w));
        return -EIO;
    }
    return 0;
}

/* ---- the batch ---- */

typedef struct params {
    const char *v[10];
    char num[6][24];
    weft_buf_t c; /* fences array literal */
    int n;
    weft_buf_t a, b; /* array literals or items JSON */
} params_t;

static const char *num(params_t *p, int slot, int64_t v)
{
    snprintf(p->num[slot], sizeof p->num[slot], "%" PRId64, v);
    return p->num[slot];
}

/* A text[] literal: {"a","b"} with " and \ escaped. */
static void array_text(weft_buf_t *b, const order_item_t *it, size_t n)
{
    weft_buf_append(b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        weft_buf_append(b, i ? ",\"" : "\"", i ? 2 : 1);
        for (const char *s = it[i].sku; *s; s++) {
            if (*s == '"' || *s == '\\') weft_buf_append(b, "\\", 1);
            weft_buf_append(b, s, 1);
        }
        weft_buf_append(b, "\"", 1);
    }
    weft_buf_append(b, "}", 1);
}

static void array_qty(weft_buf_t *b, const order_item_t *it, size_t n)
{
    weft_buf_append(b, "{", 1);
    for (size_t i = 0; i < n; i++) weft_buf_printf(b, "%s%" PRId64, i ? "," : "", it[i].qty);
    weft_buf_append(b, "}", 1);
}

static int send_op(pg_store_t *q, store_op_t *op, params_t *p)
{
    store_order_t *o = op->ord;
    int64_t now = (int64_t)order_wall_ms();
    char hash[17];
    int stmt;
    weft_buf_reset(&p->a);
    weft_buf_reset(&p->b);
    switch (op->kind) {
    case STORE_CREATE:
        stmt = P_CREATE;
        snprintf(hash, sizeof hash, "%016" PRIx64, o->body_hash);
        order_items_json(o->req.items, o->req.nitems, &p->a);
        p->v[0] = o->id;
        p->v[1] = o->idem_key;
        p->v[2] = hash;
        p->v[3] = o->req.user;
        p->v[4] = p->a.data;
        p->v[5] = num(p, 0, o->req.amount_cents);
        p->v[6] = o->req.payment_token;
        p->v[7] = num(p, 1, (int64_t)o->created_ms);
        p->v[8] = o->stages;
        p->n = 9;
        break;
    case STORE_RESERVE:
        stmt = P_RESERVE;
        array_text(&p->a, o->req.items, o->req.nitems);
        array_qty(&p->b, o->req.items, o->req.nitems);
        p->v[0] = o->id;
        p->v[1] = p->a.data;
        p->v[2] = p->b.data;
        p->v[3] = num(p, 0, now);
        p->v[4] = o->stages;
        p->v[5] = NULL;
        if (op->fences) {
            weft_buf_reset(&p->c);
            weft_buf_append(&p->c, "{", 1);
            for (size_t i = 0; i < o->req.nitems; i++)
                weft_buf_printf(&p->c, "%s%" PRId64, i ? "," : "", op->fences[i]);
            weft_buf_append(&p->c, "}", 1);
            p->v[5] = p->c.data;
        }
        p->n = 6;
        break;
    case STORE_REJECT:
        stmt = P_REJECT;
        p->v[0] = o->id;
        p->v[1] = o->reason;
        p->v[2] = num(p, 0, now);
        p->v[3] = o->stages;
        p->n = 4;
        break;
    case STORE_PAID:
        stmt = P_PAID;
        p->v[0] = o->id;
        p->v[1] = o->stages;
        p->v[2] = num(p, 0, now);
        p->n = 3;
        break;
    case STORE_PAID_SHIP:
        stmt = P_PAID_SHIP;
        p->v[0] = o->id;
        p->v[1] = num(p, 0, now);
        p->v[2] = o->stages;
        p->n = 3;
        break;
    case STORE_PAYFAIL:
        stmt = P_PAYFAIL;
        p->v[0] = o->id;
        p->v[1] = o->reason;
        p->v[2] = num(p, 0, now);
        p->v[3] = o->stages;
        p->n = 4;
        break;
    case STORE_SHIP:
        stmt = P_SHIP;
        p->v[0] = o->id;
        p->v[1] = num(p, 0, now);
        p->v[2] = o->stages;
        p->n = 3;
        break;
    case STORE_SET_STOCK:
        stmt = P_SET_STOCK;
        p->v[0] = op->sku;
        p->v[1] = num(p, 0, op->qty);
        p->v[2] = num(p, 1, now);
        p->n = 3;
        break;
    default:
        return -EINVAL;
    }
    char name[8];
    snprintf(name, sizeof name, "w%d", stmt);
    return PQsendQueryPrepared(q->w, name, p->n, p->v, NULL, NULL, 0) ? 0 : -EIO;
}

/* Reads the levels of the rows of r whose columns c, c+1, c+2 are sku, available, ver into
 * op->levels, by item (a NULL sku: no stock row written). */
static void take_levels(store_op_t *op, PGresult *r, int c)
{
    if (!op->levels) return;
    for (int i = 0; i < PQntuples(r); i++) {
        if (op->kind == STORE_SET_STOCK) {
            op->levels[0].available = strtoll(PQgetvalue(r, i, c + 1), NULL, 10);
            op->levels[0].ver = strtoll(PQgetvalue(r, i, c + 2), NULL, 10);
            continue;
        }
        if (PQgetisnull(r, i, c)) continue;
        const order_req_t *q = &op->ord->req;
        for (size_t k = 0; k < q->nitems; k++)
            if (strcmp(q->items[k].sku, PQgetvalue(r, i, c)) == 0) {
                op->levels[k].available = strtoll(PQgetvalue(r, i, c + 1), NULL, 10);
                op->levels[k].ver = strtoll(PQgetvalue(r, i, c + 2), NULL, 10);
            }
    }
}

/* Reads one op's result into op (status, dup, reason, levels). */
static void take_result(store_op_t *op, PGresult *r)
{
    store_order_t *o = op->ord;
    int rows = PQntuples(r);
    switch (op->kind) {
    case STORE_CREATE:
        if (rows && strcmp(PQgetvalue(r, 0, 2), "1") == 0) {
            op->rc = 0;
            op->status = ORDER_ACCEPTED;
        } else if (rows) {
            char hash[17];
            snprintf(hash, sizeof hash, "%016" PRIx64, o->body_hash);
            op->rc = 1;
            snprintf(op->dup_id, sizeof op->dup_id, "%s", PQgetvalue(r, 0, 0));
            op->dup_same = strcmp(PQgetvalue(r, 0, 1), hash) == 0;
        } else {
            op->rc = -EIO;
        }
        break;
    case STORE_RESERVE:
        if (!rows) {
            op->rc = 1;
            break;
        }
        op->rc = 0;
        if (strcmp(PQgetvalue(r, 0, 0), "fenced") == 0) {
            op->fenced = true;
            op->rc = 1;
            break;
        }
        op->status = order_status_parse(PQgetvalue(r, 0, 0));
        if (!PQgetisnull(r, 0, 1)) snprintf(o->reason, sizeof o->reason, "%s", PQgetvalue(r, 0, 1));
        take_levels(op, r, 2);
        break;
    case STORE_PAID:
        op->rc = rows ? 0 : 1;
        if (rows) op->status = ORDER_PAID;
        break;
    case STORE_SHIP:
    case STORE_PAID_SHIP:
        op->rc = rows ? 0 : 1;
        if (rows) op->status = ORDER_SHIPPED;
        break;
    case STORE_PAYFAIL:
        op->rc = rows ? 0 : 1;
        if (rows) op->status = ORDER_PAYMENT_FAILED;
        take_levels(op, r, 1);
        break;
    case STORE_REJECT:
        op->rc = rows ? 0 : 1;
        if (rows) op->status = ORDER_REJECTED;
        break;
    case STORE_SET_STOCK:
        op->rc = 0;
        take_levels(op, r, 0);
        break;
    default:
        op->rc = 0;
    }
}

static int pg_apply(store_t *st, store_op_t **ops, size_t n, char *err, size_t errsz)
{
    pg_store_t *q = (pg_store_t *)st;
    if (PQstatus(q->w) != CONNECTION_OK) {
        PQreset(q->w);
        if (PQstatus(q->w) != CONNECTION_OK || writer_setup(q, err, errsz) < 0) {
            one_line(err, errsz, "reconnect", PQerrorMessage(q->w));
            for (size_t i = 0; i < n; i++) ops[i]->rc = -EIO;
            return -EIO;
        }
    }
    params_t p;
    memset(&p, 0, sizeof p);
    weft_buf_init(&p.a, 0);
    weft_buf_init(&p.b, 0);
    weft_buf_init(&p.c, 0);
    int rc = PQsendQueryParams(q->w, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) ? 0 : -EIO;
    for (size_t i = 0; i < n && rc == 0; i++) {
        ops[i]->dup_id[0] = 0;
        ops[i]->dup_same = false;
        ops[i]->fenced = false;
        if (ops[i]->ord) ops[i]->status = ops[i]->ord->status;
        store_levels_clear(ops[i]);
        rc = send_op(q, ops[i], &p);
    }
    if (rc == 0) rc = PQsendQueryParams(q->w, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ? 0 : -EIO;
    if (!PQpipelineSync(q->w)) rc = -EIO;
    weft_buf_free(&p.a);
    weft_buf_free(&p.b);
    weft_buf_free(&p.c);
    if (rc < 0) one_line(err, errsz, "send", PQerrorMessage(q->w));
    /* Read every result up to the Sync: BEGIN, n operations, COMMIT. */
    size_t idx = 0; /* 0: BEGIN, 1..n: ops, n+1: COMMIT */
    bool synced = false, failed = rc < 0;
    while (!synced) {
        PGresult *r = PQgetResult(q->w);
        if (!r) {
            /* end of one query's results; a NULL with nothing pending means the connection
             * died */
            if (PQstatus(q->w) != CONNECTION_OK) {
                if (!failed) one_line(err, errsz, "connection lost", PQerrorMessage(q->w));
                failed = true;
                break;
            }
            idx++;
            continue;
        }
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_PIPELINE_SYNC) {
            synced = true;
        } else if (s == PGRES_FATAL_ERROR || s == PGRES_PIPELINE_ABORTED) {
            if (!failed && s == PGRES_FATAL_ERROR)
                one_line(err, errsz, "batch", PQresultErrorMessage(r));
            failed = true;
        } else if (idx >= 1 && idx <= n && !failed) {
            take_result(ops[idx - 1], r);
        }
        PQclear(r);
    }
    if (failed) {
        if (PQstatus(q->w) == CONNECTION_OK) {
            /* An explicit transaction stays open and aborted past the Sync: end it. */
            PQsendQueryParams(q->w, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
            PQpipelineSync(q->w);
            for (;;) {
                PGresult *r = PQgetResult(q->w);
                if (!r) {
                    if (PQstatus(q->w) != CONNECTION_OK) break;
                    continue;
                }
                int done = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
                PQclear(r);
                if (done) break;
            }
        }
        for (size_t i = 0; i < n; i++) ops[i]->rc = -EIO;
        return -EIO;
    }
    for (size_t i = 0; i < n; i++)
        if (ops[i]->rc < 0) {
            one_line(err, errsz, "batch", "an operation returned no row");
            return -EIO; /* committed, but an op's result was lost: impossible by design */
        }
    return 0;
}

/* ---- reads ---- */

static int pg_read(pg_store_t *q, const char *sql, int nparams, const char *const *params,
                   int (*cb)(void *, int, char **), void *arg, char *err, size_t errsz)
{
    pthread_mutex_lock(&q->rd_mu);
    if (PQstatus(q->r) != CONNECTION_OK) PQreset(q->r);
    PGresult *r = PQexecParams(q->r, sql, nparams, NULL, params, NULL, NULL, 0);
    int ret = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        if (err) one_line(err, errsz, "query", PQerrorMessage(q->r));
        ret = -EIO;
    } else {
        int rows = PQntuples(r), cols = PQnfields(r);
        char *c[32];
        if (cols > 32) cols = 32;
        for (int i = 0; i < rows && ret == 0; i++) {
            for (int j = 0; j < cols; j++) c[j] = PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
            ret = cb(arg, cols, c);
        }
    }
    PQclear(r);
    pthread_mutex_unlock(&q->rd_mu);
    return ret;
}

static int order_row(void *arg, int n, char **c)
{
    return store_order_json(arg, c) < 0 ? -ENOMEM : 1;
}

static int pg_get_order(store_t *st, const char *id, weft_buf_t *out)
{
    int rc = pg_read((pg_store_t *)st, "SELECT " STORE_ORDER_COLS " FROM orders WHERE id = $1", 1,
                     &id, order_row, out, NULL, 0);
    return rc == 1 ? 0 : rc == 0 ? -ENOENT : rc;
}

static int pg_get_stock(store_t *st, const char *sku, int64_t *available, int64_t *reserved)
{
    store_stock_out_t o = {0, 0};
    int rc = pg_read((pg_store_t *)st, "SELECT available, reserved FROM stock WHERE sku = $1", 1,
                     &sku, store_stock_row, &o, NULL, 0);
    *available = o.a;
    *reserved = o.r;
    return rc == 1 ? 0 : rc == 0 ? -ENOENT : rc;
}

static int pg_load_pending(store_t *st, int (*cb)(void *, store_order_t *), void *arg)
{
    store_pend_t p = {cb, arg};
    return pg_read((pg_store_t *)st, STORE_PENDING_SQL, 0, NULL, store_pending_row, &p, NULL, 0);
}

static int pg_query(store_t *st, const char *sql, int (*cb)(void *, int, char **), void *arg,
                    char *err, size_t errsz)
{
    return pg_read((pg_store_t *)st, sql, 0, NULL, cb, arg, err, errsz);
}

static int one_row(void *arg, int n, char **c)
{
    return 1;
}

static int pg_ping(store_t *st)
{
    return pg_read((pg_store_t *)st, "SELECT 1", 0, NULL, one_row, NULL, NULL, 0) == 1 ? 0 : -EIO;
}

static void pg_close(store_t *st)
{
    pg_store_t *q = (pg_store_t *)st;
    if (q->w) PQfinish(q->w);
    if (q->r) PQfinish(q->r);
    pthread_mutex_destroy(&q->rd_mu);
    free(q->url);
    free(q);
}

static const store_vt_t pg_vt = {
    .kind = "postgresql",
    .apply = pg_apply,
    .get_order = pg_get_order,
    .get_stock = pg_get_stock,
    .load_pending = pg_load_pending,
    .query = pg_query,
    .ping = pg_ping,
    .close = pg_close,
};

static bool has_stock_ver(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT 1 FROM pg_attribute WHERE attrelid = 'stock'::regclass AND "
                            "attname = 'ver' AND NOT attisdropped");
    bool has = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
    PQclear(r);
    return has;
}

int store_pg_open(const char *url, store_t **out, char *err, size_t errsz)
{
    *out = NULL;
    pg_store_t *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    q->base.vt = &pg_vt;
    pthread_mutex_init(&q->rd_mu, NULL);
    q->url = strdup(url);
    int rc = q->url ? connect_one(url, &q->w, err, errsz) : -ENOMEM;
    /* Concurrent engines, audits and logistics workers may all create the schema at once. */
    if (rc == 0) rc = exec_simple(q->w, "SELECT pg_advisory_lock(7220411)", err, errsz);
    for (int i = 0; rc == 0 && store_schema[i]; i++)
        rc = exec_simple(q->w, store_schema[i], err, errsz);
    /* Only when missing: ALTER TABLE takes an exclusive lock on stock even when it changes
     * nothing, which would stall the running engines' commits at every audit's start. */
    if (rc == 0 && !has_stock_ver(q->w)) rc = exec_simple(q->w, STORE_STOCK_VER_SQL, err, errsz);
    if (q->w) exec_simple(q->w, "SELECT pg_advisory_unlock(7220411)", NULL, 0);
    if (rc == 0) rc = writer_setup(q, err, errsz);
    if (rc == 0) rc = connect_one(url, &q->r, err, errsz);
    if (rc < 0) {
        pg_close(&q->base);
        return rc;
    }
    *out = &q->base;
    return 0;
}
