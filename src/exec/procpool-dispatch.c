/* The process pool's data path in the parent: submission, dispatch into the workers' task rings,
 * the pool's FIFO queue, results back from the result rings, and cancellation.
 *
 * DESIGN
 * Threads: API threads submit and cancel; the supervisor drains results and refills rings. Both
 * write task rings under mu (the ring's single producer is "whoever holds mu"); only the
 * supervisor reads result rings, copying records out without the lock and matching them with
 * the in-flight FIFO (w->fl) under it. Futures are started (RUNNING) under mu when a task enters
 * a ring and completed with no lock held (weft__pp_settle, or the supervisor's completion array).
 * Cancellation: a queued task is PENDING, weft_future_cancel completes it and dispatch drops it;
 * a task in a ring is decided by its claim word (procpool-int.h): one CAS against the worker's
 * exchange; a running task is killed with its worker when forced. A cancelled or timed-out
 * in-flight record is marked `done`, so that its result, if one comes, is dropped.
 */
#include "exec/procpool-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <weft/err.h>

#define BATCH 256 /* results copied out per pass */

static bool can_take(const weft_procpool_t *pp, const weft__pp_worker_t *w, unsigned depth)
{
    return w->ready && !w->retiring && !w->dying && !w->quit_sent && w->fl_count < depth &&
           w->skip_round != pp->round;
}

enum { DISPATCH_NONE = 0, DISPATCH_OK = 1, DISPATCH_CANCELLED = 2 };

/* Puts one task into the ring of the least loaded worker that can take it. Returns
 * DISPATCH_OK, DISPATCH_NONE (no room anywhere: keep it queued), DISPATCH_CANCELLED (its future
 * was cancelled: drop it) or a negative error to fail it with. `started`: the future is RUNNING
 * already (a task re-queued from a dead worker), else dispatch starts it. */
static int dispatch(weft_procpool_t *pp, uint64_t id, uint64_t fn_hash, uint64_t timeout_ns,
                    const void *data, size_t len, weft_future_t *f, bool started, bool *need_poke)
{
    bool big = len > pp->big_threshold;
    pp->round++;
    for (;;) {
        weft__pp_worker_t *best = NULL;
        for (int k = 0; k < pp->nw; k++) {
            weft__pp_worker_t *w = pp->w[(pp->cursor + k) % pp->nw];
            if (!can_take(pp, w, pp->depth)) continue;
            if (big && w->big_in_end && weft__shmring_consumed(&w->tq) < w->big_in_end) continue;
            if (!best || w->fl_count < best->fl_count) best = w;
            if (best->fl_count == 0) break;
        }
        if (!best) return DISPATCH_NONE;
        weft__pp_worker_t *w = best;
        if (big) {
            int rc = weft__pp_pwrite_all(w->ovf_in, data, len);
            if (rc < 0) return rc;
        }
        uint64_t pos = weft__shmring_wpos(&w->tq);
        /* Its in-flight slot names its claim word too (see weft_procpool_cancel). */
        unsigned slot = (w->fl_head + w->fl_count) % WEFT__PP_MAX_DEPTH;
        weft__pp_task_msg_t m = {
            big ? WEFT__PP_TASK_BIG : WEFT__PP_TASK, 0, id, fn_hash, timeout_ns, len, slot};
        unsigned char *p = weft__shmring_reserve(&w->tq, sizeof m + (big ? 0 : len));
        if (!p) {
            w->skip_round = pp->round; /* its ring is full; try the others */
            continue;
        }
        int st = started ? 0 : weft_future_start(f);
        if (st == -ECANCELED || st == -EALREADY) {
            weft__shmring_unreserve(&w->tq, pos);
            return DISPATCH_CANCELLED;
        }
        memcpy(p, &m, sizeof m);
        if (!big && len) memcpy(p + sizeof m, data, len);
        weft__pp_inflight_t *r = weft__pp_fl_at(w, w->fl_count++);
        *r = (weft__pp_inflight_t){f, id, fn_hash, timeout_ns, pos, len, big, false};
        if (timeout_ns) w->ntimed++;
        if (big) w->big_in_end = weft__shmring_wpos(&w->tq);
        pp->running++;
        w->dirty = true;
        pp->cursor = (pp->cursor + 1) % pp->nw;
        if (pp->max_tasks && ++w->dispatched >= (uint64_t)pp->max_tasks) {
            /* The worker exits by itself after this task; start its replacement now. */
            w->retiring = w->self_exit = true;
            pp->replace_owed++;
            *need_poke = true;
        }
        return DISPATCH_OK;
    }
}

/* Under mu: publishes what dispatch wrote and wakes workers that sleep. */
void weft__pp_flush_dirty(weft_procpool_t *pp)
{
    for (int i = 0; i < pp->nw; i++) {
        weft__pp_worker_t *w = pp->w[i];
        if (!w->dirty) continue;
        w->dirty = false;
        if (weft__shmring_publish(&w->tq)) weft__shmring_wake_consumer(&w->tq);
    }
}

/* Supervisor, under mu: moves queued tasks into rings while there is room. */
void weft__pp_dispatch_queue(weft_procpool_t *pp)
{
    bool poke_unused = false;
    while (pp->qhead && pp->ncompls < WEFT__PP_COMPLS_CAP - 16) {
        weft__pp_pending_t *t = pp->qhead;
        int rc = dispatch(pp, t->id, t->fn_hash, t->timeout_ns, t->data, t->len, t->f, t->started,
                          &poke_unused);
        if (rc == DISPATCH_NONE) break;
        pp->qhead = t->next;
        if (!pp->qhead) pp->qtail = NULL;
        pp->nqueued--;
        if (rc == DISPATCH_CANCELLED) {
            weft_future_release(t->f);
        } else if (rc < 0) {
            pp->completed++;
            pp->failed++;
            weft__pp_add_compl(pp, t->f, rc, NULL, 0,
                               weft__pp_fmt_text("cannot pass the argument: %s", strerror(-rc)));
        }
        weft__free(t);
    }
    weft__pp_flush_dirty(pp);
    if (pp->space_waiters && (pp->nqueued < pp->capacity || pp->closed))
        pthread_cond_broadcast(&pp->space_cv);
}

static void update_depth(weft_procpool_t *pp, uint64_t run_ns)
{
    if (run_ns > 10000000000u) run_ns = 10000000000u;
    int64_t diff = (int64_t)run_ns - (int64_t)pp->ewma_ns;
    pp->ewma_ns = (uint64_t)((int64_t)pp->ewma_ns + diff / 8);
    uint64_t d = WEFT__PP_DEPTH_NS / (pp->ewma_ns ? pp->ewma_ns : 1);
    pp->depth = d < 1 ? 1 : d > WEFT__PP_MAX_DEPTH ? WEFT__PP_MAX_DEPTH : (unsigned)d;
}

typedef struct got {
    uint64_t id, run_ns;
    int status;
    void *value;
    size_t size;
    char *msg;
} got_t;

/* Reads up to BATCH results of `w` (copying them out without the lock), then matches them with
 * the in-flight records under mu. Returns true if it consumed anything. */
bool weft__pp_drain(weft_procpool_t *pp, weft__pp_worker_t *w)
{
    got_t got[BATCH];
    int n = 0;
    bool proto = false;
    while (n < BATCH) {
        void *p;
        size_t len;
        int rc = weft__shmring_peek(&w->rq, &p, &len);
        if (rc == 0) break;
        weft__pp_result_msg_t m;
        if (rc < 0 || len < sizeof m) {
            proto = true;
            break;
        }
        memcpy(&m, p, sizeof m);
        const unsigned char *bytes = (const unsigned char *)p + sizeof m;
        got_t *g = &got[n];
        *g = (got_t){m.id, m.run_ns, m.status, NULL, 0, NULL};
        if (m.kind == WEFT__PP_RESULT) {
            if (m.len > len - sizeof m) {
                proto = true;
                break;
            }
        } else if (m.kind == WEFT__PP_RESULT_BIG) {
            bytes = NULL;
        } else {
            proto = true;
            break;
        }
        size_t blen = (size_t)m.len;
        if (g->status >= 0 && m.len > pp->max_message) {
            /* The worker checks this itself (run_task); a second check keeps the parent's
             * memory bounded whatever the worker does. */
            g->status = -EMSGSIZE;
            g->msg = weft__pp_fmt_text("result of %llu bytes exceeds max_message %zu",
                                       (unsigned long long)m.len, pp->max_message);
        } else if (g->status >= 0 && blen) {
            g->value = weft__malloc(blen + 1);
            int rc2 = !g->value ? -ENOMEM
                      : bytes   ? (memcpy(g->value, bytes, blen), 0)
                                : weft__pp_pread_all(w->ovf_out, g->value, blen);
            if (rc2 < 0) {
                weft__free(g->value);
                g->value = NULL;
                g->status = rc2;
                g->msg =
                    weft__pp_fmt_text("cannot receive a %zu-byte result: %s", blen, strerror(-rc2));
            } else {
                ((char *)g->value)[blen] = '\0';
                g->size = blen;
            }
        } else if (g->status < 0 && blen) {
            if (bytes) {
                g->msg = weft__pp_dup_text((const char *)bytes, blen);
            } else {
                char buf[WEFT__PP_MAX_TEXT];
                size_t k = blen < sizeof buf ? blen : sizeof buf;
                g->msg =
                    weft__pp_pread_all(w->ovf_out, buf, k) == 0 ? weft__pp_dup_text(buf, k) : NULL;
            }
        }
        if (!bytes && ftruncate(w->ovf_out, 0) < 0) { /* frees the pages; nothing to undo */
        }
        weft__shmring_next(&w->rq);
        n++;
    }
    if (n == 0 && !proto) return false;

    pthread_mutex_lock(&pp->mu);
    for (int i = 0; i < n; i++) {
        got_t *g = &got[i];
        if (proto || w->fl_count == 0 || weft__pp_fl_at(w, 0)->id != g->id) {
            proto = true;
            weft__free(g->value);
            weft__free(g->msg);
            continue;
        }
        weft__pp_inflight_t r = *weft__pp_fl_at(w, 0);
        w->fl_head = (w->fl_head + 1) % WEFT__PP_MAX_DEPTH;
        w->fl_count--;
        pp->running--;
        if (r.timeout_ns) w->ntimed--;
        if (r.done) { /* already failed with -ETIMEDOUT */
            weft__free(g->value);
            weft__free(g->msg);
            continue;
        }
        update_depth(pp, g->run_ns);
        pp->completed++;
        if (g->status < 0) pp->failed++;
        weft__pp_add_compl(pp, r.f, g->status, g->value, g->size, g->msg);
    }
    if (proto) weft__pp_kill_worker(w, WEFT__PP_KILL_PROTO);
    weft__pp_dispatch_queue(pp);
    pthread_mutex_unlock(&pp->mu);
    if (weft__shmring_release(&w->rq)) weft__shmring_wake_producer(&w->rq);
    return true;
}

/* Fills the header of a queued record field by field: assigning a whole weft__pp_pending_t would
 * also write its trailing padding, which overlaps data[]. */
void weft__pp_pending_init(weft__pp_pending_t *t, weft_future_t *f, uint64_t id, uint64_t fn_hash,
                           uint64_t timeout_ns, size_t len, bool started)
{
    t->next = NULL;
    t->f = f;
    t->id = id;
    t->fn_hash = fn_hash;
    t->timeout_ns = timeout_ns;
    t->len = len;
    t->started = started;
}

/* Under mu: takes every queued task out of the queue (to fail or cancel them after the lock
 * is dropped, with fail_list). */
weft__pp_pending_t *weft__pp_detach_queue(weft_procpool_t *pp)
{
    weft__pp_pending_t *list = pp->qhead;
    pp->qhead = pp->qtail = NULL;
    pp->nqueued = 0;
    if (pp->space_waiters) pthread_cond_broadcast(&pp->space_cv);
    return list;
}

/* No lock held: completes detached tasks with `status` (-ECANCELED: cancels them) and frees
 * them. Returns how many it completed. */
size_t weft__pp_fail_list(weft__pp_pending_t *list, int status, const char *msg)
{
    size_t n = 0;
    while (list) {
        weft__pp_pending_t *t = list;
        list = t->next;
        if (status == -ECANCELED && !t->started) {
            n += weft_future_cancel(t->f) == 0; /* -EALREADY: its owner cancelled it first */
            weft_future_release(t->f);
        } else if (t->started || weft_future_start(t->f) == 0) {
            weft__pp_compl_t c = {t->f, status, NULL, 0,
                                  msg ? weft__pp_dup_text(msg, strlen(msg)) : NULL};
            weft__pp_settle(&c);
            n++;
        } else {
            weft_future_release(t->f);
        }
        weft__free(t);
    }
    return n;
}

int weft_procpool_submit(weft_procpool_t *pp, const char *fn_name, const void *arg, size_t len,
                         uint64_t timeout_ns, weft_future_t **out)
{
    if (!out) return -EINVAL;
    *out = NULL;
    if (!pp || !fn_name || (!arg && len)) return -EINVAL;
    uint64_t hash;
    if (!weft__pp_lookup(fn_name, &hash)) return WEFT_ENOFUNC;
    if (len > pp->max_message) return -EMSGSIZE;
    weft_future_t *f = weft_future_create();
    if (!f) return -ENOMEM;
    weft_future_retain(f); /* the pool's reference, dropped when it completes f */

    int rc = 0, fail = 0;
    char *fail_msg = NULL;
    bool need_poke = false;
    weft__pp_pending_t *rec = NULL;
    pthread_mutex_lock(&pp->mu);
    for (;;) {
        if (pp->closed) {
            rc = -ESHUTDOWN;
            break;
        }
        if (pp->broken) {
            weft_future_start(f);
            fail = WEFT_ECRASHED;
            fail_msg = weft__pp_dup_text(pp->broken_msg, sizeof pp->broken_msg);
            break;
        }
        if (!pp->qhead) {
            int d = dispatch(pp, pp->next_id, hash, timeout_ns, arg, len, f, false, &need_poke);
            if (d == DISPATCH_OK) {
                pp->next_id++;
                weft__pp_flush_dirty(pp);
                break;
            }
            if (d < 0) {
                weft_future_start(f);
                fail = d;
                fail_msg = weft__pp_fmt_text("cannot pass the argument: %s", strerror(-d));
                break;
            }
        }
        if (pp->nqueued >= pp->capacity) {
            pp->space_waiters++;
            pthread_cond_wait(&pp->space_cv, &pp->mu);
            pp->space_waiters--;
            continue;
        }
        if (!rec) {
            pthread_mutex_unlock(&pp->mu);
            rec = weft__malloc(sizeof *rec + len);
            if (rec && len) memcpy(rec->data, arg, len);
            pthread_mutex_lock(&pp->mu);
            if (!rec) {
                rc = -ENOMEM;
                break;
            }
            continue;
        }
        weft__pp_pending_init(rec, f, pp->next_id++, hash, timeout_ns, len, false);
        if (pp->qtail)
            pp->qtail->next = rec;
        else
            pp->qhead = rec;
        pp->qtail = rec;
        pp->nqueued++;
        rec = NULL;
        /* The supervisor refills rings as results come back; when no worker is ready (all are
         * starting or being replaced) it dispatches once one is. */
        break;
    }
    if (fail) {
        pp->completed++;
        pp->failed++;
    }
    pthread_mutex_unlock(&pp->mu);
    weft__free(rec);
    if (need_poke) weft__pp_poke(pp);
    if (rc < 0) {
        weft_future_release(f);
        weft_future_release(f);
        return rc;
    }
    if (fail) {
        weft__pp_compl_t c = {f, fail, NULL, 0, fail_msg};
        weft__pp_settle(&c); /* drops the pool's reference; the caller keeps its own */
    }
    *out = f;
    return 0;
}

/* Under mu: finds the in-flight task of `f` that no one has completed yet. */
static weft__pp_inflight_t *find_inflight(weft_procpool_t *pp, const weft_future_t *f,
                                          weft__pp_worker_t **wp)
{
    for (int i = 0; i < pp->nw; i++) {
        weft__pp_worker_t *w = pp->w[i];
        for (unsigned k = 0; k < w->fl_count; k++) {
            weft__pp_inflight_t *r = weft__pp_fl_at(w, k);
            if (r->f == f && !r->done) {
                *wp = w;
                return r;
            }
        }
    }
    return NULL;
}

/* Under mu: unlinks the queued record of a RUNNING future `f` (a task re-queued from a dead
 * worker), or returns NULL. */
static weft__pp_pending_t *unlink_started(weft_procpool_t *pp, const weft_future_t *f)
{
    for (weft__pp_pending_t **pt = &pp->qhead, *prev = NULL; *pt; prev = *pt, pt = &(*pt)->next) {
        weft__pp_pending_t *t = *pt;
        if (t->f != f || !t->started) continue;
        *pt = t->next;
        if (pp->qtail == t) pp->qtail = prev;
        pp->nqueued--;
        if (pp->space_waiters) pthread_cond_broadcast(&pp->space_cv);
        return t;
    }
    return NULL;
}

int weft_procpool_cancel(weft_procpool_t *pp, weft_future_t *f, bool force)
{
    if (!pp || !f) return -EINVAL;
    /* A task in the queue is PENDING: this completes it, and dispatch drops it. */
    int rc = weft_future_cancel(f);
    if (rc != -EBUSY) return rc;
    char *msg = NULL;
    pthread_mutex_lock(&pp->mu);
    weft__pp_worker_t *w = NULL;
    weft__pp_inflight_t *r = find_inflight(pp, f, &w);
    weft__pp_pending_t *t = r ? NULL : unlink_started(pp, f);
    rc = r || t ? 0 : -EALREADY; /* finished, or finishing (its result is being delivered) */
    if (r && !w->dying) {
        /* Decide with the worker: exactly one of its exchange and our CAS wins (claim in
         * procpool-int.h). seq_cst: pairs with the worker's exchange. */
        _Atomic uint64_t *word = &w->ctrl->claim[r - w->fl]; /* its slot (see dispatch) */
        uint64_t v = atomic_load_explicit(word, memory_order_seq_cst);
        while (v != r->id &&
               !atomic_compare_exchange_weak_explicit(word, &v, r->id | WEFT__PP_CANCELLED,
                                                      memory_order_seq_cst, memory_order_seq_cst)) {
        }
        if (v != r->id) {
            msg = weft__pp_fmt_text("task cancelled before it started");
        } else if (!force) {
            rc = -EBUSY;
        } else {
            msg = weft__pp_fmt_text("worker %d killed: task cancelled", (int)w->pid);
            weft__pp_kill_worker(w, WEFT__PP_KILL_CANCEL);
        }
    } else if (r) {
        /* Its worker is dying: the task will not run again (handle_exit skips `done`). */
        msg = weft__pp_fmt_text("task cancelled");
    } else if (t) {
        msg = weft__pp_fmt_text("task cancelled before it started");
    }
    if (rc == 0) {
        if (r) r->done = true; /* its result, if one comes, is dropped */
        pp->completed++;
        pp->failed++;
    }
    pthread_mutex_unlock(&pp->mu);
    if (rc == 0) {
        weft__pp_compl_t c = {f, -ECANCELED, NULL, 0, msg};
        weft__pp_settle(&c); /* drops the pool's reference */
    } else {
        weft__free(msg);
    }
    weft__free(t);
    return rc;
}
