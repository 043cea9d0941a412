/* Server-Sent Events on libmicrohttpd: the one SSE writer of weft's HTTP servers (`weft orders
 * serve`'s GET /events, `weft logs --serve`'s GET /events). A stream asks its source for the next
 * event every period, frames it ("id:", "retry:", "event:", one "data:" line per line of the
 * payload, a blank line) and sleeps on a tools_mhd_delay in between, so waiting streams hold no
 * thread.
 *
 *   tools_mhd_delay_create(&d);                     before the daemon starts (mhd-delay-int.h)
 *   in a handler:
 *     struct MHD_Response *r = tools_mhd_sse_response(conn, &opts);   (NULL: out of memory)
 *     MHD_queue_response(conn, 200, r); MHD_destroy_response(r);
 *   stopping: MHD_quiesce_daemon, tools_mhd_delay_stop (every stream ends), MHD_stop_daemon.
 *
 * The daemon needs MHD_ALLOW_SUSPEND_RESUME. Lifetime: the options are copied; `delay` and
 * `arg` are borrowed until the daemon is stopped (a stream may call `next` until then).
 */
#ifndef WEFT_TOOLS_COMMON_MHD_SSE_INT_H
#define WEFT_TOOLS_COMMON_MHD_SSE_INT_H

#include <stdint.h>
#include <weft/buf.h>

#include "common/mhd-delay-int.h"

struct MHD_Connection;
struct MHD_Response;

typedef struct tools_mhd_sse_opts {
    tools_mhd_delay_t *delay; /* paces the stream */
    uint64_t period_ns;       /* how often `next` is asked (after the first time, at once) */
    uint64_t keepalive_ns;    /* a comment line after this long without an event; 0: never */
    unsigned retry_ms;        /* the "retry:" field of each event; 0: none */
    const char *event;        /* the "event:" field (static string), or NULL: a "message" */
    /* Called on a libmicrohttpd thread, one call at a time per stream: appends the next event's
     * payload to `out` and sets *id (the stream's own, 0 at first; kept between calls), or
     * appends nothing for no event this period. Returns 0, or a negative errno to end the
     * stream with an error. */
    int (*next)(void *arg, uint64_t *id, weft_buf_t *out);
    void *arg;
} tools_mhd_sse_opts_t;

/* A response that streams events for `conn` (Content-Type text/event-stream, Cache-Control
 * no-cache). Returns NULL when out of memory. Ownership: returns a libmicrohttpd response (queue
 * it, then MHD_destroy_response); the stream's state is freed with it. Thread safety: a
 * libmicrohttpd handler. */
struct MHD_Response *tools_mhd_sse_response(struct MHD_Connection *conn,
                                            const tools_mhd_sse_opts_t *o);

#endif
