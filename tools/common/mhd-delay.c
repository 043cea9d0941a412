/* Delayed answers on libmicrohttpd (mhd-delay-int.h).
 *
 * DESIGN
 * Threads: the daemon's threads call tools_mhd_delay_sleep from handlers; one timer thread of ours
 * pops due entries and resumes their connections (MHD_resume_connection is thread-safe); the
 * owner calls create/stop/destroy.
 * Invariants: a wait is in the min-heap only while its connection is suspended: sleep suspends
 * BEFORE it pushes, so the timer never resumes a connection that is not suspended, and a pushed
 * entry's record stays valid because libmicrohttpd never frees a suspended connection. Once
 * `stopping` is set (under mu) nothing is pushed; a sleep that finds it set resumes its own
 * connection again and returns false. stop takes the heap under mu, joins the timer, and resumes
 * every entry, so MHD_stop_daemon finds no suspended connection.
 * Locks: mu (heap, stopping) is never held across a libmicrohttpd call.
 */
#include "common/mhd-delay-int.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <weft/sys.h>

struct tools_mhd_delay {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tools_mhd_wait_t **heap; /* min-heap by due_ns */
    size_t n, cap;
    bool stopping, joined;
};

static void swap(tools_mhd_delay_t *d, size_t a, size_t b)
{
    tools_mhd_wait_t *t = d->heap[a];
    d->heap[a] = d->heap[b];
    d->heap[b] = t;
}

static int push(tools_mhd_delay_t *d, tools_mhd_wait_t *w)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        tools_mhd_wait_t **h = realloc(d->heap, cap * sizeof *h);
        if (!h) return -ENOMEM;
        d->heap = h;
        d->cap = cap;
    }
    size_t i = d->n++;
    d->heap[i] = w;
    while (i > 0 && d->heap[(i - 1) / 2]->due_ns > d->heap[i]->due_ns) {
        swap(d, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static tools_mhd_wait_t *pop(tools_mhd_delay_t *d)
{
    tools_mhd_wait_t *top = d->heap[0];
    d->heap[0] = d->heap[--d->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < d->n && d->heap[l]->due_ns < d->heap[m]->due_ns) m = l;
        if (r < d->n && d->heap[r]->due_ns < d->heap[m]->due_ns) m = r;
        if (m == i) break;
        swap(d, i, m);
        i = m;
    }
    return top;
}

static void *timer_main(void *arg)
{
    tools_mhd_delay_t *d = arg;
    struct MHD_Connection *due[64];
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        uint64_t now = weft_now_ns();
        size_t n = 0;
        while (d->n && d->heap[0]->due_ns <= now && n < 64) due[n++] = pop(d)->conn;
        if (n) {
            pthread_mutex_unlock(&d->mu);
            for (size_t i = 0; i < n; i++) MHD_resume_connection(due[i]);
            pthread_mutex_lock(&d->mu);
            continue;
        }
        if (d->n == 0) {
            pthread_cond_wait(&d->cv, &d->mu);
        } else {
            uint64_t wake = d->heap[0]->due_ns;
            struct timespec ts = {(time_t)(wake / 1000000000u), (long)(wake % 1000000000u)};
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int tools_mhd_delay_create(tools_mhd_delay_t **out)
{
    *out = NULL;
    tools_mhd_delay_t *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* weft_now_ns() is CLOCK_MONOTONIC */
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&d->thread, NULL, timer_main, d);
    if (rc) {
        pthread_cond_destroy(&d->cv);
        pthread_mutex_destroy(&d->mu);
        free(d);
        return -rc;
    }
    *out = d;
    return 0;
}

bool tools_mhd_delay_sleep(tools_mhd_delay_t *d, tools_mhd_wait_t *w, struct MHD_Connection *conn,
                           uint64_t due_ns)
{
    w->conn = conn;
    w->due_ns = due_ns;
    MHD_suspend_connection(conn);
    pthread_mutex_lock(&d->mu);
    bool ok = !d->stopping && push(d, w) == 0;
    if (ok && d->heap[0] == w) pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (!ok) MHD_resume_connection(conn);
    return ok;
}

void tools_mhd_delay_stop(tools_mhd_delay_t *d)
{
    if (d->joined) return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    size_t n = d->n;
    tools_mhd_wait_t **pending = d->heap;
    d->heap = NULL;
    d->n = d->cap = 0;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    d->joined = true;
    for (size_t i = 0; i < n; i++) MHD_resume_connection(pending[i]->conn);
    free(pending);
}

void tools_mhd_delay_destroy(tools_mhd_delay_t *d)
{
    if (!d) return;
    tools_mhd_delay_stop(d);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
