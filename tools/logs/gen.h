/* weft logs gen: a deterministic generator of realistic access logs, for tests, benchmarks and
 * the demo. The same options and seed always give the same bytes.
 */
#ifndef WEFT_TOOLS_LOGS_GEN_H
#define WEFT_TOOLS_LOGS_GEN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct weft_logs_gen_opts {
    uint64_t size;         /* stop after the line that reaches this many bytes */
    uint64_t seed;         /* any value */
    uint64_t ips;          /* client population (distinct addresses that may appear); >= 1 */
    double malformed_rate; /* 0..1: share of lines written broken */
    double ipv6_rate;      /* 0..1: share of clients with an IPv6 address */
    int days;              /* the time span covered (at the expected line count) */
    bool crlf;             /* end lines with \r\n */
    const char *format;    /* "default", "common", "combined" or "combined-rt" */
} weft_logs_gen_opts_t;

/* Default options: 1 MiB, seed 1, 1 M clients, no malformed lines, 2 % IPv6, 3 days, "default".
 */
void weft_logs_gen_defaults(weft_logs_gen_opts_t *o);

/* Writes the log to `out`. Returns 0, -EINVAL (bad options) or -EIO (write failed, errno kept).
 * Ownership: borrows. Thread safety: any thread. */
int weft_logs_gen(FILE *out, const weft_logs_gen_opts_t *o);

/* `weft logs gen ...` (argv[0] is "gen"). Returns an exit code. */
int weft_logs_gen_main(int argc, char **argv);

#endif
