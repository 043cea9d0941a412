/* weft logs: the serialized form of a part (stats.h): writing it (sorted, so that equal parts
 * give equal bytes, or in table order), and checking and merging one read back. Little-endian
 * varints behind a header with a CRC-32 of the payload; see weft_logs_part_serialize.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/err.h>
#include <zlib.h>

#include "common/bytes-int.h"
#include "logs/tables-int.h"

/* ---- serialization ------------------------------------------------------------------------- */

#define MAGIC "WEFTLOGP"
#define VERSION                                                                                    \
    4             /* 2 added the 404 and static paths after the paths, 3 the GoAccess panels       \
                     (stats-panels.h) after them, 4 each text table's visitor pairs; 1 to 3 are    \
                     still read */
#define HEADER 28 /* magic 8, version 4, flags 4, payload length 8, crc 4 */
#define FLAG_PATHS_OVERFLOW 1u
#define FLAG_404_OVERFLOW 2u
#define FLAG_STATIC_OVERFLOW 4u

static int put_varint(weft_buf_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    return weft_buf_append(b, tmp, n);
}

typedef struct {
    uint32_t key;
    uint64_t count;
} kv4_t;

static int cmp_kv4(const void *a, const void *b)
{
    uint32_t x = ((const kv4_t *)a)->key, y = ((const kv4_t *)b)->key;
    return (x > y) - (x < y);
}

static int cmp_e6(const void *a, const void *b)
{
    return memcmp(((const weft_logs_e6_t *)a)->addr, ((const weft_logs_e6_t *)b)->addr, 16);
}

static int cmp_ep(const void *a, const void *b)
{
    uint64_t x = ((const weft_logs_ep_t *)a)->hash, y = ((const weft_logs_ep_t *)b)->hash;
    return (x > y) - (x < y);
}

/* The histogram: count, sum, min, max, then its non-empty buckets (index deltas and counts);
 * decode() restores them with weft_hist_add_bucket() and weft_hist_add_totals(). */
static int put_hist(weft_buf_t *b, const weft_hist_t *h)
{
    int rc = put_varint(b, h->count) | put_varint(b, h->sum);
    if (h->count) rc |= put_varint(b, h->min) | put_varint(b, h->max);
    size_t nb = 0;
    for (size_t i = 0; i < WEFT_HIST_BUCKETS; i++) nb += weft_hist_bucket_count(h, i) != 0;
    rc |= put_varint(b, nb);
    size_t prev = 0;
    for (size_t i = 0; i < WEFT_HIST_BUCKETS; i++) {
        uint64_t n = weft_hist_bucket_count(h, i);
        if (!n) continue;
        rc |= put_varint(b, i - prev) | put_varint(b, n);
        prev = i;
    }
    return rc;
}

/* A path table: its count, then each path's hash, count, length and kept text (by hash when
 * sorted). Returns 0 or -ENOMEM. */
static int put_paths(weft_buf_t *out, const weft_logs_tp_t *t, bool sorted)
{
    weft_logs_ep_t *ep = malloc((t->used + 1) * sizeof *ep);
    if (!ep) return -ENOMEM;
    size_t np = 0;
    for (size_t i = 0; i < t->used; i++) ep[np++] = t->ents[i];
    if (sorted) qsort(ep, np, sizeof *ep, cmp_ep);
    int rc = put_varint(out, np);
    for (size_t i = 0; i < np && !rc; i++) {
        uint8_t h[8];
        tools_store_le64(h, ep[i].hash);
        rc = weft_buf_append(out, h, 8) | put_varint(out, *tp_find(t, ep[i].hash) & ~TP_STATIC) |
             put_varint(out, ep[i].len) |
             weft_buf_append(out, t->arena + ep[i].off, path_keep(ep[i].len));
    }
    free(ep);
    return rc ? -ENOMEM : 0;
}

static int cmp_ek(const void *a, const void *b)
{
    uint64_t x = ((const weft_logs_ek_t *)a)->hash, y = ((const weft_logs_ek_t *)b)->hash;
    return (x > y) - (x < y);
}

static int cmp_day(const void *a, const void *b)
{
    uint32_t x = ((const weft_logs_day_t *)a)->date, y = ((const weft_logs_day_t *)b)->date;
    return (x > y) - (x < y);
}

/* A text table: overflow flag, count, then each entry's hash, hits, bytes, response-time sum,
 * count and maximum, length and kept text (by hash when sorted); then (version 4) whether its
 * visitors are unknown, the number of its (visitor, entry hash) pairs and the pairs, 8 + 8
 * bytes each, sorted in either case. */
static int put_tk(weft_buf_t *out, const weft_logs_tk_t *t, bool sorted)
{
    weft_logs_ek_t *e = malloc((t->used + 1) * sizeof *e);
    if (!e) return -ENOMEM;
    if (t->used) memcpy(e, t->ents, t->used * sizeof *e);
    if (sorted) qsort(e, t->used, sizeof *e, cmp_ek);
    int rc = put_varint(out, t->overflow) | put_varint(out, t->used);
    for (size_t i = 0; i < t->used && !rc; i++) {
        uint8_t h[8];
        tools_store_le64(h, e[i].hash);
        rc = weft_buf_append(out, h, 8) | put_varint(out, e[i].hits) | put_varint(out, e[i].bytes) |
             put_varint(out, e[i].rt_sum) | put_varint(out, e[i].rt_n) |
             put_varint(out, e[i].rt_max) | put_varint(out, e[i].len) |
             weft_buf_append(out, t->arena + e[i].off,
                             e[i].len < WEFT_LOGS_TK_KEEP ? e[i].len : WEFT_LOGS_TK_KEEP);
    }
    free(e);
    weft_logs_vis_t *v = NULL;
    size_t nv = 0;
    if (rc || weft_logs_vset_view(&t->vis, &v, &nv) != 0) return -ENOMEM;
    rc = put_varint(out, t->novis) | put_varint(out, nv) | weft_buf_reserve(out, nv * 16);
    for (size_t i = 0; i < nv && !rc; i++) {
        uint8_t h[16];
        tools_store_le64(h, v[i].hash);
        tools_store_le64(h + 8, v[i].tag);
        rc = weft_buf_append(out, h, 16);
    }
    free(v);
    return rc ? -ENOMEM : 0;
}

/* The panels: the mask, the days (date, requests, bytes), the visitor set (hash, date), the
 * non-zero minutes (index delta, count), then the five text tables. */
static int put_ext(weft_buf_t *out, const weft_logs_ext_t *x, bool sorted)
{
    int rc = put_varint(out, x->panels) | put_varint(out, x->ndays);
    weft_logs_day_t *d = malloc((x->ndays + 1) * sizeof *d);
    weft_logs_vis_t *v = NULL;
    size_t nv = 0;
    if (!d || weft_logs_vset_view(&x->visitors, &v, &nv) != 0) {
        free(d);
        return -ENOMEM;
    }
    if (x->ndays) memcpy(d, x->days, x->ndays * sizeof *d);
    if (sorted) qsort(d, x->ndays, sizeof *d, cmp_day);
    for (size_t i = 0; i < x->ndays; i++)
        rc |= put_varint(out, d[i].date) | put_varint(out, d[i].requests) |
              put_varint(out, d[i].bytes);
    rc |= put_varint(out, nv); /* sorted by hash in either case */
    if (!rc) rc = weft_buf_reserve(out, nv * 12);
    for (size_t i = 0; i < nv && !rc; i++) {
        uint8_t h[8];
        tools_store_le64(h, v[i].hash);
        rc = weft_buf_append(out, h, 8) | put_varint(out, v[i].tag);
    }
    free(d);
    free(v);
    size_t nm = 0;
    for (int i = 0; i < 1440; i++) nm += x->minutely[i] != 0;
    rc |= put_varint(out, nm);
    for (int i = 0, prev = 0; i < 1440; i++) {
        if (!x->minutely[i]) continue;
        rc |= put_varint(out, (uint64_t)(i - prev)) | put_varint(out, x->minutely[i]);
        prev = i;
    }
    if (rc) return -ENOMEM;
    const weft_logs_tk_t *t[5] = {&x->urls, &x->ips, &x->agents, &x->referrers, &x->vhosts};
    for (int k = 0; k < 5 && !rc; k++) rc = put_tk(out, t[k], sorted);
    return rc;
}

int weft_logs_part_serialize(const weft_logs_part_t *p, weft_buf_t *out, bool sorted)
{
    size_t start = out->len;
    uint8_t hdr[HEADER] = {0};
    int rc = weft_buf_append(out, hdr, sizeof hdr);
    rc |= put_varint(out, p->lines) | put_varint(out, p->parsed) | put_varint(out, p->malformed) |
          put_varint(out, p->bytes) | put_varint(out, p->excluded);
    for (int h = 0; h < 24; h++) rc |= put_varint(out, p->hourly[h]);
    size_t ns = 0;
    for (int c = 0; c < WEFT_LOGS_STATUS_MAX; c++) ns += p->status[c] != 0;
    rc |= put_varint(out, ns);
    for (int c = 0; c < WEFT_LOGS_STATUS_MAX; c++)
        if (p->status[c]) rc |= put_varint(out, (uint64_t)c) | put_varint(out, p->status[c]);
    rc |= put_hist(out, &p->rt);
    if (rc) return rc < 0 ? rc : -ENOMEM;

    /* IPv4: 4 key bytes and a varint count each. */
    size_t n4 = 0;
    for (int k = 0; k < WEFT_LOGS_PARTS; k++) n4 += p->ip4[k].used;
    kv4_t *kv = NULL;
    if (sorted && n4) {
        kv = malloc(n4 * sizeof *kv);
        if (!kv) return -ENOMEM;
    }
    rc = put_varint(out, n4);
    if (!rc) rc = weft_buf_reserve(out, n4 * 6);
    size_t m = 0;
    for (int k = 0; k < WEFT_LOGS_PARTS && !rc; k++) {
        const weft_logs_t4_t *t = &p->ip4[k];
        for (uint32_t i = 0; i <= t->mask && !rc; i++) {
            const weft_logs_e4_t *e = &t->slots[i];
            if (!e->count) continue;
            uint64_t c = e->count + (t->nspill ? spill_get(t, e->key) : 0);
            if (kv) {
                kv[m++] = (kv4_t){e->key, c};
            } else {
                uint8_t key[4];
                tools_store_le32(key, e->key);
                rc = weft_buf_append(out, key, 4) | put_varint(out, c);
            }
        }
    }
    if (kv) {
        qsort(kv, m, sizeof *kv, cmp_kv4);
        for (size_t i = 0; i < m && !rc; i++) {
            uint8_t key[4];
            tools_store_le32(key, kv[i].key);
            rc = weft_buf_append(out, key, 4) | put_varint(out, kv[i].count);
        }
        free(kv);
    }
    if (rc) return rc < 0 ? rc : -ENOMEM;

    /* IPv6 and paths: copied out, optionally sorted. */
    weft_logs_e6_t *e6 = malloc((p->ip6.used + 1) * sizeof *e6);
    if (!e6) return -ENOMEM;
    size_t n6 = 0;
    for (size_t i = 0; i < p->ip6.used; i++) e6[n6++] = p->ip6.ents[i];
    if (sorted) qsort(e6, n6, sizeof *e6, cmp_e6);
    rc = put_varint(out, n6);
    for (size_t i = 0; i < n6 && !rc; i++) { /* from version 4 with its spelling */
        size_t tl = strlen(e6[i].text);
        rc = weft_buf_append(out, e6[i].addr, 16) | put_varint(out, e6[i].count) |
             put_varint(out, tl) | weft_buf_append(out, e6[i].text, tl);
    }
    free(e6);
    if (!rc) rc = put_paths(out, &p->paths, sorted);
    if (!rc) rc = put_paths(out, &p->paths404, sorted);
    if (!rc) rc = put_paths(out, &p->statics, sorted);
    if (!rc) rc = put_ext(out, &p->ext, sorted);
    if (rc) return rc < 0 ? rc : -ENOMEM;

    uint8_t *h = (uint8_t *)out->data + start;
    size_t plen = out->len - start - HEADER;
    memcpy(h, MAGIC, 8);
    tools_store_le32(h + 8, VERSION);
    /* A recounted path table (run.c) holds only the most requested paths: a partial cannot
     * carry the rest, so it says overflow and the merge leaves the panel out. */
    tools_store_le32(h + 12,
                     (p->paths.overflow || p->paths.recounted ? FLAG_PATHS_OVERFLOW : 0) |
                         (p->paths404.overflow || p->paths404.recounted ? FLAG_404_OVERFLOW : 0) |
                         (p->statics.overflow || p->statics.recounted ? FLAG_STATIC_OVERFLOW : 0));
    tools_store_le64(h + 16, plen);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < plen;) { /* crc32 takes a uInt length */
        size_t n = plen - off > (1u << 30) ? (1u << 30) : plen - off;
        crc = crc32(crc, h + HEADER + off, (uInt)n);
        off += n;
    }
    tools_store_le32(h + 24, (uint32_t)crc);
    return 0;
}

/* ---- deserialization ----------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
    const char *what;             /* the first problem found */
    uint64_t n4[WEFT_LOGS_PARTS]; /* IPv4 entries per partition (counted by the check) */
    uint64_t sampled[WEFT_LOGS_PARTS], fresh[WEFT_LOGS_PARTS]; /* of them: looked up, new */
    uint32_t version;
} rd_t;

static uint64_t get_varint(rd_t *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            if (!r->what) r->what = "truncated";
            return 0;
        }
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    if (!r->what) r->what = "bad number encoding";
    return 0;
}

static const uint8_t *get_bytes(rd_t *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        if (!r->what) r->what = "truncated";
        return NULL;
    }
    const uint8_t *s = r->p;
    r->p += n;
    return s;
}

static bool bad(rd_t *r, const char *what)
{
    if (!r->what) r->what = what;
    return false;
}

static bool add_ok(uint64_t *acc, uint64_t v)
{
    return !__builtin_add_overflow(*acc, v, acc);
}

/* A path table (put_paths) whose counts add up to at most `most`, into `t` when applying. */
static bool get_paths(rd_t *r, weft_logs_tp_t *t, uint64_t most, bool apply, int *oom)
{
    uint64_t np = get_varint(r), sum = 0;
    if (np > WEFT_LOGS_MAX_PATHS || np > most) return bad(r, "bad path count");
    for (uint64_t i = 0; i < np && !r->what; i++) {
        const uint8_t *h = get_bytes(r, 8);
        uint64_t c = get_varint(r), len = get_varint(r);
        if (!h || !c || len == 0 || len > UINT32_MAX) return bad(r, "bad path entry");
        const uint8_t *text = get_bytes(r, path_keep((uint32_t)len));
        if (!text) return false;
        if (!add_ok(&sum, c)) return bad(r, "path counts overflow");
        if (apply && !t->overflow &&
            weft_logs_tp_add(t, tools_load_le64(h), (const char *)text, (uint32_t)len,
                             path_keep((uint32_t)len), c) != 0)
            *oom = -ENOMEM;
    }
    if (!r->what && sum > most) return bad(r, "path counts exceed lines");
    return !r->what;
}

/* A text table (put_tk) whose hits add up to at most `most`. */
static bool get_tk(rd_t *r, weft_logs_tk_t *t, uint64_t most, bool apply, int *oom)
{
    uint64_t of = get_varint(r), n = get_varint(r), sum = 0;
    if (of > 1 || n > most || n > t->max) return bad(r, "bad panel table count");
    for (uint64_t i = 0; i < n && !r->what; i++) {
        const uint8_t *h = get_bytes(r, 8);
        weft_logs_ek_t e = {0};
        e.hits = get_varint(r);
        e.bytes = get_varint(r);
        e.rt_sum = get_varint(r);
        e.rt_n = get_varint(r);
        e.rt_max = get_varint(r);
        uint64_t len = get_varint(r);
        if (!h || !e.hits || e.rt_n > e.hits || len > UINT32_MAX || e.rt_max > e.rt_sum ||
            (!e.rt_n && e.rt_sum))
            return bad(r, "bad panel entry");
        const uint8_t *text = get_bytes(r, len < WEFT_LOGS_TK_KEEP ? len : WEFT_LOGS_TK_KEEP);
        if (!text) return false;
        if (!add_ok(&sum, e.hits)) return bad(r, "panel counts overflow");
        if (apply && !t->overflow &&
            weft_logs_tk_add(t, tools_load_le64(h), (const char *)text, (uint32_t)len, &e) != 0)
            *oom = -ENOMEM;
    }
    if (!r->what && sum > most) return bad(r, "panel counts exceed lines");
    if (apply && of) weft_logs_tk_overflow(t);
    if (r->version < 4) { /* no pairs: this table's visitors cannot be counted */
        if (apply && n) t->novis = true;
        return !r->what;
    }
    uint64_t novis = get_varint(r), np = get_varint(r);
    if (novis > 1 || np > sum || np > (uint64_t)(r->end - r->p) / 16)
        return bad(r, "bad panel visitor count");
    for (uint64_t i = 0; i < np && !r->what; i++) {
        const uint8_t *h = get_bytes(r, 16);
        if (!h || !tools_load_le64(h)) return bad(r, "bad panel visitor entry");
        if (apply && !*oom &&
            weft_logs_tk_add_pair(t, tools_load_le64(h), tools_load_le64(h + 8)) != 0)
            *oom = -ENOMEM;
    }
    if (apply && novis) t->novis = true;
    return !r->what;
}

static bool get_ext(rd_t *r, weft_logs_ext_t *x, uint64_t parsed, bool apply, int *oom)
{
    uint64_t panels = get_varint(r), nd = get_varint(r), sum = 0;
    if (panels > WEFT_LOGS_PANELS_ALL || nd > parsed) return bad(r, "bad panels");
    for (uint64_t i = 0; i < nd && !r->what; i++) {
        uint64_t date = get_varint(r), req = get_varint(r), bytes = get_varint(r);
        if (date > UINT32_MAX || !req) return bad(r, "bad day entry");
        if (!add_ok(&sum, req)) return bad(r, "day counts overflow");
        if (apply && weft_logs_ext_add_day(x, (uint32_t)date, req, bytes) != 0) *oom = -ENOMEM;
    }
    if (!r->what && nd && sum != parsed) return bad(r, "day counts do not add up");
    uint64_t nv = get_varint(r);
    if (nv > parsed || nv > (uint64_t)(r->end - r->p) / 9) return bad(r, "bad visitor count");
    for (uint64_t i = 0; i < nv && !r->what; i++) {
        const uint8_t *h = get_bytes(r, 8);
        uint64_t date = get_varint(r);
        if (!h || !tools_load_le64(h) || date > UINT32_MAX) return bad(r, "bad visitor entry");
        if (apply && !*oom && weft_logs_vset_add(&x->visitors, tools_load_le64(h), date) != 0)
            *oom = -ENOMEM;
    }
    uint64_t nm = get_varint(r);
    if (nm > 1440) return bad(r, "bad minute count");
    sum = 0;
    size_t idx = 0;
    for (uint64_t i = 0; i < nm && !r->what; i++) {
        uint64_t dlt = get_varint(r), c = get_varint(r);
        if ((i > 0 && dlt == 0) || dlt >= 1440 - idx || !c) return bad(r, "bad minute entry");
        idx += (size_t)dlt;
        if (!add_ok(&sum, c)) return bad(r, "minute counts overflow");
        if (apply) x->minutely[idx] += c;
    }
    if (!r->what && nm && sum != parsed) return bad(r, "minute counts do not add up");
    weft_logs_tk_t *t[5] = {&x->urls, &x->ips, &x->agents, &x->referrers, &x->vhosts};
    for (int k = 0; k < 5; k++)
        if (!get_tk(r, t[k], parsed, apply, oom)) return false;
    if (apply) x->panels |= (unsigned)panels;
    return !r->what;
}

/* One pass over the payload: checks everything when apply is false, adds to dst when true. */
static bool decode(weft_logs_part_t *dst, rd_t *r, uint32_t flags, bool apply, int *oom)
{
    uint64_t lines = get_varint(r), parsed = get_varint(r), malformed = get_varint(r);
    uint64_t bytes = get_varint(r);
    uint64_t excluded = r->version >= 2 ? get_varint(r) : 0;
    uint64_t sum = 0;
    if (parsed > lines || malformed > lines - parsed || excluded != lines - parsed - malformed)
        return bad(r, "inconsistent line counts");
    uint64_t hourly[24];
    for (int h = 0; h < 24; h++)
        if (!add_ok(&sum, hourly[h] = get_varint(r))) return bad(r, "hourly counts overflow");
    if (sum != parsed) return bad(r, "hourly counts do not add up");
    uint64_t ns = get_varint(r);
    if (ns > WEFT_LOGS_STATUS_MAX) return bad(r, "too many status codes");
    sum = 0;
    int prev = 0;
    uint64_t status_404 = 0;
    for (uint64_t i = 0; i < ns && !r->what; i++) {
        uint64_t code = get_varint(r), c = get_varint(r);
        if (code < 100 || code >= WEFT_LOGS_STATUS_MAX || (int)code <= prev || !c)
            return bad(r, "bad status code entry");
        prev = (int)code;
        if (!add_ok(&sum, c)) return bad(r, "status counts overflow");
        if (code == 404) status_404 = c;
        if (apply) dst->status[code] += c;
    }
    if (!r->what && sum != parsed) return bad(r, "status counts do not add up");

    uint64_t hc = get_varint(r), hsum = get_varint(r), hmin = 0, hmax = 0;
    if (hc) {
        hmin = get_varint(r);
        hmax = get_varint(r);
        if (hmin > hmax) return bad(r, "bad response time range");
    }
    if (hc > parsed) return bad(r, "more response times than lines");
    uint64_t nb = get_varint(r);
    if (nb > WEFT_HIST_BUCKETS) return bad(r, "too many histogram buckets");
    size_t idx = 0;
    sum = 0;
    for (uint64_t i = 0; i < nb && !r->what; i++) {
        uint64_t d = get_varint(r), c = get_varint(r);
        if ((i > 0 && d == 0) || d >= WEFT_HIST_BUCKETS - idx || !c)
            return bad(r, "bad histogram bucket");
        idx += (size_t)d;
        if (!add_ok(&sum, c)) return bad(r, "histogram counts overflow");
        if (apply) weft_hist_add_bucket(&dst->rt, idx, c); /* idx < WEFT_HIST_BUCKETS: checked */
    }
    if (!r->what && sum != hc) return bad(r, "histogram counts do not add up");

    uint64_t n4 = get_varint(r);
    if (n4 > parsed || n4 > (uint64_t)(r->end - r->p) / 5) return bad(r, "bad IPv4 count");
    uint64_t ipsum = 0;
    struct {
        uint32_t key;
        uint64_t count;
    } pend[BATCH]; /* applied in batches, their slots prefetched (as in analyze) */
    int np4 = 0;
    for (uint64_t i = 0; i < n4 && !r->what; i++) {
        const uint8_t *k = get_bytes(r, 4);
        uint64_t c = get_varint(r);
        if (!k || !c) return bad(r, "bad IPv4 entry");
        if (!add_ok(&ipsum, c)) return bad(r, "IPv4 counts overflow");
        if (!apply) { /* the check pass: count per partition, sample what is new to dst */
            uint32_t key = tools_load_le32(k);
            uint64_t h = hash4(key);
            int part = (int)(h >> PART_SHIFT);
            if (r->n4[part]++ % T4_SAMPLE == 0) {
                r->sampled[part]++;
                r->fresh[part] += !t4_has(&dst->ip4[part], key, h);
            }
        }
        if (apply) {
            uint32_t key = tools_load_le32(k);
            uint64_t h = hash4(key);
            const weft_logs_t4_t *t = &dst->ip4[h >> PART_SHIFT];
            __builtin_prefetch(&t->slots[slot4(h) & t->mask]);
            pend[np4].key = key;
            pend[np4++].count = c;
        }
        if (np4 == BATCH || (np4 && i + 1 == n4)) {
            for (int b = 0; b < np4; b++)
                weft_logs_t4_add(&dst->ip4[hash4(pend[b].key) >> PART_SHIFT], pend[b].key,
                                 pend[b].count, oom);
            np4 = 0;
        }
    }
    uint64_t n6 = get_varint(r);
    if (n6 > parsed || n6 > (uint64_t)(r->end - r->p) / 17) return bad(r, "bad IPv6 count");
    for (uint64_t i = 0; i < n6 && !r->what; i++) {
        const uint8_t *a = get_bytes(r, 16);
        uint64_t c = get_varint(r), tl = r->version >= 4 ? get_varint(r) : 0;
        if (!a || !c || tl >= WEFT_LOGS_IP6_TEXT) return bad(r, "bad IPv6 entry");
        const char *text = tl ? (const char *)get_bytes(r, tl) : NULL;
        char buf[WEFT_LOGS_IP6_TEXT];
        uint8_t v6[16];
        if (text) { /* a spelling of this address, or the partial is corrupt */
            memcpy(buf, text, tl);
            buf[tl] = '\0';
            if (inet_pton(AF_INET6, buf, v6) != 1 || memcmp(v6, a, 16) != 0)
                return bad(r, "bad IPv6 text");
        }
        if (!add_ok(&ipsum, c)) return bad(r, "IPv6 counts overflow");
        if (apply && weft_logs_t6_add(&dst->ip6, a, text, tl, c) != 0) *oom = -ENOMEM;
    }
    if (!r->what && ipsum != parsed) return bad(r, "client counts do not add up");

    if (!get_paths(r, &dst->paths, parsed, apply, oom)) return false;
    if (r->version >= 2 && (!get_paths(r, &dst->paths404, status_404, apply, oom) ||
                            !get_paths(r, &dst->statics, parsed, apply, oom)))
        return false;
    if (r->version >= 3 && !get_ext(r, &dst->ext, parsed, apply, oom)) return false;
    if (!r->what && r->p != r->end) return bad(r, "trailing bytes");
    if (r->what) return false;

    if (apply) {
        dst->lines += lines;
        dst->parsed += parsed;
        dst->malformed += malformed;
        dst->excluded += excluded;
        dst->bytes += bytes;
        for (int h = 0; h < 24; h++) dst->hourly[h] += hourly[h];
        if (hc) weft_hist_add_totals(&dst->rt, hsum, hmin, hmax); /* the buckets added hc */
        if (flags & FLAG_PATHS_OVERFLOW) dst->paths.overflow = true;
        if (flags & FLAG_404_OVERFLOW) dst->paths404.overflow = true;
        if (flags & FLAG_STATIC_OVERFLOW) dst->statics.overflow = true;
    }
    return true;
}

int weft_logs_part_merge_bytes(weft_logs_part_t *dst, const void *data, size_t len, char *err,
                               size_t errlen)
{
    const uint8_t *d = data;
    const char *what = NULL;
    uint32_t flags = 0;
    if (len < HEADER || memcmp(d, MAGIC, 8) != 0) {
        what = "not a weft logs partial (bad magic)";
    } else if (tools_load_le32(d + 8) < 1 || tools_load_le32(d + 8) > VERSION) {
        what = "unsupported partial version";
    } else if ((flags = tools_load_le32(d + 12)) &
               ~(FLAG_PATHS_OVERFLOW | FLAG_404_OVERFLOW | FLAG_STATIC_OVERFLOW)) {
        what = "unknown flags";
    } else if (tools_load_le64(d + 16) != len - HEADER) {
        what = "truncated or extended (length mismatch)";
    } else {
        uLong crc = crc32(0L, Z_NULL, 0);
        for (size_t off = HEADER; off < len;) {
            size_t n = len - off > (1u << 30) ? (1u << 30) : len - off;
            crc = crc32(crc, d + off, (uInt)n);
            off += n;
        }
        if ((uint32_t)crc != tools_load_le32(d + 24)) what = "checksum mismatch";
    }
    int oom = 0;
    rd_t r0 = {d + HEADER, d + len, NULL, {0}, {0}, {0}, 0};
    if (len >= HEADER) r0.version = tools_load_le32(d + 8);
    if (!what && !decode(dst, &r0, flags, false, &oom)) what = r0.what;
    if (what) {
        if (err && errlen) snprintf(err, errlen, "corrupt partial: %s", what);
        return WEFT_EPARSE;
    }
    /* Room for the new keys first, per partition, estimated by the check: the entries of an
     * unsorted partial come in slot order, and inserting them into a table nearly as full as theirs
     * would overflow the swept prefix before growing (see weft_logs_part_merge_ip4). */
    for (int k = 0; k < WEFT_LOGS_PARTS; k++)
        if (weft_logs_t4_reserve(&dst->ip4[k],
                                 dst->ip4[k].used +
                                     t4_estimate(r0.n4[k], r0.sampled[k], r0.fresh[k])) != 0)
            return -ENOMEM;
    rd_t r = {d + HEADER, d + len, NULL, {0}, {0}, {0}, r0.version};
    decode(dst, &r, flags, true, &oom);
    return oom;
}
