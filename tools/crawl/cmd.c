/* `weft crawl`: the command line. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <weft/err.h>
#include <weft/hash.h>

#include "crawl/crawl.h"
#include "common/cli-int.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: weft crawl [OPTIONS] FILE\n\n"
               "Fetches every URL listed in FILE ('-' for standard input; one per line, blank\n"
               "lines and lines starting with '#' ignored) and reports, per page: HTTP status,\n"
               "final URL and redirects, <title>, meta description (og:description as a\n"
               "fallback), bytes, attempts, and the response time with its phases (DNS, connect,\n"
               "TLS, first byte) and the time spent queued. The list is streamed: 100 k URLs do\n"
               "not all sit in memory. Invalid lines are reported as errors, not fatal.\n\n"
               "Modes (the seed's comparison): seq fetches one URL at a time; threads uses a\n"
               "pool of N threads with blocking requests; async runs C transfers at once on one\n"
               "event loop. 'all' runs the three in turn and compares them.\n\n"
               "Options:\n");
    fprintf(f, "  --mode M              seq, threads, async or all (default async)\n"
               "  --threads N           threads in threads mode (default 5)\n"
               "  --concurrency C       transfers in flight in async mode (default 100)\n"
               "  --per-host K          at most K connections per host (the server: address and\n"
               "                        port), every mode (default 8, as Scrapy's\n"
               "                        CONCURRENT_REQUESTS_PER_DOMAIN; 0: no limit). Over\n"
               "                        HTTP/1.1 that is K requests in flight; in async mode a\n"
               "                        host that answered over HTTP/2 multiplexes them on one\n"
               "                        connection and K no longer limits its requests\n"
               "  --rate R              at most R request starts per second per host, every mode:\n"
               "                        a token bucket of depth 1, so starts are >= 1/R s apart\n"
               "                        and no 1-second window holds more than R (default: none)\n"
               "  --attempts N          attempts per URL in all (default 3; 1: no retries).\n"
               "                        Retried: timeouts, connection errors, 408, 429, 5xx;\n"
               "                        never other 4xx. Waits: full-jitter exponential backoff,\n"
               "                        at least what a Retry-After header asks\n"
               "  --backoff BASE:MAX    backoff after attempt n: uniform in\n"
               "                        [0, min(MAX, BASE * 2^(n-1))] ms (default 500:10000)\n"
               "  --retry-after-max S   a Retry-After longer than S seconds is not waited for:\n"
               "                        the URL fails at once, saying so (default 60)\n"
               "  --timeout S           total time per attempt, redirects included (default 30)\n"
               "  --connect-timeout S   (default 10)\n"
               "  --first-byte-timeout S  an attempt with no response byte after S seconds\n"
               "                        fails as \"timeout\" (default 10; 0: only --timeout)\n"
               "  --cacert FILE         CA bundle for https (default: $CURL_CA_BUNDLE, else\n"
               "                        $SSL_CERT_FILE, else the system's)\n"
               "  --insecure            do not verify https certificates\n"
               "  --auto-throttle       adapt each host's pace to its latency (Scrapy's\n"
               "                        AutoThrottle): one request in flight until it answers,\n"
               "                        then an interval moving halfway towards the latency\n"
               "                        (never below --rate or Crawl-delay, at most 60 s)\n"
               "  --ignore-robots       do not fetch robots.txt; by default each host's is\n"
               "                        fetched once, first: disallowed URLs fail as \"robots\"\n"
               "                        and a Crawl-delay spaces requests to the host\n"
               "  --robots-cache N      hosts with nothing left to crawl whose robots.txt is\n"
               "                        kept, most recently used first (default 1024); an older\n"
               "                        one that comes back fetches it again\n");
    fprintf(f,
            "  --low-speed B:S       abort an attempt slower than B bytes/s for S seconds\n"
            "                        (default 100:15; 0:0 disables)\n"
            "  --max-body SIZE       read at most SIZE bytes of a page (K/M suffixes; default\n"
            "                        4M); a longer page whose head was complete is kept\n"
            "                        (\"truncated\"), otherwise it fails with body-cap\n"
            "  --window N            URLs read ahead (default max(256, 4 x parallelism))\n"
            "  --user-agent S        (default weft/VERSION)\n"
            "  --jsonl FILE          one JSON record per URL and mode ('-': standard output)\n"
            "  --csv FILE            the same as CSV\n"
            "  --report FILE         an HTML report with charts (time per mode, latency)\n"
            "  -q, --quiet           no per-page table\n"
            "  --no-summary          no per-mode summary\n"
            "  --no-progress         no progress bar (drawn on stderr only if a terminal)\n"
            "  --seed N              seed for the backoff jitter (for tests)\n\n"
            "Up to 10 redirects are followed; compressed responses are accepted; connections\n"
            "are reused in every mode. The charset of a page comes from its byte-order mark,\n"
            "else the Content-Type header, else a <meta> in the first 1024 bytes (a later one\n"
            "restarts the parse), else UTF-8 if valid, else detected from the bytes (GBK,\n"
            "Shift_JIS, windows-1251, windows-1252), as the WHATWG Encoding Standard says.\n"
            "The first <title> and description count wherever they are (HTML5). Titles are\n"
            "escaped for the terminal and in the report.\n\n"
            "JSON and CSV fields: mode, line, url, final_url, status, title, description,\n"
            "bytes, attempts, ms, queued_ms, error (JSON also: redirects, charset,\n"
            "charset_source, truncated,\n"
            "dns_ms, connect_ms, tls_ms, ttfb_ms, start_ms, error_kind). With '-' as the file,\n"
            "the table and summary are not printed.\n\n"
            "Try it offline: weft fixture run -- sh -c 'seq 30 | sed \"s|^|$WEFT_FIXTURE/page/|\" "
            "| weft crawl --mode all -'\n\n"
            "Exit status: 0 every page fetched, 1 some failed, 2 usage error or unreadable\n"
            "input, 3 internal error.\n");
}

/* ---- consuming results ---- */

#define SLOWEST 10
#define FAILURES 30

typedef struct sink {
    crawl_out_t *out;
    bool want_notes;
    crawl_page_note_t *notes;
    size_t nnotes, cap;
    size_t slow_begin, nfail; /* this mode's notes start at slow_begin */
    /* Digests of the extracted fields per input line, from the first mode, to compare the
     * others with. 4 bytes a line. */
    uint32_t *digest;
    size_t ndigest;
    bool first_mode;
    uint64_t compared, differ, first_diff_line;
} sink_t;

/* A digest of the fields every mode must extract identically; never 0 (0 means "no record"). */
static uint32_t digest_of(const crawl_result_t *r)
{
    const uint64_t parts[4] = {
        r->title ? weft_hash_str(r->title) : 0, r->description ? weft_hash_str(r->description) : 0,
        r->error_kind ? weft_hash_str(r->error_kind) : 0, (uint64_t)r->status};
    return (uint32_t)weft_hash(parts, sizeof parts) | 1;
}

static void add_note(sink_t *k, crawl_mode_t mode, const crawl_result_t *r, size_t at)
{
    if (k->nnotes == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 64;
        crawl_page_note_t *n = realloc(k->notes, cap * sizeof *n);
        if (!n) return;
        k->notes = n;
        k->cap = cap;
    }
    memmove(&k->notes[at + 1], &k->notes[at], (k->nnotes - at) * sizeof *k->notes);
    k->nnotes++;
    crawl_page_note_t *n = &k->notes[at];
    n->mode = mode;
    n->ms = r->ms;
    n->url = strdup(r->url);
    n->title = r->title ? strdup(r->title) : NULL;
    n->error = r->error ? strdup(r->error_msg) : NULL;
}

static void free_note(crawl_page_note_t *n)
{
    free(n->url);
    free(n->title);
    free(n->error);
}

/* Keeps this mode's SLOWEST slowest pages (sorted, slowest first) and its first FAILURES failed
 * ones (after them). */
static void note(sink_t *k, crawl_mode_t mode, const crawl_result_t *r)
{
    if (r->error) {
        if (k->nfail < FAILURES) {
            add_note(k, mode, r, k->nnotes);
            k->nfail++;
        }
        return;
    }
    size_t nslow = k->nnotes - k->nfail - k->slow_begin;
    size_t at = k->slow_begin;
    while (at < k->slow_begin + nslow && k->notes[at].ms >= r->ms) at++;
    if (at == k->slow_begin + SLOWEST) return;
    add_note(k, mode, r, at);
    if (nslow + 1 > SLOWEST) { /* drop the fastest kept one */
        size_t drop = k->slow_begin + SLOWEST;
        free_note(&k->notes[drop]);
        memmove(&k->notes[drop], &k->notes[drop + 1], (k->nnotes - drop - 1) * sizeof *k->notes);
        k->nnotes--;
    }
}

static void on_result(void *arg, crawl_mode_t mode, const crawl_result_t *r)
{
    sink_t *k = arg;
    crawl_out_result(k->out, mode, r);
    if (k->want_notes) note(k, mode, r);
    if (k->digest || k->first_mode) {
        uint32_t d = digest_of(r);
        if (k->first_mode) {
            if (r->line >= k->ndigest) {
                size_t n = k->ndigest ? k->ndigest : 1024;
                while (n <= r->line) n *= 2;
                uint32_t *p = realloc(k->digest, n * sizeof *p);
                if (!p) return;
                memset(p + k->ndigest, 0, (n - k->ndigest) * sizeof *p);
                k->digest = p;
                k->ndigest = n;
            }
            k->digest[r->line] = d;
        } else if (r->line < k->ndigest && k->digest[r->line]) {
            k->compared++;
            if (k->digest[r->line] != d && k->differ++ == 0) k->first_diff_line = r->line;
        }
    }
}

/* ---- options ---- */

static int parse_seconds(const char *s, long *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < 0 || v > 86400) return -EINVAL;
    *ms = (long)(v * 1000 + 0.5);
    return 0;
}

static int parse_pair(const char *s, uint64_t *a, uint64_t *b)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end != ':') return -EINVAL;
    const char *t = end + 1;
    unsigned long long y = strtoull(t, &end, 10);
    if (errno || end == t || *end || *s == '-' || *t == '-') return -EINVAL;
    *a = x;
    *b = y;
    return 0;
}

int crawl_cmd(int argc, char **argv)
{
    crawl_opts_t o;
    crawl_opts_default(&o);
    const char *input = NULL;
    long v;
    uint64_t a, b;
    static const char *const with_value[] = {
        "--mode",
        "--threads",
        "--concurrency",
        "--per-host",
        "--robots-cache",
        "--rate",
        "--attempts",
        "--backoff",
        "--retry-after-max",
        "--timeout",
        "--connect-timeout",
        "--low-speed",
        "--max-body",
        "--window",
        "--user-agent",
        "--jsonl",
        "--csv",
        "--report",
        "--seed",
        "--first-byte-timeout",
        "--cacert",
    };
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
        for (size_t w = 0; w < sizeof with_value / sizeof with_value[0]; w++)
            if (strcmp(s, with_value[w]) == 0) {
                if (i + 1 >= argc) return weft_cli_usage_error("crawl", "%s needs a value", s);
                val = argv[++i];
            }
#define OPT(name) (val && strcmp(s, name) == 0)
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return WEFT_EXIT_OK;
        } else if (OPT("--mode")) {
            if (strcmp(val, "seq") == 0)
                o.modes = 1u << CRAWL_SEQ;
            else if (strcmp(val, "threads") == 0)
                o.modes = 1u << CRAWL_THREADS;
            else if (strcmp(val, "async") == 0)
                o.modes = 1u << CRAWL_ASYNC;
            else if (strcmp(val, "all") == 0)
                o.modes = 7;
            else
                return weft_cli_usage_error("crawl",
                                            "--mode: '%s' is not seq, threads, async or all", val);
        } else if (OPT("--threads")) {
            if (weft_cli_parse_int(val, 1, 1024, &v) < 0)
                return weft_cli_usage_error("crawl", "--threads: '%s' is not in 1..1024", val);
            o.threads = (int)v;
        } else if (OPT("--concurrency")) {
            if (weft_cli_parse_int(val, 1, 10000, &v) < 0)
                return weft_cli_usage_error("crawl", "--concurrency: '%s' is not in 1..10000", val);
            o.concurrency = (int)v;
        } else if (OPT("--per-host")) {
            if (weft_cli_parse_int(val, 0, 10000, &v) < 0)
                return weft_cli_usage_error("crawl", "--per-host: '%s' is not in 0..10000", val);
            o.per_host = (int)v;
        } else if (OPT("--robots-cache")) {
            if (weft_cli_parse_int(val, 1, 10000000, &v) < 0)
                return weft_cli_usage_error("crawl", "--robots-cache: '%s' is not in 1..10000000",
                                            val);
            o.robots_cache = (size_t)v;
        } else if (OPT("--rate")) {
            char *end;
            errno = 0;
            o.rate = strtod(val, &end);
            if (errno || end == val || *end || !(o.rate >= 0) || o.rate > 1e6)
                return weft_cli_usage_error("crawl", "--rate: '%s' is not a rate in 0..1000000",
                                            val);
        } else if (OPT("--attempts")) {
            if (weft_cli_parse_int(val, 1, 100, &v) < 0)
                return weft_cli_usage_error("crawl", "--attempts: '%s' is not in 1..100", val);
            o.attempts = (int)v;
        } else if (OPT("--backoff")) {
            if (parse_pair(val, &a, &b) < 0 || a > 3600000 || b > 3600000)
                return weft_cli_usage_error("crawl", "--backoff: '%s' is not BASE_MS:MAX_MS", val);
            o.backoff_base_ms = a;
            o.backoff_max_ms = b;
        } else if (OPT("--retry-after-max")) {
            long ms;
            if (parse_seconds(val, &ms) < 0)
                return weft_cli_usage_error("crawl", "--retry-after-max: '%s' is not seconds", val);
            o.retry_after_max_ms = (uint64_t)ms;
        } else if (OPT("--timeout")) {
            if (parse_seconds(val, &o.timeout_ms) < 0 || o.timeout_ms == 0)
                return weft_cli_usage_error("crawl", "--timeout: '%s' is not seconds > 0", val);
        } else if (OPT("--connect-timeout")) {
            if (parse_seconds(val, &o.connect_timeout_ms) < 0 || o.connect_timeout_ms == 0)
                return weft_cli_usage_error("crawl", "--connect-timeout: '%s' is not seconds > 0",
                                            val);
        } else if (OPT("--first-byte-timeout")) {
            if (parse_seconds(val, &o.first_byte_timeout_ms) < 0)
                return weft_cli_usage_error("crawl", "--first-byte-timeout: '%s' is not seconds",
                                            val);
        } else if (OPT("--cacert")) {
            o.cacert = val;
        } else if (OPT("--low-speed")) {
            if (parse_pair(val, &a, &b) < 0 || a > 1000000000 || b > 3600)
                return weft_cli_usage_error("crawl", "--low-speed: '%s' is not BYTES:SECONDS", val);
            o.low_speed_limit = (long)a;
            o.low_speed_time_s = (long)b;
        } else if (OPT("--max-body")) {
            uint64_t size;
            if (weft_cli_parse_size(val, &size) < 0 || size == 0 || size > (1ull << 34))
                return weft_cli_usage_error("crawl", "--max-body: '%s' is not a size", val);
            o.max_body = (size_t)size;
        } else if (OPT("--window")) {
            if (weft_cli_parse_int(val, 1, 10000000, &v) < 0)
                return weft_cli_usage_error("crawl", "--window: '%s' is not in 1..10000000", val);
            o.window = (size_t)v;
        } else if (OPT("--user-agent")) {
            o.user_agent = val;
        } else if (OPT("--jsonl")) {
            o.jsonl = val;
        } else if (OPT("--csv")) {
            o.csv = val;
        } else if (OPT("--report")) {
            o.report = val;
        } else if (OPT("--seed")) {
            if (weft_cli_parse_int(val, 1, 2147483647, &v) < 0)
                return weft_cli_usage_error("crawl", "--seed: '%s' is not a positive integer", val);
            o.seed = (uint64_t)v;
        } else if (strcmp(s, "-q") == 0 || strcmp(s, "--quiet") == 0) {
            o.table = false;
        } else if (strcmp(s, "--auto-throttle") == 0) {
            o.auto_throttle = true;
        } else if (strcmp(s, "--ignore-robots") == 0) {
            o.ignore_robots = true;
        } else if (strcmp(s, "--insecure") == 0 || strcmp(s, "-k") == 0) {
            o.insecure = true;
        } else if (strcmp(s, "--no-summary") == 0) {
            o.summary = false;
        } else if (strcmp(s, "--no-progress") == 0) {
            o.progress = false;
        } else if (s[0] == '-' && s[1] != '\0') {
            return weft_cli_usage_error("crawl", "unknown option '%s'", s);
        } else if (input) {
            return weft_cli_usage_error("crawl", "one input file only ('%s' and '%s')", input, s);
        } else {
            input = s;
        }
#undef OPT
    }
    if (!input) return weft_cli_usage_error("crawl", "no input file (use '-' for standard input)");
    o.input = input;
    if ((o.jsonl && strcmp(o.jsonl, "-") == 0) || (o.csv && strcmp(o.csv, "-") == 0))
        o.table = o.summary = false; /* standard output carries the records */
    int nmodes = __builtin_popcount(o.modes);

    FILE *in;
    if (strcmp(input, "-") == 0) {
        in = stdin;
    } else if (!(in = fopen(input, "r"))) {
        return weft_cli_error("crawl", WEFT_EXIT_USAGE, "cannot open %s: %s", input,
                              strerror(errno));
    }
    struct stat sb;
    bool regular = fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode);
    if (in != stdin && fstat(fileno(in), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(in);
        return weft_cli_error("crawl", WEFT_EXIT_USAGE, "%s is a directory", input);
    }
    if (!regular && nmodes > 1) {
        /* A pipe, a FIFO or <(...) cannot be read twice, and every mode reads the list from
         * the start: keep it in a temporary file (on disk, not in memory). One mode streams
         * it instead, starting before the producer is done. */
        FILE *spool = tmpfile();
        if (!spool) {
            if (in != stdin) fclose(in);
            return weft_cli_error("crawl", WEFT_EXIT_INTERNAL, "tmpfile: %s", strerror(errno));
        }
        char buf[65536];
        size_t n;
        bool ok = true;
        while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, spool) == n;
        ok = ok && !ferror(in) && fflush(spool) == 0;
        if (in != stdin) fclose(in);
        if (!ok) {
            fclose(spool);
            return weft_cli_error("crawl", WEFT_EXIT_USAGE, "cannot read %s", input);
        }
        in = spool;
    }

    sink_t k = {.want_notes = o.report != NULL};
    int rc = crawl_out_open(&k.out, &o);
    if (rc < 0) {
        if (in != stdin) fclose(in);
        return rc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_USAGE;
    }
    crawl_stats_t *stats = calloc(CRAWL_NMODES, sizeof *stats);
    size_t nstats = 0;
    int exit_code = WEFT_EXIT_OK;
    for (int m = 0; m < CRAWL_NMODES && stats; m++) {
        if (!(o.modes & (1u << m))) continue;
        k.first_mode = nmodes > 1 && nstats == 0;
        k.slow_begin = k.nnotes;
        k.nfail = 0;
        crawl_out_mode_begin(k.out, (crawl_mode_t)m,
                             m == CRAWL_SEQ       ? 1
                             : m == CRAWL_THREADS ? o.threads
                                                  : o.concurrency);
        rc = crawl_run_mode(&o, (crawl_mode_t)m, in, on_result, &k, &stats[nstats]);
        if (rc < 0) {
            exit_code = rc == -EIO ? WEFT_EXIT_USAGE : WEFT_EXIT_INTERNAL;
            weft_cli_error("crawl", exit_code, "%s mode: %s", crawl_mode_name((crawl_mode_t)m),
                           rc == -EIO ? "cannot read the input" : weft_strerror(rc));
            break;
        }
        const crawl_stats_t *seq = stats[0].mode == CRAWL_SEQ ? &stats[0] : NULL;
        crawl_out_summary(k.out, &stats[nstats], seq);
        if (stats[nstats].failed && exit_code == WEFT_EXIT_OK) exit_code = WEFT_EXIT_FAILED;
        nstats++;
    }
    if (!stats) exit_code = WEFT_EXIT_INTERNAL;
    if (exit_code <= WEFT_EXIT_FAILED && nstats > 1) {
        crawl_out_comparison(k.out, stats, nstats);
        if (o.summary) {
            if (k.differ)
                printf("fields     %llu of %llu pages differ between modes (first: line %llu)\n",
                       (unsigned long long)k.differ, (unsigned long long)k.compared,
                       (unsigned long long)k.first_diff_line);
            else
                printf("fields     status, title and description identical in every mode "
                       "(%llu pages compared)\n",
                       (unsigned long long)k.compared);
        }
    }
    if (exit_code <= WEFT_EXIT_FAILED && o.report) {
        rc = crawl_report_write(o.report, &o, stats, nstats, k.notes, k.nnotes);
        if (rc < 0) {
            weft_cli_error("crawl", WEFT_EXIT_USAGE, "cannot write %s: %s", o.report,
                           strerror(-rc));
            exit_code = WEFT_EXIT_USAGE;
        }
    }
    if (crawl_out_close(k.out) < 0 && exit_code < WEFT_EXIT_INTERNAL) {
        weft_cli_error("crawl", WEFT_EXIT_INTERNAL, "writing the output failed");
        exit_code = WEFT_EXIT_INTERNAL;
    }
    for (size_t i = 0; i < k.nnotes; i++) free_note(&k.notes[i]);
    free(k.notes);
    free(k.digest);
    free(stats);
    if (in != stdin) fclose(in);
    fflush(stdout);
    return exit_code;
}

static int cmd_crawl(int argc, char **argv)
{
    return crawl_cmd(argc, argv);
}

WEFT_COMMAND("crawl", cmd_crawl, "fetch URLs sequentially, with threads or async; compare")
