/* libFuzzer target for the order JSON parser of `weft orders serve` (tools/orders/order.c): any
 * bytes must parse or fail cleanly with a message, never crash or leak; a parsed order must obey
 * the documented limits, and its items must round-trip through the stored canonical JSON. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orders/order.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    order_req_t r;
    char err[256];
    err[0] = 0;
    int rc = order_parse((const char *)data, size, &r, err, sizeof err);
    if (rc == -EINVAL && !err[0]) abort(); /* every rejection names its problem */
    if (rc < 0) return 0;
    if (r.nitems < 1 || r.nitems > ORDER_MAX_ITEMS || r.amount_cents < 0) abort();
    weft_buf_t b;
    weft_buf_init(&b, 0);
    if (order_items_json(r.items, r.nitems, &b) == 0) {
        order_item_t *it;
        size_t n;
        if (order_items_parse(b.data, &it, &n) != 0 || n != r.nitems) abort();
        for (size_t i = 0; i < n; i++)
            if (strcmp(it[i].sku, r.items[i].sku) || it[i].qty != r.items[i].qty) abort();
        order_items_free(it, n);
    }
    weft_buf_free(&b);
    order_req_free(&r);
    return 0;
}
