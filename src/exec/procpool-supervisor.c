/* The process pool's supervisor thread: reaps and replaces workers, fails or re-queues the tasks
 * of a dead worker, enforces deadlines, keeps the number of workers at the target, and sleeps in
 * epoll when there is nothing to do.
 *
 * DESIGN
 * One supervisor per pool; it alone changes the worker table (pp->w, pp->nw, under mu) and reads
 * result rings, so it reads both without mu. It spins briefly on the result rings before it
 * announces a sleep (Dekker with the workers' publish and running_id stores; see shmring.h),
 * then sleeps in epoll on the wake eventfd and every worker's pidfd, no longer than the nearest
 * deadline. A worker's exit is seen through its pidfd: its group is killed while the zombie still
 * holds the group id, then it is reaped (waitid P_PIDFD), its published results are delivered,
 * the task it was running fails (WEFT_ECRASHED) unless the pool killed it, and the other
 * in-flight tasks go back to the front of the queue, read back from the dead task ring.
 * Completions are collected under mu and run after it is dropped (weft__pp_flush_compls).
 */
#include "exec/procpool-int.h"

#include "core/alloc.h"
#include "core/cpu.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/sys.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define QUIT_GRACE_NS 2000000000u /* an idle worker told to quit is killed after this */
#define SPAWN_RETRY_NS 100000000u /* after a failed spawn */
#define CREATE_TIMEOUT_NS 60000000000u
#define STARTUP_FAILURES_MAX 3 /* consecutive workers dying before ready: pool broken */
#define POLL_NS 200000u        /* a busy supervisor still polls epoll this often */
#define SUP_SPIN_NS 10000u     /* an idle supervisor polls the rings at most this long */

static void describe_exit(char *buf, size_t n, pid_t pid, int rc, const siginfo_t *si)
{
    if (rc < 0)
        snprintf(buf, n, "worker %d exited (status collected by someone else)", (int)pid);
    else if (si->si_code == CLD_EXITED)
        snprintf(buf, n, "worker %d exited with status %d", (int)pid, si->si_status);
    else {
        const char *d = sigdescr_np(si->si_status);
        snprintf(buf, n, "worker %d killed by signal %d (%s)", (int)pid, si->si_status,
                 d ? d : "unknown signal");
    }
}

/* Under mu: a copy of an in-flight task of a dead worker, read back from its ring. */
static weft__pp_pending_t *requeue_copy(weft__pp_worker_t *w, const weft__pp_inflight_t *r)
{
    size_t plen;
    unsigned char *p = weft__shmring_record_at(&w->tq, r->pos, &plen);
    weft__pp_task_msg_t m;
    if (!p || plen < sizeof m) return NULL;
    memcpy(&m, p, sizeof m);
    if (m.id != r->id || (!r->big && plen - sizeof m < r->len)) return NULL;
    weft__pp_pending_t *t = weft__malloc(sizeof *t + r->len);
    if (!t) return NULL;
    weft__pp_pending_init(t, r->f, r->id, r->fn_hash, r->timeout_ns, r->len, true);
    if (r->big ? weft__pp_pread_all(w->ovf_in, t->data, r->len) < 0
               : (memcpy(t->data, p + sizeof m, r->len), 0)) {
        weft__free(t);
        return NULL;
    }
    return t;
}

static void remove_worker(weft_procpool_t *pp, weft__pp_worker_t *w)
{
    for (int i = 0; i < pp->nw; i++)
        if (pp->w[i] == w) {
            pp->w[i] = pp->w[--pp->nw];
            break;
        }
    if (pp->cursor >= pp->nw) pp->cursor = 0;
}

/* Supervisor: the pidfd of `w` became readable. Reaps it, completes or re-queues its tasks,
 * frees it. */
static void handle_exit(weft_procpool_t *pp, weft__pp_worker_t *w)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc = waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG | WNOWAIT);
    if (rc == 0 && si.si_pid == 0) return; /* not yet */
    pthread_mutex_lock(&pp->mu);
    w->reaped = true; /* kill_worker no longer signals its group: the pid is about to be freed */
    pthread_mutex_unlock(&pp->mu);
    /* The worker is a zombie we have not reaped, so its pid is still its process group's id:
     * kill what its functions forked and left behind, however it ended (crash, timeout, quit). */
    if (rc == 0) kill(-w->pid, SIGKILL);
    memset(&si, 0, sizeof si);
    rc = waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG);
    char why[160];
    describe_exit(why, sizeof why, w->pid, rc, &si);
    bool clean = rc == 0 && si.si_code == CLD_EXITED && si.si_status == 0;
    while (weft__pp_drain(pp, w)) { /* results it published before it died */
        if (pp->ncompls > WEFT__PP_COMPLS_CAP / 2) weft__pp_flush_compls(pp);
    }
    if (pp->ncompls > WEFT__PP_COMPLS_CAP / 2) weft__pp_flush_compls(pp);

    pthread_mutex_lock(&pp->mu);
    /* Acquire: pairs with the worker's seq_cst store of running_id. */
    uint64_t running = atomic_load_explicit(&w->ctrl->running_id, memory_order_acquire);
    weft__pp_pending_t *head = NULL, **tailp = &head;
    size_t requeued = 0;
    while (w->fl_count) {
        weft__pp_inflight_t r = *weft__pp_fl_at(w, 0);
        w->fl_head = (w->fl_head + 1) % WEFT__PP_MAX_DEPTH;
        w->fl_count--;
        pp->running--;
        if (r.done) continue;
        bool guilty = r.id == running && w->kill_reason != WEFT__PP_KILL_TIMEOUT &&
                      w->kill_reason != WEFT__PP_KILL_CANCEL &&
                      w->kill_reason != WEFT__PP_KILL_TEARDOWN;
        weft__pp_pending_t *t = guilty ? NULL : requeue_copy(w, &r);
        if (t) {
            *tailp = t;
            tailp = &t->next;
            requeued++;
            continue;
        }
        pp->completed++;
        pp->failed++;
        char *msg = guilty && w->kill_reason == WEFT__PP_KILL_PROTO
                        ? weft__pp_fmt_text("worker %d sent a malformed message", (int)w->pid)
                    : guilty ? weft__pp_dup_text(why, sizeof why)
                             : weft__pp_fmt_text("task lost when %s", why);
        weft__pp_add_compl(pp, r.f, WEFT_ECRASHED, NULL, 0, msg);
    }
    if (head) {
        weft__pp_pending_t *last = head;
        while (last->next) last = last->next;
        last->next = pp->qhead;
        pp->qhead = head;
        if (!pp->qtail) pp->qtail = last;
        pp->nqueued += requeued;
    }
    bool expected = clean && (w->quit_sent || w->self_exit);
    bool ours = w->kill_reason == WEFT__PP_KILL_TIMEOUT || w->kill_reason == WEFT__PP_KILL_CANCEL ||
                w->kill_reason == WEFT__PP_KILL_QUIT_LATE ||
                w->kill_reason == WEFT__PP_KILL_TEARDOWN;
    if (!expected && !ours) pp->crashed++;
    if (!w->retiring && !w->quit_sent) pp->replace_owed++;
    if (!w->ready && !pp->teardown) {
        pp->startup_failures++;
        snprintf(pp->broken_msg, sizeof pp->broken_msg, "worker processes fail at startup (%s)",
                 why);
        if (!pp->create_done) {
            pp->create_err = WEFT_ECRASHED;
            pp->create_done = true;
            pthread_cond_broadcast(&pp->state_cv);
        } else if (pp->startup_failures >= STARTUP_FAILURES_MAX) {
            pp->broken = true;
        }
    }
    remove_worker(pp, w);
    weft__pp_pending_t *doomed = NULL;
    char msg[sizeof pp->broken_msg];
    if (pp->broken) {
        doomed = weft__pp_detach_queue(pp);
        memcpy(msg, pp->broken_msg, sizeof msg);
    } else {
        weft__pp_dispatch_queue(pp);
    }
    pthread_mutex_unlock(&pp->mu);
    epoll_ctl(pp->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
    weft__pp_free_worker(w);
    if (doomed) {
        weft__pp_flush_compls(pp);
        size_t n = weft__pp_fail_list(doomed, WEFT_ECRASHED, msg);
        pthread_mutex_lock(&pp->mu);
        pp->completed += n;
        pp->failed += n;
        pthread_mutex_unlock(&pp->mu);
    }
}

/* Supervisor, under mu: fails and kills the workers whose running task is past its deadline.
 * Returns the nearest deadline still ahead (UINT64_MAX: none). */
static uint64_t check_deadlines(weft_procpool_t *pp, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < pp->nw; i++) {
        weft__pp_worker_t *w = pp->w[i];
        if (!w->ntimed || w->dying || !w->fl_count) continue;
        weft__pp_inflight_t *r = weft__pp_fl_at(w, 0);
        if (!r->timeout_ns || r->done) continue;
        /* seq_cst: second half of the Dekker pair with the worker's store of running_id (the
         * caller announced its sleep before). id, start, id: a seqlock read (start_ns is
         * stored with release before running_id changes). */
        uint64_t id1 = atomic_load_explicit(&w->ctrl->running_id, memory_order_seq_cst);
        if (id1 != r->id) continue;
        uint64_t start = atomic_load_explicit(&w->ctrl->start_ns, memory_order_acquire);
        uint64_t id2 = atomic_load_explicit(&w->ctrl->running_id, memory_order_relaxed);
        if (id2 != id1) continue;
        uint64_t dl = start + r->timeout_ns < start ? UINT64_MAX : start + r->timeout_ns;
        if (now < dl) {
            if (dl < next) next = dl;
            continue;
        }
        weft__pp_kill_worker(w, WEFT__PP_KILL_TIMEOUT);
        r->done = true;
        pp->completed++;
        pp->failed++;
        pp->timed_out++;
        weft__pp_add_compl(pp, r->f, -ETIMEDOUT, NULL, 0,
                           weft__pp_fmt_text("worker %d killed: task timed out after %.3f s",
                                             (int)w->pid, (double)r->timeout_ns / 1e9));
    }
    return next;
}

int weft__pp_active_workers(const weft_procpool_t *pp)
{
    int n = 0;
    for (int i = 0; i < pp->nw; i++) {
        const weft__pp_worker_t *w = pp->w[i];
        n += !w->retiring && !w->dying && !w->quit_sent;
    }
    return n;
}

/* Supervisor: readiness, create status, retirements, spawns. Returns the time it next needs
 * to run (UINT64_MAX: only when woken). */
static uint64_t maintain(weft_procpool_t *pp)
{
    uint64_t now = weft_now_ns(), next = UINT64_MAX;
    pthread_mutex_lock(&pp->mu);
    bool newly_ready = false;
    for (int i = 0; i < pp->nw; i++) {
        weft__pp_worker_t *w = pp->w[i];
        /* Acquire: pairs with the worker's release store of ready. */
        if (!w->ready && atomic_load_explicit(&w->ctrl->ready, memory_order_acquire)) {
            w->ready = newly_ready = true;
            pp->startup_failures = 0;
        }
    }
    if (newly_ready) weft__pp_dispatch_queue(pp);
    if (pp->teardown) {
        for (int i = 0; i < pp->nw; i++) weft__pp_kill_worker(pp->w[i], WEFT__PP_KILL_TEARDOWN);
        pthread_mutex_unlock(&pp->mu);
        return next;
    }
    if (!pp->create_done) {
        int ready = 0;
        for (int i = 0; i < pp->nw; i++) ready += pp->w[i]->ready;
        if (ready >= pp->target) {
            pp->create_done = true;
            pthread_cond_broadcast(&pp->state_cv);
        } else if (now - pp->create_start_ns > CREATE_TIMEOUT_NS) {
            pp->create_err = -ETIMEDOUT;
            pp->create_done = true;
            pthread_cond_broadcast(&pp->state_cv);
        } else {
            next = pp->create_start_ns + CREATE_TIMEOUT_NS;
        }
    }
    bool idle = pp->nqueued == 0 && pp->running == 0;
    int want = pp->broken || (pp->closed && idle) ? 0 : pp->target;
    int active = weft__pp_active_workers(pp);
    /* Retire extras, idle or still starting ones first. */
    for (int pass = 0; pass < 2 && active > want; pass++)
        for (int i = 0; i < pp->nw && active > want; i++) {
            weft__pp_worker_t *w = pp->w[i];
            if (w->retiring || w->dying || w->quit_sent) continue;
            if (pass == 0 && w->ready && w->fl_count) continue;
            w->retiring = true;
            active--;
        }
    for (int i = 0; i < pp->nw; i++) {
        weft__pp_worker_t *w = pp->w[i];
        if (w->retiring && !w->self_exit && !w->quit_sent && !w->dying && w->fl_count == 0) {
            weft__pp_task_msg_t m = {WEFT__PP_QUIT, 0, 0, 0, 0, 0, 0};
            void *p = weft__shmring_reserve(&w->tq, sizeof m);
            if (p) {
                memcpy(p, &m, sizeof m);
                w->quit_sent = true;
                w->quit_ns = now;
                w->dirty = true;
            }
        }
        if (w->quit_sent && !w->dying) {
            if (now - w->quit_ns > QUIT_GRACE_NS)
                weft__pp_kill_worker(w, WEFT__PP_KILL_QUIT_LATE);
            else if (w->quit_ns + QUIT_GRACE_NS < next)
                next = w->quit_ns + QUIT_GRACE_NS + 1;
        }
    }
    weft__pp_flush_dirty(pp);
    int to_spawn = want - active;
    if (pp->nw + to_spawn > 2 * WEFT__PP_MAX_WORKERS) to_spawn = 2 * WEFT__PP_MAX_WORKERS - pp->nw;
    if (to_spawn > 0 && now < pp->spawn_retry_ns) {
        if (pp->spawn_retry_ns < next) next = pp->spawn_retry_ns;
        to_spawn = 0;
    }
    pthread_mutex_unlock(&pp->mu);

    for (int i = 0; i < to_spawn; i++) {
        weft__pp_worker_t *w;
        int rc = weft__pp_spawn_worker(pp, &w);
        pthread_mutex_lock(&pp->mu);
        if (rc < 0) {
            snprintf(pp->broken_msg, sizeof pp->broken_msg, "cannot start a worker: %s",
                     strerror(-rc));
            if (!pp->create_done) {
                pp->create_err = rc;
                pp->create_done = true;
                pthread_cond_broadcast(&pp->state_cv);
            }
            pp->spawn_retry_ns = weft_now_ns() + SPAWN_RETRY_NS;
            if (pp->spawn_retry_ns < next) next = pp->spawn_retry_ns;
            pthread_mutex_unlock(&pp->mu);
            break;
        }
        w->serial = ++pp->next_serial;
        w->ctrl->index = w->serial;
        pp->w[pp->nw++] = w;
        if (pp->replace_owed > 0) {
            pp->replace_owed--;
            pp->respawned++;
        }
        pthread_mutex_unlock(&pp->mu);
    }
    return next;
}

static int sup_wait(weft_procpool_t *pp, struct epoll_event *evs, int n, uint64_t until)
{
    uint64_t now = weft_now_ns();
    if (until == UINT64_MAX) return epoll_wait(pp->epfd, evs, n, -1);
    uint64_t d = until > now ? until - now : 0;
    if (pp->have_pwait2) {
        struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
        int rc = epoll_pwait2(pp->epfd, evs, n, &ts, NULL);
        if (rc >= 0 || errno != ENOSYS) return rc;
        pp->have_pwait2 = false;
    }
    return epoll_wait(pp->epfd, evs, n, (int)((d + 999999) / 1000000));
}

static bool rings_empty(weft_procpool_t *pp)
{
    for (int i = 0; i < pp->nw; i++)
        if (!weft__shmring_empty(&pp->w[i]->rq)) return false;
    return true;
}

void *weft__pp_supervise(void *arg)
{
    weft_procpool_t *pp = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    struct epoll_event evs[64];
    uint64_t last_poll = 0;
    for (;;) {
        uint64_t next = maintain(pp);
        bool busy = false;
        for (int i = 0; i < pp->nw; i++) {
            if (pp->ncompls > WEFT__PP_COMPLS_CAP / 2) weft__pp_flush_compls(pp);
            busy |= weft__pp_drain(pp, pp->w[i]);
        }
        if (pp->ncompls > WEFT__PP_COMPLS_CAP / 2) weft__pp_flush_compls(pp);
        uint64_t now = weft_now_ns();
        pthread_mutex_lock(&pp->mu);
        uint64_t dl = check_deadlines(pp, now);
        bool done = pp->destroying && pp->nw == 0 && pp->nqueued == 0 && pp->running == 0;
        pthread_mutex_unlock(&pp->mu);
        weft__pp_flush_compls(pp);
        if (done) break;
        if (dl < next) next = dl;

        bool sleeping = false;
        int n;
        if (busy) {
            if (now - last_poll < POLL_NS) continue;
            n = epoll_wait(pp->epfd, evs, 64, 0);
        } else {
            /* Poll a little before sleeping: a result often follows within microseconds. */
            uint64_t t0 = now, spin = weft__spin_budget(&pp->sup_spin, SUP_SPIN_NS);
            bool got = false;
            while (!got && weft_now_ns() - t0 < spin) {
                got = !rings_empty(pp);
                weft__cpu_relax();
            }
            if (spin) weft__spin_result(&pp->sup_spin, got);
            if (got) continue;
            /* Announce the sleep, then look again (Dekker with the workers' publish and
             * running_id stores; see shmring.h). */
            uint32_t seq;
            bool empty = true;
            for (int i = 0; i < pp->nw; i++)
                empty &= weft__shmring_consumer_prepare(&pp->w[i]->rq, &seq);
            pthread_mutex_lock(&pp->mu);
            uint64_t dl2 = empty ? check_deadlines(pp, weft_now_ns()) : 0;
            pthread_mutex_unlock(&pp->mu);
            if (!empty || pp->ncompls) {
                for (int i = 0; i < pp->nw; i++) weft__shmring_consumer_unprepare(&pp->w[i]->rq);
                weft__pp_flush_compls(pp);
                continue;
            }
            if (dl2 < next) next = dl2;
            sleeping = true;
            n = sup_wait(pp, evs, 64, next);
        }
        last_poll = weft_now_ns();
        if (sleeping)
            for (int i = 0; i < pp->nw; i++) weft__shmring_consumer_unprepare(&pp->w[i]->rq);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;
                while (read(pp->wake_fd, &v, sizeof v) < 0 && errno == EINTR) {
                }
            } else {
                handle_exit(pp, evs[i].data.ptr);
                weft__pp_flush_compls(pp);
            }
        }
    }
    return NULL;
}
