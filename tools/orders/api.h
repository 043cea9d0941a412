/* The HTTP API of `weft orders serve` (issue 9; docs/orders.md) on libmicrohttpd, in front of
 * the engine (engine.h). */
#ifndef WEFT_TOOLS_ORDERS_API_H
#define WEFT_TOOLS_ORDERS_API_H

#include <stddef.h>

#include "orders/engine.h"

typedef struct api api_t;

/* Listens on host:port (port 0: a free one) and serves the engine's API with `threads` polling
 * threads (0: 2). Writes "http://HOST:PORT" to url. Returns 0, -EADDRINUSE, -EINVAL or -ENOMEM
 * (err says why). Ownership: borrows `e`, which must outlive the server; free with api_stop.
 * Thread safety: any thread. */
int api_start(engine_t *e, const char *host, int port, int threads, api_t **out, char *url,
              size_t urlsz, char *err, size_t errsz);

/* Stops accepting connections, waits until every request handed to the engine has been answered,
 * then closes every connection and frees the server. NULL ignored. Thread safety: any thread
 * but the server's own. */
void api_stop(api_t *a);

#endif
