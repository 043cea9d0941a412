/* weft logs: Apache LogFormat strings ("%h %l %u %t \"%r\" %>s %b ...") translated into the
 * nginx-style string with the same fields, so that they compile to the same operations
 * (format.c) and parse exactly as the equivalent nginx format.
 *
 * Directives that the statistics read: %h %a (client), %t and %{%d/%b/%Y:%H:%M:%S %z}t (time;
 * %t writes its brackets itself), %r (request), %s %>s %<s (status), %b %B %O (bytes), %D
 * (microseconds), %T and %{s,ms,us}T (response time), %U (path), %m (method), %H (protocol),
 * %v %V %{Host}i (virtual host), %{Referer}i, %{User-Agent}i. Every other directive becomes a
 * skipped field, or nothing when it follows another directive directly (%U%q: the path's field
 * then runs to the next delimiter, query included, and the path is cut at '?' as always). Modifiers
 * (%>s, %400,501{...}i, %!200h) are accepted and ignored, and the backslash escapes of httpd.conf
 * (\" \t \\) are undone, so that a LogFormat line can be pasted as it is.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "logs/format-int.h"

static int put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
    if (*o + n >= outlen) return -1;
    memcpy(out + *o, s, n);
    *o += n;
    out[*o] = '\0';
    return 0;
}

static int apache_fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return -EINVAL;
}

/* The variable for directive `c` with argument [arg, arg + alen) (alen 0: none); NULL: skip. */
static const char *apache_var(char c, const char *arg, size_t alen)
{
#define ARG(s) (alen == sizeof(s) - 1 && strncasecmp(arg, s, alen) == 0)
    switch (c) {
    case 'h':
    case 'a':
        return "remote_addr";
    case 'r':
        return "request";
    case 's':
        return "status";
    case 'b':
    case 'B':
        return "body_bytes_sent";
    case 'O':
        return "bytes_sent";
    case 'D':
        return "request_time_us";
    case 'T':
        return ARG("ms") ? "request_time_ms" : ARG("us") ? "request_time_us" : "request_time";
    case 'U':
        return "uri";
    case 'm':
        return "request_method";
    case 'H':
        return "server_protocol";
    case 'v':
    case 'V':
        return "host";
    case 'i':
        return ARG("Referer")      ? "http_referer"
               : ARG("User-Agent") ? "http_user_agent"
               : ARG("Host")       ? "host"
                                   : NULL;
    case 't':
        return alen == 0 || ARG("%d/%b/%Y:%H:%M:%S %z") ? "time_local" : NULL;
    default:
        return NULL;
    }
#undef ARG
}

int weft_logs__apache_to_nginx(const char *a, char *out, size_t outlen, char *err, size_t errlen)
{
    size_t o = 0, nskip = 0;
    out[0] = '\0';
    for (const char *p = a; *p;) {
        int rc = 0;
        if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
            rc = put(out, outlen, &o, p + 1, 1);
            p += 2;
        } else if (*p == '\\' && p[1] == 't') {
            rc = put(out, outlen, &o, "\t", 1);
            p += 2;
        } else if (*p == '$') { /* a literal dollar would read as an nginx variable */
            return apache_fail(err, errlen, "'$' in an Apache LogFormat is not supported");
        } else if (*p != '%') {
            rc = put(out, outlen, &o, p, 1);
            p++;
        } else if (p[1] == '%') {
            rc = put(out, outlen, &o, "%", 1);
            p += 2;
        } else {
            p++;
            while (*p == '<' || *p == '>' || *p == '!' || *p == ',' || (*p >= '0' && *p <= '9'))
                p++;
            const char *arg = NULL;
            size_t alen = 0;
            if (*p == '{') {
                const char *close = strchr(p, '}');
                if (!close) return apache_fail(err, errlen, "unterminated %{ in Apache LogFormat");
                arg = p + 1;
                alen = (size_t)(close - arg);
                p = close + 1;
            }
            char c = *p;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
                if (err && errlen)
                    snprintf(err, errlen, "bad directive in Apache LogFormat at '%.8s'", p);
                return -EINVAL;
            }
            p++;
            const char *var = apache_var(c, arg, alen);
            char tok[48];
            if (!var && o > 0 && out[o - 1] == '}') /* %U%q: the field before takes it in */
                continue;
            if (c == 't' && alen == 0)
                snprintf(tok, sizeof tok, "[$time_local]");
            else if (var)
                snprintf(tok, sizeof tok, "${%s}", var);
            else
                snprintf(tok, sizeof tok, "${apache_%c%zu}", c, nskip++);
            rc = put(out, outlen, &o, tok, strlen(tok));
        }
        if (rc) return apache_fail(err, errlen, "Apache LogFormat too long");
    }
    if (!o) return apache_fail(err, errlen, "empty Apache LogFormat");
    return 0;
}
