/* Sequential mode: one request at a time on the calling thread, with one HTTP session (so its
 * connection is reused) and one head extractor. The seed's "for url in urls" loop. */
#include <errno.h>
#include <time.h>
#include <weft/sys.h>

#include "crawl/fetch.h"
#include "crawl/run.h"

static void sleep_until(uint64_t t)
{
    uint64_t now = weft_now_ns();
    if (t <= now) return;
    uint64_t d = t - now;
    if (d > 1000000000u) d = 1000000000u; /* wake at least once a second */
    struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
    nanosleep(&ts, NULL);
}

int crawl__mode_seq(crawl_run_t *r)
{
    weft_http_session_t *s;
    int rc = weft_http_session_create(&s);
    if (rc < 0) return rc;
    crawl_fetcher_t *f = crawl_fetcher_create();
    if (!f) {
        weft_http_session_destroy(s);
        return -ENOMEM;
    }
    r->st->max_inflight = 1;
    for (;;) {
        uint64_t wake, now = weft_now_ns();
        crawl_item_t *it = crawl_dispatch_next(r->d, now, &wake);
        if (it && it->invalid) {
            crawl__finish(r, it);
        } else if (it) {
            crawl__attempt_begin(r, it, now);
            weft_http_opts_t ho;
            crawl_fetch_prepare(r->o, it, f, &ho);
            weft_http_resp_t resp = {0};
            weft_http_session_perform(s, &ho, &resp);
            crawl_fetch_finish(it, f, &resp);
            weft_http_resp_free(&resp);
            crawl__attempt_end(r, it);
        } else if (crawl_dispatch_idle(r->d) || crawl_dispatch_error(r->d) || wake == UINT64_MAX) {
            break;
        } else {
            sleep_until(wake); /* the rate limiter, or a retry's backoff */
        }
    }
    crawl_fetcher_destroy(f);
    weft_http_session_destroy(s);
    return 0;
}
