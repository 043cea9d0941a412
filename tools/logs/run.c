/* weft logs: the parallel run (run.h): its options, the two modes and the combined result.
 * Inputs are in input.c, threads mode in run-threads.c, processes mode in run-procs.c.
 *
 * DESIGN
 * Threads mode. The calling thread opens every input, cuts mapped files into chunks (byte
 * ranges, more chunks than workers) and submits one long task per worker to a weft_pool. Each
 * task owns one part (per-worker tables, no sharing) and first claims chunks with an atomic
 * counter (dynamic load balancing: a slow chunk never holds the others), then pops stream blocks
 * from a bounded queue until the reader closes it. The calling thread is the reader: it cuts
 * standard input and gzip files into line-aligned blocks and pushes them (blocking while the
 * queue is full, so memory stays bounded). At the end the parts are merged, one pool task per
 * IPv4 partition plus one for the rest; these touch disjoint memory.
 *   Invariants: a chunk is claimed by exactly one worker (fetch_add); its result fields are
 *   written only by that worker and read by the calling thread only after that worker's future
 *   is DONE (the future's completion is the release/acquire edge). One lock (the queue's); no
 *   callback runs under it.
 * Processes mode. The seed's design: a weft_procpool runs "weft_logs_chunk" in worker
 * processes. A task's argument is the path, the file's identity and a byte range (the worker
 * maps the file itself), or for streams the block's bytes; its result is the chunk's line count,
 * its first malformed lines and the serialized partial (stats.h), which the calling thread
 * checks and merges as results arrive, in submission order.
 * Results are identical in both modes and for any worker count or chunk size: every statistic
 * is an integer sum and the report sorts with total orders.
 */
#include "logs/run.h"

#include "logs/run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/buf.h>
#include <weft/hash.h>
#include <weft/err.h>
#include <weft/future.h>
#include <weft/pool.h>
#include <weft/procpool.h>
#include <weft/sys.h>
#include <zlib.h>

#include "common/cli-int.h"

#include "logs/run-int.h"

int logs_run_failf(run_t *r, int code, const char *fmt, ...)
{
    if (r->err && r->errlen && !r->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, r->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void logs_run_progress(run_t *r)
{
    /* relaxed: statistics for the bar only */
    uint64_t done = atomic_load_explicit(&r->done_bytes, memory_order_relaxed);
    r->prog.bytes = done - r->comp_seen + r->stream_bytes;
    r->prog.items = atomic_load_explicit(&r->done_lines, memory_order_relaxed);
    weft_progress_update(&r->prog, done);
}

static void add_bad(weft_logs_run_result_t *res, size_t file, uint64_t base, const chunk_t *c)
{
    for (uint32_t k = 0; k < c->nbad && res->nbad < WEFT_LOGS_BAD_KEEP; k++) {
        weft_logs_badline_t *b = &res->bad[res->nbad++];
        b->file = file;
        b->line = base + c->bad[k].line;
        b->len = c->bad[k].len;
        memcpy(b->text, c->bad[k].text, b->len);
    }
}

int weft_logs_run(const weft_logs_run_opts_t *o, weft_logs_run_result_t *res, char *err,
                  size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (err && errlen) err[0] = '\0';
    run_t r = {.o = o, .nin = o->nfiles, .err = err, .errlen = errlen};
    if (o->jobs < 1 || o->nfiles == 0) return logs_run_failf(&r, WEFT_EXIT_USAGE, "nothing to do");
    weft_logs_format_t fixed;
    if (o->format && strcmp(o->format, "auto") != 0) {
        char ferr[160];
        if (weft_logs_format_compile(o->format, &fixed, ferr, sizeof ferr) != 0)
            return logs_run_failf(&r, WEFT_EXIT_USAGE, "%s", ferr);
    }
    bool detect = !o->format || strcmp(o->format, "auto") == 0;
    weft_logs_run_opts_t oo = *o;
    oo.format = detect ? NULL : o->format;
    r.o = &oo;
    r.in = calloc(r.nin, sizeof *r.in);
    if (!r.in) return logs_run_failf(&r, WEFT_EXIT_INTERNAL, "out of memory");
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.can_pop, NULL);
    pthread_cond_init(&r.can_push, NULL);
    r.qcap = (size_t)o->jobs * 2;
    int code = logs_run_open_inputs(&r, detect ? NULL : &fixed);
    uint64_t csize = o->chunk_size ? o->chunk_size : WEFT_LOGS_CHUNK_DEFAULT;
    if (!o->chunk_size && o->mode == WEFT_LOGS_PROCESSES) {
        /* Each process result is a whole table that the parent decodes and merges, so processes
         * get few large chunks (two per worker, at least 32 MiB): with 1 M distinct clients,
         * 8 MiB chunks made the parent's merge take longer than the scan. */
        uint64_t mapped = 0;
        for (size_t i = 0; i < r.nin; i++) mapped += r.in[i].stream ? 0 : r.in[i].size;
        uint64_t want = (mapped + 2 * (uint64_t)o->jobs - 1) / (2 * (uint64_t)o->jobs);
        csize = want > WEFT_LOGS_CHUNK_PROC_DEFAULT ? want : WEFT_LOGS_CHUNK_PROC_DEFAULT;
    }
    uint64_t mapped_total = 0;
    for (size_t i = 0; i < r.nin; i++) mapped_total += r.in[i].stream ? 0 : r.in[i].size;
    if (mapped_total / csize > WEFT_LOGS_MAX_CHUNKS) /* a tiny --chunk-size on a big input */
        csize = (mapped_total + WEFT_LOGS_MAX_CHUNKS - 1) / WEFT_LOGS_MAX_CHUNKS;
    if (!code) code = logs_run_make_chunks(&r, csize);
    /* The bar: the fraction of file bytes done (compressed files: their compressed size and
     * position), or none when an input's size is unknown (standard input, a FIFO); always the
     * decoded bytes and the lines analysed, with their rates. Drawn for inputs of 64 MiB or more,
     * or of unknown size after a second. */
    uint64_t total = 0;
    bool unknown = false;
    for (size_t i = 0; i < r.nin; i++) {
        bool reg = !r.in[i].stream || S_ISREG(r.in[i].st.st_mode);
        unknown |= !reg;
        total += r.in[i].stream ? (reg ? (uint64_t)r.in[i].st.st_size : 0) : r.in[i].size;
    }
    res->nchunks = r.nchunks;
    weft_progress_start(&r.prog, "weft logs", unknown ? 0 : total);
    r.prog.rates = true;
    r.prog.items_unit = "lines";
    if (unknown) r.prog.delay_ns = 1000000000u;
    if (!o->progress || (!unknown && total < (64u << 20))) r.prog.enabled = false;
    if (!code)
        code = o->mode == WEFT_LOGS_PROCESSES ? logs_run_processes(&r, res)
                                              : logs_run_threads(&r, res);
    logs_run_progress(&r);
    weft_progress_finish(&r.prog);
    res->input_bytes = mapped_total + r.stream_bytes; /* decoded bytes analysed */
    res->idents = NULL;
    if (!code && !(res->idents = malloc(r.nin * sizeof *res->idents)))
        code = logs_run_failf(&r, WEFT_EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; !code && i < r.nin; i++) res->idents[i] = r.in[i].ident;

    if (!code) { /* line numbers: each chunk counted its own lines; offset them in order */
        uint64_t base = 0;
        size_t ci = 0, bi = 0;
        for (size_t f = 0; f < r.nin; f++) {
            base = 0;
            for (; ci < r.nchunks && r.chunks[ci].file == f; ci++) {
                add_bad(res, f, base, &r.chunks[ci]);
                base += r.chunks[ci].lines;
            }
            for (; bi < r.nrecs && r.recs[bi]->file == f; bi++) {
                add_bad(res, f, base, r.recs[bi]);
                base += r.recs[bi]->lines;
            }
        }
        size_t off = 0;
        for (size_t f = 0; f < r.nin && off + 40 < sizeof res->format_names; f++)
            off += (size_t)snprintf(res->format_names + off, sizeof res->format_names - off, "%s%s",
                                    f ? "," : "", r.in[f].fmt.name);
    }
    for (size_t i = 0; i < r.nchunks; i++) free(r.chunks[i].bad);
    for (size_t i = 0; i < r.nrecs; i++) {
        free(r.recs[i]->bad);
        free(r.recs[i]);
    }
    free(r.chunks);
    free(r.recs);
    logs_run_close_inputs(&r);
    free(r.in);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.can_pop);
    pthread_cond_destroy(&r.can_push);
    return code;
}

void weft_logs_ident_add(weft_logs_identacc_t *a, const void *data, size_t len)
{
    const unsigned char *d = data;
    a->total += len;
    if (a->hlen < WEFT_LOGS_IDENT_EDGE) {
        size_t k = WEFT_LOGS_IDENT_EDGE - a->hlen < len ? WEFT_LOGS_IDENT_EDGE - a->hlen : len;
        memcpy(a->head + a->hlen, d, k);
        a->hlen += k;
        d += k;
        len -= k;
    }
    if (len >= WEFT_LOGS_IDENT_EDGE) {
        memcpy(a->tail, d + len - WEFT_LOGS_IDENT_EDGE, WEFT_LOGS_IDENT_EDGE);
        a->tlen = WEFT_LOGS_IDENT_EDGE;
    } else if (len) {
        size_t keep = a->tlen < WEFT_LOGS_IDENT_EDGE - len ? a->tlen : WEFT_LOGS_IDENT_EDGE - len;
        memmove(a->tail, a->tail + a->tlen - keep, keep);
        memcpy(a->tail + keep, d, len);
        a->tlen = keep + len;
    }
}

weft_logs_ident_t weft_logs_ident_done(const weft_logs_identacc_t *a)
{
    uint64_t h[3] = {a->total, weft_hash(a->head, a->hlen), weft_hash(a->tail, a->tlen)};
    return (weft_logs_ident_t){a->total, weft_hash(h, sizeof h)};
}

void weft_logs_run_result_free(weft_logs_run_result_t *res)
{
    free(res->idents);
    res->idents = NULL;
    weft_logs_part_destroy(res->part);
    res->part = NULL;
}
