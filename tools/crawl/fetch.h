/* One attempt at one URL, the same in every mode: the request options, the body streamed into
 * the head extractor as it arrives, and the response turned into a crawl_result_t. */
#ifndef WEFT_TOOLS_CRAWL_FETCH_H
#define WEFT_TOOLS_CRAWL_FETCH_H

#include <weft/http.h>

#include "crawl/crawl.h"
#include "crawl/hosts.h"
#include "crawl/htmlhead.h"

/* Per-attempt parsing state; one per thread (seq, threads) or per transfer (async). */
typedef struct crawl_fetcher {
    crawl_head_t *head;
    bool started, html;
    struct crawl_fetcher *next; /* free lists */
} crawl_fetcher_t;

/* Returns NULL on allocation failure. */
crawl_fetcher_t *crawl_fetcher_create(void);
void crawl_fetcher_destroy(crawl_fetcher_t *f);

/* Fills `ho` for an attempt at it->res.url, streaming into `f`. */
void crawl_fetch_prepare(const crawl_opts_t *o, crawl_item_t *it, crawl_fetcher_t *f,
                         weft_http_opts_t *ho);

/* Turns the response of an attempt into it->res (replacing the previous attempt's) and keeps
 * the Retry-After header in it->retry_after. Takes what it needs from resp. */
void crawl_fetch_finish(crawl_item_t *it, crawl_fetcher_t *f, weft_http_resp_t *resp);

/* The short name of an error, for summaries: "timeout", "http-5xx", ... */
const char *crawl_error_kind(int error, long status);

#endif
