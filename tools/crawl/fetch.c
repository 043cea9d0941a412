/* One attempt at one URL (fetch.h). */
#include "crawl/fetch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft/err.h>

crawl_fetcher_t *crawl_fetcher_create(void)
{
    crawl_fetcher_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->head = crawl_head_create();
    if (!f->head) {
        free(f);
        return NULL;
    }
    return f;
}

void crawl_fetcher_destroy(crawl_fetcher_t *f)
{
    if (!f) return;
    crawl_head_destroy(f->head);
    free(f);
}

void crawl_result_free(crawl_result_t *r)
{
    free(r->url);
    free(r->final_url);
    free(r->title);
    free(r->description);
    r->url = r->final_url = r->title = r->description = NULL;
}

/* HTML, or nothing said: worth parsing. Images, JSON and the like are not. */
static bool is_html(const char *ct)
{
    if (!ct || !*ct) return true;
    return strncasecmp(ct, "text/html", 9) == 0 || strncasecmp(ct, "application/xhtml", 17) == 0;
}

static int on_data(void *arg, const char *data, size_t len, const weft_http_resp_t *resp)
{
    crawl_fetcher_t *f = arg;
    if (!f->started) {
        f->started = true;
        f->html = is_html(resp->content_type);
        if (f->html) crawl_head_reset(f->head, resp->content_type);
    }
    /* Once the head is done the rest is read and dropped: finishing the response keeps the
     * connection reusable, which is cheaper than a new connection for pages of normal size. */
    if (f->html && !crawl_head_done(f->head) && crawl_head_feed(f->head, data, len) < 0)
        return -ENOMEM;
    return 0;
}

void crawl_fetch_prepare(const crawl_opts_t *o, crawl_item_t *it, crawl_fetcher_t *f,
                         weft_http_opts_t *ho)
{
    f->started = f->html = false;
    memset(ho, 0, sizeof *ho);
    ho->url = it->next_url ? it->next_url : it->res.url;
    ho->connect_timeout_ms = o->connect_timeout_ms;
    ho->first_byte_timeout_ms = o->first_byte_timeout_ms;
    /* HTTP/2 (https): wait for the host's connection to multiplex rather than open another. */
    ho->pipewait = strncmp(ho->url, "https:", 6) == 0;
    ho->cacert = o->cacert;
    ho->insecure = o->insecure;
    ho->timeout_ms = o->timeout_ms;
    ho->low_speed_limit = o->low_speed_limit;
    ho->low_speed_time_s = o->low_speed_time_s;
    ho->max_redirects = -1; /* the engine follows them, through the host's token bucket */
    ho->max_body = o->max_body;
    ho->user_agent = o->user_agent;
    ho->on_data = on_data;
    ho->data_arg = f;
    if (it->robots) { /* the text itself, not a head */
        ho->on_data = NULL;
        ho->keep_body = true;
        ho->max_body = 512 * 1024; /* Google reads the first 500 KiB */
    }
}

const char *crawl_error_kind(int error, long status)
{
    switch (error) {
    case 0:
        return NULL;
    case WEFT_EHTTP:
        return status == 429 ? "http-429" : status >= 500 ? "http-5xx" : "http-4xx";
    case -ETIMEDOUT:
        return "timeout";
    case WEFT_ESLOW:
        return "too-slow";
    case -ECONNREFUSED:
        return "connect";
    case -ECONNRESET:
        return "connection-reset";
    case WEFT_EDNS:
        return "dns";
    case WEFT_ETLS:
        return "tls";
    case WEFT_EREDIRECTS:
        return "redirects";
    case -EMSGSIZE:
        return "body-cap";
    case -ECANCELED:
        return "cancelled";
    case -EINVAL:
        return "invalid-url";
    default:
        return "other";
    }
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void crawl_fetch_finish(crawl_item_t *it, crawl_fetcher_t *f, weft_http_resp_t *resp)
{
    crawl_result_t *r = &it->res;
    free(r->final_url);
    free(r->title);
    free(r->description);
    r->final_url = r->title = r->description = NULL;
    r->charset = r->charset_source = NULL;
    if (f->html && f->started) {
        crawl_head_finish(f->head);
        r->title = dup_or_null(crawl_head_title(f->head));
        r->description = dup_or_null(crawl_head_description(f->head));
        r->charset = crawl_head_charset(f->head);
        r->charset_source = crawl_head_charset_source(f->head);
    }
    r->final_url = resp->final_url;
    resp->final_url = NULL;
    free(it->retry_after);
    it->retry_after = resp->retry_after;
    resp->retry_after = NULL;
    r->status = resp->status;
    it->http_version = resp->http_version;
    if (it->robots && resp->error == 0 && resp->status >= 200 && resp->status < 300 &&
        !it->robots_body) {
        it->robots_body = malloc(resp->body.len + 1);
        if (it->robots_body) {
            if (resp->body.len) memcpy(it->robots_body, resp->body.data, resp->body.len);
            it->robots_body[resp->body.len] = '\0';
            it->robots_len = resp->body.len;
        }
    }
    free(it->location);
    it->location = NULL;
    if (resp->error == 0 && resp->location && resp->status >= 300 && resp->status < 400) {
        it->location = resp->location; /* run.c follows it */
        resp->location = NULL;
    }
    r->bytes = resp->bytes;
    r->ms = (double)resp->t.total_us / 1000.0;
    r->dns_ms = (double)resp->t.dns_us / 1000.0;
    r->connect_ms = (double)resp->t.connect_us / 1000.0;
    r->tls_ms = (double)resp->t.tls_us / 1000.0;
    r->ttfb_ms = (double)resp->t.first_byte_us / 1000.0;
    r->truncated = false;
    r->error = resp->error;
    r->error_msg[0] = '\0';
    if (r->error == -EMSGSIZE && f->html && crawl_head_complete(f->head)) {
        r->error = 0; /* the head was complete: a long page is not a failed one */
        r->truncated = true;
    }
    if (r->error == 0 && r->status >= 400) {
        r->error = WEFT_EHTTP;
        snprintf(r->error_msg, sizeof r->error_msg, "HTTP %ld", r->status);
    } else if (r->error) {
        snprintf(r->error_msg, sizeof r->error_msg, "%s",
                 resp->errmsg[0] ? resp->errmsg : weft_strerror(r->error));
    }
    r->error_kind = crawl_error_kind(r->error, r->status);
}
