/* weft logs: the final report of a part (stats.h): top clients and paths by bounded heaps with
 * total orders (count descending, then the key), and the response-time percentiles.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logs/tables-int.h"

/* ---- report -------------------------------------------------------------------------------- */

int weft_logs_ipcount_cmp(const weft_logs_ipcount_t *a, const weft_logs_ipcount_t *b)
{
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    if (a->family != b->family) return a->family < b->family ? -1 : 1;
    return memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16);
}

static int cmp_ipcount(const void *a, const void *b)
{
    return weft_logs_ipcount_cmp(a, b);
}

void weft_logs_ip_text(const weft_logs_ipcount_t *ip, char *buf, size_t len)
{
    if (ip->family == 6 && ip->text[0]) {
        snprintf(buf, len, "%s", ip->text);
        return;
    }
    if (!inet_ntop(ip->family == 4 ? AF_INET : AF_INET6, ip->addr, buf, (socklen_t)len))
        snprintf(buf, len, "?");
}

/* A bounded heap of the best `cap` entries (at most TOPK_ITEM bytes each); the root is the worst
 * kept. */
#define TOPK_ITEM 128
_Static_assert(sizeof(weft_logs_ipcount_t) <= TOPK_ITEM, "a top-list item fits the heap's swap");
typedef struct {
    void *items;
    size_t n, cap, size;
    int (*cmp)(const void *, const void *);
} topk_t;

static void topk_sift(topk_t *t, size_t i)
{
    char *a = t->items;
    char tmp[TOPK_ITEM];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < t->n && t->cmp(a + l * t->size, a + w * t->size) > 0) w = l;
        if (r < t->n && t->cmp(a + r * t->size, a + w * t->size) > 0) w = r;
        if (w == i) return;
        memcpy(tmp, a + i * t->size, t->size);
        memcpy(a + i * t->size, a + w * t->size, t->size);
        memcpy(a + w * t->size, tmp, t->size);
        i = w;
    }
}

static void topk_push(topk_t *t, const void *item)
{
    char *a = t->items;
    if (t->n < t->cap) {
        size_t i = t->n++;
        memcpy(a + i * t->size, item, t->size);
        while (i > 0) { /* sift up: the worse one goes to the root */
            size_t parent = (i - 1) / 2;
            if (t->cmp(a + i * t->size, a + parent * t->size) <= 0) break;
            char tmp[TOPK_ITEM];
            memcpy(tmp, a + i * t->size, t->size);
            memcpy(a + i * t->size, a + parent * t->size, t->size);
            memcpy(a + parent * t->size, tmp, t->size);
            i = parent;
        }
    } else if (t->cap && t->cmp(item, a) < 0) {
        memcpy(a, item, t->size);
        topk_sift(t, 0);
    }
}

typedef struct {
    const char *text;
    uint32_t len;
    uint64_t count, hash;
} pathc_t;
_Static_assert(sizeof(pathc_t) <= TOPK_ITEM, "a top-list item fits the heap's swap");

static int cmp_pathc(const void *x, const void *y)
{
    const pathc_t *a = x, *b = y;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    uint32_t ka = path_keep(a->len), kb = path_keep(b->len);
    int c = memcmp(a->text, b->text, ka < kb ? ka : kb);
    if (c) return c;
    if (ka != kb) return ka < kb ? -1 : 1;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return (a->hash > b->hash) - (a->hash < b->hash);
}

/* The top `n` paths of a table (count descending, then text), as owned strings. */
static int top_of(const weft_logs_tp_t *tp, size_t n, bool *overflow, uint64_t *distinct,
                  weft_logs_pathcount_t **list, size_t *count)
{
    *overflow = tp->overflow;
    *count = 0;
    if (tp->overflow) return 0;
    *distinct = tp->recounted ? WEFT_LOGS_DISTINCT_UNKNOWN : tp->used;
    pathc_t *pc = calloc(n ? n : 1, sizeof *pc);
    if (!pc) return -ENOMEM;
    topk_t t = {pc, 0, n, sizeof *pc, cmp_pathc};
    for (size_t i = 0; i < tp->used; i++) {
        const weft_logs_ep_t *e = &tp->ents[i];
        pathc_t c = {tp->arena + e->off, e->len, tp_count(tp, i), e->hash};
        topk_push(&t, &c);
    }
    qsort(pc, t.n, sizeof *pc, cmp_pathc);
    *list = calloc(t.n ? t.n : 1, sizeof **list);
    if (!*list) {
        free(pc);
        return -ENOMEM;
    }
    for (size_t i = 0; i < t.n; i++) {
        uint32_t keep = path_keep(pc[i].len);
        char *s = malloc(keep + 4);
        if (!s) {
            free(pc);
            return -ENOMEM;
        }
        memcpy(s, pc[i].text, keep);
        strcpy(s + keep, keep < pc[i].len ? "..." : "");
        (*list)[i] = (weft_logs_pathcount_t){s, pc[i].count};
        *count = i + 1;
    }
    free(pc);
    return 0;
}

uint64_t weft_logs_round_quantile(uint64_t us)
{
    uint64_t p = 1;
    while (us / p >= 1000) p *= 10;
    return p == 1 ? us : (us + p / 2) / p * p;
}

int weft_logs_report_build(const weft_logs_part_t *p, size_t top_n, size_t top_paths,
                           weft_logs_report_t *out)
{
    memset(out, 0, sizeof *out);
    out->lines = p->lines;
    out->parsed = p->parsed;
    out->malformed = p->malformed;
    out->excluded = p->excluded;
    out->bytes = p->bytes;
    memcpy(out->hourly, p->hourly, sizeof out->hourly);
    memcpy(out->status, p->status, sizeof out->status);
    const weft_hist_t *h = &p->rt;
    out->rt_count = h->count;
    if (h->count) {
        out->rt_sum = h->sum;
        out->rt_min = h->min;
        out->rt_max = h->max;
        out->rt_avg = (h->sum + h->count / 2) / h->count;
        out->rt_p50 = weft_logs_round_quantile(weft_hist_quantile(h, 0.50));
        out->rt_p90 = weft_logs_round_quantile(weft_hist_quantile(h, 0.90));
        out->rt_p95 = weft_logs_round_quantile(weft_hist_quantile(h, 0.95));
        out->rt_p99 = weft_logs_round_quantile(weft_hist_quantile(h, 0.99));
    }

    /* Top IPs: one bounded heap over both tables. */
    out->top = calloc(top_n ? top_n : 1, sizeof *out->top);
    if (!out->top) return -ENOMEM;
    topk_t t = {out->top, 0, top_n, sizeof(weft_logs_ipcount_t), cmp_ipcount};
    for (int k = 0; k < WEFT_LOGS_PARTS; k++) {
        const weft_logs_t4_t *t4 = &p->ip4[k];
        out->distinct_ips += t4->used;
        for (uint32_t i = 0; i <= t4->mask; i++) {
            const weft_logs_e4_t *e = &t4->slots[i];
            if (!e->count) continue;
            uint64_t c = e->count + (t4->nspill ? spill_get(t4, e->key) : 0);
            if (t.n == t.cap && (t.cap == 0 || c < out->top[0].count)) continue;
            weft_logs_ipcount_t ic = {.family = 4, .count = c};
            uint32_t be = htonl(e->key);
            memcpy(ic.addr, &be, 4);
            topk_push(&t, &ic);
        }
    }
    out->distinct_ips += p->ip6.used;
    for (size_t i = 0; i < p->ip6.used; i++) {
        const weft_logs_e6_t *e = &p->ip6.ents[i];
        weft_logs_ipcount_t ic = {.family = 6, .count = e->count};
        memcpy(ic.addr, e->addr, 16);
        memcpy(ic.text, e->text, sizeof ic.text);
        topk_push(&t, &ic);
    }
    out->ntop = t.n;
    qsort(out->top, out->ntop, sizeof *out->top, cmp_ipcount);

    /* Top paths, and the not-found ones. */
    int rc = top_of(&p->paths, top_paths, &out->paths_overflow, &out->distinct_paths,
                    &out->top_paths, &out->npaths);
    if (!rc)
        rc = top_of(&p->paths404, top_paths, &out->paths404_overflow, &out->distinct_paths404,
                    &out->top_paths404, &out->npaths404);
    if (!rc)
        rc = top_of(&p->statics, top_paths, &out->statics_overflow, &out->distinct_statics,
                    &out->top_statics, &out->nstatics);
    out->static_hits = p->statics.recounted ? p->statics.total : 0;
    for (size_t i = 0; i < p->statics.used && !p->statics.overflow && !p->statics.recounted; i++)
        out->static_hits += tp_count(&p->statics, i);
    if (!rc) rc = weft_logs_ext_report_build(&p->ext, top_paths, &out->ext);
    /* The "ips" panel's IPv6 clients as written in the log, as in top_ips. */
    for (size_t i = 0; !rc && i < out->ext.ips.n; i++) {
        weft_logs_row_t *w = &out->ext.ips.rows[i];
        const weft_logs_e6_t *e = w->addr[0] == 6 ? weft_logs_t6_find(&p->ip6, w->addr + 1) : NULL;
        if (!e || !e->text[0]) continue;
        char *name = malloc(strlen(e->text) + 1);
        if (name) memcpy(name, e->text, strlen(e->text) + 1);
        if (!name) {
            rc = -ENOMEM;
            break;
        }
        free(w->name);
        w->name = name;
    }
    return rc;
}

void weft_logs_report_free(weft_logs_report_t *r)
{
    weft_logs_ext_report_free(&r->ext);
    free(r->top);
    for (size_t i = 0; i < r->npaths; i++) free(r->top_paths[i].path);
    free(r->top_paths);
    for (size_t i = 0; i < r->npaths404; i++) free(r->top_paths404[i].path);
    free(r->top_paths404);
    for (size_t i = 0; i < r->nstatics; i++) free(r->top_statics[i].path);
    free(r->top_statics);
    memset(r, 0, sizeof *r);
}
