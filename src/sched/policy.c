/* The scheduler's pure policies (src/sched/sched-int.h): the ready queue, retry backoff, routing
 * by measurement, adaptive sizing and topological ordering. Nothing here takes a lock, reads a
 * clock or starts a thread; the caller passes the time in, so tests can replay any history. */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/sys.h>

/* ---- ready queue ------------------------------------------------------------------------- */

static void swap(weft__rq_ent_t *a, weft__rq_ent_t *b)
{
    weft__rq_ent_t t = *a;
    *a = *b;
    *b = t;
}

int weft__rq_push(weft__rq_t *q, int64_t key, uint32_t idx, uint32_t aux)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        weft__rq_ent_t *a = weft__realloc(q->a, cap * sizeof *a);
        if (!a) return -ENOMEM;
        q->a = a;
        q->cap = cap;
    }
    size_t i = q->n++;
    q->a[i] = (weft__rq_ent_t){key, idx, aux};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (q->a[p].key >= q->a[i].key) break;
        swap(&q->a[p], &q->a[i]);
        i = p;
    }
    return 0;
}

bool weft__rq_pop(weft__rq_t *q, weft__rq_ent_t *out)
{
    if (q->n == 0) return false;
    *out = q->a[0];
    q->a[0] = q->a[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->n && q->a[l].key > q->a[m].key) m = l;
        if (r < q->n && q->a[r].key > q->a[m].key) m = r;
        if (m == i) break;
        swap(&q->a[m], &q->a[i]);
        i = m;
    }
    return true;
}

const weft__rq_ent_t *weft__rq_top(const weft__rq_t *q)
{
    return q->n ? &q->a[0] : NULL;
}

void weft__rq_free(weft__rq_t *q)
{
    weft__free(q->a);
    q->a = NULL;
    q->n = q->cap = 0;
}

void weft__rq_trim(weft__rq_t *q)
{
    if (q->cap <= 256 || q->n > q->cap / 4) return;
    size_t cap = q->cap / 2;
    weft__rq_ent_t *a = weft__realloc(q->a, cap * sizeof *a);
    if (!a) return; /* keeping the larger array is fine */
    q->a = a;
    q->cap = cap;
}

/* ---- retries ----------------------------------------------------------------------------- */

bool weft__retry_on(const int *on, size_t n_on, int status)
{
    static const int transient[] = {-ETIMEDOUT,  WEFT_ECRASHED, -EAGAIN, -EIO,
                                    -ECONNRESET, -ECONNREFUSED, -EPIPE,  WEFT_EHTTP};
    if (status >= 0) return false;
    if (n_on == 0) {
        on = transient;
        n_on = sizeof transient / sizeof transient[0];
    }
    for (size_t i = 0; i < n_on; i++)
        if (on[i] == status) return true;
    return false;
}

/* ---- routing ----------------------------------------------------------------------------- */

void weft__route_cfg_default(weft__route_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++) cfg->has[r] = true;
    cfg->hi_enter = 0.6;
    cfg->hi_leave = 0.5;
    cfg->lo_enter = 0.3;
    cfg->lo_leave = 0.4;
    cfg->alpha = 0.3;
    cfg->min_samples = 3;
    cfg->probe_every = 16;
    cfg->probe_ns = 1000000000u;
    cfg->io_loop_threshold = 64;
}

void weft__class_init(weft__class_t *c, const char *name)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->last_route = WEFT_ROUTE_NONE;
}

const char *weft__mode_name(weft__mode_t m)
{
    switch (m) {
    case WEFT__MODE_CPU:
        return "cpu-bound";
    case WEFT__MODE_IO:
        return "io-bound";
    case WEFT__MODE_MIXED:
        return "mixed";
    default:
        return "unmeasured";
    }
}

static unsigned route_form(weft_sched_route_t r)
{
    return r == WEFT_ROUTE_PROCS     ? WEFT__FORM_PROC
           : r == WEFT_ROUTE_THREADS ? WEFT__FORM_THREAD
                                     : WEFT__FORM_ASYNC;
}

/* Why a route was picked, kept as codes and formatted only when asked (weft__route_why): picking
 * is on the hot path of every task. */
enum {
    TAIL_PROCS_CPU = 1,  /* processes, one per usable CPU */
    TAIL_THREADS_NOPROC, /* threads (no process form) */
    TAIL_LOOP_ONLY,      /* the event loop (its only form) */
    TAIL_LOOP_MANY,      /* n in flight on threads >= threshold */
    TAIL_THREADS_FEW,    /* n in flight on threads < threshold */
    TAIL_THREADS_NOASYNC,
    TAIL_PROCS_ONLY,
    TAIL_THREADS_MIXED,
    TAIL_THREADS_PLAIN,
    TAIL_NOEXEC,
};
enum { LEAD_CPU = 1, LEAD_IO, LEAD_FIXED, LEAD_NOTHREAD, LEAD_MEASURING, LEAD_MEASURED };

/* IO: threads while few are in flight, the loop when many are and an async form exists. */
static weft_sched_route_t io_route(const weft__route_cfg_t *cfg, unsigned avail, size_t io_inflight,
                                   weft__class_t *c)
{
    if ((avail & WEFT__FORM_ASYNC) && (avail & WEFT__FORM_THREAD)) {
        c->why_n = io_inflight;
        if (io_inflight >= cfg->io_loop_threshold) {
            c->why_tail = TAIL_LOOP_MANY;
            return WEFT_ROUTE_LOOP;
        }
        c->why_tail = TAIL_THREADS_FEW;
        return WEFT_ROUTE_THREADS;
    }
    if (avail & WEFT__FORM_THREAD) {
        c->why_tail = TAIL_THREADS_NOASYNC;
        return WEFT_ROUTE_THREADS;
    }
    if (avail & WEFT__FORM_ASYNC) {
        c->why_tail = TAIL_LOOP_ONLY;
        return WEFT_ROUTE_LOOP;
    }
    c->why_tail = TAIL_PROCS_ONLY;
    return WEFT_ROUTE_PROCS;
}

static weft_sched_route_t cpu_route(unsigned avail, weft__class_t *c)
{
    if (avail & WEFT__FORM_PROC) {
        c->why_tail = TAIL_PROCS_CPU;
        return WEFT_ROUTE_PROCS;
    }
    if (avail & WEFT__FORM_THREAD) {
        c->why_tail = TAIL_THREADS_NOPROC;
        return WEFT_ROUTE_THREADS;
    }
    c->why_tail = TAIL_LOOP_ONLY;
    return WEFT_ROUTE_LOOP;
}

/* A probe when the class was not measured for probe_every of its tasks or for probe_ns. */
static bool probe_due(const weft__route_cfg_t *cfg, weft__class_t *c, uint64_t now)
{
    c->since_probe++;
    if (c->since_probe < cfg->probe_every && now - c->last_sample_ns < cfg->probe_ns) return false;
    c->since_probe = 0;
    return true;
}

weft_sched_route_t weft__route_pick(const weft__route_cfg_t *cfg, weft__class_t *c,
                                    weft_sched_type_t type, unsigned forms, size_t io_inflight,
                                    uint64_t now, bool *probe)
{
    *probe = false;
    unsigned avail = 0;
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++)
        if (cfg->has[r]) avail |= route_form((weft_sched_route_t)r) & forms;
    weft_sched_route_t r;
    c->last_type = type;
    c->why_reprobe = false;
    if (avail == 0) {
        c->why_lead = 0;
        c->why_tail = TAIL_NOEXEC;
        return WEFT_ROUTE_NONE;
    }
    switch (type) {
    case WEFT_SCHED_CPU:
        c->why_lead = LEAD_CPU;
        r = cpu_route(avail, c);
        break;
    case WEFT_SCHED_IO:
        c->why_lead = LEAD_IO;
        r = io_route(cfg, avail, io_inflight, c);
        break;
    default:
        if (cfg->fixed || !(avail & WEFT__FORM_THREAD)) {
            c->why_lead = cfg->fixed ? LEAD_FIXED : LEAD_NOTHREAD;
            if (avail & WEFT__FORM_THREAD) {
                c->why_tail = TAIL_THREADS_PLAIN;
                r = WEFT_ROUTE_THREADS;
            } else {
                r = cpu_route(avail, c);
            }
            break;
        }
        if (c->mode == WEFT__MODE_UNKNOWN) {
            /* Every task is measured until the class is classified. */
            *probe = true;
            c->why_lead = LEAD_MEASURING;
            c->why_tail = TAIL_THREADS_PLAIN;
            r = WEFT_ROUTE_THREADS;
            break;
        }
        c->why_lead = LEAD_MEASURED;
        if (c->mode == WEFT__MODE_CPU)
            r = cpu_route(avail, c);
        else if (c->mode == WEFT__MODE_IO)
            r = io_route(cfg, avail, io_inflight, c);
        else {
            c->why_tail = TAIL_THREADS_MIXED;
            r = WEFT_ROUTE_THREADS;
        }
        /* Re-probe: the class may have changed, and only a run on a thread can be measured.
         * Tasks on threads are measured now and then too. */
        if (probe_due(cfg, c, now)) {
            *probe = true;
            c->why_reprobe = r != WEFT_ROUTE_THREADS;
            r = WEFT_ROUTE_THREADS;
        }
        break;
    }
    c->last_route = r;
    c->routed[r]++;
    return r;
}

void weft__route_why(const weft__route_cfg_t *cfg, const weft__class_t *c, char *buf, size_t n)
{
    char lead[160];
    const char *tn = c->last_type == WEFT_SCHED_MIXED ? "MIXED" : "AUTO";
    switch (c->why_lead) {
    case LEAD_CPU:
        snprintf(lead, sizeof lead, "CPU task");
        break;
    case LEAD_IO:
        snprintf(lead, sizeof lead, "IO task");
        break;
    case LEAD_FIXED:
        snprintf(lead, sizeof lead, "%s task, fixed routes", tn);
        break;
    case LEAD_NOTHREAD:
        snprintf(lead, sizeof lead, "%s task, no thread form to measure on", tn);
        break;
    case LEAD_MEASURING:
        snprintf(lead, sizeof lead,
                 "%s task, measuring CPU/wall on threads (%" PRIu64 " of %u samples)", tn,
                 c->samples, cfg->min_samples);
        break;
    case LEAD_MEASURED:
        snprintf(lead, sizeof lead, "%s task measured %s (CPU/wall %.2f over %" PRIu64 " runs)", tn,
                 weft__mode_name(c->mode), c->ratio, c->samples);
        break;
    default:
        lead[0] = '\0';
        break;
    }
    const char *sep = lead[0] ? ": " : "";
    switch (c->why_tail) {
    case TAIL_PROCS_CPU:
        snprintf(buf, n, "%s%sprocesses, one per usable CPU", lead, sep);
        break;
    case TAIL_THREADS_NOPROC:
        snprintf(buf, n, "%s%sthreads (no process form)", lead, sep);
        break;
    case TAIL_LOOP_ONLY:
        snprintf(buf, n, "%s%sthe event loop (its only form)", lead, sep);
        break;
    case TAIL_LOOP_MANY:
        snprintf(buf, n, "%s%s%zu in flight on threads >= %zu, so the event loop", lead, sep,
                 c->why_n, cfg->io_loop_threshold);
        break;
    case TAIL_THREADS_FEW:
        snprintf(buf, n, "%s%s%zu in flight on threads < %zu, so threads", lead, sep, c->why_n,
                 cfg->io_loop_threshold);
        break;
    case TAIL_THREADS_NOASYNC:
        snprintf(buf, n, "%s%sthreads (no async form for the loop)", lead, sep);
        break;
    case TAIL_PROCS_ONLY:
        snprintf(buf, n, "%s%sprocesses (its only form)", lead, sep);
        break;
    case TAIL_THREADS_MIXED:
        snprintf(buf, n, "%s%sthreads, which run computation and blocking I/O", lead, sep);
        break;
    case TAIL_THREADS_PLAIN:
        snprintf(buf, n, "%s%sthreads", lead, sep);
        break;
    case TAIL_NOEXEC:
        snprintf(buf, n, "no executor for any of the task's forms");
        break;
    default:
        snprintf(buf, n, "(no task routed yet)");
        break;
    }
    if (c->why_reprobe) {
        size_t len = strlen(buf);
        if (len < n) snprintf(buf + len, n - len, "; this one re-probes on threads");
    }
}

bool weft__route_sample(const weft__route_cfg_t *cfg, weft__class_t *c, uint64_t cpu_ns,
                        uint64_t wall_ns, uint64_t now)
{
    double x = wall_ns ? (double)cpu_ns / (double)wall_ns : 1.0;
    if (x > 1) x = 1; /* clock granularity */
    c->ratio = c->samples == 0 ? x : cfg->alpha * x + (1 - cfg->alpha) * c->ratio;
    c->samples++;
    c->last_sample_ns = now;
    c->since_probe = 0;
    weft__mode_t m = c->mode, old = m;
    double r = c->ratio;
    switch (m) {
    case WEFT__MODE_UNKNOWN:
        if (c->samples >= cfg->min_samples)
            m = r >= cfg->hi_enter   ? WEFT__MODE_CPU
                : r <= cfg->lo_enter ? WEFT__MODE_IO
                                     : WEFT__MODE_MIXED;
        break;
    case WEFT__MODE_CPU:
        if (r < cfg->hi_leave) m = r <= cfg->lo_enter ? WEFT__MODE_IO : WEFT__MODE_MIXED;
        break;
    case WEFT__MODE_IO:
        if (r > cfg->lo_leave) m = r >= cfg->hi_enter ? WEFT__MODE_CPU : WEFT__MODE_MIXED;
        break;
    case WEFT__MODE_MIXED:
        if (r >= cfg->hi_enter)
            m = WEFT__MODE_CPU;
        else if (r <= cfg->lo_enter)
            m = WEFT__MODE_IO;
        break;
    }
    c->mode = m;
    return m != old;
}

/* ---- adaptive sizing --------------------------------------------------------------------- */

int weft__size_threads(const weft__tsize_in_t *in, int *low, char *why, size_t whylen)
{
    int cur = in->current;
    why[0] = '\0';
    *low = in->low_ticks;
    /* How many threads the CPUs can keep busy at this blocking ratio (each thread computes
     * 1 - b of the time), plus those stuck on timed-out tasks. */
    double b = in->blocking < 0 ? 0.5 : in->blocking;
    if (b > 0.98) b = 0.98;
    double useful = ceil((double)in->cpus / (1 - b)) + (double)in->stuck;
    /* Little's law: the work in the system (queued + running) is what the threads must hold. */
    double demand = (double)(in->queued + in->running + in->stuck);
    double want = demand < useful ? demand : useful;
    int target = (int)want;
    if (target < in->min) target = in->min;
    if (target > in->max) target = in->max;
    if (target > cur && in->queued > 0) {
        *low = 0;
        snprintf(why, whylen,
                 "%zu queued (mean wait %.1f ms), blocking ratio %.2f: up to %.0f threads keep "
                 "%d CPUs busy",
                 in->queued, (double)in->wait_ns / 1e6, b, useful, in->cpus);
        return target;
    }
    /* Shrink: only the threads busy on average (lambda * W), with a margin, are needed. */
    int need = (int)ceil(in->busy * 1.25) + (int)in->stuck;
    if (need < (int)(in->running + in->stuck)) need = (int)(in->running + in->stuck);
    if (need < in->min) need = in->min;
    if (in->queued == 0 && need < cur) {
        if (++*low < 5) return cur;
        int half = cur - (cur + 1) / 2;
        if (need < half) need = half;
        if (need < in->min) need = in->min;
        *low = 0;
        snprintf(why, whylen,
                 "idle: %.1f threads busy on average (Little's law: rate x time), %zu running",
                 in->busy, in->running);
        return need;
    }
    *low = 0;
    return cur;
}

int weft__size_procs(const weft__psize_in_t *in, int *low, char *why, size_t whylen)
{
    int cur = in->current, cpus = in->cpus < 1 ? 1 : in->cpus;
    why[0] = '\0';
    *low = in->low_ticks;
    if (cur > cpus) {
        *low = 0;
        snprintf(why, whylen, "only %d CPU%s usable now (affinity or cgroup quota)", cpus,
                 cpus == 1 ? "" : "s");
        return cpus;
    }
    size_t demand = in->queued + in->running;
    if (demand > (size_t)cur && cur < cpus) {
        *low = 0;
        int t = demand < (size_t)cpus ? (int)demand : cpus;
        snprintf(why, whylen, "%zu CPU tasks waiting or running, %d CPUs usable", demand, cpus);
        return t;
    }
    if (demand < (size_t)cur && cur > 1) {
        if (++*low < 20) return cur;
        *low = 0;
        int t = demand > 0 ? (int)demand : 1;
        snprintf(why, whylen, "only %zu CPU tasks for 2 s", demand);
        return t;
    }
    *low = 0;
    return cur;
}

/* ---- graphs ------------------------------------------------------------------------------ */

int weft__toposort(size_t n, const int *const *deps, const size_t *ndeps, int *order, int *cycle,
                   size_t *ncycle)
{
    if (ncycle) *ncycle = 0;
    if (n == 0) return 0;
    /* indegree here = number of unfinished dependencies; dependents found by scanning is
     * O(n * e); build reverse lists instead. */
    size_t edges = 0;
    for (size_t i = 0; i < n; i++) edges += ndeps[i];
    size_t *left = weft__calloc(n, sizeof *left);
    size_t *rstart = weft__calloc(n + 1, sizeof *rstart);
    int *radj = weft__malloc((edges ? edges : 1) * sizeof *radj);
    weft__rq_t ready = {0};
    int rc = 0;
    if (!left || !rstart || !radj) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        left[i] = ndeps[i];
        for (size_t k = 0; k < ndeps[i]; k++) rstart[deps[i][k] + 1]++;
    }
    for (size_t i = 0; i < n; i++) rstart[i + 1] += rstart[i];
    {
        size_t *fill = weft__calloc(n, sizeof *fill);
        if (!fill) {
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < ndeps[i]; k++) {
                int d = deps[i][k];
                radj[rstart[d] + fill[d]++] = (int)i;
            }
        weft__free(fill);
    }
    /* Kahn's algorithm; the heap (key = -index) keeps ties in order of addition. */
    for (size_t i = 0; i < n; i++)
        if (left[i] == 0 && weft__rq_push(&ready, -(int64_t)i, (uint32_t)i, 0) < 0) {
            rc = -ENOMEM;
            goto out;
        }
    size_t done = 0;
    weft__rq_ent_t e;
    while (weft__rq_pop(&ready, &e)) {
        order[done++] = (int)e.idx;
        for (size_t k = rstart[e.idx]; k < rstart[e.idx + 1]; k++) {
            int d = radj[k];
            if (--left[d] == 0 && weft__rq_push(&ready, -(int64_t)d, (uint32_t)d, 0) < 0) {
                rc = -ENOMEM;
                goto out;
            }
        }
    }
    if (done < n) {
        rc = WEFT_ECYCLE;
        /* Every node left has an unfinished dependency that is also left: follow those from
         * the lowest such node until a node repeats; the repeat closes a cycle. */
        size_t start = 0;
        while (left[start] == 0) start++;
        size_t *seen = left; /* reuse: 0 = finished; mark visit step in a separate array */
        size_t *step = weft__calloc(n, sizeof *step);
        if (!step) {
            rc = -ENOMEM;
            goto out;
        }
        size_t cur = start, s = 1;
        while (!step[cur]) {
            step[cur] = s++;
            size_t next = cur;
            for (size_t k = 0; k < ndeps[cur]; k++)
                if (seen[deps[cur][k]]) {
                    next = (size_t)deps[cur][k];
                    break;
                }
            cur = next;
        }
        /* cur is on the cycle; walk it once more to list it. */
        size_t len = 0, c0 = cur;
        do {
            if (cycle) cycle[len] = (int)cur;
            len++;
            for (size_t k = 0; k < ndeps[cur]; k++)
                if (seen[deps[cur][k]]) {
                    cur = (size_t)deps[cur][k];
                    break;
                }
        } while (cur != c0 && len <= n);
        if (ncycle) *ncycle = len;
        weft__free(step);
    }
out:
    weft__free(left);
    weft__free(rstart);
    weft__free(radj);
    weft__rq_free(&ready);
    return rc;
}

/* ---- measurement ------------------------------------------------------------------------- */

void weft__thread_times(uint64_t *cpu_ns, uint64_t *runq_ns)
{
    *cpu_ns = weft_thread_cpu_ns();
    *runq_ns = 0;
    /* "on-CPU ns, runqueue-wait ns, timeslices" (Documentation/scheduler/sched-stats.rst). */
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[96];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = '\0';
    unsigned long long run = 0, wait = 0;
    if (sscanf(buf, "%llu %llu", &run, &wait) == 2) *runq_ns = wait;
}
