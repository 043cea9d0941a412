/* Internal: the parts of futures that executors (thread pool, process pool, scheduler, event
 * loop) need and users must not see. See src/exec/future.c for the state machine. */
#ifndef WEFT_EXEC_FUTURE_INT_H
#define WEFT_EXEC_FUTURE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/future.h>

/* What a running task sees (weft/future.h: weft_ctx_t). Lives on the executor's stack. */
struct weft_ctx {
    weft_future_t *future; /* the future the task completes */
    void *value;           /* pending value, moved into the future by weft__ctx_finish */
    size_t size;
    weft_free_fn free_fn;
    char *message; /* pending message (weft__malloc'd), kept only if the task fails */
};

/* Prepares a context for running the work of `f` (which the executor has started). */
void weft__ctx_init(weft_ctx_t *ctx, weft_future_t *f);

/* Completes ctx->future with `status`, the pending value and (if status < 0) the pending
 * message, and empties ctx. Returns as weft__future_settle. After it returns, the caller must
 * not touch a caller-owned record holding the future (its owner may already have freed it). */
int weft__ctx_finish(weft_ctx_t *ctx, int status);

/* Completes `f` with `status`, `value` (freed with `free_fn`) and `message`, an owned string
 * allocated with weft__malloc (or NULL). Takes ownership of value and message in every case:
 * if the future was already DONE, both are freed at once and -EALREADY is returned. Runs the
 * completion callbacks in the calling thread before returning. Thread safety: any thread. */
int weft__future_settle(weft_future_t *f, int status, void *value, size_t size,
                        weft_free_fn free_fn, char *message);

/* Marks a PENDING future as held by an executor's queue: from now on weft_future_cancel() only
 * records the request (and returns 0) and the executor completes the future with -ECANCELED
 * when weft_future_start() reports it, so a queue never holds a DONE caller-owned record that
 * its owner may already have freed. Returns 0, -EBUSY if it is already held (the record is
 * still in a queue: submitted twice), or -EALREADY if the future is not PENDING.
 * Thread safety: any thread. */
int weft__future_hold(weft_future_t *f);

/* Records a cancellation request on a PENDING or RUNNING future without completing it (an
 * executor's timeout uses it before it completes the future itself). Thread safety: any. */
void weft__future_request_cancel(weft_future_t *f);

/* Turns a future that is part of a larger heap allocation into a heap future: the last release
 * frees the allocation, which starts `offset` bytes before `f` (offset < 2^24). Call right after
 * weft_future_init(), before `f` is shared. */
void weft__future_init_heap(weft_future_t *f, size_t offset);

/* True for a heap future (weft_future_create, or weft__future_init_heap): the only kind the
 * library may hold a reference to. An embedded (caller-owned) future is borrowed until its
 * release event instead (docs/lifetime.md), and never retained by an internal user. */
bool weft__future_is_heap(const weft_future_t *f);

/* A completion callback node that the caller owns, so that it can be removed again (wait_any,
 * as_completed, an event loop's await that gets cancelled). Fields are private to future.c. */
typedef struct weft__cbnode {
    struct weft__cbnode *next;
    weft_future_cb cb;
    void *arg;
    uint32_t heap; /* 1: allocated by weft_future_on_complete, freed by the completer */
} weft__cbnode_t;

/* Adds `node` (cb and arg set by the caller) to f's callbacks. Returns 0, or -EALREADY if f is
 * already DONE (node not added; the caller handles completion itself). */
int weft__future_add_node(weft_future_t *f, weft__cbnode_t *node);

/* Removes `node` if it is still attached and returns true. False means the completer has
 * already detached it: node->cb is running or will run soon, and the caller must wait for a
 * sign from its own callback before freeing the node or what cb uses. */
bool weft__future_remove_node(weft_future_t *f, weft__cbnode_t *node);

#endif /* WEFT_EXEC_FUTURE_INT_H */
