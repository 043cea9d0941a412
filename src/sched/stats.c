/* The scheduler's monitoring (weft/sched.h): a snapshot struct, and the same as text and JSON
 * with every class's route and why, and the recent sizing and routing events. Reads the
 * scheduler's state under its mutex (sched-int.h) and formats after unlocking. */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <weft/sys.h>

static double per_s(const struct exec *e)
{
    /* The newest tick against the oldest one within about a second. */
    int k = 0;
    for (int i = 1; i < 12; i++) {
        if (!e->tick_t[i]) break;
        k = i;
        if (e->tick_t[0] - e->tick_t[i] >= 1000000000u) break;
    }
    if (k == 0 || e->tick_t[0] <= e->tick_t[k]) return 0;
    return (double)(e->tick_done[0] - e->tick_done[k]) * 1e9 /
           (double)(e->tick_t[0] - e->tick_t[k]);
}

static size_t task_bytes(const weft_sched_t *s)
{
    size_t b = s->nchunks * WEFT__CHUNK * sizeof(struct rec);
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++)
        b += s->rq[r].caplv * (sizeof(struct pqlevel) + 4) +
             (s->rq[r].map.mask + 1) * sizeof(weft_htab_slot_t);
    b += s->captimers * sizeof(struct tmr);
    b += s->capedges * sizeof(struct edge);
    b += s->futures * 64; /* a future is 56 bytes, 64 with the allocator's header */
    b += s->parg_bytes;
    return b;
}

static void snapshot_locked(weft_sched_t *s, weft_sched_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++) {
        const struct exec *e = &s->ex[r];
        weft_sched_exec_stats_t *o = &out->exec[r];
        out->has[r] = e->present;
        o->workers = e->present ? e->workers : 0;
        o->queued = s->rq[r].n;
        o->running = e->running;
        o->done = e->done;
        o->failed = e->failed;
        o->retried = e->retried;
        o->timed_out = e->timed_out;
        o->stuck = e->stuck;
        o->per_s = per_s(e);
        o->wait_p50_ns = weft_hist_quantile(&e->wait, 0.5);
        o->wait_p99_ns = weft_hist_quantile(&e->wait, 0.99);
        o->run_p50_ns = weft_hist_quantile(&e->run, 0.5);
        o->run_p90_ns = weft_hist_quantile(&e->run, 0.9);
        o->run_p99_ns = weft_hist_quantile(&e->run, 0.99);
    }
    out->waiting = s->waiting;
    out->backoff = s->backoff;
    out->live = s->live;
    out->submitted = s->submitted;
    out->succeeded = s->succeeded;
    out->failed = s->failed;
    out->skipped = s->skipped;
    out->cancelled = s->cancelled;
    out->classes = s->cls_names.n;
    out->resizes = s->nevents;
    out->task_bytes = task_bytes(s);
    out->uptime_ns = weft_now_ns() - s->t0;
}

void weft_sched_stats(weft_sched_t *s, weft_sched_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    snapshot_locked(s, out);
    pthread_mutex_unlock(&s->mu);
    out->rss_bytes = weft_rss_bytes();
}

/* What the text and JSON forms need beyond the snapshot, copied under the lock. */
struct view {
    weft_sched_stats_t st;
    weft__class_t *classes;
    size_t nclasses;
    struct event events[WEFT__EVENTS];
    size_t nevents, first;
    weft__route_cfg_t rcfg;
};

static int view_take(weft_sched_t *s, struct view *v)
{
    memset(v, 0, sizeof *v);
    pthread_mutex_lock(&s->mu);
    snapshot_locked(s, &v->st);
    v->rcfg = s->rcfg;
    v->nclasses = s->cls_names.n;
    if (v->nclasses) {
        v->classes = weft__malloc(v->nclasses * sizeof *v->classes);
        if (!v->classes) {
            pthread_mutex_unlock(&s->mu);
            return -ENOMEM;
        }
        memcpy(v->classes, s->classes, v->nclasses * sizeof *v->classes);
    }
    size_t kept = s->nevents < WEFT__EVENTS ? s->nevents : WEFT__EVENTS;
    for (size_t i = 0; i < kept; i++)
        v->events[i] = s->events[(s->nevents - kept + i) % WEFT__EVENTS];
    v->nevents = kept;
    v->first = s->nevents - kept;
    pthread_mutex_unlock(&s->mu);
    v->st.rss_bytes = weft_rss_bytes();
    return 0;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* Formats into a private buffer and appends it whole, so that a failure leaves `out` as it was. */
#define P(...) (err |= weft_buf_printf(&b, __VA_ARGS__) < 0)

static int finish(weft_buf_t *out, weft_buf_t *b, bool err)
{
    int rc = err ? -ENOMEM : weft_buf_append(out, b->data ? b->data : "", b->len);
    weft_buf_free(b);
    return rc;
}

int weft_sched_stats_text(weft_sched_t *s, weft_buf_t *out)
{
    if (!s || !out) return -EINVAL;
    struct view v;
    int rc = view_take(s, &v);
    if (rc < 0) return rc;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    bool err = false;
    const weft_sched_stats_t *st = &v.st;
    P("%-10s %7s %7s %7s %9s %7s %7s %7s %5s %9s %17s %23s\n", "executor", "workers", "queued",
      "running", "done", "failed", "retried", "timeout", "stuck", "tasks/s", "wait p50/p99 ms",
      "run p50/p90/p99 ms");
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++) {
        const weft_sched_exec_stats_t *e = &st->exec[r];
        const char *name = weft_sched_route_name((weft_sched_route_t)r);
        if (!st->has[r]) {
            P("%-10s (not available)\n", name);
            continue;
        }
        P("%-10s %7d %7zu %7zu %9" PRIu64 " %7" PRIu64 " %7" PRIu64 " %7" PRIu64 " %5" PRIu64
          " %9.1f %8.2f/%-8.2f %7.2f/%.2f/%.2f\n",
          name, e->workers, e->queued, e->running, e->done, e->failed, e->retried, e->timed_out,
          e->stuck, e->per_s, ms(e->wait_p50_ns), ms(e->wait_p99_ns), ms(e->run_p50_ns),
          ms(e->run_p90_ns), ms(e->run_p99_ns));
    }
    P("tasks: %" PRIu64 " submitted, %" PRIu64 " succeeded, %" PRIu64 " failed, %" PRIu64
      " skipped, %" PRIu64
      " cancelled; %zu unfinished (%zu waiting for dependencies, %zu backing off)\n",
      st->submitted, st->succeeded, st->failed, st->skipped, st->cancelled, st->live, st->waiting,
      st->backoff);
    P("memory: resident %.1f MiB; scheduler task memory %.1f KiB\n",
      (double)st->rss_bytes / 1048576.0, (double)st->task_bytes / 1024.0);
    if (v.nclasses) P("classes (route: why):\n");
    for (size_t i = 0; i < v.nclasses; i++) {
        const weft__class_t *c = &v.classes[i];
        char why[256];
        weft__route_why(&v.rcfg, c, why, sizeof why);
        P("  %s [%s, %s; %" PRIu64 " runs, mean %.2f ms; to processes/threads/loop "
          "%" PRIu64 "/%" PRIu64 "/%" PRIu64 "]\n    -> %s: %s\n",
          c->name, weft_sched_type_name(c->last_type), weft__mode_name(c->mode), c->runs,
          c->runs ? ms(c->run_wall_ns) / (double)c->runs : 0.0, c->routed[0], c->routed[1],
          c->routed[2], weft_sched_route_name(c->last_route), why);
    }
    if (v.nevents) P("events (sizing and routing):\n");
    for (size_t i = 0; i < v.nevents; i++)
        P("  +%8.3f s  %s\n", (double)v.events[i].t / 1e9, v.events[i].text);
    weft__free(v.classes);
    return finish(out, &b, err);
}

static bool json_str(weft_buf_t *b, const char *s)
{
    bool err = weft_buf_append(b, "\"", 1) < 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            err |= weft_buf_printf(b, "\\%c", *p) < 0;
        else if (*p < 0x20)
            err |= weft_buf_printf(b, "\\u%04x", *p) < 0;
        else
            err |= weft_buf_append(b, p, 1) < 0;
    }
    return err | (weft_buf_append(b, "\"", 1) < 0);
}

int weft_sched_stats_json(weft_sched_t *s, weft_buf_t *out)
{
    if (!s || !out) return -EINVAL;
    struct view v;
    int rc = view_take(s, &v);
    if (rc < 0) return rc;
    const weft_sched_stats_t *st = &v.st;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    bool err = false;
    P("{\"uptime_s\":%.3f,\"executors\":{", (double)st->uptime_ns / 1e9);
    bool first = true;
    for (int r = 0; r < WEFT_ROUTE_COUNT; r++) {
        if (!st->has[r]) continue;
        const weft_sched_exec_stats_t *e = &st->exec[r];
        P("%s\"%s\":{\"workers\":%d,\"queued\":%zu,\"running\":%zu,\"done\":%" PRIu64
          ",\"failed\":%" PRIu64 ",\"retried\":%" PRIu64 ",\"timed_out\":%" PRIu64
          ",\"stuck\":%" PRIu64 ",\"per_s\":%.2f,\"wait_ms\":{\"p50\":%.3f,"
          "\"p99\":%.3f},\"run_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f}}",
          first ? "" : ",", weft_sched_route_name((weft_sched_route_t)r), e->workers, e->queued,
          e->running, e->done, e->failed, e->retried, e->timed_out, e->stuck, e->per_s,
          ms(e->wait_p50_ns), ms(e->wait_p99_ns), ms(e->run_p50_ns), ms(e->run_p90_ns),
          ms(e->run_p99_ns));
        first = false;
    }
    P("},\"tasks\":{\"submitted\":%" PRIu64 ",\"succeeded\":%" PRIu64 ",\"failed\":%" PRIu64
      ",\"skipped\":%" PRIu64 ",\"cancelled\":%" PRIu64
      ",\"unfinished\":%zu,\"waiting\":%zu,\"backoff\":%zu},\"rss_bytes\":%lld,"
      "\"task_bytes\":%zu,\"classes\":[",
      st->submitted, st->succeeded, st->failed, st->skipped, st->cancelled, st->live, st->waiting,
      st->backoff, st->rss_bytes, st->task_bytes);
    for (size_t i = 0; i < v.nclasses; i++) {
        const weft__class_t *c = &v.classes[i];
        P("%s{\"name\":", i ? "," : "");
        err |= json_str(&b, c->name);
        P(",\"type\":\"%s\",\"measured\":\"%s\",\"cpu_ratio\":%.3f,\"samples\":%" PRIu64
          ",\"runs\":%" PRIu64 ",\"route\":\"%s\",\"routed\":{\"processes\":%" PRIu64
          ",\"threads\":%" PRIu64 ",\"loop\":%" PRIu64 "},\"why\":",
          weft_sched_type_name(c->last_type), weft__mode_name(c->mode), c->ratio, c->samples,
          c->runs, weft_sched_route_name(c->last_route), c->routed[0], c->routed[1], c->routed[2]);
        char why[256];
        weft__route_why(&v.rcfg, c, why, sizeof why);
        err |= json_str(&b, why);
        P("}");
    }
    P("],\"events\":[");
    for (size_t i = 0; i < v.nevents; i++) {
        P("%s{\"t_s\":%.3f,\"text\":", i ? "," : "", (double)v.events[i].t / 1e9);
        err |= json_str(&b, v.events[i].text);
        P("}");
    }
    P("]}");
    weft__free(v.classes);
    return finish(out, &b, err);
}
