/* weft logs: the inputs of a run: opening files (mapped) and streams (standard input, FIFOs,
 * compressed files: decomp.h), cutting regular files into line-aligned chunks, analysing a chunk
 * from a mapping or by pread, and reading a stream into line-aligned blocks for either mode
 * (run-int.h).
 */
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
#include "common/cli-int.h"
#include "logs/decomp.h"

#include "logs/run-int.h"

void weft_logs_chunk_bounds(const char *map, uint64_t size, uint64_t start, uint64_t end,
                            uint64_t *s, uint64_t *e)
{
    /* A line starts at p when p == 0 or map[p - 1] == '\n'; the chunk owns the lines starting in
     * [start, end), so both ends move to the first line start at or after them. */
    uint64_t b[2] = {start, end};
    for (int i = 0; i < 2; i++) {
        uint64_t x = b[i];
        if (x == 0 || x >= size) {
            b[i] = x >= size ? size : 0;
            continue;
        }
        const char *nl = memchr(map + x - 1, '\n', size - (x - 1));
        b[i] = nl ? (uint64_t)(nl - map) + 1 : size;
    }
    *s = b[0];
    *e = b[1] > b[0] ? b[1] : b[0];
}

/* Page tables for the chunk in one call (Linux >= 5.14; ignored where unsupported), done by
 * the worker so that it runs in parallel. */
static void populate(const char *p, size_t len)
{
#ifdef MADV_POPULATE_READ
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095;
    madvise((void *)a, len + ((uintptr_t)p - a), MADV_POPULATE_READ);
#else
    (void)p;
    (void)len;
#endif
}

/* pread until `len` bytes or end of file; returns the bytes read or -errno. */
static ssize_t pread_full(int fd, char *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* The first line start at or after x (see weft_logs_chunk_bounds), reading from fd. */
static int line_start(int fd, uint64_t size, uint64_t x, uint64_t *out)
{
    if (x == 0 || x >= size) {
        *out = x >= size ? size : 0;
        return 0;
    }
    char tmp[4096];
    for (uint64_t pos = x - 1; pos < size;) {
        ssize_t n = pread_full(fd, tmp, size - pos < sizeof tmp ? size - pos : sizeof tmp, pos);
        if (n < 0) return (int)n;
        if (n == 0) return -EIO; /* the file shrank */
        const char *nl = memchr(tmp, '\n', (size_t)n);
        if (nl) {
            *out = pos + (uint64_t)(nl - tmp) + 1;
            return 0;
        }
        pos += (uint64_t)n;
    }
    *out = size;
    return 0;
}

/* Analyzes the lines starting in [start, end) of a file, read with pread through *buf (one
 * per worker, grown only for a line longer than it). The pieces end at newlines, so lines are
 * never split; `res` keeps counting across pieces. Returns 0, -ENOMEM or a read error. On this
 * project's virtual machines this measured 3x faster than a memory mapping: every first touch
 * of a mapped 4 KiB page costs a fault in the hypervisor, while pread copies from the page
 * cache into a buffer that stays hot in cache. */
int logs_run_analyze_fd(int fd, uint64_t size, uint64_t start, uint64_t end,
                        const weft_logs_format_t *f, weft_logs_part_t *part,
                        weft_logs_chunkres_t *res, char **buf, size_t *cap)
{
    uint64_t s, e;
    int rc = line_start(fd, size, start, &s);
    if (!rc) rc = line_start(fd, size, end, &e);
    if (rc) return rc;
    if (!*buf) {
        *buf = malloc(WEFT_LOGS_READ_BUF);
        if (!*buf) return -ENOMEM;
        *cap = WEFT_LOGS_READ_BUF;
    }
    size_t carry = 0;
    for (uint64_t off = s; off < e;) {
        size_t want = *cap - carry;
        if (want > e - off) want = (size_t)(e - off);
        ssize_t n = pread_full(fd, *buf + carry, want, off);
        if (n < 0) return (int)n;
        if ((size_t)n < want) return -EIO; /* the file shrank */
        off += want;
        size_t len = carry + want, cut = len;
        if (off < e) {
            const char *nl = memrchr(*buf, '\n', len);
            if (!nl) { /* a line longer than the buffer */
                char *bigger = realloc(*buf, *cap * 2);
                if (!bigger) return -ENOMEM;
                *buf = bigger;
                *cap *= 2;
                carry = len;
                continue;
            }
            cut = (size_t)(nl - *buf) + 1;
        }
        weft_logs_analyze(f, *buf, cut, part, res);
        carry = len - cut;
        memmove(*buf, *buf + cut, carry);
    }
    return 0;
}

void logs_run_analyze_map(const char *map, uint64_t size, uint64_t start, uint64_t end,
                          const weft_logs_format_t *f, weft_logs_part_t *part,
                          weft_logs_chunkres_t *res)
{
    uint64_t s, e;
    weft_logs_chunk_bounds(map, size, start, end, &s, &e);
    if (e > s) {
        populate(map + s, e - s);
        weft_logs_analyze(f, map + s, e - s, part, res);
    }
}

int logs_run_keep_bad(chunk_t *c, const weft_logs_chunkres_t *res)
{
    c->lines = res->lines;
    c->nbad = 0;
    if (!res->nbad) return 0;
    c->bad = malloc(res->nbad * sizeof *c->bad);
    if (!c->bad) return -ENOMEM;
    memcpy(c->bad, res->bad, res->nbad * sizeof *c->bad);
    c->nbad = res->nbad;
    return 0;
}

/* ---- inputs ------------------------------------------------------------------------------- */

/* A regular file's identity (run.h): its snapshot's first and last 64 KiB, as a stream of it
 * would give. */
static int file_ident(input_t *in)
{
    weft_logs_identacc_t *a = malloc(sizeof *a);
    char *b = malloc(WEFT_LOGS_IDENT_EDGE);
    int rc = a && b ? 0 : -ENOMEM;
    if (!rc) {
        a->total = a->hlen = a->tlen = 0;
        uint64_t n = in->size < WEFT_LOGS_IDENT_EDGE ? in->size : WEFT_LOGS_IDENT_EDGE;
        uint64_t t = in->size - n < WEFT_LOGS_IDENT_EDGE ? in->size - n : WEFT_LOGS_IDENT_EDGE;
        ssize_t got = pread_full(in->fd, b, (size_t)n, 0);
        if (got >= 0 && (uint64_t)got == n)
            weft_logs_ident_add(a, b, (size_t)n);
        else
            rc = got < 0 ? (int)got : -EIO;
        if (!rc && (got = pread_full(in->fd, b, (size_t)t, in->size - t)) >= 0 &&
            (uint64_t)got == t) {
            weft_logs_ident_add(a, b, (size_t)t);
            a->total = in->size;
            in->ident = weft_logs_ident_done(a);
        } else if (!rc) {
            rc = got < 0 ? (int)got : -EIO;
        }
    }
    free(a);
    free(b);
    return rc;
}

int logs_run_open_inputs(run_t *r, const weft_logs_format_t *fixed)
{
    const weft_logs_run_opts_t *o = r->o;
    bool stdin_used = false;
    for (size_t i = 0; i < r->nin; i++) {
        input_t *in = &r->in[i];
        in->fd = -1;
        in->name = o->files[i];
        if (fixed) in->fmt = *fixed;
        if (o->filter) in->fmt.filter = *o->filter;
        if (strcmp(o->files[i], "-") == 0) {
            if (stdin_used) return logs_run_failf(r, WEFT_EXIT_USAGE, "standard input given twice");
            stdin_used = true;
            in->name = "(stdin)";
            in->stream = true;
            in->fd = dup(STDIN_FILENO);
            if (in->fd < 0)
                return logs_run_failf(r, WEFT_EXIT_USAGE, "cannot read standard input: %s",
                                      strerror(errno));
            continue;
        }
        in->fd = open(in->name, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0)
            return logs_run_failf(r, WEFT_EXIT_USAGE, "cannot open %s: %s", in->name,
                                  strerror(errno));
        if (fstat(in->fd, &in->st) != 0)
            return logs_run_failf(r, WEFT_EXIT_USAGE, "cannot stat %s: %s", in->name,
                                  strerror(errno));
        if (S_ISDIR(in->st.st_mode))
            return logs_run_failf(r, WEFT_EXIT_USAGE, "%s: is a directory", in->name);
        if (!S_ISREG(in->st.st_mode)) { /* a FIFO, <(...), a device: read as a stream */
            in->stream = true;
            continue;
        }
        unsigned char magic[6];
        ssize_t n = pread_full(in->fd, (char *)magic, sizeof magic, 0);
        if (n < 0)
            return logs_run_failf(r, WEFT_EXIT_USAGE, "cannot read %s: %s", in->name,
                                  strerror((int)-n));
        if (weft_logs_codec_sniff(magic, (size_t)n) != WEFT_LOGS_PLAIN) {
            in->stream = true; /* compressed: decoded as a stream */
            continue;
        }
        in->size = (uint64_t)in->st.st_size;
        if (o->recount && o->recount->sizes && o->recount->sizes[i] < in->size)
            in->size = o->recount->sizes[i]; /* the snapshot the first run read */
        int irc = file_ident(in);
        if (irc)
            return logs_run_failf(r, irc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_USAGE,
                                  "cannot read %s: %s", in->name, strerror(-irc));
        if (!fixed || fixed->needs_header) { /* auto, or W3C columns from the file's header */
            char *head = malloc(65536);
            if (!head) return logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
            ssize_t hn = pread_full(in->fd, head, in->size < 65536 ? (size_t)in->size : 65536, 0);
            if (hn < 0) {
                free(head);
                return logs_run_failf(r, WEFT_EXIT_USAGE, "cannot read %s: %s", in->name,
                                      strerror((int)-hn));
            }
            if (weft_logs_format_for_input(fixed, head, (size_t)hn, &in->fmt) == -ENOENT && hn > 0)
                fprintf(stderr,
                        "weft logs: %s: no known format in the first lines; using 'default'\n",
                        in->name);
            free(head);
            if (o->filter) in->fmt.filter = *o->filter; /* detection set a fresh format */
        }
        if (o->use_mmap && in->size && o->mode == WEFT_LOGS_THREADS) {
            void *m = mmap(NULL, in->size, PROT_READ, MAP_PRIVATE, in->fd, 0);
            if (m == MAP_FAILED)
                return logs_run_failf(r, WEFT_EXIT_USAGE, "cannot map %s: %s", in->name,
                                      strerror(errno));
            in->map = m;
        }
        if (o->mode == WEFT_LOGS_PROCESSES) { /* worker processes open it themselves */
            close(in->fd);
            in->fd = -1;
            if (!(in->abspath = realpath(in->name, NULL)))
                return logs_run_failf(r, WEFT_EXIT_USAGE, "cannot resolve %s: %s", in->name,
                                      strerror(errno));
        }
    }
    return 0;
}

void logs_run_close_inputs(run_t *r)
{
    for (size_t i = 0; i < r->nin; i++) {
        if (r->in[i].map) munmap((void *)r->in[i].map, r->in[i].size);
        if (r->in[i].fd >= 0) close(r->in[i].fd);
        free(r->in[i].abspath);
    }
}

int logs_run_make_chunks(run_t *r, uint64_t csize)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nin; i++)
        if (!r->in[i].stream) n += (size_t)((r->in[i].size + csize - 1) / csize);
    r->chunks = calloc(n ? n : 1, sizeof *r->chunks);
    if (!r->chunks) return logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; i < r->nin; i++) {
        if (r->in[i].stream) continue;
        for (uint64_t off = 0; off < r->in[i].size; off += csize) {
            chunk_t *c = &r->chunks[r->nchunks++];
            c->file = (uint32_t)i;
            c->start = off;
            c->end = r->in[i].size - off > csize ? off + csize : r->in[i].size;
        }
    }
    return 0;
}

static chunk_t *new_rec(run_t *r, size_t file)
{
    if (r->nrecs == r->caprecs) {
        size_t cap = r->caprecs ? r->caprecs * 2 : 64;
        chunk_t **a = realloc(r->recs, cap * sizeof *a);
        if (!a) return NULL;
        r->recs = a;
        r->caprecs = cap;
    }
    chunk_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->file = (uint32_t)file;
    r->recs[r->nrecs++] = c;
    return c;
}

/* The reader: cuts input `fi` into blocks of about `bsize` bytes ending at a newline (the last
 * block may lack it) and hands each to `emit`, which takes ownership of the data. */
int logs_run_read_stream(run_t *r, size_t fi, uint64_t bsize, bool detect, emit_fn emit, void *arg)
{
    input_t *in = &r->in[fi];
    weft_logs_dec_t *dec;
    int drc = weft_logs_dec_create(in->fd, &dec);
    if (drc)
        return logs_run_failf(r, drc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_USAGE,
                              "cannot read %s: %s", in->name, strerror(-drc));
    if (bsize > (1u << 30)) bsize = 1u << 30;
    char *carry = NULL;
    size_t clen = 0;
    int rc = 0;
    bool eof = false, first = true;
    uint64_t consumed = 0, in_seen = 0;
    size_t added_nl = 0; /* the newline added after a stream's unterminated last line */
    weft_logs_identacc_t *ida = calloc(1, sizeof *ida);
    if (!ida) {
        weft_logs_dec_destroy(dec);
        return logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
    }
    while (!eof && !rc) {
        size_t cap = clen + (size_t)bsize + 1, len = clen;
        char *buf = malloc(cap);
        if (!buf) {
            rc = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
            break;
        }
        if (clen) memcpy(buf, carry, clen);
        free(carry);
        carry = NULL;
        clen = 0;
        char *nl = NULL;
        for (;;) { /* fill; a line longer than the block makes the block grow */
            while (len < cap && !eof) {
                size_t want = cap - len > (1u << 30) ? (1u << 30) : cap - len;
                char err[160];
                ssize_t n = weft_logs_dec_read(dec, buf + len, want, err, sizeof err);
                if (n < 0) {
                    rc = logs_run_failf(r, WEFT_EXIT_USAGE, "%s: %s", in->name, err);
                    break;
                }
                if (n == 0) eof = true;
                len += (size_t)n;
            }
            if (rc) break;
            nl = len ? memrchr(buf, '\n', len) : NULL;
            if (nl || eof) break;
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                rc = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        if (rc) {
            free(buf);
            break;
        }
        if (eof && len && buf[len - 1] != '\n') {
            /* A stream's end is final: its last line is complete even without a newline (only
             * a regular file's snapshot may end inside a line still being written). */
            char *b2 = len == cap ? realloc(buf, cap + 1) : buf;
            if (!b2) {
                free(buf);
                rc = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
                break;
            }
            buf = b2;
            buf[len++] = '\n';
            added_nl = 1;
        }
        size_t cut = eof ? len : (size_t)(nl - buf) + 1;
        if (len > cut) {
            clen = len - cut;
            carry = malloc(clen);
            if (!carry) {
                free(buf);
                rc = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
                break;
            }
            memcpy(carry, buf + cut, clen);
        }
        if (first && (detect || in->fmt.needs_header)) {
            weft_logs_format_t asked = in->fmt;
            if (weft_logs_format_for_input(detect ? NULL : &asked, buf, cut, &in->fmt) == -ENOENT &&
                cut)
                fprintf(stderr,
                        "weft logs: %s: no known format in the first lines; using 'default'\n",
                        in->name);
            if (r->o->filter) in->fmt.filter = *r->o->filter;
            first = false;
        }
        consumed += cut;
        if (cut == 0) {
            free(buf);
            continue;
        }
        chunk_t *rec = new_rec(r, fi);
        if (!rec) {
            free(buf);
            rc = logs_run_failf(r, WEFT_EXIT_INTERNAL, "out of memory");
            break;
        }
        weft_logs_ident_add(ida, buf, cut - added_nl); /* before emit: it takes the block */
        rc = emit(r, rec, buf, cut, arg);
        /* The bar's fraction counts file bytes, as for mapped files: for a compressed file the
         * compressed bytes read so far against its size (its decoded size is unknown until the
         * end); a FIFO or standard input has no size. Its byte count and rate are decoded bytes
         * (stream_bytes, as --timing). relaxed: progress statistic only. */
        r->stream_bytes += cut - added_nl;
        uint64_t in_now = weft_logs_dec_in_bytes(dec);
        if (S_ISREG(in->st.st_mode)) {
            atomic_fetch_add_explicit(&r->done_bytes, in_now - in_seen, memory_order_relaxed);
            r->comp_seen += in_now - in_seen;
        }
        in_seen = in_now;
        logs_run_progress(r);
    }
    free(carry);
    weft_logs_dec_destroy(dec);
    in->ident = weft_logs_ident_done(ida);
    free(ida);
    (void)consumed;
    return rc;
}
