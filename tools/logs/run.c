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
 * Top paths beyond WEFT_LOGS_MAX_PATHS distinct (an exact recount, bounded memory). A path table
 * keeps at most 65,536 distinct paths (of up to 256 bytes each) per worker. When one overflows
 * and every input can be read again (regular files, compressed ones included: not standard input
 * or a FIFO, whose panel then stays null), more passes in threads mode make its top list exact:
 * (1) every path adds its count to one of 2^18 hash buckets, atomic counters the workers share
 * (2 MiB per table); (2) T is the count of the 4,096th fullest bucket (plus one when ties would
 * take more than twice as many), and only the paths whose bucket holds at least T are counted,
 * exactly, in the ordinary table; when they do not fit its 65,536, (2) is repeated with 4 times
 * fewer buckets (down to 64). A path counted T times or more lies in such a bucket, so every
 * path with count >= T is counted exactly; the table keeps those, and the report lists its top N
 * (fewer when fewer than N paths reach T, as with a flat distribution). The buckets are sums, so
 * T and the list are the same for any worker count, chunk size or mode. The distinct count is
 * then unknown ("more than 65,536", JSON null); the total of static requests is the buckets'
 * sum. The passes leave the other panels out and re-read the first run's snapshot of the files.
 * Cost, measured on a 165 MB log with 1.5 M distinct paths (-j2, loaded 2-core VM): 3.4-5.7 s
 * against 0.7-1.0 s for the same log from standard input (no recount); the random bucket
 * updates dominate the passes.
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
#include "logs/stats-panels.h"
#include "logs/tables-int.h"

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

/* ---- the exact recount of overflowing path tables ---- */

/* Buckets selected at first (then 4 times fewer while the candidates do not fit). */
#define RECOUNT_WANT 4096

static weft_logs_tp_t *path_table(weft_logs_part_t *p, int k)
{
    return k == 0 ? &p->paths : k == 1 ? &p->paths404 : &p->statics;
}

void logs_run_recount_setup(const weft_logs_recount_t *rc, weft_logs_part_t *part)
{
    for (int k = 0; k < 3; k++) {
        if (!rc->buckets[k]) continue;
        weft_logs_tp_t *t = path_table(part, k);
        t->bmask = WEFT_LOGS_RECOUNT_BUCKETS - 1;
        if (rc->thresh[k]) {
            t->select = rc->buckets[k];
            t->thresh = rc->thresh[k];
        } else {
            t->buckets = rc->buckets[k];
        }
    }
}

/* How many of v[0..n) are at least t. */
static size_t count_at_least(const uint64_t *v, size_t n, uint64_t t)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += v[i] >= t;
    return c;
}

/* The threshold: the count of the `want`th fullest bucket (at least 1), or one more when ties
 * at it would select more than twice as many buckets; *total: the sum of all counts. */
static uint64_t pick_threshold(_Atomic uint64_t *b, uint64_t *v, size_t want, uint64_t *total)
{
    const size_t n = WEFT_LOGS_RECOUNT_BUCKETS;
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = atomic_load_explicit(&b[i], memory_order_relaxed); /* after the run: joined */
        *total += v[i];
    }
    /* The largest t that `want` buckets reach (at least 1), by bisection over the counts. */
    uint64_t lo = 1, hi = 1;
    for (size_t i = 0; i < n; i++) hi = v[i] > hi ? v[i] : hi;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (count_at_least(v, n, mid) >= want)
            lo = mid;
        else
            hi = mid - 1;
    }
    return count_at_least(v, n, lo) > 2 * want ? lo + 1 : lo;
}

/* Replaces the overflowed tables of `part` by exact ones (see DESIGN). Returns 0 or an exit code;
 * a table is left overflowed (its panel null) when its candidates still do not fit. */
static int recount_paths(run_t *r, const weft_logs_run_opts_t *o, weft_logs_part_t *part)
{
    weft_logs_recount_t rc;
    memset(&rc, 0, sizeof rc);
    _Atomic uint64_t *owned[3] = {NULL, NULL, NULL};
    uint64_t *sizes = calloc(r->nin, sizeof *sizes), *vals = NULL, totals[3] = {0, 0, 0};
    size_t want[3] = {RECOUNT_WANT, RECOUNT_WANT, RECOUNT_WANT};
    int code = sizes ? 0 : logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; i < r->nin && sizes; i++)
        sizes[i] = r->in[i].stream ? UINT64_MAX : r->in[i].size;
    rc.sizes = sizes;
    for (int k = 0; k < 3 && !code; k++) {
        if (!path_table(part, k)->overflow) continue;
        owned[k] = rc.buckets[k] = calloc(WEFT_LOGS_RECOUNT_BUCKETS, sizeof *rc.buckets[k]);
        if (!rc.buckets[k]) code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    }
    weft_logs_run_opts_t oo = *o;
    oo.mode = WEFT_LOGS_THREADS; /* the passes share the buckets: threads, whatever the mode */
    oo.progress = false;
    oo.recount = &rc;
    weft_logs_filter_t only_paths; /* the passes count paths: the other panels are left out */
    if (o->filter)
        only_paths = *o->filter;
    else
        memset(&only_paths, 0, sizeof only_paths);
    only_paths.no_panels = WEFT_LOGS_PANELS_ALL;
    oo.filter = &only_paths;
    weft_logs_run_result_t res;
    char err[256];
    /* Pass 0 fills the buckets; each later pass counts the candidates of the tables still to
     * do, with 4 times fewer buckets for a table whose candidates did not fit the last time. */
    for (int pass = 0; pass < 5 && !code; pass++) {
        bool todo = false;
        for (int k = 0; k < 3; k++) todo |= rc.buckets[k] != NULL && want[k] >= 64;
        if (!todo) break;
        if (pass > 0) {
            if (!vals && !(vals = malloc(WEFT_LOGS_RECOUNT_BUCKETS * sizeof *vals))) {
                code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
                break;
            }
            for (int k = 0; k < 3; k++)
                if (rc.buckets[k])
                    rc.thresh[k] = pick_threshold(rc.buckets[k], vals, want[k], &totals[k]);
        }
        code = weft_logs_run(&oo, &res, err, sizeof err);
        if (code) {
            logs_run_failf(r, code, "recounting the paths: %s", err);
            break;
        }
        for (int k = 0; k < 3 && !code && pass > 0; k++) {
            const weft_logs_tp_t *src = path_table(res.part, k);
            if (!rc.buckets[k]) continue;
            if (src->overflow) { /* too many candidates: fewer buckets next time */
                want[k] /= 4;
                continue;
            }
            weft_logs_tp_t t;
            int e = weft_logs_tp_init(&t);
            for (size_t i = 0; i < src->used && !e; i++) {
                const weft_logs_ep_t *x = &src->ents[i];
                uint64_t raw = *tp_find(src, x->hash);
                if ((raw & ~TP_STATIC) >= rc.thresh[k])
                    e = weft_logs_tp_add(&t, x->hash, src->arena + x->off, x->len,
                                         path_keep(x->len), raw);
            }
            if (e) {
                weft_logs_tp_free(&t);
                code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
                break;
            }
            t.recounted = true;
            t.thresh = rc.thresh[k];
            t.total = totals[k];
            weft_logs_tp_free(path_table(part, k));
            *path_table(part, k) = t;
            rc.buckets[k] = NULL; /* done: counted as usual (and ignored) in later passes */
            rc.thresh[k] = 0;
        }
        weft_logs_run_result_free(&res);
    }
    for (int k = 0; k < 3; k++) free(owned[k]);
    free(vals);
    free(sizes);
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
    bool again = !o->recount; /* can every input be read again for a recount? */
    for (size_t i = 0; i < r.nin; i++)
        again &= strcmp(o->files[i], "-") != 0 && S_ISREG(r.in[i].st.st_mode);
    if (!code && again &&
        (res->part->paths.overflow || res->part->paths404.overflow || res->part->statics.overflow))
        code = recount_paths(&r, o, res->part);
    if (code && res->part) { /* a failed recount: no result (run.h) */
        weft_logs_part_destroy(res->part);
        res->part = NULL;
        free(res->idents);
        res->idents = NULL;
    }

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
