/* weft logs: stream reading and decompression by magic bytes (decomp.h).
 *
 * One reader owns a 128 KiB input buffer filled with read(2), so standard input, FIFOs and
 * process substitutions work like files, and the codec is recognised from the first bytes
 * without seeking. gzip (zlib) and bzip2 (libbz2) decode one member at a time: after a member
 * ends, the input must end or start another member of the same codec, as gzip(1) and bzip2(1)
 * accept concatenated members; xz (liblzma, LZMA_CONCATENATED) and zstd (libzstd) follow their
 * concatenated streams or frames themselves. Every way for compressed input to be incomplete or
 * wrong (it ends inside a member, its data does not decode, bytes follow the last member) is an
 * error naming the compressed byte offset; the messages are ours, not the libraries' internal
 * ones.
 */
#include "logs/decomp.h"

#include <bzlib.h>
#include <errno.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define INBUF (1u << 17)

struct weft_logs_dec {
    int fd;
    weft_logs_codec_t codec;
    size_t ipos, ilen;
    bool in_eof;
    uint64_t file_read; /* bytes read from fd; in[ilen] is at this offset */
    bool between;       /* a gzip/bzip2 member ended: the input must end or start another */
    bool done;          /* the end of a complete stream was reached */
    bool inited;
    size_t zlast; /* zstd: the last return of ZSTD_decompressStream (0: at a frame boundary) */
    z_stream z;
    lzma_stream x;
    bz_stream b;
    ZSTD_DStream *zs;
    unsigned char in[INBUF];
};

weft_logs_codec_t weft_logs_codec_sniff(const unsigned char *b, size_t n)
{
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return WEFT_LOGS_GZIP;
    if (n >= 6 && memcmp(b,
                         "\xfd"
                         "7zXZ\0",
                         6) == 0)
        return WEFT_LOGS_XZ;
    if (n >= 4 && memcmp(b, "BZh", 3) == 0 && b[3] >= '1' && b[3] <= '9') return WEFT_LOGS_BZIP2;
    if (n >= 4 && memcmp(b, "\x28\xb5\x2f\xfd", 4) == 0) return WEFT_LOGS_ZSTD;
    return WEFT_LOGS_PLAIN;
}

const char *weft_logs_codec_name(weft_logs_codec_t c)
{
    static const char *names[] = {"plain", "gzip", "xz", "bzip2", "zstd"};
    return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "plain";
}

/* Reads more input after the unread bytes (moved to the front). Returns 0 or -errno. */
static int fill(weft_logs_dec_t *d)
{
    if (d->in_eof) return 0;
    if (d->ipos) {
        memmove(d->in, d->in + d->ipos, d->ilen - d->ipos);
        d->ilen -= d->ipos;
        d->ipos = 0;
    }
    for (;;) {
        ssize_t n = read(d->fd, d->in + d->ilen, INBUF - d->ilen);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) d->in_eof = true;
        d->ilen += (size_t)n;
        d->file_read += (uint64_t)n;
        return 0;
    }
}

/* Makes at least `n` unread bytes available unless the input ends first. */
static int want(weft_logs_dec_t *d, size_t n)
{
    while (d->ilen - d->ipos < n && !d->in_eof) {
        int rc = fill(d);
        if (rc) return rc;
    }
    return 0;
}

static int start(weft_logs_dec_t *d)
{
    switch (d->codec) {
    case WEFT_LOGS_GZIP:
        if (inflateInit2(&d->z, 16 + MAX_WBITS) != Z_OK) return -ENOMEM;
        break;
    case WEFT_LOGS_XZ:
        if (lzma_stream_decoder(&d->x, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) return -ENOMEM;
        break;
    case WEFT_LOGS_BZIP2:
        if (BZ2_bzDecompressInit(&d->b, 0, 0) != BZ_OK) return -ENOMEM;
        break;
    case WEFT_LOGS_ZSTD:
        if (!(d->zs = ZSTD_createDStream())) return -ENOMEM;
        ZSTD_initDStream(d->zs);
        break;
    default:
        return 0;
    }
    d->inited = true;
    return 0;
}

static void stop(weft_logs_dec_t *d)
{
    if (!d->inited) return;
    switch (d->codec) {
    case WEFT_LOGS_GZIP:
        inflateEnd(&d->z);
        break;
    case WEFT_LOGS_XZ:
        lzma_end(&d->x);
        break;
    case WEFT_LOGS_BZIP2:
        BZ2_bzDecompressEnd(&d->b);
        break;
    case WEFT_LOGS_ZSTD:
        ZSTD_freeDStream(d->zs);
        d->zs = NULL;
        break;
    default:
        break;
    }
    d->inited = false;
}

int weft_logs_dec_create(int fd, weft_logs_dec_t **out)
{
    *out = NULL;
    weft_logs_dec_t *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->fd = fd;
    d->x = (lzma_stream)LZMA_STREAM_INIT;
    int rc = want(d, 6);
    if (!rc) {
        d->codec = weft_logs_codec_sniff(d->in, d->ilen);
        rc = start(d);
    }
    if (rc) {
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void weft_logs_dec_destroy(weft_logs_dec_t *d)
{
    if (!d) return;
    stop(d);
    free(d);
}

weft_logs_codec_t weft_logs_dec_codec(const weft_logs_dec_t *d)
{
    return d->codec;
}

uint64_t weft_logs_dec_in_bytes(const weft_logs_dec_t *d)
{
    return d->file_read - (d->ilen - d->ipos);
}

static ssize_t fail(weft_logs_dec_t *d, char *err, size_t errlen, const char *what)
{
    const char *name = weft_logs_codec_name(d->codec);
    if (strcmp(what, "truncated") == 0)
        snprintf(err, errlen, "truncated %s data: the input ends at compressed byte %llu", name,
                 (unsigned long long)d->file_read);
    else if (strcmp(what, "trailing") == 0)
        snprintf(err, errlen, "bytes that are not %s data after its end, at compressed byte %llu",
                 name, (unsigned long long)weft_logs_dec_in_bytes(d));
    else
        snprintf(err, errlen, "corrupt %s data near compressed byte %llu", name,
                 (unsigned long long)weft_logs_dec_in_bytes(d));
    return -1;
}

static ssize_t read_error(char *err, size_t errlen, int rc)
{
    snprintf(err, errlen, "%s", rc == -ENOMEM ? "out of memory" : strerror(-rc));
    return -1;
}

/* One decoder step over the available input into out[*got..len). Returns 1 when the member,
 * stream or frame ended, 0 to go on, -1 corrupt, -2 out of memory. */
static int step(weft_logs_dec_t *d, char *out, size_t len, size_t *got)
{
    size_t avail = d->ilen - d->ipos, room = len - *got;
    int r = 0;
    switch (d->codec) {
    case WEFT_LOGS_GZIP: {
        d->z.next_in = d->in + d->ipos;
        d->z.avail_in = (uInt)avail;
        d->z.next_out = (Bytef *)out + *got;
        d->z.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
        uInt before = d->z.avail_out;
        int ret = inflate(&d->z, Z_NO_FLUSH);
        d->ipos += avail - d->z.avail_in;
        *got += before - d->z.avail_out;
        r = ret == Z_STREAM_END                   ? 1
            : ret == Z_MEM_ERROR                  ? -2
            : (ret == Z_OK || ret == Z_BUF_ERROR) ? 0
                                                  : -1;
        break;
    }
    case WEFT_LOGS_XZ: {
        d->x.next_in = d->in + d->ipos;
        d->x.avail_in = avail;
        d->x.next_out = (uint8_t *)out + *got;
        d->x.avail_out = room;
        lzma_ret ret = lzma_code(&d->x, d->in_eof && !avail ? LZMA_FINISH : LZMA_RUN);
        d->ipos += avail - d->x.avail_in;
        *got += room - d->x.avail_out;
        r = ret == LZMA_STREAM_END                      ? 1
            : ret == LZMA_MEM_ERROR                     ? -2
            : (ret == LZMA_OK || ret == LZMA_BUF_ERROR) ? 0
                                                        : -1;
        break;
    }
    case WEFT_LOGS_BZIP2: {
        d->b.next_in = (char *)d->in + d->ipos;
        d->b.avail_in = (unsigned)avail;
        d->b.next_out = out + *got;
        d->b.avail_out = room > UINT32_MAX ? UINT32_MAX : (unsigned)room;
        unsigned before = d->b.avail_out;
        int ret = BZ2_bzDecompress(&d->b);
        d->ipos += avail - d->b.avail_in;
        *got += before - d->b.avail_out;
        r = ret == BZ_STREAM_END ? 1 : ret == BZ_MEM_ERROR ? -2 : ret == BZ_OK ? 0 : -1;
        break;
    }
    case WEFT_LOGS_ZSTD: {
        ZSTD_inBuffer in = {d->in + d->ipos, avail, 0};
        ZSTD_outBuffer o = {out + *got, room, 0};
        size_t ret = ZSTD_decompressStream(d->zs, &o, &in);
        d->ipos += in.pos;
        *got += o.pos;
        if (ZSTD_isError(ret))
            return ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation ? -2 : -1;
        d->zlast = ret;
        break;
    }
    default:
        break;
    }
    return r;
}

ssize_t weft_logs_dec_read(weft_logs_dec_t *d, char *buf, size_t len, char *err, size_t errlen)
{
    if (d->done || !len) return 0;
    if (d->codec == WEFT_LOGS_PLAIN) {
        if (d->ipos < d->ilen) {
            size_t n = d->ilen - d->ipos < len ? d->ilen - d->ipos : len;
            memcpy(buf, d->in + d->ipos, n);
            d->ipos += n;
            return (ssize_t)n;
        }
        for (;;) {
            ssize_t n = read(d->fd, buf, len);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return read_error(err, errlen, -errno);
            d->file_read += (uint64_t)n;
            if (n == 0) d->done = true;
            return n;
        }
    }
    size_t got = 0;
    while (got == 0) {
        int rc = 0;
        if (d->between) { /* the end, or the next member of the same codec */
            if ((rc = want(d, 6)) != 0) return read_error(err, errlen, rc);
            if (d->ipos == d->ilen) {
                d->done = true;
                return 0;
            }
            if (weft_logs_codec_sniff(d->in + d->ipos, d->ilen - d->ipos) != d->codec)
                return fail(d, err, errlen, "trailing");
            stop(d);
            if ((rc = start(d)) != 0) return read_error(err, errlen, rc);
            d->between = false;
        }
        if (d->ipos == d->ilen && (rc = fill(d)) != 0) return read_error(err, errlen, rc);
        bool at_end = d->ipos == d->ilen && d->in_eof;
        if (at_end && d->codec == WEFT_LOGS_ZSTD && d->zlast == 0) {
            d->done = true; /* every frame is complete */
            return 0;
        }
        uint64_t in0 = weft_logs_dec_in_bytes(d);
        int s = step(d, buf, len, &got);
        if (s == -2) return read_error(err, errlen, -ENOMEM);
        if (s == -1) return fail(d, err, errlen, "corrupt");
        if (s == 1) {
            if (d->codec == WEFT_LOGS_XZ) {
                d->done = true; /* LZMA_CONCATENATED: the whole input was checked */
                return (ssize_t)got;
            }
            d->between = true;
            continue;
        }
        if (at_end && got == 0 && weft_logs_dec_in_bytes(d) == in0) {
            /* no progress without more input: give lzma its second call, then stop */
            if (d->codec == WEFT_LOGS_XZ && step(d, buf, len, &got) == 1) {
                d->done = true;
                return (ssize_t)got;
            }
            if (got == 0) return fail(d, err, errlen, "truncated");
        }
    }
    return (ssize_t)got;
}
