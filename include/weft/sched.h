/* weft/sched.h - a hybrid task scheduler over processes, threads and the event loop.
 *
 * A scheduler owns a process pool (weft/procpool.h), a thread pool (weft/pool.h) and, when the
 * event-loop module is built in, an event loop (weft/loop.h). Each task says what it is (CPU, IO,
 * MIXED or AUTO) and how it can run: a thread function, a registered process-pool function with
 * argument bytes, and/or an asynchronous function for the loop. The scheduler picks the executor
 * (the "route"):
 *
 *   CPU         -> processes (crash isolation, hard timeouts, one worker per usable CPU);
 *   IO          -> threads while few are in flight, the loop when many are and the task has an
 *                  async form;
 *   MIXED/AUTO  -> from measurements of earlier runs of the same class: thread CPU time over wall
 *                  time, with hysteresis and periodic re-probing, so the route follows the class
 *                  when its behaviour changes. weft_sched_stats_text() says why for each class.
 *
 * The scheduler keeps its own priority queue per executor and hands an executor at most one task
 * per idle worker: nothing is prefetched, so a high-priority task submitted late runs next.
 * Waiting raises a task's effective priority (aging: +1 per `aging_ns` queued), so low priorities
 * are not starved. Dependencies (by task id or by future) form DAGs; a task that fails for good
 * makes its dependents fail with WEFT_ESKIPPED naming the cause. Graphs (weft_sched_graph_*) are
 * submitted whole: a cycle is refused with an error naming it, and a failed run can be resumed
 * from a state file, rerunning only what failed or was skipped.
 *
 * Retries: exponential backoff with full jitter, only on the errors the policy names; every
 * attempt's error is kept. Timeouts end with -ETIMEDOUT on every route: a process worker is killed
 * and replaced; a loop task's I/O is cancelled through its cancel hook; a thread CANNOT be killed
 * safely, so the task's cancel token is set (weft_ctx_cancelled). On the thread and loop routes
 * the timed-out attempt is then waited for: the retry (or the final -ETIMEDOUT) comes only once
 * fn has returned (or the operation called weft_sched_aop_done), so two attempts of a task never
 * run at once and DONE means that no attempt holds the task's arguments. Cancelling a running
 * task's future (weft_future_cancel) works the same way within one tick, ending it with
 * -ECANCELED: processes are killed and replaced, loop I/O is cancelled, threads get the token
 * (weft_sched_shutdown CANCEL only requests it from running processes).
 *
 * LIFETIME (the one rule, docs/lifetime.md): what a caller hands the scheduler comes back by one
 * event, the task's future becoming DONE, which happens after the last internal user (queue,
 * timer, attempt, abandoned attempt, dependency edge) let go:
 *   - `arg` and `async_arg` are yours again when the task's future is DONE (for a task submitted
 *     without a future: when weft_sched_wait_idle returns 0 or weft_sched_destroy returns);
 *   - every other pointer of weft_sched_task_t is borrowed for the submit call only (proc_arg
 *     bytes are copied);
 *   - the future returned by submit is a reference of yours (weft_future_release); the
 *     scheduler's own reference is gone by DONE;
 *   - a dependent starts only after its dependency's future is DONE, so it can read the value.
 *
 * MISUSE is diagnosed: every function that returns int returns -EINVAL for a NULL scheduler,
 * graph, task or required out-pointer, and weft_sched_destroy/weft_sched_wait_idle return
 * -EDEADLK from the scheduler's own threads instead of waiting for themselves.
 */
#ifndef WEFT_SCHED_H
#define WEFT_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>
#include <weft/future.h>
#include <weft/pool.h>

typedef struct weft_sched weft_sched_t;

/* A task id: unique for the scheduler's lifetime and increasing in submission order; 0 is never
 * a valid id. (A scheduler accepts 2^38 submissions; then submit returns -ENOSPC.) */
typedef uint64_t weft_sched_id_t;

typedef enum weft_sched_type {
    WEFT_SCHED_AUTO = 0, /* unknown: measure it */
    WEFT_SCHED_CPU,      /* computes */
    WEFT_SCHED_IO,       /* waits on I/O */
    WEFT_SCHED_MIXED,    /* both; measured like AUTO, starts on threads */
} weft_sched_type_t;

typedef enum weft_sched_route {
    WEFT_ROUTE_PROCS = 0, /* the process pool */
    WEFT_ROUTE_THREADS,   /* the thread pool */
    WEFT_ROUTE_LOOP,      /* the event loop */
    WEFT_ROUTE_COUNT,
    WEFT_ROUTE_NONE = -1,
} weft_sched_route_t;

/* ---- asynchronous tasks (the loop route) ---- */

/* What an async task gets: it starts its I/O on the loop thread and later calls
 * weft_sched_aop_done() exactly once. */
typedef struct weft_sched_aop weft_sched_aop_t;

/* Runs on the loop thread. Returns 0 once the operation is started (then it must call
 * weft_sched_aop_done later, also after a cancel), or a negative error if it could not start
 * (then it must not). */
typedef int (*weft_sched_async_fn)(weft_sched_aop_t *op);

struct weft_sched_aop {
    struct weft_loop *loop; /* read-only: the loop to start I/O on (weft/loop.h) */
    void *arg;              /* read-only: the task's async_arg */
    /* public, set by the async function if its I/O can be aborted: called on the loop thread on
     * timeout or cancel; it must make the operation finish soon (weft_sched_aop_done, any
     * status; the scheduler has already failed the task with -ETIMEDOUT or -ECANCELED). */
    void (*cancel)(weft_sched_aop_t *op);
    void *data; /* public: for the async function's own use */
};

/* Finishes an async operation with `status` and an optional value (ownership moves to the
 * task's future; `free_fn` may be NULL). Ownership: `op` is freed by this call.
 * Thread safety: any thread, exactly once per started operation. */
void weft_sched_aop_done(weft_sched_aop_t *op, int status, void *value, size_t size,
                         weft_free_fn free_fn);

/* As weft_sched_aop_done with a negative status and a printf-style failure message. */
void weft_sched_aop_fail(weft_sched_aop_t *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An async function that sleeps: it finishes after `(uintptr_t)op->arg` milliseconds (the task's
 * async_arg), or with -ECANCELED at once on timeout or cancel. The loop route's stand-in for I/O
 * that waits without a thread, for demos, benchmarks and tests. Thread safety: as any
 * weft_sched_async_fn (loop thread). */
int weft_sched_async_sleep(weft_sched_aop_t *op);

/* ---- tasks ---- */

/* Retry policy. Attempt k (k >= 1 failures so far) waits a uniformly random delay in
 * [0, min(backoff_max_ns, backoff_ns * 2^(k-1))] ("full jitter") before the next attempt. */
typedef struct weft_sched_retry {
    int attempts;            /* attempts in all, including the first; 0 or 1: no retry (max 64) */
    uint64_t backoff_ns;     /* base delay; 0: 100 ms */
    uint64_t backoff_max_ns; /* cap; 0: 30 s */
    const int *on;           /* statuses to retry on (negative errno / WEFT_E* codes)... */
    size_t n_on;             /* ...n_on == 0: the transient set: -ETIMEDOUT, WEFT_ECRASHED,
                                -EAGAIN, -EIO, -ECONNRESET, -ECONNREFUSED, -EPIPE, WEFT_EHTTP */
} weft_sched_retry_t;

/* A task description; zero-initialise and set what you need. Every pointer is borrowed for the
 * duration of the submit call, except `arg` and `async_arg` (yours again when the future is
 * DONE: see LIFETIME above); proc_arg bytes are copied. At least one of fn, proc_fn, async_fn
 * must be set; proc_fn must name a registered function (else submit returns -EINVAL). */
typedef struct weft_sched_task {
    weft_sched_type_t type;
    int priority;     /* higher runs first; -1000000..1000000 */
    const char *cls;  /* class for measurements and stats (<= 63 bytes); NULL: proc_fn's name, else
                         the thread function's address, else "async" */
    const char *name; /* optional; names the task in errors (cycles, skips) and state files */
    /* forms */
    weft_task_fn fn; /* thread form: fn(arg, ctx) (weft/pool.h) */
    void *arg;
    const char *proc_fn; /* process form: a function registered with WEFT_PROCPOOL_FN... */
    const void *proc_arg;
    size_t proc_len;              /* ...and its argument bytes (copied) */
    weft_sched_async_fn async_fn; /* loop form */
    void *async_arg;
    /* dependencies: the task starts once all have succeeded */
    const weft_sched_id_t *deps;
    size_t ndeps;
    weft_future_t *const *dep_futures; /* any futures, from this scheduler or elsewhere */
    size_t ndep_futures;
    /* failure handling */
    const weft_sched_retry_t *retry; /* NULL: one attempt */
    uint64_t timeout_ns;             /* per attempt; 0: none */
} weft_sched_task_t;

/* Adds CPU time that a thread task spent in helper processes (a child's rusage, say) to its
 * measurement, so that a task that waits on a CPU-heavy child is not mistaken for I/O.
 * Ignored outside a scheduler thread task. Thread safety: the task's own thread. */
void weft_sched_add_cpu(weft_ctx_t *ctx, uint64_t cpu_ns);

/* ---- the scheduler ---- */

typedef struct weft_sched_opts {
    int procs;             /* process workers: 0 adaptive (follows weft_cpu_count() and load), > 0
                              fixed, < 0 no process pool */
    int threads_min;       /* thread pool bounds: adaptive sizing stays within them; 0: */
    int threads_max;       /* weft_cpu_count() and 64. Equal values fix the size. */
    int loop_max;          /* async tasks in flight on the loop at most; 0: 1024; < 0: no loop */
    int io_loop_threshold; /* IO tasks in flight on threads beyond which async-capable IO goes
                              to the loop; 0: threads_max */
    uint64_t aging_ns;     /* queued time that adds 1 to a task's priority; 0: 1 s */
    uint64_t tick_ns;      /* period of adaptive sizing and re-probing; 0: 100 ms */
    uint64_t seed;         /* jitter random seed; 0: from the clock */
    size_t remember;       /* outcomes kept queryable by id (and usable as deps): a finished
                              task's stays until `remember` (rounded up to a power of two) later
                              tasks were submitted; 0: 65536 */
    bool fixed_routes;     /* never re-route by measurement (MIXED/AUTO go to threads) */
    const char *name;      /* thread and process name prefix; NULL: "sched" */
} weft_sched_opts_t;

/* Creates a scheduler and its executors. `opts` may be NULL. Returns 0, -EINVAL (also for a NULL
 * `out`), -ENOMEM or an executor's error (*out = NULL on failure). Ownership: returns owned; free
 * with weft_sched_destroy(). Thread safety: any thread. */
int weft_sched_create(weft_sched_t **out, const weft_sched_opts_t *opts);

/* Submits a task. *id (if not NULL) gets its id; *out (if not NULL) a new reference to its future
 * (value: what the task produced; for the process form the result bytes). Without `out` no
 * future is allocated. A dependency that already failed makes the task fail at once with
 * WEFT_ESKIPPED. Returns 0, -EINVAL (NULL s or t, no form, a proc_fn not registered, bad
 * priority or policy), -ENOENT (a dependency id unknown or forgotten, see opts.remember),
 * -ESHUTDOWN, -ENOSPC or -ENOMEM; on failure *id = 0 and *out = NULL.
 * Ownership: borrows `t`; arg/async_arg until DONE (LIFETIME above); returns an owned future
 * reference.
 * Thread safety: any thread, including tasks and completion callbacks. */
int weft_sched_submit(weft_sched_t *s, const weft_sched_task_t *t, weft_sched_id_t *id,
                      weft_future_t **out);

/* Submits n tasks under one lock round: all or nothing. ids and futs (n entries each) may be
 * NULL; futs NULL allocates no futures. Names given in tasks[i].name are kept. Returns as
 * weft_sched_submit. Ownership and thread safety: as weft_sched_submit. */
int weft_sched_submit_many(weft_sched_t *s, const weft_sched_task_t *tasks, size_t n,
                           weft_sched_id_t *ids, weft_future_t **futs);

/* Waits until every submitted task's future is DONE (timeout_ns < 0: forever). Returns 0,
 * -ETIMEDOUT, -EINVAL (NULL s) or -EDEADLK when called from one of this scheduler's tasks,
 * completion callbacks or async functions (it would wait for itself).
 * Thread safety: any thread; see -EDEADLK. */
int weft_sched_wait_idle(weft_sched_t *s, int64_t timeout_ns);

/* Stops accepting tasks. WAIT: everything submitted still runs; CANCEL: tasks not yet started
 * fail with -ECANCELED and running ones get a cancel request. Returns 0, -EALREADY or -EINVAL.
 * Thread safety: any thread. */
int weft_sched_shutdown(weft_sched_t *s, weft_shutdown_t mode);

/* Shuts down (WAIT) if needed, waits for every task, stops the executors and frees everything.
 * Outstanding futures stay valid. Returns 0; -EINVAL for NULL; -EDEADLK (and does nothing) when
 * called from one of this scheduler's tasks, completion callbacks or async functions, which it
 * would wait for. Ownership: takes `s` when it returns 0. Thread safety: any thread; see
 * -EDEADLK. */
int weft_sched_destroy(weft_sched_t *s);

/* Resizes the executors by hand (0 leaves one as it is) and turns adaptive sizing off for those
 * changed. Returns 0, -EINVAL (also NULL s) or -ESHUTDOWN. Thread safety: any thread. */
int weft_sched_resize(weft_sched_t *s, int procs, int threads);

/* ---- what happened to a task ---- */

typedef enum weft_sched_state {
    WEFT_TASK_WAITING = 0, /* for dependencies */
    WEFT_TASK_QUEUED,      /* ready, in an executor's queue */
    WEFT_TASK_RUNNING,
    WEFT_TASK_BACKOFF, /* failed an attempt, waiting to retry */
    WEFT_TASK_DONE,    /* succeeded */
    WEFT_TASK_FAILED,
    WEFT_TASK_SKIPPED,   /* a dependency failed */
    WEFT_TASK_CANCELLED, /* cancelled before it ran */
    WEFT_TASK_RESUMED,   /* not run: succeeded in the run being resumed */
    WEFT_TASK_STATE_COUNT
} weft_sched_state_t;

#define WEFT_SCHED_KEPT_ERRORS 16

typedef struct weft_sched_info_s {
    weft_sched_state_t state;
    weft_sched_route_t route;           /* of the current or last attempt; NONE before the first */
    int attempts;                       /* started so far */
    int status;                         /* final status once finished, else -EINPROGRESS */
    int errors[WEFT_SCHED_KEPT_ERRORS]; /* status of each failed attempt, in order (the first 16) */
    int nerrors;
    uint64_t submitted_ns, started_ns, finished_ns; /* weft_now_ns() clock; 0: not yet */
} weft_sched_info_t;

/* Fills what is known about task `id`. A finished task stays known until opts.remember later
 * tasks were submitted, with its state, status, attempts and only the first and last failed
 * attempts' errors (errors[0], errors[1]). Returns 0, -ENOENT or -EINVAL (NULL s or out).
 * Thread safety: any. */
int weft_sched_info(weft_sched_t *s, weft_sched_id_t id, weft_sched_info_t *out);

/* "waiting", "queued", ... Ownership: static. */
const char *weft_sched_state_name(weft_sched_state_t st);
/* "processes", "threads", "loop" (or "none"). Ownership: static. */
const char *weft_sched_route_name(weft_sched_route_t r);
/* "auto", "cpu", "io", "mixed". Ownership: static. */
const char *weft_sched_type_name(weft_sched_type_t t);
/* Parses a type name; returns 0 or -EINVAL. */
int weft_sched_type_parse(const char *s, weft_sched_type_t *out);

/* ---- graphs: a DAG of named tasks submitted whole ---- */

typedef struct weft_sched_graph weft_sched_graph_t;

/* Creates an empty graph. Returns 0 or -ENOMEM. Ownership: returns owned; free with
 * weft_sched_graph_destroy(). Thread safety: a graph is used by one thread at a time, except
 * that weft_sched_graph_info/wait may run while its tasks run. */
int weft_sched_graph_create(weft_sched_graph_t **out);

/* Frees the graph; its tasks keep running if submitted. Ownership: takes `g`. */
void weft_sched_graph_destroy(weft_sched_graph_t *g);

/* Adds task `t` named `name` (unique, 1..255 bytes, no control characters) and returns its
 * index (>= 0), or -EEXIST, -EINVAL or -ENOMEM. t's own deps/dep_futures are kept as external
 * dependencies; t->name is ignored (the graph name is used). Ownership: copies `t` (its arg and
 * async_arg stay borrowed until the task is done). */
int weft_sched_graph_add(weft_sched_graph_t *g, const char *name, const weft_sched_task_t *t);

/* Makes task `task` depend on task `on` (indexes). Returns 0, -EINVAL (NULL g, a bad index,
 * task == on, or already submitted) or -ENOMEM. */
int weft_sched_graph_depend(weft_sched_graph_t *g, int task, int on);

/* The index of the task named `name`, or -ENOENT (-EINVAL for NULL arguments). */
int weft_sched_graph_find(const weft_sched_graph_t *g, const char *name);

/* Number of tasks, and the name of task i (borrowed). */
size_t weft_sched_graph_size(const weft_sched_graph_t *g);
const char *weft_sched_graph_name(const weft_sched_graph_t *g, int i);

/* Fills `order` (graph_size entries) with a topological order (dependencies first; ties in
 * order of addition). Returns 0, or WEFT_ECYCLE with "dependency cycle: a -> b -> a" (each task
 * depends on the next) appended to `why` (may be NULL); then `cycle` (if not NULL, graph_size
 * entries) gets the cycle's indexes and *ncycle its length. */
int weft_sched_graph_order(const weft_sched_graph_t *g, int *order, weft_buf_t *why, int *cycle,
                           size_t *ncycle);

/* Loads a state file written by weft_sched_graph_save(): tasks recorded as succeeded will not
 * run again (state RESUMED, future completed with 0 and no value); every other task runs.
 * Call before submit. Returns 0, -ENOENT/-EACCES (file), or WEFT_EPARSE with the line in `why`.
 * Names the graph does not have are ignored. */
int weft_sched_graph_resume(weft_sched_graph_t *g, const char *path, weft_buf_t *why);

/* Submits every task, refusing a cycle first (WEFT_ECYCLE, named in `why`). All or nothing:
 * on failure nothing was submitted. Returns 0, WEFT_ECYCLE, -EINVAL (also NULL s or g, or an
 * unregistered proc_fn, named in `why`), -ENOENT, -EALREADY (already submitted), -ESHUTDOWN or
 * -ENOMEM. Thread safety: any thread. */
int weft_sched_graph_submit(weft_sched_t *s, weft_sched_graph_t *g, weft_buf_t *why);

/* Waits until every task of a submitted graph finished. Returns 0 (all succeeded or were
 * resumed), 1 (some did not) or -ETIMEDOUT. */
int weft_sched_graph_wait(weft_sched_graph_t *g, int64_t timeout_ns);

/* What happened to task i (as weft_sched_info; live while it runs). Returns 0 or -EINVAL. */
int weft_sched_graph_info(weft_sched_graph_t *g, int i, weft_sched_info_t *out);

/* Task i's future (valid after submit, until the graph is destroyed), or NULL. Borrowed. */
weft_future_t *weft_sched_graph_future(const weft_sched_graph_t *g, int i);

/* Writes the outcome of every task (a small text file, one line per task; see docs/sched.md)
 * atomically (temporary file + rename). Returns 0 or a negative errno. */
int weft_sched_graph_save(weft_sched_graph_t *g, const char *path);

/* ---- monitoring ---- */

typedef struct weft_sched_exec_stats {
    int workers;                               /* current size (loop: the in-flight limit) */
    size_t queued, running;                    /* gauges */
    uint64_t done, failed, retried, timed_out; /* counters (done = finished OK) */
    uint64_t stuck;                            /* threads still running a task that timed out */
    double per_s;                      /* tasks finished per second over the last second or so */
    uint64_t wait_p50_ns, wait_p99_ns; /* queue wait, all time */
    uint64_t run_p50_ns, run_p90_ns, run_p99_ns; /* attempt run time, all time */
} weft_sched_exec_stats_t;

typedef struct weft_sched_stats_s {
    weft_sched_exec_stats_t exec[WEFT_ROUTE_COUNT]; /* indexed by weft_sched_route_t */
    bool has[WEFT_ROUTE_COUNT];                     /* which executors exist */
    size_t waiting;                                 /* tasks waiting for dependencies */
    size_t backoff;                                 /* tasks waiting to retry */
    size_t live;                                    /* tasks not finished */
    uint64_t submitted, succeeded, failed, skipped, cancelled;
    size_t classes;      /* task classes seen */
    size_t resizes;      /* adaptive sizing events so far */
    long long rss_bytes; /* resident memory of the process */
    size_t task_bytes;   /* scheduler memory for tasks (records, queues, futures) */
    uint64_t uptime_ns;
} weft_sched_stats_t;

/* Fills a snapshot. Thread safety: any thread. */
void weft_sched_stats(weft_sched_t *s, weft_sched_stats_t *out);

/* Appends the snapshot, every class (its route and why) and the recent sizing events to `out`,
 * as readable text or as one JSON object. Returns 0, -ENOMEM or -EMSGSIZE. Ownership: borrows.
 * Thread safety: any thread. */
int weft_sched_stats_text(weft_sched_t *s, weft_buf_t *out);
int weft_sched_stats_json(weft_sched_t *s, weft_buf_t *out);

/* The executors, for tools that show or tune them; NULL when absent. Borrowed from the scheduler;
 * do not destroy or shut them down. */
struct weft_pool *weft_sched_thread_pool(weft_sched_t *s);
struct weft_procpool *weft_sched_proc_pool(weft_sched_t *s);
struct weft_loop *weft_sched_loop(weft_sched_t *s);

#endif /* WEFT_SCHED_H */
