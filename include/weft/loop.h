/* weft/loop.h - an event loop (libuv) with timers, a cross-thread handoff queue and awaitable
 * futures. HTTP on the loop (libcurl) is in weft/http.h.
 *
 * One thread runs the loop: either a thread the loop starts itself (opts.own_thread) or the
 * caller, inside weft_loop_run(). That thread is "the loop thread"; every callback below runs on
 * it, one at a time, so loop-side state needs no locks. Other threads reach the loop only through
 * the functions marked "any thread": weft_loop_post() hands it a function to run, and
 * weft_loop_await() runs a callback there when a future completes (a pool worker's result, for
 * instance). Functions marked "loop thread only" may also be called by the thread that created a
 * caller-driven loop while it is not running; from any other thread they return -EPERM and do
 * nothing (the ones that cannot return an error, weft_loop_now_ms and weft_http_active, abort
 * with a message instead).
 *
 * Callback contract: a function that takes a callback and fails never calls it; one that succeeds
 * calls it exactly once. Callbacks run with no weft lock held. When a loop is destroyed, work
 * still queued or awaited is called with status -ECANCELED on the destroying thread, and nothing
 * is called after weft_loop_destroy() returns.
 *
 * Lifetime: every record and argument handed to the loop comes back by one event, named in each
 * ownership line below; the rule and the table are in docs/lifetime.md.
 */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/future.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_loop weft_loop_t;

typedef struct weft_loop_opts {
    bool own_thread;     /* true: weft_loop_create starts a thread that runs the loop until
                            weft_loop_destroy; false: the caller runs it with weft_loop_run */
    const char *name;    /* name of that thread (at most 15 chars used); NULL: "weft-loop" */
    int max_connections; /* HTTP connections kept open for reuse (weft/http.h); 0: 256 */
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
 * (timers, transfers) become invalid. Returns 0; -EDEADLK from a callback of this loop, or
 * -EBUSY while another thread runs this caller-driven loop (stop it and let weft_loop_run
 * return first); the loop is left untouched then. NULL is ignored (returns 0). Ownership: takes
 * `loop` when it returns 0. Thread safety: any thread except the loop thread while the loop
 * runs; no other thread may use the loop once this is called. */
int weft_loop_destroy(weft_loop_t *loop);

/* True if the calling thread is the one running the loop now. Thread safety: any thread. */
bool weft_loop_on_loop_thread(const weft_loop_t *loop);

/* Milliseconds of the loop's cached clock (libuv's uv_now), the base of timer timeouts.
 * Thread safety: loop thread only (aborts with a message otherwise). */
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
 * until its function is called: that call is its release event (docs/lifetime.md), and the
 * function may free or re-post the record. */
typedef struct weft_loop_work {
    weft_loop_fn fn;              /* public */
    void *arg;                    /* public */
    struct weft_loop_work *next_; /* private */
} weft_loop_work_t;

/* Queues fn(arg, 0) to run on the loop thread, in FIFO order with other posts. Wake-ups
 * coalesce; the loop drains the whole queue each time it wakes. Returns 0, -ENOMEM, -EINVAL
 * (NULL loop or fn), or -ESHUTDOWN once destroy has begun (then fn is never called). Ownership:
 * `arg` is borrowed until fn is called (docs/lifetime.md). Thread safety: any thread. */
int weft_loop_post(weft_loop_t *loop, weft_loop_fn fn, void *arg);

/* As weft_loop_post with a caller-owned record (fn and arg set by the caller). No allocation.
 * Returns 0, -EINVAL (NULL loop, w or w->fn) or -ESHUTDOWN. Ownership: borrows `w` until w->fn
 * is called. Thread safety: any. */
int weft_loop_post_work(weft_loop_t *loop, weft_loop_work_t *w);

/* ---- futures ---- */

/* status is 0 when f completed (read its result with weft_future_status/value), or -ECANCELED
 * when the loop was destroyed first (f may still be pending then). */
typedef void (*weft_loop_await_cb)(weft_future_t *f, void *arg, int status);

/* Calls cb(f, arg, 0) on the loop thread once `f` is DONE (at the loop's next wake-up if it
 * already is). The completing thread only queues the call, so cb never runs on a pool worker.
 * Returns 0, -ENOMEM, -EINVAL (NULL loop, f or cb) or -ESHUTDOWN (then cb is never called).
 * Ownership (docs/lifetime.md): a
 * heap future is kept alive by a reference of the await's own until cb has returned; an embedded
 * (caller-owned) future is borrowed until cb is called, and cb is its release event: inside cb
 * it is yours again (release it and free its record there if you like), not when it turns DONE.
 * Thread safety: any thread. */
int weft_loop_await(weft_loop_t *loop, weft_future_t *f, weft_loop_await_cb cb, void *arg);

/* ---- timers ---- */

typedef struct weft_loop_timer weft_loop_timer_t;
typedef void (*weft_loop_timer_cb)(weft_loop_timer_t *t, void *arg);

/* Creates a stopped timer; `arg` is borrowed until the timer is destroyed (docs/lifetime.md).
 * Returns 0, -ENOMEM, -EINVAL (NULL loop or cb) or -EPERM (not the
 * loop thread); *out = NULL on failure. Ownership: returns owned; free with
 * weft_loop_timer_destroy() (or the loop's destroy). Thread safety: loop thread only. */
int weft_loop_timer_create(weft_loop_t *loop, weft_loop_timer_cb cb, void *arg,
                           weft_loop_timer_t **out);

/* (Re)starts the timer: cb runs after timeout_ms, then every repeat_ms if repeat_ms > 0. Starting
 * a running timer restarts it. Returns 0, or -EPERM (not the loop thread). Thread safety: loop
 * thread only. */
int weft_loop_timer_start(weft_loop_timer_t *t, uint64_t timeout_ms, uint64_t repeat_ms);

/* Stops the timer; cb will not run until it is started again. Returns 0, or -EPERM (not the
 * loop thread). Thread safety: loop thread only, including from its own callback. */
int weft_loop_timer_stop(weft_loop_timer_t *t);

/* Stops and frees the timer (its memory goes at the loop's next iteration). Returns 0, or -EPERM
 * (not the loop thread: the timer stays as it was). Ownership: takes `t`; no callback of it runs
 * after this returns 0 (docs/lifetime.md). Thread safety: loop thread only, including from its
 * own callback. NULL is ignored (returns 0). */
int weft_loop_timer_destroy(weft_loop_timer_t *t);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_LOOP_H */
