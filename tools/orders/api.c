/* The HTTP API of the order engine on libmicrohttpd (api.h).
 *
 * DESIGN
 * Why libmicrohttpd (measured on this 2-core machine, wrk -t1 -c64 -d5s, POST of an order body,
 * a trivial handler answering 201 with a 31-byte JSON, two runs each, machine shared):
 *   libh2o 2.2.5 evloop, 1 thread: 62,200 req/s (p50 0.75 ms); 2 threads (SO_REUSEPORT): 70,500
 *   libmicrohttpd 0.9.75 epoll, 1 thread: 73,400 and 106,300; thread pool of 2: 95,100 and 69,900
 * Both are an order of magnitude above the engine's target (10,000 orders/s), so speed does not
 * decide. libmicrohttpd does: it is already weft's HTTP server (the fixture, the payment mock),
 * so no second server library; it answers from any thread through suspend/resume, which is
 * exactly what a group commit needs (the 201 is sent by the writer thread after COMMIT); and
 * Debian's libh2o 2.2.5 is an old, unmaintained branch whose event loop would be a third one
 * beside libuv (its libuv backend needs the server on the loop thread, which we keep for IO).
 *
 * Threads: libmicrohttpd's polling threads run the handler. A request is routed and its body
 * collected (at most 64 KiB: past it the rest is discarded and the answer is 413) on the polling
 * thread; reads (GET) are answered there; writes (POST /orders, PUT /stock) suspend the
 * connection BEFORE handing the request to the engine, whose `done` (any engine thread) resumes
 * it; the resumed handler queues the answer the engine wrote into the request.
 * Lifetime: a request record belongs to its connection: created on the first handler call,
 * freed only in the completion callback. Suspended connections are never freed by
 * libmicrohttpd, so the engine's pointer stays valid until `done`, after which it is not used.
 * api_stop quiesces the listener, waits until no request is with the engine (pending == 0, under
 * mu), then stops the daemon.
 */
#include "orders/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mhd-delay-int.h"
#include "common/mhd-sse-int.h"
#include "orders/metrics.h"
#include "orders/order.h"
#include "orders/stats.h"

struct api {
    engine_t *e;
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending;           /* requests with the engine */
    tools_mhd_delay_t *delay; /* paces GET /events (one event per second) */
};

typedef enum route {
    R_NONE,
    R_ORDERS,    /* POST /orders */
    R_ORDER,     /* GET /orders/{id} */
    R_STOCK,     /* GET|PUT /stock/{sku} */
    R_HEALTH,    /* GET /healthz */
    R_STATS,     /* GET /stats */
    R_METRICS,   /* GET /metrics (issue 10, metrics.c) */
    R_EVENTS,    /* GET /events: Server-Sent Events, one per second */
    R_ASSET,     /* GET / and the dashboard's files */
    R_NOT_FOUND, /* 404 */
    R_METHOD,    /* 405 */
} route_t;

typedef struct req {
    api_t *api;
    struct MHD_Connection *conn;
    route_t route;
    const char *arg; /* the {id} or {sku} part of the URL (libmicrohttpd keeps the URL) */
    bool put, too_big, answered;
    int64_t qty; /* PUT /stock */
    weft_buf_t in;
    engine_call_t call;
} req_t;

static enum MHD_Result send_answer(struct MHD_Connection *conn, req_t *r)
{
    engine_call_t *c = &r->call;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        c->body.len, c->body.data ? c->body.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (c->retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", c->retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    if (c->status == 405)
        MHD_add_response_header(resp, "Allow", r->route == R_STOCK ? "GET, PUT" : "GET");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)c->status, resp);
    MHD_destroy_response(resp);
    r->answered = true;
    return ret;
}

static void error(req_t *r, int status, const char *msg)
{
    r->call.status = status;
    r->call.retry_after = status == 503 ? 1 : 0;
    weft_buf_reset(&r->call.body);
    weft_buf_append(&r->call.body, "{\"error\":", 9);
    order_json_str(&r->call.body, msg);
    weft_buf_append(&r->call.body, "}", 1);
}

/* Runs on an engine thread: the answer is in r->call; wake the connection. */
static void call_done(engine_call_t *c)
{
    req_t *r = c->arg;
    api_t *a = r->api;
    struct MHD_Connection *conn = r->conn;
    MHD_resume_connection(conn); /* r may be freed from here on */
    pthread_mutex_lock(&a->mu);
    if (--a->pending == 0) pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static bool valid_arg(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '/' || *p == 0x7f) return false;
    return true;
}

static route_t route(const char *method, const char *url, const char **arg, bool *put)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    *put = strcmp(method, "PUT") == 0;
    *arg = NULL;
    if (strcmp(url, "/orders") == 0) return post ? R_ORDERS : R_METHOD;
    if (strncmp(url, "/orders/", 8) == 0) {
        *arg = url + 8;
        return get ? R_ORDER : R_METHOD;
    }
    if (strncmp(url, "/stock/", 7) == 0) {
        *arg = url + 7;
        return get || *put ? R_STOCK : R_METHOD;
    }
    if (strcmp(url, "/healthz") == 0) return get ? R_HEALTH : R_METHOD;
    if (strcmp(url, "/stats") == 0) return get ? R_STATS : R_METHOD;
    if (strcmp(url, "/metrics") == 0) return get ? R_METRICS : R_METHOD;
    if (strcmp(url, "/events") == 0) return get ? R_EVENTS : R_METHOD;
    size_t n;
    const char *ct;
    if (metrics_asset(url, &n, &ct)) return get ? R_ASSET : R_METHOD;
    return R_NOT_FOUND;
}

/* Hands a write to the engine with the connection suspended. Returns true if the engine took
 * it; false with an answer set (503) if not. */
static bool to_engine(req_t *r, int (*submit)(req_t *r))
{
    api_t *a = r->api;
    pthread_mutex_lock(&a->mu);
    a->pending++;
    pthread_mutex_unlock(&a->mu);
    MHD_suspend_connection(r->conn);
    if (submit(r) == 0) return true;
    pthread_mutex_lock(&a->mu);
    if (--a->pending == 0) pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    error(r, 503, "overloaded; retry later");
    MHD_resume_connection(r->conn);
    return false;
}

static int submit_order(req_t *r)
{
    const char *key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
    return engine_submit_order(r->api->e, &r->call, key, r->in.data ? r->in.data : "", r->in.len);
}

static int submit_stock(req_t *r)
{
    return engine_set_stock(r->api->e, &r->call, r->arg, r->qty);
}

/* GET /events: one event per second (tools/common/mhd-sse), numbered by the stream. */
static int next_event(void *arg, uint64_t *id, weft_buf_t *out)
{
    ++*id;
    return metrics_event(arg, out);
}

/* Answers the issue-10 routes that are not JSON: /metrics, /events, the dashboard. */
static enum MHD_Result send_other(req_t *r)
{
    struct MHD_Response *resp = NULL;
    const char *ct = "text/plain";
    if (r->route == R_METRICS) {
        if (metrics_prometheus(r->api->e, &r->call.body) < 0) {
            error(r, 503, "out of memory");
            return send_answer(r->conn, r);
        }
        resp = MHD_create_response_from_buffer(r->call.body.len, r->call.body.data,
                                               MHD_RESPMEM_MUST_COPY);
        ct = METRICS_CONTENT_TYPE;
    } else if (r->route == R_EVENTS) {
        tools_mhd_sse_opts_t so = {.delay = r->api->delay,
                                   .period_ns = 1000000000u,
                                   .retry_ms = 1000,
                                   .next = next_event,
                                   .arg = r->api->e};
        resp = tools_mhd_sse_response(r->conn, &so);
        if (!resp) return MHD_NO;
        ct = NULL; /* the stream sets its own headers */
    } else {
        size_t n = 0;
        const char *data = metrics_asset(r->arg ? r->arg : "/", &n, &ct);
        resp = MHD_create_response_from_buffer(n, (void *)data, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    if (ct) MHD_add_response_header(resp, "Content-Type", ct);
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    r->answered = true;
    return ret;
}

static enum MHD_Result dispatch(req_t *r)
{
    engine_t *e = r->api->e;
    switch (r->route) {
    case R_NOT_FOUND:
        error(r, 404, "not found");
        break;
    case R_METHOD:
        error(r, 405, "method not allowed");
        break;
    case R_HEALTH:
        engine_health(e, &r->call);
        break;
    case R_STATS:
        engine_get_stats(e, &r->call);
        break;
    case R_METRICS:
    case R_EVENTS:
    case R_ASSET:
        return send_other(r);
    case R_ORDER:
        if (!valid_arg(r->arg, 64))
            error(r, 404, "no such order");
        else
            engine_get_order(e, &r->call, r->arg);
        break;
    case R_STOCK: {
        if (!valid_arg(r->arg, ORDER_MAX_SKU)) {
            error(r, 400, "bad sku in the URL");
            break;
        }
        if (!r->put) {
            engine_get_stock(e, &r->call, r->arg);
            break;
        }
        if (r->too_big) {
            error(r, 413, "body larger than 65536 bytes");
            break;
        }
        json_error_t je;
        json_t *j = json_loadb(r->in.data ? r->in.data : "", r->in.len, 0, &je);
        json_t *q = json_is_object(j) ? json_object_get(j, "qty") : NULL;
        if (!j)
            error(r, 400, "bad JSON");
        else if (!json_is_object(j))
            error(r, 400, "body must be a JSON object");
        else if (!q)
            error(r, 400, "missing field 'qty'");
        else if (!json_is_integer(q) || json_integer_value(q) < 0)
            error(r, 400, "field 'qty' must be an integer >= 0");
        else {
            r->qty = json_integer_value(q);
            json_decref(j);
            r->call.arg = r;
            r->call.done = call_done;
            to_engine(r, submit_stock);
            return MHD_YES; /* answered when resumed */
        }
        json_decref(j);
        break;
    }
    case R_ORDERS: {
        if (r->too_big) {
            error(r, 413, "body larger than 65536 bytes");
            break;
        }
        const char *key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
        if (!key || !*key) {
            error(r, 400, "missing header 'Idempotency-Key'");
            break;
        }
        if (strlen(key) > ORDER_MAX_KEY) {
            error(r, 400, "header 'Idempotency-Key' is longer than 255 bytes");
            break;
        }
        r->call.arg = r;
        r->call.done = call_done;
        to_engine(r, submit_order);
        return MHD_YES; /* answered when resumed */
    }
    default:
        error(r, 500, "internal error");
    }
    /* Refused here, before the engine: count them as the engine counts its own 400s. */
    if (r->route == R_ORDERS) stats_count(engine_stats(e), STATS_BAD_REQUEST, 1);
    return send_answer(r->conn, r);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **con_cls)
{
    api_t *a = cls;
    req_t *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->api = a;
        r->conn = conn;
        r->route = route(method, url, &r->arg, &r->put);
        if (r->route == R_ASSET) r->arg = url; /* libmicrohttpd keeps the URL */
        weft_buf_init(&r->in, ORDER_MAX_BODY);
        weft_buf_init(&r->call.body, 0);
        *con_cls = r;
        return MHD_YES;
    }
    if (*size) {
        if (!r->too_big && weft_buf_append(&r->in, data, *size) < 0) r->too_big = true;
        *size = 0;
        return MHD_YES;
    }
    if (r->call.status) return send_answer(conn, r); /* resumed with the engine's answer */
    return dispatch(r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    req_t *r = *con_cls;
    if (!r) return;
    weft_buf_free(&r->in);
    weft_buf_free(&r->call.body);
    free(r);
    *con_cls = NULL;
}

int api_start(engine_t *e, const char *host, int port, int threads, api_t **out, char *url,
              size_t urlsz, char *err, size_t errsz)
{
    *out = NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errsz, "bad listen address '%s' (an IPv4 address)", host);
        return -EINVAL;
    }
    api_t *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    a->e = e;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (tools_mhd_delay_create(&a->delay) < 0) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a);
        return -ENOMEM;
    }
    a->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
                            0, NULL, NULL, handler, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(threads > 0 ? threads : 2),
                            MHD_OPTION_CONNECTION_LIMIT, 10000u, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_NOTIFY_COMPLETED,
                            completed, a, MHD_OPTION_END);
    if (!a->d) {
        snprintf(err, errsz, "cannot listen on %s:%d (address in use?)", host, port);
        tools_mhd_delay_destroy(a->delay);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(url, urlsz, "http://%s:%u", host, info ? (unsigned)info->port : (unsigned)port);
    *out = a;
    return 0;
}

void api_stop(api_t *a)
{
    if (!a) return;
    /* The listening socket is ours once quiesced: close it after the daemon stops. */
    MHD_socket lfd = MHD_quiesce_daemon(a->d);
    pthread_mutex_lock(&a->mu);
    while (a->pending) pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    tools_mhd_delay_stop(a->delay); /* open /events streams end now */
    MHD_stop_daemon(a->d);
    tools_mhd_delay_destroy(a->delay);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}
