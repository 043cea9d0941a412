/* URL input, streamed: one line at a time from a FILE, so that a list of 100 k URLs never sits in
 * memory. Blank lines and lines starting with '#' are skipped; every other line is one URL,
 * checked with libcurl's URL parser (http and https only, a host required). */
#ifndef WEFT_TOOLS_CRAWL_INPUT_H
#define WEFT_TOOLS_CRAWL_INPUT_H

#include <stdint.h>
#include <stdio.h>

#define CRAWL_URL_MAX 8192
#define CRAWL_HOSTKEY_MAX 300

typedef struct crawl_input crawl_input_t;

/* Reads from `f` (borrowed, not closed). Returns 0 or -ENOMEM. */
int crawl_input_open(crawl_input_t **out, FILE *f);
void crawl_input_close(crawl_input_t *in);

typedef struct crawl_line {
    uint64_t line;                /* 1-based line number */
    char *url;                    /* owned by the caller (free()), trimmed */
    char host[CRAWL_HOSTKEY_MAX]; /* "scheme://host:port", lower case; "" if invalid */
    const char *invalid;          /* static reason, or NULL if the URL is usable */
} crawl_line_t;

/* The next URL line. Returns 1 (a line in *out), 0 at the end, or -EIO on a read error. */
int crawl_input_next(crawl_input_t *in, crawl_line_t *out);

/* Counts the lines of `f` that crawl_input_next would return (not blank, not comments), then
 * rewinds it. Returns 0 or a negative errno (-EIO, -ESPIPE: not seekable). */
int crawl_input_count(FILE *f, uint64_t *n);

/* Bytes consumed so far (for progress). */
uint64_t crawl_input_offset(const crawl_input_t *in);

/* Validates one URL and computes its host key (exposed for tests). Returns NULL if usable,
 * else the reason. Plain URLs (a lower-case http or https scheme, a host name of ASCII letters,
 * digits and '-' or a dotted-quad IPv4 address, an optional port) are checked here; the others
 * by libcurl's URL parser, which costs ten times more per URL. */
const char *crawl_url_check(const char *url, char host[CRAWL_HOSTKEY_MAX]);

/* crawl_url_check always through libcurl's parser: for tests, which compare the two. */
const char *crawl_url_check_curl(const char *url, char host[CRAWL_HOSTKEY_MAX]);

#endif
