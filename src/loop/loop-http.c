/* Asynchronous HTTP on the loop: libcurl's multi_socket interface driven by libuv polls and a
 * libuv timer (the pattern of curl's docs/examples/multi-uv.c).
 *
 * DESIGN
 * Threads: everything here runs on the loop thread (or on the destroying thread, which stands in
 * for it once the loop has stopped), except weft_http_fetch, which only posts to the loop.
 * libcurl tells us which sockets to watch (socket callback: one uv_poll_t per socket, created on
 * first interest and closed on CURL_POLL_REMOVE) and when to call it back (timer callback: one
 * uv_timer_t). Poll and timer events call curl_multi_socket_action, after which finished
 * transfers are collected from curl_multi_info_read and their callbacks run. User callbacks never
 * run inside libcurl's callbacks, except on_data (documented: it must not start or cancel).
 * Connections live in the multi handle's cache and are reused across transfers; easy handles are
 * recycled through a free list.
 * Invariants: a transfer is on `active` from start until its completion is delivered; a cancelled
 * transfer is removed from the multi handle at once and its callback deferred through the loop's
 * queue, so weft_http_cancel never calls back into its caller.
 */
#include "loop/loop-int.h"

#include "core/alloc.h"
#include "exec/future-int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <weft/err.h>

#define FREE_EASY_MAX 512

struct weft__loop_http {
    CURLM *multi;
    uv_timer_t timer;
    uv_timer_t cancel_watch; /* runs while some transfer has a cancel source */
    size_t nwatched;
    int open_timers;     /* at teardown */
    weft_http_t *active; /* doubly linked */
    size_t nactive;
    CURL **free_easy;
    size_t nfree;
    /* Poll handles by socket, kept (stopped) after libcurl removes a socket: an idle connection
     * comes back on the next transfer, and reusing its handle saves an allocation and the
     * uv_poll_init system calls per request. */
    struct sock_ctx **socks;
    size_t nsocks;
};

struct weft_http {
    weft_loop_t *loop;
    CURL *easy;
    weft__xfer_t x;
    weft_http_resp_t resp;
    char *url, *user_agent; /* owned copies of the option strings */
    weft_http_cb cb;
    void *arg;
    weft_loop_work_t done_work; /* deferred completion after a cancel */
    bool finished;
    bool watched; /* has a cancel flag or future: polled by cancel_watch */
    weft_http_t *prev, *next;
};

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    weft_loop_t *loop;
} sock_ctx_t;

static void check_done(weft_loop_t *loop);

/* ---- libcurl <-> libuv ---- */

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx_t *c = p->data;
    weft_loop_t *loop = c->loop;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(loop->http->multi, c->fd, flags, &running);
    check_done(loop);
}

static void on_curl_timer(uv_timer_t *t)
{
    weft_loop_t *loop = t->data;
    int running;
    curl_multi_socket_action(loop->http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(loop);
}

/* Close callback for handles whose data is the allocation that embeds them. */
static void free_sock(uv_handle_t *h)
{
    weft__free(h->data);
}

/* The handle watching socket `s`, made on first interest. NULL on allocation failure. */
static sock_ctx_t *sock_get(weft_loop_t *loop, curl_socket_t s)
{
    weft__loop_http_t *h = loop->http;
    if ((size_t)s < h->nsocks && h->socks[s]) return h->socks[s];
    if ((size_t)s >= h->nsocks) {
        size_t n = h->nsocks ? h->nsocks : 64;
        while (n <= (size_t)s) n *= 2;
        sock_ctx_t **t = weft__realloc(h->socks, n * sizeof *t);
        if (!t) return NULL;
        memset(t + h->nsocks, 0, (n - h->nsocks) * sizeof *t);
        h->socks = t;
        h->nsocks = n;
    }
    sock_ctx_t *c = weft__calloc(1, sizeof *c);
    if (!c) return NULL;
    if (uv_poll_init_socket(&loop->uv, &c->poll, s) < 0) {
        weft__free(c);
        return NULL;
    }
    c->poll.data = c;
    c->fd = s;
    c->loop = loop;
    h->socks[s] = c;
    return c;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    weft_loop_t *loop = userp;
    sock_ctx_t *c = socketp;
    if (what == CURL_POLL_REMOVE) {
        /* Close the handle now, while the descriptor is still curl's: libcurl may close it next,
         * and a handle kept for later would make libuv touch a number that may by then belong to
         * someone else (found by TSan with a server in the same process). */
        if (c) {
            curl_multi_assign(loop->http->multi, s, NULL);
            loop->http->socks[s] = NULL;
            uv_close((uv_handle_t *)&c->poll, free_sock);
        }
        return 0;
    }
    if (!c) {
        if (!(c = sock_get(loop, s))) return -1;
        curl_multi_assign(loop->http->multi, s, c);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= UV_WRITABLE;
    return uv_poll_start(&c->poll, events, on_poll) < 0 ? -1 : 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    weft_loop_t *loop = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&loop->http->timer);
    else /* even 0 goes through the loop: libcurl must not be re-entered from here */
        uv_timer_start(&loop->http->timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static int http_init(weft_loop_t *loop)
{
    if (loop->http) return 0;
    if (weft__http_global_init() < 0) return -ENOMEM;
    weft__loop_http_t *h = weft__calloc(1, sizeof *h);
    if (!h) return -ENOMEM;
    h->free_easy = weft__calloc(FREE_EASY_MAX, sizeof *h->free_easy);
    h->multi = curl_multi_init();
    if (!h->free_easy || !h->multi) {
        if (h->multi) curl_multi_cleanup(h->multi);
        weft__free(h->free_easy);
        weft__free(h);
        return -ENOMEM;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, loop);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, loop);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)loop->max_connections);
    uv_timer_init(&loop->uv, &h->timer);
    h->timer.data = loop;
    uv_timer_init(&loop->uv, &h->cancel_watch);
    h->cancel_watch.data = loop;
    loop->http = h;
    return 0;
}

/* ---- transfers ---- */

static void unlink_active(weft_loop_t *loop, weft_http_t *t)
{
    weft__loop_http_t *h = loop->http;
    if (t->prev)
        t->prev->next = t->next;
    else
        h->active = t->next;
    if (t->next) t->next->prev = t->prev;
    t->prev = t->next = NULL;
    h->nactive--;
    if (t->watched && --h->nwatched == 0) uv_timer_stop(&h->cancel_watch);
}

static void release_easy(weft_loop_t *loop, CURL *e)
{
    weft__loop_http_t *h = loop->http;
    if (h->nfree < FREE_EASY_MAX && !loop->destroying)
        h->free_easy[h->nfree++] = e;
    else
        curl_easy_cleanup(e);
}

/* Delivers the result and frees the transfer. */
static void deliver(weft_http_t *t)
{
    t->cb(t, &t->resp, t->arg);
    weft_http_resp_free(&t->resp);
    weft__free(t->url);
    weft__free(t->user_agent);
    weft__free(t);
}

/* Removes a finished (or cancelled) transfer from libcurl and fills its response. */
static void end_transfer(weft_http_t *t, CURLcode code)
{
    weft_loop_t *loop = t->loop;
    curl_multi_remove_handle(loop->http->multi, t->easy);
    weft__xfer_finish(t->easy, &t->x, code);
    release_easy(loop, t->easy);
    t->easy = NULL;
    t->finished = true;
    unlink_active(loop, t);
}

static void check_done(weft_loop_t *loop)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(loop->http->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        weft_http_t *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode code = m->data.result;
        end_transfer(t, code); /* invalidates m */
        deliver(t);
    }
}

/* libcurl only calls its progress callback when a transfer is driven, and a transfer waiting for
 * a slow server is not: so transfers with a cancel source are also checked here, 20 times a
 * second, for as long as there are any. */
static void on_cancel_watch(uv_timer_t *timer)
{
    weft_loop_t *loop = timer->data;
    for (weft_http_t *t = loop->http->active, *next; t; t = next) {
        next = t->next;
        if (!t->watched) continue;
        /* Relaxed: see on_progress in http.c; a request seen one tick later is fine. */
        bool flag = t->x.o.cancel && atomic_load_explicit(t->x.o.cancel, memory_order_relaxed);
        if (flag || (t->x.cancel_future && weft_future_cancel_requested(t->x.cancel_future)))
            weft_http_cancel(t);
    }
}

static char *dup_opt(const char *s, bool *fail)
{
    if (!s) return NULL;
    char *d = weft__strdup(s);
    if (!d) *fail = true;
    return d;
}

static int start(weft_loop_t *loop, const weft_http_opts_t *opts, weft_http_cb cb, void *arg,
                 weft_future_t *cancel_future, weft_http_t **out)
{
    if (out) *out = NULL;
    if (loop->destroying) return -ESHUTDOWN;
    if (!opts || !opts->url) return -EINVAL;
    int rc = http_init(loop);
    if (rc < 0) return rc;
    weft__loop_http_t *h = loop->http;
    weft_http_t *t = weft__calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    bool fail = false;
    t->url = dup_opt(opts->url, &fail);
    t->user_agent = dup_opt(opts->user_agent, &fail);
    t->easy = h->nfree ? h->free_easy[--h->nfree] : curl_easy_init();
    if (fail || !t->easy) {
        rc = -ENOMEM;
        goto fail;
    }
    weft_http_opts_t o = *opts;
    o.url = t->url;
    o.user_agent = t->user_agent;
    rc = weft__xfer_setup(t->easy, &t->x, &o, &t->resp, cancel_future);
    if (rc < 0) goto fail;
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    t->loop = loop;
    t->cb = cb;
    t->arg = arg;
    if (curl_multi_add_handle(h->multi, t->easy) != CURLM_OK) {
        rc = -ENOMEM;
        goto fail;
    }
    t->next = h->active;
    if (t->next) t->next->prev = t;
    h->active = t;
    h->nactive++;
    if (opts->cancel || cancel_future) {
        t->watched = true;
        if (h->nwatched++ == 0) uv_timer_start(&h->cancel_watch, on_cancel_watch, 50, 50);
    }
    if (out) *out = t;
    return 0;
fail:
    weft__xfer_release(&t->x);
    if (t->easy) release_easy(loop, t->easy);
    weft_http_resp_free(&t->resp);
    weft__free(t->url);
    weft__free(t->user_agent);
    weft__free(t);
    return rc;
}

int weft_http_start(weft_loop_t *loop, const weft_http_opts_t *opts, weft_http_cb cb, void *arg,
                    weft_http_t **out)
{
    if (out) *out = NULL;
    if (!loop || !cb) return -EINVAL;
    if (!weft__loop_thread_ok(loop)) return -EPERM;
    return start(loop, opts, cb, arg, NULL, out);
}

static void deliver_deferred(void *arg, int status)
{
    deliver(arg);
}

int weft_http_cancel(weft_http_t *t)
{
    if (!t) return -EINVAL;
    if (!weft__loop_thread_ok(t->loop)) return -EPERM;
    if (t->finished) return -EALREADY;
    end_transfer(t, CURLE_ABORTED_BY_CALLBACK);
    t->resp.error = -ECANCELED;
    snprintf(t->resp.errmsg, sizeof t->resp.errmsg, "cancelled");
    t->done_work.fn = deliver_deferred;
    t->done_work.arg = t;
    weft__loop_push_internal(t->loop, &t->done_work);
    return 0;
}

size_t weft_http_active(const weft_loop_t *loop)
{
    weft__loop_thread_check(loop, "weft_http_active");
    return loop->http ? loop->http->nactive : 0;
}

/* ---- futures ---- */

typedef struct fetch_req {
    weft_loop_work_t work;
    weft_http_opts_t opts;
    char *url, *user_agent, *cacert;
    weft_future_t *f; /* our reference */
    weft_loop_t *loop;
} fetch_req_t;

static void free_fetch_req(fetch_req_t *r)
{
    weft_future_release(r->f);
    weft__free(r->url);
    weft__free(r->user_agent);
    weft__free(r->cacert);
    weft__free(r);
}

static void free_resp_value(void *p)
{
    weft_http_resp_free(p);
    weft__free(p);
}

static void fetch_done(weft_http_t *t, weft_http_resp_t *resp, void *arg)
{
    fetch_req_t *r = arg;
    weft_http_resp_t *copy = weft__malloc(sizeof *copy);
    if (!copy) {
        weft_future_fail(r->f, -ENOMEM, "out of memory");
    } else {
        *copy = *resp;
        memset(resp, 0, sizeof *resp); /* the future owns the fields now */
        if (copy->error)
            weft__future_settle(r->f, copy->error, copy, sizeof *copy, free_resp_value,
                                copy->errmsg[0] ? weft__strdup(copy->errmsg) : NULL);
        else
            weft_future_complete(r->f, 0, copy, sizeof *copy, free_resp_value);
    }
    free_fetch_req(r);
}

static void fetch_start(void *arg, int status)
{
    fetch_req_t *r = arg;
    if (status < 0) {
        weft_future_fail(r->f, status, "event loop destroyed");
        free_fetch_req(r);
        return;
    }
    if (weft_future_start(r->f) < 0) { /* cancelled before it started */
        free_fetch_req(r);
        return;
    }
    int rc = start(r->loop, &r->opts, fetch_done, r, r->f, NULL);
    if (rc < 0) {
        weft_future_fail(r->f, rc, "%s", weft_strerror(rc));
        free_fetch_req(r);
    }
}

int weft_http_fetch(weft_loop_t *loop, const weft_http_opts_t *opts, weft_future_t **out)
{
    if (!out) return -EINVAL;
    *out = NULL;
    if (!loop || !opts || !opts->url) return -EINVAL;
    if (opts->post_body || opts->headers) return -EINVAL; /* not copied for the deferred start */
    fetch_req_t *r = weft__calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    bool fail = false;
    r->opts = *opts;
    r->url = dup_opt(opts->url, &fail);
    r->user_agent = dup_opt(opts->user_agent, &fail);
    r->cacert = dup_opt(opts->cacert, &fail);
    r->opts.url = r->url;
    r->opts.cacert = r->cacert;
    r->opts.user_agent = r->user_agent;
    r->loop = loop;
    r->f = weft_future_create();
    if (fail || !r->f) {
        free_fetch_req(r);
        return -ENOMEM;
    }
    r->work.fn = fetch_start;
    r->work.arg = r;
    weft_future_t *mine = weft_future_retain(r->f);
    int rc = weft_loop_post_work(loop, &r->work);
    if (rc < 0) {
        weft_future_release(mine);
        free_fetch_req(r);
        return rc;
    }
    *out = mine;
    return 0;
}

/* ---- teardown ---- */

void weft__loop_http_cancel_all(weft_loop_t *loop)
{
    if (!loop->http) return;
    while (loop->http->active) {
        weft_http_t *t = loop->http->active;
        end_transfer(t, CURLE_ABORTED_BY_CALLBACK);
        t->resp.error = -ECANCELED;
        snprintf(t->resp.errmsg, sizeof t->resp.errmsg, "event loop destroyed");
        deliver(t);
    }
}

static void timer_closed(uv_handle_t *t)
{
    weft__loop_http_t *h = t->data;
    if (--h->open_timers == 0) weft__free(h);
}

void weft__loop_http_close(weft_loop_t *loop)
{
    weft__loop_http_t *h = loop->http;
    if (!h) return;
    curl_multi_cleanup(h->multi); /* closes connections; socket_cb stops their polls */
    for (size_t i = 0; i < h->nfree; i++) curl_easy_cleanup(h->free_easy[i]);
    weft__free(h->free_easy);
    for (size_t i = 0; i < h->nsocks; i++)
        if (h->socks[i]) uv_close((uv_handle_t *)&h->socks[i]->poll, free_sock);
    weft__free(h->socks);
    /* The timers are embedded in h: h is freed by the second close callback, whichever order
     * libuv runs them in. */
    h->timer.data = h->cancel_watch.data = h;
    h->open_timers = 2;
    uv_close((uv_handle_t *)&h->timer, timer_closed);
    uv_close((uv_handle_t *)&h->cancel_watch, timer_closed);
    loop->http = NULL;
}
