/* weft logs: format compilation and detection (format.h); the parser is in parse.c.
 *
 * A log_format string is split into literals and variables. Each variable becomes one
 * operation; the byte that follows it in the format (the first byte of the next literal) is its
 * delimiter, and a variable written between double quotes is scanned as a quoted string, so
 * that `"$http_user_agent"` may contain spaces and backslash-escaped quotes. The parser is a
 * loop over these few operations per line; each one reads only the bytes it needs.
 */
#include "logs/format.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "logs/format-int.h"

const char *const weft_logs_preset_names[] = {"default", "common", "combined", "combined-rt", NULL};

/* The presets as nginx log_format strings. $ident is weft's name for the Common Log Format's
 * second field (identd user), which nginx always writes as "-". */
#define CLF "$remote_addr $ident $remote_user [$time_local] \"$request\" $status $body_bytes_sent"
static const struct {
    const char *name, *spec;
} presets[] = {
    {"default", CLF " $request_time"},
    {"common", CLF},
    {"combined", CLF " \"$http_referer\" \"$http_user_agent\""},
    {"combined-rt", CLF " \"$http_referer\" \"$http_user_agent\" $request_time"},
};
#define NPRESETS (sizeof presets / sizeof presets[0])

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
    return OP_SKIP;
#undef IS
}

static int compile_nginx(const char *s, weft_logs_format_t *f, char *err, size_t errlen)
{
    size_t slen = strlen(s);
    if (slen == 0) return fail(err, errlen, "empty log format", NULL);
    if (slen >= sizeof f->spec) return fail(err, errlen, "log format too long", NULL);
    if (strpbrk(s, "\r\n"))
        return fail(err, errlen, "log format cannot contain a line break", NULL);
    memcpy(f->spec, s, slen + 1);

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

    /* Pass 2: operations, with delimiters; the first variable of each typed kind wins. */
    bool seen[OP_NKINDS] = {false};
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
        if ((kind == OP_TIME_LOCAL && seen[OP_TIME_ISO]) ||
            (kind == OP_TIME_ISO && seen[OP_TIME_LOCAL]))
            kind = OP_SKIP;
        if (kind != OP_SKIP && seen[kind]) kind = OP_SKIP;
        seen[kind] = true;
        op->kind = (uint8_t)kind;
        bool before_quote = t > 0 && f->lits[toks[t - 1].off + toks[t - 1].len - 1] == '"';
        bool after_quote = t + 1 < nt && f->lits[toks[t + 1].off] == '"';
        op->quoted = before_quote && after_quote;
        op->delim = t + 1 < nt ? (uint8_t)f->lits[toks[t + 1].off] : 0;
        if (kind == OP_REQUEST && !op->quoted)
            return fail(err, errlen, "$request must be written between double quotes", NULL);
    }
    if (!seen[OP_IP]) return fail(err, errlen, "log format lacks $remote_addr", NULL);
    if (!seen[OP_TIME_LOCAL] && !seen[OP_TIME_ISO])
        return fail(err, errlen, "log format lacks $time_local or $time_iso8601", NULL);
    if (!seen[OP_STATUS]) return fail(err, errlen, "log format lacks $status", NULL);
    f->has_rt = seen[OP_RT];
    f->has_bytes = seen[OP_BYTES];
    f->has_path = seen[OP_REQUEST] || seen[OP_URI];
    f->fast = 0;
    for (size_t i = 0; i < NPRESETS; i++)
        if (strcmp(s, presets[i].spec) == 0) f->fast = (int)i + 1;
    return 0;
}

int weft_logs_format_compile(const char *spec, weft_logs_format_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < NPRESETS; i++) {
        if (strcmp(spec, presets[i].name) == 0) {
            int rc = compile_nginx(presets[i].spec, out, err, errlen);
            snprintf(out->name, sizeof out->name, "%s", presets[i].name);
            return rc;
        }
    }
    if (strcmp(spec, "common-rt") == 0)
        return weft_logs_format_compile("default", out, err, errlen);
    const char *s = spec;
    if (strncmp(s, "nginx:", 6) == 0)
        s += 6;
    else if (!strchr(s, '$'))
        return fail(err, errlen, "unknown log format: ", spec);
    int rc = compile_nginx(s, out, err, errlen);
    snprintf(out->name, sizeof out->name, "nginx");
    return rc;
}

int weft_logs_format_detect(const char *data, size_t len, weft_logs_format_t *out)
{
    /* More specific presets first, so that a tie goes to them. */
    static const int order[] = {3, 2, 0, 1};
    weft_logs_format_t f;
    int best = -1, best_n = 0;
    if (len > 65536) len = 65536;
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        char err[8];
        if (weft_logs_format_compile(presets[order[k]].name, &f, err, sizeof err) != 0) continue;
        int n = 0, seen = 0;
        const char *p = data, *end = data + len;
        while (p < end && seen < 50) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            const char *next = nl ? nl + 1 : end;
            if (le > p && le[-1] == '\r') le--;
            if (le > p) {
                weft_logs_rec_t r;
                seen++;
                n += weft_logs_parse_line(&f, p, le, &r);
            }
            p = next;
        }
        if (n > best_n) {
            best_n = n;
            best = order[k];
        }
    }
    char err[8];
    weft_logs_format_compile(presets[best >= 0 ? best : 0].name, out, err, sizeof err);
    return best >= 0 ? 0 : -ENOENT;
}
