/* robots.txt (RFC 9309): the rules that apply to one user agent, and whether a path is allowed.
 *
 * The group naming our product token (case-insensitive) applies, else the "*" group; several
 * groups for the same agent are merged. Rules match a path prefix, with "*" for any run of
 * characters and a final "$" anchoring the end; the longest matching rule wins, Allow on a tie.
 * Crawl-delay (not in the RFC, but honoured by the crawlers sites expect) is read from the same
 * groups. Pure functions; a rule set is immutable once parsed (any thread may read it).
 */
#ifndef WEFT_TOOLS_CRAWL_ROBOTS_H
#define WEFT_TOOLS_CRAWL_ROBOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct crawl_robots crawl_robots_t;

/* Parses `n` bytes of robots.txt for the product token `agent` ("weft"). Returns the rules, or
 * NULL when nothing is disallowed (or on allocation failure: then everything is allowed).
 * *delay_ms gets the Crawl-delay in ms, 0 if none. Ownership: returns owned; free with
 * crawl_robots_free(). */
crawl_robots_t *crawl_robots_parse(const char *txt, size_t n, const char *agent,
                                   uint64_t *delay_ms);

/* True if `path` (path and query, starting with '/') may be fetched. NULL rules allow all. */
bool crawl_robots_allowed(const crawl_robots_t *r, const char *path);

void crawl_robots_free(crawl_robots_t *r);

#endif
