/* weft logs: the chunk core (recording parsed lines into a part) and the merge of parts
 * (stats.h). The tables are in tables.c, the serialized form in partial.c, the report in
 * rank.c.
 *
 * Hot path: weft_logs_analyze() has the parser read a batch of lines (weft_logs_parse_lines),
 * then records each line with no allocation except table growth. The IPv4 table uses
 * Fibonacci hashing (multiply by 2^64/phi): the top 2 bits pick the partition, the next bits the
 * slot, with linear probing. Counts are 32-bit; a count about to reach 2^32 - 1 moves its
 * carry to a small per-partition spill list, so no input can wrap a counter.
 *
 * IPv6 clients and paths are weft_htab tables (tables.c).
 */
#include "logs/stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "logs/tables-int.h"

/* ---- parts --------------------------------------------------------------------------------- */

weft_logs_part_t *weft_logs_part_create(void)
{
    weft_logs_part_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    weft_hist_init(&p->rt);
    int rc = weft_logs_t6_init(&p->ip6, T6_INIT) | weft_logs_tp_init(&p->paths) |
             weft_logs_tp_init(&p->paths404) | weft_logs_tp_init(&p->statics) |
             weft_logs_ext_init(&p->ext);
    for (int k = 0; k < WEFT_LOGS_PARTS; k++) rc |= weft_logs_t4_init(&p->ip4[k], T4_INIT);
    if (rc) {
        weft_logs_part_destroy(p);
        return NULL;
    }
    return p;
}

void weft_logs_part_destroy(weft_logs_part_t *p)
{
    if (!p) return;
    for (int k = 0; k < WEFT_LOGS_PARTS; k++) weft_logs_t4_free(&p->ip4[k]);
    weft_logs_t6_free(&p->ip6);
    weft_logs_tp_free(&p->paths);
    weft_logs_tp_free(&p->paths404);
    weft_logs_tp_free(&p->statics);
    weft_logs_ext_free(&p->ext);
    free(p);
}

/* A parsed line's hashes are computed (and its table slots prefetched) ahead of recording it. */
typedef struct hashes {
    uint64_t h4, hp; /* h4 holds nonzero(hash6()) for an IPv6 client */
} hashes_t;

/* `limit`: the end of the buffer holding the line (the path hash may read up to it). */
static inline __attribute__((always_inline)) void
prepare(weft_logs_part_t *p, const weft_logs_rec_t *r, hashes_t *hs, const char *limit)
{
    if (r->family == 4) {
        hs->h4 = hash4(r->ip4);
        const weft_logs_t4_t *t = &p->ip4[hs->h4 >> PART_SHIFT];
        __builtin_prefetch(&t->slots[slot4(hs->h4) & t->mask]);
    } else {
        hs->h4 = nonzero(hash6(r->ip6));
        weft_htab_prefetch(&p->ip6.index, hs->h4);
    }
    if (r->path) {
        hs->hp = path_hash(r->path, r->path_len, limit);
        weft_htab_prefetch(&p->paths.counts, nonzero(hs->hp));
    }
}

/* Counting a client, the rare cases: a new address (perhaps growing the table), or a count
 * reaching 2^32 - 1. */
static __attribute__((noinline)) void t4_count_slow(weft_logs_part_t *p, weft_logs_t4_t *t,
                                                    uint32_t key, uint64_t h, uint32_t i)
{
    weft_logs_e4_t *e = &t->slots[i]; /* the key's slot, or the empty one that ended the probe */
    if (!e->count) {
        if (t->used < t->limit) {
            t->used++;
            e->key = key;
        } else {
            e = weft_logs_t4_slot(t, key, h); /* grows the table */
        }
    }
    if (!e) {
        p->oom = -ENOMEM;
    } else if (++e->count == UINT32_MAX) {
        e->count = 1;
        weft_logs_spill_add(t, key, UINT32_MAX - 1, &p->oom);
    }
}

static inline __attribute__((always_inline)) void
record(weft_logs_part_t *p, const weft_logs_rec_t *r, const hashes_t *hs)
{
    p->parsed++;
    p->hourly[r->hour]++;
    p->status[r->status]++;
    p->bytes += r->bytes;
    if (r->rt_us >= 0) weft_hist_record(&p->rt, (uint64_t)r->rt_us);
    if (r->family == 4) { /* the usual case inline: an address seen before */
        weft_logs_t4_t *t = &p->ip4[hs->h4 >> PART_SHIFT];
        uint32_t i = slot4(hs->h4) & t->mask;
        while (t->slots[i].count && t->slots[i].key != r->ip4) i = (i + 1) & t->mask;
        if (__builtin_expect(t->slots[i].count && t->slots[i].count < UINT32_MAX - 1, 1))
            t->slots[i].count++;
        else
            t4_count_slow(p, t, r->ip4, hs->h4, i);
    } else if (weft_logs_t6_add_h(&p->ip6, r->ip6, r->ip6_text, r->ip6_text_len, hs->h4, 1) != 0) {
        p->oom = -ENOMEM;
    }
    bool is_static = false; /* decided once per distinct path: a flag in its count */
    if (r->path && !p->paths.overflow) {
        weft_logs_tp_t *t = &p->paths;
        uint64_t *v = tp_find(t, hs->hp);
        if (v) { /* a path seen before: the usual case, done here */
            is_static = ++*v >> 63;
        } else {
            uint32_t len = r->path_len > UINT32_MAX ? UINT32_MAX : (uint32_t)r->path_len;
            is_static = weft_logs_is_static(r->path, r->path_len);
            if (weft_logs_tp_add(t, hs->hp, r->path, len, path_keep(len),
                                 1 | (is_static ? TP_STATIC : 0)))
                p->oom = -ENOMEM;
        }
    } else if (r->path) {
        is_static = weft_logs_is_static(r->path, r->path_len);
    }
    if (__builtin_expect(r->status == 404, 0) && r->path && !p->paths404.overflow) {
        uint32_t len = r->path_len > UINT32_MAX ? UINT32_MAX : (uint32_t)r->path_len;
        if (weft_logs_tp_add(&p->paths404, hs->hp, r->path, len, path_keep(len), 1))
            p->oom = -ENOMEM;
    }
    if (__builtin_expect(is_static, 0) && !p->statics.overflow) {
        uint64_t *v = tp_find(&p->statics, hs->hp);
        uint32_t len = r->path_len > UINT32_MAX ? UINT32_MAX : (uint32_t)r->path_len;
        if (v)
            (*v)++;
        else if (weft_logs_tp_add(&p->statics, hs->hp, r->path, len, path_keep(len), 1))
            p->oom = -ENOMEM;
    }
}

void weft_logs_part_record(weft_logs_part_t *p, const weft_logs_rec_t *r)
{
    hashes_t hs = {0, 0};
    prepare(p, r, &hs, r->path ? r->path + r->path_len : NULL);
    record(p, r, &hs);
    if (weft_logs_ext_record(&p->ext, r, WEFT_LOGS_PANELS_ALL)) p->oom = -ENOMEM;
}

/* The static extensions (weft_logs_is_static), packed little-endian into an integer per length
 * so that the test is integer compares: a path is checked on every line. */
static const uint64_t static_ext2[] = {0x736a, 0x7a37, 0x7a67}; /* js 7z gz */
static const uint64_t static_ext3[] = {
    0x33706d, 0x34706d, 0x636f64, 0x657865, 0x666470, 0x666967, 0x666974, 0x66746f, 0x667474,
    0x667773, 0x67676f, 0x676e70, 0x67706a, 0x67706d, 0x677673, 0x697661, 0x6c6d78, 0x6f6369,
    0x6f7369, 0x70616d, 0x70697a, 0x706d62, 0x726172, 0x726174, 0x736c78, 0x737363, 0x746f65,
    0x747070, 0x747874, 0x766c66, 0x767363, 0x7a6774}; /* mp3 mp4 doc exe pdf gif tif otf ttf swf
                                                          ogg png jpg mpg svg avi xml ico iso map
                                                          zip bmp rar tar xls css eot ppt txt flv
                                                          csv tgz */
static const uint64_t static_ext4[] = {
    0x66666974, 0x66666f77, 0x66697661, 0x6765706a, 0x6765706d, 0x6d626577,
    0x6e6f736a, 0x70626577, 0x78636f64, 0x78736c78, 0x78747070}; /* tiff woff avif jpeg mpeg webm
                                                                    json webp docx xlsx pptx */
static const uint64_t static_ext5[] = {0x3266666f77};            /* woff2 */

bool weft_logs_is_static(const char *path, size_t len)
{
    size_t k = 0;
    while (k < len && k < 6 && path[len - 1 - k] != '.' && path[len - 1 - k] != '/') k++;
    if (k == 0 || k >= 6 || k >= len || path[len - 1 - k] != '.') return false;
    uint64_t key = 0;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)path[len - k + i];
        key |= (uint64_t)(c >= 'A' && c <= 'Z' ? c + 32 : c) << (8 * i);
    }
    const uint64_t *t;
    size_t n;
    switch (k) {
    case 2:
        t = static_ext2;
        n = sizeof static_ext2 / sizeof static_ext2[0];
        break;
    case 3:
        t = static_ext3;
        n = sizeof static_ext3 / sizeof static_ext3[0];
        break;
    case 4:
        t = static_ext4;
        n = sizeof static_ext4 / sizeof static_ext4[0];
        break;
    case 5:
        t = static_ext5;
        n = sizeof static_ext5 / sizeof static_ext5[0];
        break;
    default:
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (t[i] == key) return true;
    return false;
}

/* Lines are parsed in batches, and each batch is recorded only after the next one is parsed:
 * parsing a batch computes each line's table slots and prefetches them, so that the cache
 * misses of a large client table (1 M addresses: 16 MB) overlap with a whole batch of parsing
 * instead of stalling the recording. */

void weft_logs_analyze(const weft_logs_format_t *f, const char *data, size_t len,
                       weft_logs_part_t *acc, weft_logs_chunkres_t *res)
{
    const char *p = data, *end = data + len;
    uint64_t lines = res->lines, bad = 0, directives = 0;
    weft_logs_rec_t recs[2][BATCH];
    hashes_t hs[2][BATCH];
    weft_logs_exth_t xh[2][BATCH];
    size_t cnt[2] = {0, 0};
    unsigned panels = WEFT_LOGS_PANELS_ALL & ~f->filter.no_panels;
    acc->ext.panels |= panels;
    for (int cur = 0; p < end || cnt[cur ^ 1]; cur ^= 1) {
        size_t n = p < end ? weft_logs_parse_lines(f, &p, end, recs[cur], BATCH) : 0;
        size_t got = n;
        if (__builtin_expect(f->filter.any, 0)) { /* keep the lines the filter lets through */
            size_t k = 0;
            for (size_t i = 0; i < n; i++)
                if (weft_logs_filter_apply(&f->filter, &recs[cur][i]))
                    recs[cur][k++] = recs[cur][i];
            acc->excluded += n - k;
            n = k;
        }
        for (size_t i = 0; i < n; i++) prepare(acc, &recs[cur][i], &hs[cur][i], end);
        if (panels)
            for (size_t i = 0; i < n; i++)
                weft_logs_ext_prepare(&acc->ext, &recs[cur][i], panels, &xh[cur][i]);
        lines += got;
        if (got < BATCH && p < end) { /* p is at a malformed line */
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            if (le > p && le[-1] == '\r') le--;
            /* A W3C directive (#Fields: ..., also repeated mid-file) is not an entry: numbered
             * as a line, counted nowhere. */
            bool directive = f->directives && weft_logs_format_directive(f, p, (size_t)(le - p));
            /* Without its newline it ends the input: a line the server is still writing (the
             * snapshot of a growing log), not yet a line; one that parses is counted above. */
            if (nl) {
                lines++;
                bad += !directive;
                directives += directive;
            }
            if (nl && !directive && res->nbad < WEFT_LOGS_BAD_KEEP) {
                weft_logs_bad_t *b = &res->bad[res->nbad++];
                size_t k = (size_t)(le - p);
                b->line = lines;
                b->len = (uint32_t)(k < WEFT_LOGS_BAD_TEXT ? k : WEFT_LOGS_BAD_TEXT);
                memcpy(b->text, p, b->len);
            }
            p = nl ? nl + 1 : end;
        }
        cnt[cur] = n;
        int prev = cur ^ 1; /* parsed one round ago: its slots have had time to arrive */
        for (size_t i = 0; i < cnt[prev]; i++) record(acc, &recs[prev][i], &hs[prev][i]);
        if (panels)
            for (size_t i = 0; i < cnt[prev]; i++)
                if (weft_logs_ext_record_h(&acc->ext, &recs[prev][i], panels, &xh[prev][i]))
                    acc->oom = -ENOMEM;
        cnt[prev] = 0;
    }
    acc->lines += lines - res->lines - directives;
    acc->malformed += bad;
    res->lines = lines;
}

/* ---- merge --------------------------------------------------------------------------------- */

/* The IPv4 merge first makes room for the keys new to the destination, estimated from a sample
 * (one source slot in T4_SAMPLE looked up; plus 1/8: reserving for every source key doubled the
 * table when the workers saw the same clients, and tripled the merge time). Without it, a source
 * swept in slot order lands on the same home slots of a destination that is nearly as full: the
 * swept prefix passes 100 % occupancy before the table grows at 3/4 overall, and linear probing
 * walks one run that grows with every insert (0.66 s for 740 k keys into a table of 1 Mi slots
 * holding 758 k, against 20 ms; -j2 took 25 s on 5 M distinct clients). */
int weft_logs_part_merge_ip4(weft_logs_part_t *dst, weft_logs_part_t *const *src, size_t n, int k)
{
    int oom = 0;
    weft_logs_t4_t *d = &dst->ip4[k];
    uint64_t want = d->used;
    for (size_t s = 0; s < n; s++) {
        const weft_logs_t4_t *t = &src[s]->ip4[k];
        if (t == d) continue;
        uint64_t sampled = 0, fresh = 0;
        for (uint32_t i = 0; i <= t->mask; i += T4_SAMPLE) {
            if (!t->slots[i].count) continue;
            sampled++;
            fresh += !t4_has(d, t->slots[i].key, hash4(t->slots[i].key));
        }
        want += t4_estimate(t->used, sampled, fresh);
    }
    if (weft_logs_t4_reserve(d, want) != 0) return -ENOMEM;
    for (size_t s = 0; s < n; s++) {
        const weft_logs_t4_t *t = &src[s]->ip4[k];
        if (t == d) continue;
        for (uint32_t i = 0; i <= t->mask; i++)
            if (t->slots[i].count) weft_logs_t4_add(d, t->slots[i].key, t->slots[i].count, &oom);
        for (uint32_t i = 0; i < t->nspill; i++)
            weft_logs_spill_add(d, t->spill[i].key, t->spill[i].carry, &oom);
    }
    return oom;
}

/* Adds every path of `src` to `dst`. Returns 0 or -ENOMEM. */
static int tp_merge(weft_logs_tp_t *dst, const weft_logs_tp_t *src)
{
    int rc = 0;
    if (src->overflow) dst->overflow = true;
    for (size_t i = 0; i < src->used && !dst->overflow; i++) {
        const weft_logs_ep_t *e = &src->ents[i];
        if (weft_logs_tp_add(dst, e->hash, src->arena + e->off, e->len, path_keep(e->len),
                             tp_count(src, i)) != 0)
            rc = -ENOMEM;
    }
    return rc;
}

int weft_logs_part_merge_rest(weft_logs_part_t *dst, weft_logs_part_t *const *src, size_t n)
{
    int rc = 0;
    for (size_t s = 0; s < n; s++) {
        const weft_logs_part_t *p = src[s];
        if (p == dst) continue;
        dst->lines += p->lines;
        dst->parsed += p->parsed;
        dst->malformed += p->malformed;
        dst->excluded += p->excluded;
        dst->bytes += p->bytes;
        for (int h = 0; h < 24; h++) dst->hourly[h] += p->hourly[h];
        for (int c = 0; c < WEFT_LOGS_STATUS_MAX; c++) dst->status[c] += p->status[c];
        weft_hist_merge(&dst->rt, &p->rt);
        for (size_t i = 0; i < p->ip6.used; i++)
            if (weft_logs_t6_add(&dst->ip6, p->ip6.ents[i].addr, p->ip6.ents[i].text,
                                 strlen(p->ip6.ents[i].text), p->ip6.ents[i].count) != 0)
                rc = -ENOMEM;
        if (tp_merge(&dst->paths, &p->paths) != 0 || tp_merge(&dst->paths404, &p->paths404) != 0 ||
            tp_merge(&dst->statics, &p->statics) != 0 ||
            weft_logs_ext_merge(&dst->ext, &p->ext) != 0)
            rc = -ENOMEM;
        if (p->oom) rc = p->oom;
    }
    return rc;
}

int weft_logs_part_merge(weft_logs_part_t *dst, const weft_logs_part_t *src)
{
    weft_logs_part_t *s = (weft_logs_part_t *)src; /* read only */
    int rc = weft_logs_part_merge_rest(dst, &s, 1);
    for (int k = 0; k < WEFT_LOGS_PARTS; k++) {
        int r = weft_logs_part_merge_ip4(dst, &s, 1, k);
        if (r) rc = r;
    }
    return rc;
}
