/* The scheduler's timers: attempt timeouts (threads and loop routes) and retry backoffs, in an
 * indexed binary min-heap on the due time.
 *
 * DESIGN
 * Threads: the scheduler thread ("<name>-tick", weft__timer_main below) sleeps on timer_cv
 * until the earliest due time or the next tick, pops due timers and runs the tick (tick.c);
 * every other function runs under weft_sched.mu (sched-int.h), on any thread.
 * A timeout only flags its attempt A_ABANDONED (unless its thread already delivered it,
 * A_DELIVERED; a CAS decides) and asks it to cancel; the task stays RUNNING until the attempt
 * returns, so a retry never runs beside it (tasks.c, attempt_done_locked).
 * Invariants:
 *   - a record has at most one timer (a timeout while RUNNING, or a retry while BACKOFF), and
 *     rec->tpos is its position + 1 in s->timers (0: none), kept current on every move;
 *   - a timer is removed when the attempt it guards ends or its record retires, so the heap
 *     holds only timers of live tasks (it is empty when the scheduler is idle) and a reused
 *     slot never meets an old timer; each timer still carries the record's full 64-bit id,
 *     checked again when it fires.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <weft/sys.h>

static void put(weft_sched_t *s, size_t pos, const struct tmr *t)
{
    s->timers[pos] = *t;
    weft__rec(s, t->idx)->tpos = (uint32_t)pos + 1;
}

static void sift_up(weft_sched_t *s, size_t pos)
{
    struct tmr t = s->timers[pos];
    while (pos > 0) {
        size_t p = (pos - 1) / 2;
        if (s->timers[p].due <= t.due) break;
        put(s, pos, &s->timers[p]);
        pos = p;
    }
    put(s, pos, &t);
}

static void sift_down(weft_sched_t *s, size_t pos)
{
    struct tmr t = s->timers[pos];
    for (;;) {
        size_t l = 2 * pos + 1, r = l + 1, m = pos;
        uint64_t md = t.due;
        if (l < s->ntimers && s->timers[l].due < md) {
            m = l;
            md = s->timers[l].due;
        }
        if (r < s->ntimers && s->timers[r].due < md) m = r;
        if (m == pos) break;
        put(s, pos, &s->timers[m]);
        pos = m;
    }
    put(s, pos, &t);
}

/* Removes the timer at `pos`. */
static void remove_at(weft_sched_t *s, size_t pos)
{
    weft__rec(s, s->timers[pos].idx)->tpos = 0;
    if (--s->ntimers == pos) return;
    put(s, pos, &s->timers[s->ntimers]);
    sift_down(s, pos);
    sift_up(s, weft__rec(s, s->timers[pos].idx)->tpos - 1);
}

void weft__timer_cancel(weft_sched_t *s, uint32_t idx)
{
    struct rec *r = weft__rec(s, idx);
    if (r->tpos) remove_at(s, r->tpos - 1);
}

int weft__timer_set(weft_sched_t *s, uint32_t idx, uint64_t due, unsigned kind, unsigned no)
{
    weft__timer_cancel(s, idx);
    if (s->ntimers == s->captimers) {
        size_t cap = s->captimers ? s->captimers * 2 : 64;
        struct tmr *a = weft__realloc(s->timers, cap * sizeof *a);
        if (!a) return -ENOMEM;
        s->timers = a;
        s->captimers = cap;
    }
    struct tmr t = {.due = due,
                    .id = weft__rec(s, idx)->id,
                    .idx = idx,
                    .kind = (uint8_t)kind,
                    .no = (uint8_t)no};
    put(s, s->ntimers++, &t);
    sift_up(s, s->ntimers - 1);
    return 0;
}

const struct tmr *weft__timer_top(const weft_sched_t *s)
{
    return s->ntimers ? &s->timers[0] : NULL;
}

void weft__timer_pop(weft_sched_t *s, struct tmr *out)
{
    *out = s->timers[0];
    remove_at(s, 0);
}

void weft__timer_trim(weft_sched_t *s)
{
    if (s->captimers <= 64 || s->ntimers * 4 > s->captimers) return;
    size_t cap = s->captimers / 2;
    struct tmr *a = weft__realloc(s->timers, cap * sizeof *a);
    if (!a) return;
    s->timers = a;
    s->captimers = cap;
}

void weft__timer_free(weft_sched_t *s)
{
    weft__free(s->timers);
    s->timers = NULL;
    s->ntimers = s->captimers = 0;
}

size_t weft__sched_timer_count(weft_sched_t *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->ntimers;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void timer_fire(weft_sched_t *s, struct todo *t, const struct tmr *tm)
{
    struct rec *r = weft__rec(s, tm->idx);
    if (r->id != tm->id) return; /* cannot happen: a timer goes with its attempt or record */
    if (tm->kind == TIMER_RETRY) {
        if (r->state != R_BACKOFF || r->attempts != tm->no) return;
        s->backoff--;
        weft__make_ready(s, t, tm->idx);
        return;
    }
    if (r->state != R_RUNNING || !r->att || r->att->no != tm->no) return;
    struct att *a = r->att;
    struct exec *e = &s->ex[a->route];
    /* seq_cst: pairs with run_on_thread's store of started then load of flags. The CAS loses
     * to deliver_early (route-threads.c): a delivered attempt has finished, not timed out. */
    uint32_t fl = atomic_load(&a->flags);
    do {
        if (fl & A_DELIVERED) return;
    } while (!atomic_compare_exchange_weak(&a->flags, &fl, fl | A_ABANDONED));
    if (a->route == WEFT_ROUTE_THREADS) {
        e->stuck++;
        if (atomic_load(&a->started)) weft__future_request_cancel(&a->cfut);
    } else if (a->route == WEFT_ROUTE_LOOP) {
        atomic_fetch_add_explicit(&weft__attx(a)->lrefs, 1,
                                  memory_order_relaxed); /* held: a is live */
        weft__attx(a)->cnext = t->loop_cancel;
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
    weft__free(weft__attx(a)->tmsg);
    weft__attx(a)->tmsg = weft_buf_steal(&b, &n);
    weft_buf_free(&b);
    /* The task stays RUNNING with this attempt until the attempt returns (attempt_done_locked
     * then retries or finishes it): a retry never runs beside the abandoned attempt, and DONE
     * means that no attempt holds the task's arguments any more. */
}

void *weft__timer_main(void *arg)
{
    weft_sched_t *s = arg;
    char name[16];
    snprintf(name, sizeof name, "%.10s-tick", s->opts.name);
    pthread_setname_np(pthread_self(), name);
    weft__in_sched = s;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        uint64_t now = weft__now_rel(s);
        const struct tmr *top = weft__timer_top(s);
        struct todo t = TODO_INIT;
        t.now = now;
        if (top && top->due <= now) {
            struct tmr tm;
            weft__timer_pop(s, &tm);
            timer_fire(s, &t, &tm);
        } else if (now >= s->next_tick) {
            s->next_tick = now + s->opts.tick_ns;
            weft__tick(s, &t, now);
        } else {
            uint64_t wake = s->next_tick;
            if (top && top->due < wake) wake = top->due;
            uint64_t abs = s->t0 + wake;
            struct timespec ts = {(time_t)(abs / 1000000000u), (long)(abs % 1000000000u)};
            pthread_cond_timedwait(&s->timer_cv, &s->mu, &ts);
            continue;
        }
        weft__drain_props(s, &t);
        weft__dispatch(s, &t);
        pthread_mutex_unlock(&s->mu);
        weft__run_todo(s, &t);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}
