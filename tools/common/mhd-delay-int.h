/* Answers later without a thread per waiting request: a libmicrohttpd connection is suspended and
 * resumed at its due time by one timer thread. The one copy of this for every weft HTTP server
 * on libmicrohttpd: the fixture (delays, drips) and the order engine's payment mock (latency,
 * held timeouts).
 *
 *   tools_mhd_delay_create(&d);    before the daemon starts
 *   in a handler or content reader (the only places libmicrohttpd allows a suspend):
 *     if (tools_mhd_delay_sleep(d, &req->wait, conn, due_ns)) return MHD_YES;  (called again)
 *     otherwise answer now (the delay is stopping)
 *   tools_mhd_delay_stop(d);       after MHD_quiesce_daemon, before MHD_stop_daemon (which
 *   MHD_stop_daemon(daemon);       refuses suspended connections)
 *   tools_mhd_delay_destroy(d);
 *
 * Lifetime: a tools_mhd_wait_t lives in the caller's request record; it is in use from a
 * successful sleep until its connection is resumed (libmicrohttpd never frees a suspended
 * connection, so the record lives that long too).
 */
#ifndef WEFT_TOOLS_COMMON_MHD_DELAY_INT_H
#define WEFT_TOOLS_COMMON_MHD_DELAY_INT_H

#include <stdbool.h>
#include <stdint.h>

struct MHD_Connection;
typedef struct tools_mhd_delay tools_mhd_delay_t;

typedef struct tools_mhd_wait {
    struct MHD_Connection *conn; /* private */
    uint64_t due_ns;             /* private */
} tools_mhd_wait_t;

/* Starts the timer thread. Returns 0, -ENOMEM or another negative errno (*out = NULL then).
 * Ownership: returns owned; free with tools_mhd_delay_destroy. Thread safety: any thread. */
int tools_mhd_delay_create(tools_mhd_delay_t **out);

/* Suspends `conn` and resumes it once weft_now_ns() >= due_ns; libmicrohttpd then calls the
 * handler (or content reader) again. Returns false, with the connection not suspended, once the
 * delay is stopped or when out of memory: answer at once then. Ownership: borrows `w` until the
 * connection is resumed. Thread safety: a libmicrohttpd handler or content reader only. */
bool tools_mhd_delay_sleep(tools_mhd_delay_t *d, tools_mhd_wait_t *w, struct MHD_Connection *conn,
                           uint64_t due_ns);

/* Stops: no more sleeps, the timer thread joined, every waiting connection resumed now. Call
 * after MHD_quiesce_daemon and before MHD_stop_daemon. Thread safety: any thread but a handler. */
void tools_mhd_delay_stop(tools_mhd_delay_t *d);

/* Frees a stopped delay (stops it first if needed); call after MHD_stop_daemon, since handlers
 * may still call tools_mhd_delay_sleep until then. NULL is ignored. Ownership: takes `d`. */
void tools_mhd_delay_destroy(tools_mhd_delay_t *d);

#endif
