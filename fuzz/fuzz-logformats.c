/* libFuzzer target for the log formats beyond nginx's (tools/logs/format-*.c): the presets
 * vcombined, traefik, s3, elb, alb, w3c, cloudfront and caddy (Caddy's JSON scanner), Apache
 * LogFormat strings, W3C #Fields: headers and detection.
 *
 * Input: one selector byte, then the text. Selector 0..7 parses the text's lines with one of
 * those presets (W3C ones taking their columns from a #Fields: line in the text, as a run
 * does); 8 treats the first line as an Apache LogFormat and parses the rest with it; 9 treats
 * it as W3C field names (tab-separated entries when the selector's next bit says so); 10 detects
 * the format of the text and parses it with the result, directives skipped as the analysis
 * does. Every path must never crash, read out of bounds or leak, and every record it accepts
 * must be in range with its slices inside the line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logs/format.h"

static void check_rec(const weft_logs_rec_t *r, const char *p, const char *e)
{
    if (r->hour < 0 || r->hour > 23 || r->minute < 0 || r->minute > 59) abort();
    if (r->status < 100 || r->status > 999) abort();
    if (r->rt_us < -1) abort();
    int m = WEFT_LOGS_DATE_M(r->date), d = WEFT_LOGS_DATE_D(r->date);
    if (r->date && (m < 1 || m > 12 || d < 1 || d > 31)) abort();
    if (r->utc_off_min < -6100 || r->utc_off_min > 6100) abort(); /* at most 99:99 */
    const char *sl[] = {r->path, r->method, r->protocol, r->vhost, r->referrer, r->user_agent};
    size_t ln[] = {r->path_len,  r->method_len,   r->protocol_len,
                   r->vhost_len, r->referrer_len, r->user_agent_len};
    for (int k = 0; k < 6; k++)
        if (sl[k] && (sl[k] < p || sl[k] + ln[k] > e)) abort();
}

/* Parses every line of [p, end) with f, each in a buffer of its own size. */
static void parse_all(const weft_logs_format_t *f, const char *p, const char *end)
{
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        char *line = malloc(n ? n : 1);
        if (!line) return;
        memcpy(line, p, n);
        weft_logs_rec_t r;
        if (weft_logs_parse_line(f, line, line + n, &r))
            check_rec(&r, line, line + n);
        else if (f->directives)
            (void)weft_logs_format_directive(f, line, n);
        free(line);
        /* and through the buffer-wide entry point, which stops at the newline */
        const char *e = weft_logs_parse(f, p, end, &r);
        if (e && (e < p || e > le)) abort();
        if (e) check_rec(&r, p, le);
        p = nl ? nl + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const presets[] = {"vcombined", "traefik", "s3",         "elb",
                                          "alb",       "w3c",     "cloudfront", "caddy"};
    if (size < 1) return 0;
    int sel = data[0] % 11;
    size_t n = size - 1;
    char *text = malloc(n ? n : 1); /* a private copy: reading past it is caught by ASan */
    if (!text) return 0;
    memcpy(text, data + 1, n);
    const char *end = text + n;
    char err[160];
    weft_logs_format_t f, g;
    if (sel < 8) {
        if (weft_logs_format_compile(presets[sel], &f, err, sizeof err) != 0) abort();
        weft_logs_format_for_input(&f, text, n, &g);
        parse_all(&g, text, end);
    } else if (sel < 10) {
        const char *nl = memchr(text, '\n', n);
        size_t flen = nl ? (size_t)(nl - text) : n;
        char *spec = malloc(flen + 12);
        if (spec) {
            const char *prefix = sel == 8 ? "apache:" : (data[0] & 16) ? "cloudfront:" : "w3c:";
            size_t pl = strlen(prefix);
            memcpy(spec, prefix, pl);
            memcpy(spec + pl, text, flen);
            spec[pl + flen] = '\0';
            if (!memchr(spec, '\0', pl + flen) &&
                weft_logs_format_compile(spec, &f, err, sizeof err) == 0 && nl) {
                /* compiling its spec again gives the same format (worker processes do) */
                if (weft_logs_format_compile(f.spec, &g, err, sizeof err) != 0 ||
                    g.nops != f.nops || memcmp(g.ops, f.ops, sizeof f.ops) != 0)
                    abort();
                parse_all(&f, nl + 1, end);
            }
            free(spec);
        }
    } else {
        weft_logs_format_detect(text, n, &f);
        parse_all(&f, text, end);
    }
    free(text);
    return 0;
}
