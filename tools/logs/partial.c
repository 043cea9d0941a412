/* weft logs: the serialized form of a part (stats.h): writing it (sorted, so that equal parts
 * give equal bytes, or in table order), and checking and merging one read back. Little-endian
 * varints behind a header with a CRC-32 of the payload; see weft_logs_part_serialize.
 */
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
#define VERSION 1
#define HEADER 28 /* magic 8, version 4, flags 4, payload length 8, crc 4 */
#define FLAG_PATHS_OVERFLOW 1u

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

int weft_logs_part_serialize(const weft_logs_part_t *p, weft_buf_t *out, bool sorted)
{
    size_t start = out->len;
    uint8_t hdr[HEADER] = {0};
    int rc = weft_buf_append(out, hdr, sizeof hdr);
    rc |= put_varint(out, p->lines) | put_varint(out, p->parsed) | put_varint(out, p->malformed) |
          put_varint(out, p->bytes);
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
    weft_logs_ep_t *ep = malloc((p->paths.used + 1) * sizeof *ep);
    if (!e6 || !ep) {
        free(e6);
        free(ep);
        return -ENOMEM;
    }
    size_t n6 = 0, np = 0;
    for (size_t i = 0; i < p->ip6.used; i++) e6[n6++] = p->ip6.ents[i];
    for (size_t i = 0; i < p->paths.used; i++) ep[np++] = p->paths.ents[i];
    if (sorted) {
        qsort(e6, n6, sizeof *e6, cmp_e6);
        qsort(ep, np, sizeof *ep, cmp_ep);
    }
    rc = put_varint(out, n6);
    for (size_t i = 0; i < n6 && !rc; i++)
        rc = weft_buf_append(out, e6[i].addr, 16) | put_varint(out, e6[i].count);
    rc |= put_varint(out, np);
    for (size_t i = 0; i < np && !rc; i++) {
        uint8_t h[8];
        tools_store_le64(h, ep[i].hash);
        rc = weft_buf_append(out, h, 8) | put_varint(out, *tp_find(&p->paths, ep[i].hash)) |
             put_varint(out, ep[i].len) |
             weft_buf_append(out, p->paths.arena + ep[i].off, path_keep(ep[i].len));
    }
    free(e6);
    free(ep);
    if (rc) return rc < 0 ? rc : -ENOMEM;

    uint8_t *h = (uint8_t *)out->data + start;
    size_t plen = out->len - start - HEADER;
    memcpy(h, MAGIC, 8);
    tools_store_le32(h + 8, VERSION);
    tools_store_le32(h + 12, p->paths.overflow ? FLAG_PATHS_OVERFLOW : 0);
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
    const char *what; /* the first problem found */
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

/* One pass over the payload: checks everything when apply is false, adds to dst when true. */
static bool decode(weft_logs_part_t *dst, rd_t *r, uint32_t flags, bool apply, int *oom)
{
    uint64_t lines = get_varint(r), parsed = get_varint(r), malformed = get_varint(r);
    uint64_t bytes = get_varint(r);
    uint64_t sum = 0;
    if (parsed + malformed != lines || parsed > lines) return bad(r, "inconsistent line counts");
    uint64_t hourly[24];
    for (int h = 0; h < 24; h++)
        if (!add_ok(&sum, hourly[h] = get_varint(r))) return bad(r, "hourly counts overflow");
    if (sum != parsed) return bad(r, "hourly counts do not add up");
    uint64_t ns = get_varint(r);
    if (ns > WEFT_LOGS_STATUS_MAX) return bad(r, "too many status codes");
    sum = 0;
    int prev = 0;
    for (uint64_t i = 0; i < ns && !r->what; i++) {
        uint64_t code = get_varint(r), c = get_varint(r);
        if (code < 100 || code >= WEFT_LOGS_STATUS_MAX || (int)code <= prev || !c)
            return bad(r, "bad status code entry");
        prev = (int)code;
        if (!add_ok(&sum, c)) return bad(r, "status counts overflow");
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
        uint64_t c = get_varint(r);
        if (!a || !c) return bad(r, "bad IPv6 entry");
        if (!add_ok(&ipsum, c)) return bad(r, "IPv6 counts overflow");
        if (apply && weft_logs_t6_add(&dst->ip6, a, c) != 0) *oom = -ENOMEM;
    }
    if (!r->what && ipsum != parsed) return bad(r, "client counts do not add up");

    uint64_t np = get_varint(r);
    if (np > WEFT_LOGS_MAX_PATHS || np > parsed) return bad(r, "bad path count");
    sum = 0;
    for (uint64_t i = 0; i < np && !r->what; i++) {
        const uint8_t *h = get_bytes(r, 8);
        uint64_t c = get_varint(r), len = get_varint(r);
        if (!h || !c || len == 0 || len > UINT32_MAX) return bad(r, "bad path entry");
        const uint8_t *text = get_bytes(r, path_keep((uint32_t)len));
        if (!text) return false;
        if (!add_ok(&sum, c)) return bad(r, "path counts overflow");
        if (apply && !dst->paths.overflow &&
            weft_logs_tp_add(&dst->paths, tools_load_le64(h), (const char *)text, (uint32_t)len,
                             path_keep((uint32_t)len), c) != 0)
            *oom = -ENOMEM;
    }
    if (!r->what && sum > parsed) return bad(r, "path counts exceed lines");
    if (!r->what && r->p != r->end) return bad(r, "trailing bytes");
    if (r->what) return false;

    if (apply) {
        dst->lines += lines;
        dst->parsed += parsed;
        dst->malformed += malformed;
        dst->bytes += bytes;
        for (int h = 0; h < 24; h++) dst->hourly[h] += hourly[h];
        if (hc) weft_hist_add_totals(&dst->rt, hsum, hmin, hmax); /* the buckets added hc */
        if (flags & FLAG_PATHS_OVERFLOW) dst->paths.overflow = true;
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
    } else if (tools_load_le32(d + 8) != VERSION) {
        what = "unsupported partial version";
    } else if ((flags = tools_load_le32(d + 12)) & ~FLAG_PATHS_OVERFLOW) {
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
    if (!what) {
        rd_t r = {d + HEADER, d + len, NULL};
        if (!decode(dst, &r, flags, false, &oom)) what = r.what;
    }
    if (what) {
        if (err && errlen) snprintf(err, errlen, "corrupt partial: %s", what);
        return WEFT_EPARSE;
    }
    rd_t r = {d + HEADER, d + len, NULL};
    decode(dst, &r, flags, true, &oom);
    return oom;
}
