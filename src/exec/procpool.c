/* The process pool (weft/procpool.h): worker processes that run registered functions on argument
 * bytes, with crash isolation and hard timeouts.
 *
 * DESIGN
 * Processes and threads
 *   - API threads (any number) call submit/cancel/resize/stats/shutdown/destroy.
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
 *   Both sides poll briefly before they sleep, adaptively (core/cpu.h weft__spin_t): polls that
 *   run out (the other side did not get a CPU in time) stop, polls that find work grow back.
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
 *     exit status) unless the pool killed it (timeout, forced cancel, teardown); every other
 *     in-flight task is re-queued at the front of the queue with its argument read back from
 *     the dead ring. A record completed early (timed out, cancelled) is marked `done`.
 *   - Each worker leads its own process group; the group is SIGKILLed with the worker and again
 *     when its exit is seen (before it is reaped), so what a function forked dies with it.
 *   - Deadlines count from the moment the worker starts the task (start_ns). The supervisor
 *     fails the future with -ETIMEDOUT and SIGKILLs the worker (pidfd) and its group as soon as
 *     the deadline passes; it sleeps no longer than the nearest deadline (epoll_pwait2, ns).
 *   - The worker table (pp->w, pp->nw) and every worker's result ring are changed only by the
 *     supervisor, so it may read them without mu; everything else about a worker is under mu.
 *
 * Files: procpool.c (this one: create, resize, stats, shutdown, destroy, shared helpers),
 *   procpool-spawn.c (starting workers: exec of /proc/self/exe, descriptors, pidfds, process
 *   groups, killing), procpool-dispatch.c (submit, cancel, rings, results),
 *   procpool-supervisor.c (the supervisor thread: deaths, deadlines, replacements),
 *   procpool-worker.c (the worker side and the registry), procpool-int.h (what they share).
 *
 * Lock order: pp->mu, then a future's internal stripe lock (weft_future_start/release only).
 *   Futures are completed (callbacks run) only with no lock held.
 */
#include "exec/procpool-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/sys.h>

#define BIG_THRESHOLD (64u << 10) /* larger payloads go through the overflow memfds */

void weft__pp_poke(weft_procpool_t *pp)
{
    uint64_t one = 1;
    ssize_t n;
    do n = write(pp->wake_fd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
}

char *weft__pp_dup_text(const char *s, size_t n)
{
    if (n > WEFT__PP_MAX_TEXT) n = WEFT__PP_MAX_TEXT;
    const char *nul = memchr(s, '\0', n);
    if (nul) n = (size_t)(nul - s);
    char *d = weft__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *weft__pp_fmt_text(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return weft__pp_dup_text(buf, strlen(buf));
}

/* Completes a future with no lock held and drops the pool's reference. */
void weft__pp_settle(const weft__pp_compl_t *c)
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
void weft__pp_add_compl(weft_procpool_t *pp, weft_future_t *f, int status, void *value, size_t size,
                        char *msg)
{
    weft__pp_compl_t c = {f, status, value, size, msg};
    if (pp->ncompls == WEFT__PP_COMPLS_CAP) abort(); /* cannot happen: see flush_compls */
    pp->compls[pp->ncompls++] = c;
}

void weft__pp_flush_compls(weft_procpool_t *pp)
{
    for (size_t i = 0; i < pp->ncompls; i++) weft__pp_settle(&pp->compls[i]);
    pp->ncompls = 0;
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
    if (o.workers < 0 || o.workers > WEFT__PP_MAX_WORKERS || o.max_tasks_per_child < 0)
        return -EINVAL;
    if (o.workers == 0)
        o.workers =
            weft_cpu_count() < WEFT__PP_MAX_WORKERS ? weft_cpu_count() : WEFT__PP_MAX_WORKERS;
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
    pp->ewma_ns = WEFT__PP_DEPTH_NS / 2;
    pp->have_pwait2 = true;
    int rc = -ENOMEM;
    pp->w = weft__calloc(2 * WEFT__PP_MAX_WORKERS, sizeof *pp->w);
    pp->compls = weft__calloc(WEFT__PP_COMPLS_CAP, sizeof *pp->compls);
    pp->envp = weft__pp_build_env();
    pp->argv0 = weft__strdup("weft-procpool-worker");
    if (!pp->w || !pp->compls || !pp->envp || !pp->argv0) goto fail;
    if ((pp->wake_fd = weft__pp_move_high(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))) < 0) {
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
    if ((rc = -pthread_create(&pp->sup, NULL, weft__pp_supervise, pp)) < 0) goto fail;

    pthread_mutex_lock(&pp->mu);
    while (!pp->create_done) pthread_cond_wait(&pp->state_cv, &pp->mu);
    rc = pp->create_err;
    if (rc < 0) pp->closed = pp->destroying = pp->teardown = true;
    pthread_mutex_unlock(&pp->mu);
    if (rc < 0) {
        weft__pp_poke(pp);
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

int weft_procpool_resize(weft_procpool_t *pp, int workers)
{
    if (!pp || workers < 1 || workers > WEFT__PP_MAX_WORKERS) return -EINVAL;
    pthread_mutex_lock(&pp->mu);
    int rc = pp->closed ? -ESHUTDOWN : 0;
    if (rc == 0) pp->target = workers;
    pthread_mutex_unlock(&pp->mu);
    if (rc == 0) weft__pp_poke(pp);
    return rc;
}

void weft_procpool_stats(weft_procpool_t *pp, weft_procpool_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!pp) return;
    pthread_mutex_lock(&pp->mu);
    out->workers = weft__pp_active_workers(pp);
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
    weft__pp_pending_t *cancel = mode == WEFT_SHUTDOWN_CANCEL ? weft__pp_detach_queue(pp) : NULL;
    pthread_cond_broadcast(&pp->space_cv);
    pthread_mutex_unlock(&pp->mu);
    if (cancel) {
        size_t n = weft__pp_fail_list(cancel, -ECANCELED, NULL);
        pthread_mutex_lock(&pp->mu);
        pp->completed += n;
        pp->failed += n;
        pthread_mutex_unlock(&pp->mu);
    }
    weft__pp_poke(pp);
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
    weft__pp_poke(pp);
    pthread_join(pp->sup, NULL);
    free_pool(pp);
}
