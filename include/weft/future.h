/* weft/future.h - the result of work that completes later, on any thread.
 *
 * A future is PENDING, then RUNNING (an executor started the work), then DONE with a status
 * (0 or a negative errno / WEFT_E* code), an optional value (bytes or a pointer, owned by the
 * future) and an optional message. It completes exactly once. Any thread may wait on it, poll
 * it, attach completion callbacks or cancel it; the event loop awaits it with weft_loop_await()
 * (weft/loop.h), which is a completion callback that hands over to the loop thread.
 *
 * Lifetime (docs/lifetime.md, the one rule for every module): weft_future_create() makes a heap
 * future, reference-counted and freed when the last reference goes; weft_future_init() prepares
 * one embedded in a caller-owned record (a weft_task_t), which weft never reference-counts: it is
 * borrowed until its release event (DONE, or the final callback of an await or iterator it was
 * handed to), and then released once by its owner to free its value and message.
 */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
/* Not needed by this header (it has no atomics): kept for C files that still get <stdatomic.h>
 * through it (src/exec/procpool*.c, shmring.c, src/sched/sched.c, tools/run); remove once they
 * include it themselves. */
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_future weft_future_t;
typedef void (*weft_future_cb)(weft_future_t *f, void *arg);
typedef void (*weft_free_fn)(void *value);

/* Layout is public only so that futures can be embedded in caller-owned records; every field is
 * private. state_ and refs_ are accessed only as atomics, inside the library (plain storage here
 * so that this header compiles as C++). */
struct weft_future {
    uint32_t state_;
    uint32_t refs_;
    int status_;
    uint32_t flags_;
    void *value_;
    size_t size_;
    weft_free_fn free_value_;
    char *message_;
    void *callbacks_;
};

/* ---- creation and lifetime ---- */

/* Creates a PENDING heap future with one reference. Returns NULL on allocation failure.
 * Ownership: returns owned; drop with weft_future_release(). Thread safety: any thread. */
weft_future_t *weft_future_create(void);

/* Prepares an embedded future (never freed, never reference-counted by weft). Ownership: `f` is
 * yours; whatever you hand it to borrows it until that operation's release event
 * (docs/lifetime.md); after the last one, call weft_future_release() once to free its value and
 * message. Thread safety: any thread, before `f` is shared. */
void weft_future_init(weft_future_t *f);

/* Adds a reference and returns `f`. Thread safety: any thread. */
weft_future_t *weft_future_retain(weft_future_t *f);

/* Drops a reference; the last one frees the value (with its free function), the message and, for
 * heap futures, the future. Releasing a PENDING heap future is allowed: the executor holds its
 * own reference. An embedded future is released exactly once, after its release event
 * (docs/lifetime.md); releasing it again aborts with a message. Thread safety: any thread. NULL
 * is ignored. */
void weft_future_release(weft_future_t *f);

/* ---- consumer side ---- */

/* True once the future is DONE. Thread safety: any thread; never blocks. */
bool weft_future_done(const weft_future_t *f);

/* Waits until DONE or until `timeout_ns` passes (timeout_ns < 0: wait forever). Returns 0 when
 * DONE, -ETIMEDOUT if the wait timed out (the work's own status comes from weft_future_status).
 * Thread safety: any thread; never call it from a completion callback of the same future. */
int weft_future_wait(weft_future_t *f, int64_t timeout_ns);

/* The work's status: 0 or a negative error, or -EINPROGRESS while not DONE.
 * Thread safety: any thread. */
int weft_future_status(const weft_future_t *f);

/* The value the work produced (NULL if none) and, if `size` is not NULL, its size in bytes.
 * Ownership: borrowed from the future; valid while you hold a reference. Returns NULL while not
 * DONE. Thread safety: any thread. */
void *weft_future_value(const weft_future_t *f, size_t *size);

/* The failure message, or NULL if none. Ownership: borrowed, as for the value. Thread safety:
 * any thread. */
const char *weft_future_message(const weft_future_t *f);

/* Arranges for cb(f, arg) to run exactly once after the future is DONE: at once in the calling
 * thread if it already is, otherwise in the thread that completes it, after completion and never
 * with a lock held. Returns 0, or -ENOMEM (then cb is never called). Thread safety: any thread. */
int weft_future_on_complete(weft_future_t *f, weft_future_cb cb, void *arg);

/* Cancels work that has not started: the future completes with -ECANCELED and the executor skips
 * the work. Returns 0 if it cancelled, -EBUSY if the work is running (a cancel request is
 * recorded, which the work can see with weft_ctx_cancelled()), -EALREADY if DONE. For a
 * caller-owned record still in an executor's queue (weft_task_t), 0 means the work will not run
 * and the future completes when the executor reaches the record. Thread safety: any thread. */
int weft_future_cancel(weft_future_t *f);

/* True if cancellation was requested (by weft_future_cancel on a running future or by an
 * executor's timeout). Thread safety: any thread. */
bool weft_future_cancel_requested(const weft_future_t *f);

/* Waits until all `n` futures are DONE or the timeout passes (timeout_ns < 0: forever).
 * Returns 0 or -ETIMEDOUT. Ownership: borrows the array and futures. Thread safety: any thread. */
int weft_future_wait_all(weft_future_t *const *fs, size_t n, int64_t timeout_ns);

/* Waits until at least one of `n` futures is DONE; sets *index to the lowest such index.
 * Returns 0, -ETIMEDOUT, -EINVAL (n == 0) or -ENOMEM. Ownership: borrows. Thread safety: any
 * thread. */
int weft_future_wait_any(weft_future_t *const *fs, size_t n, int64_t timeout_ns, size_t *index);

/* as_completed: yields each of `n` futures once, in the order they complete. */
typedef struct weft_future_iter weft_future_iter_t;

/* Creates the iterator; it holds a reference to each heap future until destroyed. An embedded
 * (caller-owned) future is borrowed until the iterator yields it or is destroyed, whichever
 * comes first: that is its release event (docs/lifetime.md), and the iterator never touches it
 * afterwards. Returns 0 or -ENOMEM (*out = NULL). Ownership: returns owned; free with
 * weft_future_iter_destroy(). Thread safety: any thread; the iterator itself is for one thread
 * at a time. */
int weft_future_as_completed(weft_future_t *const *fs, size_t n, weft_future_iter_t **out);

/* Sets *out to the next DONE future (borrowed from the iterator). Returns 0, -ETIMEDOUT, or
 * -ENOENT once all n were yielded (*out = NULL). */
int weft_future_iter_next(weft_future_iter_t *it, int64_t timeout_ns, weft_future_t **out);

/* Frees the iterator and drops its references. Safe while futures are still pending. */
void weft_future_iter_destroy(weft_future_iter_t *it);

/* ---- producer side (executors, and users who complete futures themselves) ---- */

/* PENDING -> RUNNING. Returns 0, -ECANCELED if it was cancelled (skip the work), or -EALREADY.
 * Thread safety: any thread. */
int weft_future_start(weft_future_t *f);

/* Completes the future with `status` and a value it takes ownership of (freed with `free_fn`,
 * which may be NULL for a value the future must not free). Runs completion callbacks in the
 * calling thread before returning. Returns 0, or -EALREADY if it was already DONE (a cancelled
 * or timed-out future); then the value is freed at once. Thread safety: any thread. */
int weft_future_complete(weft_future_t *f, int status, void *value, size_t size,
                         weft_free_fn free_fn);

/* Completes the future with a negative `status` and a printf-style message (which may be NULL).
 * Returns as weft_future_complete. Thread safety: any thread. */
int weft_future_fail(weft_future_t *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- task context: what a running task sees ---- */

/* Passed to every thread-pool task. Lives on the worker's stack for the duration of the call. */
typedef struct weft_ctx weft_ctx_t;

/* Sets the value the task's future completes with (ownership moves to the future; `free_fn` may
 * be NULL). Calling it twice frees the first value. Thread safety: the task's own thread. */
void weft_ctx_set_value(weft_ctx_t *ctx, void *value, size_t size, weft_free_fn free_fn);

/* Sets the failure message (printf-style) the future carries if the task returns < 0.
 * Thread safety: the task's own thread. */
void weft_ctx_set_message(weft_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True once cancellation of this running task was requested (cancel or timeout). A thread
 * cannot be killed safely, so long tasks should poll this and return -ECANCELED.
 * Thread safety: the task's own thread. */
bool weft_ctx_cancelled(const weft_ctx_t *ctx);

/* The future the task will complete. Ownership: borrowed. */
weft_future_t *weft_ctx_future(const weft_ctx_t *ctx);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_FUTURE_H */
