/* The growable buffer with a hard maximum (weft/buf.h). */
#include "core/alloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <weft/buf.h>

void weft_buf_init(weft_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
}

int weft_buf_reserve(weft_buf_t *b, size_t extra)
{
    if (extra > b->max - b->len) return -EMSGSIZE;
    size_t need = b->len + extra + 1; /* + NUL */
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    char *d = weft__realloc(b->data, cap);
    if (!d) return -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int weft_buf_append(weft_buf_t *b, const void *data, size_t len)
{
    int rc = weft_buf_reserve(b, len);
    if (rc) return rc;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int weft_buf_vprintf(weft_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return -EINVAL;
    int rc = weft_buf_reserve(b, (size_t)n);
    if (rc) return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int weft_buf_printf(weft_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = weft_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void weft_buf_reset(weft_buf_t *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

char *weft_buf_steal(weft_buf_t *b, size_t *len)
{
    char *d = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void weft_buf_free(weft_buf_t *b)
{
    weft__free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
