/* What happens to a task (weft/sched.h): the state machine of records - ready, dispatched,
 * attempted, retried, finished - and the todo that carries out, after the unlock, what a locked
 * section decided (launches, deliveries, settles, releases of dependents, resizes).
 *
 * DESIGN
 * Threads:
 *   - submitters (any thread, including tasks and completion callbacks);
 *   - the executors' threads, which report attempts finished: thread-pool workers (inside
 *     runner_entry, route-threads.c), the process pool's completion thread (proc_done,
 *     route-procs.c), the loop thread (weft_sched_aop_done, route-loop.c);
 *   - one scheduler thread ("<name>-tick"): timers (attempt timeouts on threads and the loop,
 *     retry backoff) and a periodic tick (adaptive sizing, cancel propagation, throughput):
 * timers.c, tick.c.
 *
 * One mutex, s->mu, protects every field of struct weft_sched (sched-int.h) and every record.
 * Nothing slow and no user code runs under it: each operation takes the lock, decides, and
 * collects what must happen outside into a `struct todo` (attempts to launch, results to deliver,
 * retired records whose futures to settle, pool resizes, loop cancels); it then unlocks and
 * carries the todo out. Executors are called only outside the lock. Lock order: s->mu is taken
 * before any executor's or future's internal lock is (weft__future_request_cancel and
 * weft__future_remove_node take at most a future stripe lock, a leaf); completion callbacks of
 * user futures always run with s->mu released.
 *
 * No prefetching: the scheduler keeps its own max-heap per executor (key = priority * aging -
 * enqueue time, see sched-int.h) and gives executor r a task only while running[r] <
 * workers[r]. An attempt that finishes frees its slot and the next task is popped then, so a
 * late high-priority task is the next to start.
 *
 * Invariants (under s->mu):
 *   - a record is in exactly one of: free list, WAITING (deps_left > 0), QUEUED (in one rq),
 *     RUNNING (rec->att out), BACKOFF (a retry timer pending), RETIRING (on one todo's list).
 *   - ex[r].running counts attempts in the running list with route r, stuck ones included: a
 *     thread that runs a task past its timeout still occupies a worker.
 *   - an attempt is freed only by its route's owner after its results were delivered: the
 *     thread pool frees thread attempts (they are heap task records, pool.c), proc_done and
 *     weft_sched_aop_done free theirs, run_todo frees attempts whose launch failed.
 *   - live counts records not free and not retiring; idle_cv is broadcast when it reaches 0.
 *   - a record has at most one timer (timers.c), removed when its attempt ends or the task
 *     finishes; a timer carries the record's full 64-bit id, checked again when it fires.
 *   - a timed-out thread or loop attempt stays the record's attempt (A_ABANDONED, the record
 *     still RUNNING) until it returns: only then does the task retry or finish, so attempts of
 *     a task never overlap and DONE means that no attempt holds arg/async_arg.
 *   - deliver, then release: the dependents of a task with a future are walked only after its
 *     future was settled (run_todo: release_dependents), never in the locked section that
 *     finished it. Until then the record stays RETIRING with walked = 0, and lookup lets new
 *     dependents join its list; walked = 1 afterwards sends them to the outcome ring. A thread
 *     task's success is settled by its own thread before it takes s->mu (deliver_early,
 *     route-threads.c), so its dependents are released in that same locked section.
 *   - ids are (seq << WEFT__IDX_BITS) | idx with seq increasing (sched-int.h); the outcome ring
 *     is indexed by seq, so an outcome survives opts.remember later submissions.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <weft/err.h>
#include <weft/sys.h>

/* The scheduler whose task, completion callback or timer this thread runs now: set by
 * weft__run_todo, runner_entry, loop_start and weft__timer_main; weft_sched_destroy and
 * weft_sched_wait_idle refuse to wait for themselves there (-EDEADLK). */
_Thread_local weft_sched_t *weft__in_sched;

static void todo_launch(struct todo *t, struct att *a)
{
    a->lnext = NULL;
    if (t->launch_tail)
        t->launch_tail->lnext = a;
    else
        t->launch = a;
    t->launch_tail = a;
}

void weft__sched_event(weft_sched_t *s, const char *fmt, ...)
{
    struct event *e = &s->events[s->nevents % WEFT__EVENTS];
    e->t = weft__now_rel(s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    s->nevents++;
}

static void info_update(weft_sched_t *s, struct rec *r, weft_sched_state_t st)
{
    if (!r->x || !r->x->info) return;
    weft_sched_info_t *in = r->x->info;
    in->state = st;
    in->route = r->route < WEFT_ROUTE_COUNT ? (weft_sched_route_t)r->route : WEFT_ROUTE_NONE;
    in->attempts = r->attempts;
    in->nerrors = r->x->nerrors;
    memcpy(in->errors, r->x->errors, sizeof in->errors);
    (void)s;
}

static unsigned forms_of(const struct rec *r)
{
    return (r->fn ? WEFT__FORM_THREAD : 0u) | (r->pfn ? WEFT__FORM_PROC : 0u) |
           (r->afn ? WEFT__FORM_ASYNC : 0u);
}

/* Deps satisfied (or a retry is due): pick the route and queue it. */
void weft__make_ready(weft_sched_t *s, struct todo *t, uint32_t idx)
{
    struct rec *r = weft__rec(s, idx);
    weft__class_t *c = &s->classes[r->cls];
    size_t io = s->rq[WEFT_ROUTE_THREADS].n + s->ex[WEFT_ROUTE_THREADS].running;
    uint64_t now = weft__tnow(s, t);
    bool probe;
    weft_sched_route_t route =
        weft__route_pick(&s->rcfg, c, (weft_sched_type_t)r->type, forms_of(r), io, now, &probe);
    if (route == WEFT_ROUTE_NONE) {
        weft__retire(s, t, idx, WEFT_TASK_FAILED, -EINVAL,
                     weft__strdup("no executor can run any of the task's forms"));
        return;
    }
    r->route = (uint8_t)route;
    r->probe = probe;
    r->t_enq = now;
    if (weft__pq_push(s, &s->rq[route], idx) < 0) {
        weft__retire(s, t, idx, WEFT_TASK_FAILED, -ENOMEM, NULL);
        return;
    }
    r->state = R_QUEUED;
    info_update(s, r, WEFT_TASK_QUEUED);
}

/* Pops tasks into free executor slots. */
void weft__dispatch(weft_sched_t *s, struct todo *t)
{
    for (int ri = 0; ri < WEFT_ROUTE_COUNT; ri++) {
        struct exec *e = &s->ex[ri];
        while (e->running < (size_t)e->workers && s->rq[ri].n > 0) {
            struct attx *ax;
            if (t->spare) {
                ax = weft__attx(t->spare);
                t->spare = NULL;
                memset(ax, 0, sizeof *ax);
            } else if (!(ax = weft__calloc(1, sizeof *ax))) {
                return; /* the tasks stay queued; a later completion or tick retries */
            }
            uint32_t idx = weft__pq_pop(s, &s->rq[ri]);
            struct rec *r = weft__rec(s, idx);
            struct att *a = &ax->a;
            uint64_t now = weft__tnow(s, t);
            a->s = s;
            a->idx = idx;
            a->id = r->id;
            a->route = (uint8_t)ri;
            a->no = ++r->attempts;
            a->cls = r->cls;
            a->t_start = s->t0 + now;
            a->timeout_ns = r->timeout_ns;
            a->fn = r->fn;
            a->arg = r->arg;
            a->afn = r->afn;
            a->aarg = r->aarg;
            a->pfn_name = r->pfn ? s->pfn_names.str[r->pfn - 1] : NULL;
            a->parg = r->parg;
            a->plen = r->plen;
            a->ufut = r->fut;
            /* A thread attempt holds its own reference until run_on_thread has started the
             * future: a timeout may settle the task and drop the record's reference before the
             * thread gets there (a use after free TSan caught). One atomic increment. */
            if (ri == WEFT_ROUTE_THREADS && a->ufut) weft_future_retain(a->ufut);
            uint32_t fl = 0;
            if (ri == WEFT_ROUTE_THREADS) {
                if (r->fut && !(r->x && r->x->info)) fl |= A_EARLY;
                if (r->probe) fl |= A_PROBE | A_MEASURE;
                /* Measured now and then, and the first few of each tick (sizing needs them). */
                if ((++s->measure_ctr & 31) == 0 || e->w_meas < 4) fl |= A_MEASURE;
                if (fl & A_MEASURE) e->w_meas++;
            }
            r->probe = 0;
            atomic_init(&a->flags, fl);
            atomic_init(&a->started, 0);
            if (ri == WEFT_ROUTE_THREADS) weft_future_init(&a->cfut);
            r->att = a;
            r->state = R_RUNNING;
            e->running++;
            weft_hist_record(&e->wait, now - r->t_enq);
            e->w_wait += now - r->t_enq;
            e->w_waits++;
            a->next = s->running;
            a->prev = NULL;
            if (s->running) s->running->prev = a;
            s->running = a;
            if (r->x && r->x->info) {
                if (a->no == 1) r->x->info->started_ns = a->t_start;
                info_update(s, r, WEFT_TASK_RUNNING);
            }
            /* The process pool times out itself. Without memory for the timer the attempt
             * runs without a timeout (the only place a timer may be missing). */
            if (r->timeout_ns && ri != WEFT_ROUTE_PROCS)
                (void)weft__timer_set(s, idx, now + r->timeout_ns, TIMER_TIMEOUT, a->no);
            todo_launch(t, a);
        }
    }
}

static void count_final(weft_sched_t *s, weft_sched_state_t st)
{
    switch (st) {
    case WEFT_TASK_DONE:
    case WEFT_TASK_RESUMED:
        s->succeeded++;
        break;
    case WEFT_TASK_SKIPPED:
        s->skipped++;
        break;
    case WEFT_TASK_CANCELLED:
        s->cancelled++;
        break;
    default:
        s->failed++;
        break;
    }
}

static void detach_extdeps(weft_sched_t *s, struct rec *r)
{
    if (!r->x) return;
    struct extdep *d = r->x->ext;
    r->x->ext = NULL;
    while (d) {
        struct extdep *next = d->next;
        if (weft__future_remove_node(d->f, &d->node)) {
            weft_future_release(d->f);
            weft__free(d);
        } else { /* its callback is about to run; it frees the node */
            d->orphan = true;
            s->ext_inflight++;
        }
        d = next;
    }
}

/* Marks the task finished for the books: counters, ring, info, live count. */
static void book_final(weft_sched_t *s, struct todo *t, uint32_t idx, struct rec *r,
                       weft_sched_state_t st, int status)
{
    count_final(s, st);
    weft__ring_store(s, idx, r, st, status, weft__tnow(s, t));
    if (r->x && r->x->info) {
        r->x->info->status = status;
        r->x->info->finished_ns = s->t0 + weft__tnow(s, t);
        info_update(s, r, st);
    }
    if (r->state == R_WAITING) s->waiting--;
    if (r->state == R_BACKOFF) s->backoff--;
    weft__timer_cancel(s, idx);
    detach_extdeps(s, r);
    s->live--;
    if (s->live == 0) pthread_cond_broadcast(&s->idle_cv);
}

static const char *task_label(weft_sched_t *s, uint32_t idx, struct rec *r, char *buf, size_t n)
{
    if (r->x && r->x->name) return r->x->name;
    (void)idx;
    snprintf(buf, n, "#%" PRIu64, r->id);
    return buf;
}

/* Dependents of a task that finished with `status`: release them, or skip them (which pushes
 * them on t->prop in turn; drain_props walks that stack, so a long chain never recurses). */
static void propagate(weft_sched_t *s, struct todo *t, uint32_t idx, int status, const char *cause)
{
    struct rec *r = weft__rec(s, idx);
    uint32_t e = r->dependents;
    r->dependents = WEFT__NIL;
    r->walked = 1;
    while (e != WEFT__NIL) {
        struct edge ed = s->edges[e];
        s->edges[e].next = s->free_edge;
        s->free_edge = e;
        e = ed.next;
        uint32_t didx = (uint32_t)(ed.id & WEFT__IDX_MASK);
        struct rec *d = weft__rec(s, didx);
        if (d->id != ed.id || d->state != R_WAITING) continue;
        if (status >= 0) {
            if (--d->deps_left == 0) {
                s->waiting--;
                weft__make_ready(s, t, didx);
            }
            continue;
        }
        weft__retire(s, t, didx, WEFT_TASK_SKIPPED, WEFT_ESKIPPED, weft__strdup(cause));
    }
}

/* The cause a failed task passes on to its dependents. */
static void cause_of(weft_sched_t *s, uint32_t idx, struct rec *r, weft_sched_state_t st,
                     int status, const char *msg, char *cause, size_t n)
{
    char buf[32];
    if (st == WEFT_TASK_SKIPPED)
        snprintf(cause, n, "%s", msg ? msg : "skipped: a dependency failed");
    else
        snprintf(cause, n, "skipped: dependency '%s' %s: %s",
                 task_label(s, idx, r, buf, sizeof buf),
                 st == WEFT_TASK_CANCELLED ? "was cancelled" : "failed",
                 msg ? msg : weft_strerror(status));
}

void weft__drain_props(weft_sched_t *s, struct todo *t)
{
    while (t->prop != WEFT__NIL) {
        uint32_t idx = t->prop;
        struct rec *r = weft__rec(s, idx);
        t->prop = r->deps_left;
        char cause[512];
        cause_of(s, idx, r, r->x ? (weft_sched_state_t)r->x->final_state : WEFT_TASK_FAILED,
                 r->status, r->x ? r->x->msg : NULL, cause, sizeof cause);
        propagate(s, t, idx, r->status, cause);
    }
}

/* Finishes a task without an attempt result to deliver (skipped, cancelled, resumed, failed
 * before running): its future is settled after the unlock from the retire list; its dependents
 * are walked by drain_props. Takes ownership of msg. */
void weft__retire(weft_sched_t *s, struct todo *t, uint32_t idx, weft_sched_state_t st, int status,
                  char *msg)
{
    struct rec *r = weft__rec(s, idx);
    if (r->state == R_RETIRING || r->state == R_FREE) {
        weft__free(msg);
        return;
    }
    book_final(s, t, idx, r, st, status);
    struct extra *x = weft__extra_of(r);
    if (x) {
        weft__free(x->msg);
        x->msg = msg;
        x->final_state = (uint8_t)st;
    } else {
        weft__free(msg);
    }
    r->state = R_RETIRING;
    r->status = status;
    r->link = t->retire;
    t->retire = idx;
    if (r->fut) {
        /* Deliver, then release: its dependents are walked after its future is settled (the
         * retire pass of run_todo); until then a new dependent joins them (lookup). */
        s->futures--;
        if (status < 0 && x) {
            char cause[512];
            cause_of(s, idx, r, st, status, x->msg, cause, sizeof cause);
            x->cause = weft__strdup(cause);
        }
        return;
    }
    r->deps_left = t->prop; /* no future to settle first: walked by drain_props */
    t->prop = idx;
}

/* Run after the future of finished task idx was settled: releases (or skips) its dependents
 * and frees the record. */
static void release_dependents(weft_sched_t *s, struct todo *t, uint32_t idx)
{
    struct rec *r = weft__rec(s, idx);
    if (!r->walked)
        propagate(s, t, idx, r->status,
                  r->x && r->x->cause ? r->x->cause : "skipped: a dependency failed");
    weft__rec_free(s, idx);
}

/* A task finished through an attempt: deliver the attempt's result to its future. */
static void finish_from_attempt(weft_sched_t *s, struct todo *t, struct att *a, struct rec *r,
                                weft_sched_state_t st, int status)
{
    uint32_t idx = a->idx;
    book_final(s, t, idx, r, st, status);
    struct attx *ax = weft__attx(a);
    ax->ends_task = true;
    if (r->fut) {
        ax->deliver_to = r->fut;
        r->fut = NULL;
        s->futures--;
        ax->dnext = t->deliver;
        t->deliver = a;
    } else {
        ax->dnext = t->discard;
        t->discard = a;
    }
    r->state = R_RETIRING;
    r->status = status;
    /* relaxed: A_DELIVERED was set by the attempt's own thread (deliver_early) before it took
     * s->mu, which orders it before this read. */
    if (atomic_load_explicit(&a->flags, memory_order_relaxed) & A_DELIVERED) {
        /* Its thread settled the future already (deliver_early): release now. */
        ax->settled = true;
        if (r->dependents != WEFT__NIL) propagate(s, t, idx, status, "");
        weft__rec_free(s, idx);
        return;
    }
    char cause[512];
    if (status < 0) cause_of(s, idx, r, st, status, ax->res.msg, cause, sizeof cause);
    if (ax->deliver_to) {
        /* Deliver, then release: run_todo settles the future, then release_dependents. */
        struct extra *x = status < 0 ? weft__extra_of(r) : NULL;
        if (x) x->cause = weft__strdup(cause);
        ax->release_after = true;
        return;
    }
    if (r->dependents != WEFT__NIL) propagate(s, t, idx, status, cause);
    weft__rec_free(s, idx);
}

/* "msg (after 3 attempts: ETIMEDOUT, WEFT_ECRASHED, ETIMEDOUT)". Takes ownership of msg. */
static char *compose_failure(struct rec *r, int status, char *msg)
{
    if (r->attempts <= 1 || !r->x) return msg;
    weft_buf_t b;
    weft_buf_init(&b, 4096);
    weft_buf_printf(&b, "%s (after %d attempts:", msg ? msg : weft_strerror(status), r->attempts);
    for (int i = 0; i < r->x->nerrors; i++)
        weft_buf_printf(&b, "%s %s", i ? "," : "", weft_err_name(r->x->errors[i]));
    if (r->attempts > r->x->nerrors) weft_buf_printf(&b, ", ...");
    weft_buf_printf(&b, ")");
    weft__free(msg);
    size_t n;
    char *out = weft_buf_steal(&b, &n);
    weft_buf_free(&b);
    return out;
}

/* An attempt of record idx failed with `status`. `a` is the attempt if its result is to be
 * delivered when this failure is final; NULL when the attempt was abandoned (timeout). Takes
 * ownership of msg. */
static void attempt_failed(weft_sched_t *s, struct todo *t, uint32_t idx, struct rec *r, int status,
                           char *msg, struct att *a)
{
    struct extra *x = weft__extra_of(r);
    if (x && x->nerrors < WEFT_SCHED_KEPT_ERRORS) x->errors[x->nerrors++] = status;
    const struct policy *p = r->policy ? &s->policies[r->policy] : NULL;
    bool cancelled =
        status == -ECANCELED && (s->cancel_all || (r->fut && weft_future_cancel_requested(r->fut)));
    uint64_t delay = 0;
    if (p && r->attempts < p->p.attempts && !cancelled && !s->cancel_all &&
        weft__retry_on(p->on, p->p.n_on, status) &&
        (delay = weft_backoff(p->p.backoff_ns, p->p.backoff_max_ns, r->attempts, &s->rng),
         weft__timer_set(s, idx, weft__tnow(s, t) + delay, TIMER_RETRY, r->attempts) == 0)) {
        s->ex[r->route].retried++;
        r->state = R_BACKOFF;
        s->backoff++;
        pthread_cond_signal(&s->timer_cv);
        if (x) {
            weft__free(x->msg);
            x->msg = msg;
        } else {
            weft__free(msg);
        }
        info_update(s, r, WEFT_TASK_BACKOFF);
        if (a) {
            weft__attx(a)->dnext = t->discard;
            t->discard = a;
        }
        return;
    }
    msg = compose_failure(r, status, msg);
    weft_sched_state_t st = cancelled ? WEFT_TASK_CANCELLED : WEFT_TASK_FAILED;
    if (a) {
        weft__attx(a)->res.msg = msg;
        finish_from_attempt(s, t, a, r, st, status);
    } else {
        weft__retire(s, t, idx, st, status, msg);
    }
}

/* The executor finished attempt `a`; its result is in weft__attx(a)->res. */
void weft__attempt_done_locked(weft_sched_t *s, struct todo *t, struct att *a, uint64_t cpu,
                               uint64_t wall, bool measured)
{
    struct attx *ax = weft__attx(a);
    if (a->prev)
        a->prev->next = a->next;
    else
        s->running = a->next;
    if (a->next) a->next->prev = a->prev;
    struct exec *e = &s->ex[a->route];
    e->running--;
    uint64_t run = s->t0 + weft__tnow(s, t) - a->t_start;
    weft_hist_record(&e->run, run);
    /* Busy time inside the current window only (a long task is counted by the tick's live
     * sampling while it runs). */
    uint64_t in_window = a->tick_t ? s->t0 + weft__tnow(s, t) - (s->t0 + a->tick_t) : run;
    e->w_busy += in_window < s->opts.tick_ns ? in_window : s->opts.tick_ns;
    uint32_t fl = atomic_load_explicit(&a->flags, memory_order_relaxed); /* written under mu */
    weft__class_t *c = &s->classes[a->cls];
    c->runs++;
    c->run_wall_ns += run;
    if (measured) {
        e->w_cpu += cpu;
        e->w_wall += wall;
        if ((fl & A_PROBE) && weft__route_sample(&s->rcfg, c, cpu, wall, weft__tnow(s, t)))
            weft__sched_event(s, "class '%s' is now %s (CPU/wall %.2f over %" PRIu64 " runs)",
                              c->name, weft__mode_name(c->mode), c->ratio, c->samples);
    }
    /* The record waited for this attempt, even past its timeout: only now may the task retry
     * or finish (DONE means that no attempt holds the task's arguments). */
    struct rec *r = weft__rec(s, a->idx);
    r->att = NULL;
    weft__timer_cancel(s, a->idx);
    if (fl & A_ABANDONED) { /* timed out (counted then): drop its own result unread */
        if (a->route == WEFT_ROUTE_THREADS) e->stuck--;
        ax->dropped = ax->res;
        memset(&ax->res, 0, sizeof ax->res);
        ax->res.status = -ETIMEDOUT;
        char *tmsg = ax->tmsg;
        ax->tmsg = NULL;
        attempt_failed(s, t, a->idx, r, -ETIMEDOUT, tmsg, a);
        return;
    }
    int st = ax->res.status;
    if (st >= 0) {
        e->done++;
        finish_from_attempt(s, t, a, r, WEFT_TASK_DONE, st);
        return;
    }
    e->failed++;
    if (st == -ETIMEDOUT) e->timed_out++;
    char *msg = ax->res.msg;
    ax->res.msg = NULL;
    attempt_failed(s, t, a->idx, r, st, msg, a);
}

/* Called by an executor (no lock held) when attempt `a` finished with weft__attx(a)->res. The
 * caller frees `a` afterwards. */
void weft__attempt_finished(weft_sched_t *s, struct att *a, uint64_t cpu, uint64_t wall,
                            bool measured)
{
    struct todo t = TODO_INIT;
    pthread_mutex_lock(&s->mu);
    weft__attempt_done_locked(s, &t, a, cpu, wall, measured);
    weft__drain_props(s, &t);
    weft__dispatch(s, &t);
    pthread_mutex_unlock(&s->mu);
    weft__run_todo(s, &t);
}

static void unsettle(weft_sched_t *s, size_t n)
{
    if (n == 0) return;
    /* acq_rel: the settles before it happen before wait_idle's return (which loads it under
     * mu after the broadcast below, or sees 0 first). */
    if (atomic_fetch_sub_explicit(&s->unsettled, n, memory_order_acq_rel) == n) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->idle_cv);
        pthread_mutex_unlock(&s->mu);
    }
}

/* Checks, just before an attempt starts, that its task was not cancelled; starts the user's
 * future on the first attempt. Returns 0 or -ECANCELED with *msg set. */
int weft__pre_start(struct att *a, char **msg)
{
    if (!a->ufut) return 0;
    if (a->no == 1) {
        if (weft_future_start(a->ufut) != -ECANCELED) return 0;
        *msg = weft__strdup("cancelled before it started");
    } else {
        if (!weft_future_cancel_requested(a->ufut)) return 0;
        *msg = weft__strdup("cancelled before retry");
    }
    return -ECANCELED;
}

/* Starts attempt `a` on its executor (no lock held); on failure its result is delivered as
 * the attempt's outcome. */
static void launch(weft_sched_t *s, struct todo *t, struct att *a)
{
    struct attx *ax = weft__attx(a);
    int rc;
    char *msg = NULL;
    if (a->route != WEFT_ROUTE_THREADS && (rc = weft__pre_start(a, &msg)) < 0) goto failed;
    switch ((weft_sched_route_t)a->route) {
    case WEFT_ROUTE_THREADS:
        rc = weft__threads_launch(s, a);
        break;
    case WEFT_ROUTE_PROCS:
        rc = weft__procs_launch(s, a);
        break;
    case WEFT_ROUTE_LOOP:
        rc = weft__loop_launch(s, a);
        break;
    default:
        rc = -EINVAL;
        break;
    }
    if (rc == 0) return;
failed:
    if (a->route == WEFT_ROUTE_THREADS) weft_future_release(a->ufut); /* never ran: dispatch's */
    if (!msg) msg = weft__strdup(weft_strerror(rc));
    ax->res.status = rc;
    ax->res.msg = msg;
    ax->deliver_free = true;
    pthread_mutex_lock(&s->mu);
    weft__attempt_done_locked(s, t, a, 0, 0, false);
    weft__drain_props(s, t);
    weft__dispatch(s, t);
    pthread_mutex_unlock(&s->mu);
    /* Freed after its result is delivered (run_todo's free list). */
    ax->cnext = t->freelist;
    t->freelist = a;
}

static void att_free(struct att *a)
{
    if (a->route == WEFT_ROUTE_LOOP && atomic_load(&weft__attx(a)->lrefs) > 0)
        weft__loop_unref(a);
    else
        weft__free(weft__attx(a));
}

/* Frees what an abandoned attempt produced itself (its value may need user code: unlocked). */
static void drop_result(struct attx *ax)
{
    struct result d = ax->dropped;
    memset(&ax->dropped, 0, sizeof ax->dropped);
    if (d.value && d.free_fn) d.free_fn(d.value);
    weft__free(d.msg);
    weft__free(ax->tmsg);
    ax->tmsg = NULL;
}

/* Carries out a todo. Completion callbacks of user futures run here (settle), so this thread
 * counts as one of the scheduler's own while it does: destroy/wait_idle would wait for it. */
void weft__run_todo(weft_sched_t *s, struct todo *t)
{
    weft_sched_t *outer = weft__in_sched;
    weft__in_sched = s;
    atomic_fetch_add(&s->todo_running, 1);
    for (;;) {
        if (t->launch) {
            struct att *a = t->launch;
            t->launch = a->lnext;
            if (!t->launch) t->launch_tail = NULL;
            launch(s, t, a);
            continue;
        }
        if (t->deliver) {
            struct att *a = t->deliver;
            struct attx *ax = weft__attx(a);
            t->deliver = ax->dnext;
            struct result res = ax->res;
            memset(&ax->res, 0, sizeof ax->res);
            weft_future_t *f = ax->deliver_to;
            ax->deliver_to = NULL;
            if (res.status >= 0) {
                weft__free(res.msg);
                res.msg = NULL;
            }
            drop_result(ax);
            if (ax->settled) /* deliver_early did; nothing else can be in res */
                ax->settled = false;
            else
                weft__future_settle(f, res.status, res.value, res.size, res.free_fn, res.msg);
            weft_future_release(f);
            if (ax->release_after) { /* deliver, then release */
                ax->release_after = false;
                pthread_mutex_lock(&s->mu);
                release_dependents(s, t, a->idx);
                weft__drain_props(s, t);
                weft__dispatch(s, t);
                pthread_mutex_unlock(&s->mu);
            }
            unsettle(s, 1);
            continue;
        }
        if (t->discard) {
            struct att *a = t->discard;
            struct attx *ax = weft__attx(a);
            t->discard = ax->dnext;
            if (ax->res.value && ax->res.free_fn) ax->res.free_fn(ax->res.value);
            weft__free(ax->res.msg);
            drop_result(ax);
            bool ends = ax->ends_task;
            ax->ends_task = false;
            memset(&ax->res, 0, sizeof ax->res);
            if (ends) unsettle(s, 1); /* a task without a future finished */
            continue;
        }
        if (t->retire != WEFT__NIL) {
            uint32_t list = t->retire;
            t->retire = WEFT__NIL;
            size_t n = 0;
            for (uint32_t i = list; i != WEFT__NIL; i = weft__rec(s, i)->link) {
                struct rec *r = weft__rec(s, i);
                if (r->fut) {
                    char *m = NULL;
                    if (r->x) {
                        m = r->x->msg;
                        r->x->msg = NULL;
                    }
                    if (r->status >= 0) {
                        weft__free(m);
                        m = NULL;
                    }
                    weft__future_settle(r->fut, r->status, NULL, 0, NULL, m);
                    weft_future_release(r->fut);
                    r->fut = NULL;
                }
                n++;
            }
            /* Deliver, then release: the dependents of tasks with futures go now. */
            pthread_mutex_lock(&s->mu);
            for (uint32_t i = list, next; i != WEFT__NIL; i = next) {
                next = weft__rec(s, i)->link;
                release_dependents(s, t, i);
            }
            weft__drain_props(s, t);
            weft__dispatch(s, t);
            pthread_mutex_unlock(&s->mu);
            unsettle(s, n);
            continue;
        }
        if (t->nproc_cancel > 0) {
            weft_future_t *f = t->proc_cancel[--t->nproc_cancel];
            weft_procpool_cancel(s->pp, f, true); /* -EALREADY: it finished meanwhile */
            weft_future_release(f);
            continue;
        }
        if (t->loop_cancel) {
            struct att *a = t->loop_cancel;
            t->loop_cancel = weft__attx(a)->cnext;
            weft__attx(a)->cnext = NULL;
            weft__loop_cancel_post(s, a);
            continue;
        }
        bool any = false;
        for (int r = 0; r < WEFT_ROUTE_COUNT; r++) {
            int n = t->resize[r];
            if (!n) continue;
            t->resize[r] = 0;
            any = true;
            if (r == WEFT_ROUTE_THREADS && s->tp) weft_pool_resize(s->tp, n);
            if (r == WEFT_ROUTE_PROCS && s->pp) weft_procpool_resize(s->pp, n);
        }
        if (any) continue;
        break;
    }
    while (t->freelist) {
        struct att *a = t->freelist;
        t->freelist = weft__attx(a)->cnext;
        att_free(a);
    }
    weft__in_sched = outer;
    if (atomic_fetch_sub(&s->todo_running, 1) == 1 && atomic_load(&s->idle_waiters) > 0) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->idle_cv);
        pthread_mutex_unlock(&s->mu);
    }
}
