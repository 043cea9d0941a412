/* weft logs: Caddy's JSON access-log lines (the "caddy" preset), read by a small JSON scanner.
 *
 * One line is one JSON object (Caddy's default `json` encoder):
 *   {"level":"info","ts":1646861401.5241024,"logger":"http.log.access","msg":"handled request",
 *    "request":{"remote_ip":"127.0.0.1","client_ip":"127.0.0.1","proto":"HTTP/2.0",
 *    "method":"GET","host":"localhost","uri":"/","headers":{"User-Agent":["curl/7.82.0"],...}},
 *    "duration":0.000929675,"size":10900,"status":200,...}
 * The scanner walks the object once, in any key order, without allocating, and keeps what the
 * statistics read: ts (Unix seconds, or an RFC 3339 string), status, size, duration (seconds),
 * request.client_ip (else remote_ip), method, proto, host, uri, and the first value of the
 * User-Agent and Referer headers. String values are borrowed as written (JSON escapes are not
 * undone; Caddy writes none in these fields but for unusual URIs). Anything else is skipped,
 * nested at most 64 deep. A line that is not an object, is cut short, or lacks ts, status or a
 * client address is malformed.
 *
 * jansson (which weft links) was measured against this scanner, extracting the same fields from
 * the same 342 k Caddy lines (225 MB, CPU time, loaded 2-core machine): jansson 3.5 s
 * (0.06 GB/s: it allocates every value of every line), this scanner 0.22-0.25 s (0.9-1.0 GB/s),
 * so jansson stays out of the hot path.
 */
#include <stddef.h>
#include <string.h>

#include "logs/format-int.h"

typedef struct js {
    const char *p, *end; /* end: the end of the line's text */
} js_t;

static void ws(js_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r')) j->p++;
}

static bool eat(js_t *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* A string at p: its raw content [*s, *e), escapes left as written. The closing quote is found
 * with memchr: a quote preceded by an odd number of backslashes is escaped. */
static bool str(js_t *j, const char **s, const char **e)
{
    if (!eat(j, '"')) return false;
    const char *p = j->p;
    for (;;) {
        const char *q = memchr(p, '"', (size_t)(j->end - p));
        if (!q) return false;
        size_t bs = 0;
        while (q - bs > j->p && q[-1 - (ptrdiff_t)bs] == '\\') bs++;
        if (!(bs & 1)) {
            *s = j->p;
            *e = q;
            j->p = q + 1;
            return true;
        }
        p = q + 1;
    }
}

/* A number, true, false or null: its text [*s, *e). */
static bool scalar(js_t *j, const char **s, const char **e)
{
    ws(j);
    *s = j->p;
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']' && *j->p != ' ' &&
           *j->p != '\t' && *j->p != '"' && *j->p != '{' && *j->p != '[')
        j->p++;
    *e = j->p;
    return *e > *s;
}

/* Skips one value of any kind; containers at most 64 deep. */
static bool skip(js_t *j)
{
    ws(j);
    if (j->p == j->end) return false;
    if (*j->p == '"') {
        const char *s, *e;
        return str(j, &s, &e);
    }
    if (*j->p != '{' && *j->p != '[') {
        const char *s, *e;
        return scalar(j, &s, &e);
    }
    char stack[64];
    int depth = 0;
    while (j->p < j->end) {
        char c = *j->p;
        if (c == '"') {
            const char *s, *e;
            if (!str(j, &s, &e)) return false;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == (int)sizeof stack) return false;
            stack[depth++] = c == '{' ? '}' : ']';
        } else if (c == '}' || c == ']') {
            if (depth == 0 || stack[--depth] != c) return false;
            if (depth == 0) {
                j->p++;
                return true;
            }
        }
        j->p++;
    }
    return false;
}

/* The key [s, e) is the string literal k (its length known at compile time). */
#define key_is(s, e, k) ((size_t)((e) - (s)) == sizeof(k) - 1 && memcmp(s, k, sizeof(k) - 1) == 0)

/* Walks an object: calls `field` for each key with the scanner at its value; `field` consumes
 * the value (or returns 0 to have it skipped). */
typedef int (*field_fn)(js_t *j, const char *k, const char *ke, void *arg);
static bool object(js_t *j, field_fn field, void *arg)
{
    if (!eat(j, '{')) return false;
    if (eat(j, '}')) return true;
    for (;;) {
        const char *k, *ke;
        if (!str(j, &k, &ke) || !eat(j, ':')) return false;
        int rc = field(j, k, ke, arg);
        if (rc < 0 || (rc == 0 && !skip(j))) return false;
        if (eat(j, ',')) continue;
        return eat(j, '}');
    }
}

typedef struct caddy {
    weft_logs_rec_t *r;
    const char *ip, *ipe, *client, *cliente; /* remote_ip, client_ip */
    const char *uri, *urie, *ua, *uae, *ref, *refe, *method, *methode, *proto, *protoe, *host,
        *hoste;
    bool ts, status;
} caddy_t;

/* A header's first value: ["value", ...]. */
static int first_of_array(js_t *j, const char **s, const char **e)
{
    if (!eat(j, '[')) return 0;
    if (eat(j, ']')) return 1;
    if (!str(j, s, e)) return -1;
    while (eat(j, ','))
        if (!skip(j)) return -1;
    return eat(j, ']') ? 1 : -1;
}

static int header_field(js_t *j, const char *k, const char *ke, void *arg)
{
    caddy_t *c = arg;
    if (key_is(k, ke, "User-Agent")) return first_of_array(j, &c->ua, &c->uae);
    if (key_is(k, ke, "Referer")) return first_of_array(j, &c->ref, &c->refe);
    return 0;
}

static int request_field(js_t *j, const char *k, const char *ke, void *arg)
{
    caddy_t *c = arg;
    const char **s = NULL, **e = NULL;
    if (key_is(k, ke, "headers")) return object(j, header_field, c) ? 1 : -1;
    if (key_is(k, ke, "remote_ip")) s = &c->ip, e = &c->ipe;
    if (key_is(k, ke, "client_ip")) s = &c->client, e = &c->cliente;
    if (key_is(k, ke, "uri")) s = &c->uri, e = &c->urie;
    if (key_is(k, ke, "method")) s = &c->method, e = &c->methode;
    if (key_is(k, ke, "proto")) s = &c->proto, e = &c->protoe;
    if (key_is(k, ke, "host")) s = &c->host, e = &c->hoste;
    if (!s) return 0;
    ws(j);
    if (j->p < j->end && *j->p != '"') return 0; /* not a string: skipped */
    return str(j, s, e) ? 1 : -1;
}

/* Unix seconds with an optional fraction: the date, hour and minute (UTC). */
static bool epoch(const char *s, const char *e, weft_logs_rec_t *r)
{
    uint64_t secs = 0;
    int n = 0;
    while (s < e && *s >= '0' && *s <= '9' && n < 12) {
        secs = secs * 10 + (uint64_t)(*s++ - '0');
        n++;
    }
    if (n == 0) return false;
    if (s < e && *s == '.') {
        s++;
        while (s < e && *s >= '0' && *s <= '9') s++;
    }
    if (s != e) return false;
    int y, m, d;
    weft_logs_civil_date((int32_t)(secs / 86400), &y, &m, &d);
    r->date = WEFT_LOGS_DATE(y, m, d);
    r->hour = (int)(secs % 86400 / 3600);
    r->minute = (int)(secs % 3600 / 60);
    return true;
}

static int top_field(js_t *j, const char *k, const char *ke, void *arg)
{
    caddy_t *c = arg;
    weft_logs_rec_t *r = c->r;
    const char *s, *e;
    if (key_is(k, ke, "request")) return object(j, request_field, c) ? 1 : -1;
    bool ts = key_is(k, ke, "ts"), st = key_is(k, ke, "status"), sz = key_is(k, ke, "size"),
         du = key_is(k, ke, "duration");
    if (!ts && !st && !sz && !du) return 0;
    ws(j);
    if (ts && j->p < j->end && *j->p == '"') { /* time_format iso8601 / rfc3339 */
        if (!str(j, &s, &e)) return -1;
        c->ts = weft_logs__parse_time_isoz(s, e, r) == e;
        return 1;
    }
    if (!scalar(j, &s, &e)) return -1;
    if (ts) c->ts = epoch(s, e, r);
    if (st) {
        c->status = e - s == 3 && s[0] >= '1' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' &&
                    s[2] >= '0' && s[2] <= '9';
        r->status = c->status ? (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0') : 0;
    }
    if (sz) {
        uint64_t v = 0;
        int n = 0;
        for (const char *q = s; q < e; q++) {
            if (*q < '0' || *q > '9' || ++n > 19) return -1;
            v = v * 10 + (uint64_t)(*q - '0');
        }
        r->bytes = v;
    }
    if (du && weft_logs__parse_rt(s, e, &r->rt_us) != e) r->rt_us = -1;
    return 1;
}

#define SET(field, s, e)                                                                           \
    do {                                                                                           \
        if (s) {                                                                                   \
            r->field = (s);                                                                        \
            r->field##_len = (size_t)((e) - (s));                                                  \
        }                                                                                          \
    } while (0)

const char *weft_logs__parse_json(const char *p, const char *end, weft_logs_rec_t *r)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    if (le > p && le[-1] == '\r') le--;
    memset(r, 0, sizeof *r);
    r->rt_us = -1;
    caddy_t c = {.r = r};
    js_t j = {p, le};
    if (!object(&j, top_field, &c)) return NULL;
    ws(&j);
    if (j.p != le || !c.ts || !c.status) return NULL;
    const char *ip = c.client && c.cliente > c.client ? c.client : c.ip;
    const char *ipe = ip == c.client ? c.cliente : c.ipe;
    if (!ip || weft_logs__parse_ip(ip, ipe, r) != ipe) return NULL;
    SET(method, c.method, c.methode);
    SET(protocol, c.proto, c.protoe);
    SET(vhost, c.host, c.hoste);
    SET(referrer, c.ref, c.refe);
    SET(user_agent, c.ua, c.uae);
    if (c.uri && c.urie > c.uri) {
        const char *q = memchr(c.uri, '?', (size_t)(c.urie - c.uri));
        const char *pe = q ? q : c.urie;
        if (pe > c.uri) {
            r->path = c.uri;
            r->path_len = (size_t)(pe - c.uri);
        }
    }
    return le;
}
