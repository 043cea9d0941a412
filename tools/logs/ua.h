/* weft logs: what a user agent string says - the operating system, the browser, or the crawler -
 * from a small ordered table of substrings (ua.c), in the manner of GoAccess's browsers.c and
 * opesys.c lists. Classification runs once per distinct user agent (at report time), or per line
 * only for --ignore-crawlers.
 */
#ifndef WEFT_TOOLS_LOGS_UA_H
#define WEFT_TOOLS_LOGS_UA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct weft_logs_ua_class {
    const char *os;      /* "Windows", "macOS", "Linux", ...; "Unknown" */
    const char *browser; /* "Chrome", "Firefox", ...; "Crawlers" for a crawler; "Unknown" */
    const char *crawler; /* "Googlebot", ...; NULL when not a crawler */
} weft_logs_ua_class_t;

/* Classifies the user agent [ua, ua + len) (not NUL-terminated; NULL or "-" is "Unknown").
 * The names are static strings. Thread safety: any thread. */
weft_logs_ua_class_t weft_logs_ua_classify(const char *ua, size_t len);

/* Whether the user agent is a crawler (weft_logs_ua_classify(...).crawler != NULL). */
bool weft_logs_ua_is_crawler(const char *ua, size_t len);

#endif
