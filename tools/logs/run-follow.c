/* weft logs: live mode (run.h, weft_logs_follow): counting inputs as they grow, on weft's loop.
 *
 * DESIGN
 * One thread, the caller's, runs a weft loop (libuv) on which everything happens: a timer every
 * tick_ms reads what was appended to each followed file, checks whether its name still names
 * the same file (rotation) and calls the tick callback; an fs event (inotify) on each file's
 * directory reads sooner; standard input, when it is a pipe or a terminal, is a libuv pipe read
 * as data arrives; SIGINT and SIGTERM are libuv signal handles that stop the loop. A live log
 * grows by kilobytes to megabytes a second, which one thread parses a thousand times over; the
 * content a file already has is read by the same code at one worker's rate (about 1 GB/s here).
 * Exactness: only whole lines are analysed; the bytes after the last newline wait in `carry`
 * until theirs arrives, or until they prove final (the end of standard input, the rotation or
 * truncation of their file: they are then a last line without a newline, as a batch run counts
 * it). A file is read from `off`, which advances by what was read, so each byte is analysed
 * once; a rotated file is read to its end before its successor is opened; a truncated one
 * (copytruncate) is read again from its start. The statistics are sums, so they equal a batch run
 * over the same content (the rotated files, then the current one). What a copytruncate writer
 * appends between the last read and the truncation is lost, and a truncation followed by more
 * writing than the file held before it is not seen as one: copytruncate's own race, as in
 * `tail -F`; rename rotation has neither.
 */
#include "logs/run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <weft/err.h>
#include <weft/loop.h>
#include <weft/sys.h>

#include "common/cli-int.h"
#include "logs/decomp.h"

#define READ_BUF (1u << 20)

typedef struct follow follow_t;

typedef struct follower {
    follow_t *fw;
    const char *name; /* as given; "(stdin)" for standard input */
    bool is_stdin;
    int fd;           /* the file being read (-1 for a pipe read by libuv) */
    bool pipe, ended; /* standard input read by libuv; it reached its end */
    dev_t dev;
    ino_t ino;
    uint64_t off; /* the next byte of the file to read */
    char *carry;  /* bytes after the last newline */
    size_t clen, ccap;
    weft_logs_format_t fmt;
    bool have_fmt;
    weft_logs_chunkres_t res; /* lines and the first malformed ones, over the whole input */
    weft_logs_identacc_t *ida;
    uv_fs_event_t ev;
    uv_pipe_t pp;
    bool ev_on, pp_on;
    char *dir, *base; /* the directory watched and the file's name in it */
} follower_t;

struct follow {
    const weft_logs_follow_opts_t *o;
    weft_loop_t *loop;
    weft_logs_part_t *part;
    follower_t *f;
    size_t n;
    char *buf; /* READ_BUF bytes for reading files */
    uv_signal_t sig[2];
    bool sig_on;
    uint64_t last_lines;
    bool ticked;
    bool fixed;
    weft_logs_format_t fixed_fmt;
    int code;
    char *err;
    size_t errlen;
};

static void failf(follow_t *fw, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failf(follow_t *fw, int code, const char *fmt, ...)
{
    if (!fw->code) {
        fw->code = code;
        va_list ap;
        va_start(ap, fmt);
        if (fw->err && fw->errlen) vsnprintf(fw->err, fw->errlen, fmt, ap);
        va_end(ap);
    }
    weft_loop_stop(fw->loop);
}

/* Analyses whole lines [data, data + len) of input `f`. */
static void analyze(follower_t *f, const char *data, size_t len)
{
    follow_t *fw = f->fw;
    if (!len) return;
    if (!f->have_fmt) {
        if (fw->fixed) {
            f->fmt = fw->fixed_fmt;
        } else if (weft_logs_format_detect(data, len, &f->fmt) == -ENOENT) {
            fprintf(stderr, "weft logs: %s: no known format in the first lines; using 'default'\n",
                    f->name);
        }
        if (fw->o->filter) f->fmt.filter = *fw->o->filter;
        f->have_fmt = true;
    }
    weft_logs_ident_add(f->ida, data, len);
    weft_logs_analyze(&f->fmt, data, len, fw->part, &f->res);
    if (fw->part->oom) failf(fw, WEFT_EXIT_INTERNAL, "out of memory");
}

/* Appends to the bytes waiting for their newline. Returns false when out of memory. */
static bool carry_append(follower_t *f, const char *data, size_t n)
{
    if (f->clen + n > f->ccap) {
        size_t cap = f->ccap ? f->ccap : 4096;
        while (cap < f->clen + n) cap *= 2;
        char *c = realloc(f->carry, cap);
        if (!c) {
            failf(f->fw, WEFT_EXIT_INTERNAL, "out of memory");
            return false;
        }
        f->carry = c;
        f->ccap = cap;
    }
    if (n) memcpy(f->carry + f->clen, data, n);
    f->clen += n;
    return true;
}

/* Takes `n` more bytes of input `f`: analyses the lines they complete, keeps the rest. */
static void feed(follower_t *f, const char *data, size_t n)
{
    const char *nl = n ? memrchr(data, '\n', n) : NULL;
    if (!nl) { /* no line ends here: all of it waits */
        carry_append(f, data, n);
        return;
    }
    size_t head = (size_t)(nl - data) + 1; /* whole lines end here */
    if (f->clen) {                         /* the waiting line ends in this piece */
        size_t k = (size_t)((const char *)memchr(data, '\n', head) - data) + 1;
        if (!carry_append(f, data, k)) return;
        size_t len = f->clen;
        f->clen = 0;
        analyze(f, f->carry, len);
        data += k;
        n -= k;
        head -= k;
    }
    analyze(f, data, head);
    carry_append(f, data + head, n - head);
}

/* The waiting bytes are a final line without a newline (its input ended, rotated or shrank). */
static void flush(follower_t *f)
{
    if (!f->clen) return;
    size_t n = f->clen;
    f->clen = 0;
    analyze(f, f->carry, n);
}

/* Reads file `f` from f->off to its end. */
static void read_file(follower_t *f)
{
    follow_t *fw = f->fw;
    while (!fw->code) {
        ssize_t n = pread(f->fd, fw->buf, READ_BUF, (off_t)f->off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            failf(fw, WEFT_EXIT_USAGE, "cannot read %s: %s", f->name, strerror(errno));
            return;
        }
        if (n == 0) return;
        f->off += (uint64_t)n;
        feed(f, fw->buf, (size_t)n);
    }
}

/* Opens the file `f` names now; returns 0 or -errno. Compressed files cannot be followed. */
static int open_file(follower_t *f)
{
    int fd = open(f->name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    unsigned char magic[6];
    ssize_t m = pread(fd, magic, sizeof magic, 0);
    if (fstat(fd, &st) != 0 || m < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode) || weft_logs_codec_sniff(magic, (size_t)m) != WEFT_LOGS_PLAIN) {
        close(fd);
        return S_ISREG(st.st_mode) ? -EPROTONOSUPPORT : -EINVAL;
    }
    if (f->fd >= 0) close(f->fd);
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->off = 0;
    return 0;
}

/* Reads what was appended to file `f`, and follows a rotation or truncation. */
static void check(follower_t *f)
{
    follow_t *fw = f->fw;
    if (f->pipe || f->ended || fw->code) return;
    struct stat st;
    if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size < f->off) { /* copytruncate */
        flush(f);
        f->off = 0;
    }
    read_file(f);
    if (f->is_stdin || fw->code) return;
    struct stat now;
    if (stat(f->name, &now) != 0 || (now.st_dev == f->dev && now.st_ino == f->ino))
        return;   /* the same file, or none yet after a rename */
    read_file(f); /* the rest of the rotated file, then its successor */
    flush(f);
    int rc = open_file(f);
    if (rc == -ENOENT) return; /* gone again: the next check retries */
    if (rc) {
        failf(fw, WEFT_EXIT_USAGE, "cannot follow %s: %s", f->name,
              rc == -EPROTONOSUPPORT ? "it is compressed" : strerror(-rc));
        return;
    }
    read_file(f);
}

static bool all_ended(const follow_t *fw)
{
    for (size_t i = 0; i < fw->n; i++)
        if (!fw->f[i].ended) return false;
    return true;
}

static void on_timer(weft_loop_timer_t *t, void *arg)
{
    (void)t;
    follow_t *fw = arg;
    for (size_t i = 0; i < fw->n && !fw->code; i++) check(&fw->f[i]);
    if (fw->code) return;
    bool changed = !fw->ticked || fw->part->lines != fw->last_lines;
    fw->ticked = true;
    fw->last_lines = fw->part->lines;
    if (fw->o->tick) fw->o->tick(fw->o->arg, fw->part, changed);
}

static void on_fs_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)events;
    follower_t *f = h->data;
    if (status == 0 && (!name || strcmp(name, f->base) == 0)) check(f);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *b)
{
    (void)want;
    follower_t *f = h->data;
    b->base = f->fw->buf;
    b->len = READ_BUF;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    follower_t *f = s->data;
    if (n > 0) {
        feed(f, b->base, (size_t)n);
        return;
    }
    if (n == 0) return;
    uv_read_stop(s);
    if (n != UV_EOF) {
        failf(f->fw, WEFT_EXIT_USAGE, "cannot read %s: %s", f->name, uv_strerror((int)n));
        return;
    }
    flush(f);
    f->ended = true;
    if (all_ended(f->fw)) weft_loop_stop(f->fw->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    follow_t *fw = h->data;
    weft_loop_stop(fw->loop);
}

/* Opens input `i`: a file (read by checks) or standard input (a file, or a pipe for libuv). */
static int open_input(follow_t *fw, size_t i, uv_loop_t *uv)
{
    follower_t *f = &fw->f[i];
    f->fw = fw;
    f->fd = -1;
    f->name = fw->o->files[i];
    f->ida = calloc(1, sizeof *f->ida);
    if (!f->ida) {
        failf(fw, WEFT_EXIT_INTERNAL, "out of memory");
        return fw->code;
    }
    if (strcmp(f->name, "-") == 0) {
        f->name = "(stdin)";
        f->is_stdin = true;
        struct stat st;
        if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
            f->fd = dup(STDIN_FILENO);
            if (f->fd < 0)
                failf(fw, WEFT_EXIT_USAGE, "cannot read standard input: %s", strerror(errno));
            return fw->code;
        }
        int fd = dup(STDIN_FILENO);
        int rc = fd < 0 ? -errno : uv_pipe_init(uv, &f->pp, 0);
        if (!rc) {
            f->pp_on = true;
            f->pp.data = f;
            rc = uv_pipe_open(&f->pp, fd);
            if (!rc) fd = -1; /* the pipe handle owns it */
            if (!rc) rc = uv_read_start((uv_stream_t *)&f->pp, on_alloc, on_read);
        }
        if (fd >= 0) close(fd);
        if (rc)
            failf(fw, WEFT_EXIT_USAGE, "cannot read standard input: %s",
                  rc > 0 ? strerror(rc) : uv_strerror(rc));
        f->pipe = true;
        return fw->code;
    }
    f->ended = false;
    int rc = open_file(f);
    if (rc) {
        failf(fw, WEFT_EXIT_USAGE, "cannot follow %s: %s", f->name,
              rc == -EPROTONOSUPPORT ? "it is compressed (only plain files can be followed)"
              : rc == -EINVAL        ? "not a regular file"
                                     : strerror(-rc));
        return fw->code;
    }
    /* Watch the directory: it reports the file's changes and its replacement by a new one. */
    const char *slash = strrchr(f->name, '/');
    f->dir =
        slash ? strndup(f->name, slash == f->name ? 1 : (size_t)(slash - f->name)) : strdup(".");
    f->base = strdup(slash ? slash + 1 : f->name);
    if (!f->dir || !f->base) {
        failf(fw, WEFT_EXIT_INTERNAL, "out of memory");
        return fw->code;
    }
    if (uv_fs_event_init(uv, &f->ev) == 0) {
        f->ev_on = true;
        f->ev.data = f;
        uv_fs_event_start(&f->ev, on_fs_event, f->dir, 0); /* without it, the timer still reads */
    }
    return 0;
}

int weft_logs_follow(const weft_logs_follow_opts_t *o, weft_logs_run_result_t *res, char *err,
                     size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (err && errlen) err[0] = '\0';
    follow_t fw = {.o = o, .n = o->nfiles, .err = err, .errlen = errlen};
    if (o->format && strcmp(o->format, "auto") != 0) {
        char ferr[160];
        if (weft_logs_format_compile(o->format, &fw.fixed_fmt, ferr, sizeof ferr) != 0) {
            snprintf(err, errlen, "%s", ferr);
            return WEFT_EXIT_USAGE;
        }
        fw.fixed = true;
    }
    int rc = weft_loop_create(&fw.loop, NULL);
    if (rc) {
        snprintf(err, errlen, "cannot start the loop: %s", weft_strerror(rc));
        return WEFT_EXIT_INTERNAL;
    }
    uv_loop_t *uv = weft_loop_uv(fw.loop);
    fw.part = weft_logs_part_create();
    fw.f = calloc(fw.n ? fw.n : 1, sizeof *fw.f);
    fw.buf = malloc(READ_BUF);
    weft_loop_timer_t *timer = NULL;
    if (!fw.part || !fw.f || !fw.buf) failf(&fw, WEFT_EXIT_INTERNAL, "out of memory");
    for (int s = 0; s < 2 && !fw.code; s++) {
        uv_signal_init(uv, &fw.sig[s]);
        fw.sig[s].data = &fw;
        uv_signal_start(&fw.sig[s], on_signal, s ? SIGTERM : SIGINT);
    }
    fw.sig_on = !fw.code;
    for (size_t i = 0; i < fw.n && !fw.code; i++) open_input(&fw, i, uv);
    uint64_t t0 = weft_now_ns();
    for (size_t i = 0; i < fw.n && !fw.code; i++) check(&fw.f[i]); /* what the files hold now */
    if (!fw.code && weft_loop_timer_create(fw.loop, on_timer, &fw, &timer) == 0) {
        uint64_t ms = o->tick_ms ? o->tick_ms : 1000;
        weft_loop_timer_start(timer, ms, ms);
    } else if (!fw.code) {
        failf(&fw, WEFT_EXIT_INTERNAL, "cannot start a timer");
    }
    if (!fw.code && !all_ended(&fw)) weft_loop_run(fw.loop);
    /* Stopped by a signal, by the end of every input, or by an error: read what the files have
     * now (whole lines only: a line still being written is not final). */
    for (size_t i = 0; i < fw.n && !fw.code; i++) check(&fw.f[i]);
    res->scan_ns = weft_now_ns() - t0;
    weft_loop_timer_destroy(timer);
    for (int s = 0; s < 2 && fw.sig_on; s++) uv_close((uv_handle_t *)&fw.sig[s], NULL);
    for (size_t i = 0; i < fw.n; i++) {
        follower_t *f = &fw.f[i];
        if (f->ev_on) uv_close((uv_handle_t *)&f->ev, NULL);
        if (f->pp_on) uv_close((uv_handle_t *)&f->pp, NULL);
    }
    weft_loop_destroy(fw.loop); /* runs the close callbacks */
    if (!fw.code && !(res->idents = malloc(fw.n * sizeof *res->idents)))
        failf(&fw, WEFT_EXIT_INTERNAL, "out of memory");
    size_t off = 0;
    for (size_t i = 0; i < fw.n; i++) {
        follower_t *f = &fw.f[i];
        if (!fw.code) {
            res->idents[i] = weft_logs_ident_done(f->ida);
            res->input_bytes += f->ida->total;
            for (uint32_t k = 0; k < f->res.nbad && res->nbad < WEFT_LOGS_BAD_KEEP; k++) {
                weft_logs_badline_t *b = &res->bad[res->nbad++];
                b->file = i;
                b->line = f->res.bad[k].line;
                b->len = f->res.bad[k].len;
                memcpy(b->text, f->res.bad[k].text, b->len);
            }
            if (off + 40 < sizeof res->format_names)
                off += (size_t)snprintf(res->format_names + off, sizeof res->format_names - off,
                                        "%s%s", i ? "," : "",
                                        f->have_fmt ? f->fmt.name
                                        : fw.fixed  ? fw.fixed_fmt.name
                                                    : "auto");
        }
        if (f->fd >= 0) close(f->fd);
        free(f->carry);
        free(f->ida);
        free(f->dir);
        free(f->base);
    }
    free(fw.f);
    free(fw.buf);
    if (fw.code) {
        weft_logs_part_destroy(fw.part);
        free(res->idents);
        res->idents = NULL;
        return fw.code;
    }
    res->part = fw.part;
    return 0;
}
