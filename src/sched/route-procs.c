/* The processes route: attempts run as registered functions in the process pool, which times
 * them out itself (kills and replaces the worker).
 *
 * DESIGN
 * Threads: the submitting thread (launch) and the process pool's completion thread
 * (proc_done). a->xfut is written under weft_sched.mu, for cancel requests.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

static void proc_done(weft_future_t *f, void *arg)
{
    struct att *a = arg;
    struct attx *ax = weft__attx(a);
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
    weft__attempt_finished(s, a, 0, 0, false);
    weft_future_release(f);
    weft__free(ax);
}

int weft__procs_launch(weft_sched_t *s, struct att *a)
{
    weft_future_t *f = NULL;
    int rc = weft_procpool_submit(s->pp, a->pfn_name, a->parg, a->plen, a->timeout_ns, &f);
    if (rc < 0) return rc;
    pthread_mutex_lock(&s->mu);
    a->xfut = f; /* for cancel requests, read under mu while a is in the running list */
    pthread_mutex_unlock(&s->mu);
    if (weft_future_on_complete(f, proc_done, a) < 0) { /* -ENOMEM: wait for it here */
        weft_future_wait(f, -1);
        proc_done(f, a);
    }
    return 0;
}
