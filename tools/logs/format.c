/* weft logs: format compilation and detection (format.h); the parser is in parse.c.
 *
 * A log_format string is split into literals and variables. Each variable becomes one
 * operation; the byte that follows it in the format (the first byte of the next literal) is its
 * delimiter, and a variable written between double quotes is scanned as a quoted string, so
 * that `"$http_user_agent"` may contain spaces and backslash-escaped quotes. The parser is a
 * loop over these few operations per line; each one reads only the bytes it needs.
 *
 * Every other format becomes such a string first: the presets are written as nginx strings
 * (with a few variables of weft's own for what nginx never writes, such as ELB's client:port or
 * IIS's times in milliseconds), an Apache LogFormat is translated by format-apache.c, a W3C
 * #Fields: header by format-w3c.c. Only Caddy's JSON lines have a reader of their own
 * (format-json.c), since JSON keys come in any order.
 */
#include "logs/format.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "logs/format-int.h"

const char *const weft_logs_preset_names[] = {
    "default", "common", "combined", "combined-rt", "vcombined", "traefik", "s3",
    "elb",     "alb",    "w3c",      "cloudfront",  "caddy",     NULL};

/* The presets as nginx log_format strings. $ident is weft's name for the Common Log Format's
 * second field (identd user), which nginx always writes as "-". Where a preset's field order
 * comes from: vcombined is Apache's vhost_combined (GoAccess's VCOMBINED); traefik is Traefik's
 * CLF ("... <requests since start> "<router>" "<server URL>" <duration>ms", the router as the
 * virtual host as GoAccess does); s3 is Amazon S3's server access log (the bucket as the virtual
 * host, total_time in ms; the fields after the user agent are not read); elb and alb are
 * Elastic Load Balancing's classic and application load balancer logs (the target's processing
 * time as the response time, as GoAccess; ALB's domain_name as the virtual host). w3c and
 * cloudfront are IIS's default W3C fields and CloudFront's standard log fields, used when a
 * file has no #Fields: header; caddy is read as JSON. */
#define CLF "$remote_addr $ident $remote_user [$time_local] \"$request\" $status $body_bytes_sent"
#define UAREF " \"$http_referer\" \"$http_user_agent\""
#define ELB_COMMON                                                                                 \
    "$remote_addr_port $target_addr_port $request_processing_time $request_time_aws "              \
    "$response_processing_time $status $target_status_code $received_bytes $body_bytes_sent "      \
    "\"$request\" \"$http_user_agent\" $ssl_cipher $ssl_protocol"
static const char w3c_iis_fields[] =
    "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
    "cs(Referer) sc-status sc-substatus sc-win32-status time-taken";
static const char w3c_cloudfront_fields[] =
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
    "cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id "
    "x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len "
    "sc-range-start sc-range-end";
static const struct {
    const char *name, *spec; /* spec NULL: see compile_preset */
} presets[] = {
    {"default", CLF " $request_time"},
    {"common", CLF},
    {"combined", CLF UAREF},
    {"combined-rt", CLF UAREF " $request_time"},
    {"vcombined", "$host:$server_port " CLF UAREF},
    {"traefik",
     "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent" UAREF
     " $requests_total \"$host\" \"$upstream_url\" ${request_time_ms}ms"},
    {"s3", "$bucket_owner $host [$time_local] $remote_addr $requester $request_id $operation $key "
           "\"$request\" $status $error_code $body_bytes_sent $object_size $request_time_ms "
           "$turn_around_time" UAREF},
    {"elb", "$time_iso8601_utc $elb " ELB_COMMON},
    {"alb",
     "$type $time_iso8601_utc $elb " ELB_COMMON " $target_group_arn \"$trace_id\" \"$host\""},
    {"w3c", NULL},
    {"cloudfront", NULL},
    {"caddy", NULL},
};
#define NPRESETS (sizeof presets / sizeof presets[0])
#define NFAST 4 /* the first four have straight-line parsers (parse.c) */

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int fail(char *err, size_t errlen, const char *msg, const char *detail)
{
    if (err && errlen) snprintf(err, errlen, "%s%s", msg, detail ? detail : "");
    return -EINVAL;
}

static int var_kind(const char *name, size_t n)
{
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
    if (IS("remote_addr")) return OP_IP;
    if (IS("time_local")) return OP_TIME_LOCAL;
    if (IS("time_iso8601")) return OP_TIME_ISO;
    if (IS("request")) return OP_REQUEST;
    if (IS("request_uri") || IS("uri")) return OP_URI;
    if (IS("status")) return OP_STATUS;
    if (IS("body_bytes_sent") || IS("bytes_sent")) return OP_BYTES;
    if (IS("request_time")) return OP_RT;
    if (IS("request_method")) return OP_METHOD;
    if (IS("server_protocol")) return OP_PROTOCOL;
    if (IS("host") || IS("http_host") || IS("server_name")) return OP_VHOST;
    if (IS("http_referer")) return OP_REFERRER;
    if (IS("http_user_agent")) return OP_UA;
    if (IS("remote_addr_port")) return OP_IPPORT;
    if (IS("date_utc")) return OP_DATE;
    if (IS("time_utc")) return OP_TIME_HMS;
    if (IS("time_iso8601_utc")) return OP_TIME_ISOZ;
    if (IS("request_time_ms")) return OP_RT_MS;
    if (IS("request_time_us")) return OP_RT_US;
    if (IS("request_time_aws")) return OP_RT_AWS;
    return OP_SKIP;
#undef IS
}

static bool is_time_kind(int k)
{
    return k == OP_TIME_LOCAL || k == OP_TIME_ISO || k == OP_TIME_HMS || k == OP_TIME_ISOZ;
}

static bool is_rt_kind(int k)
{
    return k == OP_RT || k == OP_RT_MS || k == OP_RT_US || k == OP_RT_AWS;
}

/* Compiles an nginx-style string into f->ops (f->spec is the caller's). */
static int compile_nginx(const char *s, weft_logs_format_t *f, char *err, size_t errlen)
{
    size_t slen = strlen(s);
    if (slen == 0) return fail(err, errlen, "empty log format", NULL);
    if (slen >= sizeof f->lits) return fail(err, errlen, "log format too long", NULL);
    if (strpbrk(s, "\r\n"))
        return fail(err, errlen, "log format cannot contain a line break", NULL);

    /* Pass 1: tokens. A literal is stored in lits[]; a variable records its kind. */
    struct tok {
        bool var;
        int kind;
        size_t off, len;
    } toks[WEFT_LOGS_MAX_OPS];
    int nt = 0;
    size_t nlits = 0;
    bool prefer_body_bytes = strstr(s, "$body_bytes_sent") || strstr(s, "${body_bytes_sent}");
    for (size_t i = 0; i < slen;) {
        if (nt == WEFT_LOGS_MAX_OPS)
            return fail(err, errlen, "log format has too many parts", NULL);
        const char *name = NULL;
        size_t nlen = 0, adv = 0;
        if (s[i] == '$' && i + 1 < slen && s[i + 1] == '{') {
            const char *close = strchr(s + i + 2, '}');
            if (!close) return fail(err, errlen, "unterminated ${ in log format", NULL);
            name = s + i + 2;
            nlen = (size_t)(close - name);
            adv = nlen + 3;
        } else if (s[i] == '$' && i + 1 < slen && is_name_char(s[i + 1])) {
            name = s + i + 1;
            while (name + nlen < s + slen && is_name_char(name[nlen])) nlen++;
            adv = nlen + 1;
        }
        if (name) {
            if (nlen == 0) return fail(err, errlen, "empty variable name in log format", NULL);
            for (size_t k = 0; k < nlen; k++)
                if (!is_name_char(name[k]))
                    return fail(err, errlen, "bad variable name in log format", NULL);
            if (nt > 0 && toks[nt - 1].var)
                return fail(err, errlen, "variables must be separated by literal text: $", name);
            int kind = var_kind(name, nlen);
            if (kind == OP_BYTES && prefer_body_bytes && nlen == strlen("bytes_sent"))
                kind = OP_SKIP;
            toks[nt++] = (struct tok){.var = true, .kind = kind};
            i += adv;
        } else {
            if (nt == 0 || toks[nt - 1].var) toks[nt++] = (struct tok){.off = nlits};
            f->lits[nlits++] = s[i++];
            toks[nt - 1].len++;
        }
    }

    /* Pass 2: operations, with delimiters; the first variable of each typed kind wins. One time
     * (or a W3C date then time), one response time. */
    bool seen[OP_NKINDS] = {false}, any_time = false, any_rt = false;
    f->nops = 0;
    for (int t = 0; t < nt; t++) {
        weft_logs_op_t *op = &f->ops[f->nops++];
        memset(op, 0, sizeof *op);
        if (!toks[t].var) {
            if (toks[t].len > UINT16_MAX) return fail(err, errlen, "literal too long", NULL);
            op->kind = OP_LIT;
            op->off = (uint16_t)toks[t].off;
            op->len = (uint16_t)toks[t].len;
            continue;
        }
        int kind = toks[t].kind;
        if (kind == OP_URI && seen[OP_REQUEST]) kind = OP_SKIP;
        if (kind == OP_REQUEST && seen[OP_URI]) kind = OP_SKIP;
        if (kind == OP_IPPORT && seen[OP_IP]) kind = OP_SKIP;
        if (kind == OP_IP && seen[OP_IPPORT]) kind = OP_SKIP;
        if (kind == OP_TIME_HMS && !seen[OP_DATE]) kind = OP_SKIP; /* a time needs its date */
        if (is_time_kind(kind) && any_time) kind = OP_SKIP;
        if (is_rt_kind(kind) && any_rt) kind = OP_SKIP;
        if (kind != OP_SKIP && seen[kind]) kind = OP_SKIP;
        seen[kind] = true;
        any_time |= is_time_kind(kind);
        any_rt |= is_rt_kind(kind);
        op->kind = (uint8_t)kind;
        bool before_quote = t > 0 && f->lits[toks[t - 1].off + toks[t - 1].len - 1] == '"';
        bool after_quote = t + 1 < nt && f->lits[toks[t + 1].off] == '"';
        op->quoted = before_quote && after_quote;
        op->delim = t + 1 < nt ? (uint8_t)f->lits[toks[t + 1].off] : 0;
        if (kind == OP_REQUEST && !op->quoted)
            return fail(err, errlen, "$request must be written between double quotes", NULL);
    }
    if (!seen[OP_IP] && !seen[OP_IPPORT])
        return fail(err, errlen, "log format lacks $remote_addr", NULL);
    if (!any_time) return fail(err, errlen, "log format lacks $time_local or $time_iso8601", NULL);
    if (!seen[OP_STATUS]) return fail(err, errlen, "log format lacks $status", NULL);
    f->has_rt = any_rt;
    f->has_bytes = seen[OP_BYTES];
    f->has_path = seen[OP_REQUEST] || seen[OP_URI];
    f->fast = 0;
    for (size_t i = 0; i < NFAST; i++)
        if (strcmp(s, presets[i].spec) == 0) f->fast = (int)i + 1;
    return 0;
}

/* A W3C format from its field names: "w3c" separates fields by spaces and times in ms,
 * "cloudfront" by tabs and times in seconds. */
static int compile_w3c(const char *fields, bool cloudfront, weft_logs_format_t *f, char *err,
                       size_t errlen)
{
    char s[WEFT_LOGS_SPEC_MAX];
    bool cf;
    int rc = weft_logs__w3c_to_nginx(fields, strlen(fields), cloudfront ? '\t' : ' ', s, sizeof s,
                                     &cf, err, errlen);
    if (!rc) rc = compile_nginx(s, f, err, errlen);
    f->directives = true;
    return rc;
}

static int set_spec(weft_logs_format_t *f, const char *prefix, const char *body, char *err,
                    size_t errlen)
{
    if ((size_t)snprintf(f->spec, sizeof f->spec, "%s%s", prefix, body) >= sizeof f->spec)
        return fail(err, errlen, "log format too long", NULL);
    return 0;
}

static int compile_preset(size_t i, weft_logs_format_t *f, char *err, size_t errlen)
{
    int rc;
    if (strcmp(presets[i].name, "caddy") == 0) {
        f->kind = WEFT_LOGS_KIND_JSON;
        f->has_rt = f->has_bytes = f->has_path = true;
        rc = 0;
    } else if (!presets[i].spec) { /* w3c, cloudfront: the default columns until a header */
        bool cf = strcmp(presets[i].name, "cloudfront") == 0;
        rc = compile_w3c(cf ? w3c_cloudfront_fields : w3c_iis_fields, cf, f, err, errlen);
        f->needs_header = true;
    } else {
        rc = compile_nginx(presets[i].spec, f, err, errlen);
    }
    snprintf(f->name, sizeof f->name, "%s", presets[i].name);
    snprintf(f->spec, sizeof f->spec, "%s", presets[i].name);
    return rc;
}

static const char apache_hint[] =
    "this looks like an Apache LogFormat ('%h %l %u %t ...'): give it as -f apache:'...' or "
    "--log-format";

bool weft_logs_format_directive(const weft_logs_format_t *f, const char *p, size_t len)
{
    if (len == 0 || *p != '#') return false;
    if (len < 8 || memcmp(p, "#Fields:", 8) != 0) return true;
    const char *cols = strchr(f->spec, ':'); /* "w3c:COLUMNS", or a preset's default columns */
    if (cols)
        cols++;
    else
        cols = strcmp(f->name, "cloudfront") == 0 ? w3c_cloudfront_fields : w3c_iis_fields;
    return weft_logs__w3c_same_fields(cols, strlen(cols), p + 8, len - 8);
}

bool weft_logs_format_looks_apache(const char *spec)
{
    static const char *const directives[] = {"%h", "%a", "%t", "%r", "%>s", "%s ", "%b", "%{"};
    if (strchr(spec, '$')) return false;
    for (size_t i = 0; i < sizeof directives / sizeof directives[0]; i++)
        if (strstr(spec, directives[i])) return true;
    return false;
}

int weft_logs_format_compile(const char *spec, weft_logs_format_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < NPRESETS; i++)
        if (strcmp(spec, presets[i].name) == 0) return compile_preset(i, out, err, errlen);
    if (strcmp(spec, "common-rt") == 0)
        return weft_logs_format_compile("default", out, err, errlen);
    int rc;
    if (strncmp(spec, "apache:", 7) == 0) {
        char s[WEFT_LOGS_SPEC_MAX];
        rc = weft_logs__apache_to_nginx(spec + 7, s, sizeof s, err, errlen);
        if (!rc) rc = compile_nginx(s, out, err, errlen);
        snprintf(out->name, sizeof out->name, "apache");
        return rc ? rc : set_spec(out, "", spec, err, errlen);
    }
    if (strncmp(spec, "w3c:", 4) == 0 || strncmp(spec, "cloudfront:", 11) == 0) {
        bool cf = spec[0] == 'c';
        rc = compile_w3c(strchr(spec, ':') + 1, cf, out, err, errlen);
        snprintf(out->name, sizeof out->name, "%s", cf ? "cloudfront" : "w3c");
        return rc ? rc : set_spec(out, "", spec, err, errlen);
    }
    const char *s = spec;
    if (strncmp(s, "nginx:", 6) == 0) {
        s += 6;
    } else if (!strchr(s, '$')) {
        if (weft_logs_format_looks_apache(s)) return fail(err, errlen, apache_hint, NULL);
        if (strcmp(s, "apache") == 0 || strcmp(s, "nginx") == 0)
            return fail(err, errlen,
                        strcmp(s, "apache") == 0
                            ? "unknown log format: apache (an Apache LogFormat string "
                              "is given as apache:'%h %l %u %t \"%r\" %>s %b')"
                            : "unknown log format: nginx (an nginx log_format string "
                              "is given as nginx:'$remote_addr ...')",
                        NULL);
        return fail(err, errlen, "unknown log format: ", spec);
    }
    rc = compile_nginx(s, out, err, errlen);
    if (rc && err && errlen && weft_logs_format_looks_apache(s)) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (%s)", apache_hint);
    }
    snprintf(out->name, sizeof out->name, "nginx");
    return rc ? rc : set_spec(out, "nginx:", s, err, errlen);
}

/* The entry lines of [data, data + len) (not W3C directives, not blank) that `f` parses, among
 * the first 50. */
static int count_parsed(const weft_logs_format_t *f, const char *data, size_t len)
{
    int n = 0, seen = 0;
    const char *p = data, *end = data + len;
    while (p < end && seen < 50) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r') le--;
        if (le > p && *p != '#') {
            weft_logs_rec_t r;
            seen++;
            n += weft_logs_parse_line(f, p, le, &r);
        }
        p = next;
    }
    return n;
}

/* The format a W3C #Fields: directive in the data describes: CloudFront's when the entries are
 * tab-separated. Returns false when there is none or it does not compile. */
static bool w3c_from_header(const char *data, size_t len, weft_logs_format_t *out)
{
    const char *fields;
    size_t flen;
    char sep, spec[WEFT_LOGS_SPEC_MAX], err[8];
    if (!weft_logs__w3c_find_fields(data, len, &fields, &flen, &sep)) return false;
    const char *prefix = sep == '\t' ? "cloudfront:" : "w3c:";
    if (strlen(prefix) + flen >= sizeof spec) return false;
    memcpy(spec, prefix, strlen(prefix));
    memcpy(spec + strlen(prefix), fields, flen);
    spec[strlen(prefix) + flen] = '\0';
    return weft_logs_format_compile(spec, out, err, sizeof err) == 0;
}

int weft_logs_format_detect(const char *data, size_t len, weft_logs_format_t *out)
{
    if (len > 65536) len = 65536;
    if (w3c_from_header(data, len, out)) return 0;
    /* More specific presets first, so that a tie goes to them: a Traefik line is also a
     * combined (and a combined-rt) line with trailing fields. */
    static const char *const order[] = {"traefik", "vcombined", "combined-rt", "combined",
                                        "default", "common",    "s3",          "alb",
                                        "elb",     "caddy",     "w3c",         "cloudfront"};
    weft_logs_format_t f;
    int best = -1, best_n = 0;
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        char err[8];
        if (weft_logs_format_compile(order[k], &f, err, sizeof err) != 0) continue;
        int n = count_parsed(&f, data, len);
        if (n > best_n) {
            best_n = n;
            best = (int)k;
        }
    }
    char err[8];
    weft_logs_format_compile(best >= 0 ? order[best] : "default", out, err, sizeof err);
    return best >= 0 ? 0 : -ENOENT;
}

int weft_logs_format_for_input(const weft_logs_format_t *fixed, const char *data, size_t len,
                               weft_logs_format_t *out)
{
    if (!fixed) return weft_logs_format_detect(data, len, out);
    if (fixed->needs_header && w3c_from_header(data, len > 65536 ? 65536 : len, out)) {
        out->filter = fixed->filter;
        return 0;
    }
    *out = *fixed;
    return 0;
}
