/* The payment client of `weft orders serve`: POST {base}/pay on the event loop (weft/http.h),
 * with the order id as Idempotency-Key, so a retry can never capture twice. */
#ifndef WEFT_TOOLS_ORDERS_PAY_H
#define WEFT_TOOLS_ORDERS_PAY_H

#include <stdint.h>
#include <weft/http.h>
#include <weft/loop.h>

typedef enum pay_result {
    PAY_CAPTURED, /* 200: captured (now or by an earlier attempt with this key) */
    PAY_DECLINED, /* 402: final */
    PAY_RETRY,    /* timeout, connection error, 5xx, 408, 429: retry with the same key */
    PAY_REFUSED,  /* another 4xx: the request itself is wrong; final, nothing captured */
    PAY_CANCELED, /* the loop is going away */
} pay_result_t;

/* detail: "HTTP 503", "timeout", ... for the order's reason and the logs. */
typedef void (*pay_cb)(void *arg, pay_result_t r, const char *detail);

/* Starts one attempt. Returns 0 (cb runs exactly once, later, on the loop thread), or -ENOMEM /
 * -EINVAL (cb never called). Ownership: strings are copied. Thread safety: loop thread only. */
int pay_start(weft_loop_t *loop, const char *base_url, const char *order_id, int64_t amount_cents,
              const char *token, uint32_t timeout_ms, pay_cb cb, void *arg);

#endif
