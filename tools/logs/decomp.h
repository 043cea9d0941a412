/* weft logs: reading a stream (standard input, a FIFO, a compressed file), decompressing it
 * when its first bytes are the magic of gzip, xz, bzip2 or zstd. Internal to tools/logs.
 *
 * A stream that stops inside compressed data (a truncated file), holds data that does not
 * decode, or has bytes after its last compressed member that start no new member, is an error
 * that names the compressed byte offset: incomplete input is never passed off as complete.
 * Thread safety: a reader is used by one thread at a time.
 */
#ifndef WEFT_TOOLS_LOGS_DECOMP_H
#define WEFT_TOOLS_LOGS_DECOMP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum weft_logs_codec {
    WEFT_LOGS_PLAIN,
    WEFT_LOGS_GZIP,
    WEFT_LOGS_XZ,
    WEFT_LOGS_BZIP2,
    WEFT_LOGS_ZSTD
} weft_logs_codec_t;

/* The codec whose magic bytes start `b` (WEFT_LOGS_PLAIN for none). */
weft_logs_codec_t weft_logs_codec_sniff(const unsigned char *b, size_t n);

/* "gzip", "xz", "bzip2", "zstd" or "plain". */
const char *weft_logs_codec_name(weft_logs_codec_t c);

typedef struct weft_logs_dec weft_logs_dec_t;

/* Starts reading `fd` (borrowed; the caller closes it after weft_logs_dec_destroy): reads its
 * first bytes and recognises the codec. Returns 0, -ENOMEM or -errno of the read (then *out is
 * NULL). Ownership: returns owned; free with weft_logs_dec_destroy(). */
int weft_logs_dec_create(int fd, weft_logs_dec_t **out);
void weft_logs_dec_destroy(weft_logs_dec_t *d);

weft_logs_codec_t weft_logs_dec_codec(const weft_logs_dec_t *d);

/* Reads up to `len` decoded bytes into `buf`. Returns the count, 0 at the end of a complete
 * stream, or -1 with the problem written to `err` (a sentence without the file name, e.g.
 * "truncated gzip data: the input ends at compressed byte 4096"). */
ssize_t weft_logs_dec_read(weft_logs_dec_t *d, char *buf, size_t len, char *err, size_t errlen);

/* Compressed bytes consumed so far (equal to the decoded bytes for plain input). */
uint64_t weft_logs_dec_in_bytes(const weft_logs_dec_t *d);

#endif
