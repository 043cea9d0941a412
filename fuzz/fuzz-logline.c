/* libFuzzer target for the access-log line parser (tools/logs/format.c).
 *
 * Input: one selector byte, then the text. Selector 0..3 parses the text with a preset and
 * checks that the straight-line parser and the interpreter agree exactly; 4 treats the text up to
 * the first newline as an nginx log_format string and parses the rest with it; 5 feeds the text
 * to the partial-statistics decoder. Every path must never crash, read out of bounds or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logs/format.h"
#include "logs/stats.h"

static void parse_all(const weft_logs_format_t *f, const char *p, const char *end)
{
    while (p < end) {
        weft_logs_rec_t r;
        const char *e = weft_logs_parse(f, p, end, &r);
        if (e) {
            if (r.hour < 0 || r.hour > 23 || r.status < 100 || r.status > 999) abort();
            if (r.path && (r.path < p || r.path + r.path_len > end)) abort();
            if (r.minute < 0 || r.minute > 59) abort();
            const char *sl[] = {r.method, r.protocol, r.vhost, r.referrer, r.user_agent};
            size_t ln[] = {r.method_len, r.protocol_len, r.vhost_len, r.referrer_len,
                           r.user_agent_len};
            for (int k = 0; k < 5; k++)
                if (sl[k] && (sl[k] < p || sl[k] + ln[k] > end)) abort();
            if (e < p || e > end) abort();
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int sel = data[0] % 6;
    /* a private copy, so that reading past the end is caught by ASan */
    size_t n = size - 1;
    char *text = malloc(n ? n : 1);
    if (!text) return 0;
    memcpy(text, data + 1, n);
    const char *end = text + n;
    char err[160];
    if (sel < 4) {
        weft_logs_format_t fast, slow;
        if (weft_logs_format_compile(weft_logs_preset_names[sel], &fast, err, sizeof err) != 0)
            abort();
        slow = fast;
        slow.fast = 0;
        for (const char *p = text; p < end;) {
            weft_logs_rec_t a, b;
            const char *ea = weft_logs_parse(&fast, p, end, &a);
            const char *eb = weft_logs_parse(&slow, p, end, &b);
            if (ea != eb) abort();
            if (ea && (a.family != b.family || a.hour != b.hour || a.status != b.status ||
                       a.bytes != b.bytes || a.rt_us != b.rt_us || a.path != b.path ||
                       a.path_len != b.path_len || a.minute != b.minute || a.date != b.date ||
                       a.utc_off_min != b.utc_off_min || a.method != b.method ||
                       a.method_len != b.method_len || a.protocol != b.protocol ||
                       a.protocol_len != b.protocol_len || a.vhost != b.vhost ||
                       a.referrer != b.referrer || a.referrer_len != b.referrer_len ||
                       a.user_agent != b.user_agent || a.user_agent_len != b.user_agent_len ||
                       (a.family == 4 && a.ip4 != b.ip4) ||
                       (a.family == 6 && memcmp(a.ip6, b.ip6, 16) != 0)))
                abort();
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        }
    } else if (sel == 4) {
        const char *nl = memchr(text, '\n', n);
        size_t flen = nl ? (size_t)(nl - text) : n;
        char *spec = malloc(flen + 1);
        if (spec) {
            memcpy(spec, text, flen);
            spec[flen] = '\0';
            weft_logs_format_t f;
            if (weft_logs_format_compile(spec, &f, err, sizeof err) == 0 && nl)
                parse_all(&f, nl + 1, end);
            free(spec);
        }
    } else {
        weft_logs_part_t *p = weft_logs_part_create();
        if (p) {
            weft_logs_part_merge_bytes(p, text, n, err, sizeof err);
            weft_logs_part_destroy(p);
        }
    }
    free(text);
    return 0;
}
