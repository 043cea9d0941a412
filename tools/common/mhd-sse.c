/* Server-Sent Events on libmicrohttpd (mhd-sse-int.h).
 *
 * DESIGN
 * A stream is a libmicrohttpd content reader: when it has sent its current event it asks `next`
 * for another once the period is due, or suspends its connection on the delay's timer thread
 * until then (a suspended connection costs no thread and is never freed by libmicrohttpd, so
 * the stream's state stays valid). A period without an event sends nothing, or a comment line
 * once keepalive_ns have passed, so a proxy keeps the connection and a gone client is noticed.
 * When the delay is stopping, the sleep fails and the stream ends. The state is freed by
 * libmicrohttpd with the response (sse_free).
 */
#include "common/mhd-sse-int.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <weft/sys.h>

typedef struct sse {
    tools_mhd_sse_opts_t o;
    struct MHD_Connection *conn;
    tools_mhd_wait_t wait;
    uint64_t id, next_ns, last_ns;
    weft_buf_t data, ev; /* the payload from `next`; the framed bytes being sent */
    size_t off;
} sse_t;

/* Frames s->data as one event into s->ev. Returns 0 or -ENOMEM. */
static int frame(sse_t *s)
{
    int rc = weft_buf_printf(&s->ev, "id: %llu\n", (unsigned long long)s->id);
    if (s->o.retry_ms) rc |= weft_buf_printf(&s->ev, "retry: %u\n", s->o.retry_ms);
    if (s->o.event) rc |= weft_buf_printf(&s->ev, "event: %s\n", s->o.event);
    const char *p = s->data.data, *end = p + s->data.len;
    while (!rc && p < end) { /* one data: line per line; a final newline ends the last one */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        rc |= weft_buf_append(&s->ev, "data: ", 6) | weft_buf_append(&s->ev, p, n) |
              weft_buf_append(&s->ev, "\n", 1);
        p += n + (nl != NULL);
    }
    return rc ? rc : weft_buf_append(&s->ev, "\n", 1);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_t *s = cls;
    while (s->off == s->ev.len) {
        uint64_t now = weft_now_ns();
        if (now < s->next_ns) {
            if (!tools_mhd_delay_sleep(s->o.delay, &s->wait, s->conn, s->next_ns))
                return MHD_CONTENT_READER_END_OF_STREAM; /* stopping */
            return 0;                                    /* called again once resumed */
        }
        weft_buf_reset(&s->ev);
        weft_buf_reset(&s->data);
        s->off = 0;
        s->next_ns = now + s->o.period_ns;
        if (s->o.next(s->o.arg, &s->id, &s->data) < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->data.len) {
            if (frame(s) < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
            s->last_ns = now;
        } else if (s->o.keepalive_ns && now - s->last_ns >= s->o.keepalive_ns) {
            if (weft_buf_append(&s->ev, ":\n\n", 3) < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
            s->last_ns = now;
        }
    }
    size_t n = s->ev.len - s->off < max ? s->ev.len - s->off : max;
    memcpy(buf, s->ev.data + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    sse_t *s = cls;
    weft_buf_free(&s->data);
    weft_buf_free(&s->ev);
    free(s);
}

struct MHD_Response *tools_mhd_sse_response(struct MHD_Connection *conn,
                                            const tools_mhd_sse_opts_t *o)
{
    sse_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->o = *o;
    s->conn = conn;
    s->last_ns = weft_now_ns();
    weft_buf_init(&s->data, 0);
    weft_buf_init(&s->ev, 0);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
    if (!resp) {
        sse_free(s);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return resp;
}
