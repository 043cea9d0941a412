/* The payment client (pay.h): one POST per attempt on weft's loop HTTP client.
 *
 * DESIGN
 * Runs on the loop thread only. The Idempotency-Key is the order id, never a fresh value: the
 * provider dedupes by key, so however many attempts a timeout or a crash causes (a restarted
 * engine retries the same order with the same key), at most one capture exists per order. A
 * timeout is the dangerous case (the provider may have captured and the answer was lost); it is
 * retried like a 5xx, and the retry returns the first outcome. Only an explicit 402 is a decline.
 */
#include "orders/pay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orders/order.h"

typedef struct pay_call {
    pay_cb cb;
    void *arg;
} pay_call_t;

static void on_done(weft_http_t *h, weft_http_resp_t *resp, void *arg)
{
    pay_call_t *c = arg;
    char detail[300];
    pay_result_t r;
    if (resp->error == -ECANCELED) {
        r = PAY_CANCELED;
        snprintf(detail, sizeof detail, "canceled");
    } else if (resp->error) {
        r = PAY_RETRY;
        snprintf(detail, sizeof detail, "%s",
                 resp->error == -ETIMEDOUT ? "timeout"
                 : resp->errmsg[0]         ? resp->errmsg
                                           : "transport error");
    } else {
        long s = resp->status;
        snprintf(detail, sizeof detail, "HTTP %ld", s);
        if (s == 200)
            r = PAY_CAPTURED;
        else if (s == 402)
            r = PAY_DECLINED;
        else if (s >= 500 || s == 408 || s == 429)
            r = PAY_RETRY;
        else
            r = PAY_REFUSED;
    }
    c->cb(c->arg, r, detail);
    free(c);
}

int pay_start(weft_loop_t *loop, const char *base_url, const char *order_id, int64_t amount_cents,
              const char *token, uint32_t timeout_ms, pay_cb cb, void *arg)
{
    pay_call_t *c = malloc(sizeof *c);
    if (!c) return -ENOMEM;
    c->cb = cb;
    c->arg = arg;
    weft_buf_t url, body;
    weft_buf_init(&url, 4096);
    weft_buf_init(&body, 0);
    char key[ORDER_ID_LEN + 64];
    snprintf(key, sizeof key, "Idempotency-Key: %s", order_id);
    const char *headers[] = {key, "Content-Type: application/json", "Expect:", NULL};
    int rc = weft_buf_printf(&url, "%s/pay", base_url);
    if (!rc) rc = weft_buf_append(&body, "{\"order_id\":", 12);
    if (!rc) rc = order_json_str(&body, order_id);
    if (!rc) rc = weft_buf_printf(&body, ",\"amount_cents\":%" PRId64 ",\"token\":", amount_cents);
    if (!rc) rc = order_json_str(&body, token);
    if (!rc) rc = weft_buf_append(&body, "}", 1);
    if (!rc) {
        weft_http_opts_t o = {
            .url = url.data,
            .connect_timeout_ms = timeout_ms,
            .timeout_ms = timeout_ms,
            .max_redirects = -1,
            .max_body = 4096,
            .post_body = body.data,
            .post_len = body.len,
            .headers = headers,
        };
        rc = weft_http_start(loop, &o, on_done, c, NULL);
    }
    weft_buf_free(&url);
    weft_buf_free(&body);
    if (rc < 0) free(c);
    return rc < 0 ? (rc == -EMSGSIZE ? -EINVAL : rc) : 0;
}
