/* The order JSON parser and the order's small value helpers (order.h).
 *
 * DESIGN
 * Parsing is jansson's (json_loadb with duplicate keys rejected); this file only checks shapes and
 * limits and copies what it keeps, so a parsed order owns a handful of small strings and no
 * jansson object outlives order_parse. Every error message names the field, in the words of the
 * API documentation, because clients read it. The body hash is over a canonical form (fields in
 * a fixed order, each length-prefixed), so whitespace or key order does not make "another body"
 * for idempotency, while any change of value does.
 */
#include "orders/order.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <weft/hash.h>
#include <weft/sys.h>

static int fail(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A string field of 1..max bytes without NUL (jansson allows \u0000). */
static int get_str(json_t *o, const char *name, size_t max, char **out, char *err, size_t errsz)
{
    json_t *v = json_object_get(o, name);
    if (!v) return fail(err, errsz, "missing field '%s'", name);
    if (!json_is_string(v)) return fail(err, errsz, "field '%s' must be a string", name);
    size_t n = json_string_length(v);
    if (n == 0) return fail(err, errsz, "field '%s' must not be empty", name);
    if (n > max) return fail(err, errsz, "field '%s' is longer than %zu bytes", name, max);
    const char *s = json_string_value(v);
    if (memchr(s, 0, n)) return fail(err, errsz, "field '%s' contains a NUL character", name);
    *out = strdup(s);
    return *out ? 0 : -ENOMEM;
}

static void hash_field(weft_buf_t *b, const char *s, size_t n)
{
    uint32_t l = (uint32_t)n;
    weft_buf_append(b, &l, sizeof l);
    weft_buf_append(b, s, n);
}

int order_parse(const char *body, size_t len, order_req_t *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof *out);
    if (len > ORDER_MAX_BODY) return fail(err, errsz, "body larger than %d bytes", ORDER_MAX_BODY);
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(err, errsz, "bad JSON at line %d column %d: %s", je.line, je.column, je.text);
    int rc = -EINVAL;
    order_req_t r = {0};
    if (!json_is_object(root)) {
        fail(err, errsz, "body must be a JSON object");
        goto out;
    }
    if ((rc = get_str(root, "user", ORDER_MAX_STR, &r.user, err, errsz)) < 0) goto out;
    if ((rc = get_str(root, "payment_token", ORDER_MAX_STR, &r.payment_token, err, errsz)) < 0)
        goto out;
    rc = -EINVAL;
    json_t *amount = json_object_get(root, "amount_cents");
    if (!amount) {
        fail(err, errsz, "missing field 'amount_cents'");
        goto out;
    }
    if (!json_is_integer(amount)) {
        fail(err, errsz, "field 'amount_cents' must be an integer");
        goto out;
    }
    r.amount_cents = json_integer_value(amount);
    if (r.amount_cents < 0) {
        fail(err, errsz, "field 'amount_cents' must be >= 0");
        goto out;
    }
    json_t *items = json_object_get(root, "items");
    if (!items) {
        fail(err, errsz, "missing field 'items'");
        goto out;
    }
    if (!json_is_array(items)) {
        fail(err, errsz, "field 'items' must be an array");
        goto out;
    }
    size_t n = json_array_size(items);
    if (n == 0) {
        fail(err, errsz, "field 'items' must not be empty");
        goto out;
    }
    if (n > ORDER_MAX_ITEMS) {
        fail(err, errsz, "field 'items' has %zu entries, more than %d", n, ORDER_MAX_ITEMS);
        goto out;
    }
    r.items = calloc(n, sizeof *r.items);
    if (!r.items) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        char pre[48];
        snprintf(pre, sizeof pre, "items[%zu]", i);
        if (!json_is_object(it)) {
            fail(err, errsz, "%s must be an object", pre);
            goto out;
        }
        json_t *sku = json_object_get(it, "sku"), *qty = json_object_get(it, "qty");
        if (!sku || !json_is_string(sku)) {
            fail(err, errsz, "%s.sku must be a string", pre);
            goto out;
        }
        size_t sl = json_string_length(sku);
        if (sl == 0 || sl > ORDER_MAX_SKU || memchr(json_string_value(sku), 0, sl)) {
            fail(err, errsz, "%s.sku must be 1..%d bytes without NUL", pre, ORDER_MAX_SKU);
            goto out;
        }
        if (!qty || !json_is_integer(qty)) {
            fail(err, errsz, "%s.qty must be an integer", pre);
            goto out;
        }
        int64_t q = json_integer_value(qty);
        if (q <= 0 || q > ORDER_MAX_QTY) {
            fail(err, errsz, "%s.qty must be 1..%d", pre, ORDER_MAX_QTY);
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(r.items[j].sku, json_string_value(sku)) == 0) {
                fail(err, errsz, "%s.sku '%s' repeats items[%zu]", pre, r.items[j].sku, j);
                goto out;
            }
        if (!(r.items[i].sku = strdup(json_string_value(sku)))) {
            rc = -ENOMEM;
            goto out;
        }
        r.items[i].qty = q;
        r.nitems = i + 1;
    }
    /* The canonical form for the idempotency check. */
    weft_buf_t b;
    weft_buf_init(&b, 0);
    hash_field(&b, r.user, strlen(r.user));
    hash_field(&b, r.payment_token, strlen(r.payment_token));
    weft_buf_append(&b, &r.amount_cents, sizeof r.amount_cents);
    for (size_t i = 0; i < r.nitems; i++) {
        hash_field(&b, r.items[i].sku, strlen(r.items[i].sku));
        weft_buf_append(&b, &r.items[i].qty, sizeof r.items[i].qty);
    }
    r.body_hash = weft_hash(b.data, b.len);
    weft_buf_free(&b);
    rc = 0;
out:
    json_decref(root);
    if (rc == 0)
        *out = r;
    else
        order_req_free(&r);
    return rc;
}

void order_items_free(order_item_t *items, size_t n)
{
    if (!items) return;
    for (size_t i = 0; i < n; i++) free(items[i].sku);
    free(items);
}

void order_req_free(order_req_t *r)
{
    if (!r) return;
    free(r->user);
    free(r->payment_token);
    order_items_free(r->items, r->nitems);
    memset(r, 0, sizeof *r);
}

int order_json_str(weft_buf_t *b, const char *s)
{
    json_t *j = json_string(s);
    if (!j) return -ENOMEM;
    char *d = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    if (!d) return -ENOMEM;
    int rc = weft_buf_append(b, d, strlen(d));
    free(d);
    return rc;
}

int order_items_json(const order_item_t *items, size_t n, weft_buf_t *out)
{
    int rc = weft_buf_append(out, "[", 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = weft_buf_printf(out, "%s{\"sku\":", i ? "," : "");
        if (rc == 0) rc = order_json_str(out, items[i].sku);
        if (rc == 0) rc = weft_buf_printf(out, ",\"qty\":%" PRId64 "}", items[i].qty);
    }
    if (rc == 0) rc = weft_buf_append(out, "]", 1);
    return rc;
}

int order_items_parse(const char *json, order_item_t **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    json_t *a = json_loads(json, 0, NULL);
    if (!a || !json_is_array(a) || json_array_size(a) == 0) {
        json_decref(a);
        return -EINVAL;
    }
    size_t k = json_array_size(a);
    order_item_t *v = calloc(k, sizeof *v);
    int rc = v ? 0 : -ENOMEM;
    for (size_t i = 0; i < k && rc == 0; i++) {
        json_t *it = json_array_get(a, i);
        const char *sku = json_string_value(json_object_get(it, "sku"));
        json_t *q = json_object_get(it, "qty");
        if (!sku || !json_is_integer(q)) {
            rc = -EINVAL;
            break;
        }
        if (!(v[i].sku = strdup(sku))) rc = -ENOMEM;
        v[i].qty = json_integer_value(q);
    }
    json_decref(a);
    if (rc < 0) {
        order_items_free(v, k);
        return rc;
    }
    *items = v;
    *n = k;
    return 0;
}

static _Thread_local uint64_t id_rng;

void order_new_id(char id[ORDER_ID_LEN + 1])
{
    if (!id_rng) {
        if (getrandom(&id_rng, sizeof id_rng, 0) != sizeof id_rng) id_rng = weft_now_ns();
        id_rng |= 1;
    }
    uint64_t r = weft_rand(&id_rng);
    snprintf(id, ORDER_ID_LEN + 1, "o%012" PRIx64 "%013" PRIx64,
             (uint64_t)(order_wall_ms() & 0xffffffffffffu), (uint64_t)(r & 0xfffffffffffffu));
}

uint64_t order_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
