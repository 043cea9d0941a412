/* `weft logs`: the command line of the access-log analyzer (and its `merge` and `gen`
 * subcommands). Everything else lives in the modules beside it: format (parser), stats (tables,
 * merge, serialization), run (chunking, reader, threads/processes), report (outputs), gen. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/buf.h>
#include <weft/sys.h>

#include "logs/gen.h"
#include "logs/report.h"
#include "logs/run.h"
#include "logs/stats.h"
#include "common/cli-int.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: weft logs [OPTIONS] [FILE...]\n"
        "       weft logs merge [OPTIONS] PARTIAL...\n"
        "       weft logs gen [OPTIONS]          (see 'weft logs gen --help')\n\n"
        "Analyzes web server access logs in parallel: requests per hour of day, status codes\n"
        "(counts, shares and classes), the top client IPs (exact) and the number of distinct\n"
        "ones, response time average/min/max/p50/p90/p95/p99, bytes sent, and the top paths.\n"
        "Regular files are split into chunks at line ends and read with pread (or --io\n"
        "mmap); '-' (or no FILE) reads standard input, and gzip files (.gz) are decompressed\n"
        "as a stream. Several files are analyzed together. Results are identical for every\n"
        "worker count, chunk size and mode.\n\n"
        "Options:\n"
        "  -j, --jobs N          workers (default: the CPUs this process may use)\n"
        "  --mode MODE           threads (default) or processes (worker processes, partial\n"
        "                        results returned as compact bytes)\n"
        "  -f, --format FMT      auto (default: recognised per file from its first lines),\n"
        "                        default (Common Log Format + response time in seconds),\n"
        "                        common, combined, combined-rt, or nginx:'LOG_FORMAT'\n"
        "  --log-format STRING   an nginx log_format string, e.g.\n"
        "                        '$remote_addr - $remote_user [$time_local] \"$request\" "
        "$status\n"
        "                        $body_bytes_sent $request_time' (same as -f nginx:STRING)\n"
        "  -n, --top N           how many client IPs and paths to list (default 10)\n"
        "  --json                print one JSON object instead of the text report\n"
        "  --html FILE           also write a self-contained HTML report to FILE\n"
        "  --save-partial FILE   also write the partial statistics to FILE, for 'merge'\n"
        "  --chunk-size SIZE     bytes per chunk (K/M/G; default 8M; with processes two chunks\n"
        "                        per worker, at least 32M; 4M blocks for streams); results\n"
        "                        never depend on it (at most 1 M chunks per run)\n"
        "  --io METHOD           read (default: pread into a small buffer per worker) or\n"
        "                        mmap (map the files); results never depend on it\n"
        "  --timing              print the time taken and the throughput on stderr\n"
        "  --no-progress         no progress bar (it is drawn on stderr only for inputs of\n"
        "                        64 MiB or more, and only when stderr is a terminal)\n\n"
        "merge: combines partial statistics written with --save-partial (from several runs or\n"
        "machines) into the report a single run over all their inputs gives. It takes -n,\n"
        "--json, --html and --save-partial.\n\n"
        "Notes:\n"
        "  The hour is the hour as written in the log: the UTC offset is not applied.\n"
        "  Ties in the top lists: count descending, then IPv4 before IPv6, then the address\n"
        "  in numeric order (paths: by byte order). ::ffff:a.b.c.d counts as a.b.c.d.\n"
        "  Response times are summed as integer microseconds; percentiles come from a\n"
        "  histogram with < 1%% relative error; lines whose time is '-' are not timed.\n"
        "  Malformed lines are counted and skipped; the first %d are shown on stderr with\n"
        "  their file and line number. Paths are counted without their query string.\n\n"
        "Exit codes: 0 success (malformed lines included), 1 a worker failed, 2 usage error or\n"
        "unusable input (missing, unreadable or non-regular file, corrupt gzip or partial),\n"
        "3 internal error (out of memory).\n",
        WEFT_LOGS_BAD_KEEP);
}

typedef struct outputs {
    bool json;
    const char *html, *save;
    long top;
} outputs_t;

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -errno;
    size_t n = fwrite(data, 1, len, f);
    int rc = n == len ? 0 : -EIO;
    if (fclose(f) != 0 && !rc) rc = -errno;
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
        if (!rc) rc = write_file(o->save, b.data, b.len);
        weft_buf_free(&b);
        if (rc)
            return weft_cli_error(cmd, rc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_USAGE,
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
        int rc = weft_logs_write_html(&b, &rep, meta);
        if (!rc) rc = write_file(o->html, b.data, b.len);
        weft_buf_free(&b);
        if (rc)
            code = weft_cli_error(cmd, rc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_USAGE,
                                  "cannot write %s: %s", o->html, strerror(-rc));
    }
    if (!code && o->json) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        if (weft_logs_write_json(&b, &rep) != 0)
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

/* Options shared by analysis and merge; returns 1 if `a` was consumed (with *i advanced), 0 if
 * unknown, or an exit code + 1 on error... kept simple: -1 on a usage error. */
static int output_opt(const char *cmd, int argc, char **argv, int *i, outputs_t *o)
{
    const char *a = argv[*i];
    if (strcmp(a, "--json") == 0) {
        o->json = true;
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
        if (rerr)
            code = weft_cli_error(cmd, WEFT_EXIT_USAGE, "cannot read %s", files[i]);
        else if (rc)
            code = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory");
        else if ((rc = weft_logs_part_merge_bytes(acc, b.data ? b.data : "", b.len, err,
                                                  sizeof err)) != 0)
            code = rc == -ENOMEM ? weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "out of memory")
                                 : weft_cli_error(cmd, WEFT_EXIT_USAGE, "%s: %s", files[i], err);
        weft_buf_free(&b);
    }
    if (!code) {
        weft_logs_meta_t meta = {.inputs = "merged partials"};
        code = emit(cmd, acc, &o, &meta);
    }
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
    bool timing = false;
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
        if (strcmp(a, "--no-progress") == 0) {
            ro.progress = false;
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
                     strcmp(a, "--io") == 0;
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
            sprintf(fmtbuf, "nginx:%s", v);
            ro.format = fmtbuf;
        } else if (strcmp(a, "--io") == 0) {
            if (strcmp(v, "read") == 0)
                ro.use_mmap = false;
            else if (strcmp(v, "mmap") == 0)
                ro.use_mmap = true;
            else
                code = weft_cli_usage_error(cmd, "bad --io '%s' (read or mmap)", v);
        } else if (strcmp(a, "--chunk-size") == 0) {
            uint64_t cs;
            if (weft_cli_parse_size(v, &cs) != 0 || cs == 0)
                code = weft_cli_usage_error(cmd, "bad --chunk-size '%s'", v);
            ro.chunk_size = cs;
        }
    }
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
    uint64_t t0 = weft_now_ns();
    code = weft_logs_run(&ro, &res, err, sizeof err);
    uint64_t elapsed = weft_now_ns() - t0;
    if (code) {
        weft_cli_error(cmd, code, "%s", err);
    } else {
        for (size_t i = 0; i < res.nbad; i++) {
            const weft_logs_badline_t *b = &res.bad[i];
            char text[WEFT_LOGS_BAD_TEXT + 1];
            memcpy(text, b->text, b->len);
            text[b->len] = '\0';
            fprintf(stderr, "weft logs: %s:%" PRIu64 ": malformed line: ",
                    strcmp(files[b->file], "-") == 0 ? "(stdin)" : files[b->file], b->line);
            weft_cli_put_safe(stderr, text, 100);
            fputc('\n', stderr);
        }
        if (res.part->malformed > res.nbad)
            fprintf(stderr, "weft logs: %" PRIu64 " malformed lines in all (first %zu shown)\n",
                    res.part->malformed, res.nbad);
        if (timing) {
            double s = (double)elapsed / 1e9;
            fprintf(stderr,
                    "weft logs: %.1f MB in %.3f s (%.2f GB/s), %d %s, %zu chunks; scan %.3f s, "
                    "merge %.1f ms\n",
                    (double)res.input_bytes / 1e6, s, (double)res.input_bytes / 1e9 / s, ro.jobs,
                    ro.mode == WEFT_LOGS_PROCESSES ? "processes" : "threads", res.nchunks,
                    (double)res.scan_ns / 1e9, (double)res.merge_ns / 1e6);
        }
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
        weft_logs_meta_t meta = {.inputs = inputs, .formats = res.format_names};
        code = emit(cmd, res.part, &o, &meta);
        weft_logs_run_result_free(&res);
    }
    free(files);
    free(fmtbuf);
    return code;
}

WEFT_COMMAND("logs", cmd_logs, "analyze access logs in parallel (top IPs, status, hours, times)")
