/* `weft demo logs`: the seed's challenge 2 (a log analyzer with a process pool) done both ways.
 * Generates a ~200 MB access log in a temporary directory, analyzes it with one worker and with
 * every CPU, with threads and with processes, prints the times and speed-ups, and checks that
 * the four JSON reports are byte-identical. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/buf.h>
#include <weft/sys.h>

#include "demo/demo.h"
#include "logs/gen.h"
#include "logs/report.h"
#include "logs/run.h"
#include "common/cli-int.h"

static char *analyze(const char *file, int jobs, weft_logs_mode_t mode, double *secs,
                     uint64_t *merge_ns, weft_logs_report_t *keep)
{
    const char *files[] = {file};
    weft_logs_run_opts_t o = {.files = files, .nfiles = 1, .jobs = jobs, .mode = mode};
    weft_logs_run_result_t res;
    char err[256];
    uint64_t t0 = weft_now_ns();
    int code = weft_logs_run(&o, &res, err, sizeof err);
    if (code) {
        fprintf(stderr, "weft demo logs: %s\n", err);
        return NULL;
    }
    weft_logs_report_t rep;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    if (weft_logs_report_build(res.part, 10, 10, &rep) != 0 || weft_logs_write_json(&b, &rep)) {
        weft_logs_report_free(&rep);
        weft_logs_run_result_free(&res);
        weft_buf_free(&b);
        return NULL;
    }
    *secs = (double)(weft_now_ns() - t0) / 1e9;
    *merge_ns = res.merge_ns;
    if (keep)
        *keep = rep;
    else
        weft_logs_report_free(&rep);
    weft_logs_run_result_free(&res);
    return weft_buf_steal(&b, NULL);
}

static int demo_logs(int argc, char **argv)
{
    uint64_t size = 200u << 20;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: weft demo logs [SIZE]\n\nGenerates an access log of SIZE (default 200M),\n"
               "analyzes it with 1 and with all workers, threads and processes, and checks that\n"
               "the results are identical.\n");
        return WEFT_EXIT_OK;
    }
    if (argc >= 2 && (weft_cli_parse_size(argv[1], &size) != 0 || size == 0))
        return weft_cli_usage_error("demo logs", "bad size '%s'", argv[1]);
    weft_demo_heading("logs: the seed's log analyzer, with threads and with processes");
    char dir[] = "/tmp/weft-demo-logs-XXXXXX";
    if (!mkdtemp(dir))
        return weft_cli_error("demo logs", WEFT_EXIT_INTERNAL, "mkdtemp: %s", strerror(errno));
    char file[64];
    snprintf(file, sizeof file, "%s/access.log", dir);
    weft_logs_gen_opts_t g;
    weft_logs_gen_defaults(&g);
    g.size = size;
    g.seed = 2025;
    g.malformed_rate = 0.0001;
    uint64_t t0 = weft_now_ns();
    FILE *f = fopen(file, "wb");
    int rc = f ? weft_logs_gen(f, &g) : -errno;
    if (f && fclose(f) != 0 && !rc) rc = -EIO;
    int code = WEFT_EXIT_OK;
    if (rc) {
        code = weft_cli_error("demo logs", WEFT_EXIT_FAILED, "cannot write %s", file);
        goto out;
    }
    printf("Generated %s: %.0f MB of access log in %.2f s (weft logs gen --size %lluM "
           "--seed 2025).\n",
           file, (double)size / 1e6, (double)(weft_now_ns() - t0) / 1e9,
           (unsigned long long)(size >> 20));
    printf("Each run: split into chunks at line ends, parse every line, count per worker, merge.\n"
           "The seed's Python version (regex per line, Counter, ProcessPoolExecutor) needs about\n"
           "9 s per GB with 2 processes (bench/bench-logs.sh measures it).\n\n");

    int n = weft_cpu_count();
    struct {
        weft_logs_mode_t mode;
        int jobs;
        double secs;
        uint64_t merge_ns;
        char *json;
    } runs[4] = {{WEFT_LOGS_THREADS, 1, 0, 0, NULL},
                 {WEFT_LOGS_THREADS, n, 0, 0, NULL},
                 {WEFT_LOGS_PROCESSES, 1, 0, 0, NULL},
                 {WEFT_LOGS_PROCESSES, n, 0, 0, NULL}};
    weft_logs_report_t rep;
    printf("  %-10s %7s %9s %9s %9s %10s\n", "mode", "workers", "seconds", "GB/s", "speed-up",
           "merge ms");
    for (int i = 0; i < 4; i++) {
        runs[i].json = analyze(file, runs[i].jobs, runs[i].mode, &runs[i].secs, &runs[i].merge_ns,
                               i == 0 ? &rep : NULL);
        if (!runs[i].json) {
            code = WEFT_EXIT_FAILED;
            break;
        }
        printf("  %-10s %7d %9.3f %9.2f %8.2fx %10.1f\n",
               runs[i].mode == WEFT_LOGS_THREADS ? "threads" : "processes", runs[i].jobs,
               runs[i].secs, (double)size / 1e9 / runs[i].secs, runs[0].secs / runs[i].secs,
               (double)runs[i].merge_ns / 1e6);
        fflush(stdout);
    }
    if (!code) {
        bool same = true;
        for (int i = 1; i < 4; i++) same &= strcmp(runs[i].json, runs[0].json) == 0;
        printf("\nThe four JSON reports are %s.\n",
               same ? "byte-identical" : "DIFFERENT (a bug: please report it)");
        if (!same) code = WEFT_EXIT_FAILED;
        printf("%llu lines, %llu distinct client IPs; the busiest:\n",
               (unsigned long long)rep.lines, (unsigned long long)rep.distinct_ips);
        for (size_t i = 0; i < rep.ntop && i < 3; i++) {
            char ip[64];
            weft_logs_ip_text(&rep.top[i], ip, sizeof ip);
            printf("  %-16s %llu requests\n", ip, (unsigned long long)rep.top[i].count);
        }
        printf("Threads share one address space and merge per-worker tables in place; "
               "processes\nsend each chunk's table back as bytes, which the parent decodes "
               "and merges.\n");
        weft_logs_report_free(&rep);
    }
    for (int i = 0; i < 4; i++) free(runs[i].json);
out:
    unlink(file);
    rmdir(dir);
    return code;
}

WEFT_DEMO("logs", 30, demo_logs, "access-log analyzer: 1 vs all workers, threads vs processes")
