/* The payment mock: the order engine's "third party" payment API, on libmicrohttpd.
 *
 * `weft orders payment-mock` runs it as a separate process; `weft orders serve` without
 * --payment embeds it with orders_mock_start(). The HTTP API (docs/orders.md):
 *   POST /pay   header Idempotency-Key (1..255 bytes), JSON {"order_id": str, "amount_cents":
 *               int >= 0, "token": str}, body <= 64 KiB.
 *               200 {"status":"captured","capture_id":"cap_N"} | 402 {"status":"declined"} |
 *               500 {"error":"injected failure"} | no answer for timeout_hold_ms (then 504) |
 *               400/413 {"error":"..."} for a bad request | 422 when the key was first used for
 *               another order_id or amount.
 *   GET /stats  {"requests","captures","declines","keys","keys_captured_more_than_once",
 *               "orders","orders_captured_more_than_once","injected_failures",
 *               "injected_timeouts","key_conflicts","bad_requests"}
 *   GET /healthz 200 {"status":"ok"}
 * Outcomes by key: the first request of a key that is not an injected failure decides its
 * outcome (captured, or declined with probability decline_rate), and every later request with that
 * key returns that outcome again. An injected 500 changes nothing and is not remembered. An
 * injected timeout is the adversarial case: the payment IS processed (captured or declined, and
 * remembered), only the answer is lost, so a client that retries with the same key must get the
 * same capture back, and one that retries with a new key captures twice (counted per order_id).
 */
#ifndef WEFT_TOOLS_ORDERS_MOCK_H
#define WEFT_TOOLS_ORDERS_MOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct orders_mock orders_mock_t;

typedef struct orders_mock_opts {
    const char *host;         /* IPv4 address to listen on; NULL: "127.0.0.1" */
    int port;                 /* 0: a free port */
    double p50_ms, p99_ms;    /* lognormal answer latency; p50_ms 0: answer at once */
    double fail_rate;         /* share of requests answered 500 (0..1) */
    double timeout_rate;      /* share processed but not answered for timeout_hold_ms (0..1) */
    double decline_rate;      /* share of new keys declined (402) (0..1) */
    unsigned timeout_hold_ms; /* 0: 35000 (the API promises no answer within 30 s) */
    unsigned threads;         /* libmicrohttpd polling threads; 0: 2 */
    uint64_t seed;            /* random seed for latencies and injections; 0: a fixed one */
} orders_mock_opts_t;

typedef struct orders_mock_stats {
    uint64_t requests; /* POST /pay requests with a valid body */
    uint64_t captures; /* payments captured (one per captured key, by construction) */
    uint64_t declines; /* keys declined */
    uint64_t keys;     /* distinct keys remembered (captured or declined) */
    uint64_t keys_captured_more_than_once;   /* must stay 0: the mock's own invariant */
    uint64_t orders;                         /* distinct order_ids remembered */
    uint64_t orders_captured_more_than_once; /* a client bug: it paid one order with two keys */
    uint64_t injected_failures, injected_timeouts;
    uint64_t key_conflicts; /* a key reused for another order_id or amount (422) */
    uint64_t bad_requests;  /* 400 and 413 answers */
} orders_mock_stats_t;

/* Starts the mock and writes its base URL ("http://HOST:PORT", no slash) to url[urlsz].
 * `opts` may be NULL (defaults above). Returns 0, -EINVAL (bad options or host), -EADDRINUSE or
 * -ENOMEM; *out = NULL on failure. Ownership: borrows opts; returns owned: stop with
 * orders_mock_stop. Thread safety: any thread. */
int orders_mock_start(const orders_mock_opts_t *opts, orders_mock_t **out, char *url, size_t urlsz);

/* A snapshot of the counters (consistent: taken under the mock's lock).
 * Thread safety: any thread, while the mock runs. */
void orders_mock_stats(orders_mock_t *m, orders_mock_stats_t *out);

/* Answers held and delayed requests at once (504 for a held timeout), stops every thread, closes
 * every socket and frees everything. NULL is a no-op. Ownership: takes `m`.
 * Thread safety: any thread but the mock's own. */
void orders_mock_stop(orders_mock_t *m);

#endif
