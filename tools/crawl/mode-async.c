/* Async mode: up to --concurrency transfers at once on one event loop (weft_http_start:
 * libcurl's multi interface on libuv), each body streamed into its own head extractor as it
 * arrives. The seed's asyncio + aiohttp. */
#include <errno.h>
#include <stdlib.h>

#include "crawl/fetch.h"
#include "crawl/run.h"

typedef struct async_state {
    crawl_fetcher_t *free; /* extractors not in use; at most --concurrency exist */
} async_state_t;

static void on_done(weft_http_t *h, weft_http_resp_t *resp, void *arg)
{
    crawl_item_t *it = arg;
    crawl_run_t *r = it->run;
    async_state_t *s = r->mode_state;
    crawl_fetcher_t *f = it->slot;
    crawl_fetch_finish(it, f, resp);
    f->next = s->free;
    s->free = f;
    r->inflight--;
    crawl__attempt_end(r, it);
    crawl__pump(r);
}

static int start(crawl_run_t *r, crawl_item_t *it)
{
    async_state_t *s = r->mode_state;
    crawl_fetcher_t *f = s->free;
    if (f)
        s->free = f->next;
    else if (!(f = crawl_fetcher_create()))
        return -ENOMEM;
    it->slot = f;
    weft_http_opts_t ho;
    crawl_fetch_prepare(r->o, it, f, &ho);
    int rc = weft_http_start(r->loop, &ho, on_done, it, NULL);
    if (rc < 0) {
        f->next = s->free;
        s->free = f;
    }
    return rc;
}

static void kick(void *arg, int status)
{
    if (status == 0) crawl__pump(arg);
}

int crawl__mode_async(crawl_run_t *r)
{
    async_state_t s = {0};
    r->mode_state = &s;
    r->start = start;
    int rc = weft_loop_post(r->loop, kick, r);
    if (rc == 0) rc = weft_loop_run(r->loop);
    while (s.free) {
        crawl_fetcher_t *f = s.free;
        s.free = f->next;
        crawl_fetcher_destroy(f);
    }
    return rc;
}
