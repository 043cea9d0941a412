/* weft logs: the GoAccess panels and the filters (stats-panels.h).
 *
 * Recording is one lookup per panel: the per-day row (a short array searched from its newest
 * date), the unique-visitor set, and one weft_htab per text panel, keyed by a 64-bit hash of the
 * text (weft_hash; equal hashes are equal keys, the 2^-64 chance the path table already
 * accepts). Each entry keeps its first WEFT_LOGS_TK_KEEP bytes of text, hits, bytes and
 * response-time sum, count and maximum. The report derives what needs no per-line work: the
 * operating systems, browsers and crawlers from the user agents' counts, the referring sites from
 * the referrers', the URL-decoded paths (rows whose decoded text is equal are added together).
 *
 * DESIGN: visitors per row (GoAccess's "Visitors" column). A row's visitors are the distinct
 * (client, date, user agent) among its lines - GoAccess's definition, the global one here. They
 * are not a sum: the same visitor on two lines of a row counts once, and once again in another
 * row. So each text table keeps a set of (visitor hash, entry hash) pairs: the same building
 * block as the global set (weft_logs_vset_t: a sorted array of unique 16-byte entries plus an
 * append buffer bucket-sorted and merged in per 1 Mi entries; the global set is the case whose
 * tag is the date), ordered by visitor, then entry, with a 4096-entry cache of recent pairs per
 * table so that a visitor's repeated requests of one row skip the buffer. Sets are unions, so
 * parts merge in any grouping to the same set, and partials carry them (version 4): any -j,
 * chunking, mode or merge gives the same counts. The report reads a table's pairs once in order
 * (a visitor's pairs are adjacent), maps each entry to the row it ended in (the rows merged after
 * URL decoding, the site of a referrer, the OS or browser of a user agent) and counts each
 * visitor once per row, so derived rows are exact too. Memory: 16 bytes per distinct pair, at
 * most one per line; a table past its key limit drops its pairs with the panel (null, as before).
 * Cost: a pair append per line missing the cache, a sort per 1 Mi pairs (docs/logs.md): urls and
 * ips, already opt-in, always count them; agents, referrers and vhosts, in the default report,
 * only with the row-visitors panel, and without it their rows say visitors unknown (null), as
 * do the rows of a table merged from a version 3 partial (which has no pairs).
 */
#include "logs/stats-panels.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft/hash.h>

#include "logs/stats.h"
#include "logs/tables-int.h"
#include "logs/ua.h"

/* ---- text tables --------------------------------------------------------------------------- */

static int tk_init(weft_logs_tk_t *t, uint32_t max)
{
    memset(t, 0, sizeof *t);
    weft_htab_init(&t->index);
    t->max = max;
    t->seen = calloc(WEFT_LOGS_SEEN, sizeof *t->seen);
    return t->seen ? 0 : -ENOMEM;
}

static void tk_free(weft_logs_tk_t *t)
{
    weft_htab_free(&t->index);
    free(t->ents);
    free(t->arena);
    free(t->seen);
    weft_logs_vset_free(&t->vis);
    memset(t, 0, sizeof *t);
}

/* The table holds more keys than its limit: the panel is dropped, and its visitor pairs with it
 * (they would grow without bound and never be shown). */
void weft_logs_tk_overflow(weft_logs_tk_t *t)
{
    t->overflow = true;
    weft_logs_vset_free(&t->vis);
}

static inline weft_logs_ek_t *tk_find(const weft_logs_tk_t *t, uint64_t h)
{
    uint64_t *v = weft_htab_find(&t->index, nonzero(h), NULL, NULL, NULL);
    return v ? &t->ents[*v] : NULL;
}

/* A new entry for `h` with `keep` bytes of text (of `len` in all). NULL when the table is full
 * (then overflow is set and *rc stays 0) or out of memory (*rc = -ENOMEM). */
static weft_logs_ek_t *tk_new(weft_logs_tk_t *t, uint64_t h, const char *text, uint32_t keep,
                              uint32_t len, int *rc)
{
    if (t->used >= t->max) {
        weft_logs_tk_overflow(t);
        return NULL;
    }
    if (t->alen + keep > t->acap) {
        size_t cap = t->acap ? t->acap * 2 : 4096;
        while (cap < t->alen + keep) cap *= 2;
        char *a = realloc(t->arena, cap);
        if (!a) goto oom;
        t->arena = a;
        t->acap = cap;
    }
    if (t->used == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        weft_logs_ek_t *e = realloc(t->ents, cap * sizeof *e);
        if (!e) goto oom;
        t->ents = e;
        t->cap = cap;
    }
    bool added;
    uint64_t *v = weft_htab_put(&t->index, nonzero(h), NULL, NULL, NULL, &added);
    if (!v) goto oom;
    *v = t->used;
    weft_logs_ek_t *e = &t->ents[t->used++];
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->off = (uint32_t)t->alen;
    e->len = len;
    if (keep) memcpy(t->arena + t->alen, text, keep);
    t->alen += keep;
    return e;
oom:
    *rc = -ENOMEM;
    return NULL;
}

/* The entry of `h`, made from the `n` segments joined by NUL bytes when new. */
static inline weft_logs_ek_t *tk_entry(weft_logs_tk_t *t, uint64_t h, const char *const *seg,
                                       const size_t *seglen, int n, int *rc)
{
    weft_logs_ek_t *e = tk_find(t, h);
    if (__builtin_expect(e != NULL, 1)) return e;
    char buf[WEFT_LOGS_TK_KEEP];
    size_t len = 0, keep = 0;
    for (int k = 0; k < n; k++) {
        if (k) {
            if (keep < sizeof buf) buf[keep++] = '\0';
            len++;
        }
        size_t c = seglen[k] < sizeof buf - keep ? seglen[k] : sizeof buf - keep;
        if (c) memcpy(buf + keep, seg[k], c);
        keep += c;
        len += seglen[k];
    }
    return tk_new(t, h, buf, (uint32_t)keep, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len, rc);
}

static inline void ek_count(weft_logs_ek_t *e, const weft_logs_rec_t *r)
{
    e->hits++;
    e->bytes += r->bytes;
    if (r->rt_us >= 0) {
        e->rt_sum += (uint64_t)r->rt_us;
        e->rt_n++;
        if ((uint64_t)r->rt_us > e->rt_max) e->rt_max = (uint64_t)r->rt_us;
    }
}

static void ek_add(weft_logs_ek_t *e, const weft_logs_ek_t *s)
{
    e->hits += s->hits;
    e->bytes += s->bytes;
    e->rt_sum += s->rt_sum;
    e->rt_n += s->rt_n;
    if (s->rt_max > e->rt_max) e->rt_max = s->rt_max;
}

int weft_logs_tk_add_pair(weft_logs_tk_t *t, uint64_t vis, uint64_t h)
{
    return t->overflow ? 0 : weft_logs_vset_add(&t->vis, vis, h);
}

int weft_logs_tk_add(weft_logs_tk_t *t, uint64_t h, const char *text, uint32_t len,
                     const weft_logs_ek_t *src)
{
    int rc = 0;
    weft_logs_ek_t *e = tk_find(t, h);
    if (!e) e = tk_new(t, h, text, len < WEFT_LOGS_TK_KEEP ? len : WEFT_LOGS_TK_KEEP, len, &rc);
    if (e) ek_add(e, src);
    return rc;
}

/* ---- the visitor set ----------------------------------------------------------------------- */

#define VSET_PEND (1u << 20) /* buffered entries: 16 MiB, sorted and merged in when full */

static inline bool vis_less(const weft_logs_vis_t *a, const weft_logs_vis_t *b)
{
    return a->hash < b->hash || (a->hash == b->hash && a->tag < b->tag);
}

static inline bool vis_eq(const weft_logs_vis_t *a, const weft_logs_vis_t *b)
{
    return a->hash == b->hash && a->tag == b->tag;
}

static int cmp_vis(const void *x, const void *y)
{
    const weft_logs_vis_t *a = x, *b = y;
    return vis_less(a, b) ? -1 : vis_less(b, a);
}

/* Sorts `a` by (hash, tag) into `out`: one pass into 2^16 buckets by the top 16 bits (the hashes
 * are uniform, so a bucket holds a few entries), then each bucket by insertion, or by qsort when
 * it is large (the pairs of one busy visitor share its hash: a crawler's thousands of URLs).
 * `count` has 2^16 + 1 entries. */
static void bucket_sort(const weft_logs_vis_t *a, weft_logs_vis_t *out, size_t n, size_t *count)
{
    memset(count, 0, (((size_t)1 << 16) + 1) * sizeof *count);
    for (size_t i = 0; i < n; i++) count[(a[i].hash >> 48) + 1]++;
    for (size_t k = 1; k <= (size_t)1 << 16; k++) count[k] += count[k - 1];
    for (size_t i = 0; i < n; i++) out[count[a[i].hash >> 48]++] = a[i];
    /* count[k] is now the end of bucket k */
    for (size_t k = 0, start = 0; k < (size_t)1 << 16; start = count[k++]) {
        if (count[k] - start > 32) {
            qsort(out + start, count[k] - start, sizeof *out, cmp_vis);
            continue;
        }
        for (size_t i = start + 1; i < count[k]; i++) {
            weft_logs_vis_t v = out[i];
            size_t j = i;
            while (j > start && vis_less(&v, &out[j - 1])) {
                out[j] = out[j - 1];
                j--;
            }
            out[j] = v;
        }
    }
}

/* Drops repeated entries from a sorted array; returns the new length. */
static size_t unique(weft_logs_vis_t *a, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || !vis_eq(&a[k - 1], &a[i])) a[k++] = a[i];
    return k;
}

/* Merges the sorted unique `b` into the set's sorted array. Returns 0 or -ENOMEM. */
static int vset_merge_sorted(weft_logs_vset_t *s, const weft_logs_vis_t *b, size_t m)
{
    if (!m) return 0;
    weft_logs_vis_t *a = realloc(s->sorted, (s->n + m) * sizeof *a);
    if (!a) return -ENOMEM;
    s->sorted = a;
    /* backwards, into the end of the grown array, dropping the entries in both */
    size_t i = s->n, j = m, o = s->n + m;
    while (i || j) {
        if (j && (!i || vis_less(&a[i - 1], &b[j - 1]))) {
            a[--o] = b[--j];
        } else {
            if (j && vis_eq(&b[j - 1], &a[i - 1])) j--;
            a[--o] = a[--i];
        }
    }
    size_t k = s->n + m - o;
    memmove(a, a + o, k * sizeof *a);
    s->n = k;
    return 0;
}

/* Sorts the buffer and merges it in. */
static int vset_flush(weft_logs_vset_t *s)
{
    if (!s->npend) return 0;
    weft_logs_vis_t *tmp = malloc(s->npend * sizeof *tmp);
    size_t *count = malloc((((size_t)1 << 16) + 1) * sizeof *count);
    if (!tmp || !count) {
        free(tmp);
        free(count);
        return -ENOMEM;
    }
    bucket_sort(s->pend, tmp, s->npend, count);
    free(count);
    int rc = vset_merge_sorted(s, tmp, unique(tmp, s->npend));
    free(tmp);
    if (!rc) s->npend = 0;
    return rc;
}

void weft_logs_vset_free(weft_logs_vset_t *s)
{
    free(s->sorted);
    free(s->pend);
    memset(s, 0, sizeof *s);
}

int weft_logs_vset_add(weft_logs_vset_t *s, uint64_t hash, uint64_t tag)
{
    if (!s->pend) {
        s->pend = malloc(VSET_PEND * sizeof *s->pend);
        if (!s->pend) return -ENOMEM;
    }
    if (s->npend == VSET_PEND && vset_flush(s) != 0) return -ENOMEM;
    s->pend[s->npend++] = (weft_logs_vis_t){hash, tag};
    return 0;
}

int weft_logs_vset_view(const weft_logs_vset_t *s, weft_logs_vis_t **out, size_t *n)
{
    weft_logs_vset_t v = {NULL, 0, NULL, 0};
    *out = NULL;
    *n = 0;
    if (s->npend) {
        v.pend = malloc(s->npend * sizeof *v.pend);
        if (!v.pend) return -ENOMEM;
        memcpy(v.pend, s->pend, s->npend * sizeof *v.pend);
        v.npend = s->npend;
    }
    int rc = vset_merge_sorted(&v, s->sorted, s->n);
    if (!rc) rc = vset_flush(&v);
    free(v.pend);
    if (rc) {
        free(v.sorted);
        return rc;
    }
    *out = v.sorted;
    *n = v.n;
    return 0;
}

/* ---- the panels' part ---------------------------------------------------------------------- */

int weft_logs_ext_init(weft_logs_ext_t *e)
{
    memset(e, 0, sizeof *e);
    e->seen = calloc(WEFT_LOGS_SEEN, sizeof *e->seen);
    if (!e->seen) return -ENOMEM;
    int rc = tk_init(&e->urls, WEFT_LOGS_TK_MAX) | tk_init(&e->ips, WEFT_LOGS_TK_MAX_IPS) |
             tk_init(&e->agents, WEFT_LOGS_TK_MAX) | tk_init(&e->referrers, WEFT_LOGS_TK_MAX) |
             tk_init(&e->vhosts, WEFT_LOGS_TK_MAX);
    if (rc) {
        weft_logs_ext_free(e);
        return -ENOMEM;
    }
    return 0;
}

void weft_logs_ext_free(weft_logs_ext_t *e)
{
    free(e->days);
    free(e->seen);
    weft_logs_vset_free(&e->visitors);
    tk_free(&e->urls);
    tk_free(&e->ips);
    tk_free(&e->agents);
    tk_free(&e->referrers);
    tk_free(&e->vhosts);
    memset(e, 0, sizeof *e);
}

static weft_logs_day_t *day_row(weft_logs_ext_t *e, uint32_t date, int *rc)
{
    for (size_t i = e->ndays; i-- > 0;)
        if (e->days[i].date == date) return &e->days[i];
    if (e->ndays == e->capdays) {
        size_t cap = e->capdays ? 2 * e->capdays : 16;
        weft_logs_day_t *d = realloc(e->days, cap * sizeof *d);
        if (!d) {
            *rc = -ENOMEM;
            return NULL;
        }
        e->days = d;
        e->capdays = cap;
    }
    weft_logs_day_t *d = &e->days[e->ndays++];
    *d = (weft_logs_day_t){date, 0, 0};
    return d;
}

int weft_logs_ext_add_day(weft_logs_ext_t *e, uint32_t date, uint64_t requests, uint64_t bytes)
{
    int rc = 0;
    weft_logs_day_t *d = day_row(e, date, &rc);
    if (d) {
        d->requests += requests;
        d->bytes += bytes;
    }
    return rc;
}

static inline uint64_t mix(uint64_t h, uint64_t x)
{
    h = (h ^ x) * PHI;
    return h ^ (h >> 29);
}

/* The panels whose rows always count their visitors, and those that do with row-visitors. */
#define ROW_PANELS (WEFT_LOGS_PANEL_URLS | WEFT_LOGS_PANEL_IPS)
#define ROW_PANELS_OPT (WEFT_LOGS_PANEL_AGENTS | WEFT_LOGS_PANEL_REFERRERS | WEFT_LOGS_PANEL_VHOSTS)

/* Counts a line of entry `x` (of table `t`) and adds the pair (visitor `vis`, x's key) to the
 * table's visitor pairs unless its cache knows the pair already; `vis` 0: the row's visitors are
 * not counted (row-visitors is off), and the table says so. */
static inline int tk_count(weft_logs_tk_t *t, weft_logs_ek_t *x, const weft_logs_rec_t *r,
                           uint64_t vis)
{
    ek_count(x, r);
    if (__builtin_expect(t->overflow, 0)) return 0;
    if (!vis) {
        t->novis = true;
        return 0;
    }
    uint64_t p = nonzero(mix(vis, x->hash));
    uint64_t *c = &t->seen[p & (WEFT_LOGS_SEEN - 1)];
    if (*c == p) return 0;
    if (weft_logs_vset_add(&t->vis, vis, x->hash) != 0) return -ENOMEM;
    *c = p;
    return 0;
}

static inline uint64_t text_hash(const char *s, size_t n)
{
    return weft_hash(s, n);
}

/* The client as text bytes for the "ips" table: the address in network order, 4 or 16 bytes. */
static inline uint64_t client_key(const weft_logs_rec_t *r, uint8_t *buf, size_t *len)
{
    if (r->family == 4) {
        buf[0] = (uint8_t)(r->ip4 >> 24);
        buf[1] = (uint8_t)(r->ip4 >> 16);
        buf[2] = (uint8_t)(r->ip4 >> 8);
        buf[3] = (uint8_t)r->ip4;
        *len = 4;
        return hash4(r->ip4);
    }
    memcpy(buf, r->ip6, 16);
    *len = 16;
    return mix(hash6(r->ip6), 6);
}

void weft_logs_ext_prepare(const weft_logs_ext_t *e, const weft_logs_rec_t *r, unsigned panels,
                           weft_logs_exth_t *h)
{
    h->agent = 0;
    h->vis = 0;
    unsigned rows =
        panels & (ROW_PANELS | ((panels & WEFT_LOGS_PANEL_ROWVIS) ? ROW_PANELS_OPT : 0));
    if (r->user_agent && (panels & (WEFT_LOGS_PANEL_VISITORS | WEFT_LOGS_PANEL_AGENTS | rows)))
        h->agent = text_hash(r->user_agent, r->user_agent_len);
    uint8_t ck[16];
    size_t cklen;
    h->client = client_key(r, ck, &cklen);
    if ((panels & WEFT_LOGS_PANEL_VISITORS) || rows) {
        h->visitor = nonzero(mix(mix(h->client, r->date), h->agent));
        h->vis = rows ? h->visitor : 0;
        if (e->seen[h->visitor & (WEFT_LOGS_SEEN - 1)] == h->visitor)
            h->visitor = 0; /* counted already */
    }
    if (panels & WEFT_LOGS_PANEL_IPS) weft_htab_prefetch(&e->ips.index, nonzero(h->client));
    if ((panels & WEFT_LOGS_PANEL_URLS) && r->path) {
        uint64_t u = text_hash(r->path, r->path_len);
        if (r->method) u = mix(u, text_hash(r->method, r->method_len));
        if (r->protocol) u = mix(u ^ 1, text_hash(r->protocol, r->protocol_len));
        h->url = u;
        weft_htab_prefetch(&e->urls.index, nonzero(u));
    }
}

int weft_logs_ext_record(weft_logs_ext_t *e, const weft_logs_rec_t *r, unsigned panels)
{
    weft_logs_exth_t h;
    weft_logs_ext_prepare(e, r, panels, &h);
    return weft_logs_ext_record_h(e, r, panels, &h);
}

int weft_logs_ext_record_h(weft_logs_ext_t *e, const weft_logs_rec_t *r, unsigned panels,
                           const weft_logs_exth_t *hs)
{
    int rc = 0;
    e->panels |= panels;
    if (panels & WEFT_LOGS_PANEL_DAILY) {
        weft_logs_day_t *d = e->ndays && e->days[e->ndays - 1].date == r->date
                                 ? &e->days[e->ndays - 1]
                                 : day_row(e, r->date, &rc);
        if (d) {
            d->requests++;
            d->bytes += r->bytes;
        }
    }
    if (panels & WEFT_LOGS_PANEL_MINUTELY) e->minutely[r->hour * 60 + r->minute]++;
    uint64_t hu = hs->agent, optvis = (panels & WEFT_LOGS_PANEL_ROWVIS) ? hs->vis : 0;
    if ((panels & WEFT_LOGS_PANEL_VISITORS) && hs->visitor &&
        e->seen[hs->visitor & (WEFT_LOGS_SEEN - 1)] != hs->visitor) {
        if (weft_logs_vset_add(&e->visitors, hs->visitor, r->date) != 0)
            rc = -ENOMEM;
        else
            e->seen[hs->visitor & (WEFT_LOGS_SEEN - 1)] = hs->visitor;
    }
    if ((panels & WEFT_LOGS_PANEL_URLS) && r->path) {
        uint64_t h = hs->url;
        const char *seg[3] = {r->method ? r->method : "", r->path, r->protocol ? r->protocol : ""};
        size_t len[3] = {r->method_len, r->path_len, r->protocol_len};
        weft_logs_ek_t *x = tk_entry(&e->urls, h, seg, len, 3, &rc);
        if (x && tk_count(&e->urls, x, r, hs->vis) != 0) rc = -ENOMEM;
    }
    if (panels & WEFT_LOGS_PANEL_IPS) {
        uint8_t ck[16];
        size_t cklen;
        client_key(r, ck, &cklen);
        const char *seg = (const char *)ck;
        weft_logs_ek_t *x = tk_entry(&e->ips, hs->client, &seg, &cklen, 1, &rc);
        if (x && tk_count(&e->ips, x, r, hs->vis) != 0) rc = -ENOMEM;
    }
    if ((panels & WEFT_LOGS_PANEL_AGENTS) && r->user_agent) {
        weft_logs_ek_t *x = tk_entry(&e->agents, hu, &r->user_agent, &r->user_agent_len, 1, &rc);
        if (x && tk_count(&e->agents, x, r, optvis) != 0) rc = -ENOMEM;
    }
    if ((panels & WEFT_LOGS_PANEL_REFERRERS) && r->referrer && r->referrer_len &&
        !(r->referrer_len == 1 && r->referrer[0] == '-')) {
        weft_logs_ek_t *x = tk_entry(&e->referrers, text_hash(r->referrer, r->referrer_len),
                                     &r->referrer, &r->referrer_len, 1, &rc);
        if (x && tk_count(&e->referrers, x, r, optvis) != 0) rc = -ENOMEM;
    }
    if ((panels & WEFT_LOGS_PANEL_VHOSTS) && r->vhost && r->vhost_len) {
        weft_logs_ek_t *x = tk_entry(&e->vhosts, text_hash(r->vhost, r->vhost_len), &r->vhost,
                                     &r->vhost_len, 1, &rc);
        if (x && tk_count(&e->vhosts, x, r, optvis) != 0) rc = -ENOMEM;
    }
    return rc;
}

static int tk_merge(weft_logs_tk_t *dst, const weft_logs_tk_t *src)
{
    int rc = 0;
    if (src->overflow) weft_logs_tk_overflow(dst);
    dst->novis |= src->novis;
    for (size_t i = 0; i < src->used && !dst->overflow; i++) {
        const weft_logs_ek_t *s = &src->ents[i];
        if (weft_logs_tk_add(dst, s->hash, src->arena + s->off, s->len, s) != 0) rc = -ENOMEM;
    }
    weft_logs_vis_t *v;
    size_t nv;
    if (dst->overflow || (!src->vis.n && !src->vis.npend)) return rc;
    if (weft_logs_vset_view(&src->vis, &v, &nv) != 0) return -ENOMEM;
    if (vset_merge_sorted(&dst->vis, v, nv) != 0) rc = -ENOMEM;
    free(v);
    return rc;
}

int weft_logs_ext_merge(weft_logs_ext_t *dst, const weft_logs_ext_t *src)
{
    int rc = 0;
    dst->panels |= src->panels;
    for (size_t i = 0; i < src->ndays; i++)
        rc |= weft_logs_ext_add_day(dst, src->days[i].date, src->days[i].requests,
                                    src->days[i].bytes);
    weft_logs_vis_t *v;
    size_t nv;
    if (weft_logs_vset_view(&src->visitors, &v, &nv) != 0) {
        rc = -ENOMEM;
    } else {
        rc |= vset_merge_sorted(&dst->visitors, v, nv);
        free(v);
    }
    for (int i = 0; i < 1440; i++) dst->minutely[i] += src->minutely[i];
    rc |= tk_merge(&dst->urls, &src->urls) | tk_merge(&dst->ips, &src->ips) |
          tk_merge(&dst->agents, &src->agents) | tk_merge(&dst->referrers, &src->referrers) |
          tk_merge(&dst->vhosts, &src->vhosts);
    return rc ? -ENOMEM : 0;
}

/* ---- filters ------------------------------------------------------------------------------- */

/* The record's time moved to the zone asked for. */
static void tz_convert(const weft_logs_filter_t *f, weft_logs_rec_t *r)
{
    int64_t m = (int64_t)weft_logs_civil_day(WEFT_LOGS_DATE_Y(r->date), WEFT_LOGS_DATE_M(r->date),
                                             WEFT_LOGS_DATE_D(r->date)) *
                    1440 +
                r->hour * 60 + r->minute - r->utc_off_min; /* UTC minutes since 1970 */
    int off = f->tz_off_min;
    if (f->tz_mode == 2) { /* the zone's offset at that hour (zones change on the hour in UTC) */
        static _Thread_local int64_t cached_hour = INT64_MIN;
        static _Thread_local int cached_off;
        int64_t uh = m >= 0 ? m / 60 : -((59 - m) / 60);
        if (uh != cached_hour) {
            time_t t = (time_t)(uh * 3600);
            struct tm tm;
            cached_off = localtime_r(&t, &tm) ? (int)(tm.tm_gmtoff / 60) : 0;
            cached_hour = uh;
        }
        off = cached_off;
    }
    m += off;
    int64_t day = m >= 0 ? m / 1440 : -((1439 - m) / 1440);
    int mod = (int)(m - day * 1440), y, mo, d;
    weft_logs_civil_date((int32_t)day, &y, &mo, &d);
    r->date = WEFT_LOGS_DATE(y, mo, d);
    r->hour = mod / 60;
    r->minute = mod % 60;
    r->utc_off_min = off;
}

bool weft_logs_filter_apply(const weft_logs_filter_t *f, weft_logs_rec_t *r)
{
    if (f->tz_mode) tz_convert(f, r);
    if ((f->since && r->date < f->since) || (f->until && r->date > f->until)) return false;
    if (weft_logs_filtered(f, r)) return false;
    if (f->ignore_statics && r->path && weft_logs_is_static(r->path, r->path_len)) return false;
    if (f->ignore_crawlers && weft_logs_ua_is_crawler(r->user_agent, r->user_agent_len))
        return false;
    if (f->anonymize) {
        if (r->family == 4)
            r->ip4 &= 0xFFFFFF00u;
        else {
            memset(r->ip6 + 6, 0, 10);
            r->ip6_text = NULL; /* printed from its value */
        }
    }
    return true;
}

int weft_logs_tz_parse(const char *s, weft_logs_filter_t *f)
{
    if (strcmp(s, "UTC") == 0 || strcmp(s, "Z") == 0 || strcmp(s, "utc") == 0) {
        f->tz_mode = 1;
        f->tz_off_min = 0;
        f->any = true;
        return 0;
    }
    if ((s[0] == '+' || s[0] == '-') && strlen(s) >= 5) {
        const char *p = s + 1;
        int v[4], n = 0;
        for (; *p && n < 4; p++) {
            if (*p == ':' && n == 2) continue;
            if (*p < '0' || *p > '9') return -EINVAL;
            v[n++] = *p - '0';
        }
        if (n != 4 || *p) return -EINVAL;
        int h = v[0] * 10 + v[1], m = v[2] * 10 + v[3];
        if (h > 23 || m > 59) return -EINVAL;
        f->tz_mode = 1;
        f->tz_off_min = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
        f->any = true;
        return 0;
    }
    char path[512];
    if (!*s || strstr(s, "..") || s[0] == '/' ||
        snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", s) >= (int)sizeof path ||
        access(path, R_OK) != 0)
        return -EINVAL;
    if (setenv("TZ", s, 1) != 0) return -EINVAL;
    tzset();
    f->tz_mode = 2;
    f->any = true;
    return 0;
}

uint32_t weft_logs_date_parse(const char *s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int y = 0, m = 0, d = 0;
    char mon[4], tail;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3 && strlen(s) == 10) {
        /* YYYY-MM-DD */
    } else if (sscanf(s, "%2d/%3[A-Za-z]/%4d%c", &d, mon, &y, &tail) == 3 && strlen(s) == 11) {
        const char *p = strstr(months, mon);
        if (!p || strlen(mon) != 3 || (p - months) % 3) return 0;
        m = (int)(p - months) / 3 + 1;
    } else {
        return 0;
    }
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > 31) return 0;
    return WEFT_LOGS_DATE(y, m, d);
}

int weft_logs_panels_parse(const char *list, unsigned *no_panels)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"daily", WEFT_LOGS_PANEL_DAILY},
                 {"visitors", WEFT_LOGS_PANEL_VISITORS},
                 {"minutely", WEFT_LOGS_PANEL_MINUTELY},
                 {"urls", WEFT_LOGS_PANEL_URLS},
                 {"ips", WEFT_LOGS_PANEL_IPS},
                 {"agents", WEFT_LOGS_PANEL_AGENTS},
                 {"referrers", WEFT_LOGS_PANEL_REFERRERS},
                 {"vhosts", WEFT_LOGS_PANEL_VHOSTS},
                 {"row-visitors", WEFT_LOGS_PANEL_ROWVIS}};
    if (strcmp(list, "all") == 0) {
        *no_panels = 0;
        return 0;
    }
    unsigned off = WEFT_LOGS_PANELS_ALL;
    if (strcmp(list, "default") == 0 || list[0] == '+') off &= ~WEFT_LOGS_PANELS_DEFAULT;
    if (strcmp(list, "default") == 0) {
        *no_panels = off;
        return 0;
    }
    if (strcmp(list, "none") == 0) {
        *no_panels = off;
        return 0;
    }
    for (const char *p = list; *p;) {
        if (*p == '+') p++;
        size_t n = strcspn(p, ",");
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] &&
               !(strlen(names[i].name) == n && memcmp(names[i].name, p, n) == 0))
            i++;
        if (i == sizeof names / sizeof names[0]) return -EINVAL;
        off &= ~names[i].bit;
        p += n + (p[n] == ',');
    }
    *no_panels = off;
    return 0;
}

/* ---- the report ---------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t weft_logs_url_decode(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0 && (hi | lo)) { /* %00 stays as written */
            s[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            s[o++] = s[i];
        }
    }
    return o;
}

static char *dup_text(const char *s, size_t n, bool ellipsis)
{
    char *d = malloc(n + 4);
    if (!d) return NULL;
    memcpy(d, s, n);
    if (ellipsis) memcpy(d + n, "...", 3);
    d[n + (ellipsis ? 3 : 0)] = '\0';
    return d;
}

static int cmp_str0(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

/* Key order: name, method, protocol. */
static int cmp_key(const void *x, const void *y)
{
    const weft_logs_row_t *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    if (!c) c = cmp_str0(a->method, b->method);
    if (!c) c = cmp_str0(a->protocol, b->protocol);
    return c;
}

/* Report order: hits descending, then the key. */
static int cmp_rank(const void *x, const void *y)
{
    const weft_logs_row_t *a = x, *b = y;
    if (a->hits != b->hits) return a->hits > b->hits ? -1 : 1;
    if (a->addr[0]) return memcmp(a->addr, b->addr, sizeof a->addr);
    return cmp_key(a, b);
}

static void row_free(weft_logs_row_t *r)
{
    free(r->name);
    free(r->method);
    free(r->protocol);
}

/* The visitors of each of the `k` merged rows: the table's pairs, sorted by visitor, then by
 * key, are read in one pass; `gid` maps a table entry to its row (SIZE_MAX: none), and a row
 * counts a visitor once however many of its entries the visitor has (a referring site, an
 * operating system, a URL written with and without escapes). Returns 0 or -ENOMEM. */
static int count_visitors(const weft_logs_tk_t *t, const size_t *gid, weft_logs_row_t *rows,
                          size_t k)
{
    if (t->novis) {
        for (size_t i = 0; i < k; i++) rows[i].visitors = WEFT_LOGS_VISITORS_UNKNOWN;
        return 0;
    }
    weft_logs_vis_t *v;
    size_t nv;
    size_t *stamp = malloc((k + 1) * sizeof *stamp);
    if (!stamp || weft_logs_vset_view(&t->vis, &v, &nv) != 0) {
        free(stamp);
        return -ENOMEM;
    }
    for (size_t i = 0; i < k; i++) stamp[i] = SIZE_MAX;
    size_t run = 0;
    for (size_t j = 0; j < nv; j++) {
        if (j && v[j].hash != v[j - 1].hash) run++;
        const weft_logs_ek_t *e = tk_find(t, v[j].tag);
        size_t g = e ? gid[e - t->ents] : SIZE_MAX;
        if (g == SIZE_MAX || stamp[g] == run) continue;
        stamp[g] = run;
        rows[g].visitors++;
    }
    free(v);
    free(stamp);
    return 0;
}

/* Adds together the rows with equal keys, counts their visitors from `t`'s pairs, then ranks
 * them and keeps `top` of them. Returns 0 or -ENOMEM (the panel is made either way). */
static int finish(weft_logs_panel_t *p, weft_logs_row_t *rows, size_t n, size_t top,
                  const weft_logs_tk_t *t)
{
    qsort(rows, n, sizeof *rows, cmp_key);
    size_t *gid = malloc((t->used + 1) * sizeof *gid);
    if (gid)
        for (size_t i = 0; i < t->used; i++) gid[i] = SIZE_MAX;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && cmp_key(&rows[k - 1], &rows[i]) == 0) {
            weft_logs_row_t *d = &rows[k - 1];
            d->hits += rows[i].hits;
            d->bytes += rows[i].bytes;
            d->rt_sum += rows[i].rt_sum;
            d->rt_n += rows[i].rt_n;
            if (rows[i].rt_max > d->rt_max) d->rt_max = rows[i].rt_max;
            row_free(&rows[i]);
        } else {
            rows[k++] = rows[i];
        }
        if (gid) gid[rows[i].src] = k - 1;
    }
    int rc = gid ? count_visitors(t, gid, rows, k) : -ENOMEM;
    free(gid);
    qsort(rows, k, sizeof *rows, cmp_rank);
    for (size_t i = top; i < k; i++) row_free(&rows[i]);
    p->distinct = k;
    p->n = k < top ? k : top;
    p->rows = rows;
    return rc;
}

/* A row of entry `e` of table `t`. */
static weft_logs_row_t row_of(const weft_logs_tk_t *t, const weft_logs_ek_t *e, char *name)
{
    return (weft_logs_row_t){.name = name,
                             .hits = e->hits,
                             .bytes = e->bytes,
                             .rt_sum = e->rt_sum,
                             .rt_n = e->rt_n,
                             .rt_max = e->rt_max,
                             .src = (size_t)(e - t->ents)};
}

typedef enum { AS_TEXT, AS_URL, AS_IP, AS_SITE } kind_t;

/* The host of a referrer URL ("https://ex.org:8080/a" -> "ex.org:8080"); the text itself when it
 * has no scheme. */
static void site_of(const char *s, size_t n, const char **h, size_t *hl)
{
    const char *p = memmem(s, n, "://", 3);
    const char *b = p ? p + 3 : s, *e = s + n;
    const char *slash = memchr(b, '/', (size_t)(e - b));
    if (slash) e = slash;
    const char *q = memchr(b, '?', (size_t)(e - b));
    if (q) e = q;
    *h = b;
    *hl = (size_t)(e - b);
}

/* One row per entry of `t`, its text shown as `kind` says. Returns 0 or -ENOMEM. */
static int panel_from(weft_logs_panel_t *p, const weft_logs_tk_t *t, kind_t kind, size_t top,
                      bool on)
{
    p->present = on && (t->used || t->overflow);
    p->overflow = t->overflow;
    if (!p->present || p->overflow) return 0;
    weft_logs_row_t *rows = calloc(t->used + 1, sizeof *rows);
    if (!rows) return -ENOMEM;
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < t->used && !rc; i++) {
        const weft_logs_ek_t *e = &t->ents[i];
        const char *txt = t->arena + e->off;
        size_t keep = e->len < WEFT_LOGS_TK_KEEP ? e->len : WEFT_LOGS_TK_KEEP;
        weft_logs_row_t r = row_of(t, e, NULL);
        if (kind == AS_IP) {
            char buf[64];
            inet_ntop(e->len == 4 ? AF_INET : AF_INET6, txt, buf, sizeof buf);
            r.name = dup_text(buf, strlen(buf), false);
            r.addr[0] = e->len == 4 ? 4 : 6;
            memcpy(r.addr + 1, txt, e->len == 4 ? 4 : 16);
        } else if (kind == AS_URL) { /* method \0 path \0 protocol */
            const char *z1 = memchr(txt, '\0', keep);
            const char *z2 = z1 ? memchr(z1 + 1, '\0', keep - (size_t)(z1 + 1 - txt)) : NULL;
            const char *path = z1 ? z1 + 1 : txt;
            size_t pl = z2 ? (size_t)(z2 - path) : keep - (size_t)(path - txt);
            r.method = dup_text(txt, z1 ? (size_t)(z1 - txt) : 0, false);
            r.protocol = z2 ? dup_text(z2 + 1, keep - (size_t)(z2 + 1 - txt), false)
                            : dup_text("", 0, false);
            r.name = dup_text(path, pl, false);
            if (r.name) { /* decoded, then "..." when the text was cut */
                size_t dl = weft_logs_url_decode(r.name, pl);
                memcpy(r.name + dl, e->len > keep ? "..." : "", e->len > keep ? 4 : 1);
            }
        } else if (kind == AS_SITE) {
            const char *h;
            size_t hl;
            site_of(txt, keep, &h, &hl);
            r.name = dup_text(h, hl, false);
        } else {
            r.name = dup_text(txt, keep, e->len > keep);
        }
        if (!r.name || (kind == AS_URL && (!r.method || !r.protocol))) {
            row_free(&r);
            rc = -ENOMEM;
        } else {
            rows[n++] = r;
        }
    }
    int frc = finish(p, rows, n, top, t);
    return rc ? rc : frc;
}

static int cmp_day(const void *x, const void *y)
{
    uint32_t a = ((const weft_logs_day_row_t *)x)->date, b = ((const weft_logs_day_row_t *)y)->date;
    return (a > b) - (a < b);
}

/* The operating systems, browsers and crawlers from the user agents' counts. */
static int agents_build(weft_logs_ext_report_t *out, const weft_logs_tk_t *t, size_t top, bool on)
{
    weft_logs_panel_t *ps[3] = {&out->os, &out->browsers, &out->crawlers};
    for (int k = 0; k < 3; k++) {
        ps[k]->present = on && (t->used || t->overflow);
        ps[k]->overflow = t->overflow;
    }
    if (!out->os.present || t->overflow) return 0;
    weft_logs_row_t *rows[3];
    size_t n[3] = {0, 0, 0};
    int rc = 0;
    for (int k = 0; k < 3; k++) {
        rows[k] = calloc(t->used + 1, sizeof *rows[k]);
        if (!rows[k]) rc = -ENOMEM;
    }
    for (size_t i = 0; i < t->used && !rc; i++) {
        const weft_logs_ek_t *e = &t->ents[i];
        weft_logs_ua_class_t c = weft_logs_ua_classify(
            t->arena + e->off, e->len < WEFT_LOGS_TK_KEEP ? e->len : WEFT_LOGS_TK_KEEP);
        const char *names[3] = {c.os, c.browser, c.crawler};
        for (int k = 0; k < 3 && !rc; k++) {
            if (!names[k]) continue;
            char *nm = dup_text(names[k], strlen(names[k]), false);
            if (!nm)
                rc = -ENOMEM;
            else
                rows[k][n[k]++] = row_of(t, e, nm);
        }
    }
    for (int k = 0; k < 3; k++) {
        if (rows[k] && finish(ps[k], rows[k], n[k], top, t) != 0) rc = -ENOMEM;
    }
    return rc;
}

int weft_logs_ext_report_build(const weft_logs_ext_t *e, size_t top_n, weft_logs_ext_report_t *out)
{
    memset(out, 0, sizeof *out);
    out->panels = e->panels;
    int rc = 0;
    if (e->panels & WEFT_LOGS_PANEL_DAILY) {
        out->days = calloc(e->ndays + 1, sizeof *out->days);
        if (!out->days) return -ENOMEM;
        for (size_t i = 0; i < e->ndays; i++)
            out->days[i] =
                (weft_logs_day_row_t){e->days[i].date, e->days[i].requests, 0, e->days[i].bytes};
        out->ndays = e->ndays;
        qsort(out->days, out->ndays, sizeof *out->days, cmp_day);
    }
    if (e->panels & WEFT_LOGS_PANEL_VISITORS) {
        weft_logs_vis_t *v;
        size_t nv;
        if (weft_logs_vset_view(&e->visitors, &v, &nv) != 0) return -ENOMEM;
        out->visitors = nv;
        for (size_t i = 0; i < nv && out->ndays; i++) {
            weft_logs_day_row_t key = {.date = (uint32_t)v[i].tag};
            weft_logs_day_row_t *d =
                bsearch(&key, out->days, out->ndays, sizeof *out->days, cmp_day);
            if (d) d->visitors++;
        }
        free(v);
    }
    memcpy(out->minutely, e->minutely, sizeof out->minutely);
    rc |= panel_from(&out->urls, &e->urls, AS_URL, top_n, e->panels & WEFT_LOGS_PANEL_URLS);
    rc |= panel_from(&out->ips, &e->ips, AS_IP, top_n, e->panels & WEFT_LOGS_PANEL_IPS);
    rc |= agents_build(out, &e->agents, top_n, e->panels & WEFT_LOGS_PANEL_AGENTS);
    rc |= panel_from(&out->referrers, &e->referrers, AS_TEXT, top_n,
                     e->panels & WEFT_LOGS_PANEL_REFERRERS);
    rc |= panel_from(&out->sites, &e->referrers, AS_SITE, top_n,
                     e->panels & WEFT_LOGS_PANEL_REFERRERS);
    rc |= panel_from(&out->vhosts, &e->vhosts, AS_TEXT, top_n, e->panels & WEFT_LOGS_PANEL_VHOSTS);
    return rc ? -ENOMEM : 0;
}

static void panel_free(weft_logs_panel_t *p)
{
    for (size_t i = 0; i < p->n; i++) row_free(&p->rows[i]);
    free(p->rows);
}

void weft_logs_ext_report_free(weft_logs_ext_report_t *r)
{
    free(r->days);
    panel_free(&r->urls);
    panel_free(&r->ips);
    panel_free(&r->os);
    panel_free(&r->browsers);
    panel_free(&r->crawlers);
    panel_free(&r->referrers);
    panel_free(&r->sites);
    panel_free(&r->vhosts);
    memset(r, 0, sizeof *r);
}
