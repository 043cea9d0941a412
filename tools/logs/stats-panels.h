/* weft logs: the GoAccess panels beyond the seed's statistics - per-day requests, unique visitors
 * and bytes, requests per minute of the day, requested URLs (method, path, protocol) with hits,
 * bytes and response times, visitor IPs with bytes and times, operating systems, browsers and
 * crawlers, referrers and referring sites, virtual hosts - and the filters and conversions
 * GoAccess users use (--tz, --since/--until, --ignore-crawlers, --ignore-statics,
 * --anonymize-ip).
 *
 * Like the rest of a part, every statistic is an integer sum or a set union, so parts merge in any
 * grouping to the same result, and the report orders with total orders: any -j, chunk size or
 * mode gives byte-identical output. The text-keyed panels share one table kind
 * (weft_logs_tk_t: a weft_htab from a 64-bit hash to an entry index, the kept text in an arena,
 * as the path table does); unique visitors are a set of 64-bit hashes of (client, date, user
 * agent) - GoAccess's definition - with the date beside each. Operating systems, browsers and
 * crawlers are derived at report time from the per-user-agent counts (ua.h), and referring
 * sites from the per-referrer counts, so the hot path does one lookup per panel and no
 * classification. Each text table also keeps the set of its distinct (visitor, key) pairs, from
 * which the report counts every row's visitors exactly (stats-panels.c's DESIGN). A text-keyed
 * panel holds at most its table's limit of distinct keys; past it the panel is dropped (null),
 * never shown wrong.
 */
#ifndef WEFT_TOOLS_LOGS_STATS_PANELS_H
#define WEFT_TOOLS_LOGS_STATS_PANELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/htab.h>

#include "logs/format.h"

/* Panels, for weft_logs_filter_t.no_panels (--panels) and weft_logs_ext_t.panels. */
#define WEFT_LOGS_PANEL_DAILY 1u      /* "daily": requests and bytes per date */
#define WEFT_LOGS_PANEL_VISITORS 2u   /* "visitors" and the daily visitors */
#define WEFT_LOGS_PANEL_MINUTELY 4u   /* "minutely" */
#define WEFT_LOGS_PANEL_URLS 8u       /* "urls" */
#define WEFT_LOGS_PANEL_IPS 16u       /* "ips" */
#define WEFT_LOGS_PANEL_AGENTS 32u    /* "os", "browsers", "crawlers" */
#define WEFT_LOGS_PANEL_REFERRERS 64u /* "referrers", "referring_sites" */
#define WEFT_LOGS_PANEL_VHOSTS 128u   /* "vhosts" */
/* "row-visitors": the visitors of each row of "agents", "referrers" and "vhosts" ("urls" and
 * "ips" always count theirs) */
#define WEFT_LOGS_PANEL_ROWVIS 256u
#define WEFT_LOGS_PANELS_ALL 511u
/* The panels counted unless --panels says otherwise: all but "ips", "urls" and "row-visitors",
 * which cost most (measured in docs/logs.md; the seed's top paths stay in the default report). */
#define WEFT_LOGS_PANELS_DEFAULT                                                                   \
    (WEFT_LOGS_PANELS_ALL & ~(WEFT_LOGS_PANEL_IPS | WEFT_LOGS_PANEL_URLS | WEFT_LOGS_PANEL_ROWVIS))

/* Parses a --panels list ("default", "all", "none", or names: daily, visitors, minutely, urls,
 * ips, agents, referrers, vhosts, row-visitors, comma-separated; "+NAME" adds a panel to the
 * default set) into the bits to turn off (weft_logs_filter_t.no_panels is relative to
 * WEFT_LOGS_PANELS_ALL, so that a zeroed filter counts all panels; the command sets the default).
 * Returns 0 or -EINVAL. */
int weft_logs_panels_parse(const char *list, unsigned *no_panels);

#define WEFT_LOGS_SEEN 4096

/* Unique visitors: the 64-bit hash of (client, date, user agent) and a tag: for the global set
 * the date (a function of the hash), for a text panel's set the hash of the row's key, so that
 * the set holds each distinct (visitor, row) pair once. */
typedef struct weft_logs_vis {
    uint64_t hash, tag;
} weft_logs_vis_t;

/* A set of (visitor, tag) pairs kept as a sorted array of unique entries plus a buffer of new
 * ones, sorted (radix) and merged in when full: appending is a sequential write per line where a
 * hash table takes a cache miss (measured: docs/logs.md). Ordered by hash, then tag, so that a
 * visitor's pairs are adjacent. */
typedef struct weft_logs_vset {
    weft_logs_vis_t *sorted; /* unique, ascending by hash */
    size_t n;
    weft_logs_vis_t *pend; /* appended, not yet merged */
    size_t npend;
} weft_logs_vset_t;

int weft_logs_vset_add(weft_logs_vset_t *s, uint64_t hash, uint64_t tag);
void weft_logs_vset_free(weft_logs_vset_t *s);
/* The whole set as a new sorted array of unique entries (*out owned; free()). */
int weft_logs_vset_view(const weft_logs_vset_t *s, weft_logs_vis_t **out, size_t *n);

#define WEFT_LOGS_TK_MAX 65536       /* distinct keys of a text panel */
#define WEFT_LOGS_TK_MAX_IPS 1048576 /* distinct clients of the "ips" panel */
#define WEFT_LOGS_TK_KEEP 256        /* bytes of each key's text kept */

typedef struct weft_logs_ek {
    uint64_t hash;
    uint32_t off, len; /* the kept text in the arena; len: its full length */
    uint64_t hits, bytes, rt_sum, rt_n, rt_max;
} weft_logs_ek_t;

typedef struct weft_logs_tk {
    weft_htab_t index; /* nonzero(hash) -> entry index */
    weft_logs_ek_t *ents;
    size_t used, cap;
    char *arena;
    size_t alen, acap;
    uint32_t max;
    bool overflow;
    /* Per-row visitors: the distinct (visitor, entry hash) pairs, with a cache of WEFT_LOGS_SEEN
     * pairs known to be in the set (as weft_logs_ext_t.seen). Freed when the table overflows. */
    weft_logs_vset_t vis;
    uint64_t *seen;
    bool novis; /* counts arrived without their pairs (a version 3 partial): visitors unknown */
} weft_logs_tk_t;

typedef struct weft_logs_day {
    uint32_t date; /* WEFT_LOGS_DATE */
    uint64_t requests, bytes;
} weft_logs_day_t;

typedef struct weft_logs_ext {
    unsigned panels; /* WEFT_LOGS_PANEL_* counted (the union over merged parts) */
    weft_logs_day_t *days;
    size_t ndays, capdays;
    weft_logs_vset_t visitors;
    uint64_t *seen; /* WEFT_LOGS_SEEN visitor hashes known to be in `visitors` (a cache
                     * indexed by the hash's low bits; 0: empty): a client's next request
                     * of the day skips the large table */
    uint64_t minutely[1440];
    weft_logs_tk_t urls, ips, agents, referrers, vhosts;
} weft_logs_ext_t;

/* Thread safety of everything below: an ext belongs to one thread at a time. */
int weft_logs_ext_init(weft_logs_ext_t *e);
void weft_logs_ext_free(weft_logs_ext_t *e);

/* A line's hashes, computed (and the table slots they lead to prefetched) by
 * weft_logs_ext_prepare one batch before weft_logs_ext_record_h uses them, as the seed's
 * tables do (stats.c). */
typedef struct weft_logs_exth {
    uint64_t agent, visitor, url, client;
    uint64_t vis; /* the visitor's hash for the per-row visitors (0: no text panel on) */
} weft_logs_exth_t;

void weft_logs_ext_prepare(const weft_logs_ext_t *e, const weft_logs_rec_t *r, unsigned panels,
                           weft_logs_exth_t *h);
int weft_logs_ext_record_h(weft_logs_ext_t *e, const weft_logs_rec_t *r, unsigned panels,
                           const weft_logs_exth_t *h);

/* Records one line into the panels `panels` (prepare, then record). Returns 0 or -ENOMEM. */
int weft_logs_ext_record(weft_logs_ext_t *e, const weft_logs_rec_t *r, unsigned panels);

/* Adds src to dst. Returns 0 or -ENOMEM. */
int weft_logs_ext_merge(weft_logs_ext_t *dst, const weft_logs_ext_t *src);

/* The text tables' operations, for the serialized form (partial.c). tk_add adds the counts of
 * `src` under `h`, storing `text` (at most WEFT_LOGS_TK_KEEP bytes of it, `len` its full
 * length) when the key is new; past the table's limit it only sets overflow. */
int weft_logs_tk_add(weft_logs_tk_t *t, uint64_t h, const char *text, uint32_t len,
                     const weft_logs_ek_t *src);
/* Adds the pair (visitor hash `vis`, entry hash `h`) to the table's per-row visitors (nothing
 * once it overflowed). Returns 0 or -ENOMEM. */
int weft_logs_tk_add_pair(weft_logs_tk_t *t, uint64_t vis, uint64_t h);
/* Marks the table as past its limit and drops its visitor pairs. */
void weft_logs_tk_overflow(weft_logs_tk_t *t);
int weft_logs_ext_add_day(weft_logs_ext_t *e, uint32_t date, uint64_t requests, uint64_t bytes);

/* Filters (weft_logs_filter_t): applies --tz, then leaves out by --since/--until, status,
 * excluded clients, --ignore-crawlers and --ignore-statics, then --anonymize-ip. Returns false
 * when the line is left out; may rewrite the record's time and client fields. Thread safety: any
 * thread (--tz with a zone name uses localtime_r, so TZ must be set before threads start). */
bool weft_logs_filter_apply(const weft_logs_filter_t *f, weft_logs_rec_t *r);

/* Parses a --tz value: "UTC", "+HHMM"/"-HHMM"/"+HH:MM", or a zone name such as
 * "Europe/Berlin" (then TZ is set in the environment for localtime_r). Returns 0 or -EINVAL. */
int weft_logs_tz_parse(const char *s, weft_logs_filter_t *f);

/* Parses a --since/--until date: YYYY-MM-DD or DD/Mon/YYYY (GoAccess's date format).
 * Returns the packed date, or 0 when invalid. */
uint32_t weft_logs_date_parse(const char *s);

/* ---- the report's panels ------------------------------------------------------------------- */

typedef struct weft_logs_row {
    char *name;     /* owned, NUL-terminated (URLs: the decoded path) */
    char *method;   /* URLs only: owned, "" when absent */
    char *protocol; /* URLs only: owned, "" when absent */
    uint64_t hits, bytes, rt_sum, rt_n, rt_max;
    uint64_t visitors; /* distinct (client, date, user agent) of the row's lines;
                        * WEFT_LOGS_VISITORS_UNKNOWN when merged from a partial without them */
    size_t src;        /* private: the table entry the row was made from */
    uint8_t addr[17];  /* IPs only: the family (4 or 6), then the address in network order */
} weft_logs_row_t;

#define WEFT_LOGS_VISITORS_UNKNOWN UINT64_MAX

typedef struct weft_logs_panel {
    bool present;  /* counted (the panel was on and the format has its field) */
    bool overflow; /* more distinct keys than the table's limit: the panel is dropped */
    uint64_t distinct;
    size_t n;
    weft_logs_row_t *rows; /* owned; best first: hits descending, then the name in byte order
                            * (URLs: path, method, protocol; IPs: IPv4 first, by value) */
} weft_logs_panel_t;

typedef struct weft_logs_day_row {
    uint32_t date;
    uint64_t requests, visitors, bytes;
} weft_logs_day_row_t;

typedef struct weft_logs_ext_report {
    unsigned panels;
    uint64_t visitors;
    size_t ndays;
    weft_logs_day_row_t *days; /* owned; ascending */
    uint64_t minutely[1440];
    weft_logs_panel_t urls, ips, os, browsers, crawlers, referrers, sites, vhosts;
} weft_logs_ext_report_t;

/* Builds the panels' report (top `top_n` rows each). Returns 0 or -ENOMEM; free with
 * weft_logs_ext_report_free() either way. */
int weft_logs_ext_report_build(const weft_logs_ext_t *e, size_t top_n, weft_logs_ext_report_t *out);
void weft_logs_ext_report_free(weft_logs_ext_report_t *r);

/* Decodes %XX escapes (GoAccess shows /docs/a%20b.html as /docs/a b.html; '+' is kept), in
 * place; returns the new length. Invalid escapes stay as written. */
size_t weft_logs_url_decode(char *s, size_t len);

#endif
