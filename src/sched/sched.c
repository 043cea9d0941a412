/* The hybrid scheduler (weft/sched.h): its life cycle (create, shutdown, wait, destroy,
 * resize) and queries. The rest lives beside it, one job per file (sched-int.h lists them):
 * records.c (task records, edges, outcome ring), queue.c (ready queues), tasks.c (the task state
 * machine; its DESIGN is the scheduler's), timers.c (timeouts, backoffs, the scheduler thread),
 * tick.c (adaptive sizing), route-threads.c, route-procs.c, route-loop.c (one adapter per
 * executor), submit.c (submission), graph.c, policy.c (pure policies), stats.c.
 *
 * DESIGN
 * Threads: any caller; the executors and the scheduler thread are created here and joined by
 * weft_sched_destroy, which refuses (-EDEADLK) to run on one of them (weft__in_sched, tasks.c).
 * Destroy order: shutdown WAIT, wait for every future to settle, stop the scheduler thread,
 * destroy the loop (it calls what it still owes), the thread pool (joins timed-out threads,
 * which still report to s), the process pool, then wait for detached dependency callbacks.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <weft/loop.h>
#include <weft/sys.h>

static void sched_free(weft_sched_t *s)
{
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++) weft__pq_free(&s->rq[r]);
    weft__timer_free(s);
    if (s->chunks)
        for (size_t i = 0; i < s->nchunks; i++) {
            for (size_t k = 0; k < WEFT__CHUNK; k++) {
                struct rec *r = &s->chunks[i][k];
                if (r->state != R_FREE && (size_t)i * WEFT__CHUNK + k < s->nrecs) {
                    weft_future_release(r->fut);
                    weft__free(r->parg);
                    weft__extra_free(r->x);
                }
            }
            weft__free(s->chunks[i]);
        }
    weft__free(s->chunks);
    weft__free(s->edges);
    weft__strtab_free(&s->cls_names);
    weft__strtab_free(&s->pfn_names);
    weft__free(s->classes);
    weft__free(s->policies);
    weft__free(s->ring);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle_cv);
    pthread_cond_destroy(&s->timer_cv);
    weft__free(s);
}

int weft_sched_create(weft_sched_t **out, const weft_sched_opts_t *opts)
{
    if (!out) return -EINVAL;
    *out = NULL;
    weft_sched_opts_t o = {0};
    if (opts) o = *opts;
    int cpus = weft_cpu_count();
    if (o.threads_min < 0 || o.threads_max < 0 || o.procs > 256 || o.threads_max > 1024)
        return -EINVAL;
    if (o.threads_min == 0)
        o.threads_min = o.threads_max && o.threads_max < cpus ? o.threads_max : cpus;
    if (o.threads_max == 0) o.threads_max = o.threads_min > 64 ? o.threads_min : 64;
    if (o.threads_min > o.threads_max) return -EINVAL;
    if (o.loop_max == 0) o.loop_max = 1024;
    if (o.aging_ns == 0) o.aging_ns = 1000000000u;
    if (o.tick_ns == 0) o.tick_ns = 100000000u;
    if (o.remember == 0) o.remember = 65536;
    if (!o.name) o.name = "sched";
    if (o.io_loop_threshold <= 0) o.io_loop_threshold = o.threads_max;

    weft_sched_t *s = weft__calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->opts = o;
    s->t0 = weft_now_ns();
    s->rng = o.seed ? o.seed : (s->t0 ^ (uint64_t)(uintptr_t)s) | 1;
    s->free_head = s->free_edge = WEFT__NIL;
    s->next_seq = 1;
    s->threads_min = o.threads_min;
    s->threads_max = o.threads_max;
    /* Adaptive: critical sections are short, and a brief spin beats a futex sleep when the
     * submitter and the workers meet on it. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&s->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_cond_init(&s->idle_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->timer_cv, &ca);
    pthread_condattr_destroy(&ca);
    size_t ring = 1;
    while (ring < o.remember) ring *= 2;
    s->ring_mask = ring - 1;
    s->ring = weft__calloc(ring, sizeof *s->ring);
    s->chunks = weft__calloc(WEFT__MAX_CHUNKS, sizeof *s->chunks);
    s->classes = NULL;
    int rc = (!s->ring || !s->chunks) ? -ENOMEM : 0;

    weft__route_cfg_default(&s->rcfg);
    s->rcfg.fixed = o.fixed_routes;
    s->rcfg.io_loop_threshold = (size_t)o.io_loop_threshold; /* see loop_threshold */
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++) {
        weft_hist_init(&s->ex[r].wait);
        weft_hist_init(&s->ex[r].run);
    }
    if (rc == 0) {
        weft_pool_opts_t po = {.threads = o.threads_min, .queue_capacity = 4096, .name = o.name};
        rc = weft_pool_create(&s->tp, &po);
        s->ex[WEFT_ROUTE_THREADS].present = rc == 0;
        s->ex[WEFT_ROUTE_THREADS].workers = o.threads_min;
        s->ex[WEFT_ROUTE_THREADS].adaptive = o.threads_min < o.threads_max;
    }
    if (rc == 0 && o.procs >= 0) {
        int n = o.procs ? o.procs : cpus;
        weft_procpool_opts_t po = {.workers = n};
        rc = weft_procpool_create(&s->pp, &po);
        s->ex[WEFT_ROUTE_PROCS].present = rc == 0;
        s->ex[WEFT_ROUTE_PROCS].workers = n;
        s->ex[WEFT_ROUTE_PROCS].adaptive = o.procs == 0;
    }
    if (rc == 0 && o.loop_max > 0) {
        char lname[16];
        snprintf(lname, sizeof lname, "%.10s-loop", o.name);
        weft_loop_opts_t lo = {.own_thread = true, .name = lname};
        rc = weft_loop_create(&s->loop, &lo);
        s->ex[WEFT_ROUTE_LOOP].present = rc == 0;
    }
    s->ex[WEFT_ROUTE_LOOP].workers = o.loop_max > 0 ? o.loop_max : 0;
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++) s->rcfg.has[r] = s->ex[r].present;
    weft__loop_threshold(s);
    if (rc == 0) {
        s->next_tick = o.tick_ns;
        rc = -pthread_create(&s->timer, NULL, weft__timer_main, s);
        s->timer_started = rc == 0;
    }
    if (rc < 0) {
        if (s->loop) weft_loop_destroy(s->loop);
        if (s->tp) weft_pool_destroy(s->tp);
        if (s->pp) weft_procpool_destroy(s->pp);
        sched_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int weft_sched_shutdown(weft_sched_t *s, weft_shutdown_t mode)
{
    if (!s) return -EINVAL;
    struct todo t = TODO_INIT;
    pthread_mutex_lock(&s->mu);
    if (s->shutdown && (mode != WEFT_SHUTDOWN_CANCEL || s->cancel_all)) {
        pthread_mutex_unlock(&s->mu);
        return -EALREADY;
    }
    s->shutdown = true;
    if (mode == WEFT_SHUTDOWN_CANCEL) {
        s->cancel_all = true;
        for (int r = 0; r < WEFT_ROUTE_COUNT; r++)
            weft__pq_clear(&s->rq[r]); /* all retired below */
        for (size_t i = 0; i < s->nrecs; i++) {
            struct rec *r = weft__rec(s, (uint32_t)i);
            if (r->state == R_WAITING || r->state == R_QUEUED || r->state == R_BACKOFF)
                weft__retire(s, &t, (uint32_t)i, WEFT_TASK_CANCELLED, -ECANCELED,
                             weft__strdup("cancelled: the scheduler shut down"));
        }
        weft__drain_props(s, &t);
        weft__propagate_cancels(s, &t);
    }
    pthread_mutex_unlock(&s->mu);
    weft__run_todo(s, &t);
    return 0;
}

int weft_sched_wait_idle(weft_sched_t *s, int64_t timeout_ns)
{
    if (!s) return -EINVAL;
    if (weft__in_sched == s) return -EDEADLK; /* it would wait for the task calling it */
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : weft_now_ns() + (uint64_t)timeout_ns;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    atomic_fetch_add(&s->idle_waiters, 1); /* before the todo_running check below (seq_cst) */
    /* Acquire pairs with unsettle's acq_rel decrement. Idle also needs no thread inside
     * weft__run_todo: one may still be handing work to an executor that destroy would free. */
    while (atomic_load_explicit(&s->unsettled, memory_order_acquire) > 0 ||
           atomic_load(&s->todo_running) > 0) {
        if (deadline == UINT64_MAX) {
            pthread_cond_wait(&s->idle_cv, &s->mu);
            continue;
        }
        uint64_t now = weft_now_ns();
        if (now >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        /* idle_cv uses CLOCK_REALTIME: wait in slices so that clock jumps do not matter. */
        uint64_t slice = deadline - now < 50000000u ? deadline - now : 50000000u;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t abs = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + slice;
        ts.tv_sec = (time_t)(abs / 1000000000u);
        ts.tv_nsec = (long)(abs % 1000000000u);
        pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
    }
    atomic_fetch_sub(&s->idle_waiters, 1);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int weft_sched_destroy(weft_sched_t *s)
{
    if (!s) return -EINVAL;
    if (weft__in_sched == s) return -EDEADLK; /* from one of its tasks, callbacks or timers */
    weft_sched_shutdown(s, WEFT_SHUTDOWN_WAIT);
    weft_sched_wait_idle(s, -1);
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->timer_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->timer_started) pthread_join(s->timer, NULL);
    /* Calls what the loop still owes (abandoned operations) with -ECANCELED. */
    if (s->loop) weft_loop_destroy(s->loop);
    /* Joins threads still running timed-out tasks; they report to s, which is still alive. */
    if (s->tp) weft_pool_destroy(s->tp);
    if (s->pp) weft_procpool_destroy(s->pp);
    pthread_mutex_lock(&s->mu);
    while (s->ext_inflight > 0) pthread_cond_wait(&s->idle_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    sched_free(s);
    return 0;
}

int weft_sched_resize(weft_sched_t *s, int procs, int threads)
{
    if (!s || procs < 0 || threads < 0 || procs > 256 || threads > 1024) return -EINVAL;
    struct todo t = TODO_INIT;
    pthread_mutex_lock(&s->mu);
    if (s->shutdown) {
        pthread_mutex_unlock(&s->mu);
        return -ESHUTDOWN;
    }
    if ((procs && !s->ex[WEFT_ROUTE_PROCS].present) ||
        (threads && !s->ex[WEFT_ROUTE_THREADS].present)) {
        pthread_mutex_unlock(&s->mu);
        return -EINVAL;
    }
    if (procs && procs != s->ex[WEFT_ROUTE_PROCS].workers) {
        weft__sched_event(s, "processes %d -> %d: set by hand", s->ex[WEFT_ROUTE_PROCS].workers,
                          procs);
        s->ex[WEFT_ROUTE_PROCS].workers = procs;
        t.resize[WEFT_ROUTE_PROCS] = procs;
    }
    if (procs) s->manual[WEFT_ROUTE_PROCS] = true;
    if (threads && threads != s->ex[WEFT_ROUTE_THREADS].workers) {
        weft__sched_event(s, "threads %d -> %d: set by hand", s->ex[WEFT_ROUTE_THREADS].workers,
                          threads);
        s->ex[WEFT_ROUTE_THREADS].workers = threads;
        weft__loop_threshold(s);
        t.resize[WEFT_ROUTE_THREADS] = threads;
    }
    if (threads) s->manual[WEFT_ROUTE_THREADS] = true;
    weft__dispatch(s, &t);
    pthread_mutex_unlock(&s->mu);
    weft__run_todo(s, &t);
    return 0;
}

static weft_sched_state_t rec_public_state(const struct rec *r)
{
    switch (r->state) {
    case R_WAITING:
        return WEFT_TASK_WAITING;
    case R_QUEUED:
        return WEFT_TASK_QUEUED;
    case R_RUNNING:
        return WEFT_TASK_RUNNING;
    case R_BACKOFF:
        return WEFT_TASK_BACKOFF;
    default:
        return WEFT_TASK_DONE;
    }
}

int weft_sched_info(weft_sched_t *s, weft_sched_id_t id, weft_sched_info_t *out)
{
    if (!s || !out) return -EINVAL;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    uint32_t idx;
    struct rec *r = weft__rec_lookup(s, id, false, &idx);
    if (r) {
        out->state = rec_public_state(r);
        out->route = r->route < WEFT_ROUTE_COUNT ? (weft_sched_route_t)r->route : WEFT_ROUTE_NONE;
        out->attempts = r->attempts;
        out->status = -EINPROGRESS;
        if (r->att && (atomic_load(&r->att->flags) & A_DELIVERED)) { /* its future is DONE */
            out->state = WEFT_TASK_DONE;
            out->status = weft__attx(r->att)->early_status;
        }
        if (r->x) {
            out->nerrors = r->x->nerrors;
            memcpy(out->errors, r->x->errors, sizeof out->errors);
        }
        out->submitted_ns = s->t0 + r->t_sub;
        if (r->att) out->started_ns = r->att->t_start;
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    struct ring_ent *e = weft__ring_of(s, id);
    int rc = -ENOENT;
    if (id != 0 && e->id == id) {
        out->state = (weft_sched_state_t)e->state;
        out->route = e->route < WEFT_ROUTE_COUNT ? (weft_sched_route_t)e->route : WEFT_ROUTE_NONE;
        out->attempts = e->attempts;
        out->status = e->status;
        /* Only the first and last errors outlive the task. */
        out->nerrors = e->nerr > 2 ? 2 : e->nerr;
        if (e->nerr) out->errors[0] = e->err_first;
        if (e->nerr > 1) out->errors[1] = e->err_last;
        out->submitted_ns = s->t0 + e->t_sub;
        out->finished_ns = s->t0 + e->t_fin;
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void weft__sched_copy_info(weft_sched_t *s, weft_sched_info_t *dst, const weft_sched_info_t *src)
{
    pthread_mutex_lock(&s->mu);
    *dst = *src;
    pthread_mutex_unlock(&s->mu);
}

const char *weft_sched_state_name(weft_sched_state_t st)
{
    static const char *const names[] = {"waiting", "queued",  "running",   "backoff", "done",
                                        "failed",  "skipped", "cancelled", "resumed"};
    return (unsigned)st < WEFT_TASK_STATE_COUNT ? names[st] : "unknown";
}

const char *weft_sched_route_name(weft_sched_route_t r)
{
    switch (r) {
    case WEFT_ROUTE_PROCS:
        return "processes";
    case WEFT_ROUTE_THREADS:
        return "threads";
    case WEFT_ROUTE_LOOP:
        return "loop";
    default:
        return "none";
    }
}

const char *weft_sched_type_name(weft_sched_type_t t)
{
    switch (t) {
    case WEFT_SCHED_CPU:
        return "cpu";
    case WEFT_SCHED_IO:
        return "io";
    case WEFT_SCHED_MIXED:
        return "mixed";
    default:
        return "auto";
    }
}

int weft_sched_type_parse(const char *s, weft_sched_type_t *out)
{
    static const struct {
        const char *n;
        weft_sched_type_t t;
    } m[] = {{"auto", WEFT_SCHED_AUTO},
             {"cpu", WEFT_SCHED_CPU},
             {"io", WEFT_SCHED_IO},
             {"mixed", WEFT_SCHED_MIXED}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcasecmp(s, m[i].n) == 0) {
            *out = m[i].t;
            return 0;
        }
    return -EINVAL;
}

struct weft_pool *weft_sched_thread_pool(weft_sched_t *s)
{
    return s->tp;
}

struct weft_procpool *weft_sched_proc_pool(weft_sched_t *s)
{
    return s->pp;
}

struct weft_loop *weft_sched_loop(weft_sched_t *s)
{
    return s->loop;
}
