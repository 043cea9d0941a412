/* The process pool (weft/procpool.h): worker processes that run registered functions on argument
 * bytes, with crash isolation and hard timeouts.
 *
 * DESIGN
 * Processes and threads
 *   - API threads (any number) call submit/resize/stats/shutdown/destroy.
 *   - One supervisor thread per pool spawns, watches, kills and reaps the workers, reads every
 *     result and completes the futures. It spawns the workers itself because PR_SET_PDEATHSIG
 *     (which kills a worker when its parent dies) fires when the *thread* that created the
 *     child exits, and the supervisor lives exactly as long as the pool.
 *   - Workers (procpool-worker.c) are fresh executions of /proc/self/exe: posix_spawn, never a
 *     fork of the caller, so creating a pool is safe in a process that already runs threads (a
 *     forked copy of a multi-threaded program may find malloc's or any other lock held forever).
 *
 * Why spawn and not a fork server. Measured on the 2-vCPU development VM (other jobs running, so
 *   +-50%), time until a new process can take work:
 *     fork() of a small single-threaded server, child reports ready:            1 - 3 ms
 *     posix_spawn of /proc/self/exe, worker ready, program with 3 shared libs:   3 - 4 ms
 *     the same, program linked like `weft` (44 shared libs: libcurl, TLS, ICU): ~37 ms
 *   The difference is the dynamic loader and the libraries' constructors running again in each
 *   worker (an empty main() linked with those 44 libraries takes as long to exec). We spawn
 *   anyway: a fork server has to be forked before the program starts any thread, i.e. from a
 *   constructor of every program that links libweft, pool or no pool (an extra process per
 *   program), it runs in a half-initialised copy of the program, and sanitizer runtimes already
 *   have threads by then. Spawning needs no early process, is safe from any thread, gives each
 *   worker a pristine address space and works the same under ASan and TSan. The cost is paid
 *   when the pool starts (workers start in parallel: posix_spawn returns as soon as the child
 *   has exec'd) and when a worker is replaced, while the other workers keep running.
 *
 * Data path (per worker): one memfd holds a control block and two SPSC rings (shmring.h): tasks
 *   parent -> worker and results worker -> parent. A message larger than big_threshold goes
 *   through one of two further memfds (overflow in / out), one message at a time per direction.
 *   Wake-ups only when the other side sleeps: the worker sleeps on a futex in the task ring; the
 *   supervisor sleeps in epoll on one eventfd that every worker writes when it publishes a
 *   result and finds the supervisor's "waiting" flag set. A busy pipeline makes no syscalls.
 *
 * Dispatch: a task goes straight from submit into the ring of the ready worker with the fewest
 *   tasks in flight, or, if every ring is at its depth, into the pool's FIFO queue (bounded by
 *   queue_capacity), from which the supervisor refills rings as results come back. The depth
 *   (tasks in flight per worker) follows a moving average of the functions' run time: about 2 ms
 *   of work per worker, between 1 and MAX_DEPTH, so no-op tasks are pipelined deeply while long
 *   tasks are handed out one by one and stay cancellable in the queue. Futures are started
 *   (RUNNING) when a task enters a ring: from then on weft_future_cancel cannot cancel it, but
 *   weft_procpool_cancel can: a task not yet started through its claim word (procpool-int.h),
 *   a running one by killing its worker (force).
 *
 * Invariants (all under mu):
 *   - A worker runs the tasks of its ring in order and answers each with exactly one result, so
 *     w->fl (the FIFO of in-flight records) matches its results head first; a result that does
 *     not match the head is a protocol error and the worker is killed.
 *   - The task a worker is running is ctrl->running_id. When a worker dies, tasks whose result
 *     arrived are completed; the one it was running fails (WEFT_ECRASHED, naming the signal or
 *     exit status) unless we killed it for another task's timeout; every other in-flight task
 *     is re-queued at the front of the queue with its argument read back from the dead ring.
 *   - Deadlines count from the moment the worker starts the task (start_ns). The supervisor
 *     fails the future with -ETIMEDOUT and SIGKILLs the worker through its pidfd as soon as the
 *     deadline passes; it sleeps no longer than the nearest deadline (epoll_pwait2, ns).
 *   - The worker table (pp->w, pp->nw) and every worker's result ring are changed only by the
 *     supervisor, so it may read them without mu; everything else about a worker is under mu.
 *
 * Lock order: pp->mu, then a future's internal stripe lock (weft_future_start/release only).
 *   Futures are completed (callbacks run) only with no lock held.
 */
#include "exec/procpool-int.h"

#include "core/alloc.h"
#include "core/cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/sys.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

#define MAX_WORKERS 256
#define MAX_DEPTH WEFT__PP_MAX_DEPTH
#define DEPTH_NS 2000000u         /* aim for ~2 ms of queued work per worker */
#define RING_BYTES (1u << 20)     /* each direction, per worker */
#define BIG_THRESHOLD (64u << 10) /* larger payloads go through the overflow memfds */
#define QUIT_GRACE_NS 2000000000u /* an idle worker told to quit is killed after this */
#define SPAWN_RETRY_NS 100000000u /* after a failed spawn */
#define CREATE_TIMEOUT_NS 60000000000u
#define STARTUP_FAILURES_MAX 3 /* consecutive workers dying before ready: pool broken */
#define POLL_NS 200000u        /* a busy supervisor still polls epoll this often */
#define SUP_SPIN_NS 10000u     /* an idle supervisor polls the rings this long */
#define MAX_MESSAGE_TEXT WEFT__PP_MAX_TEXT
#define BATCH 256
#define COMPLS_CAP 2048

typedef struct pending {
    struct pending *next;
    weft_future_t *f;
    uint64_t id, fn_hash, timeout_ns;
    size_t len;
    bool started; /* re-queued from a dead worker: its future is RUNNING already */
    unsigned char data[];
} pending_t;

typedef struct inflight {
    weft_future_t *f;
    uint64_t id, fn_hash, timeout_ns;
    uint64_t pos; /* task ring position of its record */
    size_t len;
    bool big;
    bool done; /* already completed (timed out); drop its result */
} inflight_t;

enum { KILL_NONE = 0, KILL_TIMEOUT, KILL_CANCEL, KILL_PROTO, KILL_QUIT_LATE, KILL_TEARDOWN };

typedef struct worker {
    uint32_t serial;
    pid_t pid;
    int pidfd, shm_fd, ovf_in, ovf_out;
    weft__pp_ctrl_t *ctrl;
    size_t ctrl_size, tsize, rsize;
    void *tdata, *rdata;
    weft_shmring_t tq; /* producer side, under mu */
    weft_shmring_t rq; /* consumer side, supervisor only */
    inflight_t fl[MAX_DEPTH];
    unsigned fl_head, fl_count, ntimed;
    uint64_t dispatched;
    uint64_t big_in_end; /* task ring position after the last big task (0: none) */
    uint64_t skip_round;
    uint64_t quit_ns;
    int kill_reason;
    bool ready, retiring, self_exit, quit_sent, dying, dirty;
    bool reaped; /* its pid may be reused: never signal its process group again */
} worker_t;

typedef struct compl
{
    weft_future_t *f;
    int status;
    void *value; /* weft__malloc'd, NUL-terminated, size bytes */
    size_t size;
    char *msg; /* weft__malloc'd or NULL */
}
compl_t;

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
    worker_t **w; /* changed only by the supervisor (under mu) */
    int nw;
    uint32_t next_serial;
    pending_t *qhead, *qtail;
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
    compl_t *compls;
    size_t ncompls;
    uint64_t create_start_ns;
    bool have_pwait2;
};

/* ---- small helpers ------------------------------------------------------------------------- */

static void poke(weft_procpool_t *pp)
{
    uint64_t one = 1;
    ssize_t n;
    do n = write(pp->wake_fd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
}

/* Moves a new descriptor to number >= 10, keeping close-on-exec: the spawn file actions place
 * the inherited ones at 3..6 and must not overwrite a source. */
static int move_high(int fd)
{
    if (fd < 0) return -errno;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    int e = errno;
    close(fd);
    return nfd < 0 ? -e : nfd;
}

static char *dup_text(const char *s, size_t n)
{
    if (n > MAX_MESSAGE_TEXT) n = MAX_MESSAGE_TEXT;
    const char *nul = memchr(s, '\0', n);
    if (nul) n = (size_t)(nul - s);
    char *d = weft__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *fmt_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_text(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return dup_text(buf, strlen(buf));
}

/* Completes a future with no lock held and drops the pool's reference. */
static void settle(const compl_t *c)
{
    if (c->status >= 0) {
        weft_future_complete(c->f, c->status, c->value, c->size, c->value ? weft__free : NULL);
    } else {
        weft__free(c->value);
        if (c->msg)
            weft_future_fail(c->f, c->status, "%s", c->msg);
        else
            weft_future_complete(c->f, c->status, NULL, 0, NULL);
    }
    weft__free(c->msg);
    weft_future_release(c->f);
}

/* Supervisor: queue a completion for after the lock is dropped. The array is sized so that a
 * locked section never overflows it (flush_compls runs before each one when half full). */
static void add_compl(weft_procpool_t *pp, weft_future_t *f, int status, void *value, size_t size,
                      char *msg)
{
    compl_t c = {f, status, value, size, msg};
    if (pp->ncompls == COMPLS_CAP) abort(); /* cannot happen: see flush_compls */
    pp->compls[pp->ncompls++] = c;
}

static void flush_compls(weft_procpool_t *pp)
{
    for (size_t i = 0; i < pp->ncompls; i++) settle(&pp->compls[i]);
    pp->ncompls = 0;
}

static void describe_exit(char *buf, size_t n, pid_t pid, int rc, const siginfo_t *si)
{
    if (rc < 0)
        snprintf(buf, n, "worker %d exited (status collected by someone else)", (int)pid);
    else if (si->si_code == CLD_EXITED)
        snprintf(buf, n, "worker %d exited with status %d", (int)pid, si->si_status);
    else {
        const char *d = sigdescr_np(si->si_status);
        snprintf(buf, n, "worker %d killed by signal %d (%s)", (int)pid, si->si_status,
                 d ? d : "unknown signal");
    }
}

/* ---- workers: spawn and free ------------------------------------------------------------- */

static void free_worker(worker_t *w)
{
    if (w->ctrl) munmap(w->ctrl, w->ctrl_size);
    weft__shmring_unmap(w->tdata, w->tsize);
    weft__shmring_unmap(w->rdata, w->rsize);
    int fds[] = {w->pidfd, w->shm_fd, w->ovf_in, w->ovf_out};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0) close(fds[i]);
    weft__free(w);
}

/* Supervisor, no lock held: creates the shared memory and starts one worker process. */
static int spawn_worker(weft_procpool_t *pp, worker_t **out)
{
    *out = NULL;
    worker_t *w = weft__calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->pidfd = w->shm_fd = w->ovf_in = w->ovf_out = -1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    w->ctrl_size = (sizeof(weft__pp_ctrl_t) + page - 1) / page * page;
    w->tsize = w->rsize = weft__shmring_data_size(RING_BYTES);
    size_t total = w->ctrl_size + w->tsize + w->rsize;
    int rc = 0;
    if ((w->shm_fd = move_high(memfd_create("weft-procpool", MFD_CLOEXEC))) < 0 ||
        (w->ovf_in = move_high(memfd_create("weft-procpool-in", MFD_CLOEXEC))) < 0 ||
        (w->ovf_out = move_high(memfd_create("weft-procpool-out", MFD_CLOEXEC))) < 0) {
        rc = w->shm_fd < 0 ? w->shm_fd : w->ovf_in < 0 ? w->ovf_in : w->ovf_out;
        goto fail;
    }
    if (ftruncate(w->shm_fd, (off_t)total) < 0) {
        rc = -errno;
        goto fail;
    }
    weft__pp_ctrl_t *c = mmap(NULL, w->ctrl_size, PROT_READ | PROT_WRITE, MAP_SHARED, w->shm_fd, 0);
    if (c == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    w->ctrl = c;
    c->magic = WEFT__PP_MAGIC;
    c->version = WEFT__PP_VERSION;
    c->parent_pid = (int32_t)getpid();
    c->shm_size = total;
    c->task_off = w->ctrl_size;
    c->task_size = w->tsize;
    c->result_off = w->ctrl_size + w->tsize;
    c->result_size = w->rsize;
    c->max_message = pp->max_message;
    c->big_threshold = pp->big_threshold;
    c->max_tasks = (uint64_t)pp->max_tasks;
    weft__shmring_format(&c->task_ring, w->tsize);
    weft__shmring_format(&c->result_ring, w->rsize);
    atomic_init(&c->worker_pid, 0);
    atomic_init(&c->ready, 0);
    atomic_init(&c->running_id, 0);
    atomic_init(&c->start_ns, 0);
    for (unsigned i = 0; i < MAX_DEPTH; i++) atomic_init(&c->claim[i], 0);
    if ((rc = weft__shmring_map(w->shm_fd, (off_t)c->task_off, w->tsize, &w->tdata)) < 0 ||
        (rc = weft__shmring_map(w->shm_fd, (off_t)c->result_off, w->rsize, &w->rdata)) < 0)
        goto fail;
    if ((rc = weft__shmring_attach(&w->tq, &c->task_ring, w->tdata, w->tsize, true)) < 0 ||
        (rc = weft__shmring_attach(&w->rq, &c->result_ring, w->rdata, w->rsize, false)) < 0)
        goto fail;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* dup2 clears close-on-exec on the copies; every other descriptor >= 7 is closed, so the
     * worker inherits nothing of the parent's but stdout and stderr. */
    posix_spawn_file_actions_adddup2(&fa, w->shm_fd, WEFT__PP_FD_SHM);
    posix_spawn_file_actions_adddup2(&fa, pp->wake_fd, WEFT__PP_FD_WAKE);
    posix_spawn_file_actions_adddup2(&fa, w->ovf_in, WEFT__PP_FD_OVF_IN);
    posix_spawn_file_actions_adddup2(&fa, w->ovf_out, WEFT__PP_FD_OVF_OUT);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, WEFT__PP_FD_FIRST_FREE);
    sigset_t def, none;
    sigfillset(&def);
    sigdelset(&def, SIGKILL);
    sigdelset(&def, SIGSTOP);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setsigmask(&attr, &none);
    /* Its own process group (pgid = its pid), so that killing the group also kills what its
     * functions forked (kill_worker, handle_exit). */
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETPGROUP);
    char *argv[] = {pp->argv0, NULL};
    pid_t pid;
    int src = posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, pp->envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (src != 0) {
        rc = -src;
        goto fail;
    }
    w->pid = pid;
    w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (w->pidfd < 0) {
        rc = -errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    if (epoll_ctl(pp->epfd, EPOLL_CTL_ADD, w->pidfd, &ev) < 0) {
        rc = -errno;
        syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
        waitpid(pid, NULL, 0);
        goto fail;
    }
    *out = w;
    return 0;
fail:
    free_worker(w);
    return rc;
}

/* Under mu: SIGKILL through the pidfd, and to the worker's process group (processes its
 * functions forked); the exit is handled when the pidfd reports it. The group id is the worker's
 * pid, which cannot be reused before handle_exit reaps the worker, and handle_exit sets `reaped`
 * (under mu) before it does. */
static void kill_worker(worker_t *w, int reason)
{
    if (w->dying) return;
    w->dying = true;
    w->kill_reason = reason;
    syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
    if (!w->reaped) kill(-w->pid, SIGKILL);
}

/* ---- dispatch (under mu) ------------------------------------------------------------------- */

static inline inflight_t *fl_at(worker_t *w, unsigned i)
{
    return &w->fl[(w->fl_head + i) % MAX_DEPTH];
}

static bool can_take(const weft_procpool_t *pp, const worker_t *w, unsigned depth)
{
    return w->ready && !w->retiring && !w->dying && !w->quit_sent && w->fl_count < depth &&
           w->skip_round != pp->round;
}

enum { DISPATCH_NONE = 0, DISPATCH_OK = 1, DISPATCH_CANCELLED = 2 };

/* Puts one task into the ring of the least loaded worker that can take it. Returns
 * DISPATCH_OK, DISPATCH_NONE (no room anywhere: keep it queued), DISPATCH_CANCELLED (its future
 * was cancelled: drop it) or a negative error to fail it with. `started`: the future is RUNNING
 * already (a task re-queued from a dead worker), else dispatch starts it. */
static int dispatch(weft_procpool_t *pp, uint64_t id, uint64_t fn_hash, uint64_t timeout_ns,
                    const void *data, size_t len, weft_future_t *f, bool started, bool *need_poke)
{
    bool big = len > pp->big_threshold;
    pp->round++;
    for (;;) {
        worker_t *best = NULL;
        for (int k = 0; k < pp->nw; k++) {
            worker_t *w = pp->w[(pp->cursor + k) % pp->nw];
            if (!can_take(pp, w, pp->depth)) continue;
            if (big && w->big_in_end && weft__shmring_consumed(&w->tq) < w->big_in_end) continue;
            if (!best || w->fl_count < best->fl_count) best = w;
            if (best->fl_count == 0) break;
        }
        if (!best) return DISPATCH_NONE;
        worker_t *w = best;
        if (big) {
            int rc = weft__pp_pwrite_all(w->ovf_in, data, len);
            if (rc < 0) return rc;
        }
        uint64_t pos = weft__shmring_wpos(&w->tq);
        /* Its in-flight slot names its claim word too (see weft_procpool_cancel). */
        unsigned slot = (w->fl_head + w->fl_count) % MAX_DEPTH;
        weft__pp_task_msg_t m = {
            big ? WEFT__PP_TASK_BIG : WEFT__PP_TASK, 0, id, fn_hash, timeout_ns, len, slot};
        unsigned char *p = weft__shmring_reserve(&w->tq, sizeof m + (big ? 0 : len));
        if (!p) {
            w->skip_round = pp->round; /* its ring is full; try the others */
            continue;
        }
        int st = started ? 0 : weft_future_start(f);
        if (st == -ECANCELED || st == -EALREADY) {
            weft__shmring_unreserve(&w->tq, pos);
            return DISPATCH_CANCELLED;
        }
        memcpy(p, &m, sizeof m);
        if (!big && len) memcpy(p + sizeof m, data, len);
        inflight_t *r = fl_at(w, w->fl_count++);
        *r = (inflight_t){f, id, fn_hash, timeout_ns, pos, len, big, false};
        if (timeout_ns) w->ntimed++;
        if (big) w->big_in_end = weft__shmring_wpos(&w->tq);
        pp->running++;
        w->dirty = true;
        pp->cursor = (pp->cursor + 1) % pp->nw;
        if (pp->max_tasks && ++w->dispatched >= (uint64_t)pp->max_tasks) {
            /* The worker exits by itself after this task; start its replacement now. */
            w->retiring = w->self_exit = true;
            pp->replace_owed++;
            *need_poke = true;
        }
        return DISPATCH_OK;
    }
}

/* Under mu: publishes what dispatch wrote and wakes workers that sleep. */
static void flush_dirty(weft_procpool_t *pp)
{
    for (int i = 0; i < pp->nw; i++) {
        worker_t *w = pp->w[i];
        if (!w->dirty) continue;
        w->dirty = false;
        if (weft__shmring_publish(&w->tq)) weft__shmring_wake_consumer(&w->tq);
    }
}

/* Supervisor, under mu: moves queued tasks into rings while there is room. */
static void dispatch_queue(weft_procpool_t *pp)
{
    bool poke_unused = false;
    while (pp->qhead && pp->ncompls < COMPLS_CAP - 16) {
        pending_t *t = pp->qhead;
        int rc = dispatch(pp, t->id, t->fn_hash, t->timeout_ns, t->data, t->len, t->f, t->started,
                          &poke_unused);
        if (rc == DISPATCH_NONE) break;
        pp->qhead = t->next;
        if (!pp->qhead) pp->qtail = NULL;
        pp->nqueued--;
        if (rc == DISPATCH_CANCELLED) {
            weft_future_release(t->f);
        } else if (rc < 0) {
            pp->completed++;
            pp->failed++;
            add_compl(pp, t->f, rc, NULL, 0,
                      fmt_text("cannot pass the argument: %s", strerror(-rc)));
        }
        weft__free(t);
    }
    flush_dirty(pp);
    if (pp->space_waiters && (pp->nqueued < pp->capacity || pp->closed))
        pthread_cond_broadcast(&pp->space_cv);
}

static void update_depth(weft_procpool_t *pp, uint64_t run_ns)
{
    if (run_ns > 10000000000u) run_ns = 10000000000u;
    int64_t diff = (int64_t)run_ns - (int64_t)pp->ewma_ns;
    pp->ewma_ns = (uint64_t)((int64_t)pp->ewma_ns + diff / 8);
    uint64_t d = DEPTH_NS / (pp->ewma_ns ? pp->ewma_ns : 1);
    pp->depth = d < 1 ? 1 : d > MAX_DEPTH ? MAX_DEPTH : (unsigned)d;
}

/* ---- supervisor: results, deaths, deadlines ---------------------------------------------- */

typedef struct got {
    uint64_t id, run_ns;
    int status;
    void *value;
    size_t size;
    char *msg;
} got_t;

/* Reads up to BATCH results of `w` (copying them out without the lock), then matches them with
 * the in-flight records under mu. Returns true if it consumed anything. */
static bool drain(weft_procpool_t *pp, worker_t *w)
{
    got_t got[BATCH];
    int n = 0;
    bool proto = false;
    while (n < BATCH) {
        void *p;
        size_t len;
        int rc = weft__shmring_peek(&w->rq, &p, &len);
        if (rc == 0) break;
        weft__pp_result_msg_t m;
        if (rc < 0 || len < sizeof m) {
            proto = true;
            break;
        }
        memcpy(&m, p, sizeof m);
        const unsigned char *bytes = (const unsigned char *)p + sizeof m;
        got_t *g = &got[n];
        *g = (got_t){m.id, m.run_ns, m.status, NULL, 0, NULL};
        if (m.kind == WEFT__PP_RESULT) {
            if (m.len > len - sizeof m) {
                proto = true;
                break;
            }
        } else if (m.kind == WEFT__PP_RESULT_BIG) {
            bytes = NULL;
        } else {
            proto = true;
            break;
        }
        size_t blen = (size_t)m.len;
        if (g->status >= 0 && m.len > pp->max_message) {
            /* The worker checks this itself (run_task); a second check keeps the parent's
             * memory bounded whatever the worker does. */
            g->status = -EMSGSIZE;
            g->msg = fmt_text("result of %llu bytes exceeds max_message %zu",
                              (unsigned long long)m.len, pp->max_message);
        } else if (g->status >= 0 && blen) {
            g->value = weft__malloc(blen + 1);
            int rc2 = !g->value ? -ENOMEM
                      : bytes   ? (memcpy(g->value, bytes, blen), 0)
                                : weft__pp_pread_all(w->ovf_out, g->value, blen);
            if (rc2 < 0) {
                weft__free(g->value);
                g->value = NULL;
                g->status = rc2;
                g->msg = fmt_text("cannot receive a %zu-byte result: %s", blen, strerror(-rc2));
            } else {
                ((char *)g->value)[blen] = '\0';
                g->size = blen;
            }
        } else if (g->status < 0 && blen) {
            if (bytes) {
                g->msg = dup_text((const char *)bytes, blen);
            } else {
                char buf[MAX_MESSAGE_TEXT];
                size_t k = blen < sizeof buf ? blen : sizeof buf;
                g->msg = weft__pp_pread_all(w->ovf_out, buf, k) == 0 ? dup_text(buf, k) : NULL;
            }
        }
        if (!bytes && ftruncate(w->ovf_out, 0) < 0) { /* frees the pages; nothing to undo */
        }
        weft__shmring_next(&w->rq);
        n++;
    }
    if (n == 0 && !proto) return false;

    pthread_mutex_lock(&pp->mu);
    for (int i = 0; i < n; i++) {
        got_t *g = &got[i];
        if (proto || w->fl_count == 0 || fl_at(w, 0)->id != g->id) {
            proto = true;
            weft__free(g->value);
            weft__free(g->msg);
            continue;
        }
        inflight_t r = *fl_at(w, 0);
        w->fl_head = (w->fl_head + 1) % MAX_DEPTH;
        w->fl_count--;
        pp->running--;
        if (r.timeout_ns) w->ntimed--;
        if (r.done) { /* already failed with -ETIMEDOUT */
            weft__free(g->value);
            weft__free(g->msg);
            continue;
        }
        update_depth(pp, g->run_ns);
        pp->completed++;
        if (g->status < 0) pp->failed++;
        add_compl(pp, r.f, g->status, g->value, g->size, g->msg);
    }
    if (proto) kill_worker(w, KILL_PROTO);
    dispatch_queue(pp);
    pthread_mutex_unlock(&pp->mu);
    if (weft__shmring_release(&w->rq)) weft__shmring_wake_producer(&w->rq);
    return true;
}

/* Fills the header of a queued record field by field: assigning a whole pending_t would also
 * write its trailing padding, which overlaps data[]. */
static void pending_init(pending_t *t, weft_future_t *f, uint64_t id, uint64_t fn_hash,
                         uint64_t timeout_ns, size_t len, bool started)
{
    t->next = NULL;
    t->f = f;
    t->id = id;
    t->fn_hash = fn_hash;
    t->timeout_ns = timeout_ns;
    t->len = len;
    t->started = started;
}

/* Under mu: a copy of an in-flight task of a dead worker, read back from its ring. */
static pending_t *requeue_copy(worker_t *w, const inflight_t *r)
{
    size_t plen;
    unsigned char *p = weft__shmring_record_at(&w->tq, r->pos, &plen);
    weft__pp_task_msg_t m;
    if (!p || plen < sizeof m) return NULL;
    memcpy(&m, p, sizeof m);
    if (m.id != r->id || (!r->big && plen - sizeof m < r->len)) return NULL;
    pending_t *t = weft__malloc(sizeof *t + r->len);
    if (!t) return NULL;
    pending_init(t, r->f, r->id, r->fn_hash, r->timeout_ns, r->len, true);
    if (r->big ? weft__pp_pread_all(w->ovf_in, t->data, r->len) < 0
               : (memcpy(t->data, p + sizeof m, r->len), 0)) {
        weft__free(t);
        return NULL;
    }
    return t;
}

/* Under mu: takes every queued task out of the queue (to fail or cancel them after the lock
 * is dropped, with fail_list). */
static pending_t *detach_queue(weft_procpool_t *pp)
{
    pending_t *list = pp->qhead;
    pp->qhead = pp->qtail = NULL;
    pp->nqueued = 0;
    if (pp->space_waiters) pthread_cond_broadcast(&pp->space_cv);
    return list;
}

/* No lock held: completes detached tasks with `status` (-ECANCELED: cancels them) and frees
 * them. Returns how many it completed. */
static size_t fail_list(pending_t *list, int status, const char *msg)
{
    size_t n = 0;
    while (list) {
        pending_t *t = list;
        list = t->next;
        if (status == -ECANCELED && !t->started) {
            n += weft_future_cancel(t->f) == 0; /* -EALREADY: its owner cancelled it first */
            weft_future_release(t->f);
        } else if (t->started || weft_future_start(t->f) == 0) {
            compl_t c = {t->f, status, NULL, 0, msg ? dup_text(msg, strlen(msg)) : NULL};
            settle(&c);
            n++;
        } else {
            weft_future_release(t->f);
        }
        weft__free(t);
    }
    return n;
}

static void remove_worker(weft_procpool_t *pp, worker_t *w)
{
    for (int i = 0; i < pp->nw; i++)
        if (pp->w[i] == w) {
            pp->w[i] = pp->w[--pp->nw];
            break;
        }
    if (pp->cursor >= pp->nw) pp->cursor = 0;
}

/* Supervisor: the pidfd of `w` became readable. Reaps it, completes or re-queues its tasks,
 * frees it. */
static void handle_exit(weft_procpool_t *pp, worker_t *w)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc = waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG | WNOWAIT);
    if (rc == 0 && si.si_pid == 0) return; /* not yet */
    pthread_mutex_lock(&pp->mu);
    w->reaped = true; /* kill_worker no longer signals its group: the pid is about to be freed */
    pthread_mutex_unlock(&pp->mu);
    /* The worker is a zombie we have not reaped, so its pid is still its process group's id:
     * kill what its functions forked and left behind, however it ended (crash, timeout, quit). */
    if (rc == 0) kill(-w->pid, SIGKILL);
    memset(&si, 0, sizeof si);
    rc = waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG);
    char why[160];
    describe_exit(why, sizeof why, w->pid, rc, &si);
    bool clean = rc == 0 && si.si_code == CLD_EXITED && si.si_status == 0;
    while (drain(pp, w)) { /* results it published before it died */
        if (pp->ncompls > COMPLS_CAP / 2) flush_compls(pp);
    }
    if (pp->ncompls > COMPLS_CAP / 2) flush_compls(pp);

    pthread_mutex_lock(&pp->mu);
    /* Acquire: pairs with the worker's seq_cst store of running_id. */
    uint64_t running = atomic_load_explicit(&w->ctrl->running_id, memory_order_acquire);
    pending_t *head = NULL, **tailp = &head;
    size_t requeued = 0;
    while (w->fl_count) {
        inflight_t r = *fl_at(w, 0);
        w->fl_head = (w->fl_head + 1) % MAX_DEPTH;
        w->fl_count--;
        pp->running--;
        if (r.done) continue;
        bool guilty = r.id == running && w->kill_reason != KILL_TIMEOUT &&
                      w->kill_reason != KILL_CANCEL && w->kill_reason != KILL_TEARDOWN;
        pending_t *t = guilty ? NULL : requeue_copy(w, &r);
        if (t) {
            *tailp = t;
            tailp = &t->next;
            requeued++;
            continue;
        }
        pp->completed++;
        pp->failed++;
        char *msg = guilty && w->kill_reason == KILL_PROTO
                        ? fmt_text("worker %d sent a malformed message", (int)w->pid)
                    : guilty ? dup_text(why, sizeof why)
                             : fmt_text("task lost when %s", why);
        add_compl(pp, r.f, WEFT_ECRASHED, NULL, 0, msg);
    }
    if (head) {
        pending_t *last = head;
        while (last->next) last = last->next;
        last->next = pp->qhead;
        pp->qhead = head;
        if (!pp->qtail) pp->qtail = last;
        pp->nqueued += requeued;
    }
    bool expected = clean && (w->quit_sent || w->self_exit);
    bool ours = w->kill_reason == KILL_TIMEOUT || w->kill_reason == KILL_CANCEL ||
                w->kill_reason == KILL_QUIT_LATE || w->kill_reason == KILL_TEARDOWN;
    if (!expected && !ours) pp->crashed++;
    if (!w->retiring && !w->quit_sent) pp->replace_owed++;
    if (!w->ready && !pp->teardown) {
        pp->startup_failures++;
        snprintf(pp->broken_msg, sizeof pp->broken_msg, "worker processes fail at startup (%s)",
                 why);
        if (!pp->create_done) {
            pp->create_err = WEFT_ECRASHED;
            pp->create_done = true;
            pthread_cond_broadcast(&pp->state_cv);
        } else if (pp->startup_failures >= STARTUP_FAILURES_MAX) {
            pp->broken = true;
        }
    }
    remove_worker(pp, w);
    pending_t *doomed = NULL;
    char msg[sizeof pp->broken_msg];
    if (pp->broken) {
        doomed = detach_queue(pp);
        memcpy(msg, pp->broken_msg, sizeof msg);
    } else {
        dispatch_queue(pp);
    }
    pthread_mutex_unlock(&pp->mu);
    epoll_ctl(pp->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
    free_worker(w);
    if (doomed) {
        flush_compls(pp);
        size_t n = fail_list(doomed, WEFT_ECRASHED, msg);
        pthread_mutex_lock(&pp->mu);
        pp->completed += n;
        pp->failed += n;
        pthread_mutex_unlock(&pp->mu);
    }
}

/* Supervisor, under mu: fails and kills the workers whose running task is past its deadline.
 * Returns the nearest deadline still ahead (UINT64_MAX: none). */
static uint64_t check_deadlines(weft_procpool_t *pp, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < pp->nw; i++) {
        worker_t *w = pp->w[i];
        if (!w->ntimed || w->dying || !w->fl_count) continue;
        inflight_t *r = fl_at(w, 0);
        if (!r->timeout_ns || r->done) continue;
        /* seq_cst: second half of the Dekker pair with the worker's store of running_id (the
         * caller announced its sleep before). id, start, id: a seqlock read (start_ns is
         * stored with release before running_id changes). */
        uint64_t id1 = atomic_load_explicit(&w->ctrl->running_id, memory_order_seq_cst);
        if (id1 != r->id) continue;
        uint64_t start = atomic_load_explicit(&w->ctrl->start_ns, memory_order_acquire);
        uint64_t id2 = atomic_load_explicit(&w->ctrl->running_id, memory_order_relaxed);
        if (id2 != id1) continue;
        uint64_t dl = start + r->timeout_ns < start ? UINT64_MAX : start + r->timeout_ns;
        if (now < dl) {
            if (dl < next) next = dl;
            continue;
        }
        kill_worker(w, KILL_TIMEOUT);
        r->done = true;
        pp->completed++;
        pp->failed++;
        pp->timed_out++;
        add_compl(pp, r->f, -ETIMEDOUT, NULL, 0,
                  fmt_text("worker %d killed: task timed out after %.3f s", (int)w->pid,
                           (double)r->timeout_ns / 1e9));
    }
    return next;
}

/* ---- supervisor: keeping the right number of workers ------------------------------------- */

static int active_workers(const weft_procpool_t *pp)
{
    int n = 0;
    for (int i = 0; i < pp->nw; i++) {
        const worker_t *w = pp->w[i];
        n += !w->retiring && !w->dying && !w->quit_sent;
    }
    return n;
}

/* Supervisor: readiness, create status, retirements, spawns. Returns the time it next needs
 * to run (UINT64_MAX: only when woken). */
static uint64_t maintain(weft_procpool_t *pp)
{
    uint64_t now = weft_now_ns(), next = UINT64_MAX;
    pthread_mutex_lock(&pp->mu);
    bool newly_ready = false;
    for (int i = 0; i < pp->nw; i++) {
        worker_t *w = pp->w[i];
        /* Acquire: pairs with the worker's release store of ready. */
        if (!w->ready && atomic_load_explicit(&w->ctrl->ready, memory_order_acquire)) {
            w->ready = newly_ready = true;
            pp->startup_failures = 0;
        }
    }
    if (newly_ready) dispatch_queue(pp);
    if (pp->teardown) {
        for (int i = 0; i < pp->nw; i++) kill_worker(pp->w[i], KILL_TEARDOWN);
        pthread_mutex_unlock(&pp->mu);
        return next;
    }
    if (!pp->create_done) {
        int ready = 0;
        for (int i = 0; i < pp->nw; i++) ready += pp->w[i]->ready;
        if (ready >= pp->target) {
            pp->create_done = true;
            pthread_cond_broadcast(&pp->state_cv);
        } else if (now - pp->create_start_ns > CREATE_TIMEOUT_NS) {
            pp->create_err = -ETIMEDOUT;
            pp->create_done = true;
            pthread_cond_broadcast(&pp->state_cv);
        } else {
            next = pp->create_start_ns + CREATE_TIMEOUT_NS;
        }
    }
    bool idle = pp->nqueued == 0 && pp->running == 0;
    int want = pp->broken || (pp->closed && idle) ? 0 : pp->target;
    int active = active_workers(pp);
    /* Retire extras, idle or still starting ones first. */
    for (int pass = 0; pass < 2 && active > want; pass++)
        for (int i = 0; i < pp->nw && active > want; i++) {
            worker_t *w = pp->w[i];
            if (w->retiring || w->dying || w->quit_sent) continue;
            if (pass == 0 && w->ready && w->fl_count) continue;
            w->retiring = true;
            active--;
        }
    for (int i = 0; i < pp->nw; i++) {
        worker_t *w = pp->w[i];
        if (w->retiring && !w->self_exit && !w->quit_sent && !w->dying && w->fl_count == 0) {
            weft__pp_task_msg_t m = {WEFT__PP_QUIT, 0, 0, 0, 0, 0, 0};
            void *p = weft__shmring_reserve(&w->tq, sizeof m);
            if (p) {
                memcpy(p, &m, sizeof m);
                w->quit_sent = true;
                w->quit_ns = now;
                w->dirty = true;
            }
        }
        if (w->quit_sent && !w->dying) {
            if (now - w->quit_ns > QUIT_GRACE_NS)
                kill_worker(w, KILL_QUIT_LATE);
            else if (w->quit_ns + QUIT_GRACE_NS < next)
                next = w->quit_ns + QUIT_GRACE_NS + 1;
        }
    }
    flush_dirty(pp);
    int to_spawn = want - active;
    if (pp->nw + to_spawn > 2 * MAX_WORKERS) to_spawn = 2 * MAX_WORKERS - pp->nw;
    if (to_spawn > 0 && now < pp->spawn_retry_ns) {
        if (pp->spawn_retry_ns < next) next = pp->spawn_retry_ns;
        to_spawn = 0;
    }
    pthread_mutex_unlock(&pp->mu);

    for (int i = 0; i < to_spawn; i++) {
        worker_t *w;
        int rc = spawn_worker(pp, &w);
        pthread_mutex_lock(&pp->mu);
        if (rc < 0) {
            snprintf(pp->broken_msg, sizeof pp->broken_msg, "cannot start a worker: %s",
                     strerror(-rc));
            if (!pp->create_done) {
                pp->create_err = rc;
                pp->create_done = true;
                pthread_cond_broadcast(&pp->state_cv);
            }
            pp->spawn_retry_ns = weft_now_ns() + SPAWN_RETRY_NS;
            if (pp->spawn_retry_ns < next) next = pp->spawn_retry_ns;
            pthread_mutex_unlock(&pp->mu);
            break;
        }
        w->serial = ++pp->next_serial;
        w->ctrl->index = w->serial;
        pp->w[pp->nw++] = w;
        if (pp->replace_owed > 0) {
            pp->replace_owed--;
            pp->respawned++;
        }
        pthread_mutex_unlock(&pp->mu);
    }
    return next;
}

/* ---- the supervisor thread ----------------------------------------------------------------- */

static int sup_wait(weft_procpool_t *pp, struct epoll_event *evs, int n, uint64_t until)
{
    uint64_t now = weft_now_ns();
    if (until == UINT64_MAX) return epoll_wait(pp->epfd, evs, n, -1);
    uint64_t d = until > now ? until - now : 0;
    if (pp->have_pwait2) {
        struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
        int rc = epoll_pwait2(pp->epfd, evs, n, &ts, NULL);
        if (rc >= 0 || errno != ENOSYS) return rc;
        pp->have_pwait2 = false;
    }
    return epoll_wait(pp->epfd, evs, n, (int)((d + 999999) / 1000000));
}

static bool rings_empty(weft_procpool_t *pp)
{
    for (int i = 0; i < pp->nw; i++)
        if (!weft__shmring_empty(&pp->w[i]->rq)) return false;
    return true;
}

static void *supervise(void *arg)
{
    weft_procpool_t *pp = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    struct epoll_event evs[64];
    uint64_t last_poll = 0;
    for (;;) {
        uint64_t next = maintain(pp);
        bool busy = false;
        for (int i = 0; i < pp->nw; i++) {
            if (pp->ncompls > COMPLS_CAP / 2) flush_compls(pp);
            busy |= drain(pp, pp->w[i]);
        }
        if (pp->ncompls > COMPLS_CAP / 2) flush_compls(pp);
        uint64_t now = weft_now_ns();
        pthread_mutex_lock(&pp->mu);
        uint64_t dl = check_deadlines(pp, now);
        bool done = pp->destroying && pp->nw == 0 && pp->nqueued == 0 && pp->running == 0;
        pthread_mutex_unlock(&pp->mu);
        flush_compls(pp);
        if (done) break;
        if (dl < next) next = dl;

        bool sleeping = false;
        int n;
        if (busy) {
            if (now - last_poll < POLL_NS) continue;
            n = epoll_wait(pp->epfd, evs, 64, 0);
        } else {
            /* Poll a little before sleeping: a result often follows within microseconds. */
            uint64_t t0 = now;
            bool got = false;
            while (!got && weft_now_ns() - t0 < SUP_SPIN_NS) {
                got = !rings_empty(pp);
                weft__cpu_relax();
            }
            if (got) continue;
            /* Announce the sleep, then look again (Dekker with the workers' publish and
             * running_id stores; see shmring.h). */
            uint32_t seq;
            bool empty = true;
            for (int i = 0; i < pp->nw; i++)
                empty &= weft__shmring_consumer_prepare(&pp->w[i]->rq, &seq);
            pthread_mutex_lock(&pp->mu);
            uint64_t dl2 = empty ? check_deadlines(pp, weft_now_ns()) : 0;
            pthread_mutex_unlock(&pp->mu);
            if (!empty || pp->ncompls) {
                for (int i = 0; i < pp->nw; i++) weft__shmring_consumer_unprepare(&pp->w[i]->rq);
                flush_compls(pp);
                continue;
            }
            if (dl2 < next) next = dl2;
            sleeping = true;
            n = sup_wait(pp, evs, 64, next);
        }
        last_poll = weft_now_ns();
        if (sleeping)
            for (int i = 0; i < pp->nw; i++) weft__shmring_consumer_unprepare(&pp->w[i]->rq);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;
                while (read(pp->wake_fd, &v, sizeof v) < 0 && errno == EINTR) {
                }
            } else {
                handle_exit(pp, evs[i].data.ptr);
                flush_compls(pp);
            }
        }
    }
    return NULL;
}

/* ---- public API ---------------------------------------------------------------------------- */

static char **build_env(void)
{
    size_t n = 0;
    for (char **e = environ; e && *e; e++) n++;
    char **env = weft__calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    size_t plen = strlen(WEFT__PP_ENV);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], WEFT__PP_ENV, plen) == 0 && environ[i][plen] == '=') continue;
        if (!(env[k++] = weft__strdup(environ[i]))) goto oom;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%s=%u:%d", WEFT__PP_ENV, WEFT__PP_VERSION, (int)getpid());
    if (!(env[k++] = weft__strdup(buf))) goto oom;
    return env;
oom:
    for (size_t i = 0; i < k; i++) weft__free(env[i]);
    weft__free(env);
    return NULL;
}

static void free_pool(weft_procpool_t *pp)
{
    if (pp->envp)
        for (char **e = pp->envp; *e; e++) weft__free(*e);
    weft__free(pp->envp);
    weft__free(pp->argv0);
    weft__free(pp->w);
    weft__free(pp->compls);
    if (pp->epfd >= 0) close(pp->epfd);
    if (pp->wake_fd >= 0) close(pp->wake_fd);
    pthread_cond_destroy(&pp->space_cv);
    pthread_cond_destroy(&pp->state_cv);
    pthread_mutex_destroy(&pp->mu);
    weft__free(pp);
}

int weft_procpool_create(weft_procpool_t **out, const weft_procpool_opts_t *opts)
{
    if (!out) return -EINVAL;
    *out = NULL;
    weft_procpool_opts_t o = {0};
    if (opts) o = *opts;
    if (o.workers < 0 || o.workers > MAX_WORKERS || o.max_tasks_per_child < 0) return -EINVAL;
    if (o.workers == 0) o.workers = weft_cpu_count() < MAX_WORKERS ? weft_cpu_count() : MAX_WORKERS;
    if (o.queue_capacity == 0) o.queue_capacity = 65536;
    if (o.max_message == 0) o.max_message = 64u << 20;
    if (o.max_message > (SIZE_MAX >> 2)) return -EINVAL;

    weft_procpool_t *pp = weft__calloc(1, sizeof *pp);
    if (!pp) return -ENOMEM;
    pp->wake_fd = pp->epfd = -1;
    pthread_mutex_init(&pp->mu, NULL);
    pthread_cond_init(&pp->space_cv, NULL);
    pthread_cond_init(&pp->state_cv, NULL);
    pp->max_tasks = o.max_tasks_per_child;
    pp->capacity = o.queue_capacity;
    pp->max_message = o.max_message;
    pp->big_threshold = BIG_THRESHOLD;
    pp->target = o.workers;
    pp->next_id = 1;
    pp->depth = 1;
    pp->ewma_ns = DEPTH_NS / 2;
    pp->have_pwait2 = true;
    int rc = -ENOMEM;
    pp->w = weft__calloc(2 * MAX_WORKERS, sizeof *pp->w);
    pp->compls = weft__calloc(COMPLS_CAP, sizeof *pp->compls);
    pp->envp = build_env();
    pp->argv0 = weft__strdup("weft-procpool-worker");
    if (!pp->w || !pp->compls || !pp->envp || !pp->argv0) goto fail;
    if ((pp->wake_fd = move_high(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))) < 0) {
        rc = pp->wake_fd;
        goto fail;
    }
    if ((pp->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        rc = -errno;
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(pp->epfd, EPOLL_CTL_ADD, pp->wake_fd, &ev) < 0) {
        rc = -errno;
        goto fail;
    }
    pp->create_start_ns = weft_now_ns();
    if ((rc = -pthread_create(&pp->sup, NULL, supervise, pp)) < 0) goto fail;

    pthread_mutex_lock(&pp->mu);
    while (!pp->create_done) pthread_cond_wait(&pp->state_cv, &pp->mu);
    rc = pp->create_err;
    if (rc < 0) pp->closed = pp->destroying = pp->teardown = true;
    pthread_mutex_unlock(&pp->mu);
    if (rc < 0) {
        poke(pp);
        pthread_join(pp->sup, NULL);
        free_pool(pp);
        return rc;
    }
    *out = pp;
    return 0;
fail:
    free_pool(pp);
    return rc;
}

int weft_procpool_submit(weft_procpool_t *pp, const char *fn_name, const void *arg, size_t len,
                         uint64_t timeout_ns, weft_future_t **out)
{
    if (!out) return -EINVAL;
    *out = NULL;
    if (!pp || !fn_name || (!arg && len)) return -EINVAL;
    uint64_t hash;
    if (!weft__pp_lookup(fn_name, &hash)) return WEFT_ENOFUNC;
    if (len > pp->max_message) return -EMSGSIZE;
    weft_future_t *f = weft_future_create();
    if (!f) return -ENOMEM;
    weft_future_retain(f); /* the pool's reference, dropped when it completes f */

    int rc = 0, fail = 0;
    char *fail_msg = NULL;
    bool need_poke = false;
    pending_t *rec = NULL;
    pthread_mutex_lock(&pp->mu);
    for (;;) {
        if (pp->closed) {
            rc = -ESHUTDOWN;
            break;
        }
        if (pp->broken) {
            weft_future_start(f);
            fail = WEFT_ECRASHED;
            fail_msg = dup_text(pp->broken_msg, sizeof pp->broken_msg);
            break;
        }
        if (!pp->qhead) {
            int d = dispatch(pp, pp->next_id, hash, timeout_ns, arg, len, f, false, &need_poke);
            if (d == DISPATCH_OK) {
                pp->next_id++;
                flush_dirty(pp);
                break;
            }
            if (d < 0) {
                weft_future_start(f);
                fail = d;
                fail_msg = fmt_text("cannot pass the argument: %s", strerror(-d));
                break;
            }
        }
        if (pp->nqueued >= pp->capacity) {
            pp->space_waiters++;
            pthread_cond_wait(&pp->space_cv, &pp->mu);
            pp->space_waiters--;
            continue;
        }
        if (!rec) {
            pthread_mutex_unlock(&pp->mu);
            rec = weft__malloc(sizeof *rec + len);
            if (rec && len) memcpy(rec->data, arg, len);
            pthread_mutex_lock(&pp->mu);
            if (!rec) {
                rc = -ENOMEM;
                break;
            }
            continue;
        }
        pending_init(rec, f, pp->next_id++, hash, timeout_ns, len, false);
        if (pp->qtail)
            pp->qtail->next = rec;
        else
            pp->qhead = rec;
        pp->qtail = rec;
        pp->nqueued++;
        rec = NULL;
        /* The supervisor refills rings as results come back; when no worker is ready (all are
         * starting or being replaced) it dispatches once one is. */
        break;
    }
    if (fail) {
        pp->completed++;
        pp->failed++;
    }
    pthread_mutex_unlock(&pp->mu);
    weft__free(rec);
    if (need_poke) poke(pp);
    if (rc < 0) {
        weft_future_release(f);
        weft_future_release(f);
        return rc;
    }
    if (fail) {
        compl_t c = {f, fail, NULL, 0, fail_msg};
        settle(&c); /* drops the pool's reference; the caller keeps its own */
    }
    *out = f;
    return 0;
}

/* Under mu: finds the in-flight task of `f` that no one has completed yet. */
static inflight_t *find_inflight(weft_procpool_t *pp, const weft_future_t *f, worker_t **wp)
{
    for (int i = 0; i < pp->nw; i++) {
        worker_t *w = pp->w[i];
        for (unsigned k = 0; k < w->fl_count; k++) {
            inflight_t *r = fl_at(w, k);
            if (r->f == f && !r->done) {
                *wp = w;
                return r;
            }
        }
    }
    return NULL;
}

/* Under mu: unlinks the queued record of a RUNNING future `f` (a task re-queued from a dead
 * worker), or returns NULL. */
static pending_t *unlink_started(weft_procpool_t *pp, const weft_future_t *f)
{
    for (pending_t **pt = &pp->qhead, *prev = NULL; *pt; prev = *pt, pt = &(*pt)->next) {
        pending_t *t = *pt;
        if (t->f != f || !t->started) continue;
        *pt = t->next;
        if (pp->qtail == t) pp->qtail = prev;
        pp->nqueued--;
        if (pp->space_waiters) pthread_cond_broadcast(&pp->space_cv);
        return t;
    }
    return NULL;
}

int weft_procpool_cancel(weft_procpool_t *pp, weft_future_t *f, bool force)
{
    if (!pp || !f) return -EINVAL;
    /* A task in the queue is PENDING: this completes it, and dispatch drops it. */
    int rc = weft_future_cancel(f);
    if (rc != -EBUSY) return rc;
    char *msg = NULL;
    pthread_mutex_lock(&pp->mu);
    worker_t *w = NULL;
    inflight_t *r = find_inflight(pp, f, &w);
    pending_t *t = r ? NULL : unlink_started(pp, f);
    rc = r || t ? 0 : -EALREADY; /* finished, or finishing (its result is being delivered) */
    if (r && !w->dying) {
        /* Decide with the worker: exactly one of its exchange and our CAS wins (claim in
         * procpool-int.h). seq_cst: pairs with the worker's exchange. */
        _Atomic uint64_t *word = &w->ctrl->claim[r - w->fl]; /* its slot (see dispatch) */
        uint64_t v = atomic_load_explicit(word, memory_order_seq_cst);
        while (v != r->id &&
               !atomic_compare_exchange_weak_explicit(word, &v, r->id | WEFT__PP_CANCELLED,
                                                      memory_order_seq_cst, memory_order_seq_cst)) {
        }
        if (v != r->id) {
            msg = fmt_text("task cancelled before it started");
        } else if (!force) {
            rc = -EBUSY;
        } else {
            msg = fmt_text("worker %d killed: task cancelled", (int)w->pid);
            kill_worker(w, KILL_CANCEL);
        }
    } else if (r) {
        msg = fmt_text("task cancelled"); /* its worker is dying: the task will not run again */
    } else if (t) {
        msg = fmt_text("task cancelled before it started");
    }
    if (rc == 0) {
        if (r) {
            r->done = true; /* its result, if one comes, is dropped */
        }
        pp->completed++;
        pp->failed++;
    }
    pthread_mutex_unlock(&pp->mu);
    if (rc == 0) {
        compl_t c = {f, -ECANCELED, NULL, 0, msg};
        settle(&c); /* drops the pool's reference */
    } else {
        weft__free(msg);
    }
    weft__free(t);
    return rc;
}

int weft_procpool_resize(weft_procpool_t *pp, int workers)
{
    if (!pp || workers < 1 || workers > MAX_WORKERS) return -EINVAL;
    pthread_mutex_lock(&pp->mu);
    int rc = pp->closed ? -ESHUTDOWN : 0;
    if (rc == 0) pp->target = workers;
    pthread_mutex_unlock(&pp->mu);
    if (rc == 0) poke(pp);
    return rc;
}

void weft_procpool_stats(weft_procpool_t *pp, weft_procpool_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!pp) return;
    pthread_mutex_lock(&pp->mu);
    out->workers = active_workers(pp);
    out->queued = pp->nqueued;
    out->running = pp->running;
    out->completed = pp->completed;
    out->failed = pp->failed;
    out->crashed = pp->crashed;
    out->timed_out = pp->timed_out;
    out->respawned = pp->respawned;
    pthread_mutex_unlock(&pp->mu);
}

int weft_procpool_shutdown(weft_procpool_t *pp, weft_shutdown_t mode)
{
    if (!pp) return -EINVAL;
    pthread_mutex_lock(&pp->mu);
    if (pp->closed) {
        pthread_mutex_unlock(&pp->mu);
        return -EALREADY;
    }
    pp->closed = true;
    pending_t *cancel = mode == WEFT_SHUTDOWN_CANCEL ? detach_queue(pp) : NULL;
    pthread_cond_broadcast(&pp->space_cv);
    pthread_mutex_unlock(&pp->mu);
    if (cancel) {
        size_t n = fail_list(cancel, -ECANCELED, NULL);
        pthread_mutex_lock(&pp->mu);
        pp->completed += n;
        pp->failed += n;
        pthread_mutex_unlock(&pp->mu);
    }
    poke(pp);
    return 0;
}

void weft_procpool_destroy(weft_procpool_t *pp)
{
    if (!pp) return;
    if (pthread_equal(pthread_self(), pp->sup)) {
        /* From a completion callback: the supervisor would wait for itself. */
        fprintf(stderr, "weft: weft_procpool_destroy called from the pool's own thread (a "
                        "completion callback); destroy it from another thread\n");
        abort();
    }
    weft_procpool_shutdown(pp, WEFT_SHUTDOWN_WAIT);
    pthread_mutex_lock(&pp->mu);
    pp->destroying = true;
    pthread_mutex_unlock(&pp->mu);
    poke(pp);
    pthread_join(pp->sup, NULL);
    free_pool(pp);
}
