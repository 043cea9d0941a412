/* weft logs: processes mode (run.c has the design): "weft_logs_chunk" runs in weft_procpool
 * workers over a file range or a stream block and returns the chunk's line count, its first
 * malformed lines and the serialized partial, checked and merged here in submission order.
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
#include <weft/err.h>
#include <weft/future.h>
#include <weft/pool.h>
#include <weft/procpool.h>
#include <weft/sys.h>
#include <zlib.h>

#include "common/cli-int.h"

#include "logs/run-int.h"

#define PROC_FN "weft_logs_chunk"

/* ---- processes mode -------------------------------------------------------------------- */

/* The task argument: this header, the format spec, the path (both NUL-terminated), the format's
 * filter (weft_logs_filter_t, plain data), then for streams the block's bytes. */
typedef struct proc_arg {
    uint32_t kind; /* 0: a range of a file, 1: inline bytes */
    uint32_t spec_len, path_len, use_mmap;
    uint64_t start, end, size, dev, ino;
    int64_t mtime_s, mtime_ns;
} proc_arg_t;

/* The result: this header, nbad weft_logs_bad_t records, then the serialized partial. */
typedef struct proc_res {
    uint64_t lines;
    uint32_t nbad, pad;
} proc_res_t;

/* A worker process keeps its last file open (and mapped, with use_mmap): its next task is
 * likely a range of the same file. Worker processes run one task at a time. */
static struct {
    char path[PATH_MAX];
    int fd; /* 0 while unset: workers never use their stdin for this */
    struct stat st;
    uint64_t size; /* the snapshot's size (the file may have grown since) */
    const char *map;
    char *buf;
    size_t cap;
    weft_logs_format_t fmt;
    char spec[WEFT_LOGS_SPEC_MAX + 8];
} wcache;

static int proc_open(const proc_arg_t *a, const char *path, weft_buf_t *out)
{
    if (wcache.fd > 0 && strcmp(wcache.path, path) == 0 && (uint64_t)wcache.st.st_dev == a->dev &&
        (uint64_t)wcache.st.st_ino == a->ino && wcache.size == a->size &&
        (a->use_mmap != 0) == (wcache.map != NULL || a->size == 0))
        return 0;
    if (wcache.map) munmap((void *)wcache.map, (size_t)wcache.size);
    if (wcache.fd > 0) close(wcache.fd);
    wcache.map = NULL;
    wcache.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (wcache.fd < 0 || fstat(wcache.fd, &wcache.st) != 0) {
        int e = errno;
        weft_buf_printf(out, "cannot open %s: %s", path, strerror(e));
        if (wcache.fd >= 0) close(wcache.fd);
        wcache.fd = 0;
        return -e;
    }
    const struct stat *st = &wcache.st;
    /* The snapshot: the file as it was when the run started, up to that size. A log still
     * being written only grows (and its mtime moves): that is the same file. A shorter one, or
     * another file under the name (rotated), is not. */
    if ((uint64_t)st->st_dev != a->dev || (uint64_t)st->st_ino != a->ino ||
        (uint64_t)st->st_size < a->size ||
        ((uint64_t)st->st_size == a->size &&
         (st->st_mtim.tv_sec != a->mtime_s || st->st_mtim.tv_nsec != a->mtime_ns))) {
        close(wcache.fd);
        wcache.fd = 0;
        weft_buf_printf(out, "%s changed during the run", path);
        return -ESTALE;
    }
    if (a->use_mmap && a->size) {
        void *m = mmap(NULL, a->size, PROT_READ, MAP_PRIVATE, wcache.fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(wcache.fd);
            wcache.fd = 0;
            weft_buf_printf(out, "cannot map %s: %s", path, strerror(e));
            return -e;
        }
        wcache.map = m;
    }
    wcache.size = a->size;
    snprintf(wcache.path, sizeof wcache.path, "%s", path);
    return 0;
}

static int proc_chunk(const void *arg, size_t len, weft_buf_t *out)
{
    proc_arg_t a;
    if (len < sizeof a) return -EINVAL;
    memcpy(&a, arg, sizeof a);
    const char *spec = (const char *)arg + sizeof a;
    const char *path = spec + a.spec_len + 1;
    size_t fixed = sizeof a + a.spec_len + 1 + a.path_len + 1 + sizeof(weft_logs_filter_t);
    if (fixed > len || a.spec_len >= sizeof wcache.spec || a.path_len >= PATH_MAX) return -EINVAL;
    if (strcmp(spec, wcache.spec) != 0) {
        char err[128];
        if (weft_logs_format_compile(spec, &wcache.fmt, err, sizeof err) != 0) {
            weft_buf_printf(out, "bad format: %s", err);
            return -EINVAL;
        }
        memcpy(wcache.spec, spec, a.spec_len + 1);
    }
    memcpy(&wcache.fmt.filter, path + a.path_len + 1, sizeof wcache.fmt.filter);
    weft_logs_part_t *p = weft_logs_part_create();
    if (!p) return -ENOMEM;
    weft_logs_chunkres_t res = {0};
    int rc = 0;
    if (a.kind == 1) {
        weft_logs_analyze(&wcache.fmt, (const char *)arg + fixed, len - fixed, p, &res);
    } else if ((rc = proc_open(&a, path, out)) == 0) {
        if (wcache.map)
            logs_run_analyze_map(wcache.map, a.size, a.start, a.end, &wcache.fmt, p, &res);
        else if ((rc = logs_run_analyze_fd(wcache.fd, a.size, a.start, a.end, &wcache.fmt, p, &res,
                                           &wcache.buf, &wcache.cap)) != 0)
            weft_buf_printf(out, "cannot read %s: %s", path, strerror(-rc));
    }
    if (rc) {
        weft_logs_part_destroy(p);
        return rc;
    }
    proc_res_t h = {.lines = res.lines, .nbad = res.nbad};
    rc = p->oom;
    if (!rc) rc = weft_buf_append(out, &h, sizeof h);
    if (!rc) rc = weft_buf_append(out, res.bad, res.nbad * sizeof res.bad[0]);
    if (!rc) rc = weft_logs_part_serialize(p, out, false);
    weft_logs_part_destroy(p);
    return rc;
}
WEFT_PROCPOOL_FN(PROC_FN, proc_chunk)

static int submit_proc(run_t *r, weft_procpool_t *pp, const input_t *in, uint32_t kind,
                       uint64_t start, uint64_t end, const char *data, size_t dlen,
                       weft_future_t **f)
{
    char spec[WEFT_LOGS_SPEC_MAX + 8];
    snprintf(spec, sizeof spec, "%s", in->fmt.spec); /* compiles to in->fmt again */
    const char *path = kind == 0 ? in->abspath : "";
    proc_arg_t a = {.kind = kind,
                    .use_mmap = r->o->use_mmap,
                    .spec_len = (uint32_t)strlen(spec),
                    .path_len = (uint32_t)strlen(path),
                    .start = start,
                    .end = end,
                    .size = (uint64_t)in->st.st_size,
                    .dev = (uint64_t)in->st.st_dev,
                    .ino = (uint64_t)in->st.st_ino,
                    .mtime_s = in->st.st_mtim.tv_sec,
                    .mtime_ns = in->st.st_mtim.tv_nsec};
    weft_buf_t b;
    weft_buf_init(&b, 0);
    int rc = weft_buf_append(&b, &a, sizeof a);
    if (!rc) rc = weft_buf_append(&b, spec, a.spec_len + 1);
    if (!rc) rc = weft_buf_append(&b, path, a.path_len + 1);
    if (!rc) rc = weft_buf_append(&b, &in->fmt.filter, sizeof in->fmt.filter);
    if (!rc && dlen) rc = weft_buf_append(&b, data, dlen);
    if (!rc) rc = weft_procpool_submit(pp, PROC_FN, b.data, b.len, 0, f);
    weft_buf_free(&b);
    if (rc)
        return logs_run_failf(r, rc == -EMSGSIZE ? WEFT_EXIT_USAGE : WEFT_EXIT_INTERNAL,
                              "cannot submit to the process pool: %s", weft_strerror(rc));
    return 0;
}

/* Waits for one task and merges its result into `acc`. */
static int collect_proc(run_t *r, weft_future_t *f, chunk_t *c, weft_logs_part_t *acc)
{
    weft_future_wait(f, -1);
    int st = weft_future_status(f);
    if (st) {
        const char *msg = weft_future_message(f);
        return logs_run_failf(r, st == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_FAILED,
                              "worker process failed: %s%s%s", weft_strerror(st), msg ? ": " : "",
                              msg ? msg : "");
    }
    size_t len = 0;
    const char *v = weft_future_value(f, &len);
    proc_res_t h;
    if (!v || len < sizeof h)
        return logs_run_failf(r, WEFT_EXIT_INTERNAL, "short result from a worker");
    memcpy(&h, v, sizeof h);
    size_t badlen = (size_t)h.nbad * sizeof(weft_logs_bad_t);
    if (h.nbad > WEFT_LOGS_BAD_KEEP || len < sizeof h + badlen)
        return logs_run_failf(r, WEFT_EXIT_INTERNAL, "bad result from a worker");
    weft_logs_chunkres_t res = {.lines = h.lines, .nbad = h.nbad};
    memcpy(res.bad, v + sizeof h, badlen);
    if (logs_run_keep_bad(c, &res)) return logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    atomic_fetch_add_explicit(&r->done_lines, h.lines, memory_order_relaxed); /* bar only */
    char err[128];
    uint64_t t0 = weft_now_ns();
    int rc = weft_logs_part_merge_bytes(acc, v + sizeof h + badlen, len - sizeof h - badlen, err,
                                        sizeof err);
    r->merge_ns += weft_now_ns() - t0;
    if (rc == -ENOMEM) return logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    if (rc) return logs_run_failf(r, WEFT_EXIT_INTERNAL, "bad result from a worker: %s", err);
    return 0;
}

typedef struct proc_stream {
    weft_procpool_t *pp;
    weft_logs_part_t *acc;
    weft_future_t **fs;
    chunk_t **recs;
    size_t head, n, cap; /* a ring of in-flight tasks */
    size_t file;
} proc_stream_t;

static int emit_proc(run_t *r, chunk_t *rec, char *data, size_t len, void *arg)
{
    proc_stream_t *ps = arg;
    int code = 0;
    if (ps->n == ps->cap) { /* wait for the oldest to keep memory bounded */
        size_t i = ps->head;
        code = collect_proc(r, ps->fs[i], ps->recs[i], ps->acc);
        weft_future_release(ps->fs[i]);
        ps->head = (ps->head + 1) % ps->cap;
        ps->n--;
    }
    if (!code) {
        size_t i = (ps->head + ps->n) % ps->cap;
        code = submit_proc(r, ps->pp, &r->in[ps->file], 1, 0, 0, data, len, &ps->fs[i]);
        if (!code) {
            ps->recs[i] = rec;
            ps->n++;
        }
    }
    free(data);
    return code;
}

int logs_run_processes(run_t *r, weft_logs_run_result_t *res)
{
    int j = r->o->jobs;
    weft_procpool_t *pp = NULL;
    weft_procpool_opts_t po = {.workers = j, .max_message = (size_t)1 << 31};
    int rc = weft_procpool_create(&pp, &po);
    if (rc)
        return logs_run_failf(r, WEFT_EXIT_INTERNAL, "cannot start worker processes: %s",
                              weft_strerror(rc));
    weft_logs_part_t *acc = weft_logs_part_create();
    weft_future_t **fs = calloc(r->nchunks + 1, sizeof *fs);
    int code = (!acc || !fs) ? logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory") : 0;
    uint64_t t0 = weft_now_ns();
    size_t submitted = 0;
    for (size_t i = 0; i < r->nchunks && !code; i++) {
        const chunk_t *c = &r->chunks[i];
        code = submit_proc(r, pp, &r->in[c->file], 0, c->start, c->end, NULL, 0, &fs[i]);
        if (!code) submitted++;
    }
    for (size_t i = 0; i < submitted; i++) {
        if (!code) code = collect_proc(r, fs[i], &r->chunks[i], acc);
        weft_future_release(fs[i]);
        atomic_fetch_add_explicit(&r->done_bytes, r->chunks[i].end - r->chunks[i].start,
                                  memory_order_relaxed); /* relaxed: progress only */
        logs_run_progress(r);
    }
    proc_stream_t ps = {.pp = pp, .acc = acc, .cap = (size_t)j * 2};
    ps.fs = calloc(ps.cap, sizeof *ps.fs);
    ps.recs = calloc(ps.cap, sizeof *ps.recs);
    if (!ps.fs || !ps.recs) code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; i < r->nin && !code; i++) {
        if (!r->in[i].stream) continue;
        ps.file = i;
        code = logs_run_read_stream(r, i,
                                    r->o->chunk_size ? r->o->chunk_size : WEFT_LOGS_BLOCK_DEFAULT,
                                    !r->o->format, emit_proc, &ps);
    }
    for (; ps.n; ps.n--, ps.head = (ps.head + 1) % ps.cap) {
        if (!code) code = collect_proc(r, ps.fs[ps.head], ps.recs[ps.head], acc);
        weft_future_release(ps.fs[ps.head]);
    }
    free(ps.fs);
    free(ps.recs);
    res->scan_ns = weft_now_ns() - t0;
    res->merge_ns = r->merge_ns;
    weft_procpool_destroy(pp);
    free(fs);
    if (!code && acc->oom) code = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    if (code) {
        weft_logs_part_destroy(acc);
        return code;
    }
    res->part = acc;
    return 0;
}

/* ---- the run ----------------------------------------------------------------------------- */
