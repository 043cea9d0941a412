/* The order record of `weft orders serve` and the parser of its JSON body (POST /orders).
 *
 * order_parse() validates untrusted input completely (fuzz/fuzz-orderjson.c drives it) and
 * names the first problem in a one-line message that the API returns as {"error": ...}.
 * Limits: body <= ORDER_MAX_BODY (the caller answers 413 past it), 1..ORDER_MAX_ITEMS items,
 * distinct SKUs of 1..ORDER_MAX_SKU bytes, 1 <= qty <= ORDER_MAX_QTY, 0 <= amount_cents,
 * user and payment_token strings of 1..ORDER_MAX_STR bytes.
 */
#ifndef WEFT_TOOLS_ORDERS_ORDER_H
#define WEFT_TOOLS_ORDERS_ORDER_H

#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>

#define ORDER_MAX_BODY (64 * 1024)
#define ORDER_MAX_ITEMS 100
#define ORDER_MAX_KEY 255
#define ORDER_MAX_SKU 128
#define ORDER_MAX_STR 255
#define ORDER_MAX_QTY 1000000
#define ORDER_ID_LEN 26 /* "o" + 12 hex digits of ms + 13 hex digits of randomness */

typedef struct order_item {
    char *sku; /* owned by the order_req_t */
    int64_t qty;
} order_item_t;

/* A parsed order: plain data, one owner at a time. */
typedef struct order_req {
    char *user;          /* owned */
    char *payment_token; /* owned */
    int64_t amount_cents;
    order_item_t *items; /* owned array of nitems */
    size_t nitems;
    uint64_t body_hash; /* hash of the canonical form: the same order in any spelling */
} order_req_t;

/* Parses and validates `len` bytes of JSON into *out (zeroed first). Returns 0, -EINVAL with a
 * message in err[errsz] (bad JSON or a bad field), or -ENOMEM. On failure *out holds nothing to
 * free. Ownership: borrows body; *out owned by the caller (order_req_free). Thread safety: any
 * thread. */
int order_parse(const char *body, size_t len, order_req_t *out, char *err, size_t errsz);

/* Frees what *r owns and zeroes it. NULL-safe. */
void order_req_free(order_req_t *r);

/* Appends the items as canonical JSON: [{"sku":"...","qty":N},...]. Returns 0 or -ENOMEM. */
int order_items_json(const order_item_t *items, size_t n, weft_buf_t *out);

/* Parses the canonical items JSON back (as stored in the database). Returns 0, -EINVAL or
 * -ENOMEM. Ownership: *items is an owned array; free with order_items_free. */
int order_items_parse(const char *json, order_item_t **items, size_t *n);
void order_items_free(order_item_t *items, size_t n);

/* Writes a new order id (ORDER_ID_LEN chars + NUL) into id: time-ordered and unique across
 * restarts with overwhelming probability (64 random bits per millisecond). Thread safety: any. */
void order_new_id(char id[ORDER_ID_LEN + 1]);

/* Wall-clock milliseconds since the epoch (the *_ms columns). Thread safety: any. */
uint64_t order_wall_ms(void);

/* Appends `s` as a JSON string literal (quotes included). Returns 0, -EMSGSIZE or -ENOMEM. */
int order_json_str(weft_buf_t *b, const char *s);

#endif
