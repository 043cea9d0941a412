/* Threads mode: a weft thread pool of --threads workers, each with its own blocking HTTP
 * session (its connections reused) and head extractor. The scheduler on the loop thread submits
 * an attempt only when a worker is free, and gets each result back on the loop thread through
 * weft_loop_await. The seed's ThreadPoolExecutor(5).
 *
 * Threads: workers only touch their item (handed over by the pool's queue) and a worker context
 * taken from `free` under `mu`; the loop thread owns everything else. The future's completion
 * and the loop's handoff queue order a worker's writes to the item before the loop reads them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <weft/pool.h>

#include "crawl/fetch.h"
#include "crawl/run.h"

typedef struct worker_ctx {
    weft_http_session_t *session;
    crawl_fetcher_t *fetcher;
    struct worker_ctx *next;
} worker_ctx_t;

typedef struct threads_state {
    weft_pool_t *pool;
    pthread_mutex_t mu;
    worker_ctx_t *free; /* guarded by mu; one per thread, so never empty when a task runs */
} threads_state_t;

static int attempt_task(void *arg, weft_ctx_t *ctx)
{
    crawl_item_t *it = arg;
    crawl_run_t *r = it->run;
    threads_state_t *s = r->mode_state;
    pthread_mutex_lock(&s->mu);
    worker_ctx_t *w = s->free;
    s->free = w->next;
    pthread_mutex_unlock(&s->mu);
    weft_http_opts_t ho;
    crawl_fetch_prepare(r->o, it, w->fetcher, &ho);
    weft_http_resp_t resp = {0};
    weft_http_session_perform(w->session, &ho, &resp);
    crawl_fetch_finish(it, w->fetcher, &resp);
    it->http_version = 0; /* each worker has its own connection: HTTP/2 shares none here, so
                             --per-host keeps capping requests (connections) */
    weft_http_resp_free(&resp);
    pthread_mutex_lock(&s->mu);
    w->next = s->free;
    s->free = w;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void on_done(weft_future_t *f, void *arg, int status)
{
    crawl_item_t *it = arg;
    crawl_run_t *r = it->run;
    if (status == 0 && weft_future_status(f) < 0) { /* the task never ran */
        it->res.error = weft_future_status(f);
        it->res.error_kind = "other";
    }
    r->inflight--;
    crawl__attempt_end(r, it);
    crawl__pump(r);
}

static int start(crawl_run_t *r, crawl_item_t *it)
{
    threads_state_t *s = r->mode_state;
    weft_future_t *f;
    int rc = weft_pool_submit(s->pool, attempt_task, it, &f);
    if (rc < 0) return rc;
    rc = weft_loop_await(r->loop, f, on_done, it);
    weft_future_release(f);
    return rc;
}

static void kick(void *arg, int status)
{
    if (status == 0) crawl__pump(arg);
}

int crawl__mode_threads(crawl_run_t *r)
{
    threads_state_t s = {0};
    pthread_mutex_init(&s.mu, NULL);
    int rc = 0;
    for (int i = 0; i < r->o->threads && rc == 0; i++) {
        worker_ctx_t *w = calloc(1, sizeof *w);
        if (!w) {
            rc = -ENOMEM;
            break;
        }
        w->next = s.free;
        s.free = w;
        rc = weft_http_session_create(&w->session);
        if (rc == 0 && !(w->fetcher = crawl_fetcher_create())) rc = -ENOMEM;
    }
    weft_pool_opts_t po = {.threads = r->o->threads, .name = "crawl"};
    if (rc == 0) rc = weft_pool_create(&s.pool, &po);
    if (rc == 0) {
        r->mode_state = &s;
        r->start = start;
        rc = weft_loop_post(r->loop, kick, r);
        if (rc == 0) rc = weft_loop_run(r->loop);
        weft_pool_destroy(s.pool);
    }
    while (s.free) {
        worker_ctx_t *w = s.free;
        s.free = w->next;
        weft_http_session_destroy(w->session);
        crawl_fetcher_destroy(w->fetcher);
        free(w);
    }
    pthread_mutex_destroy(&s.mu);
    return rc;
}
