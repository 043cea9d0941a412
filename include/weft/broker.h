/* weft/broker.h - the scheduler past one machine: tasks in Redis Streams, workers anywhere.
 *
 * A submitter (weft_broker_t) puts a DAG of tasks into Redis; workers (weft_broker_worker_t, on
 * any machine that reaches the Redis server) take them, run them on their local hybrid scheduler
 * (weft/sched.h) and record the results in Redis. No home-made cluster protocol: a consumer group
 * of Redis Streams gives delivery, ownership and takeover; Lua scripts make each state change
 * atomic. docs/distributed.md describes the key layout and the failure cases.
 *
 * A task names what to run, never code: either a function registered with WEFT_PROCPOOL_FN (run
 * in the worker's process pool with the task's argument bytes; the worker program must register
 * it) or a shell command (run with /bin/sh -c in its own process group, as `weft run` jobs are).
 *
 * DELIVERY IS AT-LEAST-ONCE. A task may START more than once (its worker died or was cut off
 * from Redis after it started the task, and another worker reclaimed it after the lease), but it
 * is RECORDED exactly once: the first completion wins, later ones are dropped, and dependents are
 * released once. Make tasks idempotent, or accept that a side effect may happen twice.
 *
 * Meanings kept from the local scheduler: priority (higher first; three bands, see
 * weft_broker_task_t), retries with full-jitter backoff, per-attempt timeouts (enforced by the
 * worker that runs the attempt: it kills the process), dependencies (a dependent is queued when
 * its last dependency succeeds; a failed task skips its dependents), cancel (reaches a task that
 * runs on a remote worker: its process is killed).
 *
 * LIFETIME (the one rule, docs/lifetime.md): the broker never keeps caller memory past the call
 * that hands it over: everything a task description points to is copied into Redis before submit
 * returns. Results are returned as owned weft_buf_t contents (free with weft_buf_free).
 *
 * Thread safety: a weft_broker_t is for one thread at a time (it holds one Redis connection);
 * use one per thread. A worker's functions are for the thread that runs it, except
 * weft_broker_worker_stop (any thread, async-signal-safe).
 */
#ifndef WEFT_BROKER_H
#define WEFT_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_broker weft_broker_t;
typedef struct weft_broker_worker weft_broker_worker_t;

/* Options shared by submitters and workers; zero-initialise. Both sides must agree on `ns`. */
typedef struct weft_broker_opts {
    const char *ns;       /* key namespace (<= 63 bytes of [A-Za-z0-9_.-]); NULL: "weft" */
    uint64_t ttl_s;       /* results and state of finished tasks expire after this; 0: 1 day */
    int max_redeliveries; /* deliveries beyond the task's attempts before it goes to the dead
                             letter stream (a poison task that kills its worker); 0: 3 */
    uint64_t connect_timeout_ms; /* 0: 2000 */
} weft_broker_opts_t;

/* One task. Pointers are borrowed for the submit call only. */
typedef struct weft_broker_task {
    const char *id;  /* required, unique in the namespace (<= 200 bytes, no spaces) */
    const char *fn;  /* a WEFT_PROCPOOL_FN name... */
    const void *arg; /* ...and its argument bytes (copied) */
    size_t len;
    const char *cmd; /* or a shell command; exactly one of fn and cmd */
    int priority;    /* > 0: high band, 0: normal, < 0: low; a worker takes the highest first */
    const char *const *deps; /* ids of tasks submitted earlier (in this call or before) */
    size_t ndeps;
    int attempts;        /* attempts in all; 0 or 1: no retry (max 64) */
    uint64_t backoff_ms; /* retry base delay (full jitter, doubling); 0: 100 */
    uint64_t timeout_ms; /* per attempt, enforced by the worker; 0: none */
} weft_broker_task_t;

/* A task's state in Redis. */
typedef enum weft_broker_state {
    WEFT_BROKER_UNKNOWN = 0, /* no such task (or expired) */
    WEFT_BROKER_WAITING,     /* for dependencies */
    WEFT_BROKER_QUEUED,
    WEFT_BROKER_RUNNING,
    WEFT_BROKER_BACKOFF, /* failed an attempt; a retry is due later */
    WEFT_BROKER_DONE,
    WEFT_BROKER_FAILED,    /* also: dead-lettered */
    WEFT_BROKER_SKIPPED,   /* a dependency failed */
    WEFT_BROKER_CANCELLED, /* cancelled */
} weft_broker_state_t;

/* What weft_broker_result returns. */
typedef struct weft_broker_result_s {
    weft_broker_state_t state;
    int status;       /* final status (0 or negative errno / WEFT_E*), -EINPROGRESS before */
    int deliveries;   /* times a worker was handed the task (>= attempts when workers died) */
    int attempts;     /* attempts that ran to an outcome */
    char worker[64];  /* the worker that recorded the outcome (or runs it now) */
    weft_buf_t value; /* result bytes (fn) or the command's output (cmd, at most 4 KiB);
                         owned: weft_buf_free */
    weft_buf_t error; /* the last failure message; owned: weft_buf_free */
} weft_broker_result_t;

/* Connects to `url` (redis://HOST:PORT[/DB]). Returns 0, -EINVAL (bad url or opts), -ENOMEM or
 * -ECONNREFUSED/-ETIMEDOUT/-EIO (*out = NULL on failure). Ownership: returns owned; free with
 * weft_broker_destroy. Thread safety: any thread. */
int weft_broker_create(weft_broker_t **out, const char *url, const weft_broker_opts_t *opts);

/* Closes the connection and frees `b` (NULL is ignored). Tasks in Redis are not touched. */
void weft_broker_destroy(weft_broker_t *b);

/* Deletes every key of the namespace (tasks, streams, results, workers). For tests and fresh
 * runs; never while workers run tasks of it. Returns 0 or a negative error. */
int weft_broker_reset(weft_broker_t *b);

/* Submits n tasks in one pipeline, in order (dependencies must come first). A task whose id is
 * already known is left as it is (so a re-submitted DAG resumes: see weft_broker_resume). Returns
 * 0, -EINVAL (a bad task: nothing was sent), -ENOENT (a dependency unknown: the tasks before it
 * were submitted) or a connection error. Ownership: borrows `tasks` for the call. */
int weft_broker_submit(weft_broker_t *b, const weft_broker_task_t *tasks, size_t n);

/* Makes the failed, skipped and cancelled tasks among `ids` runnable again (their dependents
 * follow when they succeed), leaving done ones as they are; then submit the DAG again. Returns
 * the number of tasks reset, or a negative error. Ownership: borrows `ids`. */
int weft_broker_resume(weft_broker_t *b, const char *const *ids, size_t n);

/* Forgets the tasks `ids` (their state, result and dependents lists), so that submitting them
 * again runs them anew: a fresh run of the same DAG. Returns 0, -EBUSY (one of them is queued
 * or running: nothing was forgotten) or a negative error. Ownership: borrows `ids`. */
int weft_broker_forget(weft_broker_t *b, const char *const *ids, size_t n);

/* Waits until at least `n` tasks submitted in the namespace have finished (done, failed,
 * skipped or cancelled), or timeout_ns passes (< 0: forever). Returns 0, -ETIMEDOUT or a
 * connection error. */
int weft_broker_wait(weft_broker_t *b, uint64_t n, int64_t timeout_ns);

/* Counts of the namespace: tasks submitted and finished. Returns 0 or a negative error. */
int weft_broker_counts(weft_broker_t *b, uint64_t *submitted, uint64_t *finished);

/* Fills `out` with task `id`'s state (out->value and out->error are initialised by the call and
 * owned by the caller afterwards, also on failure). Returns 0 (state UNKNOWN if no such task) or
 * a negative error. */
int weft_broker_result(weft_broker_t *b, const char *id, weft_broker_result_t *out);

/* Frees a result's buffers. NULL is ignored. */
void weft_broker_result_free(weft_broker_result_t *r);

/* Cancels task `id`: one not started yet is recorded CANCELLED at once (its dependents are
 * skipped); a running one is killed by its worker within a heartbeat (a shell command: its
 * process group; a registered function: the process-pool worker that runs it) and recorded
 * CANCELLED once, without retry.
 * Returns 0, -ENOENT (no such task) or -EALREADY (finished). */
int weft_broker_cancel(weft_broker_t *b, const char *id);

/* Number of entries in the dead-letter stream (tasks given up after too many deliveries, each
 * with its errors). Returns 0 or a negative error. */
int weft_broker_dead_count(weft_broker_t *b, uint64_t *n);

/* One event of the namespace's event stream (what the workers did), for live displays. */
typedef struct weft_broker_event {
    char stream_id[32]; /* where to continue reading from */
    char id[208];       /* task id */
    weft_broker_state_t state;
    int status;
    int attempts;
    char worker[64];
    uint64_t ms; /* Redis clock, ms since the epoch */
} weft_broker_event_t;

/* Reads up to `max` events after stream id `after` ("0" from the start; then the last event's
 * stream_id), waiting up to block_ms for the first (0: do not wait). Returns the number read
 * (0..max) or a negative error. Ownership: fills the caller's array. */
int weft_broker_events(weft_broker_t *b, const char *after, weft_broker_event_t *ev, int max,
                       int block_ms);

/* Sets `id` to the stream id of the newest event ("0-0" if none): read from there to see only
 * what happens next. Returns 0 or a negative error.
 * RUNNING events are written only while someone follows: this call and weft_broker_events ask
 * the workers for them (for a minute, renewed while reading), so call this before submitting to
 * see every start; the other events are always written. */
int weft_broker_events_last(weft_broker_t *b, char id[32]);

/* Appends a table of live workers (name, host, pid, slots, running, done, and the tasks each
 * runs) to `out`. Returns the number of live workers or a negative error. Ownership: appends to
 * the caller's buffer. */
int weft_broker_workers(weft_broker_t *b, weft_buf_t *out);

/* ---- workers ---- */

typedef struct weft_broker_worker_opts {
    const char *name;      /* consumer name, stable across restarts (a restarted worker first
                              finishes its own pending entries); NULL: "HOST:PID" */
    int procs;             /* process workers for fn tasks; 0: 1; < 0: none (fn tasks fail) */
    int threads;           /* threads for cmd tasks; 0: 4 */
    int slots;             /* tasks held at once (never more are fetched: no prefetch); 0:
                              procs + threads */
    uint64_t lease_ms;     /* an entry idle this long in a dead worker's hands is reclaimed;
                              live workers refresh theirs every heartbeat; 0: 5000 */
    uint64_t heartbeat_ms; /* 0: lease_ms / 5 */
    int batch;             /* at most this many entries per read (COUNT); 0: 128 */
    unsigned queues;       /* the priority bands (queues) it takes new tasks from: bit 0 high
                              (priority > 0), bit 1 normal (0), bit 2 low (< 0); 0: all. A
                              worker still finishes its own pending entries of any band, and
                              reclaims only from its bands. */
} weft_broker_worker_opts_t;

/* Creates a worker: connects, creates the consumer group if needed and starts its local
 * scheduler. Returns 0, -EINVAL, -ENOMEM or a connection error (*out = NULL on failure).
 * Ownership: returns owned; free with weft_broker_worker_destroy. Thread safety: any thread. */
int weft_broker_worker_create(weft_broker_worker_t **out, const char *url,
                              const weft_broker_opts_t *bopts,
                              const weft_broker_worker_opts_t *wopts);

/* Runs the worker until weft_broker_worker_stop: first its own pending entries, then new ones,
 * reclaiming the entries of dead workers after the lease. A lost connection is retried with
 * backoff (the run goes on when Redis is back). On stop it finishes the tasks it holds and
 * records them. Returns 0, or a negative error it could not recover from. Thread safety: one
 * thread (the worker's), once at a time. */
int weft_broker_worker_run(weft_broker_worker_t *w);

/* Asks a running worker to stop. Thread safety: any thread; async-signal-safe. */
void weft_broker_worker_stop(weft_broker_worker_t *w);

/* Frees a worker that does not run (NULL is ignored). */
void weft_broker_worker_destroy(weft_broker_worker_t *w);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BROKER_H */
