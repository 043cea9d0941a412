/* URL input streaming and validation (input.h). */
#include "crawl/input.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct crawl_input {
    FILE *f;
    char *buf;
    size_t cap;
    uint64_t line, offset;
};

int crawl_input_open(crawl_input_t **out, FILE *f)
{
    *out = NULL;
    crawl_input_t *in = calloc(1, sizeof *in);
    if (!in) return -ENOMEM;
    in->f = f;
    *out = in;
    return 0;
}

void crawl_input_close(crawl_input_t *in)
{
    if (!in) return;
    free(in->buf);
    free(in);
}

uint64_t crawl_input_offset(const crawl_input_t *in)
{
    return in->offset;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A decimal number without a leading zero ("0" itself allowed), at most `max`, from p to end. */
static bool decimal(const char *p, const char *end, unsigned max)
{
    if (p == end || end - p > 5 || (*p == '0' && end - p > 1)) return false;
    unsigned v = 0;
    for (; p < end; p++) {
        if (!is_digit(*p)) return false;
        v = v * 10 + (unsigned)(*p - '0');
    }
    return v <= max;
}

/* The host key of a plain URL, for which libcurl's parser is known to agree (url_check_fast
 * test): "http://" or "https://"; a host of dot-separated labels of ASCII letters, digits and
 * '-' whose last label starts with a letter, or four decimal parts 0..255 (libcurl rewrites
 * other numeric forms, such as 127.1); an optional port 1..65535; then the end or '/', '?',
 * '#' (the rest has no space or control character: checked before). False: ask libcurl. */
static bool plain_key(const char *url, char host[CRAWL_HOSTKEY_MAX])
{
    bool tls = strncmp(url, "https://", 8) == 0;
    if (!tls && strncmp(url, "http://", 7) != 0) return false;
    const char *h = url + (tls ? 8 : 7), *p = h, *last = h;
    int labels = 0;
    bool numeric = true;
    for (;; p++) {
        if (*p == '.' || *p == ':' || *p == '/' || *p == '?' || *p == '#' || !*p) {
            if (p == last) return false; /* an empty label */
            if (numeric && !decimal(last, p, 255)) numeric = false;
            labels++;
            if (*p != '.') break;
            last = p + 1;
            continue;
        }
        unsigned char c = (unsigned char)*p;
        if (!(is_digit(*p) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '-')) return false;
    }
    if (numeric ? labels != 4 : is_digit(*last) || *last == '-') return false;
    size_t hl = (size_t)(p - h);
    const char *port = tls ? "443" : "80", *pe = port + strlen(port);
    if (*p == ':') {
        port = ++p;
        while (is_digit(*p)) p++;
        pe = p;
        if (!decimal(port, pe, 65535) || *port == '0') return false;
    }
    if (*p && *p != '/' && *p != '?' && *p != '#') return false;
    size_t sl = tls ? 5 : 4, pl = (size_t)(pe - port);
    if (sl + 3 + hl + 1 + pl >= CRAWL_HOSTKEY_MAX) return false;
    char *o = host;
    memcpy(o, url, sl + 3);
    o += sl + 3;
    for (size_t i = 0; i < hl; i++) *o++ = (char)tolower((unsigned char)h[i]);
    *o++ = ':';
    memcpy(o, port, pl);
    o[pl] = '\0';
    return true;
}

const char *crawl_url_check(const char *url, char host[CRAWL_HOSTKEY_MAX])
{
    host[0] = '\0';
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= ' ' || *p == 0x7F) return "URL contains a space or control character";
    if (plain_key(url, host)) return NULL;
    return crawl_url_check_curl(url, host);
}

const char *crawl_url_check_curl(const char *url, char host[CRAWL_HOSTKEY_MAX])
{
    host[0] = '\0';
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= ' ' || *p == 0x7F) return "URL contains a space or control character";
    CURLU *u = curl_url();
    if (!u) return "out of memory";
    const char *why = NULL;
    char *scheme = NULL, *h = NULL, *port = NULL;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc != CURLUE_OK) {
        why = rc == CURLUE_BAD_SCHEME || rc == CURLUE_UNSUPPORTED_SCHEME
                  ? "not an http:// or https:// URL"
                  : "malformed URL";
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        why = "not an http:// or https:// URL";
    } else if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !*h) {
        why = "URL has no host";
    } else if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        why = "URL has a bad port";
    } else if (strlen(scheme) + strlen(h) + strlen(port) + 5 >= CRAWL_HOSTKEY_MAX) {
        why = "host name too long";
    } else {
        snprintf(host, CRAWL_HOSTKEY_MAX, "%s://%s:%s", scheme, h, port);
        for (char *p = host; *p; p++) *p = (char)tolower((unsigned char)*p);
    }
    curl_free(scheme);
    curl_free(h);
    curl_free(port);
    curl_url_cleanup(u);
    return why;
}

int crawl_input_next(crawl_input_t *in, crawl_line_t *out)
{
    for (;;) {
        errno = 0;
        ssize_t n = getline(&in->buf, &in->cap, in->f);
        if (n < 0) {
            if (ferror(in->f)) return -EIO;
            return 0;
        }
        in->line++;
        in->offset += (uint64_t)n;
        char *s = in->buf, *e = in->buf + n;
        if (in->line == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3; /* a BOM */
        bool nul = memchr(s, '\0', (size_t)(e - s)) != NULL;
        while (s < e && isspace((unsigned char)*s)) s++;
        while (e > s && isspace((unsigned char)e[-1])) e--;
        *e = '\0';
        if (s == e || *s == '#') continue;
        memset(out, 0, sizeof *out);
        out->line = in->line;
        if (nul) out->invalid = "line contains a NUL byte"; /* the URL would end there */
        if ((size_t)(e - s) >= CRAWL_URL_MAX) {
            s[CRAWL_URL_MAX - 1] = '\0'; /* keep the beginning, for the error message */
            s[64] = '\0';
            out->invalid = "line too long";
        }
        out->url = strdup(s);
        if (!out->url) return -ENOMEM;
        if (!out->invalid) out->invalid = crawl_url_check(out->url, out->host);
        return 1;
    }
}

int crawl_input_count(FILE *f, uint64_t *n)
{
    *n = 0;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        const char *s = buf, *e = buf + len;
        if (s + 3 <= e && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
        while (s < e && isspace((unsigned char)*s)) s++;
        if (s < e && *s != '#') (*n)++;
    }
    free(buf);
    int rc = ferror(f) ? -EIO : 0;
    clearerr(f);
    if (fseeko(f, 0, SEEK_SET) != 0) rc = -errno;
    return rc;
}
