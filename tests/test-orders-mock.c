/* Tests of the payment mock (tools/orders/mock.c), started in-process and driven over HTTP with
 * libcurl: deduplication by Idempotency-Key (also under concurrency), injected rates within
 * loose statistical bounds, exact stats, every bad request's status, and stopping with held
 * connections. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/buf.h>

#include "harness.h"
#include "orders/mock.h"

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    return weft_buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

/* One request; returns the HTTP status (0 when no answer within timeout_ms). `key` NULL: no
 * Idempotency-Key header; `body` NULL: GET. The answer body goes to `out` (may be NULL). */
static long http(CURL *c, const char *method, const char *url, const char *key, const char *body,
                 size_t body_len, weft_buf_t *out, long timeout_ms)
{
    weft_buf_t sink;
    weft_buf_init(&sink, 1 << 20);
    if (!out) out = &sink;
    weft_buf_reset(out);
    struct curl_slist *h = NULL;
    char kh[400];
    if (key) {
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
        h = curl_slist_append(h, kh);
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    weft_buf_free(&sink);
    return status;
}

static long pay(CURL *c, const char *base, const char *key, const char *order, long amount,
                weft_buf_t *out)
{
    char url[128], body[256];
    snprintf(url, sizeof url, "%s/pay", base);
    int n = snprintf(body, sizeof body,
                     "{\"order_id\":\"%s\",\"amount_cents\":%ld,\"token\":\"t\"}", order, amount);
    return http(c, "POST", url, key, body, (size_t)n, out, 20000);
}

static orders_mock_t *start(orders_mock_opts_t o, char *url, size_t urlsz)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    o.port = 0;
    if (!o.seed) o.seed = 42;
    orders_mock_t *m = NULL;
    CHECK_EQ(orders_mock_start(&o, &m, url, urlsz), 0);
    CHECK(m != NULL);
    return m;
}

TEST(mock_dedupe_by_key)
{
    char base[96];
    orders_mock_t *m = start((orders_mock_opts_t){.p50_ms = 1, .p99_ms = 5}, base, sizeof base);
    CURL *c = curl_easy_init();
    weft_buf_t first, again;
    weft_buf_init(&first, 4096);
    weft_buf_init(&again, 4096);
    CHECK_EQ(pay(c, base, "key-1", "order-1", 1999, &first), 200);
    CHECK(strstr(first.data, "\"captured\"") && strstr(first.data, "cap_"));
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pay(c, base, "key-1", "order-1", 1999, &again), 200);
        CHECK_STR_EQ(again.data, first.data); /* the same capture_id */
    }
    /* The same key for another order or amount is a client bug: 422, nothing captured. */
    CHECK_EQ(pay(c, base, "key-1", "order-2", 1999, NULL), 422);
    CHECK_EQ(pay(c, base, "key-1", "order-1", 1, NULL), 422);
    orders_mock_stats_t s;
    orders_mock_stats(m, &s);
    CHECK_EQ(s.requests, 7);
    CHECK_EQ(s.captures, 1);
    CHECK_EQ(s.keys, 1);
    CHECK_EQ(s.key_conflicts, 2);
    CHECK_EQ(s.orders_captured_more_than_once, 0);
    /* A second key for the same order captures again, and the stats say so. */
    CHECK_EQ(pay(c, base, "key-2", "order-1", 1999, &again), 200);
    CHECK(strcmp(again.data, first.data) != 0);
    orders_mock_stats(m, &s);
    CHECK_EQ(s.captures, 2);
    CHECK_EQ(s.orders, 1);
    CHECK_EQ(s.orders_captured_more_than_once, 1);
    CHECK_EQ(s.keys_captured_more_than_once, 0);
    /* GET /stats says the same as orders_mock_stats. */
    char url[128];
    snprintf(url, sizeof url, "%s/stats", base);
    CHECK_EQ(http(c, "GET", url, NULL, NULL, 0, &again, 5000), 200);
    CHECK(strstr(again.data, "\"requests\":8,\"captures\":2,"));
    CHECK(strstr(again.data, "\"keys_captured_more_than_once\":0,"));
    CHECK(strstr(again.data, "\"orders_captured_more_than_once\":1,"));
    weft_buf_free(&first);
    weft_buf_free(&again);
    curl_easy_cleanup(c);
    orders_mock_stop(m);
    curl_global_cleanup();
}

#define RACERS 16
static struct {
    const char *base;
    pthread_barrier_t go;
    long status[RACERS];
    char answer[RACERS][128];
} race;

static void *racer(void *arg)
{
    int i = (int)(intptr_t)arg;
    CURL *c = curl_easy_init();
    weft_buf_t out;
    weft_buf_init(&out, 4096);
    pthread_barrier_wait(&race.go);
    race.status[i] = pay(c, race.base, "same-key", "order-race", 500, &out);
    snprintf(race.answer[i], sizeof race.answer[i], "%s", out.data ? out.data : "");
    weft_buf_free(&out);
    curl_easy_cleanup(c);
    return NULL;
}

TEST(mock_same_key_concurrently_captures_once)
{
    char base[96];
    orders_mock_t *m =
        start((orders_mock_opts_t){.p50_ms = 2, .p99_ms = 10, .threads = 4}, base, sizeof base);
    race.base = base;
    pthread_barrier_init(&race.go, NULL, RACERS);
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, racer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&race.go);
    for (int i = 0; i < RACERS; i++) {
        CHECK_EQ(race.status[i], 200);
        CHECK_STR_EQ(race.answer[i], race.answer[0]);
    }
    orders_mock_stats_t s;
    orders_mock_stats(m, &s);
    CHECK_EQ(s.requests, RACERS);
    CHECK_EQ(s.captures, 1);
    CHECK_EQ(s.keys, 1);
    orders_mock_stop(m);
    curl_global_cleanup();
}

TEST(mock_injected_rates_and_exact_stats)
{
    char base[96];
    /* Timeouts held 1 ms so that they can be counted here (504 when the hold ends). */
    orders_mock_t *m = start(
        (orders_mock_opts_t){
            .fail_rate = 0.2, .timeout_rate = 0.1, .decline_rate = 0.3, .timeout_hold_ms = 1},
        base, sizeof base);
    CURL *c = curl_easy_init();
    enum { N = 2000 };
    long n200 = 0, n402 = 0, n500 = 0, n504 = 0, other = 0;
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%d", i);
        switch (pay(c, base, key, key, 100 + i, NULL)) {
        case 200:
            n200++;
            break;
        case 402:
            n402++;
            break;
        case 500:
            n500++;
            break;
        case 504:
            n504++;
            break;
        default:
            other++;
        }
    }
    CHECK_EQ(other, 0);
    /* Expected 400 failures, 200 timeouts, 0.3 * 1700 declines; each standard deviation is
     * under 20, and every bound is more than 7 of them away. */
    CHECK_MSG(n500 > 250 && n500 < 550, "500s: %ld of %d at rate 0.2", n500, N);
    CHECK_MSG(n504 > 80 && n504 < 330, "timeouts: %ld of %d at rate 0.1", n504, N);
    orders_mock_stats_t s;
    orders_mock_stats(m, &s);
    CHECK_MSG(s.declines > 350 && s.declines < 680, "declines: %llu of %ld at rate 0.3",
              (unsigned long long)s.declines, N - n500);
    CHECK_EQ(s.requests, N);
    CHECK_EQ(s.injected_failures, n500);
    CHECK_EQ(s.injected_timeouts, n504);
    CHECK_EQ(s.keys, n200 + n402 + n504); /* a 500 is not remembered; a timeout is */
    CHECK_EQ(s.captures + s.declines, s.keys);
    CHECK(s.captures >= (uint64_t)n200 && s.declines >= (uint64_t)n402);
    CHECK_EQ(s.orders, s.captures);
    CHECK_EQ(s.keys_captured_more_than_once, 0);
    CHECK_EQ(s.orders_captured_more_than_once, 0);
    CHECK_EQ(s.bad_requests, 0);
    curl_easy_cleanup(c);
    orders_mock_stop(m);
    curl_global_cleanup();
}

TEST(mock_failure_not_remembered_timeout_remembered)
{
    char base[96];
    orders_mock_t *m = start((orders_mock_opts_t){.fail_rate = 1}, base, sizeof base);
    CURL *c = curl_easy_init();
    for (int i = 0; i < 3; i++) CHECK_EQ(pay(c, base, "k", "o", 1, NULL), 500);
    orders_mock_stats_t s;
    orders_mock_stats(m, &s);
    CHECK_EQ(s.keys, 0);
    CHECK_EQ(s.captures, 0);
    CHECK_EQ(s.injected_failures, 3);
    orders_mock_stop(m);

    /* A timed-out payment went through: the retry with its key finds the capture. */
    m = start((orders_mock_opts_t){.timeout_rate = 1, .timeout_hold_ms = 1}, base, sizeof base);
    CHECK_EQ(pay(c, base, "k", "o", 1, NULL), 504);
    CHECK_EQ(pay(c, base, "k", "o", 1, NULL), 504);
    orders_mock_stats(m, &s);
    CHECK_EQ(s.keys, 1);
    CHECK_EQ(s.captures, 1);
    CHECK_EQ(s.injected_timeouts, 2);
    curl_easy_cleanup(c);
    orders_mock_stop(m);
    curl_global_cleanup();
}

TEST(mock_bad_requests)
{
    char base[96], url[128];
    orders_mock_t *m = start((orders_mock_opts_t){0}, base, sizeof base);
    CURL *c = curl_easy_init();
    weft_buf_t out;
    weft_buf_init(&out, 4096);
    snprintf(url, sizeof url, "%s/pay", base);
    static const struct {
        const char *key, *body;
        long status;
        const char *says;
    } cases[] = {
        {NULL, "{\"order_id\":\"o\",\"amount_cents\":1,\"token\":\"t\"}", 400, "Idempotency-Key"},
        {"", "{\"order_id\":\"o\",\"amount_cents\":1,\"token\":\"t\"}", 400, "Idempotency-Key"},
        {"k", "not json", 400, "JSON object"},
        {"k", "[1,2]", 400, "JSON object"},
        {"k", "", 400, "JSON object"},
        {"k", "{\"amount_cents\":1,\"token\":\"t\"}", 400, "order_id"},
        {"k", "{\"order_id\":7,\"amount_cents\":1,\"token\":\"t\"}", 400, "order_id"},
        {"k", "{\"order_id\":\"\",\"amount_cents\":1,\"token\":\"t\"}", 400, "order_id"},
        {"k", "{\"order_id\":\"o\",\"amount_cents\":\"1\",\"token\":\"t\"}", 400, "amount_cents"},
        {"k", "{\"order_id\":\"o\",\"amount_cents\":-1,\"token\":\"t\"}", 400, "amount_cents"},
        {"k", "{\"order_id\":\"o\",\"amount_cents\":1.5,\"token\":\"t\"}", 400, "amount_cents"},
        {"k", "{\"order_id\":\"o\",\"amount_cents\":1}", 400, "token"},
        {"k", "{\"order_id\":\"o\",\"amount_cents\":1,\"token\":null}", 400, "token"},
    };
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++) {
        long st =
            http(c, "POST", url, cases[i].key, cases[i].body, strlen(cases[i].body), &out, 5000);
        CHECK_MSG(st == cases[i].status, "case %zu: %ld, wanted %ld", i, st, cases[i].status);
        CHECK_MSG(out.data && strstr(out.data, "\"error\"") && strstr(out.data, cases[i].says),
                  "case %zu: answer '%s' does not name '%s'", i, out.data ? out.data : "",
                  cases[i].says);
    }
    /* A key of 256 bytes is refused, 255 accepted. */
    char key[300];
    memset(key, 'k', 256);
    key[256] = '\0';
    CHECK_EQ(pay(c, base, key, "o", 1, &out), 400);
    CHECK(strstr(out.data, "255"));
    key[255] = '\0';
    CHECK_EQ(pay(c, base, key, "o", 1, NULL), 200);
    /* A body over 64 KiB: 413. */
    size_t big = 64 * 1024 + 1;
    char *body = malloc(big + 1);
    CHECK(body != NULL);
    memset(body, ' ', big);
    body[big] = '\0';
    CHECK_EQ(http(c, "POST", url, "k-big", body, big, &out, 5000), 413);
    free(body);
    /* Methods and routes. */
    CHECK_EQ(http(c, "GET", url, NULL, NULL, 0, NULL, 5000), 405);
    snprintf(url, sizeof url, "%s/nowhere", base);
    CHECK_EQ(http(c, "GET", url, NULL, NULL, 0, NULL, 5000), 404);
    snprintf(url, sizeof url, "%s/healthz", base);
    CHECK_EQ(http(c, "GET", url, NULL, NULL, 0, NULL, 5000), 200);
    snprintf(url, sizeof url, "%s/stats", base);
    CHECK_EQ(http(c, "POST", url, NULL, "{}", 2, NULL, 5000), 405);
    orders_mock_stats_t s;
    orders_mock_stats(m, &s);
    CHECK_EQ(s.bad_requests, n + 2);
    CHECK_EQ(s.requests, 1);
    CHECK_EQ(s.captures, 1);
    weft_buf_free(&out);
    curl_easy_cleanup(c);
    orders_mock_stop(m);
    curl_global_cleanup();
}

TEST_T(mock_stop_answers_held_requests, 30)
{
    char base[96];
    orders_mock_t *m = start((orders_mock_opts_t){.timeout_rate = 1}, base, sizeof base);
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "%s/pay", base);
    const char *body = "{\"order_id\":\"o\",\"amount_cents\":1,\"token\":\"t\"}";
    /* Held for 35 s: the client gives up (status 0), the connection stays suspended. */
    CHECK_EQ(http(c, "POST", url, "k", body, strlen(body), NULL, 300), 0);
    curl_easy_cleanup(c);
    orders_mock_stats_t s;
    orders_mock_stats(m, &s);
    CHECK_EQ(s.injected_timeouts, 1);
    CHECK_EQ(s.captures, 1);
    orders_mock_stop(m); /* must not wait for the hold: the test's timeout says it did not */
    curl_global_cleanup();
}

TEST(mock_start_rejects_bad_options)
{
    orders_mock_t *m = (orders_mock_t *)1;
    char url[96];
    CHECK_EQ(orders_mock_start(&(orders_mock_opts_t){.host = "not-an-ip"}, &m, url, sizeof url),
             -EINVAL);
    CHECK(m == NULL);
    CHECK_EQ(orders_mock_start(&(orders_mock_opts_t){.fail_rate = 0.6, .timeout_rate = 0.6}, &m,
                               url, sizeof url),
             -EINVAL);
    CHECK_EQ(orders_mock_start(&(orders_mock_opts_t){.decline_rate = -0.1}, &m, url, sizeof url),
             -EINVAL);
    CHECK_EQ(
        orders_mock_start(&(orders_mock_opts_t){.p50_ms = 30, .p99_ms = 10}, &m, url, sizeof url),
        -EINVAL);
    orders_mock_t *a;
    CHECK_EQ(orders_mock_start(NULL, &a, url, sizeof url), 0); /* default port 0: a free one */
    int port = atoi(strrchr(url, ':') + 1);
    CHECK(port > 0);
    CHECK_EQ(orders_mock_start(&(orders_mock_opts_t){.port = port}, &m, url, sizeof url),
             -EADDRINUSE);
    CHECK(m == NULL);
    orders_mock_stop(a);
    orders_mock_stop(NULL);
}
