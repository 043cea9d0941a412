/* The logistics worker's shipment statements on SQLite and PostgreSQL (logistics.h).
 *
 * DESIGN
 * SQLite: its own connection in WAL mode, synchronous=FULL, a fine-grained busy handler (the
 * engine's writer holds the write lock for a group commit at a time), and per batch BEGIN
 * IMMEDIATE, three prepared statements per id, COMMIT: local calls, so per-row statements cost
 * microseconds. PostgreSQL: one statement per batch (one round trip, one implicit transaction): the
 * ids go as one text[] parameter, the orders are locked in id order (FOR UPDATE ... ORDER BY id, so
 * two workers whose batches overlap cannot deadlock), and data-modifying CTEs insert the shipments
 * and update the orders; the result lists each found order with its status before and whether
 * its shipment row is new. synchronous_commit is set on for the session: the worker XACKs the
 * stream entries right after the commit, so the commit must be durable first.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft/buf.h>

#include "orders/logistics.h"

struct ship_db {
    sqlite3 *sq;
    sqlite3_stmt *st_status, *st_insert, *st_update;
    PGconn *pg;
    weft_buf_t arr; /* the text[] literal of a PostgreSQL batch */
};

static const char PG_SHIP[] =
    "WITH o AS (SELECT id, status FROM orders WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE),"
    " ins AS (INSERT INTO shipments(order_id, applied_ms)"
    "   SELECT id, $2::bigint FROM o WHERE status IN ('paid', 'shipped')"
    "   ON CONFLICT DO NOTHING RETURNING order_id),"
    " upd AS (UPDATE orders SET status = 'shipped', completed_ms = $2::bigint,"
    "   updated_ms = $2::bigint WHERE id IN (SELECT id FROM o WHERE status = 'paid') RETURNING id)"
    " SELECT o.id, o.status, ins.order_id IS NOT NULL, (SELECT count(*) FROM upd)"
    "   FROM o LEFT JOIN ins ON ins.order_id = o.id"; /* a join, not EXISTS per row: n, not n^2 */

static int sq_fail(ship_db_t *db, char *err, size_t errsz, const char *what)
{
    snprintf(err, errsz, "sqlite: %s: %s", what, sqlite3_errmsg(db->sq));
    return -EIO;
}

/* SQLite's own busy timeout sleeps in steps growing to 100 ms, which left shipments waiting up to
 * a second behind the engine's back-to-back group commits; polling every 0.5 ms (for at most
 * 10 s) takes the write lock in the first gap between two commits. */
static int busy_wait(void *arg, int tries)
{
    (void)arg;
    if (tries >= 20000) return 0;
    struct timespec ts = {0, 500000};
    nanosleep(&ts, NULL);
    return 1;
}

static int open_sqlite(ship_db_t *db, const char *path, char *err, size_t errsz)
{
    /* CREATE: the worker may start before the engine made the file; it then waits for the schema
     * (-ENOENT below) in a file the engine will open. */
    if (sqlite3_open_v2(path, &db->sq,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return sq_fail(db, err, errsz, path);
    sqlite3_busy_handler(db->sq, busy_wait, NULL);
    char *m = NULL;
    if (sqlite3_exec(db->sq, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", NULL, NULL, &m) !=
        SQLITE_OK) {
        snprintf(err, errsz, "sqlite: %s: %s", path, m ? m : "cannot set WAL mode");
        sqlite3_free(m);
        return -EIO;
    }
    if (sqlite3_prepare_v2(db->sq, "SELECT status FROM orders WHERE id = ?1", -1, &db->st_status,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db->sq,
                           "INSERT INTO shipments(order_id, applied_ms) VALUES(?1, ?2) "
                           "ON CONFLICT DO NOTHING",
                           -1, &db->st_insert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db->sq,
                           "UPDATE orders SET status = 'shipped', completed_ms = ?2, "
                           "updated_ms = ?2 WHERE id = ?1 AND status = 'paid'",
                           -1, &db->st_update, NULL) != SQLITE_OK) {
        bool missing = strncmp(sqlite3_errmsg(db->sq), "no such table", 13) == 0;
        sq_fail(db, err, errsz, path);
        return missing ? -ENOENT : -EIO;
    }
    return 0;
}

static int open_pg(ship_db_t *db, const char *url, char *err, size_t errsz)
{
    db->pg = PQconnectdb(url);
    if (PQstatus(db->pg) != CONNECTION_OK) {
        snprintf(err, errsz, "postgresql: %s", PQerrorMessage(db->pg));
        err[strcspn(err, "\n")] = '\0';
        return -EIO;
    }
    PGresult *r = PQexec(db->pg, "SET synchronous_commit = on");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    r = PQprepare(db->pg, "ship", PG_SHIP, 2, NULL);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool missing = state && strcmp(state, "42P01") == 0; /* undefined_table */
    ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        snprintf(err, errsz, "postgresql: %s", PQerrorMessage(db->pg));
        err[strcspn(err, "\n")] = '\0';
        return missing ? -ENOENT : -EIO;
    }
    return 0;
}

int ship_db_open(const char *url, ship_db_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ship_db_t *db = calloc(1, sizeof *db);
    if (!db) return -ENOMEM;
    weft_buf_init(&db->arr, 0);
    int rc;
    if (strncmp(url, "sqlite:", 7) == 0) {
        rc = open_sqlite(db, url + 7, err, errsz);
    } else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        rc = open_pg(db, url, err, errsz);
    } else {
        snprintf(err, errsz, "unknown database URL '%s' (sqlite:PATH or postgresql://...)", url);
        rc = -EINVAL;
    }
    if (rc < 0) {
        ship_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

static int apply_sqlite(ship_db_t *db, const char *const *ids, size_t n, int64_t now_ms,
                        ship_result_t *res, char (*why)[64], char *err, size_t errsz)
{
    if (sqlite3_exec(db->sq, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(db, err, errsz, "begin");
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *s = db->st_status;
        sqlite3_bind_text(s, 1, ids[i], -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        char status[32] = "";
        if (rc == SQLITE_ROW)
            snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_reset(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto fail;
        if (strcmp(status, "paid") != 0 && strcmp(status, "shipped") != 0) {
            res[i] = SHIP_REFUSED;
            snprintf(why[i], sizeof why[i], rc == SQLITE_DONE ? "unknown order" : "order is %s",
                     status);
            continue;
        }
        sqlite3_bind_text(db->st_insert, 1, ids[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(db->st_insert, 2, now_ms);
        rc = sqlite3_step(db->st_insert);
        sqlite3_reset(db->st_insert);
        if (rc != SQLITE_DONE) goto fail;
        res[i] = sqlite3_changes(db->sq) ? SHIP_APPLIED : SHIP_DUPLICATE;
        sqlite3_bind_text(db->st_update, 1, ids[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(db->st_update, 2, now_ms);
        rc = sqlite3_step(db->st_update);
        sqlite3_reset(db->st_update);
        if (rc != SQLITE_DONE) goto fail;
    }
    if (sqlite3_exec(db->sq, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) return 0;
fail:
    sq_fail(db, err, errsz, "ship");
    sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
    return -EIO;
}

/* Appends `s` as one element of a PostgreSQL array literal: "..." with " and \ escaped. */
static int pg_array_elem(weft_buf_t *b, const char *s)
{
    int rc = weft_buf_append(b, b->len > 1 ? ",\"" : "\"", b->len > 1 ? 2 : 1);
    for (; rc == 0 && *s; s++) {
        if (*s == '"' || *s == '\\') rc = weft_buf_append(b, "\\", 1);
        if (rc == 0) rc = weft_buf_append(b, s, 1);
    }
    return rc ? rc : weft_buf_append(b, "\"", 1);
}

static int apply_pg(ship_db_t *db, const char *const *ids, size_t n, int64_t now_ms,
                    ship_result_t *res, char (*why)[64], char *err, size_t errsz)
{
    weft_buf_reset(&db->arr);
    int rc = weft_buf_append(&db->arr, "{", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) rc = pg_array_elem(&db->arr, ids[i]);
    if (rc == 0) rc = weft_buf_append(&db->arr, "}", 1);
    if (rc < 0) {
        snprintf(err, errsz, "out of memory");
        return -EIO;
    }
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *params[2] = {db->arr.data, now};
    PGresult *r = PQexecPrepared(db->pg, "ship", 2, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errsz, "postgresql: %s", PQerrorMessage(db->pg));
        err[strcspn(err, "\n")] = '\0';
        PQclear(r);
        return -EIO;
    }
    /* Rows come back for the orders found; an id without a row is unknown. */
    int rows = PQntuples(r);
    for (size_t i = 0; i < n; i++) {
        res[i] = SHIP_REFUSED;
        snprintf(why[i], sizeof why[i], "unknown order");
        for (int k = 0; k < rows; k++) {
            if (strcmp(PQgetvalue(r, k, 0), ids[i]) != 0) continue;
            const char *st = PQgetvalue(r, k, 1);
            if (strcmp(st, "paid") == 0 || strcmp(st, "shipped") == 0)
                res[i] = PQgetvalue(r, k, 2)[0] == 't' ? SHIP_APPLIED : SHIP_DUPLICATE;
            else
                snprintf(why[i], sizeof why[i], "order is %s", st);
            break;
        }
    }
    /* An id twice in one batch: the first is applied, the second a duplicate. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (res[i] == SHIP_APPLIED && strcmp(ids[i], ids[j]) == 0) res[i] = SHIP_DUPLICATE;
    PQclear(r);
    return 0;
}

int ship_db_apply(ship_db_t *db, const char *const *ids, size_t n, int64_t now_ms,
                  ship_result_t *res, char (*why)[64], char *err, size_t errsz)
{
    if (n == 0) return 0;
    if (db->sq) return apply_sqlite(db, ids, n, now_ms, res, why, err, errsz);
    return apply_pg(db, ids, n, now_ms, res, why, err, errsz);
}

int ship_db_ping(ship_db_t *db)
{
    if (db->sq) return sqlite3_exec(db->sq, "SELECT 1", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
    if (PQstatus(db->pg) != CONNECTION_OK) PQreset(db->pg);
    if (PQstatus(db->pg) != CONNECTION_OK) return -EIO;
    PGresult *r = PQexec(db->pg, "SELECT 1");
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -EIO;
    PQclear(r);
    if (rc == 0) { /* after a reset the session lost its prepared statement and setting */
        r = PQexec(db->pg, "SET synchronous_commit = on");
        PQclear(r);
        r = PQprepare(db->pg, "ship", PG_SHIP, 2, NULL);
        PQclear(r); /* fails harmlessly when it still exists */
    }
    return rc;
}

void ship_db_close(ship_db_t *db)
{
    if (!db) return;
    sqlite3_finalize(db->st_status);
    sqlite3_finalize(db->st_insert);
    sqlite3_finalize(db->st_update);
    if (db->sq) sqlite3_close(db->sq);
    if (db->pg) PQfinish(db->pg);
    weft_buf_free(&db->arr);
    free(db);
}
