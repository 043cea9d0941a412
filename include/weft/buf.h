/* weft/buf.h - a growable byte buffer with a hard maximum size.
 *
 * The one growable buffer every module and tool uses: HTTP bodies, serialized statistics,
 * process-pool results. It refuses to grow past `max` (-EMSGSIZE) so that untrusted input cannot
 * exhaust memory. The data is always NUL-terminated (not counted in len) for convenience.
 */
#ifndef WEFT_BUF_H
#define WEFT_BUF_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_buf {
    char *data; /* read-only: NULL until the first append */
    size_t len; /* read-only */
    size_t cap; /* private */
    size_t max; /* public: the hard limit in bytes; 0 means SIZE_MAX / 2 */
} weft_buf_t;

/* Initialises an empty buffer limited to `max` bytes. Ownership: borrows `b`. */
void weft_buf_init(weft_buf_t *b, size_t max);

/* Ensures room for `extra` more bytes. Returns 0, -EMSGSIZE (over max) or -ENOMEM. */
int weft_buf_reserve(weft_buf_t *b, size_t extra);

/* Appends `len` bytes. Returns 0, -EMSGSIZE or -ENOMEM; the buffer is unchanged on failure. */
int weft_buf_append(weft_buf_t *b, const void *data, size_t len);

/* Appends printf-style formatted text. Returns 0, -EMSGSIZE or -ENOMEM. */
int weft_buf_printf(weft_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int weft_buf_vprintf(weft_buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Empties the buffer, keeping its memory. */
void weft_buf_reset(weft_buf_t *b);

/* Returns the data and resets the buffer to empty; the caller owns the result (free() it, or with
 * the allocator given to weft_replace_allocator). May return NULL for an empty buffer. */
char *weft_buf_steal(weft_buf_t *b, size_t *len);

/* Frees the memory. The buffer may be reused after weft_buf_init. */
void weft_buf_free(weft_buf_t *b);

/* Thread safety of every function above: a buffer is used by one thread at a time. */

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BUF_H */
