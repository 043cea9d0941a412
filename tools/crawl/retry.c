/* Retry policy (retry.h). */
#include "crawl/retry.h"

#include <weft/sys.h>

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft/err.h>

bool crawl_retryable(const crawl_result_t *r)
{
    switch (r->error) {
    case -ETIMEDOUT:
    case WEFT_ESLOW:
    case -ECONNREFUSED:
    case -ECONNRESET:
        return true;
    case WEFT_EHTTP:
        return r->status == 408 || r->status == 429 || (r->status >= 500 && r->status <= 599);
    default:
        return false;
    }
}

bool crawl_retry_after_ms(const char *v, time_t now, uint64_t *ms)
{
    if (!v) return false;
    while (*v == ' ' || *v == '\t') v++;
    if (isdigit((unsigned char)*v)) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ' || *end == '\t') end++;
        if (*end || errno) return false;
        *ms = s > UINT64_MAX / 1000 ? UINT64_MAX : s * 1000;
        return true;
    }
    time_t t = curl_getdate(v, NULL); /* RFC 1123, RFC 850 and asctime dates */
    if (t < 0) return false;
    *ms = t > now ? (uint64_t)(t - now) * 1000 : 0;
    return true;
}

crawl_retry_t crawl_retry_decide(const crawl_opts_t *o, const crawl_result_t *r,
                                 const char *retry_after, uint64_t *rng, uint64_t *delay_ns,
                                 char *why, size_t why_size)
{
    *delay_ns = 0;
    if (!crawl_retryable(r) || r->attempts >= o->attempts) return CRAWL_RETRY_NO;
    uint64_t ms = weft_backoff(o->backoff_base_ms, o->backoff_max_ms, r->attempts, rng);
    uint64_t ra;
    if (crawl_retry_after_ms(retry_after, time(NULL), &ra)) {
        if (ra > o->retry_after_max_ms) {
            snprintf(why, why_size, "gave up: Retry-After asks for %llu s, beyond the %llu s cap",
                     (unsigned long long)(ra / 1000),
                     (unsigned long long)(o->retry_after_max_ms / 1000));
            return CRAWL_RETRY_GIVE_UP;
        }
        if (ra > ms) ms = ra;
    }
    *delay_ns = ms * 1000000u;
    return CRAWL_RETRY_YES;
}
