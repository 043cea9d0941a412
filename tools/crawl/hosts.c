/* The dispatch window: per-host queues, in-flight limits and token buckets (hosts.h).
 *
 * Hosts live in a weft_htab keyed by host key (values are host pointers). Hosts with queued items
 * are also on a circular "ring" that dispatch walks round robin from a cursor; a host leaves the
 * ring when its queue empties and the table when it is idle (nothing queued or in flight) and its
 * bucket is full again, so that memory follows the window, not the input.
 *
 * Host keys are addresses. Every host name is resolved before its URLs join a host queue, by the
 * resolver the mode installs: getaddrinfo on a small thread pool in threads and async modes, the
 * answer handed back to the loop thread (crawl_dispatch_resolved) and cached per name; inline in
 * seq mode, which blocks on everything anyway. Meanwhile the name's URLs are parked on its
 * entry and every other host goes on. Chosen over keying by libcurl's CURLINFO_PRIMARY_IP after
 * the first connection: until then two names of one server would each start --per-host
 * requests, fetch robots.txt twice and have two token buckets, and merging their queues
 * afterwards would reorder them; a lookup per distinct name off the loop costs a thread hop,
 * and getaddrinfo answers /etc/hosts and nscd-cached names at once. libcurl resolves again
 * (its own DNS cache) and normally reaches the same address; the key only groups politeness.
 */
#include "crawl/hosts.h"

#include "crawl/robots.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/htab.h>
#include <weft/sys.h>

struct crawl_host {
    char *key;
    uint64_t hash;                       /* weft_hash_str(key) */
    crawl_host_t *ring_prev, *ring_next; /* non-NULL while queued items exist */
    crawl_item_t *qhead, *qtail;
    int inflight;
    size_t refs;          /* items of this host in the window: queued, delayed or in flight */
    uint64_t next_ns;     /* earliest next start (token bucket) */
    uint64_t interval_ns; /* 1/rate, or the Crawl-delay if longer; auto-throttled */
    uint64_t floor_ns;    /* the least interval auto-throttle may set */
    bool sampled;         /* auto-throttle has seen a latency */
    bool multiplexed;     /* answered over HTTP/2 or later: --per-host caps connections, and
                             its requests share one (CURLOPT_PIPEWAIT) */
    int robots;           /* ROBOTS_* */
    crawl_robots_t *rules;
    crawl_host_t *lru_prev, *lru_next; /* on the idle list (robots.txt known, nothing to do) */
    bool idle;
};

enum { ROBOTS_UNKNOWN, ROBOTS_FETCHING, ROBOTS_READY };

struct crawl_dispatch {
    const crawl_opts_t *o;
    crawl_input_t *in;
    size_t window, in_window;
    bool eof;
    int error;
    uint64_t interval_ns; /* 1/rate, 0: no rate limit */
    weft_htab_t hosts;    /* key -> crawl_host_t * */
    weft_htab_t names;    /* host name -> name_ent_t * (resolved or being resolved) */
    crawl_resolve_fn resolve;
    void *resolve_arg;
    crawl_host_t *cursor;                     /* ring position */
    crawl_item_t *immediate, *immediate_tail; /* invalid lines, in input order */
    crawl_item_t *delayed;                    /* retries, sorted by not_before_ns */
    crawl_host_t *lru_head, *lru_tail; /* idle hosts kept for their robots.txt, oldest first */
    size_t lru_len, lru_max;
};

int crawl_dispatch_create(crawl_dispatch_t **out, const crawl_opts_t *o, crawl_input_t *in,
                          size_t window)
{
    *out = NULL;
    crawl_dispatch_t *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->o = o;
    d->in = in;
    d->window = window ? window : 1;
    d->interval_ns = o->rate > 0 ? (uint64_t)(1e9 / o->rate) : 0;
    d->lru_max = o->robots_cache ? o->robots_cache : 1;
    weft_htab_init(&d->hosts);
    weft_htab_init(&d->names);
    *out = d;
    return 0;
}

static void free_item(crawl_item_t *it)
{
    crawl_result_free(&it->res);
    free(it->robots_body);
    free(it->retry_after);
    free(it->next_url);
    free(it->location);
    free(it->wait_key);
    free(it);
}

typedef struct name_ent name_ent_t;
static void free_name(name_ent_t *e);

static void free_host(crawl_host_t *h)
{
    for (crawl_item_t *it = h->qhead, *next; it; it = next) {
        next = it->next;
        free_item(it);
    }
    crawl_robots_free(h->rules);
    free(h->key);
    free(h);
}

void crawl_dispatch_destroy(crawl_dispatch_t *d)
{
    if (!d) return;
    size_t pos = 0;
    for (weft_htab_slot_t *s; (s = weft_htab_next(&d->hosts, &pos));)
        free_host((crawl_host_t *)(uintptr_t)s->val);
    for (crawl_item_t *lists[2] = {d->immediate, d->delayed}, **l = lists; l < lists + 2; l++)
        for (crawl_item_t *it = *l, *next; it; it = next) {
            next = it->next;
            free_item(it);
        }
    weft_htab_free(&d->hosts);
    pos = 0;
    for (weft_htab_slot_t *s; (s = weft_htab_next(&d->names, &pos));)
        free_name((name_ent_t *)(uintptr_t)s->val);
    weft_htab_free(&d->names);
    free(d);
}

/* ---- the host table ---- */

static bool host_eq(uint64_t val, const void *key, const void *ctx)
{
    (void)ctx;
    return strcmp(((const crawl_host_t *)(uintptr_t)val)->key, key) == 0;
}

/* The entry host_get has just added, before its value is set. */
static bool is_unset(uint64_t val, const void *key, const void *ctx)
{
    (void)key;
    (void)ctx;
    return val == 0;
}

static void lru_remove(crawl_dispatch_t *d, crawl_host_t *x)
{
    if (!x->idle) return;
    *(x->lru_prev ? &x->lru_prev->lru_next : &d->lru_head) = x->lru_next;
    *(x->lru_next ? &x->lru_next->lru_prev : &d->lru_tail) = x->lru_prev;
    x->lru_prev = x->lru_next = NULL;
    x->idle = false;
    d->lru_len--;
}

static crawl_host_t *host_get(crawl_dispatch_t *d, const char *key)
{
    uint64_t h = weft_hash_str(key);
    bool added;
    uint64_t *v = weft_htab_put(&d->hosts, h, host_eq, key, NULL, &added);
    if (!v) return NULL;
    if (!added) {
        crawl_host_t *x = (crawl_host_t *)(uintptr_t)*v;
        lru_remove(d, x); /* in use again */
        return x;
    }
    crawl_host_t *x = calloc(1, sizeof *x);
    if (!x || !(x->key = strdup(key))) {
        free(x);
        weft_htab_remove(&d->hosts, h, is_unset, NULL, NULL, NULL);
        return NULL;
    }
    x->hash = h;
    x->interval_ns = x->floor_ns = d->interval_ns;
    x->robots = d->o->ignore_robots ? ROBOTS_READY : ROBOTS_UNKNOWN;
    *v = (uintptr_t)x;
    return x;
}

static void host_free(crawl_dispatch_t *d, crawl_host_t *x)
{
    weft_htab_remove(&d->hosts, x->hash, host_eq, x->key, NULL, NULL);
    crawl_robots_free(x->rules);
    free(x->key);
    free(x);
}

/* Frees `x` if no item refers to it and forgetting it changes nothing (its bucket is full
 * again, so a fresh entry would behave the same); but a host whose robots.txt is known goes to
 * the tail of the idle list instead, which keeps the --robots-cache most recent ones. */
static void host_maybe_free(crawl_dispatch_t *d, crawl_host_t *x, uint64_t now)
{
    if (x->refs || x->ring_next || x->next_ns > now || x->idle) return;
    if (d->o->ignore_robots) {
        host_free(d, x);
        return;
    }
    x->idle = true;
    x->lru_next = NULL;
    x->lru_prev = d->lru_tail;
    *(d->lru_tail ? &d->lru_tail->lru_next : &d->lru_head) = x;
    d->lru_tail = x;
    if (++d->lru_len > d->lru_max) { /* the least recently used: its robots.txt is forgotten */
        crawl_host_t *old = d->lru_head;
        lru_remove(d, old);
        host_free(d, old);
    }
}

/* Frees every idle host whose bucket is full, or moves it to the idle list: called when many
 * distinct hosts accumulate. The table cannot change while it is walked, so the hosts are
 * listed first (no sweep without memory for the list: it is only an optimisation); hosts
 * already on the idle list are left out, as the list may evict them during the sweep. */
static void sweep(crawl_dispatch_t *d, uint64_t now)
{
    size_t n = 0, pos = 0;
    crawl_host_t **all = malloc(d->hosts.len * sizeof *all);
    if (!all) return;
    for (weft_htab_slot_t *s; (s = weft_htab_next(&d->hosts, &pos));) {
        crawl_host_t *x = (crawl_host_t *)(uintptr_t)s->val;
        if (!x->idle) all[n++] = x; /* only idle hosts are evicted below: none of these */
    }
    for (size_t i = 0; i < n; i++) host_maybe_free(d, all[i], now);
    free(all);
}

/* ---- host keys: the address ---- */

/* A name and what it resolved to, cached for the run (bounded by NAMES_MAX). */
struct name_ent {
    char *name;                     /* lower case */
    bool pending;                   /* the resolver has not answered yet */
    char addr[INET6_ADDRSTRLEN];    /* "" if it did not resolve: keyed by spelling */
    crawl_item_t *wait, *wait_tail; /* items parked until it answers */
};

#define NAMES_MAX 4096

static bool name_eq(uint64_t val, const void *key, const void *ctx)
{
    (void)ctx;
    return strcmp(((const name_ent_t *)(uintptr_t)val)->name, key) == 0;
}

static void free_name(name_ent_t *e)
{
    for (crawl_item_t *it = e->wait, *next; it; it = next) {
        next = it->next;
        free_item(it);
    }
    free(e->name);
    free(e);
}

/* The canonical text of an address (first IPv4 one, as libcurl tries it first; else the first)
 * of `ai`, or false. */
static bool addr_text(const struct addrinfo *ai, char *out, size_t size)
{
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = ai; a; a = a->ai_next)
        if (a->ai_family == AF_INET && (pick = a)) break;
    for (const struct addrinfo *a = ai; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET6) pick = a;
    if (!pick) return false;
    const void *p = pick->ai_family == AF_INET
                        ? (const void *)&((struct sockaddr_in *)(void *)pick->ai_addr)->sin_addr
                        : (const void *)&((struct sockaddr_in6 *)(void *)pick->ai_addr)->sin6_addr;
    return inet_ntop(pick->ai_family, p, out, (socklen_t)size) != NULL;
}

static int lookup(const char *name, int flags, char *out, size_t size)
{
    struct addrinfo hints = {.ai_flags = flags, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &ai);
    if (rc != 0 || !ai) return rc == EAI_MEMORY ? -ENOMEM : WEFT_EDNS;
    bool ok = addr_text(ai, out, size);
    freeaddrinfo(ai);
    return ok ? 0 : WEFT_EDNS;
}

int crawl_resolve(const char *name, char *addr, size_t size)
{
    return lookup(name, 0, addr, size);
}

/* Forgets the names that have answered (they are looked up again if they come back). The
 * table cannot change while it is walked, so they are listed first. */
static void names_sweep(crawl_dispatch_t *d)
{
    size_t n = 0, pos = 0;
    name_ent_t **all = malloc(d->names.len * sizeof *all);
    if (!all) return;
    for (weft_htab_slot_t *s; (s = weft_htab_next(&d->names, &pos));)
        all[n++] = (name_ent_t *)(uintptr_t)s->val;
    for (size_t i = 0; i < n; i++)
        if (!all[i]->pending) {
            weft_htab_remove(&d->names, weft_hash_str(all[i]->name), name_eq, all[i]->name, NULL,
                             NULL);
            free_name(all[i]);
        }
    free(all);
}

/* The entry of `name`: an address literal in canonical form, or what the resolver answered (it
 * is asked when the name is new). NULL without memory, or for a name when there is no
 * resolver. Every URL looks its name up here, so after the first one of a host it costs a
 * hash lookup, not a getaddrinfo call. */
static name_ent_t *name_get(crawl_dispatch_t *d, const char *name)
{
    uint64_t h = weft_hash_str(name);
    uint64_t *v = weft_htab_find(&d->names, h, name_eq, name, NULL);
    if (v) return (name_ent_t *)(uintptr_t)*v;
    char lit[INET6_ADDRSTRLEN];
    bool numeric = lookup(name, AI_NUMERICHOST, lit, sizeof lit) == 0;
    if (!numeric && !d->resolve) return NULL;
    if (d->names.len >= NAMES_MAX) names_sweep(d);
    name_ent_t *e = calloc(1, sizeof *e);
    bool added;
    if (!e || !(e->name = strdup(name)) ||
        !(v = weft_htab_put(&d->names, h, name_eq, name, NULL, &added))) {
        if (e) free(e->name);
        free(e);
        return NULL;
    }
    *v = (uintptr_t)e;
    if (numeric) {
        memcpy(e->addr, lit, sizeof lit);
        return e;
    }
    e->pending = true;
    int rc = d->resolve(d->resolve_arg, e->name, e->addr, sizeof e->addr);
    if (rc != 0) e->pending = false; /* answered at once (rc 1), or failed: its spelling */
    if (rc < 0) e->addr[0] = '\0';
    return e;
}

/* "scheme://host:port" -> "address:port": address literals in canonical form, names resolved
 * (so that localhost and 127.0.0.1 are one server). A name whose lookup is under way gives NULL
 * and *wait its entry; one that did not resolve, or any name without a resolver, keeps its
 * spelling. Returns `out` or `url_key`, or NULL with *wait NULL when out of memory. */
static const char *host_key(crawl_dispatch_t *d, const char *url_key, char *out, size_t size,
                            name_ent_t **wait)
{
    *wait = NULL;
    const char *host = strstr(url_key, "://");
    const char *colon = strrchr(url_key, ':');
    if (!host || !colon || colon < host + 3) return url_key;
    host += 3;
    char name[CRAWL_HOSTKEY_MAX];
    size_t nl = (size_t)(colon - host);
    if (nl >= sizeof name || nl == 0) return url_key;
    for (size_t i = 0; i < nl; i++) name[i] = (char)tolower((unsigned char)host[i]);
    name[nl] = '\0';
    if (name[0] == '[' && nl > 1 && name[nl - 1] == ']') { /* an IPv6 literal */
        memmove(name, name + 1, nl - 2);
        name[nl - 2] = '\0';
    }
    name_ent_t *e = name_get(d, name);
    if (!e) return d->resolve ? NULL : url_key; /* without a resolver: a name, by spelling */
    if (e->pending) {
        *wait = e;
        return NULL;
    }
    if (!e->addr[0]) return url_key;
    snprintf(out, size, strchr(e->addr, ':') ? "[%s]%s" : "%s%s", e->addr, colon);
    return out;
}

/* ---- the ring of hosts with queued items ---- */

static void ring_add(crawl_dispatch_t *d, crawl_host_t *x)
{
    if (x->ring_next) return;
    if (!d->cursor) {
        x->ring_next = x->ring_prev = x;
        d->cursor = x;
        return;
    }
    /* Insert just before the cursor: the new host's turn comes after the others'. */
    crawl_host_t *c = d->cursor;
    x->ring_next = c;
    x->ring_prev = c->ring_prev;
    c->ring_prev->ring_next = x;
    c->ring_prev = x;
}

static void ring_remove(crawl_dispatch_t *d, crawl_host_t *x)
{
    if (!x->ring_next) return;
    if (x->ring_next == x) {
        d->cursor = NULL;
    } else {
        x->ring_prev->ring_next = x->ring_next;
        x->ring_next->ring_prev = x->ring_prev;
        if (d->cursor == x) d->cursor = x->ring_next;
    }
    x->ring_next = x->ring_prev = NULL;
}

static void enqueue(crawl_dispatch_t *d, crawl_host_t *x, crawl_item_t *it, bool front)
{
    it->next = NULL;
    if (front) {
        it->next = x->qhead;
        x->qhead = it;
        if (!x->qtail) x->qtail = it;
    } else {
        if (x->qtail)
            x->qtail->next = it;
        else
            x->qhead = it;
        x->qtail = it;
    }
    ring_add(d, x);
}

static void push_immediate(crawl_dispatch_t *d, crawl_item_t *it)
{
    it->next = NULL;
    if (d->immediate_tail)
        d->immediate_tail->next = it;
    else
        d->immediate = it;
    d->immediate_tail = it;
}

/* Queues `it` (not on any host) on the host of `url_key` (a crawl_url_check key), at the front
 * or the back; or parks it on its name until the resolver answers. Returns 0 or -ENOMEM. */
static int place(crawl_dispatch_t *d, crawl_item_t *it, const char *url_key, bool front)
{
    char key[CRAWL_HOSTKEY_MAX + 64];
    name_ent_t *wait;
    const char *k = host_key(d, url_key, key, sizeof key, &wait);
    if (wait) {
        if (!it->wait_key && !(it->wait_key = strdup(url_key))) return -ENOMEM;
        it->wait_front = front;
        it->next = NULL;
        if (wait->wait_tail)
            wait->wait_tail->next = it;
        else
            wait->wait = it;
        wait->wait_tail = it;
        return 0;
    }
    crawl_host_t *x = k ? host_get(d, k) : NULL;
    if (!x) return -ENOMEM;
    x->refs++;
    it->host = x;
    enqueue(d, x, it, front);
    return 0;
}

void crawl_dispatch_set_resolver(crawl_dispatch_t *d, crawl_resolve_fn fn, void *arg)
{
    d->resolve = fn;
    d->resolve_arg = arg;
}

void crawl_dispatch_resolved(crawl_dispatch_t *d, const char *name, const char *addr)
{
    uint64_t *v = weft_htab_find(&d->names, weft_hash_str(name), name_eq, name, NULL);
    if (!v) return;
    name_ent_t *e = (name_ent_t *)(uintptr_t)*v;
    e->pending = false;
    snprintf(e->addr, sizeof e->addr, "%s", addr ? addr : "");
    crawl_item_t *it = e->wait;
    e->wait = e->wait_tail = NULL;
    while (it) {
        crawl_item_t *next = it->next;
        char *key = it->wait_key;
        it->wait_key = NULL;
        if (place(d, it, key, it->wait_front) < 0) {
            it->invalid = "out of memory";
            push_immediate(d, it);
        }
        free(key);
        it = next;
    }
}

/* ---- reading ahead ---- */

static void refill(crawl_dispatch_t *d, uint64_t now)
{
    while (!d->eof && !d->error && d->in_window < d->window) {
        crawl_line_t l;
        int rc = crawl_input_next(d->in, &l);
        if (rc <= 0) {
            d->eof = true;
            d->error = rc;
            break;
        }
        crawl_item_t *it = calloc(1, sizeof *it);
        if (!it) {
            free(l.url);
            d->error = -ENOMEM;
            break;
        }
        it->res.line = l.line;
        it->res.url = l.url;
        it->ready_ns = now;
        d->in_window++;
        if (l.invalid) {
            it->invalid = l.invalid;
            push_immediate(d, it);
            continue;
        }
        if (d->hosts.len > 4 * d->window + d->lru_len + 1024) sweep(d, now);
        if (place(d, it, l.host, false) < 0) {
            it->invalid = "out of memory";
            push_immediate(d, it);
        }
    }
}

/* ---- dispatch ---- */

/* At its connection cap: over HTTP/1.1 each request in flight holds a connection. */
static bool host_capped(const crawl_dispatch_t *d, const crawl_host_t *x)
{
    return d->o->per_host > 0 && !x->multiplexed && x->inflight >= d->o->per_host;
}

static bool host_ready(const crawl_dispatch_t *d, const crawl_host_t *x, uint64_t now)
{
    if (x->robots == ROBOTS_FETCHING) return false;
    if (d->o->auto_throttle && !x->sampled && x->inflight >= 1) return false;
    if (host_capped(d, x)) return false;
    return x->next_ns <= now;
}

/* The path and query of `url` ("/" if none), for robots.txt rules. */
static const char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    p += strcspn(p, "/?#");
    return *p == '/' ? p : "/";
}

/* A robots.txt fetch for the host of `model`: scheme://authority/robots.txt. */
static crawl_item_t *robots_item(crawl_host_t *x, const crawl_item_t *model)
{
    const char *url = model->next_url ? model->next_url : model->res.url;
    const char *p = strstr(url, "://");
    size_t origin = p ? (size_t)(p + 3 - url) + strcspn(p + 3, "/?#") : strlen(url);
    crawl_item_t *it = calloc(1, sizeof *it);
    char *u = malloc(origin + sizeof "/robots.txt");
    if (!it || !u) {
        free(it);
        free(u);
        return NULL;
    }
    memcpy(u, url, origin);
    memcpy(u + origin, "/robots.txt", sizeof "/robots.txt");
    it->res.url = u;
    it->robots = true;
    it->host = x;
    x->refs++;
    return it;
}

void crawl_dispatch_robots_done(crawl_dispatch_t *d, crawl_item_t *it)
{
    crawl_host_t *x = it->host;
    x->robots = ROBOTS_READY;
    if (!it->robots_body) return;
    const char *ua = d->o->user_agent;
    char agent[64] = "weft";
    if (ua && *ua) {
        size_t n = strcspn(ua, "/ \t");
        if (n >= sizeof agent) n = sizeof agent - 1;
        memcpy(agent, ua, n);
        agent[n] = '\0';
    }
    uint64_t delay_ms = 0;
    x->rules = crawl_robots_parse(it->robots_body, it->robots_len, agent, &delay_ms);
    if (delay_ms * 1000000u > x->interval_ns) x->interval_ns = delay_ms * 1000000u;
    if (x->interval_ns > x->floor_ns) x->floor_ns = x->interval_ns;
}

crawl_item_t *crawl_dispatch_next(crawl_dispatch_t *d, uint64_t now, uint64_t *wake_ns)
{
    *wake_ns = UINT64_MAX;
    refill(d, now);
    if (d->immediate) {
        crawl_item_t *it = d->immediate;
        d->immediate = it->next;
        if (!d->immediate) d->immediate_tail = NULL;
        it->next = NULL;
        return it;
    }
    while (d->delayed && d->delayed->not_before_ns <= now) { /* due retries go first */
        crawl_item_t *it = d->delayed;
        d->delayed = it->next;
        it->ready_ns = it->not_before_ns;
        enqueue(d, it->host, it, true);
    }
    if (d->delayed) *wake_ns = d->delayed->not_before_ns;
    crawl_host_t *start = d->cursor;
    if (start) {
        crawl_host_t *x = start;
        do {
            if (host_ready(d, x, now) && x->robots == ROBOTS_UNKNOWN) {
                crawl_item_t *rb = robots_item(x, x->qhead);
                if (!rb) {
                    x->robots = ROBOTS_READY; /* no memory for it: crawl without */
                } else {
                    x->robots = ROBOTS_FETCHING;
                    x->inflight++;
                    if (x->interval_ns) x->next_ns = now + x->interval_ns;
                    return rb;
                }
            }
            if (host_ready(d, x, now) && x->rules &&
                !crawl_robots_allowed(x->rules, url_path(x->qhead->next_url ? x->qhead->next_url
                                                                            : x->qhead->res.url))) {
                crawl_item_t *it = x->qhead; /* disallowed: finished at once, nothing taken */
                x->qhead = it->next;
                if (!x->qhead) x->qtail = NULL;
                it->next = NULL;
                it->invalid = "disallowed by robots.txt";
                it->invalid_kind = "robots";
                if (!x->qhead) ring_remove(d, x);
                return it;
            }
            if (host_ready(d, x, now)) {
                crawl_item_t *it = x->qhead;
                x->qhead = it->next;
                if (!x->qhead) x->qtail = NULL;
                it->next = NULL;
                x->inflight++;
                if (x->interval_ns) x->next_ns = now + x->interval_ns;
                d->cursor = x->ring_next; /* the next host's turn */
                if (!x->qhead) ring_remove(d, x);
                return it;
            }
            bool capped = host_capped(d, x) ||
                          x->robots == ROBOTS_FETCHING || /* its completion will pump */
                          (d->o->auto_throttle && !x->sampled && x->inflight >= 1);
            if (!capped && x->next_ns < *wake_ns) *wake_ns = x->next_ns;
            x = x->ring_next;
        } while (x != start);
    }
    return NULL;
}

void crawl_dispatch_attempt_done(crawl_dispatch_t *d, crawl_item_t *it)
{
    (void)d;
    it->host->inflight--;
    if (it->http_version >= 20) it->host->multiplexed = true;
}

void crawl_dispatch_pause_host(crawl_dispatch_t *d, crawl_item_t *it, uint64_t until_ns)
{
    (void)d;
    if (it->host && until_ns > it->host->next_ns) it->host->next_ns = until_ns;
}

int crawl_dispatch_redirect(crawl_dispatch_t *d, crawl_item_t *it, const char *url_key,
                            uint64_t now)
{
    crawl_host_t *old = it->host;
    it->host = NULL;
    it->ready_ns = now;
    int rc = place(d, it, url_key, true);
    if (rc < 0) {
        it->host = old;
        return rc;
    }
    if (old && --old->refs == 0) host_maybe_free(d, old, now);
    return 0;
}

void crawl_dispatch_observe(crawl_dispatch_t *d, crawl_item_t *it, uint64_t latency_ns, bool ok)
{
    crawl_host_t *x = it->host;
    if (!d->o->auto_throttle || !x) return;
    x->sampled = true;
    uint64_t next = (x->interval_ns + latency_ns) / 2;
    if (!ok && next < x->interval_ns) next = x->interval_ns;
    if (next < x->floor_ns) next = x->floor_ns;
    if (next > 60000000000ull) next = 60000000000ull;
    x->interval_ns = next;
}

void crawl_dispatch_retry(crawl_dispatch_t *d, crawl_item_t *it, uint64_t due_ns)
{
    it->not_before_ns = due_ns;
    crawl_item_t **pp = &d->delayed;
    while (*pp && (*pp)->not_before_ns <= due_ns) pp = &(*pp)->next;
    it->next = *pp;
    *pp = it;
}

void crawl_dispatch_release(crawl_dispatch_t *d, crawl_item_t *it)
{
    crawl_host_t *x = it->host;
    bool counted = !it->robots; /* robots.txt fetches are not lines of the window */
    free_item(it);
    if (counted) d->in_window--;
    if (x && --x->refs == 0) host_maybe_free(d, x, weft_now_ns());
}

size_t crawl_dispatch_hosts(const crawl_dispatch_t *d)
{
    return d->hosts.len;
}

bool crawl_dispatch_idle(const crawl_dispatch_t *d)
{
    return d->eof && d->in_window == 0;
}

int crawl_dispatch_error(const crawl_dispatch_t *d)
{
    return d->error;
}
