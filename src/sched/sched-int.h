/* Internal: what the files of src/sched/ share. First the scheduler's pure policies (no threads,
 * no clocks of their own), so that tests can drive them with fake times and injected
 * measurements; then the scheduler's state. Everything in struct weft_sched and the records is
 * protected by weft_sched.mu unless a comment says otherwise; see the DESIGN in tasks.c.
 *
 * Files: sched.c (life cycle, queries), records.c, queue.c, tasks.c, timers.c, tick.c,
 * route-threads.c, route-procs.c, route-loop.c, submit.c, graph.c, policy.c, stats.c. */
#ifndef WEFT_SCHED_SCHED_INT_H
#define WEFT_SCHED_SCHED_INT_H

#include "exec/future-int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <weft/hist.h>
#include <weft/htab.h>
#include <weft/loop.h>
#include <weft/pool.h>
#include <weft/procpool.h>
#include <weft/sched.h>
#include <weft/sys.h>

/* ---- ready queue: an array-backed binary max-heap of (key, idx, aux) ---- */

typedef struct weft__rq_ent {
    int64_t key;
    uint32_t idx, aux;
} weft__rq_ent_t;

typedef struct weft__rq {
    weft__rq_ent_t *a;
    size_t n, cap;
} weft__rq_t;

/* Returns 0 or -ENOMEM. */
int weft__rq_push(weft__rq_t *q, int64_t key, uint32_t idx, uint32_t aux);
/* Removes the entry with the largest key (ties: any) into *out; false when empty. */
bool weft__rq_pop(weft__rq_t *q, weft__rq_ent_t *out);
/* The entry with the largest key, or NULL. */
const weft__rq_ent_t *weft__rq_top(const weft__rq_t *q);
/* Frees the array; the queue may be reused empty. */
void weft__rq_free(weft__rq_t *q);
/* Shrinks the array when at most a quarter of it is used (after a burst drains). */
void weft__rq_trim(weft__rq_t *q);

/* Aging as a time-invariant key: effective priority at time t is prio + (t - enq) / aging, so
 * ordering by it equals ordering by prio * aging - enq, which never changes while queued. The
 * heap therefore never needs re-keying. `enq_ns` is relative to the scheduler's start. */
static inline int64_t weft__sched_key(int prio, uint64_t enq_ns, uint64_t aging_ns)
{
    return (int64_t)prio * (int64_t)aging_ns - (int64_t)enq_ns;
}

/* ---- retries (the backoff itself is weft_backoff, weft/sys.h) ---- */

/* True if `status` is one the policy retries on (n_on == 0: the transient set). */
bool weft__retry_on(const int *on, size_t n_on, int status);

/* ---- routing ---- */

enum { WEFT__FORM_THREAD = 1, WEFT__FORM_PROC = 2, WEFT__FORM_ASYNC = 4 };

/* What the measurements say a class is. */
typedef enum weft__mode {
    WEFT__MODE_UNKNOWN = 0,
    WEFT__MODE_CPU,   /* CPU time / wall time high: compute */
    WEFT__MODE_IO,    /* low: waits */
    WEFT__MODE_MIXED, /* in between */
} weft__mode_t;

typedef struct weft__route_cfg {
    bool has[WEFT_ROUTE_COUNT]; /* executors present */
    bool fixed;                 /* no measurement-based routing */
    double hi_enter, hi_leave;  /* CPU mode: entered at ratio >= hi_enter, left below hi_leave */
    double lo_enter, lo_leave;  /* IO mode: entered at ratio <= lo_enter, left above lo_leave */
    double alpha;               /* EWMA weight of a new sample */
    uint32_t min_samples;       /* samples before the first decision */
    uint32_t probe_every;       /* re-probe on threads every N tasks routed elsewhere... */
    uint64_t probe_ns;          /* ...or when the last sample is older than this */
    size_t io_loop_threshold;   /* IO in flight on threads from which async-capable IO -> loop */
} weft__route_cfg_t;

/* Fills the defaults: 0.6/0.5 and 0.3/0.4 bands, alpha 0.3, 3 samples, probe every 16 tasks or
 * 1 s, loop threshold 64. */
void weft__route_cfg_default(weft__route_cfg_t *cfg);

typedef struct weft__class {
    char name[64]; /* looked up by the scheduler's class table (weft_htab) */
    weft__mode_t mode;
    double ratio; /* EWMA of CPU time / wall time over the samples */
    uint64_t samples;
    uint32_t since_probe;    /* tasks routed away from threads since the last probe */
    uint64_t last_sample_ns; /* clock of the caller */
    weft_sched_route_t last_route;
    weft_sched_type_t last_type;
    uint64_t routed[WEFT_ROUTE_COUNT];
    uint64_t runs, run_wall_ns; /* finished attempts and their wall time, for stats */
    /* why last_route: codes, put in words by weft__route_why */
    uint8_t why_lead, why_tail;
    bool why_reprobe;
    size_t why_n;
} weft__class_t;

/* Initialises a class record. */
void weft__class_init(weft__class_t *c, const char *name);

/* Picks the route for a task of class `c` and `type` that has the forms in `forms`
 * (WEFT__FORM_*), with `io_inflight` IO-capable tasks queued or running on threads, at time
 * `now`. Sets *probe when the task should be measured to (re)classify the class. Updates c's
 * counters and c->why. Returns WEFT_ROUTE_NONE if no executor can run any of the forms. */
weft_sched_route_t weft__route_pick(const weft__route_cfg_t *cfg, weft__class_t *c,
                                    weft_sched_type_t type, unsigned forms, size_t io_inflight,
                                    uint64_t now, bool *probe);

/* Puts the reason for c's last route in words. */
void weft__route_why(const weft__route_cfg_t *cfg, const weft__class_t *c, char *buf, size_t n);

/* Feeds one measurement (CPU time and wall time of a run on a thread) into the class; may change
 * its mode. Returns true if the mode changed. */
bool weft__route_sample(const weft__route_cfg_t *cfg, weft__class_t *c, uint64_t cpu_ns,
                        uint64_t wall_ns, uint64_t now);

const char *weft__mode_name(weft__mode_t m);

/* ---- adaptive sizing ---- */

/* One tick's view of the thread pool. */
typedef struct weft__tsize_in {
    int current, min, max;
    int cpus;         /* weft_cpu_count() */
    size_t queued;    /* tasks waiting in the threads queue */
    size_t running;   /* running, not counting stuck ones */
    size_t stuck;     /* timed out but still running */
    double blocking;  /* 1 - CPU/wall of recent thread tasks, 0..1; < 0: unknown */
    double busy;      /* mean busy threads over the window: lambda * W (Little's law) */
    uint64_t wait_ns; /* mean queue wait of tasks started in the window */
    int low_ticks;    /* consecutive earlier ticks that wanted fewer threads */
} weft__tsize_in_t;

/* Returns the new size (== current: no change) and writes the reason into why[whylen]. Grows at
 * once when work waits; shrinks after 5 ticks of wanting less, at most by half per tick. *low
 * gets the updated low_ticks. */
int weft__size_threads(const weft__tsize_in_t *in, int *low, char *why, size_t whylen);

typedef struct weft__psize_in {
    int current;
    int cpus;       /* weft_cpu_count(): affinity and cgroup quota */
    size_t queued;  /* CPU tasks waiting */
    size_t running; /* running on processes */
    int low_ticks;
} weft__psize_in_t;

/* Process pool: as many workers as CPUs while work waits, fewer (>= 1) after 20 ticks of less
 * demand, and never more than the CPUs usable now. */
int weft__size_procs(const weft__psize_in_t *in, int *low, char *why, size_t whylen);

/* ---- graphs ---- */

/* Finds a topological order of n nodes whose dependencies are given as adjacency lists
 * (deps[i][0..ndeps[i]-1] are the nodes i depends on). Kahn's algorithm, ties in index order.
 * Returns 0 with order[n] filled, WEFT_ECYCLE with one cycle in cycle[]/ *ncycle (each node
 * depends on the next; the last depends on the first), or -ENOMEM. */
int weft__toposort(size_t n, const int *const *deps, const size_t *ndeps, int *order, int *cycle,
                   size_t *ncycle);

/* ---- shared between src/sched files ---- */

/* Measures the calling thread: CPU time, and time spent runnable but waiting for a CPU (from
 * /proc/thread-self/schedstat; 0 where unavailable), both in ns. */
void weft__thread_times(uint64_t *cpu_ns, uint64_t *runq_ns);

/* Timers pending (attempt timeouts and retry backoffs), for tests: 0 once every task finished.
 * Thread safety: any thread (takes the scheduler lock). */
size_t weft__sched_timer_count(weft_sched_t *s);

/* ======== the scheduler's state ======== */

#define WEFT__NIL UINT32_MAX
#define WEFT__CHUNK_BITS 12 /* records per chunk: 4096 */
#define WEFT__CHUNK (1u << WEFT__CHUNK_BITS)
#define WEFT__MAX_CHUNKS 16384 /* 64 M records */
#define WEFT__EVENTS 64        /* sizing/route events kept for stats */
/* A task id is (seq << WEFT__IDX_BITS) | idx: seq counts submissions from 1 (so ids increase
 * and are never 0), idx is the record slot (WEFT__MAX_CHUNKS * WEFT__CHUNK = 2^26 slots). The
 * whole id is the record's generation: a slot's next occupant always has a larger one. */
#define WEFT__IDX_BITS 26
#define WEFT__IDX_MASK ((UINT64_C(1) << WEFT__IDX_BITS) - 1)
#define WEFT__MAX_SEQ (UINT64_C(1) << (64 - WEFT__IDX_BITS))

enum rec_state {
    R_FREE = 0,
    R_WAITING,  /* for dependencies */
    R_QUEUED,   /* in rq[route] */
    R_RUNNING,  /* an attempt is out */
    R_BACKOFF,  /* waiting for a retry timer */
    R_RETIRING, /* finished; its future is settled outside the lock, then the slot is freed */
};

/* Lazily allocated per-task extras: only named tasks, graph tasks and tasks that failed once
 * pay for them. */
struct extra {
    const char *name; /* owned unless name_borrowed (graph tasks: the graph owns it) */
    bool name_borrowed;
    uint8_t final_state;     /* weft_sched_state_t, once retiring */
    char *msg;               /* message for the settle of a retiring task, or the last attempt's */
    weft_sched_info_t *info; /* graph tasks: the graph's record of this task, kept current */
    char *cause; /* a finished task's cause for its dependents, until they are released */
    int errors[WEFT_SCHED_KEPT_ERRORS];
    int nerrors;
    struct extdep *ext; /* external future dependencies still attached */
};

/* A task record: ~128 bytes, in chunks of WEFT__CHUNK, addressed by a 32-bit index. */
struct rec {
    uint64_t id; /* the task id (its full generation); 0 while the slot is free */
    weft_task_fn fn;
    void *arg;
    weft_sched_async_fn afn;
    void *aarg;
    void *parg;         /* copied process-form argument bytes */
    weft_future_t *fut; /* the user-facing future (one reference), or NULL */
    struct att *att;    /* the attempt out, while R_RUNNING */
    struct extra *x;
    uint64_t t_sub; /* submitted, ns since s->t0 */
    uint64_t t_enq; /* entered its queue, ns since s->t0 */
    uint64_t timeout_ns;
    uint32_t plen;
    uint32_t tpos; /* position + 1 in the timer heap (timers.c), 0: no timer */
    union {
        uint32_t deps_left; /* WAITING: unfinished dependencies (+1 guard while submitting) */
        uint32_t qnext;     /* QUEUED: next in its priority level's FIFO */
    };
    uint32_t dependents; /* head of an edge list, or WEFT__NIL */
    uint32_t link;       /* free list / retire list */
    int32_t prio;
    int32_t status; /* final status while R_RETIRING */
    uint16_t cls, policy, pfn;
    uint8_t type, route, state, attempts;
    uint8_t probe;  /* measure the next attempt to (re)classify its class */
    uint8_t walked; /* its dependents were released or skipped: no new edges to it */
};

/* A ready queue: one FIFO per priority level (through rec->qnext) and a max-heap of the
 * non-empty levels keyed by their head's aging key (sched-int.h). Within a level keys only
 * decrease (later enqueue), so the best task overall is the best level's head: push and pop are
 * O(log levels), and a queued task costs no memory beyond its record. */
struct pqlevel {
    int32_t prio;
    uint32_t head, tail; /* WEFT__NIL when empty */
    uint32_t hpos;       /* position in heap, or WEFT__NIL when empty */
};

struct pq {
    struct pqlevel *lv;
    size_t nlv, caplv;
    uint32_t *heap; /* level indexes */
    size_t nheap;
    weft_htab_t map; /* prio -> level index */
    uint32_t last;   /* the level of the last push (valid when nlv > 0) */
    size_t n;        /* tasks queued */
};

struct edge {
    uint64_t id; /* the dependent (its slot is id & WEFT__IDX_MASK) */
    uint32_t next;
};

/* One attempt out on an executor. */
/* A_EARLY: a thread attempt whose success may be delivered by its own thread before the
 * scheduler lock is taken (route-threads.c); A_DELIVERED: it was (then the timer no longer
 * abandons it: the CAS on flags decides between the two). */
enum {
    A_MEASURE = 1,
    A_PROBE = 2,
    A_ABANDONED = 4,
    A_CANCEL_SENT = 8,
    A_EARLY = 16,
    A_DELIVERED = 32
};
struct att {
    weft_future_t cfut;   /* threads: the cancel token its weft_ctx_t points at (never settled) */
    weft_sched_aop_t aop; /* loop */
    struct att *next, *prev; /* the running list */
    struct att *lnext;       /* a todo's launch list */
    weft_sched_t *s;
    uint64_t id;
    uint32_t idx;
    uint8_t route, no;
    uint16_t cls;
    _Atomic uint32_t flags;    /* A_*; A_ABANDONED written under s->mu, read by the executor */
    _Atomic int started;       /* threads: set when run_on_thread begins (pairs with the timer) */
    clockid_t cpuclk;          /* threads: the CPU clock of the thread running it (set before
                                  started; read by the tick for the live blocking ratio) */
    uint64_t tick_cpu, tick_t; /* threads: that clock and the time at the previous tick */
    uint64_t t_start;          /* weft_now_ns() at launch */
    uint64_t timeout_ns;
    /* copied from the record at dispatch, so the executor never reads the record */
    weft_task_fn fn;
    void *arg;
    weft_sched_async_fn afn;
    void *aarg;
    const char *pfn_name;
    const void *parg;
    size_t plen;
    weft_future_t *ufut; /* the user's future: borrowed from the record, except that a thread
                            attempt holds a reference of its own until it has started it */
    weft_future_t *xfut; /* procs: the process pool's future (owned) */
    int loop_state;      /* loop: 0 posted, 1 started, 2 done */
};

/* A dependency on a future: a removable callback node (future-int.h). */
struct extdep {
    weft__cbnode_t node;
    weft_future_t *f; /* one reference */
    weft_sched_t *s;
    uint64_t id;
    uint32_t idx;
    bool orphan; /* the task finished first; the callback only frees the node */
    struct extdep *next;
};

struct policy {
    weft_sched_retry_t p;
    int on[32];
};

struct exec {
    int workers; /* what we feed against: current size (loop: in-flight limit) */
    bool present, adaptive;
    size_t running; /* attempts out, including stuck ones */
    size_t stuck;   /* threads running a task that already timed out */
    uint64_t done, failed, retried, timed_out;
    weft_hist_t wait, run;
    /* window for adaptive sizing, reset every tick */
    uint64_t w_cpu, w_wall, w_busy, w_wait, w_waits, w_meas;
    int low_ticks;
    /* throughput: done counts at the last ticks */
    uint64_t tick_done[12];
    uint64_t tick_t[12];
};

struct event {
    uint64_t t; /* ns since t0 */
    char text[200];
};

/* Interned strings: index -> string, and a weft_htab from string to index. */
struct strtab {
    char **str;
    size_t n, cap;
    weft_htab_t idx;
};

/* A timer (timers.c): a timeout of attempt `no`, or the retry after it. */
enum { TIMER_TIMEOUT = 1, TIMER_RETRY = 2 };
struct tmr {
    uint64_t due; /* ns since t0 */
    uint64_t id;  /* the record's id when set: checked again when it fires */
    uint32_t idx;
    uint8_t kind, no;
};

struct ring_ent {
    uint64_t id;
    int32_t status;
    int32_t err_first, err_last; /* the first and last failed attempts' statuses */
    uint8_t state, attempts, route, nerr;
    uint64_t t_sub, t_fin;
};

struct weft_sched {
    pthread_mutex_t mu;
    pthread_cond_t idle_cv;  /* live dropped to 0, or ext_inflight dropped */
    pthread_cond_t timer_cv; /* the timer thread waits here */
    pthread_t timer;
    bool timer_started, stop, shutdown;

    weft_sched_opts_t opts;
    weft__route_cfg_t rcfg;
    uint64_t t0; /* weft_now_ns() at creation */
    uint64_t rng;

    /* records: a fixed table of chunk pointers (so that a record's address never changes and
     * weft__rec() needs no lock for a record the caller owns), chunks allocated on demand */
    struct rec **chunks;   /* WEFT__MAX_CHUNKS entries */
    size_t nchunks, nrecs; /* chunks allocated; slots handed out so far */
    uint32_t free_head;
    size_t live; /* records not free/retiring */
    size_t waiting, backoff;
    size_t parg_bytes, futures;
    struct edge *edges;
    size_t nedges, capedges;
    uint32_t free_edge;

    struct pq rq[WEFT_ROUTE_COUNT];
    /* timers: a binary min-heap on due, indexed (rec->tpos) so that a timer is removed when
     * its attempt ends or its task retires; at most one per record */
    struct tmr *timers;
    size_t ntimers, captimers;
    uint64_t next_seq; /* the next task's seq (ids) */
    struct exec ex[WEFT_ROUTE_COUNT];
    struct att *running; /* list of attempts out */
    uint64_t next_tick;
    uint32_t measure_ctr;

    /* classes, process function names, policies */
    struct strtab cls_names, pfn_names;
    struct {
        weft_task_fn fn;
        weft_sched_async_fn afn;
        int idx; /* class index + 1; 0 empty */
    } fn_cache[16];
    weft__class_t *classes;
    size_t classes_cap;
    struct policy *policies;
    size_t npolicies;

    /* finished tasks queryable by id */
    struct ring_ent *ring;
    size_t ring_mask;

    /* counters */
    uint64_t submitted, succeeded, failed, skipped, cancelled;
    size_t ext_inflight; /* detached extdep callbacks still to run */
    /* Threads inside weft__run_todo, which may still be launching into an executor after the
     * last task settled: wait_idle (and so destroy) waits for 0 as well as for unsettled == 0.
     * idle_waiters counts wait_idle callers, so that run_todo takes mu to wake them only when
     * someone waits (both seq_cst: one of the two sides sees the other's write). */
    _Atomic size_t todo_running;
    _Atomic unsigned idle_waiters;
    _Atomic size_t unsettled; /* submitted tasks whose futures are not settled yet: wait_idle
                                 waits for 0; the thread that brings it to 0 broadcasts idle_cv
                                 under mu */
    bool cancel_all;          /* shutdown(CANCEL): no more retries */
    bool manual[WEFT_ROUTE_COUNT];

    struct event events[WEFT__EVENTS];
    size_t nevents; /* total ever; the last WEFT__EVENTS are kept */

    /* executors */
    weft_pool_t *tp;
    weft_procpool_t *pp;
    struct weft_loop *loop;
    int threads_min, threads_max;
};

static inline struct rec *weft__rec(weft_sched_t *s, uint32_t idx)
{
    return &s->chunks[idx >> WEFT__CHUNK_BITS][idx & (WEFT__CHUNK - 1)];
}

struct todo {
    struct att *launch, *launch_tail; /* via lnext */
    struct att *deliver;              /* results to settle into user futures, via dnext */
    struct att *discard;              /* abandoned attempts' results to free, via dnext */
    struct att *freelist;             /* attempts to free after delivery (launch failed) */
    struct att *loop_cancel;          /* via cnext */
    weft_future_t *proc_cancel[8];    /* process-pool futures to cancel (force), referenced */
    int nproc_cancel;
    uint32_t retire;              /* records whose futures to settle, via rec->link */
    uint32_t prop;                /* retired records whose dependents to walk, via deps_left */
    int resize[WEFT_ROUTE_COUNT]; /* new sizes, 0: none */
    uint64_t now;                 /* ns since t0, read once per locked section; 0: not yet */
    struct att *spare;            /* a finished attempt's memory for dispatch to reuse */
};

#define TODO_INIT                                                                                  \
    {                                                                                              \
        .retire = WEFT__NIL, .prop = WEFT__NIL                                                     \
    }

/* The time of this locked section: one clock read serves every decision in it. */
static inline uint64_t weft__tnow(weft_sched_t *s, struct todo *t)
{
    if (!t->now) t->now = weft_now_ns() - s->t0;
    return t->now;
}

static inline uint64_t weft__now_rel(weft_sched_t *s)
{
    return weft_now_ns() - s->t0;
}

/* Result of an attempt, carried in the attempt itself until delivered. */
struct result {
    int status;
    void *value;
    size_t size;
    weft_free_fn free_fn;
    char *msg; /* weft__malloc'd */
};

/* An attempt with what only the core and the route adapters use. */
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
    bool settled;        /* delivered early (A_DELIVERED): run_todo only drops deliver_to */
    int early_status;    /* the status delivered early, for weft_sched_info */
};

static inline struct attx *weft__attx(struct att *a)
{
    return (struct attx *)a;
}

/* submit.c, for graph.c: submits n tasks in one locked section. For each task i: names[i] (NULL
 * allowed; borrowed if borrow_names), infos[i] (where the scheduler keeps the task's info
 * current; infos may be NULL), local[i][0..nlocal[i]-1] indexes of
 * other tasks of this batch it depends on, resumed[i] (true: complete at once with 0, state
 * RESUMED). Futures are always created into futs[i]. All or nothing. */
int weft__sched_submit_batch(weft_sched_t *s, size_t n, const weft_sched_task_t *tasks,
                             const char *const *names, bool borrow_names,
                             weft_sched_info_t *const *infos, const int *const *local,
                             const size_t *nlocal, const bool *resumed, weft_future_t **futs,
                             weft_sched_id_t *ids, weft_buf_t *why);

/* Copies infos under the scheduler lock (graph tasks' info is written under it). */
void weft__sched_copy_info(weft_sched_t *s, weft_sched_info_t *dst, const weft_sched_info_t *src);

/* ---- between the scheduler's files (all under s->mu unless said otherwise) ---- */

/* tasks.c: the scheduler whose task, callback or timer this thread runs now (NULL: none). */
extern _Thread_local weft_sched_t *weft__in_sched;

/* records.c */
struct rec *weft__rec_lookup(weft_sched_t *s, weft_sched_id_t id, bool unreleased,
                             uint32_t *idx_out);
int weft__rec_reserve(weft_sched_t *s, size_t n);
uint32_t weft__rec_alloc(weft_sched_t *s);
void weft__rec_free(weft_sched_t *s, uint32_t idx);
void weft__extra_free(struct extra *x);
struct extra *weft__extra_of(struct rec *r);
int weft__edge_reserve(weft_sched_t *s, size_t n);
void weft__edge_add(weft_sched_t *s, struct rec *dep, uint64_t id);
struct ring_ent *weft__ring_of(weft_sched_t *s, weft_sched_id_t id);
void weft__ring_store(weft_sched_t *s, uint32_t idx, struct rec *r, weft_sched_state_t st,
                      int status, uint64_t now);

/* queue.c */
int weft__pq_push(weft_sched_t *s, struct pq *q, uint32_t idx);
uint32_t weft__pq_pop(weft_sched_t *s, struct pq *q);
void weft__pq_clear(struct pq *q);
void weft__pq_free(struct pq *q);

/* tasks.c */
void weft__make_ready(weft_sched_t *s, struct todo *t, uint32_t idx);
void weft__dispatch(weft_sched_t *s, struct todo *t);
void weft__retire(weft_sched_t *s, struct todo *t, uint32_t idx, weft_sched_state_t st, int status,
                  char *msg);
void weft__drain_props(weft_sched_t *s, struct todo *t);
void weft__attempt_done_locked(weft_sched_t *s, struct todo *t, struct att *a, uint64_t cpu,
                               uint64_t wall, bool measured);
/* No lock held: an executor reports that attempt `a` finished with its result in attx.res. */
void weft__attempt_finished(weft_sched_t *s, struct att *a, uint64_t cpu, uint64_t wall,
                            bool measured);
/* No lock held: carries out a todo (see tasks.c DESIGN). */
void weft__run_todo(weft_sched_t *s, struct todo *t);
/* No lock held: checks, just before an attempt starts, that its task was not cancelled. */
int weft__pre_start(struct att *a, char **msg);

/* route-*.c, no lock held: start attempt `a`; 0 or a negative errno (then nothing started). */
int weft__threads_launch(weft_sched_t *s, struct att *a);
int weft__procs_launch(weft_sched_t *s, struct att *a);
int weft__loop_launch(weft_sched_t *s, struct att *a);
/* route-loop.c, no lock held: runs a's cancel hook on the loop thread; drops a reference. */
void weft__loop_cancel_post(weft_sched_t *s, struct att *a);
void weft__loop_unref(struct att *a);

/* tick.c */
void weft__tick(weft_sched_t *s, struct todo *t, uint64_t now);
void weft__propagate_cancels(weft_sched_t *s, struct todo *t);
void weft__loop_threshold(weft_sched_t *s);

/* timers.c: the scheduler thread. */
void *weft__timer_main(void *arg);

/* submit.c */
void weft__strtab_free(struct strtab *t);

/* timers.c, under s->mu: sets record idx's timer (replacing any), removes it, and the earliest
 * one. weft__timer_set returns 0 or -ENOMEM (then the record has no timer). */
int weft__timer_set(weft_sched_t *s, uint32_t idx, uint64_t due, unsigned kind, unsigned no);
void weft__timer_cancel(weft_sched_t *s, uint32_t idx);
const struct tmr *weft__timer_top(const weft_sched_t *s);
void weft__timer_pop(weft_sched_t *s, struct tmr *out);
void weft__timer_trim(weft_sched_t *s);
void weft__timer_free(weft_sched_t *s);

/* Appends an event (under s->mu). */
void weft__sched_event(weft_sched_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* WEFT_SCHED_SCHED_INT_H */
