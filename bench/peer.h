/* bench/peer.h - what every C benchmark shares: its size argument, and starting its peer (a
 * Python script beside the benchmarks, run with Debian's python3 ($PYTHON, default
 * /usr/bin/python3) in the same run as weft's figures).
 * Header-only: every bench-*.c is its own program. */
#ifndef WEFT_BENCH_PEER_H
#define WEFT_BENCH_PEER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The benchmark's size N: argv[1], else $WEFT_BENCH_N, else `def`. Exits 2 with a usage line
 * naming `prog` when N is not a positive number. */
static long bench_arg_n(int argc, char **argv, long def, const char *prog)
{
    const char *env = getenv("WEFT_BENCH_N");
    long n = argc > 1 ? atol(argv[1]) : env ? atol(env) : def;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [N]   (N > 0)\n", prog);
        exit(2);
    }
    return n;
}

/* Starts `python3 bench/SCRIPT ARGS` (bench/ from $WEFT_SRC, else beside this file) and returns
 * its standard output to read, or NULL. Close it with bench_peer_close(). */
static FILE *bench_peer_open(const char *script, const char *args)
{
    const char *py = getenv("PYTHON"), *src = getenv("WEFT_SRC");
    char dir[4096], cmd[8400];
    if (src) {
        snprintf(dir, sizeof dir, "%s/bench", src);
    } else {
        snprintf(dir, sizeof dir, "%s", __FILE__);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s/%s' %s", py ? py : "/usr/bin/python3", dir, script, args);
    return popen(cmd, "r");
}

/* Waits for the peer; says so on stderr if it failed. */
static void bench_peer_close(FILE *f, const char *script)
{
    if (f && pclose(f) != 0) fprintf(stderr, "bench: peer %s failed\n", script);
}

#endif
