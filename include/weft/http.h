/* weft/http.h - an HTTP client on libcurl: transfers on an event loop (weft/loop.h), hundreds
 * at once on the loop thread (libcurl's multi_socket interface), and a blocking session for one
 * thread.
 *
 * weft_http_start() runs a transfer on the loop and calls back on the loop thread;
 * weft_http_fetch() starts one from any thread and returns a future; weft_http_session_perform()
 * runs one blocking transfer on the calling thread. All configure libcurl identically (timeouts,
 * redirects, compression, body cap, connection reuse) and fill the same weft_http_resp_t, so they
 * are directly comparable.
 *
 * Lifetime: the completion callback (or, for weft_http_fetch, the future turning DONE) is the
 * one event that hands back what a transfer borrowed; see docs/lifetime.md.
 */
#ifndef WEFT_HTTP_H
#define WEFT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>
#include <weft/future.h>
#include <weft/loop.h>

#ifdef __cplusplus
#include <atomic>
/* The type of weft_http_opts_t.cancel: a C11 atomic_bool, seen from C++. */
typedef std::atomic<bool> weft_atomic_bool_t;
extern "C" {
#else
#include <stdatomic.h>
/* The type of weft_http_opts_t.cancel: a C11 atomic_bool. */
typedef atomic_bool weft_atomic_bool_t;
#endif

/* Times of a transfer in microseconds since it started, as libcurl measures them (cumulative:
 * connect includes dns, and so on; 0 when a phase did not happen, e.g. a reused connection has
 * no dns or connect time). With redirects, the times add up over every hop. */
typedef struct weft_http_timings {
    uint64_t dns_us;        /* name resolved (CURLINFO_NAMELOOKUP_TIME_T) */
    uint64_t connect_us;    /* TCP connected (CURLINFO_CONNECT_TIME_T) */
    uint64_t tls_us;        /* TLS handshake done (CURLINFO_APPCONNECT_TIME_T), 0 for http */
    uint64_t first_byte_us; /* first response byte (CURLINFO_STARTTRANSFER_TIME_T) */
    uint64_t total_us;      /* all done (CURLINFO_TOTAL_TIME_T) */
    uint64_t redirect_us;   /* spent on redirects before the final hop (CURLINFO_REDIRECT_TIME_T) */
} weft_http_timings_t;

/* The result of one transfer. Fields marked "owned" are freed by weft_http_resp_free(); a
 * callback may take one by copying the pointer and setting the field to NULL. */
typedef struct weft_http_resp {
    int error;          /* 0 if a response arrived (whatever its status); else -ETIMEDOUT,
                           -ECONNREFUSED, -ECONNRESET, -EMSGSIZE (over max_body), -ECANCELED,
                           -EINVAL (bad URL), -EPROTO, WEFT_EDNS, WEFT_ESLOW, WEFT_EREDIRECTS,
                           WEFT_ETLS, or what on_data returned */
    int curl_code;      /* the CURLcode, for detail; 0 on success */
    char errmsg[256];   /* libcurl's message for the failure, "" if none */
    long status;        /* HTTP status of the final response, 0 if none arrived */
    long redirects;     /* redirects followed */
    int http_version;   /* of the final response: 10, 11, 20 (HTTP/2), 30; 0 if none */
    char *final_url;    /* owned: the URL of the final response */
    char *content_type; /* owned: Content-Type of the final response, or NULL */
    char *retry_after;  /* owned: Retry-After of the final response (raw value), or NULL */
    char *location;     /* owned: the absolute redirect target of a 3xx not followed
                           (max_redirects < 0), or NULL */
    uint64_t bytes;     /* body bytes received, after content decoding */
    bool stopped;       /* on_data ended the transfer early (error stays 0) */
    weft_buf_t body;    /* the body, if opts.keep_body */
    weft_http_timings_t t;
} weft_http_resp_t;

/* Frees the owned fields of `r` (not `r` itself) and zeroes it. Thread safety: any thread. */
void weft_http_resp_free(weft_http_resp_t *r);

/* Called with each piece of the body as it arrives, on the thread doing the transfer; `resp`
 * already holds status and content_type. Return 0 to continue, 1 to end the transfer early
 * (resp->stopped, error 0; the connection is closed), or a negative error to fail it with that
 * error. It must not start or cancel transfers. */
typedef int (*weft_http_data_fn)(void *arg, const char *data, size_t len,
                                 const weft_http_resp_t *resp);

typedef struct weft_http_opts {
    const char *url;           /* http:// or https:// (other schemes fail with -EINVAL) */
    long connect_timeout_ms;   /* 0: 10000 */
    long timeout_ms;           /* the whole transfer, redirects included; 0: 30000 */
    long low_speed_limit;      /* abort (WEFT_ESLOW) below this many bytes/s ... */
    long low_speed_time_s;     /* ... sustained for this long; 0 for either: never */
    int max_redirects;         /* 0: 10; < 0: do not follow redirects */
    size_t max_body;           /* bytes; past it the transfer fails with -EMSGSIZE; 0: 8 MiB */
    bool keep_body;            /* collect the body in resp->body (up to max_body) */
    const char *user_agent;    /* NULL: "weft/VERSION" */
    weft_http_data_fn on_data; /* optional streaming callback */
    void *data_arg;
    const weft_atomic_bool_t *cancel; /* optional: set it (atomically, from any thread) to abort
                                         the transfer with -ECANCELED; borrowed like arg */
    long first_byte_timeout_ms;       /* no response byte this long after the start: -ETIMEDOUT;
                                         0: none (a stalled server without a first byte is also
                                         -ETIMEDOUT, never WEFT_ESLOW) */
    bool pipewait;                    /* prefer waiting for a multiplexable HTTP/2 connection over
                                         opening a new one (CURLOPT_PIPEWAIT) */
    const char *cacert;               /* CA bundle file for https, or NULL: CURL_CA_BUNDLE, then
                                         SSL_CERT_FILE from the environment, then libcurl's default */
    bool insecure;                    /* do not verify the server certificate (testing only) */
    const char *post_body; /* when set: a POST of these post_len bytes (copied), not a GET */
    size_t post_len;
    const char *const *headers; /* extra request headers, "Name: value", NULL-terminated (copied);
                                   NULL: none */
} weft_http_opts_t;

/* One transfer on the loop. */
typedef struct weft_http weft_http_t;

/* The completion callback: the release event of the transfer's arg, data_arg and cancel flag
 * (docs/lifetime.md). resp is borrowed for the duration of the call (take fields as described
 * above). The transfer handle is invalid once the callback returns. */
typedef void (*weft_http_cb)(weft_http_t *h, weft_http_resp_t *resp, void *arg);

/* Starts a transfer; cb(h, resp, arg) runs on the loop thread when it ends, however it ends
 * (exactly once, also after a cancel or when the loop is destroyed). Strings in `opts` are copied.
 * Returns 0, -ENOMEM, -EINVAL (NULL loop, cb or URL), -EPERM (not the loop thread) or -ESHUTDOWN
 * (*out = NULL; cb never called). Ownership: arg, opts->data_arg and opts->cancel are borrowed
 * until cb runs (docs/lifetime.md); *out (may be NULL if not wanted) is valid until then.
 * Thread safety: loop thread only, and not from inside an on_data callback. */
int weft_http_start(weft_loop_t *loop, const weft_http_opts_t *opts, weft_http_cb cb, void *arg,
                    weft_http_t **out);

/* Cancels a running transfer: its cb runs later (not inside this call) with error -ECANCELED.
 * Returns 0, -EALREADY if it has already finished and its callback is pending, or -EPERM (not
 * the loop thread). Thread safety: loop thread only, and not from an on_data callback. */
int weft_http_cancel(weft_http_t *h);

/* Starts a transfer from any thread and returns a future for it (GET only: post_body and headers
 * make it fail with -EINVAL; use weft_http_start on the loop thread for those). The future's status
 * is resp->error and its value is the weft_http_resp_t * (owned by the future, with its body if
 * opts->keep_body). weft_future_cancel() on it aborts the transfer. on_data, if set, runs on the
 * loop thread. Returns 0, -ENOMEM, -EINVAL or -ESHUTDOWN (*out = NULL). Ownership: strings in
 * `opts` are copied; opts->data_arg and opts->cancel are borrowed until the future is DONE
 * (docs/lifetime.md); returns an owned reference to a heap future: release it. Thread safety:
 * any thread. */
int weft_http_fetch(weft_loop_t *loop, const weft_http_opts_t *opts, weft_future_t **out);

/* Number of transfers in progress on `loop`. Thread safety: loop thread only (aborts with a
 * message otherwise). */
size_t weft_http_active(const weft_loop_t *loop);

/* A blocking HTTP client for one thread, keeping its connections for reuse between calls. */
typedef struct weft_http_session weft_http_session_t;

/* Returns 0 or -ENOMEM (*out = NULL). Ownership: returns owned; free with
 * weft_http_session_destroy(). Thread safety: any thread. */
int weft_http_session_create(weft_http_session_t **out);

/* Runs one transfer to the end on the calling thread and fills `resp` (zero it first, or reuse one
 * emptied by weft_http_resp_free). Returns resp->error. Ownership: borrows everything for the
 * call (docs/lifetime.md); the caller frees resp with weft_http_resp_free(). Thread safety: one
 * thread at a time per session. */
int weft_http_session_perform(weft_http_session_t *s, const weft_http_opts_t *opts,
                              weft_http_resp_t *resp);

/* Closes the session's connections and frees it. NULL is ignored. */
void weft_http_session_destroy(weft_http_session_t *s);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_HTTP_H */
