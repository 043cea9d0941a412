/* weft logs: W3C extended log files (IIS, CloudFront): the `#Fields:` directive names the
 * columns, which become an nginx-style string compiled like any other (format.c).
 *
 * IIS separates fields by one space and writes time-taken in milliseconds; CloudFront separates
 * them by tabs and writes time-taken in seconds. Both write date and time as two UTC fields.
 * Fields that the statistics do not use become plain skipped fields. Lines starting with '#'
 * are directives (#Version, #Date, #Fields, ... also repeated mid-file when the server
 * restarts): the analysis skips them (f->directives).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "logs/format-int.h"

/* W3C field names (case-insensitive) and the variables they become. */
static const struct {
    const char *field, *var;
} w3c_vars[] = {
    {"date", "date_utc"},
    {"time", "time_utc"},
    {"c-ip", "remote_addr"},
    {"cs-method", "request_method"},
    {"cs-uri-stem", "uri"},
    {"sc-status", "status"},
    {"sc-bytes", "body_bytes_sent"},
    {"cs(User-Agent)", "http_user_agent"},
    {"cs(Referer)", "http_referer"},
    {"x-host-header", "host"}, /* CloudFront: the Host the viewer asked for */
    {"cs-host", "host"},
    {"cs(Host)", "host"}, /* CloudFront: the distribution's domain, after x-host-header */
    {"cs-version", "server_protocol"},
    {"cs-protocol-version", "server_protocol"},
};

int weft_logs__w3c_to_nginx(const char *fields, size_t len, char sep, char *out, size_t outlen,
                            bool *cloudfront, char *err, size_t errlen)
{
    const char *p = fields, *end = fields + len;
    size_t o = 0, n = 0;
    *cloudfront = false;
    for (const char *q = p; q + 7 <= end; q++)
        if (strncasecmp(q, "x-edge-", 7) == 0) *cloudfront = true;
    /* x-host-header is preferred to cs(Host): ask for it first by leaving cs(Host) unnamed */
    bool has_xhost = false;
    for (const char *q = p; q + 13 <= end; q++)
        if (strncasecmp(q, "x-host-header", 13) == 0) has_xhost = true;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p == end) break;
        const char *e = p;
        while (e < end && *e != ' ' && *e != '\t') e++;
        size_t flen = (size_t)(e - p);
        const char *var = NULL;
        for (size_t i = 0; i < sizeof w3c_vars / sizeof w3c_vars[0] && !var; i++)
            if (strlen(w3c_vars[i].field) == flen && strncasecmp(p, w3c_vars[i].field, flen) == 0)
                var = w3c_vars[i].var;
        if (var && has_xhost && flen == 8 && strncasecmp(p, "cs(Host)", 8) == 0) var = NULL;
        if (flen == 10 && strncasecmp(p, "time-taken", 10) == 0)
            var = sep == '\t' ? "request_time" : "request_time_ms";
        char tok[48];
        if (var)
            snprintf(tok, sizeof tok, "%s$%s", n ? (sep == '\t' ? "\t" : " ") : "", var);
        else
            snprintf(tok, sizeof tok, "%s$w3c_%zu", n ? (sep == '\t' ? "\t" : " ") : "", n);
        size_t tl = strlen(tok);
        if (o + tl >= outlen) {
            if (err && errlen) snprintf(err, errlen, "W3C #Fields: line too long");
            return -EINVAL;
        }
        memcpy(out + o, tok, tl);
        o += tl;
        n++;
        p = e;
    }
    out[o] = '\0';
    if (!n) {
        if (err && errlen) snprintf(err, errlen, "W3C #Fields: line names no field");
        return -EINVAL;
    }
    return 0;
}

bool weft_logs__w3c_find_fields(const char *data, size_t len, const char **fields, size_t *flen,
                                char *sep)
{
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le > p && le[-1] == '\r') le--;
        if (le - p >= 8 && memcmp(p, "#Fields:", 8) == 0) {
            const char *f = p + 8;
            while (f < le && (*f == ' ' || *f == '\t')) f++;
            *fields = f;
            *flen = (size_t)(le - f);
            /* the first entry line after it tells the separator; without one, CloudFront's
             * field names do */
            *sep = ' ';
            for (const char *q = f; q + 7 <= le; q++)
                if (strncasecmp(q, "x-edge-", 7) == 0) *sep = '\t';
            for (const char *q = nl ? nl + 1 : end; q < end;) {
                const char *n2 = memchr(q, '\n', (size_t)(end - q));
                const char *e2 = n2 ? n2 : end;
                if (e2 > q && *q != '#') {
                    *sep = memchr(q, '\t', (size_t)(e2 - q)) ? '\t' : ' ';
                    break;
                }
                q = n2 ? n2 + 1 : end;
            }
            return true;
        }
        p = nl ? nl + 1 : end;
    }
    return false;
}

/* The next field name of [*p, end): its start, and *p moved past it; NULL at the end. */
static const char *next_field(const char **p, const char *end, size_t *n)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    const char *e = s;
    while (e < end && *e != ' ' && *e != '\t') e++;
    *p = e;
    *n = (size_t)(e - s);
    return e > s ? s : NULL;
}

bool weft_logs__w3c_same_fields(const char *a, size_t alen, const char *b, size_t blen)
{
    const char *pa = a, *ea = a + alen, *pb = b, *eb = b + blen;
    for (;;) {
        size_t na, nb;
        const char *fa = next_field(&pa, ea, &na), *fb = next_field(&pb, eb, &nb);
        if (!fa || !fb) return !fa && !fb;
        if (na != nb || strncasecmp(fa, fb, na) != 0) return false;
    }
}
