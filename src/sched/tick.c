/* The scheduler's periodic tick: adaptive sizing of the thread and process pools, cancel
 * requests passed on to running tasks, throughput windows.
 *
 * DESIGN
 * Threads: the scheduler thread (weft__timer_main) calls weft__tick under weft_sched.mu; the
 * resizes it decides are carried out after the unlock (struct todo). The policies themselves
 * are pure functions in policy.c.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

/* Cancel requests made on user futures of running tasks reach their executors: threads get the
 * cancel token, processes are killed (weft_procpool_cancel with force), the loop's I/O gets its
 * cancel hook. A shutdown (CANCEL) only requests it from running processes (weft run's commands
 * then stop with SIGTERM first). */
void weft__propagate_cancels(weft_sched_t *s, struct todo *t)
{
    for (struct att *a = s->running; a; a = a->next) {
        uint32_t fl = atomic_load_explicit(&a->flags, memory_order_relaxed);
        if (fl & (A_ABANDONED | A_CANCEL_SENT | A_DELIVERED)) continue;
        if (!s->cancel_all && !(a->ufut && weft_future_cancel_requested(a->ufut))) continue;
        if (a->route == WEFT_ROUTE_THREADS) {
            if (!atomic_load(&a->started)) continue; /* next tick */
            weft__future_request_cancel(&a->cfut);
        } else if (a->route == WEFT_ROUTE_PROCS) {
            if (!a->xfut) continue;
            if (!(a->ufut && weft_future_cancel_requested(a->ufut))) {
                /* Shutdown (CANCEL) only: a request, as documented; the function may look. */
                weft__future_request_cancel(a->xfut);
            } else if (t->nproc_cancel < (int)(sizeof t->proc_cancel / sizeof *t->proc_cancel)) {
                /* The task's own future was cancelled: a process can be killed safely.
                 * weft_procpool_cancel(force) runs after the unlock (it completes the pool's
                 * future, whose callback takes mu). */
                t->proc_cancel[t->nproc_cancel++] = weft_future_retain(a->xfut);
            } else {
                continue; /* the list is full: next tick */
            }
        } else {
            atomic_fetch_add_explicit(&weft__attx(a)->lrefs, 1,
                                      memory_order_relaxed); /* a is live */
            weft__attx(a)->cnext = t->loop_cancel;
            t->loop_cancel = a;
        }
        atomic_fetch_or_explicit(&a->flags, A_CANCEL_SENT, memory_order_relaxed);
    }
}

/* IO tasks that can run on the loop go there once no thread is free: the threshold follows the
 * thread pool's current size (and the user's cap). */
void weft__loop_threshold(weft_sched_t *s)
{
    size_t w = (size_t)s->ex[WEFT_ROUTE_THREADS].workers;
    size_t cap = (size_t)s->opts.io_loop_threshold;
    s->rcfg.io_loop_threshold = w < cap ? w : cap;
}

void weft__tick(weft_sched_t *s, struct todo *t, uint64_t now)
{
    uint64_t dt = s->opts.tick_ns;
    for (int ri = 0; ri < WEFT_ROUTE_COUNT; ri++) {
        struct exec *e = &s->ex[ri];
        memmove(&e->tick_done[1], &e->tick_done[0], sizeof e->tick_done - sizeof e->tick_done[0]);
        memmove(&e->tick_t[1], &e->tick_t[0], sizeof e->tick_t - sizeof e->tick_t[0]);
        e->tick_done[0] = e->done + e->failed;
        e->tick_t[0] = now;
    }
    weft__propagate_cancels(s, t);
    int cpus = weft_cpu_count();
    char why[256];
    struct exec *te = &s->ex[WEFT_ROUTE_THREADS];
    /* Live view of the thread tasks in flight: each running thread's CPU clock since the last
     * tick against the time passed, so that the blocking ratio is known while long I/O tasks
     * still run, not only after they finish. */
    uint64_t live_cpu = 0, live_wall = 0;
    for (struct att *a = s->running; a; a = a->next) {
        if (a->route != WEFT_ROUTE_THREADS || !atomic_load(&a->started) ||
            (atomic_load_explicit(&a->flags, memory_order_relaxed) & A_ABANDONED) ||
            a->cpuclk == (clockid_t)-1)
            continue;
        struct timespec ts;
        if (clock_gettime(a->cpuclk, &ts) != 0) continue;
        uint64_t c = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        if (a->tick_t && c >= a->tick_cpu) {
            live_cpu += c - a->tick_cpu;
            live_wall += now - a->tick_t;
        }
        a->tick_cpu = c;
        a->tick_t = now;
    }
    te->w_cpu += live_cpu;
    te->w_wall += live_wall;
    te->w_busy += live_wall;
    if (te->present && te->adaptive && !s->manual[WEFT_ROUTE_THREADS]) {
        weft__tsize_in_t in = {
            .current = te->workers,
            .min = s->threads_min,
            .max = s->threads_max,
            .cpus = cpus,
            .queued = s->rq[WEFT_ROUTE_THREADS].n,
            .running = te->running - te->stuck,
            .stuck = te->stuck,
            .blocking = te->w_wall ? 1.0 - (double)te->w_cpu / (double)te->w_wall : -1.0,
            .busy = (double)te->w_busy / (double)dt,
            .wait_ns = te->w_waits ? te->w_wait / te->w_waits : 0,
            .low_ticks = te->low_ticks,
        };
        if (in.blocking < 0 && te->w_wall) in.blocking = 0;
        int n = weft__size_threads(&in, &te->low_ticks, why, sizeof why);
        if (n != te->workers) {
            weft__sched_event(s, "threads %d -> %d: %s", te->workers, n, why);
            te->workers = n;
            t->resize[WEFT_ROUTE_THREADS] = n;
            weft__loop_threshold(s);
        }
    }
    struct exec *pe = &s->ex[WEFT_ROUTE_PROCS];
    if (pe->present && pe->adaptive && !s->manual[WEFT_ROUTE_PROCS]) {
        weft__psize_in_t in = {
            .current = pe->workers,
            .cpus = cpus,
            .queued = s->rq[WEFT_ROUTE_PROCS].n,
            .running = pe->running,
            .low_ticks = pe->low_ticks,
        };
        int n = weft__size_procs(&in, &pe->low_ticks, why, sizeof why);
        if (n != pe->workers) {
            weft__sched_event(s, "processes %d -> %d: %s", pe->workers, n, why);
            pe->workers = n;
            t->resize[WEFT_ROUTE_PROCS] = n;
        }
    }
    for (int ri = 0; ri < WEFT_ROUTE_COUNT; ri++) {
        struct exec *e = &s->ex[ri];
        e->w_cpu = e->w_wall = e->w_busy = e->w_wait = e->w_waits = e->w_meas = 0;
    }
    weft__timer_trim(s);
}
