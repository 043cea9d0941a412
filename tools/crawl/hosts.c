/* The dispatch window: per-host queues, in-flight limits and token buckets (hosts.h).
 *
 * Hosts live in a weft_htab keyed by host key (values are host pointers). Hosts with queued items
 * are also on a circular "ring" that dispatch walks round robin from a cursor; a host leaves the
 * ring when its queue empties and the table when it is idle (nothing queued or in flight) and its
 * bucket is full again, so that memory follows the window, not the input.
 */
#include "crawl/hosts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <weft/hash.h>
#include <weft/htab.h>
#include <weft/sys.h>

struct crawl_host {
    char *key;
    uint64_t hash;                       /* weft_hash_str(key) */
    crawl_host_t *ring_prev, *ring_next; /* non-NULL while queued items exist */
    crawl_item_t *qhead, *qtail;
    int inflight;
    size_t refs;      /* items of this host in the window: queued, delayed or in flight */
    uint64_t next_ns; /* earliest next start (token bucket) */
};

struct crawl_dispatch {
    const crawl_opts_t *o;
    crawl_input_t *in;
    size_t window, in_window;
    bool eof;
    int error;
    uint64_t interval_ns;                     /* 1/rate, 0: no rate limit */
    weft_htab_t hosts;                        /* key -> crawl_host_t * */
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
    *out = d;
    return 0;
}

static void free_item(crawl_item_t *it)
{
    crawl_result_free(&it->res);
    free(it->retry_after);
    free(it);
}

static void free_host(crawl_host_t *h)
{
    for (crawl_item_t *it = h->qhead, *next; it; it = next) {
        next = it->next;
        free_item(it);
    }
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
    *v = (uintptr_t)x;
    return x;
}

/* Frees `x` if no item refers to it and forgetting it changes nothing (its bucket is full
 * again, so a fresh entry would behave the same). */
static void host_maybe_free(crawl_dispatch_t *d, crawl_host_t *x, uint64_t now)
{
    if (x->refs || x->ring_next || x->next_ns > now) return;
    weft_htab_remove(&d->hosts, x->hash, host_eq, x->key, NULL, NULL);
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
        if (d->hosts.len > 4 * d->window + 1024) sweep(d, now);
        it->host = host_get(d, l.host);
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

static bool host_ready(const crawl_dispatch_t *d, const crawl_host_t *x, uint64_t now)
{
    if (d->o->per_host > 0 && x->inflight >= d->o->per_host) return false;
    return x->next_ns <= now;
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
            if (host_ready(d, x, now)) {
                crawl_item_t *it = x->qhead;
                x->qhead = it->next;
                if (!x->qhead) x->qtail = NULL;
                it->next = NULL;
                x->inflight++;
                if (d->interval_ns) x->next_ns = now + d->interval_ns;
                d->cursor = x->ring_next; /* the next host's turn */
                if (!x->qhead) ring_remove(d, x);
                return it;
            }
            bool capped = d->o->per_host > 0 && x->inflight >= d->o->per_host;
            if (!capped && x->next_ns < *wake_ns) *wake_ns = x->next_ns;
            x = x->ring_next;
        } while (x != start);
    }
    return NULL;
}

void crawl_dispatch_attempt_done(crawl_dispatch_t *d, crawl_item_t *it)
{
    it->host->inflight--;
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
    free_item(it);
    d->in_window--;
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

uint64_t crawl_dispatch_input_offset(const crawl_dispatch_t *d)
{
    return crawl_input_offset(d->in);
}
