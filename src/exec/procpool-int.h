/* Internal: what the parts of the process pool share. First what the parent and the worker
 * (procpool-worker.c) agree on: the layout of a worker's shared memory, the message formats, the
 * inherited descriptors and the function registry. Then the parent's own state, shared by its
 * four files: procpool.c (lifecycle and the design), procpool-spawn.c, procpool-dispatch.c and
 * procpool-supervisor.c. */
#ifndef WEFT_EXEC_PROCPOOL_INT_H
#define WEFT_EXEC_PROCPOOL_INT_H

#include "core/cpu.h"
#include "exec/shmring.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <weft/procpool.h>

/* The environment variable that turns a fresh execution of the program into a worker. Its
 * value is "<protocol version>:<parent pid>". The worker removes it at once, so that programs
 * the worker's functions start are not confused. */
#define WEFT__PP_ENV "WEFT_PROCPOOL_WORKER"
#define WEFT__PP_VERSION 2u
#define WEFT__PP_MAGIC 0x57665070u /* "pPfW" */

/* The most tasks in flight (handed to a worker, not answered) per worker. */
#define WEFT__PP_MAX_DEPTH 128u

/* Marks a claim word as "cancelled by the parent" (task ids stay below 2^63). */
#define WEFT__PP_CANCELLED (UINT64_C(1) << 63)

/* Descriptors a worker inherits, at fixed numbers; everything from FD_FIRST_FREE up is closed. */
enum {
    WEFT__PP_FD_SHM = 3,     /* memfd: control block + both rings */
    WEFT__PP_FD_WAKE = 4,    /* eventfd: wakes the parent's supervisor */
    WEFT__PP_FD_OVF_IN = 5,  /* memfd: an argument too large for the task ring */
    WEFT__PP_FD_OVF_OUT = 6, /* memfd: a result too large for the result ring */
    WEFT__PP_FD_FIRST_FREE = 7,
};

/* The control block at offset 0 of the shared memory. The parent writes the configuration
 * before it spawns the worker; the live fields say what the worker is doing. */
typedef struct weft__pp_ctrl {
    uint32_t magic, version;
    int32_t parent_pid;
    uint32_t index; /* worker serial number, for messages */
    uint64_t shm_size;
    uint64_t task_off, task_size;     /* task ring data (parent -> worker) */
    uint64_t result_off, result_size; /* result ring data (worker -> parent) */
    uint64_t max_message;             /* largest argument or result */
    uint64_t big_threshold;           /* payloads above this go through the overflow memfds */
    uint64_t max_tasks;               /* the worker exits(0) after this many tasks; 0: never */
    weft_shmring_shared_t task_ring;
    weft_shmring_shared_t result_ring;
    /* Written by the worker once it is ready (release; the supervisor loads with acquire). */
    _Alignas(64) _Atomic int32_t worker_pid;
    _Atomic uint32_t ready;
    /* The task the worker is running (0: none) and when it started (CLOCK_MONOTONIC ns).
     * start_ns is stored before running_id; the supervisor reads id, start, id again. */
    _Alignas(64) _Atomic uint64_t running_id;
    _Atomic uint64_t start_ns;
    /* Who decides whether an in-flight task runs, one word per in-flight slot (the task
     * message's `slot`): the worker exchanges in the task's id just before it runs it; the
     * parent cancels a task that has not started by a compare-and-swap of any other value to
     * id | WEFT__PP_CANCELLED. Both are read-modify-writes of one word, so exactly one of them
     * wins: the worker skips a task it finds cancelled (answering -ECANCELED), and the parent
     * that finds the id knows the task is running. */
    _Alignas(64) _Atomic uint64_t claim[WEFT__PP_MAX_DEPTH];
} weft__pp_ctrl_t;

/* The longest failure message kept (bytes); a worker sends no more. */
#define WEFT__PP_MAX_TEXT 4096

/* Messages. Every ring record is one message; payload bytes follow the header. */
enum {
    WEFT__PP_TASK = 1,       /* argument bytes follow */
    WEFT__PP_TASK_BIG = 2,   /* argument is in the OVF_IN memfd, `len` bytes from offset 0 */
    WEFT__PP_QUIT = 3,       /* finish: the worker exits with status 0 */
    WEFT__PP_RESULT = 4,     /* result (status >= 0) or message (status < 0) bytes follow */
    WEFT__PP_RESULT_BIG = 5, /* the bytes are in the OVF_OUT memfd */
};

typedef struct weft__pp_task_msg {
    uint32_t kind;
    uint32_t flags;
    uint64_t id;         /* task id, unique within the pool, never 0 */
    uint64_t fn_hash;    /* weft_hash_str(name) */
    uint64_t timeout_ns; /* 0: none (the worker tells the parent when a timed task starts) */
    uint64_t len;        /* argument bytes */
    uint64_t slot;       /* its claim word: ctrl->claim[slot], below WEFT__PP_MAX_DEPTH */
} weft__pp_task_msg_t;   /* 48 bytes: the argument stays 16-byte aligned */

typedef struct weft__pp_result_msg {
    uint32_t kind;
    int32_t status; /* the function's return value */
    uint64_t id;
    uint64_t run_ns; /* time spent in the function: the parent sizes its dispatch depth by it */
    uint64_t len;
} weft__pp_result_msg_t; /* 32 bytes */

/* Messages name a function by weft_hash_str(name) (weft/hash.h: never 0, and the same in parent
 * and worker, which run the same binary); the worker finds it in its own registry, built by the
 * same constructors. Looks a function up by name or by hash. Returns NULL if it is not registered.
 * Thread safety: any thread. */
weft_proc_fn weft__pp_lookup(const char *name, uint64_t *hash);
weft_proc_fn weft__pp_lookup_hash(uint64_t hash, const char **name);

/* Whole-buffer pread/pwrite at offset 0 of an overflow memfd (large arguments and results), for
 * both sides. Return 0 or a negative errno (-EIO on a short file). */
int weft__pp_pread_all(int fd, void *buf, size_t len);
int weft__pp_pwrite_all(int fd, const void *buf, size_t len);

/* ---- the parent's side (procpool.c, procpool-spawn.c, procpool-dispatch.c,
 * procpool-supervisor.c; the design is in procpool.c) ---- */

#define WEFT__PP_MAX_WORKERS 256
#define WEFT__PP_DEPTH_NS 2000000u /* aim for ~2 ms of queued work per worker */
#define WEFT__PP_COMPLS_CAP 2048   /* completions the supervisor holds before it flushes */

typedef struct weft__pp_pending {
    struct weft__pp_pending *next;
    weft_future_t *f;
    uint64_t id, fn_hash, timeout_ns;
    size_t len;
    bool started; /* re-queued from a dead worker: its future is RUNNING already */
    unsigned char data[];
} weft__pp_pending_t;

typedef struct weft__pp_inflight {
    weft_future_t *f;
    uint64_t id, fn_hash, timeout_ns;
    uint64_t pos; /* task ring position of its record */
    size_t len;
    bool big;
    bool done; /* already completed (timed out or cancelled); drop its result */
} weft__pp_inflight_t;

/* Why the pool killed a worker (worker kill_reason). */
enum {
    WEFT__PP_KILL_NONE = 0,
    WEFT__PP_KILL_TIMEOUT,   /* its running task passed its deadline */
    WEFT__PP_KILL_CANCEL,    /* its running task was cancelled with force */
    WEFT__PP_KILL_PROTO,     /* it sent a malformed message */
    WEFT__PP_KILL_QUIT_LATE, /* told to quit, it did not in time */
    WEFT__PP_KILL_TEARDOWN,  /* the pool is being destroyed after a failed create */
};

typedef struct weft__pp_worker {
    uint32_t serial;
    pid_t pid;
    int pidfd, shm_fd, ovf_in, ovf_out;
    weft__pp_ctrl_t *ctrl;
    size_t ctrl_size, tsize, rsize;
    void *tdata, *rdata;
    weft_shmring_t tq; /* producer side, under mu */
    weft_shmring_t rq; /* consumer side, supervisor only */
    weft__pp_inflight_t fl[WEFT__PP_MAX_DEPTH];
    unsigned fl_head, fl_count, ntimed;
    uint64_t dispatched;
    uint64_t big_in_end; /* task ring position after the last big task (0: none) */
    uint64_t skip_round;
    uint64_t quit_ns;
    int kill_reason;
    bool ready, retiring, self_exit, quit_sent, dying, dirty;
    bool reaped; /* its pid may be reused: never signal its process group again */
} weft__pp_worker_t;

typedef struct weft__pp_compl {
    weft_future_t *f;
    int status;
    void *value; /* weft__malloc'd, NUL-terminated, size bytes */
    size_t size;
    char *msg; /* weft__malloc'd or NULL */
} weft__pp_compl_t;

struct weft_procpool {
    pthread_mutex_t mu;
    pthread_cond_t space_cv; /* submitters waiting for queue space */
    pthread_cond_t state_cv; /* create waiting for the first workers */
    pthread_t sup;
    int wake_fd, epfd;
    char **envp;
    char *argv0;
    /* configuration, immutable after create */
    int max_tasks;
    size_t capacity, max_message, big_threshold;
    /* under mu */
    int target;
    weft__pp_worker_t **w; /* changed only by the supervisor (under mu) */
    int nw;
    uint32_t next_serial;
    weft__pp_pending_t *qhead, *qtail;
    size_t nqueued, running;
    uint64_t next_id, round;
    int space_waiters, cursor;
    unsigned depth;
    uint64_t ewma_ns;
    bool closed, destroying, broken, create_done, teardown;
    int create_err;
    int startup_failures, replace_owed;
    uint64_t spawn_retry_ns;
    char broken_msg[256];
    uint64_t completed, failed, crashed, timed_out, respawned;
    /* supervisor only */
    weft__pp_compl_t *compls;
    size_t ncompls;
    uint64_t create_start_ns;
    bool have_pwait2;
    weft__spin_t sup_spin; /* how long the idle supervisor polls the rings (core/cpu.h) */
};

/* procpool.c: small helpers every part uses. */
/* Wakes the supervisor (the pool's eventfd). Any thread, any lock. */
void weft__pp_poke(weft_procpool_t *pp);
/* Text for a future's message: at most WEFT__PP_MAX_TEXT bytes, up to the first NUL; owned by
 * the caller (weft__free), NULL if out of memory. */
char *weft__pp_dup_text(const char *s, size_t n);
char *weft__pp_fmt_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Completes c->f (no lock held) and drops the pool's reference. */
void weft__pp_settle(const weft__pp_compl_t *c);
/* Supervisor, under mu: queues a completion for after the lock is dropped; flush with
 * weft__pp_flush_compls (no lock held) before the array is half full. */
void weft__pp_add_compl(weft_procpool_t *pp, weft_future_t *f, int status, void *value, size_t size,
                        char *msg);
void weft__pp_flush_compls(weft_procpool_t *pp);

/* procpool-spawn.c: starting, killing and freeing worker processes. */
/* The workers' environment: the caller's without WEFT__PP_ENV, then WEFT__PP_ENV for this
 * process. Returns an owned NULL-terminated array (each string and the array weft__free'd), or
 * NULL if out of memory. */
char **weft__pp_build_env(void);
/* Supervisor, no lock held: creates a worker's shared memory and starts its process (registered
 * in pp->epfd). Returns 0 and an owned *out, or a negative errno (*out = NULL). */
int weft__pp_spawn_worker(weft_procpool_t *pp, weft__pp_worker_t **out);
/* Unmaps and closes everything of a reaped worker and frees it. Takes `w`. */
void weft__pp_free_worker(weft__pp_worker_t *w);
/* Under mu: SIGKILL to the worker and its process group, once (`reason`: WEFT__PP_KILL_*); the
 * supervisor handles the exit when the pidfd reports it. */
void weft__pp_kill_worker(weft__pp_worker_t *w, int reason);
/* Moves a new descriptor to number >= 10, keeping close-on-exec. Returns it or -errno. */
int weft__pp_move_high(int fd);

/* procpool-dispatch.c: submission, rings and results (under mu unless said otherwise). */
static inline weft__pp_inflight_t *weft__pp_fl_at(weft__pp_worker_t *w, unsigned i)
{
    return &w->fl[(w->fl_head + i) % WEFT__PP_MAX_DEPTH];
}
/* Fills the header of a queued record (any lock: the record is not shared yet). */
void weft__pp_pending_init(weft__pp_pending_t *t, weft_future_t *f, uint64_t id, uint64_t fn_hash,
                           uint64_t timeout_ns, size_t len, bool started);
/* Publishes what dispatch wrote into task rings and wakes workers that sleep. */
void weft__pp_flush_dirty(weft_procpool_t *pp);
/* Supervisor: moves queued tasks into rings while there is room. */
void weft__pp_dispatch_queue(weft_procpool_t *pp);
/* Takes every queued task out of the queue; fail or cancel them with weft__pp_fail_list. */
weft__pp_pending_t *weft__pp_detach_queue(weft_procpool_t *pp);
/* Supervisor, no lock held: reads a batch of `w`'s results and completes their futures.
 * Returns true if it consumed anything. */
bool weft__pp_drain(weft_procpool_t *pp, weft__pp_worker_t *w);
/* No lock held: completes detached tasks with `status` (-ECANCELED cancels them), frees them,
 * returns how many it completed. */
size_t weft__pp_fail_list(weft__pp_pending_t *list, int status, const char *msg);

/* procpool-supervisor.c: the supervisor thread (crash detection, deadlines, replacements). */
/* Under mu: workers that count toward the target (not retiring, dying or quitting). */
int weft__pp_active_workers(const weft_procpool_t *pp);
/* The supervisor thread's body (arg: the pool); returns when the pool is destroyed. */
void *weft__pp_supervise(void *arg);

#endif /* WEFT_EXEC_PROCPOOL_INT_H */
