/* The SQLite backend of the order store (store.h): the embedded default, `sqlite:PATH`.
 *
 * DESIGN
 * Two connections to one file in WAL mode: the writer's (used only by the engine's writer
 * thread, through store_apply) and a reader (any thread, under rd_mu), so reads never wait for a
 * group commit and never see a half-applied batch. synchronous=FULL: a commit returns only once
 * the WAL is on disk, because the engine acknowledges 201 right after it. One batch is one
 * BEGIN IMMEDIATE ... COMMIT; each reserve runs inside a SAVEPOINT so an order that finds one of
 * its SKUs short rolls back its own earlier items, not the batch. busy_timeout covers the
 * logistics worker, the only other writer (it marks orders shipped when Redis is used).
 * Statements are prepared once per connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orders/store_int.h"

/* A stock row's next version: one more than its last, and at least the clock in microseconds
 * (as in store_pg.c: a new database under an old Redis starts above its versions). */
#define SQ_NOW_US "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
#define SQ_NEXT_VER "max(ver + 1, " SQ_NOW_US ")"

enum {
    S_INSERT,
    S_FIND_KEY,
    S_SET_STATUS, /* status=?1, reason=?2, completed_ms=?3, stages=?4, updated_ms=?5 WHERE id=?6
                     AND status=?7 */
    S_TAKE,       /* stock -qty +reserved WHERE sku AND available >= qty; returns the level */
    S_GIVE,       /* stock +qty -reserved; returns the level */
    S_MOVE,       /* INSERT stock_moves ... ON CONFLICT DO NOTHING */
    S_AVAIL,
    S_UPSERT_STOCK,
    S_STOCK_SET,
    S_SHIPMENT,
    S_TAKE_FENCED, /* as S_TAKE, only if fence < ?3, storing ?3; returns the level */
    S_FENCE,
    S_NSTMT
};

static const char *const stmt_sql[S_NSTMT] = {
    [S_INSERT] =
        "INSERT INTO orders(id, idem_key, body_hash, user_id, items, amount_cents, "
        "payment_token, status, created_ms, stages, updated_ms) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7,'accepted',?8,?9,?8) ON CONFLICT(idem_key) DO NOTHING",
    [S_FIND_KEY] = "SELECT id, body_hash FROM orders WHERE idem_key = ?1",
    [S_SET_STATUS] = "UPDATE orders SET status=?1, reason=?2, completed_ms=?3, stages=?4, "
                     "updated_ms=?5 WHERE id=?6 AND status=?7",
    [S_TAKE] = "UPDATE stock SET available = available - ?1, reserved = reserved + ?1, "
               "ver = " SQ_NEXT_VER " WHERE sku = ?2 AND available >= ?1 RETURNING available, ver",
    [S_GIVE] = "UPDATE stock SET available = available + ?1, reserved = reserved - ?1, "
               "ver = " SQ_NEXT_VER " WHERE sku = ?2 RETURNING available, ver",
    [S_MOVE] = "INSERT INTO stock_moves(order_id, sku, kind, qty) VALUES(?1,?2,?3,?4) "
               "ON CONFLICT DO NOTHING",
    [S_AVAIL] = "SELECT available FROM stock WHERE sku = ?1",
    [S_UPSERT_STOCK] =
        "INSERT INTO stock(sku, available, reserved, ver) VALUES(?1, ?2, 0, " SQ_NOW_US ") "
        "ON CONFLICT(sku) DO UPDATE SET available = excluded.available, "
        "ver = " SQ_NEXT_VER " RETURNING available, ver",
    [S_STOCK_SET] = "INSERT INTO stock_sets(sku, qty, at_ms, delta) VALUES(?1,?2,?3,?4)",
    [S_SHIPMENT] = "INSERT INTO shipments(order_id, applied_ms) VALUES(?1,?2) "
                   "ON CONFLICT DO NOTHING",
    [S_TAKE_FENCED] = "UPDATE stock SET available = available - ?1, reserved = reserved + ?1, "
                      "fence = ?3, ver = " SQ_NEXT_VER " WHERE sku = ?2 AND available >= ?1 AND "
                      "fence < ?3 RETURNING available, ver",
    [S_FENCE] = "SELECT fence FROM stock WHERE sku = ?1",
};

typedef struct sq_store {
    store_t base;
    sqlite3 *w; /* writer thread only */
    sqlite3_stmt *st[S_NSTMT];
    pthread_mutex_t rd_mu;
    sqlite3 *r; /* under rd_mu */
} sq_store_t;

static int sq_err(sqlite3 *db, char *err, size_t errsz, const char *what)
{
    if (err) snprintf(err, errsz, "sqlite: %s: %s", what, sqlite3_errmsg(db));
    return -EIO;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errsz)
{
    char *m = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &m) == SQLITE_OK) return 0;
    if (err) snprintf(err, errsz, "sqlite: %s", m ? m : sqlite3_errmsg(db));
    sqlite3_free(m);
    return -EIO;
}

static int open_conn(const char *path, sqlite3 **db, char *err, size_t errsz)
{
    int rc = sqlite3_open_v2(
        path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errsz, "sqlite: cannot open '%s': %s", path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close(*db);
        *db = NULL;
        return -EIO;
    }
    sqlite3_busy_timeout(*db, 10000);
    return exec(*db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF",
                err, errsz);
}

/* Binds text (NULL -> SQL NULL), int64, in order; 't' text, 'i' int64, 'n' null. */
static void bind(sqlite3_stmt *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_reset(s);
    for (int i = 1; *fmt; fmt++, i++) {
        if (*fmt == 't') {
            const char *v = va_arg(ap, const char *);
            if (v)
                sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(s, i);
        } else if (*fmt == 'i') {
            sqlite3_bind_int64(s, i, va_arg(ap, int64_t));
        } else { /* 'n': SQL NULL, its argument (an int64) ignored */
            (void)va_arg(ap, int64_t);
            sqlite3_bind_null(s, i);
        }
    }
    va_end(ap);
}

/* Steps a bound statement that returns no row; returns sqlite3_changes or -EIO. */
static int run(sq_store_t *q, int id, char *err, size_t errsz)
{
    int rc = sqlite3_step(q->st[id]);
    sqlite3_reset(q->st[id]);
    if (rc != SQLITE_DONE) return sq_err(q->w, err, errsz, stmt_sql[id]);
    return sqlite3_changes(q->w);
}

/* Steps a bound stock write with RETURNING available, ver: stores the level (if `lv`) and
 * returns 1 when a row was written, 0 when none, or -EIO. */
static int run_level(sq_store_t *q, int id, store_level_t *lv, char *err, size_t errsz)
{
    sqlite3_stmt *s = q->st[id];
    int rc = sqlite3_step(s), n = 0;
    for (; rc == SQLITE_ROW; rc = sqlite3_step(s), n++)
        if (lv) *lv = (store_level_t){sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1)};
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return sq_err(q->w, err, errsz, stmt_sql[id]);
    return n > 0;
}

static int set_status(sq_store_t *q, store_order_t *o, order_status_t to, order_status_t from,
                      const char *reason, int64_t completed, char *err, size_t errsz)
{
    int64_t now = (int64_t)order_wall_ms();
    bind(q->st[S_SET_STATUS], completed ? "ttititt" : "ttntitt", order_status_name(to), reason,
         completed, o->stages, now, o->id, order_status_name(from));
    return run(q, S_SET_STATUS, err, errsz);
}

static int op_create(sq_store_t *q, store_op_t *op, char *err, size_t errsz)
{
    store_order_t *o = op->ord;
    weft_buf_t items;
    weft_buf_init(&items, 0);
    if (order_items_json(o->req.items, o->req.nitems, &items) < 0) return -ENOMEM;
    char hash[17];
    snprintf(hash, sizeof hash, "%016" PRIx64, o->body_hash);
    bind(q->st[S_INSERT], "tttttitit", o->id, o->idem_key, hash, o->req.user, items.data,
         o->req.amount_cents, o->req.payment_token, (int64_t)o->created_ms, o->stages);
    int rc = run(q, S_INSERT, err, errsz);
    weft_buf_free(&items);
    if (rc < 0) return rc;
    if (rc == 1) {
        op->status = ORDER_ACCEPTED;
        return 0;
    }
    sqlite3_stmt *s = q->st[S_FIND_KEY];
    bind(s, "t", o->idem_key);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        return sq_err(q->w, err, errsz, "find idempotency key");
    }
    snprintf(op->dup_id, sizeof op->dup_id, "%s", (const char *)sqlite3_column_text(s, 0));
    op->dup_same = strcmp((const char *)sqlite3_column_text(s, 1), hash) == 0;
    sqlite3_reset(s);
    return 1;
}

static int op_reserve(sq_store_t *q, store_op_t *op, char *err, size_t errsz)
{
    store_order_t *o = op->ord;
    int rc;
    if ((rc = exec(q->w, "SAVEPOINT r", err, errsz)) < 0) return rc;
    rc = set_status(q, o, ORDER_RESERVED, ORDER_ACCEPTED, NULL, 0, err, errsz);
    if (rc <= 0) goto done; /* error, or not 'accepted' any more: applied before */
    for (size_t i = 0; i < o->req.nitems; i++) {
        order_item_t *it = &o->req.items[i];
        int take = op->fences ? S_TAKE_FENCED : S_TAKE;
        if (op->fences)
            bind(q->st[take], "iti", it->qty, it->sku, op->fences[i]);
        else
            bind(q->st[take], "it", it->qty, it->sku);
        if ((rc = run_level(q, take, op->levels ? &op->levels[i] : NULL, err, errsz)) < 0)
            goto done;
        if (rc == 0 && op->fences) {
            sqlite3_stmt *s = q->st[S_FENCE];
            bind(s, "t", it->sku);
            bool stale =
                sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) >= op->fences[i];
            sqlite3_reset(s);
            if (stale) { /* a newer lock holder wrote: nothing of this order is applied */
                op->fenced = true;
                store_levels_clear(op);
                if ((rc = exec(q->w, "ROLLBACK TO r", err, errsz)) < 0) goto done;
                rc = 0; /* -> "nothing to do", status kept */
                goto done;
            }
        }
        if (rc == 0) {
            sqlite3_stmt *s = q->st[S_AVAIL];
            bind(s, "t", it->sku);
            if (sqlite3_step(s) == SQLITE_ROW)
                snprintf(o->reason, sizeof o->reason, "out of stock: %.128s (%lld available)",
                         it->sku, (long long)sqlite3_column_int64(s, 0));
            else
                snprintf(o->reason, sizeof o->reason, "unknown sku: %.128s", it->sku);
            sqlite3_reset(s);
            store_levels_clear(op); /* the items taken before are given back */
            if ((rc = exec(q->w, "ROLLBACK TO r", err, errsz)) < 0) goto done;
            rc = set_status(q, o, ORDER_REJECTED, ORDER_ACCEPTED, o->reason,
                            (int64_t)order_wall_ms(), err, errsz);
            if (rc > 0) op->status = ORDER_REJECTED;
            goto done;
        }
        bind(q->st[S_MOVE], "ttti", o->id, it->sku, "reserve", it->qty);
        if ((rc = run(q, S_MOVE, err, errsz)) < 0) goto done;
    }
    op->status = ORDER_RESERVED;
    rc = 1;
done:
    if (rc < 0) {
        exec(q->w, "ROLLBACK TO r", NULL, 0);
        exec(q->w, "RELEASE r", NULL, 0);
        return rc;
    }
    int r2 = exec(q->w, "RELEASE r", err, errsz);
    if (r2 < 0) return r2;
    return rc > 0 ? 0 : 1;
}

static int op_payfail(sq_store_t *q, store_op_t *op, char *err, size_t errsz)
{
    store_order_t *o = op->ord;
    int rc = set_status(q, o, ORDER_PAYMENT_FAILED, ORDER_RESERVED, o->reason,
                        (int64_t)order_wall_ms(), err, errsz);
    if (rc <= 0) return rc < 0 ? rc : 1;
    for (size_t i = 0; i < o->req.nitems; i++) {
        order_item_t *it = &o->req.items[i];
        bind(q->st[S_MOVE], "ttti", o->id, it->sku, "release", it->qty);
        if ((rc = run(q, S_MOVE, err, errsz)) < 0) return rc;
        if (rc == 0) continue; /* released before: the ledger says so */
        bind(q->st[S_GIVE], "it", it->qty, it->sku);
        if ((rc = run_level(q, S_GIVE, op->levels ? &op->levels[i] : NULL, err, errsz)) < 0)
            return rc;
    }
    op->status = ORDER_PAYMENT_FAILED;
    return 0;
}

static int op_ship(sq_store_t *q, store_op_t *op, char *err, size_t errsz)
{
    store_order_t *o = op->ord;
    int64_t now = (int64_t)order_wall_ms();
    bind(q->st[S_SHIPMENT], "ti", o->id, now);
    int rc = run(q, S_SHIPMENT, err, errsz);
    if (rc < 0) return rc;
    rc = set_status(q, o, ORDER_SHIPPED, ORDER_PAID, NULL, now, err, errsz);
    if (rc < 0) return rc;
    if (rc > 0) op->status = ORDER_SHIPPED;
    return rc > 0 ? 0 : 1;
}

static int op_set_stock(sq_store_t *q, store_op_t *op, char *err, size_t errsz)
{
    sqlite3_stmt *s = q->st[S_AVAIL];
    bind(s, "t", op->sku);
    int64_t old = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    bind(q->st[S_UPSERT_STOCK], "ti", op->sku, op->qty);
    int rc = run_level(q, S_UPSERT_STOCK, op->levels, err, errsz);
    if (rc < 0) return rc;
    bind(q->st[S_STOCK_SET], "tiii", op->sku, op->qty, (int64_t)order_wall_ms(), op->qty - old);
    rc = run(q, S_STOCK_SET, err, errsz);
    return rc < 0 ? rc : 0;
}

static int sq_apply(store_t *st, store_op_t **ops, size_t n, char *err, size_t errsz)
{
    sq_store_t *q = (sq_store_t *)st;
    int rc = exec(q->w, "BEGIN IMMEDIATE", err, errsz);
    for (size_t i = 0; i < n && rc == 0; i++) {
        store_op_t *op = ops[i];
        op->dup_id[0] = 0;
        op->dup_same = false;
        op->fenced = false;
        if (op->ord) op->status = op->ord->status;
        store_levels_clear(op);
        int r;
        switch (op->kind) {
        case STORE_CREATE:
            r = op_create(q, op, err, errsz);
            break;
        case STORE_RESERVE:
            r = op_reserve(q, op, err, errsz);
            break;
        case STORE_PAID:
            r = set_status(q, op->ord, ORDER_PAID, ORDER_RESERVED, NULL, 0, err, errsz);
            if (r >= 0) {
                if (r > 0) op->status = ORDER_PAID;
                r = r > 0 ? 0 : 1;
            }
            break;
        case STORE_PAID_SHIP:
            r = set_status(q, op->ord, ORDER_PAID, ORDER_RESERVED, NULL, 0, err, errsz);
            if (r > 0) {
                op->status = ORDER_PAID;
                r = op_ship(q, op, err, errsz);
            } else if (r == 0) {
                r = 1;
            }
            break;
        case STORE_PAYFAIL:
            r = op_payfail(q, op, err, errsz);
            break;
        case STORE_SHIP:
            r = op_ship(q, op, err, errsz);
            break;
        case STORE_SET_STOCK:
            r = op_set_stock(q, op, err, errsz);
            break;
        case STORE_REJECT:
            r = set_status(q, op->ord, ORDER_REJECTED, ORDER_ACCEPTED, op->ord->reason,
                           (int64_t)order_wall_ms(), err, errsz);
            if (r >= 0) {
                if (r > 0) op->status = ORDER_REJECTED;
                r = r > 0 ? 0 : 1;
            }
            break;
        default:
            r = -EINVAL;
        }
        op->rc = r;
        if (r < 0) rc = r;
    }
    if (rc == 0) rc = exec(q->w, "COMMIT", err, errsz);
    if (rc < 0) {
        exec(q->w, "ROLLBACK", NULL, 0);
        for (size_t i = 0; i < n; i++) ops[i]->rc = rc;
    }
    return rc;
}

/* ---- reads ---- */

typedef struct rows {
    int (*cb)(void *, int, char **);
    void *arg;
    int stop;
} rows_t;

static int query_locked(sq_store_t *q, const char *sql, const char *param,
                        int (*cb)(void *, int, char **), void *arg, char *err, size_t errsz)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(q->r, sql, -1, &s, NULL) != SQLITE_OK)
        return sq_err(q->r, err, errsz, "prepare");
    if (param) sqlite3_bind_text(s, 1, param, -1, SQLITE_STATIC);
    int n = sqlite3_column_count(s), rc, ret = 0;
    char *cols[32];
    if (n > 32) n = 32;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) cols[i] = (char *)sqlite3_column_text(s, i);
        if ((ret = cb(arg, n, cols)) != 0) break;
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = sq_err(q->r, err, errsz, "query");
    sqlite3_finalize(s);
    return ret;
}

static int sq_read(sq_store_t *q, const char *sql, const char *param,
                   int (*cb)(void *, int, char **), void *arg, char *err, size_t errsz)
{
    pthread_mutex_lock(&q->rd_mu);
    int rc = query_locked(q, sql, param, cb, arg, err, errsz);
    pthread_mutex_unlock(&q->rd_mu);
    return rc;
}

static int order_row(void *arg, int n, char **c)
{
    return store_order_json(arg, c) < 0 ? -ENOMEM : 1;
}

static int sq_get_order(store_t *st, const char *id, weft_buf_t *out)
{
    int rc = sq_read((sq_store_t *)st, "SELECT " STORE_ORDER_COLS " FROM orders WHERE id = ?1", id,
                     order_row, out, NULL, 0);
    return rc == 1 ? 0 : rc == 0 ? -ENOENT : rc;
}

static int sq_get_stock(store_t *st, const char *sku, int64_t *available, int64_t *reserved)
{
    store_stock_out_t o = {0, 0};
    int rc = sq_read((sq_store_t *)st, "SELECT available, reserved FROM stock WHERE sku = ?1", sku,
                     store_stock_row, &o, NULL, 0);
    *available = o.a;
    *reserved = o.r;
    return rc == 1 ? 0 : rc == 0 ? -ENOENT : rc;
}

static int sq_load_pending(store_t *st, int (*cb)(void *, store_order_t *), void *arg)
{
    store_pend_t p = {cb, arg};
    return sq_read((sq_store_t *)st, STORE_PENDING_SQL, NULL, store_pending_row, &p, NULL, 0);
}

static int sq_query(store_t *st, const char *sql, int (*cb)(void *, int, char **), void *arg,
                    char *err, size_t errsz)
{
    return sq_read((sq_store_t *)st, sql, NULL, cb, arg, err, errsz);
}

static int one_row(void *arg, int n, char **c)
{
    return 1;
}

static int sq_ping(store_t *st)
{
    return sq_read((sq_store_t *)st, "SELECT 1", NULL, one_row, NULL, NULL, 0) == 1 ? 0 : -EIO;
}

static void sq_close(store_t *st)
{
    sq_store_t *q = (sq_store_t *)st;
    for (int i = 0; i < S_NSTMT; i++) sqlite3_finalize(q->st[i]);
    sqlite3_close(q->w);
    sqlite3_close(q->r);
    pthread_mutex_destroy(&q->rd_mu);
    free(q);
}

static const store_vt_t sq_vt = {
    .kind = "sqlite",
    .apply = sq_apply,
    .get_order = sq_get_order,
    .get_stock = sq_get_stock,
    .load_pending = sq_load_pending,
    .query = sq_query,
    .ping = sq_ping,
    .close = sq_close,
};

static bool has_stock_ver(sqlite3 *db)
{
    sqlite3_stmt *s = NULL;
    bool has = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('stock') WHERE name = 'ver'",
                                  -1, &s, NULL) == SQLITE_OK &&
               sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return has;
}

int store_sqlite_open(const char *path, store_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (!*path) {
        snprintf(err, errsz, "sqlite: empty path (use sqlite:PATH)");
        return -EINVAL;
    }
    sq_store_t *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    q->base.vt = &sq_vt;
    pthread_mutex_init(&q->rd_mu, NULL);
    int rc = open_conn(path, &q->w, err, errsz);
    for (int i = 0; rc == 0 && store_schema[i]; i++) rc = exec(q->w, store_schema[i], err, errsz);
    if (rc == 0 && !has_stock_ver(q->w)) rc = exec(q->w, STORE_STOCK_VER_SQL, err, errsz);
    if (rc == 0) rc = open_conn(path, &q->r, err, errsz);
    for (int i = 0; rc == 0 && i < S_NSTMT; i++)
        if (sqlite3_prepare_v3(q->w, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL) !=
            SQLITE_OK)
            rc = sq_err(q->w, err, errsz, "prepare");
    if (rc < 0) {
        sq_close(&q->base);
        return rc;
    }
    *out = &q->base;
    return 0;
}
