/* `weft crawl`: the pieces every mode shares. Module map (all in tools/crawl/):
 *
 *   input.c     URL list streaming (file or stdin), line validation, host keys
 *   hosts.c     the dispatch window: per-host in-flight limit and token-bucket rate limiter
 *   retry.c     retry policy: which failures retry, full-jitter backoff, Retry-After
 *   fetch.c     one attempt: request options, streaming the body into the head extractor,
 *               turning a weft_http_resp_t into a result
 *   htmlhead.c  title and description from the head (libxml2 push parser); charset.c encodings
 *   run.c       the engine: modes seq (mode-seq.c), threads (mode-threads.c), async
 *               (mode-async.c), per-mode statistics
 *   output.c    table, JSON Lines, CSV, summaries; report.c the HTML report
 *   cmd.c       the command line; demo.c the three demos
 */
#ifndef WEFT_TOOLS_CRAWL_CRAWL_H
#define WEFT_TOOLS_CRAWL_CRAWL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <weft/buf.h>
#include <weft/hist.h>
#include <weft/loop.h>

#define CRAWL_MAX_REDIRECTS 10

typedef enum crawl_mode {
    CRAWL_SEQ = 0,
    CRAWL_THREADS = 1,
    CRAWL_ASYNC = 2,
    CRAWL_NMODES = 3,
} crawl_mode_t;

const char *crawl_mode_name(crawl_mode_t m); /* "seq", "threads", "async" */

typedef struct crawl_opts {
    const char *input; /* path, or "-" for standard input */
    unsigned modes;    /* bit (1 << crawl_mode_t) for each mode to run, in order */
    int threads;       /* threads mode: pool size (default 5) */
    int concurrency;   /* async mode: transfers in flight (default 100) */
    int per_host;      /* connections per host, every mode (default 8); 0: no limit. Requests
                          in flight per host, except on a host that answered over HTTP/2 */
    double rate;       /* request starts per second per host; 0: no limit */
    int attempts;      /* attempts in all (default 3) */
    long connect_timeout_ms, timeout_ms;
    long first_byte_timeout_ms; /* no response byte this long: "timeout" (default 10000) */
    const char *cacert;         /* CA bundle for https, or NULL (CURL_CA_BUNDLE, SSL_CERT_FILE) */
    bool insecure;              /* do not verify certificates */
    long low_speed_limit, low_speed_time_s;
    size_t max_body;
    uint64_t backoff_base_ms, backoff_max_ms; /* full jitter: U(0, min(max, base * 2^n)) */
    uint64_t retry_after_max_ms;              /* longer Retry-After: give up and say so */
    size_t window;                            /* URLs read ahead; 0: automatic */
    const char *user_agent;
    const char *jsonl, *csv, *report; /* output files, or NULL */
    bool table;                       /* print the per-page table on stdout */
    bool summary;                     /* print the per-mode summary on stdout */
    bool progress;                    /* progress bar on stderr if it is a terminal */
    uint64_t seed;                    /* for the backoff jitter; 0: from the clock */
    bool ignore_robots;               /* do not fetch or obey robots.txt */
    size_t robots_cache;              /* idle hosts whose robots.txt is kept (LRU; default 1024) */
    bool auto_throttle;               /* per-host delay from observed latency (AutoThrottle) */
} crawl_opts_t;

/* Fills the defaults documented in `weft crawl --help`. */
void crawl_opts_default(crawl_opts_t *o);

/* What we learned about one URL (after its last attempt). Strings are owned by the result. */
typedef struct crawl_result {
    uint64_t line; /* 1-based line in the input */
    char *url;
    char *final_url;
    long status; /* 0 if no response */
    long redirects;
    char *title, *description;  /* NULL if absent */
    const char *charset;        /* static: the iconv name, or NULL if not parsed */
    const char *charset_source; /* static: the rule that decided it (crawl_head_charset_source) */
    uint64_t bytes;
    int attempts;
    bool truncated; /* body over --max-body, but the head was complete */
    double ms;      /* response time of the last attempt */
    double dns_ms, connect_ms, tls_ms, ttfb_ms; /* its phases (cumulative, as libcurl) */
    double queued_ms;       /* time spent waiting for a slot, a host or the rate limiter */
    double start_ms;        /* first attempt's start, since the mode began */
    int error;              /* 0, or the weft error of the last attempt (WEFT_EHTTP for >= 400) */
    const char *error_kind; /* static: NULL when ok; "timeout", "http-5xx", ... */
    char error_msg[300];
} crawl_result_t;

void crawl_result_free(crawl_result_t *r);

/* Per-mode statistics. */
#define CRAWL_MAX_KINDS 24
typedef struct crawl_stats {
    crawl_mode_t mode;
    int parallelism; /* threads or concurrency (1 for seq) */
    uint64_t pages, ok, failed, retries, bytes;
    double wall_s;
    weft_hist_t latency_us; /* per page: response time of its last attempt */
    weft_hist_t queued_us;
    const char *kinds[CRAWL_MAX_KINDS];
    uint64_t kind_count[CRAWL_MAX_KINDS];
    size_t nkinds;
    uint64_t max_inflight; /* the most transfers seen in flight at once */
} crawl_stats_t;

/* Receives each result as it completes, on the thread that runs the mode's scheduler. */
typedef void (*crawl_result_fn)(void *arg, crawl_mode_t mode, const crawl_result_t *r);

/* Runs one mode over the input. Returns 0 if it ran (pages may have failed: see stats), or a
 * negative error (the input cannot be read: -ENOENT etc.; -ENOMEM). `stats` is filled either
 * way. The input file is read again from the start; standard input cannot be, so for more than
 * one mode crawl_cmd spools it to a temporary file first. */
int crawl_run_mode(const crawl_opts_t *o, crawl_mode_t mode, FILE *input, crawl_result_fn fn,
                   void *arg, crawl_stats_t *stats);

/* ---- output ---- */

typedef struct crawl_out crawl_out_t;

/* Opens the outputs named in `o` (jsonl, csv). Returns 0 or a negative errno with a message
 * on stderr. */
int crawl_out_open(crawl_out_t **out, const crawl_opts_t *o);
void crawl_out_result(crawl_out_t *out, crawl_mode_t mode, const crawl_result_t *r);
void crawl_out_mode_begin(crawl_out_t *out, crawl_mode_t mode, int parallelism);
void crawl_out_summary(crawl_out_t *out, const crawl_stats_t *s, const crawl_stats_t *seq);
/* The side-by-side table of every mode that ran (for --mode all). */
void crawl_out_comparison(crawl_out_t *out, const crawl_stats_t *stats, size_t n);
/* Closes files; returns 0 or -EIO if a write failed. */
int crawl_out_close(crawl_out_t *out);

/* Writes the HTML report: every mode's totals and latency distribution, and the slowest and
 * failed pages. Everything from pages is escaped. Returns 0 or a negative errno. */
typedef struct crawl_page_note {
    crawl_mode_t mode;
    char *url, *title, *error;
    double ms;
} crawl_page_note_t;
int crawl_report_write(const char *path, const crawl_opts_t *o, const crawl_stats_t *stats,
                       size_t n, const crawl_page_note_t *notes, size_t nnotes);

/* Copies `s` into `out` (reset first) with invalid bytes and bidi controls replaced by U+FFFD:
 * text from pages as the table, the CSV and the report show it. */
void crawl_defang(weft_buf_t *out, const char *s);

/* Appends `s` to `f` HTML-escaped (& < > " '), invalid UTF-8 and bidi controls replaced. */
void crawl_html_escape(FILE *f, const char *s);

/* ---- the command, callable by demos ---- */
int crawl_cmd(int argc, char **argv);

#endif
