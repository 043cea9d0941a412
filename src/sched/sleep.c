/* weft_sched_async_sleep: the loop route's simplest operation, a cancellable timer. Demos,
 * benchmarks and tests use it as the stand-in for I/O that waits without using a thread. */
#include <errno.h>
#include <stdint.h>
#include <weft/loop.h>
#include <weft/sched.h>

static void sleep_fire(weft_loop_timer_t *t, void *arg)
{
    weft_loop_timer_destroy(t);
    weft_sched_aop_done(arg, 0, NULL, 0, NULL);
}

/* Runs on the loop thread, like the timer it stops. */
static void sleep_cancel(weft_sched_aop_t *op)
{
    weft_loop_timer_destroy(op->data);
    weft_sched_aop_done(op, -ECANCELED, NULL, 0, NULL);
}

int weft_sched_async_sleep(weft_sched_aop_t *op)
{
    weft_loop_timer_t *t;
    int rc = weft_loop_timer_create(op->loop, sleep_fire, op, &t);
    if (rc < 0) return rc;
    op->data = t;
    op->cancel = sleep_cancel;
    return weft_loop_timer_start(t, (uint64_t)(uintptr_t)op->arg, 0);
}
