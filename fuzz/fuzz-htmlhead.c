/* libFuzzer target for the crawl head extractor (tools/crawl/htmlhead.c) and the charset
 * decoder under it: untrusted page bytes, any Content-Type, split into arbitrary chunks.
 *
 * Input: byte 0 picks the Content-Type, byte 1 the chunk size; the rest is the body. Checks:
 * no crash or leak (ASan), and the fields are valid UTF-8, capped, with whitespace collapsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <weft/utf8.h>

#include "crawl/htmlhead.h"

static const char *const content_types[] = {
    NULL,
    "text/html",
    "text/html; charset=utf-8",
    "text/html; charset=\"windows-1251\"",
    "text/html;charset=GBK",
    "text/html; charset=shift_jis",
    "text/html; charset=utf-16",
    "text/html; charset=iso-2022-jp",
    "text/html; charset=unknown-thing",
    "application/xhtml+xml; charset=latin1",
};

static void check_field(const char *s)
{
    if (!s) return;
    size_t n = strlen(s);
    if (n > CRAWL_FIELD_MAX) abort();
    if (n && (s[0] == ' ' || s[n - 1] == ' ')) abort(); /* trimmed */
    if (!weft_utf8_valid(s, n)) abort();
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || (s[i] == ' ' && s[i + 1] == ' '))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static crawl_head_t *h;
    if (!h && !(h = crawl_head_create())) return 0;
    if (size < 2) return 0;
    const char *ct = content_types[data[0] % (sizeof content_types / sizeof content_types[0])];
    size_t chunk = (size_t)data[1] + 1;
    data += 2;
    size -= 2;
    crawl_head_reset(h, ct);
    for (size_t i = 0; i < size; i += chunk) {
        size_t k = size - i < chunk ? size - i : chunk;
        int rc = crawl_head_feed(h, (const char *)data + i, k);
        if (rc < 0) abort();
        if (rc == 1) break;
    }
    crawl_head_finish(h);
    check_field(crawl_head_title(h));
    check_field(crawl_head_description(h));
    if (!crawl_head_charset(h) || !crawl_head_charset_source(h)) abort();
    return 0;
}
