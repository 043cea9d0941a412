/* The order engine seen from outside (issue 10): GET /metrics in the Prometheus text format 0.0.4
 * and the GET /events payload (one Server-Sent Event per second) for the dashboard (GET /).
 * Both read the same snapshot as GET /stats (stats_view) and the engine's gauges, so the numbers
 * on the dashboard, in /metrics and in /stats agree.
 */
#ifndef WEFT_TOOLS_ORDERS_METRICS_H
#define WEFT_TOOLS_ORDERS_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>

#include "orders/engine.h"

/* The Content-Type of metrics_prometheus' output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends the Prometheus exposition of `e` to `out`. Returns 0 or -ENOMEM. Ownership: borrows.
 * Thread safety: any thread. */
int metrics_prometheus(engine_t *e, weft_buf_t *out);

#define METRICS_EVENT_MAX 2048 /* bytes per /events event, blank line included */

/* Appends the payload of one SSE event (a JSON object on one line, at most 2 KiB once framed by
 * tools/common/mhd-sse) describing `e` now. Returns 0 or -ENOMEM. Ownership: borrows. Thread
 * safety: any thread. */
int metrics_event(engine_t *e, weft_buf_t *out);

/* The dashboard's files, built into the binary (cmake/embed.cmake): "/" (dashboard.html),
 * "/dashboard.js", "/uPlot.iife.min.js", "/uPlot.min.css" (third_party/uplot). Returns the bytes
 * (static memory) and sets *len and *ctype, or returns NULL for any other path. Thread safety:
 * any thread. */
const char *metrics_asset(const char *path, size_t *len, const char **ctype);

#endif
