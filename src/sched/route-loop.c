/* The loop route: asynchronous tasks started on the event loop thread.
 *
 * DESIGN
 * Threads: the loop thread (loop_start, loop_cancel_fn, usually weft_sched_aop_done), the
 * scheduler thread (timeouts) and any thread that finishes an operation.
 * Invariants: an attempt is shared by the operation and its pending cancel posts through
 * attx.lrefs; the last holder frees it (acq_rel). A timed-out operation's cancel hook is run on
 * the loop thread; its record waits for weft_sched_aop_done (tasks.c).
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <weft/loop.h>

void weft__loop_unref(struct att *a)
{
    /* acq_rel: the last holder sees every write of the others before freeing. */
    if (atomic_fetch_sub_explicit(&weft__attx(a)->lrefs, 1, memory_order_acq_rel) == 1)
        weft__free(weft__attx(a));
}

void weft_sched_aop_done(weft_sched_aop_t *op, int status, void *value, size_t size,
                         weft_free_fn free_fn)
{
    struct att *a = (struct att *)((char *)op - offsetof(struct att, aop));
    struct attx *ax = weft__attx(a);
    atomic_store(&ax->lstate, 2);
    ax->res.status = status;
    ax->res.value = value;
    ax->res.size = size;
    ax->res.free_fn = free_fn;
    weft__attempt_finished(a->s, a, 0, 0, false);
    weft__loop_unref(a);
}

/* On the loop thread: start the async function (unless the attempt already timed out). */
static void loop_start(void *arg, int status)
{
    struct att *a = arg;
    struct attx *ax = weft__attx(a);
    a->aop.loop = a->s->loop;
    a->aop.arg = a->aarg;
    int rc = status;
    if (rc == 0 && (atomic_load(&a->flags) & A_ABANDONED)) rc = -ETIMEDOUT;
    if (rc == 0) {
        atomic_store(&ax->lstate, 1);
        weft_sched_t *prev = weft__in_sched;
        weft__in_sched = a->s;
        rc = a->afn(&a->aop);
        weft__in_sched = prev;
        if (rc == 0) return; /* it calls weft_sched_aop_done later */
    }
    atomic_store(&ax->lstate, 2);
    ax->res.status = rc;
    weft__attempt_finished(a->s, a, 0, 0, false);
    weft__loop_unref(a);
}

/* On the loop thread: abort a started operation (timeout or cancel). */
static void loop_cancel_fn(void *arg, int status)
{
    struct att *a = arg;
    if (status == 0 && atomic_load(&weft__attx(a)->lstate) == 1 && a->aop.cancel)
        a->aop.cancel(&a->aop);
    weft__loop_unref(a);
}

void weft_sched_aop_fail(weft_sched_aop_t *op, int status, const char *fmt, ...)
{
    struct att *a = (struct att *)((char *)op - offsetof(struct att, aop));
    if (fmt) {
        weft_buf_t b;
        weft_buf_init(&b, 4096);
        va_list ap;
        va_start(ap, fmt);
        weft_buf_vprintf(&b, fmt, ap);
        va_end(ap);
        size_t n;
        weft__attx(a)->res.msg = weft_buf_steal(&b, &n);
        weft_buf_free(&b);
    }
    weft_sched_aop_done(op, status, NULL, 0, NULL);
}

int weft__loop_launch(weft_sched_t *s, struct att *a)
{
    struct attx *ax = weft__attx(a);
    atomic_init(&ax->lrefs, 1);
    atomic_init(&ax->lstate, 0);
    ax->lw.fn = loop_start;
    ax->lw.arg = a;
    return weft_loop_post_work(s->loop, &ax->lw);
}

void weft__loop_cancel_post(weft_sched_t *s, struct att *a)
{
    /* The reference taken when it was listed (under mu) keeps it alive until then. */
    if (weft_loop_post(s->loop, loop_cancel_fn, a) < 0) weft__loop_unref(a);
}
