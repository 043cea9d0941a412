/* weft logs: inputs, chunking and the parallel run (threads or processes).
 *
 * Regular files are cut into byte ranges; each range is widened to whole lines by whoever
 * processes it (weft_logs_chunk_bounds), which reads it with pread into a small per-worker
 * buffer or, with use_mmap, from a memory mapping. Standard input and gzip files are streamed:
 * one reader cuts them into line-aligned blocks for the workers.
 */
#ifndef WEFT_TOOLS_LOGS_RUN_H
#define WEFT_TOOLS_LOGS_RUN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logs/stats.h"

#define WEFT_LOGS_CHUNK_DEFAULT (8u << 20)       /* mapped files, threads */
#define WEFT_LOGS_CHUNK_PROC_DEFAULT (32u << 20) /* mapped files, processes */
#define WEFT_LOGS_BLOCK_DEFAULT (4u << 20)       /* streams */
#define WEFT_LOGS_MAX_CHUNKS (1u << 20)          /* a smaller chunk size is raised */
#define WEFT_LOGS_READ_BUF (1u << 20)            /* per-worker pread buffer */

typedef enum weft_logs_mode { WEFT_LOGS_THREADS = 0, WEFT_LOGS_PROCESSES } weft_logs_mode_t;

typedef struct weft_logs_run_opts {
    const char *const *files; /* "-" is standard input */
    size_t nfiles;
    int jobs; /* >= 1 */
    weft_logs_mode_t mode;
    uint64_t chunk_size;              /* 0: the defaults above */
    const char *format;               /* NULL or "auto": detect per file */
    bool use_mmap;                    /* map files instead of pread into per-worker buffers */
    bool progress;                    /* draw a progress bar when stderr is a terminal */
    const weft_logs_filter_t *filter; /* NULL: none */
    const struct weft_logs_recount *recount; /* internal to run.c: NULL */
} weft_logs_run_opts_t;

/* The exact recount of path tables that overflowed (run.c describes it): for each table (0: all
 * paths, 1: not found, 2: static files) being recounted, the hash buckets its first pass fills
 * (shared by the workers) and, in its second pass, the threshold selecting the candidates; the
 * input sizes of the first run, so that a growing file is read up to the same snapshot. */
#define WEFT_LOGS_RECOUNT_BUCKETS (1u << 18)
typedef struct weft_logs_recount {
    _Atomic uint64_t *buckets[3];
    uint64_t thresh[3]; /* 0: the first pass */
    const uint64_t *sizes;
} weft_logs_recount_t;

typedef struct weft_logs_badline {
    size_t file; /* index into opts.files */
    uint64_t line;
    uint32_t len;
    char text[WEFT_LOGS_BAD_TEXT];
} weft_logs_badline_t;

/* What an input was, for telling whether two partials counted the same input: its decoded size
 * and a hash of its first and last 64 KiB (decoded). The same bytes give the same identity
 * under any name, compressed or not, from a file or a stream. */
#define WEFT_LOGS_IDENT_EDGE 65536
typedef struct weft_logs_ident {
    uint64_t size, hash;
} weft_logs_ident_t;

/* Accumulates an identity from a stream's bytes in order. */
typedef struct weft_logs_identacc {
    uint64_t total;
    size_t hlen, tlen;
    unsigned char head[WEFT_LOGS_IDENT_EDGE], tail[WEFT_LOGS_IDENT_EDGE];
} weft_logs_identacc_t;
void weft_logs_ident_add(weft_logs_identacc_t *a, const void *data, size_t len);
weft_logs_ident_t weft_logs_ident_done(const weft_logs_identacc_t *a);

typedef struct weft_logs_run_result {
    weft_logs_part_t *part; /* owned: free with weft_logs_part_destroy */
    size_t nbad;            /* the first malformed lines, by file then line number */
    weft_logs_badline_t bad[WEFT_LOGS_BAD_KEEP];
    char format_names[256]; /* the format used for each file, comma-separated */
    size_t nchunks;
    uint64_t input_bytes;
    uint64_t scan_ns, merge_ns; /* the parallel pass; the merge (processes: of all results) */
    weft_logs_ident_t *idents;  /* owned: one per input, in order */
} weft_logs_run_result_t;

/* Widens the byte range [start, end) of a mapping of `size` bytes to whole lines: the chunk owns
 * every line that starts inside the range. Sets [*s, *e), which is empty when no line starts in
 * the range (a line longer than the chunk). Thread safety: any thread. */
void weft_logs_chunk_bounds(const char *map, uint64_t size, uint64_t start, uint64_t end,
                            uint64_t *s, uint64_t *e);

/* Runs the analysis. Returns a weft exit code (0; WEFT_EXIT_USAGE for a missing, unreadable or
 * non-regular file or a bad format; WEFT_EXIT_FAILED when a worker failed; WEFT_EXIT_INTERNAL)
 * with a one-line message in `err` on failure (then res->part is NULL). Ownership: borrows opts;
 * res is filled and owned by the caller. Thread safety: any thread. */
int weft_logs_run(const weft_logs_run_opts_t *o, weft_logs_run_result_t *res, char *err,
                  size_t errlen);

/* ---- live mode (run-follow.c) ---- */

typedef struct weft_logs_follow_opts {
    const char *const *files; /* regular files, followed by name; "-": standard input */
    size_t nfiles;
    const char *format;               /* NULL or "auto": detect per input from its first lines */
    const weft_logs_filter_t *filter; /* NULL: none */
    uint64_t tick_ms;                 /* how often `tick` is called; 0: 1000 */
    /* Called on the calling thread every tick_ms with everything counted so far (`changed`:
     * since the last call; always true the first time). Borrows `part`. The caller reports the
     * final result itself. */
    void (*tick)(void *arg, const weft_logs_part_t *part, bool changed);
    void *arg;
} weft_logs_follow_opts_t;

/* Counts the inputs as they grow, like `tail -F`: a file is read to its end, then again as lines
 * are appended (an inotify event or the tick, whichever comes first); when its name comes to
 * name another file (rename rotation) the rest of the old one is read and the new one is
 * followed from its start; when it shrinks (copytruncate) it is read again from its start.
 * Standard input is read until its end. Only whole lines are counted: a line still being
 * written is counted once its newline arrives (or when it proves final: at the end of standard
 * input, or when its file is rotated or truncated). Returns on SIGINT or SIGTERM, or when every
 * input has ended (only standard input ends), with the result as weft_logs_run's (nchunks 0,
 * scan_ns the time followed). Returns 0 or a WEFT_EXIT_ code with a message in `err`.
 * Ownership: borrows opts; res is the caller's (weft_logs_run_result_free). Thread safety: one
 * call per process at a time (it handles SIGINT and SIGTERM while it runs). */
int weft_logs_follow(const weft_logs_follow_opts_t *o, weft_logs_run_result_t *res, char *err,
                     size_t errlen);

/* Frees what weft_logs_run put into `res`. */
void weft_logs_run_result_free(weft_logs_run_result_t *res);

#endif
