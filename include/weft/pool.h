/* weft/pool.h - a thread pool with a bounded queue.
 *
 * Tasks are functions `int fn(void *arg, weft_ctx_t *ctx)` returning 0 or a negative error; a
 * task can attach a value or a message to its future through `ctx` (weft/future.h). Submission
 * either allocates the task record for you (weft_pool_submit, returns a future) or uses a record
 * you own (weft_task_t, no allocation on the hot path). The queue is bounded: a full queue makes
 * weft_pool_submit block and weft_pool_try_submit return -EAGAIN, so memory never grows without
 * bound. Idle workers sleep; they use no CPU.
 */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <weft/future.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_pool weft_pool_t;
typedef int (*weft_task_fn)(void *arg, weft_ctx_t *ctx);

typedef struct weft_pool_opts {
    int threads;           /* 0: weft_cpu_count() */
    size_t queue_capacity; /* 0: 65536 queued tasks */
    const char *name;      /* thread name prefix (at most 10 chars used); NULL: "weft" */
} weft_pool_opts_t;

/* A caller-owned task record. Set fn and arg with weft_task_init(); keep the record alive and
 * unmoved until its release event (docs/lifetime.md): its future turning DONE, or, if you also
 * handed the future to weft_loop_await or an as_completed iterator, that one's event. Then
 * weft_future_release(&t->future) once. Cancelling a queued record returns 0 at once, but its
 * future becomes DONE (-ECANCELED, without running the task) when a worker reaches it or at
 * shutdown: the pool never drops a record it still holds. */
typedef struct weft_task {
    /* public, set by weft_task_init */
    weft_task_fn fn;
    void *arg;
    /* read-only: the task's future, embedded */
    weft_future_t future;
    /* private */
    struct weft_task *next_;
    uint64_t enqueued_ns_;
} weft_task_t;

typedef enum weft_shutdown {
    WEFT_SHUTDOWN_WAIT = 0, /* run everything already queued, then stop */
    WEFT_SHUTDOWN_CANCEL,   /* complete queued, unstarted tasks with -ECANCELED, then stop */
} weft_shutdown_t;

typedef struct weft_pool_stats_s {
    int threads;          /* current worker threads */
    size_t queued;        /* waiting in the queue */
    size_t running;       /* being executed now */
    uint64_t completed;   /* finished (any status) since creation */
    uint64_t failed;      /* finished with a negative status */
    uint64_t cancelled;   /* skipped because cancelled before they started */
    uint64_t wait_ns_sum; /* total time tasks spent queued, for Little's law */
} weft_pool_stats_t;

/* Creates a pool and starts its threads. `opts` may be NULL (all defaults). Returns 0, -EINVAL,
 * -ENOMEM or the pthread error (*out = NULL on failure). Ownership: returns owned; free with
 * weft_pool_destroy(). Thread safety: any thread. */
int weft_pool_create(weft_pool_t **out, const weft_pool_opts_t *opts);

/* Prepares a caller-owned task record. Ownership: borrows `t`. Thread safety: any thread. */
void weft_task_init(weft_task_t *t, weft_task_fn fn, void *arg);

/* Queues fn(arg), blocking while the queue is full. On success *out (if not NULL) gets a new
 * reference to the task's future (a heap future); `arg` is borrowed until it is DONE
 * (docs/lifetime.md). Returns 0, -ESHUTDOWN after shutdown, -ENOMEM, or -EINVAL
 * (NULL pool or fn).
 * Ownership: returns an owned future reference; release it. Thread safety: any thread. */
int weft_pool_submit(weft_pool_t *p, weft_task_fn fn, void *arg, weft_future_t **out);

/* As weft_pool_submit but never blocks: -EAGAIN when the queue is full. */
int weft_pool_try_submit(weft_pool_t *p, weft_task_fn fn, void *arg, weft_future_t **out);

/* Queues a caller-owned record; blocks while the queue is full. No allocation. Returns 0,
 * -ESHUTDOWN (the record is left untouched and stays yours), -EBUSY if the record is still in a
 * queue (submitted twice: the first submission stands), -EALREADY if its future is not PENDING
 * (running, DONE), or -EINVAL (NULL pool, record or fn). Ownership: borrows `t` until its
 * release event (docs/lifetime.md): its future turning DONE, or the callback of whatever you
 * attached to it (weft_loop_await). Thread safety: any thread. */
int weft_pool_submit_task(weft_pool_t *p, weft_task_t *t);

/* As weft_pool_submit_task but never blocks: -EAGAIN when the queue is full. */
int weft_pool_try_submit_task(weft_pool_t *p, weft_task_t *t);

/* Queues `n` caller-owned records with one lock round per batch that fits, blocking while the
 * queue is full. Returns 0 when all are queued; on shutdown returns -ESHUTDOWN, and the records
 * not queued are completed with -ESHUTDOWN. Records whose future is not PENDING are skipped and
 * make it return -EALREADY, or -EBUSY if one of them was still queued (the others are queued).
 * Returns -EINVAL, queueing nothing, for a NULL pool or a record without fn. Ownership: borrows
 * each record as weft_pool_submit_task does. Thread safety: any thread. */
int weft_pool_submit_tasks(weft_pool_t *p, weft_task_t *tasks, size_t n);

/* Calls fn(item, arg) for each of the `n` items of `item_size` bytes in `items`, `chunksize`
 * items per task (0: chosen for the pool size), and waits for all. fn typically writes its result
 * into the item. Returns 0, the error of the lowest-indexed failing item, -EINVAL, or -EDEADLK
 * when called from one of the pool's own tasks (it would wait for chunks queued behind itself).
 * Ownership: borrows. Thread safety: any thread except the pool's own workers. */
int weft_pool_map(weft_pool_t *p, int (*fn)(void *item, void *arg), void *items, size_t n,
                  size_t item_size, size_t chunksize, void *arg);

/* Changes the number of worker threads (1..1024). Extra threads exit after their current task.
 * Returns 0, -EINVAL (also for a NULL pool) or -ESHUTDOWN. Thread safety: any thread. */
int weft_pool_resize(weft_pool_t *p, int threads);

/* Fills a snapshot of the pool's counters. Thread safety: any thread. */
void weft_pool_stats(weft_pool_t *p, weft_pool_stats_t *out);

/* Stops accepting tasks; WAIT lets queued tasks run, CANCEL completes them with -ECANCELED.
 * Returns at once; weft_pool_destroy() joins. Calling it twice is harmless (returns -EALREADY);
 * -EINVAL for a NULL pool or an unknown mode.
 * Thread safety: any thread. */
int weft_pool_shutdown(weft_pool_t *p, weft_shutdown_t mode);

/* Shuts down (WAIT) if not done yet, joins every thread and frees the pool. Outstanding futures
 * stay valid. Returns 0, or -EDEADLK when called from one of the pool's own tasks (a worker
 * cannot join itself; the pool is left untouched). NULL is ignored (returns 0). Ownership: takes
 * `p` when it returns 0. Thread safety: any thread but the pool's own workers. */
int weft_pool_destroy(weft_pool_t *p);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_POOL_H */
