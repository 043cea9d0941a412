/* weft logs: threads mode (run.c has the design): one long pool task per worker claims chunks
 * and then pops stream blocks from a bounded queue the calling thread fills; the parts are
 * merged by one pool task per IPv4 partition plus one for the rest.
 */
#include "logs/run.h"

#include "logs/run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/buf.h>
#include <weft/err.h>
#include <weft/future.h>
#include <weft/pool.h>
#include <weft/procpool.h>
#include <weft/sys.h>
#include <zlib.h>

#include "common/cli-int.h"

#include "logs/run-int.h"

/* ---- the block queue (threads mode) ---------------------------------------------------- */

static void queue_push(run_t *r, block_t *b)
{
    pthread_mutex_lock(&r->mu);
    while (r->qlen >= r->qcap) pthread_cond_wait(&r->can_push, &r->mu);
    b->next = NULL;
    if (r->tail)
        r->tail->next = b;
    else
        r->head = b;
    r->tail = b;
    r->qlen++;
    pthread_cond_signal(&r->can_pop);
    pthread_mutex_unlock(&r->mu);
}

static block_t *queue_pop(run_t *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->head && !r->closed) pthread_cond_wait(&r->can_pop, &r->mu);
    block_t *b = r->head;
    if (b) {
        r->head = b->next;
        if (!r->head) r->tail = NULL;
        r->qlen--;
        pthread_cond_signal(&r->can_push);
    }
    pthread_mutex_unlock(&r->mu);
    return b;
}

static void queue_close(run_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->closed = true;
    pthread_cond_broadcast(&r->can_pop);
    pthread_mutex_unlock(&r->mu);
}

/* ---- workers (threads mode) ------------------------------------------------------------ */

typedef struct worker {
    run_t *run;
    weft_logs_part_t *part;
    char *buf; /* the pread buffer */
    size_t cap;
    int err; /* a read error */
} worker_t;

static int worker_fn(void *arg, weft_ctx_t *ctx)
{
    (void)ctx;
    worker_t *w = arg;
    run_t *r = w->run;
    weft_logs_chunkres_t res;
    for (;;) {
        /* relaxed: the counter only hands out indexes; the chunk data it guards was written
         * before the pool tasks were submitted (pool submission is the release edge). */
        size_t i = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
        if (i >= r->nchunks) break;
        chunk_t *c = &r->chunks[i];
        const input_t *in = &r->in[c->file];
        res.lines = 0;
        res.nbad = 0;
        if (in->map) {
            logs_run_analyze_map(in->map, in->size, c->start, c->end, &in->fmt, w->part, &res);
        } else {
            int rc = logs_run_analyze_fd(in->fd, in->size, c->start, c->end, &in->fmt, w->part,
                                         &res, &w->buf, &w->cap);
            if (rc == -ENOMEM) w->part->oom = rc;
            if (rc && rc != -ENOMEM && !w->err) w->err = rc;
        }
        if (logs_run_keep_bad(c, &res)) w->part->oom = -ENOMEM;
        /* relaxed: statistics for the progress bar, read with relaxed loads */
        atomic_fetch_add_explicit(&r->done_bytes, c->end - c->start, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->done_lines, res.lines, memory_order_relaxed);
    }
    block_t *b;
    while ((b = queue_pop(r)) != NULL) { /* the queue mutex orders the reader's writes */
        res.lines = 0;
        res.nbad = 0;
        weft_logs_analyze(&r->in[b->rec->file].fmt, b->data, b->len, w->part, &res);
        if (logs_run_keep_bad(b->rec, &res)) w->part->oom = -ENOMEM;
        atomic_fetch_add_explicit(&r->done_lines, res.lines, memory_order_relaxed); /* bar */
        free(b->data);
        free(b);
    }
    free(w->buf);
    w->buf = NULL;
    return w->part->oom ? w->part->oom : w->err;
}

typedef struct merge_task {
    weft_logs_part_t *dst;
    weft_logs_part_t **src;
    size_t n;
    int k; /* IPv4 partition, or -1 for the rest */
} merge_task_t;

static int merge_fn(void *arg, weft_ctx_t *ctx)
{
    (void)ctx;
    merge_task_t *m = arg;
    return m->k < 0 ? weft_logs_part_merge_rest(m->dst, m->src, m->n)
                    : weft_logs_part_merge_ip4(m->dst, m->src, m->n, m->k);
}

static int emit_queue(run_t *r, chunk_t *rec, char *data, size_t len, void *arg)
{
    (void)arg;
    block_t *b = malloc(sizeof *b);
    if (!b) {
        free(data);
        return logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    }
    b->rec = rec;
    b->data = data;
    b->len = len;
    queue_push(r, b);
    return 0;
}

/* ---- threads mode ---------------------------------------------------------------------- */

int logs_run_threads(run_t *r, weft_logs_run_result_t *res)
{
    int j = r->o->jobs;
    weft_pool_t *pool = NULL;
    weft_pool_opts_t po = {.threads = j, .name = "logs"};
    int rc = weft_pool_create(&pool, &po);
    if (rc)
        return logs_run_failf(r, WEFT_EXIT_INTERNAL, "cannot start threads: %s", weft_strerror(rc));
    worker_t *w = calloc((size_t)j, sizeof *w);
    weft_logs_part_t **parts = calloc((size_t)j, sizeof *parts);
    weft_future_t **fs = calloc((size_t)j, sizeof *fs);
    int code = 0;
    if (!w || !parts || !fs) code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    for (int i = 0; i < j && !code; i++) {
        parts[i] = weft_logs_part_create();
        if (!parts[i])
            code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
        else if (r->o->recount)
            logs_run_recount_setup(r->o->recount, parts[i]);
        w[i] = (worker_t){.run = r, .part = parts[i]};
    }
    uint64_t t0 = weft_now_ns();
    int submitted = 0;
    for (int i = 0; i < j && !code; i++) {
        rc = weft_pool_submit(pool, worker_fn, &w[i], &fs[i]);
        if (rc)
            code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "cannot submit: %s", weft_strerror(rc));
        else
            submitted++;
    }
    /* The calling thread is the reader for streams. */
    for (size_t i = 0; i < r->nin && !code; i++)
        if (r->in[i].stream)
            code = logs_run_read_stream(
                r, i, r->o->chunk_size ? r->o->chunk_size : WEFT_LOGS_BLOCK_DEFAULT, !r->o->format,
                emit_queue, NULL);
    queue_close(r);
    for (int i = 0; i < submitted; i++) {
        while (weft_future_wait(fs[i], 100000000) == -ETIMEDOUT) logs_run_progress(r);
        int st = weft_future_status(fs[i]);
        if (st && !code)
            code = logs_run_failf(r, st == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_FAILED,
                                  "worker failed: %s", weft_strerror(st));
        weft_future_release(fs[i]);
    }
    /* Drain blocks left behind if the workers stopped early. */
    for (block_t *b; (b = queue_pop(r)) != NULL;) {
        free(b->data);
        free(b);
    }
    res->scan_ns = weft_now_ns() - t0;

    if (!code) { /* merge: one task per IPv4 partition plus one for the rest */
        uint64_t m0 = weft_now_ns();
        merge_task_t mt[WEFT_LOGS_PARTS + 1];
        weft_future_t *mf[WEFT_LOGS_PARTS + 1] = {NULL};
        int nm = 0;
        for (int k = -1; k < WEFT_LOGS_PARTS && j > 1; k++) {
            mt[nm] = (merge_task_t){parts[0], parts, (size_t)j, k};
            if (weft_pool_submit(pool, merge_fn, &mt[nm], &mf[nm]) == 0)
                nm++;
            else if (merge_fn(&mt[nm], NULL) != 0)
                code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
        }
        for (int i = 0; i < nm; i++) {
            weft_future_wait(mf[i], -1);
            if (weft_future_status(mf[i]) != 0)
                code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
            weft_future_release(mf[i]);
        }
        if (parts[0]->oom) code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
        res->merge_ns = weft_now_ns() - m0;
    }
    weft_pool_destroy(pool);
    if (!code) {
        res->part = parts[0];
        parts[0] = NULL;
    }
    for (int i = 0; i < j && parts; i++) weft_logs_part_destroy(parts[i]);
    free(parts);
    free(w);
    free(fs);
    return code;
}
