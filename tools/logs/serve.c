/* weft logs: `--follow ... --serve [HOST:]PORT`, the live dashboard over HTTP (serve.h).
 *
 * DESIGN
 * Threads: the follower's (the caller's, on weft's loop: run-follow.c) publishes the report JSON
 * each second when it changed; libmicrohttpd's one internal polling thread answers GET / and
 * GET /events; the delay's timer thread (tools/common/mhd-delay) resumes the event streams,
 * which sleep suspended between their one-second ticks (tools/common/mhd-sse, the SSE writer
 * `weft orders serve` uses too). A live log needs no more than that: one report a second to a
 * few browsers.
 * The snapshot handed between the threads: `json` (with its sequence number `seq`) is owned by
 * the server and touched only under `mu`: publish copies the caller's bytes into it (the
 * caller's buffer is borrowed for the call only) and bumps `seq`; a reader (a stream's tick, a
 * GET /) copies it, under `mu`, into memory of its own (the stream's buffer, freed with its
 * response; the page's buffer, freed by libmicrohttpd once sent). No pointer into `json` ever
 * leaves the lock, so there is no reference count and nothing to wait for: the snapshot lives
 * until the next publish replaces it or stop frees it. `meta` is copied at start and read-only
 * after. mu is the only lock and is never held across a libmicrohttpd call.
 * Stop order: quiesce (no new connections), stop the delay (every stream ends), stop the
 * daemon (joins its thread), close the listening socket, free.
 * Binding: the socket is ours (bound before the daemon starts, SO_REUSEADDR so that a restart
 * does not wait for TIME_WAIT), so a port in use is reported by its errno and nothing starts.
 */
#include "logs/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/buf.h>

#include "common/cli-int.h"
#include "common/mhd-delay-int.h"
#include "common/mhd-sse-int.h"
#include "logs/html.h"

struct weft_logs_server {
    struct MHD_Daemon *d;
    tools_mhd_delay_t *delay;
    int lfd;
    char *inputs, *formats; /* meta, read-only */
    pthread_mutex_t mu;
    weft_buf_t json; /* under mu: the current report (without its final newline) */
    uint64_t seq;    /* under mu: bumped by each publish; 0 before the first */
};

int weft_logs_serve_parse(const char *spec, char *host, size_t hostsz, int *port)
{
    const char *colon = strrchr(spec, ':');
    const char *p = colon ? colon + 1 : spec;
    long v;
    if (weft_cli_parse_int(p, 0, 65535, &v) != 0) return -EINVAL;
    size_t n = colon ? (size_t)(colon - spec) : 0;
    const char *h = n ? spec : "127.0.0.1"; /* "PORT" and ":PORT": the default host */
    if (!n) n = strlen(h);
    if (n == 9 && strncmp(h, "localhost", 9) == 0) {
        h = "127.0.0.1";
        n = 9;
    }
    if (n == 0 || n >= hostsz) return -EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1) return -EINVAL;
    *port = (int)v;
    return 0;
}

/* A stream's tick: the current report if it changed since the stream's last event. */
static int next_report(void *arg, uint64_t *id, weft_buf_t *out)
{
    weft_logs_server_t *s = arg;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->seq && s->seq != *id) {
        rc = weft_buf_append(out, s->json.data, s->json.len);
        if (!rc) *id = s->seq;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *ctype,
                              void *data, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    if (status == 405) MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    weft_logs_server_t *s = cls;
    if (!*con_cls) { /* the headers: answer once the request is complete */
        *con_cls = s;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* a body is not wanted: discard it */
        return MHD_YES;
    }
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool page = strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0;
    bool events = strcmp(url, "/events") == 0;
    if (!page && !events)
        return answer(conn, 404, "text/plain", "not found\n", 10, MHD_RESPMEM_PERSISTENT);
    if (!get)
        return answer(conn, 405, "text/plain", "method not allowed\n", 19, MHD_RESPMEM_PERSISTENT);
    if (events) {
        tools_mhd_sse_opts_t o = {.delay = s->delay,
                                  .period_ns = 1000000000u,
                                  .keepalive_ns = 15000000000u,
                                  .retry_ms = 1000,
                                  .event = "report",
                                  .next = next_report,
                                  .arg = s};
        struct MHD_Response *r = tools_mhd_sse_response(conn, &o);
        if (!r) return MHD_NO;
        enum MHD_Result ret = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    weft_buf_t j, b;
    weft_buf_init(&j, 0);
    weft_buf_init(&b, 0);
    pthread_mutex_lock(&s->mu);
    int rc = weft_buf_append(&j, s->json.data, s->json.len);
    pthread_mutex_unlock(&s->mu);
    weft_logs_meta_t m = {.inputs = s->inputs, .formats = s->formats};
    if (!rc)
        rc = weft_logs_write_html_json(&b, j.len ? j.data : "{}", j.len ? j.len : 2, &m, 0,
                                       "/events"); /* "{}": nothing published yet */
    weft_buf_free(&j);
    if (rc) {
        weft_buf_free(&b);
        return answer(conn, 503, "text/plain", "out of memory\n", 14, MHD_RESPMEM_PERSISTENT);
    }
    return answer(conn, 200, "text/html; charset=utf-8", b.data, b.len, MHD_RESPMEM_MUST_FREE);
}

static void server_free(weft_logs_server_t *s)
{
    if (s->lfd >= 0) close(s->lfd);
    tools_mhd_delay_destroy(s->delay);
    weft_buf_free(&s->json);
    pthread_mutex_destroy(&s->mu);
    free(s->inputs);
    free(s->formats);
    free(s);
}

int weft_logs_serve_start(const char *host, int port, const weft_logs_meta_t *meta,
                          weft_logs_server_t **out, char *url, size_t urlsz, char *err,
                          size_t errsz)
{
    *out = NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port < 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errsz, "bad address %s:%d (an IPv4 address and a port 0..65535)", host, port);
        return -EINVAL;
    }
    weft_logs_server_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->lfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    weft_buf_init(&s->json, 0);
    s->inputs = meta && meta->inputs ? strdup(meta->inputs) : NULL;
    s->formats = meta && meta->formats ? strdup(meta->formats) : NULL;
    int rc = tools_mhd_delay_create(&s->delay);
    if (!rc && ((meta && meta->inputs && !s->inputs) || (meta && meta->formats && !s->formats)))
        rc = -ENOMEM;
    if (rc) {
        snprintf(err, errsz, "cannot start the server: %s", strerror(-rc));
        server_free(s);
        return rc;
    }
    int one = 1;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s->lfd, 64) != 0) {
        rc = -errno;
        snprintf(err, errsz, "cannot listen on %s:%d: %s", host, port,
                 rc == -EADDRINUSE ? "the port is in use" : strerror(-rc));
        server_free(s);
        return rc;
    }
    socklen_t sl = sizeof sa;
    getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC, 0,
        NULL, NULL, handler, s, MHD_OPTION_LISTEN_SOCKET, s->lfd, MHD_OPTION_CONNECTION_LIMIT, 256u,
        MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errsz, "cannot start the HTTP server on %s:%d", host, port);
        server_free(s);
        return -EIO;
    }
    snprintf(url, urlsz, "http://%s:%u/", host, (unsigned)ntohs(sa.sin_port));
    *out = s;
    return 0;
}

int weft_logs_serve_publish(weft_logs_server_t *s, const char *json, size_t len)
{
    while (len && json[len - 1] == '\n') len--; /* an event's data ends at its line's end */
    weft_buf_t copy;
    weft_buf_init(&copy, 0);
    if (weft_buf_append(&copy, json, len) != 0) {
        weft_buf_free(&copy);
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    weft_buf_t old = s->json;
    s->json = copy;
    s->seq++;
    pthread_mutex_unlock(&s->mu);
    weft_buf_free(&old);
    return 0;
}

void weft_logs_serve_stop(weft_logs_server_t *s)
{
    if (!s) return;
    MHD_socket lfd = MHD_quiesce_daemon(s->d); /* the listening socket stays ours */
    tools_mhd_delay_stop(s->delay);            /* every stream ends */
    MHD_stop_daemon(s->d);
    if (lfd == MHD_INVALID_SOCKET) s->lfd = -1; /* closed by the daemon */
    server_free(s);
}
