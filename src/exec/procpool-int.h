/* Internal: what the two halves of the process pool share - the parent (procpool.c) and the
 * worker (procpool-worker.c): the layout of a worker's shared memory, the message formats, the
 * inherited descriptors and the function registry. See procpool.c for the design. */
#ifndef WEFT_EXEC_PROCPOOL_INT_H
#define WEFT_EXEC_PROCPOOL_INT_H

#include "exec/shmring.h"

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

#endif /* WEFT_EXEC_PROCPOOL_INT_H */
