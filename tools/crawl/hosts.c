/* The dispatch window: per-host queues, in-flight limits and token buckets (hosts.h).
 *
 * Hosts live in a weft_htab keyed by host key (values are host pointers). Hosts with queued items
 * are also on a circular "ring" that dispatch walks round robin from a cursor; a host leaves the
 * ring when its queue empties and the table when it is idle (nothing queued or in flight) and its
 * bucket is full again, so that memory follows the window, not the input.
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
    weft_htab_t names;    /* /etc/hosts: name -> "name\0address" (owned) */
    bool names_loaded;
    crawl_host_t *cursor;                     /* ring position */
    crawl_item_t *immediate, *immediate_tail; /* invalid lines, in input order */
    crawl_item_t *delayed;                    /* retries, sorted by not_before_ns */
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
    free(it);
}

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
        free((char *)(uintptr_t)s->val);
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

static crawl_host_t *host_get(crawl_dispatch_t *d, const char *key)
{
    uint64_t h = weft_hash_str(key);
    bool added;
    uint64_t *v = weft_htab_put(&d->hosts, h, host_eq, key, NULL, &added);
    if (!v) return NULL;
    if (!added) return (crawl_host_t *)(uintptr_t)*v;
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

/* Frees `x` if no item refers to it and forgetting it changes nothing (its bucket is full
 * again, so a fresh entry would behave the same). */
static void host_maybe_free(crawl_dispatch_t *d, crawl_host_t *x, uint64_t now)
{
    if (x->refs || x->ring_next || x->next_ns > now) return;
    if (!d->o->ignore_robots) return; /* its robots.txt is known: keep it for the run */
    weft_htab_remove(&d->hosts, x->hash, host_eq, x->key, NULL, NULL);
    crawl_robots_free(x->rules);
    free(x->key);
    free(x);
}

/* Frees every idle host whose bucket is full: called when many distinct hosts accumulate. The
 * table cannot change while it is walked, so the hosts are listed first (no sweep without
 * memory for the list: it is only an optimisation). */
static void sweep(crawl_dispatch_t *d, uint64_t now)
{
    size_t n = 0, pos = 0;
    crawl_host_t **all = malloc(d->hosts.len * sizeof *all);
    if (!all) return;
    for (weft_htab_slot_t *s; (s = weft_htab_next(&d->hosts, &pos));)
        all[n++] = (crawl_host_t *)(uintptr_t)s->val;
    for (size_t i = 0; i < n; i++) host_maybe_free(d, all[i], now);
    free(all);
}

/* ---- host keys: the address ---- */

/* An /etc/hosts entry is "NAME\0ADDRESS" (one allocation): compared by its first string. */
static bool name_eq(uint64_t val, const void *key, const void *ctx)
{
    (void)ctx;
    return strcasecmp((const char *)(uintptr_t)val, key) == 0;
}

/* The canonical text of an address literal ("127.1" -> "127.0.0.1"), or false. */
static bool canon_addr(const char *s, char *out, size_t size)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(s, NULL, &hints, &ai) != 0 || !ai) return false;
    const void *a = ai->ai_family == AF_INET
                        ? (const void *)&((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr
                        : (const void *)&((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
    bool ok = inet_ntop(ai->ai_family, a, out, (socklen_t)size) != NULL;
    freeaddrinfo(ai);
    return ok;
}

/* Reads /etc/hosts (once): the names a resolver answers at once, without a network query. The
 * first address listed for a name wins, as with the "files" resolver. */
static void load_hosts_file(crawl_dispatch_t *d)
{
    d->names_loaded = true;
    FILE *f = fopen("/etc/hosts", "re");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *save = NULL, *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *addr = strtok_r(line, " \t\r\n", &save), canon[INET6_ADDRSTRLEN];
        if (!addr || !canon_addr(addr, canon, sizeof canon)) continue;
        for (char *name; (name = strtok_r(NULL, " \t\r\n", &save));) {
            if (d->names.len >= 4096) break; /* a hosts file used as a block list: enough */
            char low[256];
            size_t nl = strlen(name), al = strlen(canon);
            if (nl >= sizeof low) continue;
            for (size_t i = 0; i <= nl; i++) low[i] = (char)tolower((unsigned char)name[i]);
            uint64_t h = weft_hash_str(low);
            bool added;
            uint64_t *v = weft_htab_put(&d->names, h, name_eq, low, NULL, &added);
            if (!v) continue;
            if (!added) { /* an IPv4 address is preferred, as libcurl tries it first */
                const char *old = (const char *)(uintptr_t)*v;
                if (!strchr(old + strlen(old) + 1, ':') || strchr(canon, ':')) continue;
                free((void *)(uintptr_t)*v);
            }
            char *e = malloc(nl + al + 2);
            if (!e) {
                weft_htab_remove(&d->names, h, is_unset, NULL, NULL, NULL);
                continue;
            }
            memcpy(e, low, nl + 1);
            memcpy(e + nl + 1, canon, al + 1);
            *v = (uintptr_t)e;
        }
    }
    fclose(f);
}

/* "scheme://host:port" -> "address:port" when the address is known without a network query:
 * an address literal, or a name from /etc/hosts (so that localhost and 127.0.0.1 are one
 * server). Other names keep their spelling: resolving each one here would stall dispatch on
 * the network. Returns `out` or `url_key`. */
static const char *host_key(crawl_dispatch_t *d, const char *url_key, char *out, size_t size)
{
    const char *host = strstr(url_key, "://");
    const char *colon = strrchr(url_key, ':');
    if (!host || !colon || colon < host + 3) return url_key;
    host += 3;
    char name[CRAWL_HOSTKEY_MAX], addr[INET6_ADDRSTRLEN];
    size_t nl = (size_t)(colon - host);
    if (nl >= sizeof name || nl == 0) return url_key;
    memcpy(name, host, nl);
    name[nl] = '\0';
    if (name[0] == '[' && nl > 1 && name[nl - 1] == ']') { /* an IPv6 literal */
        memmove(name, name + 1, nl - 2);
        name[nl - 2] = '\0';
    }
    const char *a = NULL;
    if (canon_addr(name, addr, sizeof addr)) {
        a = addr;
    } else {
        if (!d->names_loaded) load_hosts_file(d);
        uint64_t *v = weft_htab_find(&d->names, weft_hash_str(name), name_eq, name, NULL);
        if (v) {
            const char *e = (const char *)(uintptr_t)*v;
            a = e + strlen(e) + 1;
        }
    }
    if (!a) return url_key;
    snprintf(out, size, strchr(a, ':') ? "[%s]%s" : "%s%s", a, colon);
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

/* ---- reading ahead ---- */

static void push_immediate(crawl_dispatch_t *d, crawl_item_t *it)
{
    it->next = NULL;
    if (d->immediate_tail)
        d->immediate_tail->next = it;
    else
        d->immediate = it;
    d->immediate_tail = it;
}

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
        if (d->o->ignore_robots && d->hosts.len > 4 * d->window + 1024) sweep(d, now);
        char key[CRAWL_HOSTKEY_MAX + 64];
        it->host = host_get(d, host_key(d, l.host, key, sizeof key));
        if (it->host) it->host->refs++;
        if (!it->host) {
            it->invalid = "out of memory";
            push_immediate(d, it);
            continue;
        }
        enqueue(d, it->host, it, false);
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
    char key[CRAWL_HOSTKEY_MAX + 64];
    crawl_host_t *x = host_get(d, host_key(d, url_key, key, sizeof key));
    if (!x) return -ENOMEM;
    crawl_host_t *old = it->host;
    x->refs++;
    it->host = x;
    it->ready_ns = now;
    enqueue(d, x, it, true);
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

bool crawl_dispatch_idle(const crawl_dispatch_t *d)
{
    return d->eof && d->in_window == 0;
}

int crawl_dispatch_error(const crawl_dispatch_t *d)
{
    return d->error;
}
