/* weft/procpool.h - a pool of worker processes: crash isolation and hard timeouts.
 *
 * Workers are separate processes, started ahead of time. A task names a function registered with
 * WEFT_PROCPOOL_FN and carries argument bytes; the function runs in a worker and its result bytes
 * come back through a future (weft_future_value). A worker that crashes or exceeds the task's
 * timeout is killed and replaced; only that task fails (WEFT_ECRASHED with a message naming the
 * signal or exit status, or -ETIMEDOUT). The pool keeps working.
 *
 * Functions must be registered from a constructor (the WEFT_PROCPOOL_FN macro does this), because
 * workers are fresh executions of the program (/proc/self/exe) that never run main().
 *
 * Lifetime (the one rule, docs/lifetime.md): the pool never holds caller memory past the call that
 * hands it over. submit copies the argument bytes before it returns, so `arg` is the caller's
 * again when submit returns (whatever happens to the task later: queued, killed, re-run after a
 * crash). The future is a reference-counted heap object: the caller's reference is its own to
 * release at any time (before or after DONE); the pool's reference is dropped right after it
 * completes the future, and DONE is final (no result, retry or callback follows it).
 */
#ifndef WEFT_PROCPOOL_H
#define WEFT_PROCPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>
#include <weft/future.h>
#include <weft/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_procpool weft_procpool_t;

/* Runs in a worker process. Returns 0 and appends its result to `out`, or returns a negative
 * error and may append a message to `out` (at most 4 KiB are kept). A result over max_message
 * fails the task with -EMSGSIZE ("result of N bytes exceeds max_message M"). Ownership: `arg` is
 * borrowed for the call (it lives in shared memory the next task reuses): keep no pointer to it
 * after returning; `out` is the worker's. */
typedef int (*weft_proc_fn)(const void *arg, size_t len, weft_buf_t *out);

/* Registers `fn` under `name` (at most 63 bytes). Call only from a constructor (see above).
 * Returns 0, -EEXIST, -EINVAL or -ENOMEM. Thread safety: constructors only. */
int weft_procpool_register(const char *name, weft_proc_fn fn);

/* Internal, for WEFT_PROCPOOL_FN: the marker a registering module defines, and the entry its late
 * constructor calls. They let workers start after the program's registrations even when libweft
 * is a shared library (see src/exec/procpool-worker.c). Thread safety: constructors only. */
extern int weft__procpool_late_entry;
void weft__procpool_enter_worker(void (*self)(void));

#define WEFT_PROCPOOL_FN(name, fn)                                                                 \
    __attribute__((weak, visibility("default"))) int weft__procpool_late_entry;                    \
    __attribute__((constructor(101))) static void weft__procpool_reg_##fn(void)                    \
    {                                                                                              \
        weft_procpool_register(name, fn);                                                          \
    }                                                                                              \
    __attribute__((constructor(65535))) static void weft__procpool_late_##fn(void)                 \
    {                                                                                              \
        weft__procpool_enter_worker(weft__procpool_late_##fn);                                     \
    }

typedef struct weft_procpool_opts {
    int workers;             /* 0: weft_cpu_count() */
    int max_tasks_per_child; /* 0: unlimited; else a worker is replaced after that many */
    size_t queue_capacity;   /* 0: 65536 queued tasks; submit blocks when full */
    size_t max_message;      /* largest argument or result in bytes; 0: 64 MiB */
} weft_procpool_opts_t;

typedef struct weft_procpool_stats_s {
    int workers;
    size_t queued, running;
    uint64_t completed, failed, crashed, timed_out, respawned;
} weft_procpool_stats_t;

/* Starts the workers. Safe from a multi-threaded process (it never forks a copy of the caller
 * that runs user code). Returns 0, -EINVAL, -ENOMEM or a spawn error (*out = NULL on failure).
 * Ownership: returns owned; free with weft_procpool_destroy(). Thread safety: any thread. */
int weft_procpool_create(weft_procpool_t **out, const weft_procpool_opts_t *opts);

/* Queues fn_name(arg) with a hard timeout (0: none). *out gets a future whose value is the result
 * bytes. Returns 0, WEFT_ENOFUNC, -EMSGSIZE, -ESHUTDOWN or -ENOMEM (*out = NULL on failure).
 * Blocks while the queue is full. Ownership: borrows `fn_name` and `arg` only until it returns
 * (the bytes are copied: `arg` is yours again at return); returns an owned future reference,
 * release it with weft_future_release whenever you like; the result value and message belong to
 * the future (see Lifetime above, docs/lifetime.md). Thread safety: any thread. */
int weft_procpool_submit(weft_procpool_t *pp, const char *fn_name, const void *arg, size_t len,
                         uint64_t timeout_ns, weft_future_t **out);

/* Cancels the task of `f` (a future this pool's submit returned). A task still queued, or handed
 * to a worker that has not started it, never runs. A running task is killed only with `force`
 * (as Ray's cancel(force=True)): its worker and the worker's process group get SIGKILL, a
 * replacement starts, and the other tasks that worker held run elsewhere. In every case f is
 * DONE with -ECANCELED when this returns 0. Returns 0, -EBUSY (running and !force; nothing
 * changes), -EALREADY (finished, or finishing: its result is being delivered), -EINVAL.
 * Ownership: borrows `f`. Thread safety: any thread, also from a completion callback. */
int weft_procpool_cancel(weft_procpool_t *pp, weft_future_t *f, bool force);

/* Changes the number of workers (1..256). Returns 0, -EINVAL or -ESHUTDOWN. Thread safety: any. */
int weft_procpool_resize(weft_procpool_t *pp, int workers);

/* Fills a snapshot of the counters. Thread safety: any thread. */
void weft_procpool_stats(weft_procpool_t *pp, weft_procpool_stats_t *out);

/* Stops accepting tasks (modes as for the thread pool). Returns at once. Thread safety: any. */
int weft_procpool_shutdown(weft_procpool_t *pp, weft_shutdown_t mode);

/* Shuts down (WAIT) if needed, waits until every task's future is DONE, stops and reaps every
 * worker (and kills what remains in their process groups), unmaps shared memory and closes every
 * descriptor. Ownership: takes `pp`; futures stay valid (the caller's references). Thread safety:
 * any thread but the pool's own (not from a completion callback). */
void weft_procpool_destroy(weft_procpool_t *pp);

/* The pid of the worker process running this code, or 0 in the parent. For tests and tools. */
int weft_procpool_in_worker(void);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_PROCPOOL_H */
