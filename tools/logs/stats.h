/* weft logs: partial statistics, their merge and their compact serialized form.
 *
 * A part (weft_logs_part_t) holds everything one worker has counted so far: plain integer
 * counters, the response-time histogram (weft_hist_t), and three hash tables: IPv4 clients,
 * IPv6 clients and request paths. Every statistic is an integer sum, so merging parts in any
 * grouping gives the same totals; the report then sorts with total orders (count descending,
 * then the key ascending), so the output does not depend on the number of workers or chunks.
 *
 * IPv6 clients and paths use weft_htab (the one hash table): for IPv6 as an index into a dense
 * array of entries, for paths (keyed by hash alone) holding the count itself. The IPv4 table alone
 * is specialised, on purpose: an IPv4 entry is 8 bytes (a 32-bit key and a 32-bit count, empty when
 * the count is 0), which keeps 1 M distinct clients in 16 MB per worker and the hot probe in one
 * cache line; weft_htab's 16-byte {hash, value} slots plus the entry they point to would triple
 * that and add a dependent load per line, the cost that dominates `weft logs` at 1 GB/s (measured:
 * see stats.c). The IPv4 table is split into 4 partitions by hash so that growth never copies more
 * than a quarter of it and the final merge runs one task per partition (4 MB each at 1 M clients:
 * large enough for huge pages, see stats.c).
 */
#ifndef WEFT_TOOLS_LOGS_STATS_H
#define WEFT_TOOLS_LOGS_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <weft/buf.h>
#include <weft/hist.h>
#include <weft/htab.h>

#include "logs/format.h"
#include "logs/stats-panels.h"

#define WEFT_LOGS_PARTS 4
#define WEFT_LOGS_MAX_PATHS 65536 /* distinct paths in memory; beyond, a recount (run.c) */
#define WEFT_LOGS_DISTINCT_UNKNOWN UINT64_MAX /* a recounted table's distinct paths */
#define WEFT_LOGS_PATH_KEEP 256               /* bytes of each path kept for display */
#define WEFT_LOGS_STATUS_MAX 1000

typedef struct weft_logs_e4 {
    uint32_t key, count; /* count 0: empty slot */
} weft_logs_e4_t;

/* Carries of a count that reached 2^32 - 1 (moved here so the 32-bit slot never wraps). */
typedef struct weft_logs_spill {
    uint32_t key;
    uint64_t carry;
} weft_logs_spill_t;

typedef struct weft_logs_t4 {
    weft_logs_e4_t *slots;
    uint32_t mask, used, limit;
    uint32_t nspill, capspill;
    weft_logs_spill_t *spill;
    uint64_t probes; /* slots examined by weft_logs_t4_slot (inserts and merges), for tests */
} weft_logs_t4_t;

#define WEFT_LOGS_IP6_TEXT 46 /* the longest IPv6 text (45 bytes) and a NUL */

typedef struct weft_logs_e6 {
    uint8_t addr[16];
    uint64_t count; /* 0: empty */
    /* The address as written in the log (NUL-terminated; "" when unknown): of the spellings
     * seen, the least in byte order, so that any -j, chunking or merge order keeps the same
     * one; the report prints it, so that grep finds the client in the log. */
    char text[WEFT_LOGS_IP6_TEXT];
} weft_logs_e6_t;

/* IPv6 clients: entries in first-seen order, found through a weft_htab (hash6 -> index). */
typedef struct weft_logs_t6 {
    weft_htab_t index;
    weft_logs_e6_t *ents;
    size_t used, cap;
} weft_logs_t6_t;

/* A path's first-seen text, in the arena, and its hash. */
typedef struct weft_logs_ep {
    uint64_t hash;
    uint32_t off, len;
} weft_logs_ep_t;

/* Paths, keyed by their 64-bit hash alone: a weft_htab from the hash to the path's count (the
 * hot path is one probe and an increment, as fast as the table it replaced), and the texts in
 * first-seen order beside it. */
typedef struct weft_logs_tp {
    weft_htab_t counts;
    weft_logs_ep_t *ents;
    size_t used, cap;
    char *arena;
    size_t alen, acap;
    bool overflow; /* more than WEFT_LOGS_MAX_PATHS distinct paths were seen */
    /* The recount of a table that overflowed (run.c): with `buckets`, a path is only added to
     * its hash bucket's count (buckets[hash & bmask], shared by the workers, atomic); with
     * `select`, only the paths whose bucket holds at least `thresh` are counted. `recounted`:
     * the table holds exactly the paths counted `thresh` times or more, with their exact counts,
     * of more than WEFT_LOGS_MAX_PATHS distinct, and `total` is the sum of all counts. */
    _Atomic uint64_t *buckets;
    const _Atomic uint64_t *select;
    uint64_t bmask, thresh, total;
    bool recounted;
} weft_logs_tp_t;

typedef struct weft_logs_part {
    uint64_t lines, parsed, malformed, bytes;
    uint64_t excluded; /* lines left out by the filter (lines = parsed + malformed + excluded) */
    uint64_t hourly[24];
    uint64_t status[WEFT_LOGS_STATUS_MAX];
    weft_hist_t rt; /* response times in microseconds */
    weft_logs_t4_t ip4[WEFT_LOGS_PARTS];
    weft_logs_t6_t ip6;
    weft_logs_tp_t paths;
    weft_logs_tp_t paths404; /* the paths of 404 responses (GoAccess's "not found" panel) */
    weft_logs_tp_t statics;  /* the paths of static files (weft_logs_is_static) */
    weft_logs_ext_t ext;     /* the GoAccess panels (stats-panels.h) */
    int oom;                 /* an allocation failed: the part is incomplete (-ENOMEM) */
} weft_logs_part_t;

/* Allocates an empty part. Returns NULL when out of memory. Ownership: returns owned; free with
 * weft_logs_part_destroy(). Thread safety: a part is used by one thread at a time. */
weft_logs_part_t *weft_logs_part_create(void);
void weft_logs_part_destroy(weft_logs_part_t *p);

/* Records one parsed line. Out of memory sets p->oom (checked by the caller at the end). */
void weft_logs_part_record(weft_logs_part_t *p, const weft_logs_rec_t *r);

/* Adds every count of `src` to `dst` (src is unchanged). Returns 0 or -ENOMEM. */
int weft_logs_part_merge(weft_logs_part_t *dst, const weft_logs_part_t *src);

/* The merge in pieces, for running it on several threads: the IPv4 partition `k` (0..15) of
 * each of the `n` sources into dst, and everything else. Pieces touch disjoint memory. */
int weft_logs_part_merge_ip4(weft_logs_part_t *dst, weft_logs_part_t *const *src, size_t n, int k);
int weft_logs_part_merge_rest(weft_logs_part_t *dst, weft_logs_part_t *const *src, size_t n);

/* The IPv4 partition (0..WEFT_LOGS_PARTS-1) a key belongs to. For tests. */
int weft_logs_ip4_partition(uint32_t key);

/* Total count of one IPv4 key, including spilled carries (0 if absent). For tests. */
uint64_t weft_logs_part_ip4_count(const weft_logs_part_t *p, uint32_t key);

/* Adds `n` to an IPv4 key. For the merge and for tests of the 32-bit carry. */
void weft_logs_t4_add(weft_logs_t4_t *t, uint32_t key, uint64_t n, int *oom);

/* Serialized form: "WEFTLOGP", version, flags, payload length, CRC-32 of the payload, then the
 * payload of little-endian varints. `sorted` orders the table entries by key so that equal parts
 * give equal bytes (for --save-partial); unsorted is faster (for process-pool results).
 * Returns 0, -ENOMEM or -EMSGSIZE. Ownership: appends to the caller's buffer. */
int weft_logs_part_serialize(const weft_logs_part_t *p, weft_buf_t *out, bool sorted);

/* Checks a serialized part completely (magic, version, checksum, bounds, and that its totals
 * agree with each other), then adds it to `dst`. On failure dst is unchanged and `err` says
 * what is wrong. Returns 0, WEFT_EPARSE or -ENOMEM. Ownership: borrows. */
int weft_logs_part_merge_bytes(weft_logs_part_t *dst, const void *data, size_t len, char *err,
                               size_t errlen);

/* ---- the chunk core ------------------------------------------------------------------------ */

#define WEFT_LOGS_BAD_KEEP 5   /* malformed lines remembered per chunk (and shown in all) */
#define WEFT_LOGS_BAD_TEXT 120 /* bytes of each one kept */

typedef struct weft_logs_bad {
    uint64_t line; /* 1-based within the chunk; made file-relative when chunks are combined */
    uint32_t len;
    char text[WEFT_LOGS_BAD_TEXT];
} weft_logs_bad_t;

typedef struct weft_logs_chunkres {
    uint64_t lines;
    uint32_t nbad;
    weft_logs_bad_t bad[WEFT_LOGS_BAD_KEEP];
} weft_logs_chunkres_t;

/* analyze(chunk) -> partial stats: parses every line of [data, data + len) (whole lines; the
 * last one may lack its newline; a '\r' before the newline is dropped) and adds it to `acc`.
 * Adds the lines to res->lines and appends the first malformed lines to res->bad, numbered
 * from res->lines as it was (zero `res` before the first piece of a chunk; a chunk read in
 * several pieces keeps counting). Ownership: borrows. Thread safety: any thread; `acc` and
 * `res` belong to the caller. */
void weft_logs_analyze(const weft_logs_format_t *f, const char *data, size_t len,
                       weft_logs_part_t *acc, weft_logs_chunkres_t *res);

/* ---- the final report ---------------------------------------------------------------------- */

typedef struct weft_logs_ipcount {
    int family;       /* 4 or 6 */
    uint8_t addr[16]; /* network byte order; IPv4 in the first 4 bytes */
    uint64_t count;
    char text[WEFT_LOGS_IP6_TEXT]; /* IPv6: as written in the log (weft_logs_e6_t), or "" */
} weft_logs_ipcount_t;

typedef struct weft_logs_pathcount {
    char *path; /* owned; at most WEFT_LOGS_PATH_KEEP bytes, then "..." */
    uint64_t count;
} weft_logs_pathcount_t;

typedef struct weft_logs_report {
    uint64_t lines, parsed, malformed, bytes, excluded;
    uint64_t hourly[24];
    uint64_t status[WEFT_LOGS_STATUS_MAX];
    uint64_t distinct_ips;
    size_t ntop;
    weft_logs_ipcount_t *top; /* owned; ntop entries, best first */
    /* response times in microseconds (0 when count is 0) */
    uint64_t rt_count, rt_sum, rt_min, rt_max, rt_avg, rt_p50, rt_p90, rt_p95, rt_p99;
    bool paths_overflow;
    uint64_t distinct_paths;
    size_t npaths;
    weft_logs_pathcount_t *top_paths; /* owned */
    bool paths404_overflow;           /* not-found (404) paths, as top_paths */
    uint64_t distinct_paths404;
    size_t npaths404;
    weft_logs_pathcount_t *top_paths404; /* owned */
    bool statics_overflow;               /* static requests, as top_paths */
    uint64_t distinct_statics, static_hits;
    size_t nstatics;
    weft_logs_pathcount_t *top_statics; /* owned */
    weft_logs_ext_report_t ext;         /* the GoAccess panels */
} weft_logs_report_t;

/* Builds the report: top `top_n` IPs (count descending, then IPv4 before IPv6, then address
 * ascending), top `top_paths` paths (count descending, then text ascending), percentiles.
 * Returns 0 or -ENOMEM. Ownership: free with weft_logs_report_free(). */
int weft_logs_report_build(const weft_logs_part_t *p, size_t top_n, size_t top_paths,
                           weft_logs_report_t *out);
void weft_logs_report_free(weft_logs_report_t *r);

/* Whether a request path names a static file, by its extension (case-insensitive), as
 * GoAccess's default static list: css js map jpg jpeg png gif ico svg webp bmp tif tiff avif
 * woff woff2 ttf otf eot pdf txt csv xml json mp3 mp4 ogg webm avi flv mpeg mpg swf zip gz tgz
 * tar rar 7z iso exe doc docx xls xlsx ppt pptx. */
bool weft_logs_is_static(const char *path, size_t len);

/* A percentile as the report prints it: rounded to 3 significant digits, the precision the
 * histogram has (< 1 % relative error), so that 0.016 in the log is not shown as 0.016031. */
uint64_t weft_logs_round_quantile(uint64_t us);

/* Orders two IP counts as the report does: negative if `a` ranks first. */
int weft_logs_ipcount_cmp(const weft_logs_ipcount_t *a, const weft_logs_ipcount_t *b);

/* Formats an address as text: an IPv6 one as written in the log when known, else inet_ntop.
 * `buf` holds at least 46 bytes. */
void weft_logs_ip_text(const weft_logs_ipcount_t *ip, char *buf, size_t len);

#endif
