/* weft logs: `--serve [HOST:]PORT`, the live dashboard over HTTP (serve.c). */
#ifndef WEFT_TOOLS_LOGS_SERVE_H
#define WEFT_TOOLS_LOGS_SERVE_H

#include <stddef.h>

#include "logs/report.h"

typedef struct weft_logs_server weft_logs_server_t;

/* Parses "[HOST:]PORT" (HOST an IPv4 address or "localhost"; default 127.0.0.1; PORT 0..65535,
 * 0: a free one) into `host` (hostsz bytes) and *port. Returns 0 or -EINVAL. Thread safety: any
 * thread. */
int weft_logs_serve_parse(const char *spec, char *host, size_t hostsz, int *port);

/* Listens on host:port and serves, from a thread of its own, GET / (the dashboard around the
 * last published report) and GET /events (Server-Sent Events: "event: report", the report's
 * JSON, each second when it changed since the stream's last event). Writes
 * "http://HOST:PORT/" (the port bound) to `url`. Returns 0, -EADDRINUSE, -EACCES,
 * -EADDRNOTAVAIL, -ENOMEM or another negative errno, with `err` saying why (nothing is left
 * running then). Ownership: copies `meta`'s strings; free with weft_logs_serve_stop. Thread
 * safety: any thread. */
int weft_logs_serve_start(const char *host, int port, const weft_logs_meta_t *meta,
                          weft_logs_server_t **out, char *url, size_t urlsz, char *err,
                          size_t errsz);

/* Makes `len` bytes of report JSON (weft_logs_write_json's output) the current report. Returns
 * 0 or -ENOMEM (the previous report stays). Ownership: borrows `json` for the call only (it is
 * copied). Thread safety: any thread but the server's; one publisher at a time. */
int weft_logs_serve_publish(weft_logs_server_t *s, const char *json, size_t len);

/* Stops listening, ends every open stream, closes every connection and frees the server. NULL
 * is ignored. Thread safety: any thread but the server's. */
void weft_logs_serve_stop(weft_logs_server_t *s);

#endif
