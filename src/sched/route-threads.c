/* The threads route: attempts run on the thread pool, a worker taking the next thread task
 * itself while the scheduler has one for it.
 *
 * DESIGN
 * Threads: pool workers run runner_entry; the scheduler thread may time an attempt out.
 * Invariants:
 *   - an attempt's thread never reads the record, only the attempt (copied at dispatch);
 *   - a timed-out attempt is flagged A_ABANDONED (under weft_sched.mu) and asked to cancel
 *     through its own cancel token a->cfut; run_on_thread's store of `started` and the timer's
 *     store of A_ABANDONED are seq_cst, so either the attempt never starts fn or it is asked to
 *     cancel; its record waits for it either way (tasks.c);
 *   - never more than one task per busy worker, and nothing prefetched.
 * Lock order: weft_sched.mu only, never held while fn runs.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>
#include <weft/sys.h>

/* The attempt running on this thread, for weft_sched_add_cpu. */
static _Thread_local struct att *cur_att;
static _Thread_local uint64_t cur_extra_cpu;

void weft_sched_add_cpu(weft_ctx_t *ctx, uint64_t cpu_ns)
{
    if (cur_att && ctx && ctx->future == &cur_att->cfut) cur_extra_cpu += cpu_ns;
}

/* Runs a thread attempt on the calling pool worker, with its own context whose cancel token is
 * a->cfut, and stores the result in weft__attx(a)->res. Returns the measurements. */
static bool run_on_thread(struct att *a, uint64_t *cpu, uint64_t *wall)
{
    struct attx *ax = weft__attx(a);
    /* seq_cst pair with the timer's store of A_ABANDONED then load of started: at least one of
     * the two sees the other, so a timed-out task either never starts or is asked to cancel. */
    if (pthread_getcpuclockid(pthread_self(), &a->cpuclk) != 0) a->cpuclk = (clockid_t)-1;
    atomic_store(&a->started, 1);
    uint32_t fl = atomic_load(&a->flags);
    char *msg = NULL;
    int rc = (fl & A_ABANDONED) ? -ETIMEDOUT : weft__pre_start(a, &msg);
    /* dispatch's reference; a->ufut stays readable under s->mu while the attempt is not
     * abandoned (the record's reference), which is all propagate_cancels needs. */
    weft_future_release(a->ufut);
    if (rc < 0) {
        ax->res.status = rc;
        ax->res.msg = msg;
        return false;
    }
    weft_ctx_t ctx;
    weft__ctx_init(&ctx, &a->cfut);
    uint64_t c0 = 0, q0 = 0, w0 = 0;
    if (fl & A_PROBE)
        weft__thread_times(&c0, &q0);
    else if (fl & A_MEASURE)
        c0 = weft_thread_cpu_ns();
    if (fl & A_MEASURE) w0 = weft_now_ns();
    cur_att = a;
    cur_extra_cpu = 0;
    rc = a->fn(a->arg, &ctx);
    cur_att = NULL;
    bool measured = false;
    if (fl & A_MEASURE) {
        uint64_t c1, q1 = 0;
        if (fl & A_PROBE)
            weft__thread_times(&c1, &q1);
        else
            c1 = weft_thread_cpu_ns();
        uint64_t w = weft_now_ns() - w0, q = q1 - q0;
        *wall = w > q ? w - q : 0; /* time runnable but waiting for a CPU is not the task's */
        *cpu = c1 - c0 + cur_extra_cpu;
        measured = true;
    }
    /* The value and message the task attached (future-int.h: weft_ctx_t). */
    ax->res.status = rc;
    ax->res.value = ctx.value;
    ax->res.size = ctx.size;
    ax->res.free_fn = ctx.free_fn;
    ax->res.msg = rc < 0 ? ctx.message : NULL;
    if (rc >= 0) weft__free(ctx.message);
    return measured;
}

/* A pool worker's share of the threads route. It runs its first attempt, then, while the
 * scheduler has tasks for threads and a free slot (running < workers), takes the next one
 * itself instead of sending it through the pool's queue: still never more than one task per
 * busy worker, and no queueing, future or clock cost of the pool per task. */
struct runner {
    weft_task_t task; /* the pool's record: a heap record, freed by the pool when done */
    weft_sched_t *s;
    struct att *first;
};

/* Deliver first, in one lock round: a thread attempt that succeeded is final unless it was
 * abandoned (timed out), so its thread settles the user's future before taking the scheduler
 * lock, which then releases the dependents at once (tasks.c finish_from_attempt). The CAS
 * decides against the timer (timer_fire): A_DELIVERED or A_ABANDONED, never both. a->ufut is
 * the record's reference, valid while the attempt is out. Graph tasks (whose info must be final
 * before their future) and failures take the usual path. */
static void deliver_early(struct att *a)
{
    struct attx *ax = weft__attx(a);
    uint32_t fl = atomic_load(&a->flags);
    if (ax->res.status < 0 || !a->ufut || !(fl & A_EARLY)) return;
    ax->early_status = ax->res.status; /* before the CAS (seq_cst): weft_sched_info reads it */
    do {
        if (fl & A_ABANDONED) return;
    } while (!atomic_compare_exchange_weak(&a->flags, &fl, fl | A_DELIVERED));
    struct result res = ax->res;
    memset(&ax->res, 0, sizeof ax->res);
    ax->res.status = res.status;
    weft__free(res.msg);
    weft__future_settle(a->ufut, res.status, res.value, res.size, res.free_fn, NULL);
}

static int runner_entry(void *arg, weft_ctx_t *pctx)
{
    struct runner *rn = arg;
    weft_sched_t *s = rn->s;
    struct att *a = rn->first, *spare = NULL;
    (void)pctx;
    weft_sched_t *outer = weft__in_sched;
    weft__in_sched = s;
    while (a) {
        uint64_t cpu = 0, wall = 0;
        bool measured = run_on_thread(a, &cpu, &wall);
        deliver_early(a);
        struct todo t = TODO_INIT;
        t.spare = spare; /* dispatch reuses it for the next attempt */
        pthread_mutex_lock(&s->mu);
        weft__attempt_done_locked(s, &t, a, cpu, wall, measured);
        weft__drain_props(s, &t);
        weft__dispatch(s, &t);
        struct att *next = NULL;
        for (struct att **p = &t.launch, *prev = NULL; *p; prev = *p, p = &(*p)->lnext)
            if ((*p)->route == WEFT_ROUTE_THREADS) { /* keep one for this worker */
                next = *p;
                *p = next->lnext;
                if (t.launch_tail == next) t.launch_tail = prev;
                break;
            }
        pthread_mutex_unlock(&s->mu);
        weft__run_todo(s, &t); /* delivers a's result, launches the rest */
        weft__free(t.spare ? weft__attx(t.spare) : NULL);
        spare = a; /* delivered: its memory serves the next dispatch */
        a = next;
    }
    weft__free(spare ? weft__attx(spare) : NULL);
    weft__in_sched = outer;
    return 0; /* the pool completes and frees the runner's record */
}

int weft__threads_launch(weft_sched_t *s, struct att *a)
{
    /* A heap record: the pool drops the last reference after completing it, which frees the
     * runner (pool.c DESIGN; future-int.h weft__future_init_heap). */
    struct runner *rn = weft__malloc(sizeof *rn);
    if (!rn) return -ENOMEM;
    rn->s = s;
    rn->first = a;
    weft_task_init(&rn->task, runner_entry, rn);
    weft__future_init_heap(&rn->task.future, offsetof(struct runner, task.future));
    int rc = weft_pool_submit_task(s->tp, &rn->task);
    if (rc < 0) weft_future_release(&rn->task.future); /* never queued: frees it */
    return rc;
}
