/* The payment mock (mock.h): a third-party payment API with a lognormal latency, injected 5xx,
 * timeouts and declines, deduplicating by Idempotency-Key, and `weft orders payment-mock`.
 *
 * DESIGN
 * Threads: libmicrohttpd's polling threads (opts.threads, epoll, one thread pool) parse requests
 * and run `handler`; the timer thread of common/mhd-delay-int.h resumes connections whose answer is
 * due; the thread that called orders_mock_start/stop.
 * Latency without blocking a thread: a request whose answer is due later suspends its connection
 * until then (tools_mhd_delay_sleep, the fixture's mechanism too) and libmicrohttpd calls the
 * handler again, which answers. So thousands of delayed or held payments wait on two threads.
 * Measured on the 2-core machine with wrk (unique keys): 21,400 req/s at 1,000 connections with
 * --latency 30:200 (p50 40 ms, p99 243 ms), 65,000 req/s at 100 connections without latency:
 * twice the engine's 10,000 orders/s target with the latency on, so the mock never limits the
 * benchmark. Thread-per-connection would instead need a thread per waiting payment.
 * State: the outcome of every key and the capture count of every order_id, in two weft_htab
 * tables over two arrays, all under `mu`. The outcome is decided and stored under `mu` before the
 * answer is scheduled, so concurrent requests with one key see one outcome and capture once.
 * Stop: quiesce the listener, tools_mhd_delay_stop (every waiting request is answered at once),
 * stop the daemon, then free.
 * Locks: mu (tables, counters, rng) is never held across a libmicrohttpd call.
 */
#include "orders/mock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/buf.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/htab.h>
#include <weft/sys.h>

#include "orders/orders.h"
#include "common/mhd-delay-int.h"

#define MAX_BODY (64 * 1024)
#define MAX_KEY 255

typedef struct pay_key {
    char *key, *order_id; /* owned */
    int64_t amount;
    uint32_t capture;  /* capture number (cap_N), 0 when declined */
    uint32_t captures; /* times this key captured: 1 or 0 */
} pay_key_t;

typedef struct pay_order {
    char *id; /* owned */
    uint32_t captures;
} pay_order_t;

typedef struct mreq {
    orders_mock_t *m;
    struct MHD_Connection *conn;
    weft_buf_t body;
    bool too_large;
    int phase; /* 0: receiving, 1: answer decided and waiting, 2: answered */
    unsigned status;
    uint64_t due_ns;
    tools_mhd_wait_t wait;
    char resp[192];
} mreq_t;

struct orders_mock {
    struct MHD_Daemon *daemon;
    orders_mock_opts_t o;
    double mu_ln, sigma_ln; /* lognormal parameters of the latency in ms */

    tools_mhd_delay_t *delay; /* resumes delayed answers */

    pthread_mutex_t mu;
    uint64_t rng;
    pay_key_t *keys;
    size_t nkeys, keys_cap;
    weft_htab_t key_tab; /* key -> index in keys */
    pay_order_t *orders;
    size_t norders, orders_cap;
    weft_htab_t order_tab; /* order_id -> index in orders */
    orders_mock_stats_t st;
};

/* Suspends q's connection until q->due_ns (common/mhd-delay-int.h). Returns false if the mock is
 * stopping or out of memory (then the connection is not suspended and the caller answers at
 * once). */
static bool sleep_until_due(mreq_t *q)
{
    return tools_mhd_delay_sleep(q->m->delay, &q->wait, q->conn, q->due_ns);
}

/* ---- outcome tables (mu held) ---- */

static bool key_eq(uint64_t val, const void *key, const void *ctx)
{
    const orders_mock_t *m = ctx;
    return strcmp(m->keys[val].key, key) == 0;
}

static bool order_eq(uint64_t val, const void *key, const void *ctx)
{
    const orders_mock_t *m = ctx;
    return strcmp(m->orders[val].id, key) == 0;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 1024;
    void *p = realloc(*arr, c * elem);
    if (!p) return -ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

/* Counts one capture of `order_id`. Returns 0 or -ENOMEM. The new record is written before
 * the table sees it, so that the table's equality callback never reads an unwritten record. */
static int count_order_capture(orders_mock_t *m, const char *order_id)
{
    uint64_t h = weft_hash_str(order_id);
    uint64_t *v = weft_htab_find(&m->order_tab, h, order_eq, order_id, m);
    if (!v) {
        if (grow((void **)&m->orders, &m->orders_cap, m->norders, sizeof *m->orders) < 0)
            return -ENOMEM;
        char *id = strdup(order_id);
        bool added;
        m->orders[m->norders] = (pay_order_t){.id = id};
        if (!id || !(v = weft_htab_put(&m->order_tab, h, order_eq, order_id, m, &added))) {
            free(id);
            return -ENOMEM;
        }
        *v = m->norders++;
        m->st.orders++;
    }
    if (++m->orders[*v].captures == 2) m->st.orders_captured_more_than_once++;
    return 0;
}

/* Finds the key's outcome or decides and stores it. Returns the pay_key index, -EEXIST when
 * the key belongs to another order_id or amount, or -ENOMEM. */
static int64_t decide(orders_mock_t *m, const char *key, const char *order_id, int64_t amount)
{
    uint64_t h = weft_hash_str(key);
    uint64_t *v = weft_htab_find(&m->key_tab, h, key_eq, key, m);
    if (v) {
        pay_key_t *k = &m->keys[*v];
        if (strcmp(k->order_id, order_id) != 0 || k->amount != amount) return -EEXIST;
        return (int64_t)*v;
    }
    if (grow((void **)&m->keys, &m->keys_cap, m->nkeys, sizeof *m->keys) < 0) return -ENOMEM;
    pay_key_t *k = &m->keys[m->nkeys];
    *k = (pay_key_t){.key = strdup(key), .order_id = strdup(order_id), .amount = amount};
    bool decline = (double)(weft_rand(&m->rng) >> 11) * 0x1p-53 < m->o.decline_rate;
    bool added;
    if (!k->key || !k->order_id || (!decline && count_order_capture(m, order_id) < 0) ||
        !(v = weft_htab_put(&m->key_tab, h, key_eq, key, m, &added))) {
        free(k->key);
        free(k->order_id);
        return -ENOMEM; /* a capture counted for the order stays counted: it is an upper bound */
    }
    *v = m->nkeys++;
    m->st.keys++;
    if (decline) {
        m->st.declines++;
    } else {
        k->capture = (uint32_t)++m->st.captures;
        if (++k->captures == 2) m->st.keys_captured_more_than_once++;
    }
    return (int64_t)*v;
}

static double uniform(uint64_t *rng)
{
    return ((double)(weft_rand(rng) >> 11) + 0.5) * 0x1p-53; /* (0, 1) */
}

/* A latency in ns from the lognormal with the configured p50 and p99 (mu held). */
static uint64_t latency_ns(orders_mock_t *m)
{
    if (m->o.p50_ms <= 0) return 0;
    double z = sqrt(-2.0 * log(uniform(&m->rng))) * cos(2.0 * M_PI * uniform(&m->rng));
    double ms = exp(m->mu_ln + m->sigma_ln * z);
    if (ms > 60000) ms = 60000;
    return (uint64_t)(ms * 1e6);
}

/* ---- requests ---- */

/* The answer {"FIELD":"VALUE"} (VALUE is ours, never the client's, so it needs no escaping). */
static void set_resp(mreq_t *q, unsigned status, const char *field, const char *value)
{
    q->status = status;
    snprintf(q->resp, sizeof q->resp, "{\"%s\":\"%s\"}\n", field, value);
}

static void bad_request(mreq_t *q, unsigned status, const char *error)
{
    set_resp(q, status, "error", error);
    pthread_mutex_lock(&q->m->mu);
    q->m->st.bad_requests++;
    pthread_mutex_unlock(&q->m->mu);
}

/* Decides the answer to POST /pay and its due time. */
static void pay(mreq_t *q)
{
    orders_mock_t *m = q->m;
    const char *key = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (!key || !*key) {
        bad_request(q, 400, "missing Idempotency-Key header");
        return;
    }
    if (strlen(key) > MAX_KEY) {
        bad_request(q, 400, "Idempotency-Key over 255 bytes");
        return;
    }
    if (q->too_large) {
        bad_request(q, 413, "body over 64 KiB");
        return;
    }
    json_error_t jerr;
    json_t *j = json_loadb(q->body.data ? q->body.data : "", q->body.len, 0, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        bad_request(q, 400, "body is not a JSON object");
        return;
    }
    json_t *oid = json_object_get(j, "order_id"), *amt = json_object_get(j, "amount_cents"),
           *tok = json_object_get(j, "token");
    const char *err = NULL;
    if (!json_is_string(oid) || json_string_length(oid) == 0)
        err = "order_id: a non-empty string is required";
    else if (!json_is_integer(amt) || json_integer_value(amt) < 0)
        err = "amount_cents: a non-negative integer is required";
    else if (!json_is_string(tok))
        err = "token: a string is required";
    else if (strlen(json_string_value(oid)) != json_string_length(oid))
        err = "order_id: contains NUL";
    if (err) {
        json_decref(j);
        bad_request(q, 400, err);
        return;
    }

    pthread_mutex_lock(&m->mu);
    m->st.requests++;
    double r = uniform(&m->rng);
    uint64_t delay = latency_ns(m);
    bool fail = r < m->o.fail_rate, hold = !fail && r < m->o.fail_rate + m->o.timeout_rate;
    int64_t idx = fail ? 0 : decide(m, key, json_string_value(oid), json_integer_value(amt));
    char capture[32] = "";
    bool declined = false;
    if (fail) {
        m->st.injected_failures++;
    } else if (idx >= 0) {
        declined = m->keys[idx].capture == 0;
        snprintf(capture, sizeof capture, "cap_%u", m->keys[idx].capture);
        if (hold) m->st.injected_timeouts++;
    } else if (idx == -EEXIST) {
        m->st.key_conflicts++;
    }
    pthread_mutex_unlock(&m->mu);
    json_decref(j);

    if (fail)
        set_resp(q, 500, "error", "injected failure");
    else if (idx == -EEXIST)
        set_resp(q, 422, "error", "Idempotency-Key already used for another order_id or amount");
    else if (idx < 0)
        set_resp(q, 503, "error", "out of memory");
    else if (hold)
        set_resp(q, 504, "error", "injected timeout");
    else if (declined)
        set_resp(q, 402, "status", "declined");
    else {
        q->status = 200;
        snprintf(q->resp, sizeof q->resp, "{\"status\":\"captured\",\"capture_id\":\"%s\"}\n",
                 capture);
    }
    q->due_ns = weft_now_ns() + (hold ? (uint64_t)m->o.timeout_hold_ms * 1000000u : delay);
}

static void stats_json(orders_mock_t *m, weft_buf_t *b)
{
    orders_mock_stats_t s;
    orders_mock_stats(m, &s);
    weft_buf_printf(
        b,
        "{\"requests\":%llu,\"captures\":%llu,\"declines\":%llu,\"keys\":%llu,"
        "\"keys_captured_more_than_once\":%llu,\"orders\":%llu,"
        "\"orders_captured_more_than_once\":%llu,\"injected_failures\":%llu,"
        "\"injected_timeouts\":%llu,\"key_conflicts\":%llu,\"bad_requests\":%llu}\n",
        (unsigned long long)s.requests, (unsigned long long)s.captures,
        (unsigned long long)s.declines, (unsigned long long)s.keys,
        (unsigned long long)s.keys_captured_more_than_once, (unsigned long long)s.orders,
        (unsigned long long)s.orders_captured_more_than_once,
        (unsigned long long)s.injected_failures, (unsigned long long)s.injected_timeouts,
        (unsigned long long)s.key_conflicts, (unsigned long long)s.bad_requests);
}

static enum MHD_Result respond(mreq_t *q)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    const char *data = q->resp;
    size_t len = strlen(q->resp);
    if (q->status == 0) { /* GET /stats: built when answered, so it is current */
        stats_json(q->m, &b);
        q->status = 200;
        data = b.data ? b.data : "";
        len = b.len;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    weft_buf_free(&b);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ok = MHD_queue_response(q->conn, q->status, resp);
    MHD_destroy_response(resp);
    q->phase = 2;
    return ok;
}

static void route(mreq_t *q, const char *method, const char *url)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/pay") == 0 && post) {
        pay(q);
        return;
    }
    if (strcmp(url, "/stats") == 0 && get) return; /* status 0: stats, built in respond() */
    if (strcmp(url, "/healthz") == 0 && get) {
        set_resp(q, 200, "status", "ok");
        return;
    }
    if (strcmp(url, "/pay") == 0 || strcmp(url, "/stats") == 0 || strcmp(url, "/healthz") == 0) {
        set_resp(q, 405, "error", "method not allowed");
        return;
    }
    set_resp(q, 404, "error", "no such route (POST /pay, GET /stats, /healthz)");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req_cls)
{
    orders_mock_t *m = cls;
    mreq_t *q = *req_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q) return MHD_NO;
        q->m = m;
        q->conn = conn;
        weft_buf_init(&q->body, MAX_BODY);
        *req_cls = q;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!q->too_large && weft_buf_append(&q->body, upload, *upload_size) < 0) {
            q->too_large = true;
            weft_buf_free(&q->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (q->phase == 2) return MHD_YES;
    if (q->phase == 1) return respond(q);
    route(q, method, url);
    q->phase = 1;
    if (q->due_ns > weft_now_ns() && sleep_until_due(q)) return MHD_YES; /* resumed when due */
    return respond(q);
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    mreq_t *q = *req_cls;
    if (!q) return;
    weft_buf_free(&q->body);
    free(q);
    *req_cls = NULL;
}

/* ---- lifecycle ---- */

void orders_mock_stats(orders_mock_t *m, orders_mock_stats_t *out)
{
    pthread_mutex_lock(&m->mu);
    *out = m->st;
    pthread_mutex_unlock(&m->mu);
}

static bool rate_ok(double r)
{
    return r >= 0 && r <= 1; /* false for NaN too */
}

int orders_mock_start(const orders_mock_opts_t *opts, orders_mock_t **out, char *url, size_t urlsz)
{
    *out = NULL;
    orders_mock_opts_t o = {0};
    if (opts) o = *opts;
    if (!o.host) o.host = "127.0.0.1";
    if (!o.timeout_hold_ms) o.timeout_hold_ms = 35000;
    if (!o.threads) o.threads = 2;
    if (o.port < 0 || o.port > 65535 || !rate_ok(o.fail_rate) || !rate_ok(o.timeout_rate) ||
        !rate_ok(o.decline_rate) || o.fail_rate + o.timeout_rate > 1 || !(o.p50_ms >= 0) ||
        (o.p50_ms > 0 && !(o.p99_ms >= o.p50_ms)) || o.threads > 64)
        return -EINVAL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1) return -EINVAL;

    orders_mock_t *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->o = o;
    m->rng = o.seed ? o.seed : 0x9e3779b97f4a7c15u;
    if (o.p50_ms > 0) {
        m->mu_ln = log(o.p50_ms);
        m->sigma_ln = (log(o.p99_ms) - m->mu_ln) / 2.3263478740408408; /* z of 0.99 */
    }
    pthread_mutex_init(&m->mu, NULL);
    int rc = tools_mhd_delay_create(&m->delay);
    if (rc < 0) {
        pthread_mutex_destroy(&m->mu);
        free(m);
        return rc;
    }
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    m->daemon =
        MHD_start_daemon(flags, (uint16_t)o.port, NULL, NULL, handler, m, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, completed, m,
                         MHD_OPTION_THREAD_POOL_SIZE, o.threads > 1 ? o.threads : 0u,
                         MHD_OPTION_CONNECTION_LIMIT, 10000u, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_END);
    int port = 0;
    if (m->daemon) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
        port = info ? info->port : 0;
    }
    if (!m->daemon || port == 0) {
        orders_mock_stop(m);
        return -EADDRINUSE;
    }
    if (url && urlsz) snprintf(url, urlsz, "http://%s:%d", o.host, port);
    *out = m;
    return 0;
}

void orders_mock_stop(orders_mock_t *m)
{
    if (!m) return;
    MHD_socket lfd = m->daemon ? MHD_quiesce_daemon(m->daemon) : MHD_INVALID_SOCKET;
    tools_mhd_delay_stop(m->delay); /* answers every waiting request now */
    if (m->daemon) MHD_stop_daemon(m->daemon);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    tools_mhd_delay_destroy(m->delay);
    for (size_t i = 0; i < m->nkeys; i++) {
        free(m->keys[i].key);
        free(m->keys[i].order_id);
    }
    for (size_t i = 0; i < m->norders; i++) free(m->orders[i].id);
    free(m->keys);
    free(m->orders);
    weft_htab_free(&m->key_tab);
    weft_htab_free(&m->order_tab);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---- `weft orders payment-mock` ---- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: weft orders payment-mock [OPTIONS]\n\n"
        "A third-party payment API for the order engine, with a latency distribution and\n"
        "injected failures; it deduplicates by Idempotency-Key and counts captures.\n\n"
        "  POST /pay     header Idempotency-Key, JSON {\"order_id\",\"amount_cents\",\"token\"}:\n"
        "                200 captured | 402 declined | 500 injected | no answer (timeout);\n"
        "                the same key again gets the first outcome (a 500 is not remembered)\n"
        "  GET /stats    requests, captures, keys, keys/orders captured more than once, ...\n"
        "  GET /healthz  200\n\n"
        "Options:\n"
        "  --listen HOST:PORT  address (default 127.0.0.1:8090; port 0 picks a free one)\n"
        "  --latency P50:P99   lognormal answer latency in ms (default 30:200; 0:0 none)\n"
        "  --fail-rate F       share of requests answered 500 (default 0)\n"
        "  --timeout-rate F    share processed but never answered within 30 s (default 0)\n"
        "  --decline-rate F    share of new keys declined with 402 (default 0)\n"
        "  --threads N         polling threads (default 2)\n"
        "  --seed N            random seed (default fixed)\n\n"
        "Prints \"weft orders payment-mock: listening on http://HOST:PORT\" when ready;\n"
        "SIGINT or SIGTERM stops it and prints the stats on stderr.\n"
        "Exit codes: 0 stopped by a signal, 2 usage error or address in use, 3 internal "
        "error.\n");
}

static int parse_rate(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !rate_ok(v))
        return weft_cli_usage_error("orders payment-mock", "%s: '%s' is not a number in 0..1", opt,
                                    s);
    *out = v;
    return 0;
}

/* Splits "HOST:PORT" (HOST may be empty or "localhost"). Returns 0 or -EINVAL. */
static int parse_listen(char *s, const char **host, int *port)
{
    char *c = strrchr(s, ':');
    long p;
    if (!c || weft_cli_parse_int(c + 1, 0, 65535, &p) < 0) return -EINVAL;
    *c = '\0';
    *host = (!*s || strcmp(s, "localhost") == 0) ? "127.0.0.1" : s;
    *port = (int)p;
    return 0;
}

static int cmd_payment_mock(int argc, char **argv)
{
    const char *cmd = "orders payment-mock";
    orders_mock_opts_t o = {.port = 8090, .p50_ms = 30, .p99_ms = 200};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        long v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return WEFT_EXIT_OK;
        } else if (strcmp(a, "--listen") == 0 && has) {
            if (parse_listen(argv[++i], &o.host, &o.port) < 0)
                return weft_cli_usage_error(cmd, "--listen: '%s' is not HOST:PORT", argv[i]);
        } else if (strcmp(a, "--latency") == 0 && has) {
            char *end;
            const char *s = argv[++i];
            o.p50_ms = strtod(s, &end);
            bool ok = end != s && *end == ':';
            if (ok) {
                const char *s2 = end + 1;
                o.p99_ms = strtod(s2, &end);
                ok = end != s2 && !*end && o.p50_ms >= 0 && o.p99_ms >= o.p50_ms &&
                     o.p99_ms <= 60000;
            }
            if (!ok)
                return weft_cli_usage_error(
                    cmd, "--latency: '%s' is not P50MS:P99MS with 0 <= P50 <= P99 <= 60000", s);
        } else if (strcmp(a, "--fail-rate") == 0 && has) {
            if (parse_rate(a, argv[++i], &o.fail_rate)) return WEFT_EXIT_USAGE;
        } else if (strcmp(a, "--timeout-rate") == 0 && has) {
            if (parse_rate(a, argv[++i], &o.timeout_rate)) return WEFT_EXIT_USAGE;
        } else if (strcmp(a, "--decline-rate") == 0 && has) {
            if (parse_rate(a, argv[++i], &o.decline_rate)) return WEFT_EXIT_USAGE;
        } else if (strcmp(a, "--threads") == 0 && has) {
            if (weft_cli_parse_int(argv[++i], 1, 64, &v) < 0)
                return weft_cli_usage_error(cmd, "--threads: '%s' is not in 1..64", argv[i]);
            o.threads = (unsigned)v;
        } else if (strcmp(a, "--seed") == 0 && has) {
            if (weft_cli_parse_int(argv[++i], 0, __LONG_MAX__, &v) < 0)
                return weft_cli_usage_error(cmd, "--seed: '%s' is not a number", argv[i]);
            o.seed = (uint64_t)v;
        } else {
            return weft_cli_usage_error(cmd, "unknown option '%s'%s", a,
                                        has ? "" : " (or missing value)");
        }
    }
    if (o.fail_rate + o.timeout_rate > 1)
        return weft_cli_usage_error(cmd, "--fail-rate plus --timeout-rate is over 1");

    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old); /* before any thread starts: only sigwait gets them */
    orders_mock_t *m;
    char url[96];
    int rc = orders_mock_start(&o, &m, url, sizeof url);
    if (rc < 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == -EINVAL) return weft_cli_usage_error(cmd, "--listen: not an IPv4 address");
        if (rc == -EADDRINUSE)
            return weft_cli_error(cmd, WEFT_EXIT_USAGE, "cannot listen on %s:%d (in use?)",
                                  o.host ? o.host : "127.0.0.1", o.port);
        return weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "%s", weft_strerror(rc));
    }
    printf("weft orders payment-mock: listening on %s\n", url);
    fflush(stdout);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    orders_mock_stats_t s;
    orders_mock_stats(m, &s);
    orders_mock_stop(m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fprintf(stderr,
            "weft orders payment-mock: stopped (%s): %llu requests, %llu captures, %llu "
            "declines, %llu keys, %llu orders captured more than once\n",
            strsignal(sig), (unsigned long long)s.requests, (unsigned long long)s.captures,
            (unsigned long long)s.declines, (unsigned long long)s.keys,
            (unsigned long long)s.orders_captured_more_than_once);
    return WEFT_EXIT_OK;
}

WEFT_ORDERS_COMMAND("payment-mock", cmd_payment_mock,
                    "the third-party payment API: latency, injected failures, idempotency")
