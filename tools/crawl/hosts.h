/* The dispatch window, shared by all three modes: which URL may start now.
 *
 * A bounded window of URLs is read ahead from the input and queued per host (scheme://host:port).
 * A URL may start when its host has fewer than --per-host transfers in flight (default 8: a
 * connection each over HTTP/1.1; no limit on requests once the host has answered over HTTP/2
 * in async mode, whose transfers share one connection; threads mode reports no HTTP version,
 * as each worker has a connection of its own) and the host's token bucket holds a token. The bucket
 * has depth one and refills every 1/R seconds, so two starts on one host are always at least 1/R
 * apart: no window of one second ever holds more than R starts (for integer R; ceil(R) otherwise).
 * Hosts take turns (round robin). Retries wait in a delayed list until their time, then go to the
 * front of their host's queue. Every request takes a token: retries, and redirects too, which the
 * engine follows itself (each hop is dispatched again, to the front of its target host's queue).
 *
 * A host is the server, not the spelling: the key is the address and port ("127.0.0.1:8080" for
 * both http://localhost:8080 and http://127.0.0.1:8080). Names are resolved without blocking
 * dispatch (crawl_dispatch_set_resolver); a name that does not resolve is keyed by its spelling.
 * A 429 or 503 with Retry-After pauses the whole host.
 *
 * robots.txt (unless --ignore-robots): a host's first request is its robots.txt (an item with
 * `robots` set, which the engine runs like an attempt and hands to crawl_dispatch_robots_done,
 * never reporting it); nothing else starts on the host until then. A disallowed URL comes back
 * from crawl_dispatch_next finished at once (invalid, kind "robots"); a Crawl-delay longer than
 * 1/--rate becomes the host's interval. The rules live as long as the host entry: a host with
 * nothing left to do stays known (robots.txt fetched once) among the --robots-cache most
 * recently used such hosts (default 1024); older ones are forgotten, so a crawl over millions of
 * hosts holds bounded memory, and a forgotten host that comes back fetches robots.txt again.
 *
 * One thread uses a dispatcher (the mode's scheduler thread); no locks.
 */
#ifndef WEFT_TOOLS_CRAWL_HOSTS_H
#define WEFT_TOOLS_CRAWL_HOSTS_H

#include <stdbool.h>
#include <stdint.h>

#include "crawl/crawl.h"
#include "crawl/input.h"

typedef struct crawl_host crawl_host_t;

/* One URL while it is in the window. */
typedef struct crawl_item {
    crawl_result_t res;       /* res.url and res.line set from the input */
    const char *invalid;      /* the line is not a usable URL: finish it at once */
    const char *invalid_kind; /* error kind for `invalid`; NULL: "invalid-url" */
    bool robots;              /* this is the host's robots.txt fetch, not a line of the input */
    char *robots_body;        /* its body (robots.txt fetches that got a 2xx), or NULL */
    size_t robots_len;
    crawl_host_t *host;      /* NULL if invalid */
    struct crawl_item *next; /* host queue or delayed list */
    uint64_t ready_ns;       /* waiting to start since */
    uint64_t not_before_ns;  /* a retry's time */
    uint64_t attempt_start_ns;
    char *wait_key;    /* parked until its host name resolves: its crawl_url_check key */
    bool wait_front;   /* ... and then queued at the front (a redirect hop) */
    int http_version;  /* of the last attempt's response (10, 11, 20...; 0: none) */
    char *retry_after; /* Retry-After of the last attempt, or NULL */
    char *next_url;    /* the redirect target the next attempt fetches, or NULL: res.url */
    char *location;    /* the last attempt's redirect target, not yet followed, or NULL */
    void *run;         /* the run it belongs to */
    void *slot;        /* the mode's per-attempt state */
} crawl_item_t;

typedef struct crawl_dispatch crawl_dispatch_t;

/* `window` URLs at most are read ahead (in queues, delayed or in flight). Returns 0 or -ENOMEM. */
int crawl_dispatch_create(crawl_dispatch_t **out, const crawl_opts_t *o, crawl_input_t *in,
                          size_t window);
void crawl_dispatch_destroy(crawl_dispatch_t *d);

/* The next item to start at time `now` (weft_now_ns clock): its host's in-flight count is raised
 * and a token taken. Invalid lines come back too (it->invalid set; nothing taken). Returns NULL
 * when nothing may start now; then *wake_ns is the earliest time something may (UINT64_MAX if
 * only a completion can help, or nothing is left). */
crawl_item_t *crawl_dispatch_next(crawl_dispatch_t *d, uint64_t now, uint64_t *wake_ns);

/* Asks for `name` (lower case) to be resolved, without blocking: returns 1 with `addr` (its
 * canonical text, `size` bytes) filled at once, 0 if the answer will come through
 * crawl_dispatch_resolved, or a negative error (the name keeps its spelling as the key). */
typedef int (*crawl_resolve_fn)(void *arg, const char *name, char *addr, size_t size);

/* Host names are keyed by their address from `fn`; without a resolver (the default) names keep
 * their spelling and only address literals are canonical. Call before the first
 * crawl_dispatch_next. */
void crawl_dispatch_set_resolver(crawl_dispatch_t *d, crawl_resolve_fn fn, void *arg);

/* The answer for `name` (passed to the resolver function): its address text, or NULL if it did
 * not resolve. The URLs waiting for it join their host's queue. */
void crawl_dispatch_resolved(crawl_dispatch_t *d, const char *name, const char *addr);

/* Resolves `name` with getaddrinfo (blocking: the system resolver, /etc/hosts included) into
 * the canonical text of its first IPv4 address, else its first IPv6 one. Returns 0, WEFT_EDNS
 * or -ENOMEM. Thread safety: any thread. */
int crawl_resolve(const char *name, char *addr, size_t size);

/* An attempt of `it` ended (lowers its host's in-flight count). */
void crawl_dispatch_attempt_done(crawl_dispatch_t *d, crawl_item_t *it);

/* No request may start on `it`'s host before `until_ns` (a 429 or 503 with Retry-After). */
void crawl_dispatch_pause_host(crawl_dispatch_t *d, crawl_item_t *it, uint64_t until_ns);

/* Moves `it` to the host of `url_key` (a crawl_url_check key) and queues it at the front there:
 * a redirect hop, which takes a token like any request. Returns 0 or -ENOMEM. */
int crawl_dispatch_redirect(crawl_dispatch_t *d, crawl_item_t *it, const char *url_key,
                            uint64_t now);

/* The robots.txt fetch `it` ended (its body in it->robots_body, or NULL: no usable file, so
 * everything is allowed). Call before crawl_dispatch_release(it). */
void crawl_dispatch_robots_done(crawl_dispatch_t *d, crawl_item_t *it);

/* With --auto-throttle: the attempt of `it` took `latency_ns`; `ok` if it got a response below
 * 400. The host's interval moves halfway towards the latency (Scrapy's AutoThrottle with a
 * target concurrency of 1: one request in flight per latency on average), never below
 * 1/--rate or the Crawl-delay, never above 60 s, and a failure may only raise it. Until its
 * first answer a host has one request in flight. */
void crawl_dispatch_observe(crawl_dispatch_t *d, crawl_item_t *it, uint64_t latency_ns, bool ok);

/* Puts `it` back to be tried again at `due_ns`. */
void crawl_dispatch_retry(crawl_dispatch_t *d, crawl_item_t *it, uint64_t due_ns);

/* `it` is finished: frees it and its result. */
void crawl_dispatch_release(crawl_dispatch_t *d, crawl_item_t *it);

/* Host entries held now (for tests): those with URLs in the window, plus idle ones until their
 * bucket is full again, plus at most --robots-cache idle ones whose robots.txt is known. */
size_t crawl_dispatch_hosts(const crawl_dispatch_t *d);

/* True once the input is exhausted and no item is left in the window. */
bool crawl_dispatch_idle(const crawl_dispatch_t *d);

/* A read error of the input (-EIO, -ENOMEM) or 0. */
int crawl_dispatch_error(const crawl_dispatch_t *d);

#endif
