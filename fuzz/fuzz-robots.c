/* libFuzzer target for the robots.txt parser and matcher (tools/crawl/robots.c): untrusted
 * file bytes, then paths matched against the rules.
 *
 * Input: the first line is a path to test (also tried with its first half), the rest the file.
 * Checks: no crash, leak or runaway matching (ASan, the fuzzer's timeout). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crawl/robots.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nl = memchr(p, '\n', size);
    size_t plen = nl ? (size_t)(nl - p) : 0;
    if (plen > 256) plen = 256;
    char path[260] = "/";
    memcpy(path + 1, p, plen);
    path[plen + 1] = '\0';
    path[strcspn(path, "\r")] = '\0';
    const char *txt = nl ? nl + 1 : p;
    size_t n = size - (size_t)(txt - p);
    uint64_t delay;
    crawl_robots_t *r = crawl_robots_parse(txt, n, "weft", &delay);
    if (delay > 86400000) abort();
    (void)crawl_robots_allowed(r, path);
    path[strlen(path) / 2 + 1] = '\0';
    (void)crawl_robots_allowed(r, path);
    crawl_robots_free(r);
    return 0;
}
