/* weft/loop.h - an event loop (libuv) with timers, a cross-thread handoff queue, awaitable
 * futures and asynchronous HTTP (libcurl's multi_socket interface).
 *
 * One thread runs the loop: either a thread the loop starts itself (opts.own_thread) or the
 * caller, inside weft_loop_run(). That thread is "the loop thread"; every callback below runs on
 * it, one at a time, so loop-side state needs no locks. Other threads reach the loop only through
 * the functions marked "any thread": weft_loop_post() hands it a function to run, and
 * weft_loop_await() runs a callback there when a future completes (a pool worker's result, for
 * instance). Functions marked "loop thread only" may also be called by the thread that created a
 * caller-driven loop while it is not running.
 *
 * Callback contract: a function that takes a callback and fails never calls it; one that succeeds
 * calls it exactly once. Callbacks run with no weft lock held. When a loop is destroyed, work
 * still queued or awaited is called with status -ECANCELED on the destroying thread, and nothing
 * is called after weft_loop_destroy() returns.
 *
 * HTTP: weft_loop_http_start() runs transfers on the loop (hundreds at once on one thread);
 * weft_http_session_perform() runs one blocking transfer on the calling thread. Both configure
 * libcurl identically (timeouts, redirects, compression, body cap, connection reuse) and fill the
 * same weft_http_resp_t, so the two are directly comparable.
 */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>
#include <weft/future.h>

typedef struct weft_loop weft_loop_t;

typedef struct weft_loop_opts {
    bool own_thread;     /* true: weft_loop_create starts a thread that runs the loop until
                            weft_loop_destroy; false: the caller runs it with weft_loop_run */
    const char *name;    /* name of that thread (at most 15 chars used); NULL: "weft-loop" */
    int max_connections; /* HTTP connections kept open for reuse; 0: 256 */
} weft_loop_opts_t;

/* ---- lifecycle ---- */

/* Creates a loop; `opts` may be NULL (caller-driven, defaults). Returns 0, -ENOMEM, or a libuv or
 * pthread error as a negative errno (*out = NULL on failure). Ownership: returns owned; free with
 * weft_loop_destroy(). Thread safety: any thread. */
int weft_loop_create(weft_loop_t **out, const weft_loop_opts_t *opts);

/* Runs a caller-driven loop on the calling thread until weft_loop_stop(). Returns 0, -EINVAL for
 * an own-thread loop, or -EBUSY if it is already running. It may be called again after it
 * returns. Thread safety: one thread at a time; that thread is the loop thread meanwhile. */
int weft_loop_run(weft_loop_t *loop);

/* Makes weft_loop_run() return once the callback in progress (if any) has finished. Work posted
 * before or after stays queued for the next run. Returns 0, or -EINVAL for an own-thread loop
 * (destroy stops those). Thread safety: any thread, including from a loop callback. */
int weft_loop_stop(weft_loop_t *loop);

/* Stops the loop (joining its thread), cancels HTTP transfers, closes timers, and calls every
 * callback still owed with status -ECANCELED on the calling thread; then frees the loop. Handles
 * (timers, transfers) become invalid. Ownership: takes `loop`. Thread safety: any thread except
 * the loop thread while the loop runs; no other thread may use the loop once this is called. */
void weft_loop_destroy(weft_loop_t *loop);

/* True if the calling thread is the one running the loop now. Thread safety: any thread. */
bool weft_loop_on_loop_thread(const weft_loop_t *loop);

/* Milliseconds of the loop's cached clock (libuv's uv_now), the base of timer timeouts.
 * Thread safety: loop thread only. */
uint64_t weft_loop_now_ms(const weft_loop_t *loop);

/* The libuv loop underneath, for libraries that attach their own handles to it (the order
 * engine's hiredis libuv adapter). Handles added this way must be closed on the loop thread before
 * weft_loop_destroy(); closing callbacks still pending then are run by it. Ownership: borrowed,
 * valid until weft_loop_destroy(). Thread safety: loop thread only. */
typedef struct uv_loop_s uv_loop_t;
uv_loop_t *weft_loop_uv(weft_loop_t *loop);

/* ---- the handoff queue: any thread -> loop thread ---- */

/* status is 0, or -ECANCELED when the loop is destroyed before the function could run. */
typedef void (*weft_loop_fn)(void *arg, int status);

/* A caller-owned queue record, so that posting does not allocate. Keep it alive and unmoved
 * until its function has been called. */
typedef struct weft_loop_work {
    weft_loop_fn fn;              /* public */
    void *arg;                    /* public */
    struct weft_loop_work *next_; /* private */
} weft_loop_work_t;

/* Queues fn(arg, 0) to run on the loop thread, in FIFO order with other posts. Wake-ups
 * coalesce; the loop drains the whole queue each time it wakes. Returns 0, -ENOMEM, or
 * -ESHUTDOWN once destroy has begun (then fn is never called). Ownership: `arg` stays the
 * caller's. Thread safety: any thread. */
int weft_loop_post(weft_loop_t *loop, weft_loop_fn fn, void *arg);

/* As weft_loop_post with a caller-owned record (fn and arg set by the caller). No allocation.
 * Returns 0 or -ESHUTDOWN. Ownership: borrows `w` until w->fn is called. Thread safety: any. */
int weft_loop_post_work(weft_loop_t *loop, weft_loop_work_t *w);

/* ---- futures ---- */

/* status is 0 when f completed (read its result with weft_future_status/value), or -ECANCELED
 * when the loop was destroyed first (f may still be pending then). */
typedef void (*weft_loop_await_cb)(weft_future_t *f, void *arg, int status);

/* Calls cb(f, arg, 0) on the loop thread once `f` is DONE (at the loop's next wake-up if it
 * already is). The completing thread only queues the call, so cb never runs on a pool worker.
 * Returns 0, -ENOMEM or -ESHUTDOWN (then cb is never called). Ownership: holds a reference to f
 * until cb has returned. Thread safety: any thread. */
int weft_loop_await(weft_loop_t *loop, weft_future_t *f, weft_loop_await_cb cb, void *arg);

/* ---- timers ---- */

typedef struct weft_loop_timer weft_loop_timer_t;
typedef void (*weft_loop_timer_cb)(weft_loop_timer_t *t, void *arg);

/* Creates a stopped timer. Returns 0 or -ENOMEM (*out = NULL). Ownership: returns owned; free
 * with weft_loop_timer_destroy() (or the loop's destroy). Thread safety: loop thread only. */
int weft_loop_timer_create(weft_loop_t *loop, weft_loop_timer_cb cb, void *arg,
                           weft_loop_timer_t **out);

/* (Re)starts the timer: cb runs after timeout_ms, then every repeat_ms if repeat_ms > 0. Starting
 * a running timer restarts it. Returns 0. Thread safety: loop thread only. */
int weft_loop_timer_start(weft_loop_timer_t *t, uint64_t timeout_ms, uint64_t repeat_ms);

/* Stops the timer; cb will not run until it is started again. Thread safety: loop thread only,
 * including from its own callback. */
void weft_loop_timer_stop(weft_loop_timer_t *t);

/* Stops and frees the timer (its memory goes at the loop's next iteration). Thread safety: loop
 * thread only, including from its own callback. NULL is ignored. */
void weft_loop_timer_destroy(weft_loop_timer_t *t);

/* ---- HTTP ---- */

/* Times of a transfer in microseconds since it started, as libcurl measures them (cumulative:
 * connect includes dns, and so on; 0 when a phase did not happen, e.g. a reused connection has
 * no dns or connect time). With redirects, the times add up over every hop. */
typedef struct weft_http_timings {
    uint64_t dns_us;        /* name resolved (CURLINFO_NAMELOOKUP_TIME_T) */
    uint64_t connect_us;    /* TCP connected (CURLINFO_CONNECT_TIME_T) */
    uint64_t tls_us;        /* TLS handshake done (CURLINFO_APPCONNECT_TIME_T), 0 for http */
    uint64_t first_byte_us; /* first response byte (CURLINFO_STARTTRANSFER_TIME_T) */
    uint64_t total_us;      /* all done (CURLINFO_TOTAL_TIME_T) */
    uint64_t redirect_us;   /* spent on redirects before the final hop (CURLINFO_REDIRECT_TIME_T) */
} weft_http_timings_t;

/* The result of one transfer. Fields marked "owned" are freed by weft_http_resp_free(); a
 * callback may take one by copying the pointer and setting the field to NULL. */
typedef struct weft_http_resp {
    int error;          /* 0 if a response arrived (whatever its status); else -ETIMEDOUT,
                           -ECONNREFUSED, -ECONNRESET, -EMSGSIZE (over max_body), -ECANCELED,
                           -EINVAL (bad URL), -EPROTO, WEFT_EDNS, WEFT_ESLOW, WEFT_EREDIRECTS,
                           WEFT_ETLS, or what on_data returned */
    int curl_code;      /* the CURLcode, for detail; 0 on success */
    char errmsg[256];   /* libcurl's message for the failure, "" if none */
    long status;        /* HTTP status of the final response, 0 if none arrived */
    long redirects;     /* redirects followed */
    char *final_url;    /* owned: the URL of the final response */
    char *content_type; /* owned: Content-Type of the final response, or NULL */
    char *retry_after;  /* owned: Retry-After of the final response (raw value), or NULL */
    uint64_t bytes;     /* body bytes received, after content decoding */
    bool stopped;       /* on_data ended the transfer early (error stays 0) */
    weft_buf_t body;    /* the body, if opts.keep_body */
    weft_http_timings_t t;
} weft_http_resp_t;

/* Frees the owned fields of `r` (not `r` itself) and zeroes it. Thread safety: any thread. */
void weft_http_resp_free(weft_http_resp_t *r);

/* Called with each piece of the body as it arrives, on the thread doing the transfer; `resp`
 * already holds status and content_type. Return 0 to continue, 1 to end the transfer early
 * (resp->stopped, error 0; the connection is closed), or a negative error to fail it with that
 * error. It must not start or cancel transfers. */
typedef int (*weft_http_data_fn)(void *arg, const char *data, size_t len,
                                 const weft_http_resp_t *resp);

typedef struct weft_http_opts {
    const char *url;           /* http:// or https:// (other schemes fail with -EINVAL) */
    long connect_timeout_ms;   /* 0: 10000 */
    long timeout_ms;           /* the whole transfer, redirects included; 0: 30000 */
    long low_speed_limit;      /* abort (WEFT_ESLOW) below this many bytes/s ... */
    long low_speed_time_s;     /* ... sustained for this long; 0 for either: never */
    int max_redirects;         /* 0: 10; < 0: do not follow redirects */
    size_t max_body;           /* bytes; past it the transfer fails with -EMSGSIZE; 0: 8 MiB */
    bool keep_body;            /* collect the body in resp->body (up to max_body) */
    const char *user_agent;    /* NULL: "weft/VERSION" */
    weft_http_data_fn on_data; /* optional streaming callback */
    void *data_arg;
    const atomic_bool *cancel; /* optional: set it to abort the transfer with -ECANCELED */
    const char *post_body;     /* when set: a POST of these post_len bytes (copied), not a GET */
    size_t post_len;
    const char *const *headers; /* extra request headers, "Name: value", NULL-terminated (copied);
                                   NULL: none */
} weft_http_opts_t;

/* One transfer on the loop. */
typedef struct weft_http weft_http_t;

/* resp is borrowed for the duration of the call (take fields as described above). The transfer
 * handle is invalid once the callback returns. */
typedef void (*weft_http_cb)(weft_http_t *h, weft_http_resp_t *resp, void *arg);

/* Starts a transfer; cb(h, resp, arg) runs on the loop thread when it ends, however it ends.
 * Strings in `opts` are copied. Returns 0, -ENOMEM or -EINVAL (*out = NULL; cb never called).
 * Ownership: *out (may be NULL if not wanted) is borrowed until cb runs. Thread safety: loop
 * thread only, and not from inside an on_data callback. */
int weft_loop_http_start(weft_loop_t *loop, const weft_http_opts_t *opts, weft_http_cb cb,
                         void *arg, weft_http_t **out);

/* Cancels a running transfer: its cb runs later (not inside this call) with error -ECANCELED.
 * Returns 0, or -EALREADY if it has already finished and its callback is pending. Thread safety:
 * loop thread only, and not from an on_data callback. */
int weft_loop_http_cancel(weft_http_t *h);

/* Starts a transfer from any thread and returns a future for it (GET only: post_body and headers
 * make it fail with -EINVAL; use weft_loop_http_start on the loop thread for those). The future's
 * status is resp->error and its value is the weft_http_resp_t * (owned by the future, with its body
 * if opts->keep_body). weft_future_cancel() on it aborts the transfer. on_data, if set, runs on the
 * loop thread. Returns 0, -ENOMEM, -EINVAL or -ESHUTDOWN (*out = NULL). Ownership: returns an
 * owned future reference; release it. Thread safety: any thread. */
int weft_loop_http_fetch(weft_loop_t *loop, const weft_http_opts_t *opts, weft_future_t **out);

/* Number of transfers in progress. Thread safety: loop thread only. */
size_t weft_loop_http_active(const weft_loop_t *loop);

/* A blocking HTTP client for one thread, keeping its connections for reuse between calls. */
typedef struct weft_http_session weft_http_session_t;

/* Returns 0 or -ENOMEM (*out = NULL). Ownership: returns owned; free with
 * weft_http_session_destroy(). Thread safety: any thread. */
int weft_http_session_create(weft_http_session_t **out);

/* Runs one transfer to the end on the calling thread and fills `resp` (zero it first, or reuse one
 * emptied by weft_http_resp_free). Returns resp->error. Ownership: borrows everything; the caller
 * frees resp with weft_http_resp_free(). Thread safety: one thread at a time per session. */
int weft_http_session_perform(weft_http_session_t *s, const weft_http_opts_t *opts,
                              weft_http_resp_t *resp);

/* Closes the session's connections and frees it. NULL is ignored. */
void weft_http_session_destroy(weft_http_session_t *s);

#endif /* WEFT_LOOP_H */
