/* Retry policy for `weft crawl`: --attempts attempts in all on timeouts, connection errors, 408,
 * 429 and 5xx, never on other 4xx; between attempts a full-jitter exponential backoff
 * (uniform in [0, min(max, base * 2^(n-1))] after attempt n); a Retry-After header (seconds or an
 * HTTP date) is a lower bound on the wait, and one beyond --retry-after-max gives up at once. */
#ifndef WEFT_TOOLS_CRAWL_RETRY_H
#define WEFT_TOOLS_CRAWL_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "crawl/crawl.h"

typedef enum crawl_retry {
    CRAWL_RETRY_NO,     /* final: success, a permanent failure, or attempts used up */
    CRAWL_RETRY_YES,    /* try again after *delay_ns */
    CRAWL_RETRY_GIVE_UP /* the server asked for a wait beyond the cap: final, explained */
} crawl_retry_t;

/* True if the failure in `r` is worth another attempt. */
bool crawl_retryable(const crawl_result_t *r);

/* Parses a Retry-After value at wall-clock time `now`: delta-seconds or an HTTP date (a past
 * date means 0). Returns true and sets *ms on success. */
bool crawl_retry_after_ms(const char *value, time_t now, uint64_t *ms);

/* Decides what to do after attempt number `attempts` (1-based) ended with `r`. `retry_after`
 * is the response's header or NULL; `rng` a per-run random state. On GIVE_UP a reason is written
 * to `why`. */
crawl_retry_t crawl_retry_decide(const crawl_opts_t *o, const crawl_result_t *r,
                                 const char *retry_after, uint64_t *rng, uint64_t *delay_ns,
                                 char *why, size_t why_size);

#endif
