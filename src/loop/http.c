/* HTTP transfers with libcurl: the easy-handle configuration and result collection that the
 * event loop (loop-http.c) and the blocking session below share, so that sequential, threaded and
 * asynchronous fetching behave identically (timeouts, redirects, compression, body cap).
 *
 * DESIGN
 * Threads: a session is used by one thread at a time; an easy handle configured here belongs to
 * one transfer at a time, on the thread that drives it (the loop thread, or the session's
 * caller). curl_global_init runs once (pthread_once) before the first handle exists; libcurl
 * itself is thread-safe for distinct handles. No locks here.
 */
#include "loop/loop-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft/err.h>
#include <weft/sys.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;
static char default_ua[32]; /* written once, under global_once */

static void global_init(void)
{
    snprintf(default_ua, sizeof default_ua, "weft/%s", weft_version());
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -ENOMEM;
}

int weft__http_global_init(void)
{
    pthread_once(&global_once, global_init);
    return global_rc;
}

void weft_http_resp_free(weft_http_resp_t *r)
{
    if (!r) return;
    weft__free(r->final_url);
    weft__free(r->content_type);
    weft__free(r->retry_after);
    weft__free(r->location);
    weft_buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

/* ---- curl callbacks ---- */

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    weft__xfer_t *x = arg;
    size_t len = size * n;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) { /* a new response (after a redirect) */
        weft__free(x->resp->retry_after);
        x->resp->retry_after = NULL;
    } else if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
        const char *v = buf + 12, *e = buf + len;
        while (v < e && (*v == ' ' || *v == '\t')) v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) e--;
        size_t vl = (size_t)(e - v);
        if (vl > 128) vl = 128;
        char *copy = weft__malloc(vl + 1);
        if (!copy) return 0; /* fails the transfer with CURLE_WRITE_ERROR */
        memcpy(copy, v, vl);
        copy[vl] = '\0';
        weft__free(x->resp->retry_after);
        x->resp->retry_after = copy;
    }
    return len;
}

static char *dup_or_null(const char *s)
{
    return s ? weft__strdup(s) : NULL;
}

static size_t on_write(char *data, size_t size, size_t n, void *arg)
{
    weft__xfer_t *x = arg;
    weft_http_resp_t *r = x->resp;
    size_t len = size * n;
    if (!x->body_started) { /* the final response's status and type, for on_data */
        x->body_started = true;
        char *ct = NULL;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
        if (ct && !r->content_type && !(r->content_type = weft__strdup(ct))) {
            x->abort_error = -ENOMEM;
            return 0;
        }
    }
    size_t allowed = len;
    bool over = false;
    if (r->bytes + len > x->o.max_body) {
        allowed = (size_t)(x->o.max_body - r->bytes);
        over = true;
    }
    if (allowed) {
        r->bytes += allowed;
        if (x->o.keep_body && weft_buf_append(&r->body, data, allowed) < 0) {
            x->abort_error = -ENOMEM;
            return 0;
        }
        if (x->o.on_data) {
            int rc = x->o.on_data(x->o.data_arg, data, allowed, r);
            if (rc < 0) {
                x->abort_error = rc;
                return 0;
            }
            if (rc > 0) {
                r->stopped = true;
                return 0;
            }
        }
    }
    if (over) {
        x->abort_error = -EMSGSIZE;
        return 0;
    }
    return len;
}

static uint64_t info_us(CURL *e, CURLINFO what);

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    weft__xfer_t *x = arg;
    /* Relaxed: a cancel flag is a request; seeing it one callback later is fine, and the
     * transfer result carries no data written before the flag. */
    if (x->o.cancel && atomic_load_explicit(x->o.cancel, memory_order_relaxed)) return 1;
    if (x->cancel_future && weft_future_cancel_requested(x->cancel_future)) return 1;
    if (x->o.first_byte_timeout_ms > 0 && info_us(x->easy, CURLINFO_STARTTRANSFER_TIME_T) == 0 &&
        info_us(x->easy, CURLINFO_TOTAL_TIME_T) >= (uint64_t)x->o.first_byte_timeout_ms * 1000) {
        x->abort_error = -ETIMEDOUT;
        return 1;
    }
    return 0;
}

int weft__xfer_setup(CURL *e, weft__xfer_t *x, const weft_http_opts_t *opts, weft_http_resp_t *resp,
                     weft_future_t *cancel_future)
{
    memset(x, 0, sizeof *x);
    if (!opts || !opts->url || !*opts->url) return -EINVAL;
    x->o = *opts;
    x->resp = resp;
    x->easy = e;
    x->cancel_future = cancel_future;
    if (x->o.connect_timeout_ms <= 0) x->o.connect_timeout_ms = 10000;
    if (x->o.timeout_ms <= 0) x->o.timeout_ms = 30000;
    if (x->o.max_redirects == 0) x->o.max_redirects = 10;
    if (x->o.max_body == 0) x->o.max_body = 8u << 20;
    weft_buf_init(&resp->body, x->o.max_body);

    curl_easy_reset(e);
    CURLcode c = CURLE_OK;
#define SET(opt, val)                                                                              \
    if (c == CURLE_OK) c = curl_easy_setopt(e, opt, val)
    SET(CURLOPT_URL, x->o.url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, x->o.connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, x->o.timeout_ms);
    if (x->o.low_speed_limit > 0 && x->o.low_speed_time_s > 0) {
        SET(CURLOPT_LOW_SPEED_LIMIT, x->o.low_speed_limit);
        SET(CURLOPT_LOW_SPEED_TIME, x->o.low_speed_time_s);
    }
    if (x->o.max_redirects > 0) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)x->o.max_redirects);
    }
    SET(CURLOPT_ACCEPT_ENCODING, ""); /* every encoding this libcurl can decode */
    SET(CURLOPT_USERAGENT, x->o.user_agent ? x->o.user_agent : default_ua);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    if (x->o.pipewait) SET(CURLOPT_PIPEWAIT, 1L);
    const char *ca = x->o.cacert;
    if (!ca || !*ca) ca = getenv("CURL_CA_BUNDLE");
    if (!ca || !*ca) ca = getenv("SSL_CERT_FILE");
    if (ca && *ca) SET(CURLOPT_CAINFO, ca);
    if (x->o.insecure) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (x->o.post_body) {
        /* COPYPOSTFIELDS: libcurl keeps its own copy, so the caller's body may go at once. */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->o.post_len);
        SET(CURLOPT_COPYPOSTFIELDS, x->o.post_body);
    }
    for (const char *const *hp = x->o.headers; hp && *hp && c == CURLE_OK; hp++) {
        struct curl_slist *n = curl_slist_append(x->headers, *hp);
        if (!n)
            c = CURLE_OUT_OF_MEMORY;
        else
            x->headers = n;
    }
    if (x->headers) SET(CURLOPT_HTTPHEADER, x->headers);
    if (x->o.cancel || x->cancel_future || x->o.first_byte_timeout_ms > 0) {
        SET(CURLOPT_XFERINFOFUNCTION, on_progress);
        SET(CURLOPT_XFERINFODATA, x);
        SET(CURLOPT_NOPROGRESS, 0L);
    }
#undef SET
    x->o.post_body = NULL; /* copied by libcurl; the caller's pointer may dangle later */
    x->o.headers = NULL;   /* copied into x->headers */
    if (c != CURLE_OK) weft__xfer_release(x);
    if (c == CURLE_OUT_OF_MEMORY) return -ENOMEM;
    if (c != CURLE_OK) return -EINVAL;
    return 0;
}

void weft__xfer_release(weft__xfer_t *x)
{
    curl_slist_free_all(x->headers);
    x->headers = NULL;
}

static int map_error(CURLcode code, weft__xfer_t *x)
{
    switch (code) {
    case CURLE_OK:
        return 0;
    case CURLE_WRITE_ERROR:
        if (x->resp->stopped) return 0;
        return x->abort_error ? x->abort_error : -EIO;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return WEFT_EDNS;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        /* "Too slow" only for a server that started answering: silence is a timeout. */
        return strstr(x->errbuf, "too slow") && info_us(x->easy, CURLINFO_STARTTRANSFER_TIME_T) != 0
                   ? WEFT_ESLOW
                   : -ETIMEDOUT;
    case CURLE_TOO_MANY_REDIRECTS:
        return WEFT_EREDIRECTS;
    case CURLE_ABORTED_BY_CALLBACK:
        return x->abort_error ? x->abort_error : -ECANCELED;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return WEFT_ETLS;
    default:
        return -EPROTO;
    }
}

static uint64_t info_us(CURL *e, CURLINFO what)
{
    curl_off_t v = 0;
    if (curl_easy_getinfo(e, what, &v) != CURLE_OK || v < 0) return 0;
    return (uint64_t)v;
}

void weft__xfer_finish(CURL *e, weft__xfer_t *x, CURLcode code)
{
    weft_http_resp_t *r = x->resp;
    r->curl_code = (int)code;
    r->error = map_error(code, x);
    if (r->error && code != CURLE_OK) {
        const char *m = x->errbuf[0] ? x->errbuf : curl_easy_strerror(code);
        snprintf(r->errmsg, sizeof r->errmsg, "%s", m);
        size_t l = strlen(r->errmsg);
        while (l && (r->errmsg[l - 1] == '\n' || r->errmsg[l - 1] == '\r')) r->errmsg[--l] = 0;
    }
    /* One message for a reset, whichever interface ran the transfer: the multi interface only
     * knows that poll reported an error on the socket. */
    if (r->error == -ECONNRESET && (code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR))
        snprintf(r->errmsg, sizeof r->errmsg, "Connection reset by peer");
    if (r->error == -ETIMEDOUT && code == CURLE_ABORTED_BY_CALLBACK)
        snprintf(r->errmsg, sizeof r->errmsg, "no response within %ld ms",
                 x->o.first_byte_timeout_ms);
    if (r->error == -EMSGSIZE)
        snprintf(r->errmsg, sizeof r->errmsg, "body larger than %zu bytes", x->o.max_body);
    long status = 0, redirects = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &redirects);
    r->status = status;
    r->redirects = redirects;
    long ver = 0;
    curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
    r->http_version = ver == CURL_HTTP_VERSION_1_0   ? 10
                      : ver == CURL_HTTP_VERSION_1_1 ? 11
                      : ver == CURL_HTTP_VERSION_2_0 ? 20
                      : ver == CURL_HTTP_VERSION_3   ? 30
                                                     : 0;
    char *u = NULL, *ct = NULL;
    curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &u);
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
    if (!r->final_url) r->final_url = dup_or_null(u);
    if (!r->content_type) r->content_type = dup_or_null(ct);
    char *loc = NULL;
    if (!r->location && status >= 300 && status < 400 &&
        curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK)
        r->location = dup_or_null(loc);
    r->t.dns_us = info_us(e, CURLINFO_NAMELOOKUP_TIME_T);
    r->t.connect_us = info_us(e, CURLINFO_CONNECT_TIME_T);
    r->t.tls_us = info_us(e, CURLINFO_APPCONNECT_TIME_T);
    r->t.first_byte_us = info_us(e, CURLINFO_STARTTRANSFER_TIME_T);
    r->t.total_us = info_us(e, CURLINFO_TOTAL_TIME_T);
    r->t.redirect_us = info_us(e, CURLINFO_REDIRECT_TIME_T);
    weft__xfer_release(x);
}

/* ---- blocking session ---- */

struct weft_http_session {
    CURL *easy;
};

int weft_http_session_create(weft_http_session_t **out)
{
    *out = NULL;
    if (weft__http_global_init() < 0) return -ENOMEM;
    weft_http_session_t *s = weft__calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->easy = curl_easy_init();
    if (!s->easy) {
        weft__free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

int weft_http_session_perform(weft_http_session_t *s, const weft_http_opts_t *opts,
                              weft_http_resp_t *resp)
{
    weft__xfer_t x;
    int rc = weft__xfer_setup(s->easy, &x, opts, resp, NULL);
    if (rc < 0) {
        resp->error = rc;
        snprintf(resp->errmsg, sizeof resp->errmsg, "%s", weft_strerror(rc));
        return rc;
    }
    CURLcode code = curl_easy_perform(s->easy);
    weft__xfer_finish(s->easy, &x, code);
    return resp->error;
}

void weft_http_session_destroy(weft_http_session_t *s)
{
    if (!s) return;
    curl_easy_cleanup(s->easy);
    weft__free(s);
}
