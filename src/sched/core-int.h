/* Internal: the scheduler's state, shared by src/sched/sched.c (core), graph.c and stats.c.
 * Everything here is protected by weft_sched.mu unless a comment says otherwise; see the DESIGN
 * comment in sched.c. */
#ifndef WEFT_SCHED_CORE_INT_H
#define WEFT_SCHED_CORE_INT_H

#include "exec/future-int.h"
#include "sched/sched-int.h"

#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <weft/hist.h>
#include <weft/htab.h>
#include <weft/pool.h>
#include <weft/procpool.h>
#include <weft/sched.h>

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
    size_t n;        /* tasks queued */
};

struct edge {
    uint64_t id; /* the dependent (its slot is id & WEFT__IDX_MASK) */
    uint32_t next;
};

/* One attempt out on an executor. */
enum { A_MEASURE = 1, A_PROBE = 2, A_ABANDONED = 4, A_CANCEL_SENT = 8 };
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
    size_t ext_inflight;      /* detached extdep callbacks still to run */
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

/* sched.c, for graph.c: submits n tasks in one locked section. For each task i: names[i] (NULL
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

#endif /* WEFT_SCHED_CORE_INT_H */
