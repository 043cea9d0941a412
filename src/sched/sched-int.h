/* Internal: the scheduler's pure policies (no threads, no clocks of their own), so that tests
 * can drive them with fake times and injected measurements, and the structures src/sched/ (every
 * .c) share. See src/sched/sched.c for the DESIGN. */
#ifndef WEFT_SCHED_SCHED_INT_H
#define WEFT_SCHED_SCHED_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/sched.h>

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

#endif /* WEFT_SCHED_SCHED_INT_H */
