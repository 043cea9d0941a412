/* Internal to src/loop: the loop structure and the libcurl pieces that loop.c, loop-http.c and
 * http.c share. See the DESIGN comment in loop.c. */
#ifndef WEFT_LOOP_LOOP_INT_H
#define WEFT_LOOP_LOOP_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>
#include <weft/http.h>

typedef struct await_node await_node_t;
typedef struct weft__loop_http weft__loop_http_t;

struct weft_loop {
    uv_loop_t uv;
    uv_async_t async;

    /* Shared with other threads; guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* destroy waits here for awaits being detached by a completer */
    weft_loop_work_t *qhead, *qtail;
    await_node_t *awaits; /* attached to a pending future */
    bool closed;          /* destroy has begun: no more posts or awaits */

    _Atomic bool stop_req; /* weft_loop_stop was called */
    _Atomic bool running;  /* a caller is inside weft_loop_run */

    bool own_thread;
    pthread_t creator; /* written once by create: may use a caller-driven loop while stopped */
    pthread_t thread;
    char name[16];
    int max_connections;

    /* Loop-thread state. */
    struct weft_loop_timer *timers;
    weft__loop_http_t *http; /* created by the first transfer */
    bool destroying;
};

/* Per-transfer state the curl callbacks use, in both the loop and the blocking session. */
typedef struct weft__xfer {
    weft_http_opts_t o; /* with defaults applied; strings borrowed from the caller or the owner */
    weft_http_resp_t *resp;
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
    int abort_error;              /* set when our write callback ends the transfer */
    bool body_started;            /* the write callback has run once */
    weft_future_t *cancel_future; /* abort when its cancellation is requested */
    struct curl_slist *headers;   /* owned copy of o.headers, freed by weft__xfer_release */
} weft__xfer_t;

/* curl_global_init, once per process. Returns 0 or -ENOMEM. */
int weft__http_global_init(void);

/* Resets `e` and configures it for `opts` (defaults applied into x->o), writing into `resp`;
 * the transfer aborts with -ECANCELED once cancellation of `cancel_future` (may be NULL) is
 * requested. Returns 0, -EINVAL (no URL) or -ENOMEM. */
int weft__xfer_setup(CURL *e, weft__xfer_t *x, const weft_http_opts_t *opts, weft_http_resp_t *resp,
                     weft_future_t *cancel_future);

/* Fills x->resp from `e` after the transfer ended with `code`, then releases what setup
 * allocated (weft__xfer_release). */
void weft__xfer_finish(CURL *e, weft__xfer_t *x, CURLcode code);

/* Frees what weft__xfer_setup allocated besides the response (the header list). Idempotent. */
void weft__xfer_release(weft__xfer_t *x);

/* Loop HTTP teardown, called by weft_loop_destroy on the destroying thread: first cancel (calls
 * callbacks), then free curl and close poll handles. */
void weft__loop_http_cancel_all(weft_loop_t *loop);
void weft__loop_http_close(weft_loop_t *loop);

/* True if the calling thread may make "loop thread only" calls: it runs the loop now (or
 * stands in for it in destroy), or it created this caller-driven loop and the loop is not
 * running. Public loop-thread-only functions return -EPERM otherwise (weft/loop.h). */
bool weft__loop_thread_ok(const weft_loop_t *loop);

/* Aborts with a message naming `fn` if weft__loop_thread_ok(loop) is false: for the few
 * loop-thread-only functions that cannot return an error. */
void weft__loop_thread_check(const weft_loop_t *loop, const char *fn);

/* Queues a loop-internal work record even while destroy runs (for deferred completions).
 * Loop thread only. */
void weft__loop_push_internal(weft_loop_t *loop, weft_loop_work_t *w);

#endif
