/* The logistics worker's database side: the shipment of an order applied exactly once.
 *
 * One batch of order ids is one transaction. Per id: the order must exist with status `paid`
 * (or already `shipped`); then INSERT INTO shipments ... ON CONFLICT DO NOTHING (the primary key
 * on order_id is what makes the shipment happen once, whoever applies it how often) and
 * UPDATE orders SET status='shipped', completed_ms WHERE id AND status='paid'. An order that is
 * unknown or in another status is refused and changes nothing (the worker retries it and, after
 * too many deliveries, dead-letters it).
 *
 * NOTE for the lead: these statements are written here with sqlite3/libpq directly, not through
 * store.h: store_apply's STORE_SHIP needs the whole order (it rewrites the stages column) and
 * ships unknown ids, while the worker has only the id from the stream. Folding this into store.h
 * as a "ship by id" operation is the natural follow-up.
 */
#ifndef WEFT_TOOLS_ORDERS_LOGISTICS_H
#define WEFT_TOOLS_ORDERS_LOGISTICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ship_db ship_db_t;

typedef enum ship_result {
    SHIP_APPLIED,   /* this call inserted the shipment (and marked the order shipped) */
    SHIP_DUPLICATE, /* the shipment existed already: nothing changed */
    SHIP_REFUSED,   /* unknown order, or not paid: nothing changed; `why` says which */
} ship_result_t;

/* Opens "sqlite:PATH" (WAL, synchronous=FULL, a busy handler: the engine writes the same file) or
 * "postgresql://..." (synchronous_commit on). Returns 0, -EINVAL (unknown scheme), -ENOENT when
 * the orders or shipments table does not exist yet (`weft orders serve` creates them: retry), or
 * -EIO, each with a one-line message in err.
 * Ownership: returns owned; close with ship_db_close. Thread safety: one thread at a time. */
int ship_db_open(const char *url, ship_db_t **out, char *err, size_t errsz);

/* Applies the shipments of ids[0..n) in one transaction stamped now_ms, and fills res[i] and,
 * for refused ones, why[i]. Returns 0 once committed, or -EIO (nothing applied; err says why).
 * Ownership: borrows everything. Thread safety: one thread at a time per ship_db. */
int ship_db_apply(ship_db_t *db, const char *const *ids, size_t n, int64_t now_ms,
                  ship_result_t *res, char (*why)[64], char *err, size_t errsz);

/* 0 when the database answers, -EIO otherwise. */
int ship_db_ping(ship_db_t *db);

/* Closes the connection. NULL is ignored. Ownership: takes db. */
void ship_db_close(ship_db_t *db);

#endif
