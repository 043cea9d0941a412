/* `weft logs`: the command line of the access-log analyzer (and its `merge` and `gen`
 * subcommands). Everything else lives in the modules beside it: format (parser), stats (tables,
 * merge, serialization), run (chunking, reader, threads/processes), report (outputs), gen. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/buf.h>
#include <weft/err.h>
#include <weft/sys.h>
#include <weft/utf8.h>

#include "logs/gen.h"
#include "logs/html.h"
#include "logs/report.h"
#include "logs/run.h"
#include "logs/serve.h"
#include "logs/stats.h"
#include "common/cli-int.h"

/* The -f presets and format strings (tools/logs/format.c; docs/logs.md has their sources). */
static const char formats_help[] =
    "\nFormats (-f):\n"
    "  default      Common Log Format + response time in seconds (nginx $request_time)\n"
    "  common       Common Log Format\n"
    "  combined     NCSA combined (referrer, user agent); combined-rt: + response time\n"
    "  vcombined    combined after the virtual host:port (Apache's vhost_combined)\n"
    "  traefik      Traefik's CLF (the router as virtual host, duration in ms)\n"
    "  s3           Amazon S3 server access log (the bucket as virtual host)\n"
    "  elb, alb     AWS classic and application load balancer access logs\n"
    "  w3c          W3C extended (IIS); cloudfront: AWS CloudFront's (tab-separated).\n"
    "               Both take their columns from each file's #Fields: line; lines\n"
    "               starting with '#' are directives, not entries\n"
    "  caddy        Caddy's JSON access log (one object a line)\n"
    "  nginx:'...'  an nginx log_format string ($remote_addr, $time_local or\n"
    "               $time_iso8601, \"$request\" or $request_uri, $status, ...)\n"
    "  apache:'...' an Apache LogFormat string (%h %t \"%r\" %>s %b %D %{Referer}i ...);\n"
    "               --log-format takes one too, recognised by its % directives\n"
    "  w3c:'...'    the field names of a W3C #Fields: line\n";

static void usage(FILE *f)
{
    fprintf(
        f, "usage: weft logs [OPTIONS] [FILE...]\n"
           "       weft logs merge [OPTIONS] PARTIAL...\n"
           "       weft logs gen [OPTIONS]          (see 'weft logs gen --help')\n\n"
           "Analyzes web server access logs in parallel: requests per hour of day, status codes\n"
           "(counts, shares and classes), the top client IPs (exact) and the number of distinct\n"
           "ones, response time average/min/max/p50/p90/p95/p99, bytes sent, the top paths and\n"
           "the top not-found (404) and static-file paths; and GoAccess's panels: unique\n"
           "visitors (distinct IP + date + user agent), requests, visitors and bytes per day,\n"
           "requests per minute of the day, operating systems, browsers and crawlers (from the\n"
           "user agent), referrers and referring sites, virtual hosts ($host), and with --panels\n"
           "the requested URLs (method, decoded path, protocol) and the visitor IPs, each with\n"
           "hits, visitors, bytes and average/total/maximum response time. IPv6 clients are\n"
           "counted by value and shown as written in the log (the least of their spellings).\n"
           "Regular files are split into chunks at line ends and read with pread (or --io\n"
           "mmap); '-' (or no FILE) reads standard input, FIFOs and <(...) are read as streams,\n"
           "and gzip, xz, bzip2 and zstd files (recognised by their first bytes) are decompressed\n"
           "as streams. Several files are analyzed together. Results are identical for every\n"
           "worker count, chunk size and mode.\n\n"
           "Options:\n"
           "  -j, --jobs N          workers (default: the CPUs this process may use)\n"
           "  --mode MODE           threads (default) or processes (worker processes, partial\n"
           "                        results returned as compact bytes)\n"
           "  -f, --format FMT      auto (default: recognised per file from its first lines), a\n"
           "                        preset or a format string: see Formats below\n"
           "  --log-format STRING   an nginx log_format string, e.g.\n"
           "                        '$remote_addr - $remote_user [$time_local] \"$request\" "
           "$status\n"
           "                        $body_bytes_sent $request_time' (same as -f nginx:STRING)\n"
           "  -n, --top N           how many client IPs and paths to list (default 10)\n"
           "  --exclude-ip IP[,IP]  leave out the lines of these clients (exact addresses;\n"
           "                        repeatable, up to 64 of each family); counted as excluded\n"
           "  --ignore-status CODE[,CODE]  leave out the lines with these status codes\n");
    fprintf(
        f,

        "  --ignore-crawlers     leave out the lines of crawlers (by their user agent)\n"
        "  --ignore-statics      leave out the requests for static files (by extension)\n"
        "  --since DATE, --until DATE  only the lines of these dates (inclusive; YYYY-MM-DD\n"
        "                        or DD/Mon/YYYY; after --tz)\n"
        "  --tz ZONE             show times in ZONE: UTC, +HHMM, -HH:MM or a name such as\n"
        "                        Europe/Berlin (the log's offsets are applied); default:\n"
        "                        the time as written in the log\n"
        "  --anonymize-ip        count clients with IPv4's last octet and IPv6's last 80 bits\n"
        "                        zeroed (as GoAccess)\n"
        "  --panels LIST         default, all, none, or a comma-separated list of daily,\n"
        "                        visitors, minutely, urls, ips, agents, referrers, vhosts,\n"
        "                        row-visitors (the visitors of each os, browser, referrer\n"
        "                        and vhost row; urls and ips always count theirs)\n"
        "                        ('+urls,+ips' adds to the default: all but urls, ips and\n"
        "                        row-visitors)\n"
        "  --json                print one JSON object instead of the text report\n"
        "  --csv                 print CSV (panel,name,method,protocol,hits,visitors,bytes,\n"
        "                        rt_avg,rt_sum,rt_max; one row per item) instead\n"
        "  --html FILE           also write an HTML dashboard to FILE: summary cards, a chart\n"
        "                        and a sortable table per panel, drawn from the report's\n"
        "                        JSON embedded in the page (self-contained: no network)\n"
        "  --save-partial FILE   also write the partial statistics to FILE, for 'merge'\n"
        "  --chunk-size SIZE     bytes per chunk (K/M/G; default 8M; with processes two chunks\n"
        "                        per worker, at least 32M; 4M blocks for streams); results\n"
        "                        never depend on it (at most 1 M chunks per run)\n"
        "  --io METHOD           read (default: pread into a small buffer per worker) or\n"
        "                        mmap (map the files); results never depend on it\n"
        "  --follow              live mode: keep reading the inputs as they grow (files by\n"
        "                        name, through rename or copytruncate rotation, like tail -F;\n"
        "                        '-' until its end, e.g. tail -f access.log | weft logs\n"
        "                        --follow -); each second redraw the report on a terminal,\n"
        "                        print a JSON line (--json) and rewrite --html FILE (the page\n"
        "                        reloads itself); Ctrl-C (SIGINT) or SIGTERM prints the final\n"
        "                        report and exits 0. Counts equal a batch run over the same\n"
        "                        lines (the rotated files and the current one)\n"
        "  --serve [HOST:]PORT   with --follow: serve the dashboard at http://HOST:PORT/\n"
        "                        (default host 127.0.0.1; port 0: a free one; the URL is\n"
        "                        printed on stderr), updated in place as lines arrive: the\n"
        "                        page gets the report's JSON (as --json prints it) over\n"
        "                        Server-Sent Events (GET /events) each second it changes,\n"
        "                        and reconnects by itself. No authentication: binding\n"
        "                        another address than 127.0.0.1 shows the log's data (IPs,\n"
        "                        paths, user agents) to whoever reaches it\n"
        "  --timing              print the time taken and the throughput (decoded bytes and\n"
        "                        lines per second) on stderr\n"
        "  --no-progress         no progress bar (drawn on stderr only when it is a terminal,\n"
        "                        for inputs of 64 MiB or more or of unknown size; it shows\n"
        "                        decoded bytes and lines analysed and their rates)\n\n");
    fprintf(
        f,

        "merge: combines partial statistics written with --save-partial (from several runs or\n"
        "machines) into the report a single run over all their inputs gives. It takes -n,\n"
        "--json, --csv, --html and --save-partial. Each partial lists the inputs it counted "
        "(their\n"
        "decoded size and a hash of their first and last 64 KiB): a partial whose inputs\n"
        "were all counted already is skipped with a warning, one that shares only some is\n"
        "refused (exit 2).\n\n"
        "Notes:\n"
        "  Hours, minutes and dates are as written in the log (the UTC offset is not\n"
        "  applied) unless --tz is given. Paths in the URL panel are %%XX-decoded (as GoAccess\n"
        "  shows them; rows equal once decoded are added together). A panel with more\n"
        "  distinct keys than it holds (65,536; IPs 1,048,576) is dropped, never shown wrong,\n"
        "  except the top paths (all, not found, static), which stay exact: beyond 65,536\n"
        "  distinct paths, two more passes over the files (a hash-bucket count, then an exact\n"
        "  count of the candidates; 3-6x the time, bounded memory) list exactly the paths\n"
        "  requested at least as often as the 4,096th fullest bucket, their distinct number\n"
        "  shown as 'more than 65,536'. Standard input and FIFOs cannot be read twice: their\n"
        "  lists are then left out (null).\n"
        "  Ties in the top lists: count descending, then IPv4 before IPv6, then the address\n"
        "  in numeric order (paths: by byte order). ::ffff:a.b.c.d counts as a.b.c.d.\n"
        "  Response times are summed as integer microseconds; percentiles come from a\n"
        "  histogram with < 1%% relative error; lines whose time is '-' are not timed.\n"
        "  Malformed lines are counted and skipped; the first %d are shown on stderr with\n"
        "  their file and line number (control and non-UTF-8 bytes as \\xNN). Paths are\n"
        "  counted without their query string.\n\n"
        "Exit codes: 0 success (malformed lines included, with a warning when they are most),\n"
        "1 a worker failed or an output could not be written, 2 usage error, no line parsed\n"
        "(the format tried is named), a bad --serve or its port in use, or unusable input\n"
        "(missing or unreadable file, directory, compressed data that is truncated, corrupt\n"
        "or followed by garbage: the message names the offset; corrupt partial), 3 internal\n"
        "error (out of memory).\n",
        WEFT_LOGS_BAD_KEEP);
    fputs(formats_help, f);
}

/* Writes a malformed line for a terminal: printable text as is, a backslash doubled, control
 * characters and bytes that are not UTF-8 as \xNN, so a hostile log cannot send escape
 * sequences to the terminal and the bytes stay visible; at most `max` columns, then an ellipsis. */
static void put_escaped(FILE *f, const char *s, size_t n, size_t max)
{
    size_t cols = 0, i = 0;
    while (i < n) {
        uint32_t cp = 0;
        int l = weft_utf8_decode(s + i, n - i, &cp);
        char esc[8];
        bool raw = l > 0 && cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp < 0xA0) && cp != '\\';
        size_t w = raw ? (size_t)weft_utf8_cp_width(cp) : cp == '\\' && l > 0 ? 2 : 4;
        if (cols + w > max) break;
        if (raw) {
            fwrite(s + i, 1, (size_t)l, f);
        } else if (l > 0 && cp == '\\') {
            fputs("\\\\", f);
        } else {
            l = l > 0 ? l : 1;
            for (int k = 0; k < l; k++) {
                snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)s[i + (size_t)k]);
                fputs(esc, f);
            }
        }
        cols += w;
        i += (size_t)l;
    }
    if (i < n) fputs("\xE2\x80\xA6", f); /* ellipsis */
}

/* The inputs a partial counted (run.h's identities, with names for the messages). */
typedef struct ident_list {
    weft_logs_ident_t *id;
    char **name; /* owned copies */
    size_t n, cap;
} ident_list_t;

static int ident_push(ident_list_t *l, weft_logs_ident_t id, const char *name, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        weft_logs_ident_t *a = realloc(l->id, cap * sizeof *a);
        if (!a) return -ENOMEM;
        l->id = a;
        char **b = realloc(l->name, cap * sizeof *b);
        if (!b) return -ENOMEM;
        l->name = b;
        l->cap = cap;
    }
    if (!(l->name[l->n] = strndup(name, len))) return -ENOMEM;
    l->id[l->n++] = id;
    return 0;
}

static void ident_free(ident_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->name[i]);
    free(l->id);
    free(l->name);
    memset(l, 0, sizeof *l);
}

/* The index in `l` of an input with identity `id`, or -1. */
static long ident_find(const ident_list_t *l, weft_logs_ident_t id)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->id[i].size == id.size && l->id[i].hash == id.hash) return (long)i;
    return -1;
}

/* A partial file is the serialized part followed by this trailer: "WEFTLOGI", a 32-bit count,
 * then per input its size and hash (64-bit) and its name (16-bit length, bytes), little-endian.
 * Partials without it (older ones) merge with a warning that overlaps cannot be checked. */
#define IDENT_MAGIC "WEFTLOGI"

static int ident_write(weft_buf_t *b, const ident_list_t *l)
{
    unsigned char w[8];
    int rc = weft_buf_append(b, IDENT_MAGIC, 8);
    for (int k = 0; k < 4; k++) w[k] = (unsigned char)(l->n >> (8 * k));
    rc |= weft_buf_append(b, w, 4);
    for (size_t i = 0; i < l->n; i++) {
        uint64_t v[2] = {l->id[i].size, l->id[i].hash};
        for (int j = 0; j < 2; j++) {
            for (int k = 0; k < 8; k++) w[k] = (unsigned char)(v[j] >> (8 * k));
            rc |= weft_buf_append(b, w, 8);
        }
        size_t n = strlen(l->name[i]) > 65535 ? 65535 : strlen(l->name[i]);
        w[0] = (unsigned char)n;
        w[1] = (unsigned char)(n >> 8);
        rc |= weft_buf_append(b, w, 2) | weft_buf_append(b, l->name[i], n);
    }
    return rc ? -ENOMEM : 0;
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; k--) v = v << 8 | p[k];
    return v;
}

/* Splits a partial file into its part (*partlen bytes) and its identity trailer, appended to
 * `l`. Returns 0, WEFT_EPARSE (a bad trailer; the part itself is checked by the merge) or
 * -ENOMEM. */
static int ident_read(const unsigned char *d, size_t len, size_t *partlen, ident_list_t *l,
                      bool *has)
{
    *has = false;
    *partlen = len;
    if (len < 28 || memcmp(d, "WEFTLOGP", 8) != 0) return 0; /* the merge says what is wrong */
    uint64_t pl = le(d + 16, 8);
    if (pl > len - 28 || pl + 28 == len) return 0;
    size_t off = 28 + (size_t)pl;
    *partlen = off;
    if (len - off < 12 || memcmp(d + off, IDENT_MAGIC, 8) != 0) return WEFT_EPARSE;
    uint64_t n = le(d + off + 8, 4);
    off += 12;
    for (uint64_t i = 0; i < n; i++) {
        if (len - off < 18) return WEFT_EPARSE;
        weft_logs_ident_t id = {le(d + off, 8), le(d + off + 8, 8)};
        size_t nl = (size_t)le(d + off + 16, 2);
        off += 18;
        if (len - off < nl) return WEFT_EPARSE;
        if (ident_push(l, id, (const char *)d + off, nl)) return -ENOMEM;
        off += nl;
    }
    if (off != len) return WEFT_EPARSE;
    *has = true;
    return 0;
}

/* Adds a comma-separated list of addresses (exclude) or status codes to the filter. Returns 0 or
 * -EINVAL. An IPv4-mapped IPv6 address is the IPv4 address, as the parser counts it. */
static int filter_add(weft_logs_filter_t *f, bool exclude, const char *list)
{
    char item[64];
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof item) return -EINVAL;
        memcpy(item, p, n);
        item[n] = '\0';
        p += n + (p[n] == ',');
        if (!exclude) {
            char *end;
            long c = strtol(item, &end, 10);
            if (*end || c < 100 || c > 999) return -EINVAL;
            f->status[c >> 6] |= UINT64_C(1) << (c & 63);
        } else {
            struct in_addr a4;
            struct in6_addr a6;
            if (inet_pton(AF_INET, item, &a4) == 1) {
                if (f->n4 == WEFT_LOGS_MAX_EXCLUDE) return -EINVAL;
                f->ip4[f->n4++] = ntohl(a4.s_addr);
            } else if (inet_pton(AF_INET6, item, &a6) == 1) {
                static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
                if (memcmp(a6.s6_addr, mapped, 12) == 0) {
                    if (f->n4 == WEFT_LOGS_MAX_EXCLUDE) return -EINVAL;
                    uint32_t v;
                    memcpy(&v, a6.s6_addr + 12, 4);
                    f->ip4[f->n4++] = ntohl(v);
                } else {
                    if (f->n6 == WEFT_LOGS_MAX_EXCLUDE) return -EINVAL;
                    memcpy(f->ip6[f->n6++], a6.s6_addr, 16);
                }
            } else {
                return -EINVAL;
            }
        }
    }
    f->any = true;
    return 0;
}

typedef struct outputs {
    bool json, csv;
    const char *html, *save;
    long top;
    const ident_list_t *inputs; /* what the part counted (for --save-partial) */
} outputs_t;

/* Writes the file whole or not at all: into PATH.tmp, then renamed over PATH, so a reader
 * (a browser reloading a live report) never sees it half-written. */
static int write_file(const char *path, const void *data, size_t len)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "wb");
    if (!f) return -errno;
    size_t n = fwrite(data, 1, len, f);
    int rc = n == len ? 0 : -EIO;
    if (fclose(f) != 0 && !rc) rc = -errno;
    if (!rc && rename(tmp, path) != 0) rc = -errno;
    if (rc) unlink(tmp);
    return rc;
}

/* Writes the requested outputs for `part`. Returns an exit code. */
static int emit(const char *cmd, const weft_logs_part_t *part, const outputs_t *o,
                const weft_logs_meta_t *meta)
{
    if (o->save) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        int rc = weft_logs_part_serialize(part, &b, true);
        if (!rc && o->inputs) rc = ident_write(&b, o->inputs);
        if (!rc) rc = write_file(o->save, b.data, b.len);
        weft_buf_free(&b);
        if (rc)
            return weft_cli_error(cmd, rc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_FAILED,
                                  "cannot write %s: %s", o->save, strerror(-rc));
    }
    weft_logs_report_t rep;
    if (weft_logs_report_build(part, (size_t)o->top, (size_t)o->top, &rep) != 0) {
        weft_logs_report_free(&rep);
        return weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
    }
    int code = WEFT_EXIT_OK;
    if (o->html) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        int rc = weft_logs_write_html(&b, &rep, meta, 0);
        if (!rc) rc = write_file(o->html, b.data, b.len);
        weft_buf_free(&b);
        if (rc)
            code = weft_cli_error(cmd, rc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_FAILED,
                                  "cannot write %s: %s", o->html, strerror(-rc));
    }
    if (!code && (o->json || o->csv)) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        if ((o->json ? weft_logs_write_json(&b, &rep) : 0) != 0 ||
            (o->csv ? weft_logs_write_csv(&b, &rep) : 0) != 0)
            code = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
        else
            fwrite(b.data, 1, b.len, stdout);
        weft_buf_free(&b);
    } else if (!code) {
        weft_logs_print_text(stdout, &rep, meta);
    }
    weft_logs_report_free(&rep);
    if (fflush(stdout) != 0 && !code)
        code =
            weft_cli_error(cmd, WEFT_EXIT_FAILED, "cannot write the report: %s", strerror(errno));
    return code;
}

/* Live mode (--follow): each second, the report so far - the HTML file rewritten (it reloads
 * itself), a JSON line, or the terminal report redrawn when standard output is a terminal. */
typedef struct live {
    const outputs_t *o;
    const weft_logs_meta_t *meta;
    bool tty;
    weft_logs_server_t *srv; /* --serve: gets each report's JSON */
} live_t;

/* --serve: the server sends this report from now on (out of memory: the last one stays). */
static void live_serve(const live_t *l, const weft_logs_report_t *rep)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    if (weft_logs_write_json(&b, rep) == 0) weft_logs_serve_publish(l->srv, b.data, b.len);
    weft_buf_free(&b);
}

static void live_tick(void *arg, const weft_logs_part_t *part, bool changed)
{
    const live_t *l = arg;
    weft_logs_report_t rep;
    if (!changed || weft_logs_report_build(part, (size_t)l->o->top, (size_t)l->o->top, &rep)) {
        if (changed) weft_logs_report_free(&rep);
        return; /* out of memory: the final report says so */
    }
    weft_buf_t b;
    weft_buf_init(&b, 0);
    if (l->o->html && weft_logs_write_html(&b, &rep, l->meta, 1) == 0)
        write_file(l->o->html, b.data, b.len); /* a failure shows in the final write */
    b.len = 0;
    if (l->srv) live_serve(l, &rep);
    if (l->o->json && weft_logs_write_json(&b, &rep) == 0) {
        fwrite(b.data, 1, b.len, stdout);
        fflush(stdout);
    } else if (!l->o->json && l->tty) {
        fputs("\033[H\033[2J", stdout);
        weft_logs_print_text(stdout, &rep, l->meta);
        fflush(stdout);
    }
    weft_buf_free(&b);
    weft_logs_report_free(&rep);
}

/* Options shared by analysis and merge; returns 1 if `a` was consumed (with *i advanced), 0 if
 * unknown, or an exit code + 1 on error... kept simple: -1 on a usage error. */
static int output_opt(const char *cmd, int argc, char **argv, int *i, outputs_t *o)
{
    const char *a = argv[*i];
    if (strcmp(a, "--json") == 0 || strcmp(a, "--csv") == 0) {
        *(a[2] == 'j' ? &o->json : &o->csv) = true;
        return 1;
    }
    bool takes = strcmp(a, "--html") == 0 || strcmp(a, "--save-partial") == 0 ||
                 strcmp(a, "-n") == 0 || strcmp(a, "--top") == 0;
    if (!takes) return 0;
    if (*i + 1 >= argc) {
        weft_cli_usage_error(cmd, "option %s needs a value", a);
        return -1;
    }
    const char *v = argv[++*i];
    if (strcmp(a, "--html") == 0) {
        o->html = v;
    } else if (strcmp(a, "--save-partial") == 0) {
        o->save = v;
    } else if (weft_cli_parse_int(v, 1, 100000, &o->top) != 0) {
        weft_cli_usage_error(cmd, "bad --top '%s' (1..100000)", v);
        return -1;
    }
    return 1;
}

static int cmd_merge(int argc, char **argv)
{
    const char *cmd = "logs merge";
    outputs_t o = {.top = 10};
    const char **files = calloc((size_t)argc, sizeof *files);
    size_t nf = 0;
    if (!files) return weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            free(files);
            usage(stdout);
            return WEFT_EXIT_OK;
        }
        int r = output_opt(cmd, argc, argv, &i, &o);
        if (r < 0) {
            free(files);
            return WEFT_EXIT_USAGE;
        }
        if (r) continue;
        if (argv[i][0] == '-' && argv[i][1]) {
            free(files);
            return weft_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        }
        files[nf++] = argv[i];
    }
    if (!nf) {
        free(files);
        return weft_cli_usage_error(cmd, "no partial files given");
    }
    weft_logs_part_t *acc = weft_logs_part_create();
    int code = acc ? 0 : weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
    ident_list_t merged = {0};                   /* every input counted so far */
    size_t *from = calloc(nf + 1, sizeof *from); /* merged.id[k] came from files[from[k]] */
    size_t nfrom = 0;
    bool unknown = false;
    if (!from && !code) code = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; i < nf && !code; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) {
            code = weft_cli_error(cmd, WEFT_EXIT_USAGE, "cannot open %s: %s", files[i],
                                  strerror(errno));
            break;
        }
        weft_buf_t b;
        weft_buf_init(&b, 0);
        char tmp[1 << 16];
        size_t n;
        int rc = 0;
        while (!rc && (n = fread(tmp, 1, sizeof tmp, f)) > 0) rc = weft_buf_append(&b, tmp, n);
        bool rerr = ferror(f);
        fclose(f);
        char err[160];
        ident_list_t mine = {0};
        size_t partlen = b.len;
        bool has = false;
        if (rerr) {
            code = weft_cli_error(cmd, WEFT_EXIT_USAGE, "cannot read %s", files[i]);
        } else if (rc) {
            code = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
        } else if ((rc = ident_read((const unsigned char *)(b.data ? b.data : ""), b.len, &partlen,
                                    &mine, &has)) != 0) {
            code = rc == -ENOMEM ? weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory")
                                 : weft_cli_error(cmd, WEFT_EXIT_USAGE,
                                                  "%s: corrupt partial: bad input list", files[i]);
        }
        /* Overlaps: a partial whose inputs were all counted already is skipped (merging it would
         * count them twice); one that shares only some cannot be separated and is refused. */
        size_t seen = 0;
        long first = -1;
        for (size_t k = 0; !code && k < mine.n; k++) {
            long at = ident_find(&merged, mine.id[k]);
            if (at >= 0) {
                seen++;
                if (first < 0) first = at;
            }
        }
        if (!code && has && seen && seen == mine.n) {
            fprintf(stderr,
                    "weft logs merge: skipping %s: its input %s was already counted (from %s); "
                    "merging it would count it twice\n",
                    files[i], mine.name[0], files[from[first]]);
            weft_buf_free(&b);
            ident_free(&mine);
            continue;
        }
        if (!code && seen) {
            code = weft_cli_error(cmd, WEFT_EXIT_USAGE,
                                  "%s overlaps %s: both counted %s (%" PRIu64
                                  " bytes); their counts cannot be separated",
                                  files[i], files[from[first]], merged.name[first],
                                  merged.id[first].size);
        }
        if (!code && (rc = weft_logs_part_merge_bytes(acc, b.data ? b.data : "", partlen, err,
                                                      sizeof err)) != 0)
            code = rc == -ENOMEM ? weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory")
                                 : weft_cli_error(cmd, WEFT_EXIT_USAGE, "%s: %s", files[i], err);
        if (!code && !has) unknown = true;
        for (size_t k = 0; !code && k < mine.n; k++) {
            if (ident_push(&merged, mine.id[k], mine.name[k], strlen(mine.name[k])) != 0) {
                code = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
                break;
            }
            size_t *grown = realloc(from, (merged.n + 1) * sizeof *from);
            if (!grown) {
                code = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
                break;
            }
            from = grown;
            from[merged.n - 1] = i;
        }
        ident_free(&mine);
        weft_buf_free(&b);
    }
    (void)nfrom;
    if (!code && unknown)
        fprintf(stderr, "weft logs merge: warning: a partial has no input list (written by an "
                        "older weft): overlaps with it cannot be detected\n");
    if (!code) {
        weft_logs_meta_t meta = {.inputs = "merged partials"};
        o.inputs = unknown ? NULL : &merged;
        code = emit(cmd, acc, &o, &meta);
    }
    ident_free(&merged);
    free(from);
    weft_logs_part_destroy(acc);
    free(files);
    return code;
}

static int cmd_logs(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "merge") == 0) return cmd_merge(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "gen") == 0) return weft_logs_gen_main(argc - 1, argv + 1);
    const char *cmd = "logs";
    outputs_t o = {.top = 10};
    weft_logs_run_opts_t ro = {.jobs = weft_cpu_count(), .progress = true};
    weft_logs_filter_t filter;
    memset(&filter, 0, sizeof filter);
    filter.no_panels = WEFT_LOGS_PANELS_ALL & ~WEFT_LOGS_PANELS_DEFAULT;
    ro.filter = &filter;
    bool timing = false, follow = false;
    const char *serve = NULL; /* --serve [HOST:]PORT */
    char serve_host[64];
    int serve_port = 0;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    char *fmtbuf = NULL;
    if (!files) return weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
    int code = -1;
    for (int i = 1; i < argc && code < 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            code = WEFT_EXIT_OK;
            break;
        }
        int r = output_opt(cmd, argc, argv, &i, &o);
        if (r < 0) code = WEFT_EXIT_USAGE;
        if (r) continue;
        if (strcmp(a, "--timing") == 0) {
            timing = true;
            continue;
        }
        if (strcmp(a, "--follow") == 0) {
            follow = true;
            continue;
        }
        if (strcmp(a, "--no-progress") == 0) {
            ro.progress = false;
            continue;
        }
        if (strcmp(a, "--ignore-crawlers") == 0 || strcmp(a, "--ignore-statics") == 0 ||
            strcmp(a, "--anonymize-ip") == 0) {
            if (a[2] == 'a')
                filter.anonymize = true;
            else if (a[9] == 'c')
                filter.ignore_crawlers = true;
            else
                filter.ignore_statics = true;
            filter.any = true;
            ro.filter = &filter;
            continue;
        }
        if (strcmp(a, "-") == 0 || a[0] != '-') {
            files[ro.nfiles++] = a;
            continue;
        }
        if (strncmp(a, "-j", 2) == 0 && a[2]) { /* -jN */
            long n;
            if (weft_cli_parse_int(a + 2, 1, 256, &n) != 0)
                code = weft_cli_usage_error(cmd, "bad --jobs '%s' (1..256)", a + 2);
            ro.jobs = (int)n;
            continue;
        }
        bool known = strcmp(a, "-j") == 0 || strcmp(a, "--jobs") == 0 || strcmp(a, "--mode") == 0 ||
                     strcmp(a, "-f") == 0 || strcmp(a, "--format") == 0 ||
                     strcmp(a, "--log-format") == 0 || strcmp(a, "--chunk-size") == 0 ||
                     strcmp(a, "--io") == 0 || strcmp(a, "--exclude-ip") == 0 ||
                     strcmp(a, "--ignore-status") == 0 || strcmp(a, "--panels") == 0 ||
                     strcmp(a, "--tz") == 0 || strcmp(a, "--since") == 0 ||
                     strcmp(a, "--until") == 0 || strcmp(a, "--serve") == 0;
        if (!known) {
            code = weft_cli_usage_error(cmd, "unknown option '%s'", a);
            break;
        }
        if (i + 1 >= argc) {
            code = weft_cli_usage_error(cmd, "option %s needs a value", a);
            break;
        }
        const char *v = argv[++i];
        long n;
        if (strcmp(a, "-j") == 0 || strcmp(a, "--jobs") == 0) {
            if (weft_cli_parse_int(v, 1, 256, &n) != 0)
                code = weft_cli_usage_error(cmd, "bad --jobs '%s' (1..256)", v);
            ro.jobs = (int)n;
        } else if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "threads") == 0)
                ro.mode = WEFT_LOGS_THREADS;
            else if (strcmp(v, "processes") == 0)
                ro.mode = WEFT_LOGS_PROCESSES;
            else
                code = weft_cli_usage_error(cmd, "bad --mode '%s' (threads or processes)", v);
        } else if (strcmp(a, "-f") == 0 || strcmp(a, "--format") == 0) {
            ro.format = v;
        } else if (strcmp(a, "--log-format") == 0) {
            free(fmtbuf);
            fmtbuf = malloc(strlen(v) + 8);
            if (!fmtbuf) {
                code = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
                break;
            }
            sprintf(fmtbuf, "%s:%s", weft_logs_format_looks_apache(v) ? "apache" : "nginx", v);
            ro.format = fmtbuf;
        } else if (strcmp(a, "--io") == 0) {
            if (strcmp(v, "read") == 0)
                ro.use_mmap = false;
            else if (strcmp(v, "mmap") == 0)
                ro.use_mmap = true;
            else
                code = weft_cli_usage_error(cmd, "bad --io '%s' (read or mmap)", v);
        } else if (strcmp(a, "--exclude-ip") == 0 || strcmp(a, "--ignore-status") == 0) {
            if (filter_add(&filter, a[2] == 'e', v) != 0)
                code = weft_cli_usage_error(cmd, "bad %s '%s'", a, v);
            ro.filter = &filter;
        } else if (strcmp(a, "--panels") == 0) {
            if (weft_logs_panels_parse(v, &filter.no_panels) != 0)
                code = weft_cli_usage_error(cmd,
                                            "bad --panels '%s' (all, none, or daily, visitors, "
                                            "minutely, urls, ips, agents, referrers, vhosts, "
                                            "row-visitors)",
                                            v);
            ro.filter = &filter;
        } else if (strcmp(a, "--tz") == 0) {
            if (weft_logs_tz_parse(v, &filter) != 0)
                code = weft_cli_usage_error(
                    cmd, "bad --tz '%s' (UTC, +HHMM, -HH:MM, or a zone such as Europe/Berlin)", v);
            ro.filter = &filter;
        } else if (strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0) {
            uint32_t d = weft_logs_date_parse(v);
            if (!d)
                code = weft_cli_usage_error(cmd, "bad %s '%s' (YYYY-MM-DD or DD/Mon/YYYY)", a, v);
            *(a[2] == 's' ? &filter.since : &filter.until) = d;
            filter.any = true;
            ro.filter = &filter;
        } else if (strcmp(a, "--serve") == 0) {
            serve = v;
            if (weft_logs_serve_parse(v, serve_host, sizeof serve_host, &serve_port) != 0)
                code = weft_cli_usage_error(cmd,
                                            "bad --serve '%s' ([HOST:]PORT: an IPv4 address and "
                                            "a port 0..65535)",
                                            v);
        } else if (strcmp(a, "--chunk-size") == 0) {
            uint64_t cs;
            if (weft_cli_parse_size(v, &cs) != 0 || cs == 0)
                code = weft_cli_usage_error(cmd, "bad --chunk-size '%s'", v);
            ro.chunk_size = cs;
        }
    }
    if (code < 0 && serve && !follow) code = weft_cli_usage_error(cmd, "--serve needs --follow");
    if (code < 0 && ro.nfiles == 0) {
        if (isatty(STDIN_FILENO))
            code = weft_cli_usage_error(cmd, "no input files (and standard input is a terminal)");
        else
            files[ro.nfiles++] = "-";
    }
    if (code < 0 && ro.format) { /* a bad format is a usage error before any input is read */
        weft_logs_format_t f;
        char err[160];
        if (strcmp(ro.format, "auto") != 0 &&
            weft_logs_format_compile(ro.format, &f, err, sizeof err) != 0)
            code = weft_cli_usage_error(cmd, "%s", err);
    }
    if (code >= 0) {
        free(files);
        free(fmtbuf);
        return code;
    }
    ro.files = files;
    weft_logs_run_result_t res;
    char err[512];
    char inputs[512];
    size_t off = 0;
    for (size_t i = 0; i < ro.nfiles && off + 8 < sizeof inputs; i++) {
        int n = snprintf(inputs + off, sizeof inputs - off, "%s%s", i ? ", " : "",
                         strcmp(files[i], "-") == 0 ? "(stdin)" : files[i]);
        if (n < 0) break;
        off += (size_t)n;
    }
    if (off >= sizeof inputs) off = sizeof inputs - 1;
    inputs[off] = '\0';
    uint64_t t0 = weft_now_ns();
    bool tty = isatty(STDOUT_FILENO);
    if (follow) {
        weft_logs_meta_t lmeta = {.inputs = inputs, .formats = NULL};
        live_t live = {.o = &o, .meta = &lmeta, .tty = tty};
        if (serve) { /* listening before anything is read: a port in use starts nothing */
            char url[128];
            int rc = weft_logs_serve_start(serve_host, serve_port, &lmeta, &live.srv, url,
                                           sizeof url, err, sizeof err);
            if (rc) {
                free(files);
                free(fmtbuf);
                return weft_cli_error(cmd, rc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_USAGE,
                                      "%s", err);
            }
            fprintf(stderr, "weft logs: serving %s\n", url);
        }
        weft_logs_follow_opts_t fo = {.files = files,
                                      .nfiles = ro.nfiles,
                                      .format = ro.format,
                                      .filter = ro.filter,
                                      .tick = live_tick,
                                      .arg = &live};
        code = weft_logs_follow(&fo, &res, err, sizeof err);
        weft_logs_serve_stop(live.srv); /* the final report is printed, not served */
        if (!code && tty && !o.json) fputs("\033[H\033[2J", stdout); /* the final replaces it */
    } else {
        code = weft_logs_run(&ro, &res, err, sizeof err);
    }
    uint64_t elapsed = weft_now_ns() - t0;
    if (code) {
        weft_cli_error(cmd, code, "%s", err);
    } else {
        for (size_t i = 0; i < res.nbad; i++) {
            const weft_logs_badline_t *b = &res.bad[i];
            fprintf(stderr, "weft logs: %s:%" PRIu64 ": malformed line: ",
                    strcmp(files[b->file], "-") == 0 ? "(stdin)" : files[b->file], b->line);
            put_escaped(stderr, b->text, b->len, 100);
            fputc('\n', stderr);
        }
        if (res.part->malformed > res.nbad)
            fprintf(stderr, "weft logs: %" PRIu64 " malformed lines in all (first %zu shown)\n",
                    res.part->malformed, res.nbad);
        if (timing) {
            double s = (double)elapsed / 1e9;
            fprintf(stderr,
                    "weft logs: %.1f MB (decoded), %" PRIu64 " lines in %.3f s (%.2f GB/s, %.2f M "
                    "lines/s), %d %s, %zu chunks; scan %.3f s, merge %.1f ms\n",
                    (double)res.input_bytes / 1e6, res.part->lines, s,
                    (double)res.input_bytes / 1e9 / s, (double)res.part->lines / 1e6 / s, ro.jobs,
                    ro.mode == WEFT_LOGS_PROCESSES ? "processes" : "threads", res.nchunks,
                    (double)res.scan_ns / 1e9, (double)res.merge_ns / 1e6);
        }
        weft_logs_meta_t meta = {.inputs = inputs, .formats = res.format_names};
        ident_list_t ids = {0};
        for (size_t i = 0; i < ro.nfiles && !code; i++) {
            const char *nm = strcmp(files[i], "-") == 0 ? "(stdin)" : files[i];
            if (ident_push(&ids, res.idents[i], nm, strlen(nm)) != 0)
                code = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
        }
        o.inputs = &ids;
        if (!code) code = emit(cmd, res.part, &o, &meta);
        ident_free(&ids);
        /* Nothing parsed is not a report: say so, name the format tried, and fail. */
        const weft_logs_part_t *p = res.part;
        if (p->lines && !p->parsed) {
            fprintf(stderr,
                    "weft logs: no line parsed: all %" PRIu64 " lines are malformed for the "
                    "format tried (%s); choose one with --format or --log-format\n",
                    p->lines, res.format_names);
            if (!code) code = WEFT_EXIT_USAGE;
        } else if (p->malformed * 2 > p->lines) {
            fprintf(stderr,
                    "weft logs: warning: %" PRIu64 " of %" PRIu64 " lines are malformed for the "
                    "format tried (%s); the report covers the others only\n",
                    p->malformed, p->lines, res.format_names);
        }
        weft_logs_run_result_free(&res);
    }
    free(files);
    free(fmtbuf);
    return code;
}

WEFT_COMMAND("logs", cmd_logs, "analyze access logs in parallel (top IPs, status, hours, times)")
