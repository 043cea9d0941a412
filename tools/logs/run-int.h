/* weft logs: the pieces of a run (run.c) shared by its files: the inputs and their chunks
 * (input.c), threads mode (run-threads.c) and processes mode (run-procs.c). Internal to
 * tools/logs; run.c describes the design.
 */
#ifndef WEFT_TOOLS_LOGS_RUN_INT_H
#define WEFT_TOOLS_LOGS_RUN_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/cli-int.h"
#include "logs/run.h"

typedef struct input {
    const char *name;
    char *abspath; /* for worker processes, which may not share our idea of "." */
    int fd;
    bool stream; /* standard input or gzip: read by the reader */
    const char *map;
    uint64_t size;
    struct stat st;
    weft_logs_format_t fmt;
    weft_logs_ident_t ident; /* set by the opening (files) or the reader (streams) */
} input_t;

/* A mapped chunk or a stream block, and what processing it found. */
typedef struct chunk {
    uint32_t file;
    uint64_t start, end; /* the raw range (mapped files) */
    uint64_t lines;
    uint32_t nbad;
    weft_logs_bad_t *bad; /* nbad entries, owned */
} chunk_t;

typedef struct block {
    struct block *next;
    chunk_t *rec;
    char *data;
    size_t len;
} block_t;

typedef struct run {
    const weft_logs_run_opts_t *o;
    input_t *in;
    size_t nin;
    chunk_t *chunks; /* mapped files, in file order */
    size_t nchunks;
    _Atomic size_t next;         /* the next unclaimed chunk */
    _Atomic uint64_t done_bytes; /* for the progress bar only: file bytes (compressed ones too) */
    _Atomic uint64_t done_lines; /* for the progress bar only: lines analysed */
    uint64_t stream_bytes;       /* decoded bytes of the streams (written by the reader only) */
    uint64_t comp_seen;          /* compressed bytes in done_bytes (written by the reader only) */
    chunk_t **recs;              /* stream blocks, in stream order (owned by the reader) */
    size_t nrecs, caprecs;
    /* the block queue */
    pthread_mutex_t mu;
    pthread_cond_t can_pop, can_push;
    block_t *head, *tail;
    size_t qlen, qcap;
    bool closed;
    /* reporting */
    uint64_t merge_ns; /* processes mode: time spent checking and merging results */
    weft_progress_t prog;
    char *err;
    size_t errlen;
} run_t;

/* Receives one line-aligned block of a stream; takes ownership of `data`. */
typedef int (*emit_fn)(run_t *r, chunk_t *rec, char *data, size_t len, void *arg);

/* Stores the first error message of the run (printf-style) and returns `code`. */
int logs_run_failf(run_t *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Redraws the progress bar: the fraction of the known input sizes done (file bytes, a
 * compressed file's position), the decoded bytes and lines analysed and their rates. Calling
 * thread (the reader) only. */
void logs_run_progress(run_t *r);

/* Points a part's path tables at the shared buckets of a recount pass (run.c). */
void logs_run_recount_setup(const weft_logs_recount_t *rc, weft_logs_part_t *part);

/* Inputs (input.c): analysing a chunk, keeping its first malformed lines, reading a stream. */
int logs_run_analyze_fd(int fd, uint64_t size, uint64_t start, uint64_t end,
                        const weft_logs_format_t *f, weft_logs_part_t *part,
                        weft_logs_chunkres_t *res, char **buf, size_t *cap);
void logs_run_analyze_map(const char *map, uint64_t size, uint64_t start, uint64_t end,
                          const weft_logs_format_t *f, weft_logs_part_t *part,
                          weft_logs_chunkres_t *res);
int logs_run_keep_bad(chunk_t *c, const weft_logs_chunkres_t *res);
int logs_run_read_stream(run_t *r, size_t fi, uint64_t bsize, bool detect, emit_fn emit, void *arg);
int logs_run_open_inputs(run_t *r, const weft_logs_format_t *fixed);
int logs_run_make_chunks(run_t *r, uint64_t csize);
void logs_run_close_inputs(run_t *r);

/* The two modes (run-threads.c, run-procs.c): 0 or a WEFT_EXIT_ code. */
int logs_run_threads(run_t *r, weft_logs_run_result_t *res);
int logs_run_processes(run_t *r, weft_logs_run_result_t *res);

#endif
