/* The hybrid scheduler (weft/sched.h): task records, per-executor priority queues, dependencies,
 * retries, timeouts, routing and adaptive sizing over a process pool, a thread pool and the
 * event loop.
 *
 * DESIGN
 * Threads:
 *   - submitters (any thread, including tasks and completion callbacks);
 *   - the executors' threads, which report attempts finished: thread-pool workers (inside
 *     thread_entry), the process pool's completion thread (proc_done), the loop thread
 *     (weft_sched_aop_done);
 *   - one scheduler thread ("<name>-tick"): timers (attempt timeouts on threads and the loop,
 *     retry backoff) and a periodic tick (adaptive sizing, cancel propagation, throughput).
 *
 * One mutex, s->mu, protects every field of struct weft_sched (core-int.h) and every record.
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
 *     dependents join its list; walked = 1 afterwards sends them to the outcome ring.
 *   - ids are (seq << WEFT__IDX_BITS) | idx with seq increasing (core-int.h); the outcome ring
 *     is indexed by seq, so an outcome survives opts.remember later submissions.
 */
#include "sched/core-int.h"

#include "core/alloc.h"
#include "exec/procpool-int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/loop.h>
#include <weft/sys.h>

#define MAX_PRIO 1000000

static _Thread_local weft_sched_t *in_sched; /* see "executors" below */

/* ---- small tables ------------------------------------------------------------------------ */

static bool strtab_eq(uint64_t val, const void *key, const void *ctx)
{
    const struct strtab *t = ctx;
    return strcmp(t->str[val], key) == 0;
}

/* Returns the index of `str` in the table, adding it if needed; -ENOMEM; -ENOSPC past 65535. */
static int strtab_intern(struct strtab *t, const char *str, bool *added)
{
    *added = false;
    uint64_t h = weft_hash_str(str);
    uint64_t *v = weft_htab_find(&t->idx, h, strtab_eq, str, t);
    if (v) return (int)*v;
    if (t->n >= 65535) return -ENOSPC;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **a = weft__realloc(t->str, cap * sizeof *a);
        if (!a) return -ENOMEM;
        t->str = a;
        t->cap = cap;
    }
    if (weft_htab_reserve(&t->idx, t->n + 1) < 0) return -ENOMEM;
    char *copy = weft__strdup(str);
    if (!copy) return -ENOMEM;
    bool put;
    v = weft_htab_put(&t->idx, h, strtab_eq, str, t, &put); /* reserved: cannot fail */
    *v = t->n;
    t->str[t->n++] = copy;
    *added = true;
    return (int)(t->n - 1);
}

static void strtab_free(struct strtab *t)
{
    for (size_t i = 0; i < t->n; i++) weft__free(t->str[i]);
    weft__free(t->str);
    weft_htab_free(&t->idx);
    memset(t, 0, sizeof *t);
}

static int intern_class(weft_sched_t *s, const char *name)
{
    if (s->cls_names.n == s->classes_cap) { /* room first, so a new name always has a class */
        size_t cap = s->classes_cap ? s->classes_cap * 2 : 8;
        weft__class_t *c = weft__realloc(s->classes, cap * sizeof *c);
        if (!c) return -ENOMEM;
        s->classes = c;
        s->classes_cap = cap;
    }
    bool added;
    int i = strtab_intern(&s->cls_names, name, &added);
    if (i >= 0 && added) weft__class_init(&s->classes[i], name);
    return i;
}

static int intern_policy(weft_sched_t *s, const weft_sched_retry_t *p)
{
    if (!p || p->attempts <= 1) return 0;
    struct policy np;
    memset(&np, 0, sizeof np);
    np.p.attempts = p->attempts;
    np.p.backoff_ns = p->backoff_ns ? p->backoff_ns : 100000000u;
    np.p.backoff_max_ns = p->backoff_max_ns ? p->backoff_max_ns : UINT64_C(30000000000);
    np.p.n_on = p->n_on;
    for (size_t i = 0; i < p->n_on; i++) np.on[i] = p->on[i];
    for (size_t i = 1; i < s->npolicies; i++) {
        struct policy *q = &s->policies[i];
        if (q->p.attempts == np.p.attempts && q->p.backoff_ns == np.p.backoff_ns &&
            q->p.backoff_max_ns == np.p.backoff_max_ns && q->p.n_on == np.p.n_on &&
            memcmp(q->on, np.on, sizeof np.on) == 0)
            return (int)i;
    }
    if (s->npolicies >= 65535) return -ENOSPC;
    if (s->npolicies == 0) s->npolicies = 1; /* index 0 means "no policy" */
    struct policy *a = weft__realloc(s->policies, (s->npolicies + 1) * sizeof *a);
    if (!a) return -ENOMEM;
    s->policies = a;
    s->policies[s->npolicies] = np;
    return (int)s->npolicies++;
}

/* ---- records and edges ------------------------------------------------------------------- */

static uint64_t now_rel(weft_sched_t *s)
{
    return weft_now_ns() - s->t0;
}

/* The record of task `id` while it is unfinished, or NULL. With `unreleased`, also a finished
 * task whose dependents are not released yet (its future is being settled): a new dependent
 * then joins the others, so that it too starts only after that future is DONE. */
static struct rec *lookup(weft_sched_t *s, weft_sched_id_t id, bool unreleased, uint32_t *idx_out)
{
    uint64_t idx = id & WEFT__IDX_MASK;
    if (id == 0 || idx >= s->nrecs) return NULL;
    struct rec *r = weft__rec(s, (uint32_t)idx);
    if (r->id != id || r->state == R_FREE) return NULL;
    if (r->state == R_RETIRING && (!unreleased || r->walked)) return NULL;
    if (idx_out) *idx_out = (uint32_t)idx;
    return r;
}

/* Makes sure `n` more records can be allocated without failing. */
static int rec_reserve(weft_sched_t *s, size_t n)
{
    size_t freecount = 0;
    for (uint32_t i = s->free_head; i != WEFT__NIL && freecount < n; i = weft__rec(s, i)->link)
        freecount++;
    size_t need = s->nrecs + (n - freecount);
    if (need > (size_t)WEFT__MAX_CHUNKS * WEFT__CHUNK) return -ENOSPC;
    if (s->next_seq + n >= WEFT__MAX_SEQ) return -ENOSPC; /* ids stay unique */
    while (s->nchunks * WEFT__CHUNK < need) {
        /* calloc: untouched pages of a fresh chunk cost no resident memory. */
        struct rec *c = weft__calloc(WEFT__CHUNK, sizeof(struct rec));
        if (!c) return -ENOMEM;
        s->chunks[s->nchunks++] = c;
    }
    return 0;
}

/* Takes a record from the free list or the reserved chunks (call rec_reserve first). */
static uint32_t rec_alloc(weft_sched_t *s)
{
    uint32_t idx;
    if (s->free_head != WEFT__NIL) {
        idx = s->free_head;
        s->free_head = weft__rec(s, idx)->link;
    } else {
        idx = (uint32_t)s->nrecs++;
    }
    struct rec *r = weft__rec(s, idx);
    memset(r, 0, sizeof *r);
    r->id = (s->next_seq++ << WEFT__IDX_BITS) | idx;
    r->dependents = WEFT__NIL;
    r->link = WEFT__NIL;
    r->route = (uint8_t)WEFT_ROUTE_COUNT;
    return idx;
}

static void extra_free(struct extra *x)
{
    if (!x) return;
    if (!x->name_borrowed) weft__free((char *)x->name);
    weft__free(x->msg);
    weft__free(x->cause);
    weft__free(x);
}

/* Returns a record's slot to the free list (its future must already be handed off). */
static void rec_free(weft_sched_t *s, uint32_t idx)
{
    struct rec *r = weft__rec(s, idx);
    if (r->parg) {
        s->parg_bytes -= r->plen;
        weft__free(r->parg);
    }
    extra_free(r->x);
    weft__timer_cancel(s, idx);
    memset(r, 0, sizeof *r);
    r->state = R_FREE;
    r->link = s->free_head;
    s->free_head = idx;
}

static struct extra *extra_of(struct rec *r)
{
    if (!r->x) r->x = weft__calloc(1, sizeof *r->x);
    return r->x;
}

/* Makes sure `n` more edges can be added without failing. */
static int edge_reserve(weft_sched_t *s, size_t n)
{
    if (s->nedges + n <= s->capedges) return 0;
    size_t cap = s->capedges ? s->capedges : 256;
    while (cap < s->nedges + n) cap *= 2;
    struct edge *a = weft__realloc(s->edges, cap * sizeof *a);
    if (!a) return -ENOMEM;
    s->edges = a;
    s->capedges = cap;
    return 0;
}

/* Records that task `id` depends on `dep` (call edge_reserve first). */
static void edge_add(weft_sched_t *s, struct rec *dep, uint64_t id)
{
    uint32_t e;
    if (s->free_edge != WEFT__NIL) {
        e = s->free_edge;
        s->free_edge = s->edges[e].next;
    } else {
        e = (uint32_t)s->nedges++;
    }
    s->edges[e] = (struct edge){id, dep->dependents};
    dep->dependents = e;
}

/* ---- ready queues (struct pq, core-int.h) ------------------------------------------------ */

static int64_t level_key(weft_sched_t *s, const struct pqlevel *l)
{
    return weft__sched_key(l->prio, weft__rec(s, l->head)->t_enq, s->opts.aging_ns);
}

static void heap_set(struct pq *q, size_t pos, uint32_t lvi)
{
    q->heap[pos] = lvi;
    q->lv[lvi].hpos = (uint32_t)pos;
}

static void level_up(weft_sched_t *s, struct pq *q, size_t pos)
{
    uint32_t lvi = q->heap[pos];
    int64_t k = level_key(s, &q->lv[lvi]);
    while (pos > 0) {
        size_t p = (pos - 1) / 2;
        if (level_key(s, &q->lv[q->heap[p]]) >= k) break;
        heap_set(q, pos, q->heap[p]);
        pos = p;
    }
    heap_set(q, pos, lvi);
}

static void level_down(weft_sched_t *s, struct pq *q, size_t pos)
{
    uint32_t lvi = q->heap[pos];
    int64_t k = level_key(s, &q->lv[lvi]);
    for (;;) {
        size_t l = 2 * pos + 1, r = l + 1, m = pos;
        int64_t mk = k;
        if (l < q->nheap) {
            int64_t lk = level_key(s, &q->lv[q->heap[l]]);
            if (lk > mk) {
                m = l;
                mk = lk;
            }
        }
        if (r < q->nheap && level_key(s, &q->lv[q->heap[r]]) > mk) m = r;
        if (m == pos) break;
        heap_set(q, pos, q->heap[m]);
        pos = m;
    }
    heap_set(q, pos, lvi);
}

static bool level_eq(uint64_t val, const void *key, const void *ctx)
{
    const struct pq *q = ctx;
    return q->lv[val].prio == *(const int32_t *)key;
}

/* The level of `prio`, created if needed (-ENOMEM). */
static int pq_level(struct pq *q, int32_t prio)
{
    uint64_t h = weft_hash(&prio, sizeof prio);
    uint64_t *v = weft_htab_find(&q->map, h, level_eq, &prio, q);
    if (v) return (int)*v;
    if (q->nlv == q->caplv) {
        size_t cap = q->caplv ? q->caplv * 2 : 8;
        struct pqlevel *a = weft__realloc(q->lv, cap * sizeof *a);
        uint32_t *hp = a ? weft__realloc(q->heap, cap * sizeof *hp) : NULL;
        if (a) q->lv = a;
        if (!hp) return -ENOMEM;
        q->heap = hp;
        q->caplv = cap;
    }
    bool added;
    v = weft_htab_put(&q->map, h, level_eq, &prio, q, &added);
    if (!v) return -ENOMEM;
    *v = q->nlv;
    q->lv[q->nlv] = (struct pqlevel){prio, WEFT__NIL, WEFT__NIL, WEFT__NIL};
    return (int)q->nlv++;
}

/* Appends record idx (t_enq set, not earlier than the level's tail's) to its level. */
static int pq_push(weft_sched_t *s, struct pq *q, uint32_t idx)
{
    struct rec *r = weft__rec(s, idx);
    int lvi = pq_level(q, r->prio);
    if (lvi < 0) return lvi;
    struct pqlevel *l = &q->lv[lvi];
    r->qnext = WEFT__NIL;
    if (l->tail != WEFT__NIL) {
        weft__rec(s, l->tail)->qnext = idx;
        l->tail = idx;
    } else {
        l->head = l->tail = idx;
        heap_set(q, q->nheap++, (uint32_t)lvi);
        level_up(s, q, q->nheap - 1);
    }
    q->n++;
    return 0;
}

/* Removes and returns the best task, or WEFT__NIL. */
static uint32_t pq_pop(weft_sched_t *s, struct pq *q)
{
    if (q->nheap == 0) return WEFT__NIL;
    uint32_t lvi = q->heap[0];
    struct pqlevel *l = &q->lv[lvi];
    uint32_t idx = l->head;
    l->head = weft__rec(s, idx)->qnext;
    q->n--;
    if (l->head == WEFT__NIL) {
        l->tail = WEFT__NIL;
        l->hpos = WEFT__NIL;
        if (--q->nheap > 0) {
            heap_set(q, 0, q->heap[q->nheap]);
            level_down(s, q, 0);
        }
    } else if (q->nheap > 1) {
        level_down(s, q, 0); /* its key went down */
    }
    return idx;
}

/* Empties the queue without looking at the records (shutdown retires them itself). */
static void pq_clear(struct pq *q)
{
    for (size_t i = 0; i < q->nlv; i++) {
        q->lv[i].head = q->lv[i].tail = WEFT__NIL;
        q->lv[i].hpos = WEFT__NIL;
    }
    q->nheap = 0;
    q->n = 0;
}

static void pq_free(struct pq *q)
{
    weft__free(q->lv);
    weft__free(q->heap);
    weft_htab_free(&q->map);
    memset(q, 0, sizeof *q);
}

/* ---- the todo: what a locked section leaves for after the unlock ------------------------- */

struct todo {
    struct att *launch, *launch_tail; /* via lnext */
    struct att *deliver;              /* results to settle into user futures, via dnext */
    struct att *discard;              /* abandoned attempts' results to free, via dnext */
    struct att *freelist;             /* attempts to free after delivery (launch failed) */
    struct att *loop_cancel;          /* via cnext */
    uint32_t retire;                  /* records whose futures to settle, via rec->link */
    uint32_t prop;                    /* retired records whose dependents to walk, via deps_left */
    int resize[WEFT_ROUTE_COUNT];     /* new sizes, 0: none */
    uint64_t now;                     /* ns since t0, read once per locked section; 0: not yet */
    struct att *spare;                /* a finished attempt's memory for dispatch to reuse */
};

/* The time of this locked section: one clock read serves every decision in it. */
static uint64_t tnow(weft_sched_t *s, struct todo *t)
{
    if (!t->now) t->now = weft_now_ns() - s->t0;
    return t->now;
}

/* Result of an attempt, carried in the attempt itself until delivered. */
struct result {
    int status;
    void *value;
    size_t size;
    weft_free_fn free_fn;
    char *msg; /* weft__malloc'd */
};

/* Extra per-attempt fields kept outside struct att in core-int.h would be cleaner; they live in
 * this wrapper so that the shared header stays small. */
struct attx {
    struct att a;
    struct result res;
    weft_future_t *deliver_to; /* the user future reference handed over at finalize */
    struct result dropped;     /* an abandoned attempt's own result, freed unread */
    char *tmsg;                /* the timeout message of an abandoned attempt */
    struct att *dnext, *cnext;
    weft_loop_work_t lw; /* loop: the post that starts it */
    _Atomic int lrefs;   /* loop: the operation + pending cancel posts; the last frees it */
    _Atomic int lstate;  /* loop: 0 posted, 1 started, 2 done */
    bool deliver_free;   /* free the attempt after delivery (launch failed) */
    bool ends_task;      /* its result is the task's final one */
    bool release_after;  /* after delivering, release the dependents of record a.idx */
};

static struct attx *X(struct att *a)
{
    return (struct attx *)a;
}

static void todo_launch(struct todo *t, struct att *a)
{
    a->lnext = NULL;
    if (t->launch_tail)
        t->launch_tail->lnext = a;
    else
        t->launch = a;
    t->launch_tail = a;
}

/* ---- events ------------------------------------------------------------------------------ */

void weft__sched_event(weft_sched_t *s, const char *fmt, ...)
{
    struct event *e = &s->events[s->nevents % WEFT__EVENTS];
    e->t = now_rel(s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    s->nevents++;
}

/* ---- state changes (all under s->mu) ----------------------------------------------------- */

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

static void retire(weft_sched_t *s, struct todo *t, uint32_t idx, weft_sched_state_t st, int status,
                   char *msg);

/* Deps satisfied (or a retry is due): pick the route and queue it. */
static void make_ready(weft_sched_t *s, struct todo *t, uint32_t idx)
{
    struct rec *r = weft__rec(s, idx);
    weft__class_t *c = &s->classes[r->cls];
    size_t io = s->rq[WEFT_ROUTE_THREADS].n + s->ex[WEFT_ROUTE_THREADS].running;
    uint64_t now = tnow(s, t);
    bool probe;
    weft_sched_route_t route =
        weft__route_pick(&s->rcfg, c, (weft_sched_type_t)r->type, forms_of(r), io, now, &probe);
    if (route == WEFT_ROUTE_NONE) {
        retire(s, t, idx, WEFT_TASK_FAILED, -EINVAL,
               weft__strdup("no executor can run any of the task's forms"));
        return;
    }
    r->route = (uint8_t)route;
    r->probe = probe;
    r->t_enq = now;
    if (pq_push(s, &s->rq[route], idx) < 0) {
        retire(s, t, idx, WEFT_TASK_FAILED, -ENOMEM, NULL);
        return;
    }
    r->state = R_QUEUED;
    info_update(s, r, WEFT_TASK_QUEUED);
}

/* Pops tasks into free executor slots. */
static void dispatch(weft_sched_t *s, struct todo *t)
{
    for (int ri = 0; ri < WEFT_ROUTE_COUNT; ri++) {
        struct exec *e = &s->ex[ri];
        while (e->running < (size_t)e->workers && s->rq[ri].n > 0) {
            struct attx *ax;
            if (t->spare) {
                ax = X(t->spare);
                t->spare = NULL;
                memset(ax, 0, sizeof *ax);
            } else if (!(ax = weft__calloc(1, sizeof *ax))) {
                return; /* the tasks stay queued; a later completion or tick retries */
            }
            uint32_t idx = pq_pop(s, &s->rq[ri]);
            struct rec *r = weft__rec(s, idx);
            struct att *a = &ax->a;
            uint64_t now = tnow(s, t);
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

/* The outcome of finished task `id`, if still remembered: indexed by the id's submission
 * sequence number, so that an outcome is overwritten only by that of a task submitted
 * ring_mask + 1 (>= opts.remember) submissions later. */
static struct ring_ent *ring_of(weft_sched_t *s, weft_sched_id_t id)
{
    return &s->ring[(id >> WEFT__IDX_BITS) & s->ring_mask];
}

static void ring_store(weft_sched_t *s, uint32_t idx, struct rec *r, weft_sched_state_t st,
                       int status, uint64_t now)
{
    weft_sched_id_t id = r->id;
    struct ring_ent *e = ring_of(s, id);
    (void)idx;
    e->id = id;
    e->status = status;
    e->state = (uint8_t)st;
    e->attempts = r->attempts;
    e->route = r->route;
    e->nerr = r->x ? (uint8_t)r->x->nerrors : 0;
    e->err_first = e->nerr ? r->x->errors[0] : 0;
    e->err_last = e->nerr ? r->x->errors[e->nerr - 1] : 0;
    e->t_sub = r->t_sub;
    e->t_fin = now;
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
    ring_store(s, idx, r, st, status, tnow(s, t));
    if (r->x && r->x->info) {
        r->x->info->status = status;
        r->x->info->finished_ns = s->t0 + tnow(s, t);
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
                make_ready(s, t, didx);
            }
            continue;
        }
        retire(s, t, didx, WEFT_TASK_SKIPPED, WEFT_ESKIPPED, weft__strdup(cause));
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

static void drain_props(weft_sched_t *s, struct todo *t)
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
static void retire(weft_sched_t *s, struct todo *t, uint32_t idx, weft_sched_state_t st, int status,
                   char *msg)
{
    struct rec *r = weft__rec(s, idx);
    if (r->state == R_RETIRING || r->state == R_FREE) {
        weft__free(msg);
        return;
    }
    book_final(s, t, idx, r, st, status);
    struct extra *x = extra_of(r);
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
    rec_free(s, idx);
}

/* A task finished through an attempt: deliver the attempt's result to its future. */
static void finish_from_attempt(weft_sched_t *s, struct todo *t, struct att *a, struct rec *r,
                                weft_sched_state_t st, int status)
{
    uint32_t idx = a->idx;
    book_final(s, t, idx, r, st, status);
    struct attx *ax = X(a);
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
    char cause[512];
    if (status < 0) cause_of(s, idx, r, st, status, ax->res.msg, cause, sizeof cause);
    if (ax->deliver_to) {
        /* Deliver, then release: run_todo settles the future, then release_dependents. */
        struct extra *x = status < 0 ? extra_of(r) : NULL;
        if (x) x->cause = weft__strdup(cause);
        ax->release_after = true;
        return;
    }
    if (r->dependents != WEFT__NIL) propagate(s, t, idx, status, cause);
    rec_free(s, idx);
}

/* ---- attempts ---------------------------------------------------------------------------- */

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
    struct extra *x = extra_of(r);
    if (x && x->nerrors < WEFT_SCHED_KEPT_ERRORS) x->errors[x->nerrors++] = status;
    const struct policy *p = r->policy ? &s->policies[r->policy] : NULL;
    bool cancelled =
        status == -ECANCELED && (s->cancel_all || (r->fut && weft_future_cancel_requested(r->fut)));
    uint64_t delay = 0;
    if (p && r->attempts < p->p.attempts && !cancelled && !s->cancel_all &&
        weft__retry_on(p->on, p->p.n_on, status) &&
        (delay = weft_backoff(p->p.backoff_ns, p->p.backoff_max_ns, r->attempts, &s->rng),
         weft__timer_set(s, idx, tnow(s, t) + delay, TIMER_RETRY, r->attempts) == 0)) {
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
            X(a)->dnext = t->discard;
            t->discard = a;
        }
        return;
    }
    msg = compose_failure(r, status, msg);
    weft_sched_state_t st = cancelled ? WEFT_TASK_CANCELLED : WEFT_TASK_FAILED;
    if (a) {
        X(a)->res.msg = msg;
        finish_from_attempt(s, t, a, r, st, status);
    } else {
        retire(s, t, idx, st, status, msg);
    }
}

/* The executor finished attempt `a`; its result is in X(a)->res. */
static void attempt_done_locked(weft_sched_t *s, struct todo *t, struct att *a, uint64_t cpu,
                                uint64_t wall, bool measured)
{
    struct attx *ax = X(a);
    if (a->prev)
        a->prev->next = a->next;
    else
        s->running = a->next;
    if (a->next) a->next->prev = a->prev;
    struct exec *e = &s->ex[a->route];
    e->running--;
    uint64_t run = s->t0 + tnow(s, t) - a->t_start;
    weft_hist_record(&e->run, run);
    /* Busy time inside the current window only (a long task is counted by the tick's live
     * sampling while it runs). */
    uint64_t in_window = a->tick_t ? s->t0 + tnow(s, t) - (s->t0 + a->tick_t) : run;
    e->w_busy += in_window < s->opts.tick_ns ? in_window : s->opts.tick_ns;
    uint32_t fl = atomic_load_explicit(&a->flags, memory_order_relaxed); /* written under mu */
    weft__class_t *c = &s->classes[a->cls];
    c->runs++;
    c->run_wall_ns += run;
    if (measured) {
        e->w_cpu += cpu;
        e->w_wall += wall;
        if ((fl & A_PROBE) && weft__route_sample(&s->rcfg, c, cpu, wall, tnow(s, t)))
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

static void run_todo(weft_sched_t *s, struct todo *t);

#define TODO_INIT                                                                                  \
    {                                                                                              \
        .retire = WEFT__NIL, .prop = WEFT__NIL                                                     \
    }

/* Called by an executor (no lock held) when attempt `a` finished with X(a)->res. The caller
 * frees `a` afterwards. */
static void attempt_finished(weft_sched_t *s, struct att *a, uint64_t cpu, uint64_t wall,
                             bool measured)
{
    struct todo t = TODO_INIT;
    pthread_mutex_lock(&s->mu);
    attempt_done_locked(s, &t, a, cpu, wall, measured);
    drain_props(s, &t);
    dispatch(s, &t);
    pthread_mutex_unlock(&s->mu);
    run_todo(s, &t);
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

/* ---- executors --------------------------------------------------------------------------- */

/* Checks, just before an attempt starts, that its task was not cancelled; starts the user's
 * future on the first attempt. Returns 0 or -ECANCELED with *msg set. */
static int pre_start(struct att *a, char **msg)
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

/* in_sched: the scheduler whose executor or timer thread this is, while it runs that
 * scheduler's tasks, callbacks or timers; weft_sched_destroy and weft_sched_wait_idle refuse to
 * wait for themselves there (-EDEADLK). */

/* The attempt running on this thread, for weft_sched_add_cpu. */
static _Thread_local struct att *cur_att;
static _Thread_local uint64_t cur_extra_cpu;

void weft_sched_add_cpu(weft_ctx_t *ctx, uint64_t cpu_ns)
{
    if (cur_att && ctx && ctx->future == &cur_att->cfut) cur_extra_cpu += cpu_ns;
}

/* Runs a thread attempt on the calling pool worker, with its own context whose cancel token is
 * a->cfut, and stores the result in X(a)->res. Returns the measurements. */
static bool run_on_thread(struct att *a, uint64_t *cpu, uint64_t *wall)
{
    struct attx *ax = X(a);
    /* seq_cst pair with the timer's store of A_ABANDONED then load of started: at least one of
     * the two sees the other, so a timed-out task either never starts or is asked to cancel. */
    if (pthread_getcpuclockid(pthread_self(), &a->cpuclk) != 0) a->cpuclk = (clockid_t)-1;
    atomic_store(&a->started, 1);
    uint32_t fl = atomic_load(&a->flags);
    char *msg = NULL;
    int rc = (fl & A_ABANDONED) ? -ETIMEDOUT : pre_start(a, &msg);
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

static int runner_entry(void *arg, weft_ctx_t *pctx)
{
    struct runner *rn = arg;
    weft_sched_t *s = rn->s;
    struct att *a = rn->first, *spare = NULL;
    (void)pctx;
    weft_sched_t *outer = in_sched;
    in_sched = s;
    while (a) {
        uint64_t cpu = 0, wall = 0;
        bool measured = run_on_thread(a, &cpu, &wall);
        struct todo t = TODO_INIT;
        t.spare = spare; /* dispatch reuses it for the next attempt */
        pthread_mutex_lock(&s->mu);
        attempt_done_locked(s, &t, a, cpu, wall, measured);
        drain_props(s, &t);
        dispatch(s, &t);
        struct att *next = NULL;
        for (struct att **p = &t.launch, *prev = NULL; *p; prev = *p, p = &(*p)->lnext)
            if ((*p)->route == WEFT_ROUTE_THREADS) { /* keep one for this worker */
                next = *p;
                *p = next->lnext;
                if (t.launch_tail == next) t.launch_tail = prev;
                break;
            }
        pthread_mutex_unlock(&s->mu);
        run_todo(s, &t); /* delivers a's result, launches the rest */
        weft__free(t.spare ? X(t.spare) : NULL);
        spare = a; /* delivered: its memory serves the next dispatch */
        a = next;
    }
    weft__free(spare ? X(spare) : NULL);
    in_sched = outer;
    return 0; /* the pool completes and frees the runner's record */
}

static void proc_done(weft_future_t *f, void *arg)
{
    struct att *a = arg;
    struct attx *ax = X(a);
    weft_sched_t *s = a->s;
    size_t n = 0;
    const void *v = weft_future_value(f, &n);
    int st = weft_future_status(f);
    const char *m = weft_future_message(f);
    ax->res.status = st;
    if (st >= 0 && v) {
        /* A copy: the result belongs to the process pool's future. */
        char *copy = weft__malloc(n + 1);
        if (copy) {
            memcpy(copy, v, n);
            copy[n] = '\0';
            ax->res.value = copy;
            ax->res.size = n;
            ax->res.free_fn = weft__free;
        } else {
            ax->res.status = -ENOMEM;
        }
    }
    if (ax->res.status < 0 && m) ax->res.msg = weft__strdup(m);
    attempt_finished(s, a, 0, 0, false);
    weft_future_release(f);
    weft__free(ax);
}

static void loop_start(void *arg, int status);
static void loop_cancel_fn(void *arg, int status);
static void loop_unref(struct att *a);

/* Starts attempt `a` on its executor (no lock held). */
static void launch(weft_sched_t *s, struct todo *t, struct att *a)
{
    struct attx *ax = X(a);
    int rc;
    char *msg = NULL;
    if (a->route != WEFT_ROUTE_THREADS && (rc = pre_start(a, &msg)) < 0) goto failed;
    switch ((weft_sched_route_t)a->route) {
    case WEFT_ROUTE_THREADS: {
        /* A heap record: the pool drops the last reference after completing it, which frees
         * the runner (pool.c DESIGN; future-int.h weft__future_init_heap). */
        struct runner *rn = weft__malloc(sizeof *rn);
        if (!rn) {
            rc = -ENOMEM;
            break;
        }
        rn->s = s;
        rn->first = a;
        weft_task_init(&rn->task, runner_entry, rn);
        weft__future_init_heap(&rn->task.future, offsetof(struct runner, task.future));
        rc = weft_pool_submit_task(s->tp, &rn->task);
        if (rc == 0) return;
        weft_future_release(&rn->task.future); /* never queued: frees it */
        break;
    }
    case WEFT_ROUTE_PROCS: {
        weft_future_t *f = NULL;
        rc = weft_procpool_submit(s->pp, a->pfn_name, a->parg, a->plen, a->timeout_ns, &f);
        if (rc < 0) break;
        pthread_mutex_lock(&s->mu);
        a->xfut = f; /* for cancel requests, read under mu while a is in the running list */
        pthread_mutex_unlock(&s->mu);
        if (weft_future_on_complete(f, proc_done, a) < 0) { /* -ENOMEM: wait for it here */
            weft_future_wait(f, -1);
            proc_done(f, a);
        }
        return;
    }
    case WEFT_ROUTE_LOOP:
        atomic_init(&ax->lrefs, 1);
        atomic_init(&ax->lstate, 0);
        ax->lw.fn = loop_start;
        ax->lw.arg = a;
        rc = weft_loop_post_work(s->loop, &ax->lw);
        if (rc == 0) return;
        break;
    default:
        rc = -EINVAL;
        break;
    }
failed:
    if (a->route == WEFT_ROUTE_THREADS) weft_future_release(a->ufut); /* never ran: dispatch's */
    if (!msg) msg = weft__strdup(weft_strerror(rc));
    ax->res.status = rc;
    ax->res.msg = msg;
    ax->deliver_free = true;
    pthread_mutex_lock(&s->mu);
    attempt_done_locked(s, t, a, 0, 0, false);
    drain_props(s, t);
    dispatch(s, t);
    pthread_mutex_unlock(&s->mu);
    /* Freed after its result is delivered (run_todo's free list). */
    ax->cnext = t->freelist;
    t->freelist = a;
}

static void att_free(struct att *a)
{
    if (a->route == WEFT_ROUTE_LOOP && atomic_load(&X(a)->lrefs) > 0)
        loop_unref(a);
    else
        weft__free(X(a));
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
static void run_todo(weft_sched_t *s, struct todo *t)
{
    weft_sched_t *outer = in_sched;
    in_sched = s;
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
            struct attx *ax = X(a);
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
            weft__future_settle(f, res.status, res.value, res.size, res.free_fn, res.msg);
            weft_future_release(f);
            if (ax->release_after) { /* deliver, then release */
                ax->release_after = false;
                pthread_mutex_lock(&s->mu);
                release_dependents(s, t, a->idx);
                drain_props(s, t);
                dispatch(s, t);
                pthread_mutex_unlock(&s->mu);
            }
            unsettle(s, 1);
            continue;
        }
        if (t->discard) {
            struct att *a = t->discard;
            struct attx *ax = X(a);
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
            drain_props(s, t);
            dispatch(s, t);
            pthread_mutex_unlock(&s->mu);
            unsettle(s, n);
            continue;
        }
        if (t->loop_cancel) {
            struct att *a = t->loop_cancel;
            t->loop_cancel = X(a)->cnext;
            X(a)->cnext = NULL;
            /* The reference taken when it was listed (under mu) keeps it alive until then. */
            if (weft_loop_post(s->loop, loop_cancel_fn, a) < 0) loop_unref(a);
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
        t->freelist = X(a)->cnext;
        att_free(a);
    }
    in_sched = outer;
}

/* ---- the loop route ---------------------------------------------------------------------- */

static void loop_unref(struct att *a)
{
    /* acq_rel: the last holder sees every write of the others before freeing. */
    if (atomic_fetch_sub_explicit(&X(a)->lrefs, 1, memory_order_acq_rel) == 1) weft__free(X(a));
}

void weft_sched_aop_done(weft_sched_aop_t *op, int status, void *value, size_t size,
                         weft_free_fn free_fn)
{
    struct att *a = (struct att *)((char *)op - offsetof(struct att, aop));
    struct attx *ax = X(a);
    atomic_store(&ax->lstate, 2);
    ax->res.status = status;
    ax->res.value = value;
    ax->res.size = size;
    ax->res.free_fn = free_fn;
    attempt_finished(a->s, a, 0, 0, false);
    loop_unref(a);
}

/* On the loop thread: start the async function (unless the attempt already timed out). */
static void loop_start(void *arg, int status)
{
    struct att *a = arg;
    struct attx *ax = X(a);
    a->aop.loop = a->s->loop;
    a->aop.arg = a->aarg;
    int rc = status;
    if (rc == 0 && (atomic_load(&a->flags) & A_ABANDONED)) rc = -ETIMEDOUT;
    if (rc == 0) {
        atomic_store(&ax->lstate, 1);
        weft_sched_t *prev = in_sched;
        in_sched = a->s;
        rc = a->afn(&a->aop);
        in_sched = prev;
        if (rc == 0) return; /* it calls weft_sched_aop_done later */
    }
    atomic_store(&ax->lstate, 2);
    ax->res.status = rc;
    attempt_finished(a->s, a, 0, 0, false);
    loop_unref(a);
}

/* On the loop thread: abort a started operation (timeout or cancel). */
static void loop_cancel_fn(void *arg, int status)
{
    struct att *a = arg;
    if (status == 0 && atomic_load(&X(a)->lstate) == 1 && a->aop.cancel) a->aop.cancel(&a->aop);
    loop_unref(a);
}

void weft_sched_aop_fail(weft_sched_aop_t *op, int status, const char *fmt, ...)
{
    struct att *a = (struct att *)((char *)op - offsetof(struct att, aop));
    if (fmt) {
        weft_buf_t b;
        weft_buf_init(&b, 4096);
        va_list ap;
        va_start(ap, fmt);
        weft_buf_vprintf(&b, fmt, ap);
        va_end(ap);
        size_t n;
        X(a)->res.msg = weft_buf_steal(&b, &n);
        weft_buf_free(&b);
    }
    weft_sched_aop_done(op, status, NULL, 0, NULL);
}

/* ---- dependencies on futures ------------------------------------------------------------- */

static void extdep_cb(weft_future_t *f, void *arg)
{
    struct extdep *d = arg;
    weft_sched_t *s = d->s;
    int st = weft_future_status(f);
    struct todo t = TODO_INIT;
    pthread_mutex_lock(&s->mu);
    if (d->orphan) { /* the task finished first (detach_extdeps) */
        if (--s->ext_inflight == 0) pthread_cond_broadcast(&s->idle_cv);
    } else {
        struct rec *r = weft__rec(s, d->idx);
        for (struct extdep **p = &r->x->ext; *p; p = &(*p)->next)
            if (*p == d) {
                *p = d->next;
                break;
            }
        if (st >= 0) {
            if (--r->deps_left == 0) {
                s->waiting--;
                make_ready(s, &t, d->idx);
            }
        } else {
            const char *m = weft_future_message(f);
            weft_buf_t b;
            weft_buf_init(&b, 1024);
            weft_buf_printf(&b, "skipped: a dependency future failed: %s",
                            m ? m : weft_strerror(st));
            size_t n;
            char *msg = weft_buf_steal(&b, &n);
            weft_buf_free(&b);
            retire(s, &t, d->idx, WEFT_TASK_SKIPPED, WEFT_ESKIPPED, msg);
        }
        drain_props(s, &t);
        dispatch(s, &t);
    }
    pthread_mutex_unlock(&s->mu);
    run_todo(s, &t);
    weft_future_release(f);
    weft__free(d);
}

/* ---- submission -------------------------------------------------------------------------- */

static bool bad_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255) return true;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return true;
    return false;
}

static void why_printf(weft_buf_t *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_printf(weft_buf_t *why, const char *fmt, ...)
{
    if (!why) return;
    va_list ap;
    va_start(ap, fmt);
    weft_buf_vprintf(why, fmt, ap);
    va_end(ap);
}

static unsigned task_forms(const weft_sched_task_t *t)
{
    return (t->fn ? WEFT__FORM_THREAD : 0u) | (t->proc_fn ? WEFT__FORM_PROC : 0u) |
           (t->async_fn ? WEFT__FORM_ASYNC : 0u);
}

static int validate(weft_sched_t *s, const weft_sched_task_t *t, const char *label, weft_buf_t *why)
{
    unsigned forms = task_forms(t);
    if (!forms) {
        why_printf(why, "task %s has no function (fn, proc_fn or async_fn)", label);
        return -EINVAL;
    }
    unsigned avail = (s->rcfg.has[WEFT_ROUTE_THREADS] ? WEFT__FORM_THREAD : 0u) |
                     (s->rcfg.has[WEFT_ROUTE_PROCS] ? WEFT__FORM_PROC : 0u) |
                     (s->rcfg.has[WEFT_ROUTE_LOOP] ? WEFT__FORM_ASYNC : 0u);
    if (!(forms & avail)) {
        why_printf(why, "task %s: no executor of this scheduler runs any of its forms", label);
        return -EINVAL;
    }
    if (t->priority < -MAX_PRIO || t->priority > MAX_PRIO || (unsigned)t->type > WEFT_SCHED_MIXED) {
        why_printf(why, "task %s: priority or type out of range", label);
        return -EINVAL;
    }
    if (t->retry &&
        (t->retry->attempts > 64 || t->retry->n_on > 32 || (t->retry->n_on && !t->retry->on))) {
        why_printf(why, "task %s: retry policy out of range (attempts <= 64, <= 32 codes)", label);
        return -EINVAL;
    }
    if ((t->cls && (strlen(t->cls) == 0 || strlen(t->cls) > 63)) ||
        (t->proc_fn && (strlen(t->proc_fn) == 0 || strlen(t->proc_fn) > 63))) {
        why_printf(why, "task %s: class or process function name empty or over 63 bytes", label);
        return -EINVAL;
    }
    if (t->proc_fn && !weft__pp_lookup(t->proc_fn, &(uint64_t){0})) {
        why_printf(why, "task %s: process function '%s' is not registered (WEFT_PROCPOOL_FN)",
                   label, t->proc_fn);
        return -EINVAL;
    }
    if ((t->ndeps && !t->deps) || (t->ndep_futures && !t->dep_futures) ||
        (t->proc_len && !t->proc_arg) || t->proc_len > UINT32_MAX) {
        why_printf(why, "task %s: inconsistent dependency or argument fields", label);
        return -EINVAL;
    }
    return 0;
}

static void class_name_of(const weft_sched_task_t *t, char *buf, size_t n)
{
    if (t->cls)
        snprintf(buf, n, "%s", t->cls);
    else if (t->proc_fn)
        snprintf(buf, n, "%s", t->proc_fn);
    else if (t->fn)
        snprintf(buf, n, "fn@%p", (void *)(uintptr_t)t->fn);
    else
        snprintf(buf, n, "async@%p", (void *)(uintptr_t)t->async_fn);
}

/* The class of a task. Tasks named by their function (no cls, no proc_fn) hit a small cache
 * keyed by the function pointers, so the common repeated submit does no formatting. */
static int class_of(weft_sched_t *s, const weft_sched_task_t *t)
{
    bool by_fn = !t->cls && !t->proc_fn;
    size_t slot = (((uintptr_t)t->fn ^ (uintptr_t)t->async_fn) >> 4) & 15;
    if (by_fn && s->fn_cache[slot].idx > 0 && s->fn_cache[slot].fn == t->fn &&
        s->fn_cache[slot].afn == t->async_fn)
        return s->fn_cache[slot].idx - 1;
    char cname[64];
    class_name_of(t, cname, sizeof cname);
    int c = intern_class(s, cname);
    if (by_fn && c >= 0) {
        s->fn_cache[slot].fn = t->fn;
        s->fn_cache[slot].afn = t->async_fn;
        s->fn_cache[slot].idx = c + 1;
    }
    return c;
}

int weft__sched_submit_batch(weft_sched_t *s, size_t n, const weft_sched_task_t *tasks,
                             const char *const *names, bool borrow_names,
                             weft_sched_info_t *const *infos, const int *const *local,
                             const size_t *nlocal, const bool *resumed, weft_future_t **futs,
                             weft_sched_id_t *ids, weft_buf_t *why)
{
    if (n == 0) return 0;
    if (n > UINT32_MAX / 2) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (futs) futs[i] = NULL;
        if (ids) ids[i] = 0;
    }
    /* Validate and allocate everything that can fail before touching the scheduler. */
    size_t nedges = 0;
    for (size_t i = 0; i < n; i++) {
        const weft_sched_task_t *t = &tasks[i];
        const char *nm = names && names[i] ? names[i] : NULL;
        char label[300]; /* not zero-filled: that was a tenth of a single submit's cost */
        label[0] = '\0';
        if (why) { /* only messages need it */
            if (nm)
                snprintf(label, sizeof label, "'%s'", nm);
            else
                snprintf(label, sizeof label, "#%zu", i);
        }
        if (nm && bad_name(nm)) {
            why_printf(why, "task %s: a name is 1..255 bytes without control characters", label);
            return -EINVAL;
        }
        int rc = validate(s, t, label, why);
        if (rc < 0) return rc;
        nedges += t->ndeps + (nlocal ? nlocal[i] : 0);
        if (local)
            for (size_t k = 0; k < nlocal[i]; k++)
                if (local[i][k] < 0 || (size_t)local[i][k] >= n || (size_t)local[i][k] == i) {
                    why_printf(why, "task %s: bad dependency index %d", label, local[i][k]);
                    return -EINVAL;
                }
    }
    struct prep {
        weft_future_t *fut;
        void *parg;
        struct extra *x;
        struct extdep *ext;
    } prep_small[4], *prep = prep_small;
    uint32_t ix_small[4], *ix = ix_small;
    uint16_t cls_small[12], *cls = cls_small, *pfn, *pol;
    if (n <= 4) { /* the common single submit allocates nothing here */
        memset(prep_small, 0, n * sizeof prep_small[0]);
    } else {
        prep = weft__calloc(n, sizeof *prep);
        ix = weft__malloc(n * sizeof *ix);
        cls = weft__malloc(n * 3 * sizeof *cls);
        if (!prep || !ix || !cls) {
            weft__free(prep);
            weft__free(ix);
            weft__free(cls);
            return -ENOMEM;
        }
    }
    pfn = cls + n;
    pol = cls + 2 * n;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const weft_sched_task_t *t = &tasks[i];
        struct prep *p = &prep[i];
        if (futs && !(p->fut = weft_future_create())) rc = -ENOMEM;
        if (t->proc_len && !(p->parg = weft__malloc(t->proc_len))) rc = -ENOMEM;
        if (p->parg) memcpy(p->parg, t->proc_arg, t->proc_len);
        const char *nm = names && names[i] ? names[i] : NULL;
        if (nm || infos || t->ndep_futures) {
            if (!(p->x = weft__calloc(1, sizeof *p->x))) {
                rc = -ENOMEM;
                break;
            }
            if (nm) {
                p->x->name_borrowed = borrow_names;
                p->x->name = borrow_names ? nm : weft__strdup(nm);
                if (!p->x->name) rc = -ENOMEM;
            }
            p->x->info = infos ? infos[i] : NULL;
        }
        for (size_t k = 0; k < t->ndep_futures && rc == 0; k++) {
            struct extdep *d = weft__calloc(1, sizeof *d);
            if (!d) {
                rc = -ENOMEM;
                break;
            }
            d->f = weft_future_retain(t->dep_futures[k]);
            d->s = s;
            d->node.cb = extdep_cb;
            d->node.arg = d;
            d->next = p->ext;
            p->ext = d;
        }
    }
    struct todo td = TODO_INIT;
    pthread_mutex_lock(&s->mu);
    if (rc == 0 && s->shutdown) {
        why_printf(why, "the scheduler is shutting down");
        rc = -ESHUTDOWN;
    }
    if (rc == 0) rc = rec_reserve(s, n);
    if (rc == 0) rc = edge_reserve(s, nedges);
    /* Dependency ids: live, or finished and remembered. */
    for (size_t i = 0; i < n && rc == 0; i++)
        for (size_t k = 0; k < tasks[i].ndeps; k++) {
            weft_sched_id_t id = tasks[i].deps[k];
            if (lookup(s, id, true, NULL)) continue;
            if (id != 0 && ring_of(s, id)->id == id) continue;
            why_printf(why,
                       "task %zu depends on task #%" PRIu64 ", which is unknown or finished "
                       "too long ago (depend on its future instead)",
                       i, id);
            rc = -ENOENT;
            break;
        }
    /* Names and policies are interned first; they may stay interned if a later step fails. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        int c = class_of(s, &tasks[i]);
        int pf = 0;
        if (c >= 0 && tasks[i].proc_fn) {
            bool added;
            pf = strtab_intern(&s->pfn_names, tasks[i].proc_fn, &added);
            if (pf >= 0) pf++;
        }
        int po = c >= 0 && pf >= 0 ? intern_policy(s, tasks[i].retry) : 0;
        if (c < 0 || pf < 0 || po < 0) {
            rc = c < 0 ? c : pf < 0 ? pf : po;
            why_printf(why, "too many classes, functions or policies, or out of memory");
            break;
        }
        cls[i] = (uint16_t)c;
        pfn[i] = (uint16_t)pf;
        pol[i] = (uint16_t)po;
    }
    if (rc < 0) {
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < n; i++) {
            weft_future_release(prep[i].fut);
            weft__free(prep[i].parg);
            extra_free(prep[i].x);
            for (struct extdep *d = prep[i].ext, *next; d; d = next) {
                next = d->next;
                weft_future_release(d->f);
                weft__free(d);
            }
        }
        if (prep != prep_small) {
            weft__free(prep);
            weft__free(ix);
            weft__free(cls);
        }
        return rc;
    }
    /* From here on nothing fails. Records first, so that local edges can point at them. */
    uint64_t now = tnow(s, &td);
    for (size_t i = 0; i < n; i++) {
        const weft_sched_task_t *t = &tasks[i];
        uint32_t idx = rec_alloc(s);
        ix[i] = idx;
        struct rec *r = weft__rec(s, idx);
        r->fn = t->fn;
        r->arg = t->arg;
        r->afn = t->async_fn;
        r->aarg = t->async_arg;
        r->parg = prep[i].parg;
        r->plen = (uint32_t)t->proc_len;
        s->parg_bytes += t->proc_len;
        r->fut = prep[i].fut ? weft_future_retain(prep[i].fut) : NULL;
        if (r->fut) s->futures++;
        r->x = prep[i].x;
        r->t_sub = now;
        r->timeout_ns = t->timeout_ns;
        r->prio = t->priority;
        r->cls = cls[i];
        r->pfn = pfn[i];
        r->policy = pol[i];
        r->type = (uint8_t)t->type;
        r->state = R_WAITING;
        r->deps_left = 1; /* guard, dropped below */
        if (r->x && r->x->info) {
            memset(r->x->info, 0, sizeof *r->x->info);
            r->x->info->route = WEFT_ROUTE_NONE;
            r->x->info->status = -EINPROGRESS;
            r->x->info->submitted_ns = s->t0 + now;
        }
        if (futs) futs[i] = prep[i].fut;
        if (ids) ids[i] = r->id;
    }
    s->live += n;
    s->waiting += n;
    s->submitted += n;
    atomic_fetch_add_explicit(&s->unsettled, n, memory_order_relaxed); /* under mu: ordered */
    /* Edges. A dependency that already failed skips the task at once. */
    for (size_t i = 0; i < n; i++) {
        struct rec *r = weft__rec(s, ix[i]);
        const weft_sched_task_t *t = &tasks[i];
        for (size_t k = 0; k < t->ndeps; k++) {
            uint32_t didx;
            struct rec *d = lookup(s, t->deps[k], true, &didx);
            if (d) {
                edge_add(s, d, r->id);
                r->deps_left++;
                continue;
            }
            struct ring_ent *e = ring_of(s, t->deps[k]);
            if (e->status < 0 && r->state == R_WAITING) {
                char msg[200];
                snprintf(msg, sizeof msg, "skipped: dependency #%" PRIu64 " %s: %s", t->deps[k],
                         e->state == WEFT_TASK_SKIPPED ? "was skipped" : "failed",
                         weft_strerror(e->status));
                retire(s, &td, ix[i], WEFT_TASK_SKIPPED, WEFT_ESKIPPED, weft__strdup(msg));
            }
        }
        if (local)
            for (size_t k = 0; k < nlocal[i]; k++) {
                struct rec *d = weft__rec(s, ix[local[i][k]]);
                edge_add(s, d, r->id);
                r->deps_left++;
            }
        for (struct extdep *d = prep[i].ext, *next; d; d = next) {
            next = d->next;
            d->idx = ix[i];
            d->id = r->id;
            if (r->state == R_WAITING && weft__future_add_node(d->f, &d->node) == 0) {
                d->next = r->x->ext;
                r->x->ext = d;
                r->deps_left++;
                continue;
            }
            /* Already DONE (or the task is already skipped): decide now. */
            int st = weft_future_status(d->f);
            if (st < 0 && r->state == R_WAITING) {
                const char *m = weft_future_message(d->f);
                char msg[512];
                snprintf(msg, sizeof msg, "skipped: a dependency future failed: %s",
                         m ? m : weft_strerror(st));
                retire(s, &td, ix[i], WEFT_TASK_SKIPPED, WEFT_ESKIPPED, weft__strdup(msg));
            }
            weft_future_release(d->f);
            weft__free(d);
        }
    }
    /* Resumed tasks finish at once (releasing their dependents' edges), then the guards go. */
    if (resumed)
        for (size_t i = 0; i < n; i++)
            if (resumed[i]) retire(s, &td, ix[i], WEFT_TASK_RESUMED, 0, NULL);
    drain_props(s, &td);
    for (size_t i = 0; i < n; i++) {
        struct rec *r = weft__rec(s, ix[i]);
        if (r->state != R_WAITING) continue;
        if (--r->deps_left == 0) {
            s->waiting--;
            make_ready(s, &td, ix[i]);
        }
    }
    drain_props(s, &td);
    dispatch(s, &td);
    pthread_mutex_unlock(&s->mu);
    if (prep != prep_small) {
        weft__free(prep);
        weft__free(ix);
        weft__free(cls);
    }
    run_todo(s, &td);
    return 0;
}

int weft_sched_submit_many(weft_sched_t *s, const weft_sched_task_t *tasks, size_t n,
                           weft_sched_id_t *ids, weft_future_t **futs)
{
    if (!s || (!tasks && n)) return -EINVAL;
    const char *small[16], **names = n <= 16 ? small : weft__malloc(n * sizeof *names);
    if (!names) return -ENOMEM;
    bool any = false;
    for (size_t i = 0; i < n; i++) any |= (names[i] = tasks[i].name) != NULL;
    int rc = weft__sched_submit_batch(s, n, tasks, any ? names : NULL, false, NULL, NULL, NULL,
                                      NULL, futs, ids, NULL);
    if (names != small) weft__free((void *)names);
    return rc;
}

int weft_sched_submit(weft_sched_t *s, const weft_sched_task_t *t, weft_sched_id_t *id,
                      weft_future_t **out)
{
    const char *name = t ? t->name : NULL;
    if (out) *out = NULL;
    if (id) *id = 0;
    if (!s || !t) return -EINVAL;
    weft_future_t *f = NULL;
    int rc = weft__sched_submit_batch(s, 1, t, &name, false, NULL, NULL, NULL, NULL,
                                      out ? &f : NULL, id, NULL);
    if (rc == 0 && out) *out = f;
    return rc;
}

/* ---- timers and the tick ----------------------------------------------------------------- */

static void timer_fire(weft_sched_t *s, struct todo *t, const struct tmr *tm)
{
    struct rec *r = weft__rec(s, tm->idx);
    if (r->id != tm->id) return; /* cannot happen: a timer goes with its attempt or record */
    if (tm->kind == TIMER_RETRY) {
        if (r->state != R_BACKOFF || r->attempts != tm->no) return;
        s->backoff--;
        make_ready(s, t, tm->idx);
        return;
    }
    if (r->state != R_RUNNING || !r->att || r->att->no != tm->no) return;
    struct att *a = r->att;
    struct exec *e = &s->ex[a->route];
    /* seq_cst: pairs with run_on_thread's store of started then load of flags. */
    atomic_fetch_or(&a->flags, A_ABANDONED);
    if (a->route == WEFT_ROUTE_THREADS) {
        e->stuck++;
        if (atomic_load(&a->started)) weft__future_request_cancel(&a->cfut);
    } else if (a->route == WEFT_ROUTE_LOOP) {
        atomic_fetch_add_explicit(&X(a)->lrefs, 1, memory_order_relaxed); /* held: a is live */
        X(a)->cnext = t->loop_cancel;
        t->loop_cancel = a;
    }
    e->failed++;
    e->timed_out++;
    weft_buf_t b;
    weft_buf_init(&b, 512);
    weft_buf_printf(&b, "timed out after %.3f s on %s", (double)r->timeout_ns / 1e9,
                    weft_sched_route_name((weft_sched_route_t)a->route));
    if (a->route == WEFT_ROUTE_THREADS)
        weft_buf_printf(&b, " (a thread cannot be killed: it was asked to cancel and waited for)");
    size_t n;
    weft__free(X(a)->tmsg);
    X(a)->tmsg = weft_buf_steal(&b, &n);
    weft_buf_free(&b);
    /* The task stays RUNNING with this attempt until the attempt returns (attempt_done_locked
     * then retries or finishes it): a retry never runs beside the abandoned attempt, and DONE
     * means that no attempt holds the task's arguments any more. */
}

/* Cancel requests made on user futures of running tasks reach their executors. */
static void propagate_cancels(weft_sched_t *s, struct todo *t)
{
    for (struct att *a = s->running; a; a = a->next) {
        uint32_t fl = atomic_load_explicit(&a->flags, memory_order_relaxed);
        if (fl & (A_ABANDONED | A_CANCEL_SENT)) continue;
        if (!s->cancel_all && !(a->ufut && weft_future_cancel_requested(a->ufut))) continue;
        if (a->route == WEFT_ROUTE_THREADS) {
            if (!atomic_load(&a->started)) continue; /* next tick */
            weft__future_request_cancel(&a->cfut);
        } else if (a->route == WEFT_ROUTE_PROCS) {
            if (!a->xfut) continue;
            weft__future_request_cancel(a->xfut);
        } else {
            atomic_fetch_add_explicit(&X(a)->lrefs, 1, memory_order_relaxed); /* a is live */
            X(a)->cnext = t->loop_cancel;
            t->loop_cancel = a;
        }
        atomic_fetch_or_explicit(&a->flags, A_CANCEL_SENT, memory_order_relaxed);
    }
}

/* IO tasks that can run on the loop go there once no thread is free: the threshold follows the
 * thread pool's current size (and the user's cap). */
static void loop_threshold(weft_sched_t *s)
{
    size_t w = (size_t)s->ex[WEFT_ROUTE_THREADS].workers;
    size_t cap = (size_t)s->opts.io_loop_threshold;
    s->rcfg.io_loop_threshold = w < cap ? w : cap;
}

static void tick(weft_sched_t *s, struct todo *t, uint64_t now)
{
    uint64_t dt = s->opts.tick_ns;
    for (int ri = 0; ri < WEFT_ROUTE_COUNT; ri++) {
        struct exec *e = &s->ex[ri];
        memmove(&e->tick_done[1], &e->tick_done[0], sizeof e->tick_done - sizeof e->tick_done[0]);
        memmove(&e->tick_t[1], &e->tick_t[0], sizeof e->tick_t - sizeof e->tick_t[0]);
        e->tick_done[0] = e->done + e->failed;
        e->tick_t[0] = now;
    }
    propagate_cancels(s, t);
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
            loop_threshold(s);
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

static void *timer_main(void *arg)
{
    weft_sched_t *s = arg;
    char name[16];
    snprintf(name, sizeof name, "%.10s-tick", s->opts.name);
    pthread_setname_np(pthread_self(), name);
    in_sched = s;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        uint64_t now = now_rel(s);
        const struct tmr *top = weft__timer_top(s);
        struct todo t = TODO_INIT;
        t.now = now;
        if (top && top->due <= now) {
            struct tmr tm;
            weft__timer_pop(s, &tm);
            timer_fire(s, &t, &tm);
        } else if (now >= s->next_tick) {
            s->next_tick = now + s->opts.tick_ns;
            tick(s, &t, now);
        } else {
            uint64_t wake = s->next_tick;
            if (top && top->due < wake) wake = top->due;
            uint64_t abs = s->t0 + wake;
            struct timespec ts = {(time_t)(abs / 1000000000u), (long)(abs % 1000000000u)};
            pthread_cond_timedwait(&s->timer_cv, &s->mu, &ts);
            continue;
        }
        drain_props(s, &t);
        dispatch(s, &t);
        pthread_mutex_unlock(&s->mu);
        run_todo(s, &t);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void sched_free(weft_sched_t *s)
{
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++) pq_free(&s->rq[r]);
    weft__timer_free(s);
    if (s->chunks)
        for (size_t i = 0; i < s->nchunks; i++) {
            for (size_t k = 0; k < WEFT__CHUNK; k++) {
                struct rec *r = &s->chunks[i][k];
                if (r->state != R_FREE && (size_t)i * WEFT__CHUNK + k < s->nrecs) {
                    weft_future_release(r->fut);
                    weft__free(r->parg);
                    extra_free(r->x);
                }
            }
            weft__free(s->chunks[i]);
        }
    weft__free(s->chunks);
    weft__free(s->edges);
    strtab_free(&s->cls_names);
    strtab_free(&s->pfn_names);
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
    loop_threshold(s);
    if (rc == 0) {
        s->next_tick = o.tick_ns;
        rc = -pthread_create(&s->timer, NULL, timer_main, s);
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
        for (int r = 0; r < WEFT_ROUTE_COUNT; r++) pq_clear(&s->rq[r]); /* all retired below */
        for (size_t i = 0; i < s->nrecs; i++) {
            struct rec *r = weft__rec(s, (uint32_t)i);
            if (r->state == R_WAITING || r->state == R_QUEUED || r->state == R_BACKOFF)
                retire(s, &t, (uint32_t)i, WEFT_TASK_CANCELLED, -ECANCELED,
                       weft__strdup("cancelled: the scheduler shut down"));
        }
        drain_props(s, &t);
        propagate_cancels(s, &t);
    }
    pthread_mutex_unlock(&s->mu);
    run_todo(s, &t);
    return 0;
}

int weft_sched_wait_idle(weft_sched_t *s, int64_t timeout_ns)
{
    if (!s) return -EINVAL;
    if (in_sched == s) return -EDEADLK; /* it would wait for the task calling it */
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : weft_now_ns() + (uint64_t)timeout_ns;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    /* Acquire pairs with unsettle's acq_rel decrement. */
    while (atomic_load_explicit(&s->unsettled, memory_order_acquire) > 0) {
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
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int weft_sched_destroy(weft_sched_t *s)
{
    if (!s) return -EINVAL;
    if (in_sched == s) return -EDEADLK; /* from one of its tasks, callbacks or timers */
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
        loop_threshold(s);
        t.resize[WEFT_ROUTE_THREADS] = threads;
    }
    if (threads) s->manual[WEFT_ROUTE_THREADS] = true;
    dispatch(s, &t);
    pthread_mutex_unlock(&s->mu);
    run_todo(s, &t);
    return 0;
}

/* ---- queries ----------------------------------------------------------------------------- */

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
    struct rec *r = lookup(s, id, false, &idx);
    if (r) {
        out->state = rec_public_state(r);
        out->route = r->route < WEFT_ROUTE_COUNT ? (weft_sched_route_t)r->route : WEFT_ROUTE_NONE;
        out->attempts = r->attempts;
        out->status = -EINPROGRESS;
        if (r->x) {
            out->nerrors = r->x->nerrors;
            memcpy(out->errors, r->x->errors, sizeof out->errors);
        }
        out->submitted_ns = s->t0 + r->t_sub;
        if (r->att) out->started_ns = r->att->t_start;
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    struct ring_ent *e = ring_of(s, id);
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
