/* weft logs: the chunk core, the per-worker tables and the merge (stats.h).
 *
 * Hot path: weft_logs_analyze() has the parser read a batch of lines (weft_logs_parse_lines),
 * then records each line with no allocation except table growth. The IPv4 table uses
 * Fibonacci hashing (multiply by 2^64/phi): the top 2 bits pick the partition, the next bits the
 * slot, with linear probing. Counts are 32-bit; a count about to reach 2^32 - 1 moves its
 * carry to a small per-partition spill list, so no input can wrap a counter.
 *
 * IPv6 clients and paths are weft_htab tables. Measured on a 200 MB `weft logs gen` log with
 * -j1, alternating runs: paths keyed by hash with the count as the table's value cost the same
 * as the specialised table they replaced (218 vs 214 ms); an index into a path array instead
 * cost 11 % (one more dependent load per line). IPv6 through an index costs the same once its
 * slot is prefetched with the batch like the others (400 vs 401 ms at 30 % IPv6). The IPv4
 * table stays specialised: see stats.h.
 */
#include "logs/stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <weft/err.h>
#include <zlib.h>

#include "common/bytes-int.h"

#define PHI UINT64_C(0x9E3779B97F4A7C15)
#define T4_INIT 1024 /* slots per partition at start */
#define HUGE (UINT64_C(2) << 20)
#define PART_SHIFT 62 /* the top 2 bits of the hash pick one of WEFT_LOGS_PARTS */
_Static_assert(WEFT_LOGS_PARTS == 1 << (64 - PART_SHIFT), "partition bits");

/* Table memory. Large tables get their own 2 MiB-aligned mapping with transparent huge pages:
 * on this project's virtual machines the first touch of a 4 KiB page costs ~20 us (a fault in
 * the hypervisor), so a 16 MB table would cost 80 ms per worker just to touch; huge pages cut
 * that to a few ms and halve the TLB misses of random probes. Zeroed, like calloc. */
static void *slots_alloc(size_t n, size_t size)
{
    size_t bytes = n * size;
    if (bytes < HUGE / 2) return calloc(n, size);
    size_t len = (bytes + HUGE - 1) & ~(size_t)(HUGE - 1);
    char *m = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    char *a = (char *)(((uintptr_t)m + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    if (a > m) munmap(m, (size_t)(a - m));
    if (a + len < m + len + HUGE) munmap(a + len, (size_t)(m + len + HUGE - (a + len)));
#ifdef MADV_HUGEPAGE
    madvise(a, len, MADV_HUGEPAGE);
#endif
    return a;
}

static void slots_free(void *p, size_t n, size_t size)
{
    size_t bytes = n * size;
    if (!p) return;
    if (bytes < HUGE / 2)
        free(p);
    else
        munmap(p, (bytes + HUGE - 1) & ~(size_t)(HUGE - 1));
}
#define T6_INIT 64
#define TP_INIT 256

/* ---- IPv4 table ---------------------------------------------------------------------------- */

static inline uint64_t hash4(uint32_t key)
{
    return (uint64_t)key * PHI;
}

static inline uint32_t slot4(uint64_t h)
{
    return (uint32_t)(h >> 28);
}

static int t4_init(weft_logs_t4_t *t, uint32_t cap)
{
    memset(t, 0, sizeof *t);
    t->slots = slots_alloc(cap, sizeof *t->slots);
    if (!t->slots) return -ENOMEM;
    t->mask = cap - 1;
    t->limit = cap / 4 * 3;
    return 0;
}

static void t4_free(weft_logs_t4_t *t)
{
    if (t->slots) slots_free(t->slots, (size_t)t->mask + 1, sizeof *t->slots);
    free(t->spill);
    memset(t, 0, sizeof *t);
}

static int t4_grow(weft_logs_t4_t *t)
{
    uint32_t cap = (t->mask + 1) * 2;
    if (cap == 0 || cap > (UINT32_C(1) << 31)) return -ENOMEM;
    weft_logs_e4_t *s = slots_alloc(cap, sizeof *s);
    if (!s) return -ENOMEM;
    uint32_t mask = cap - 1;
    for (uint32_t i = 0; i <= t->mask; i++) {
        weft_logs_e4_t e = t->slots[i];
        if (!e.count) continue;
        uint32_t j = slot4(hash4(e.key)) & mask;
        while (s[j].count) j = (j + 1) & mask;
        s[j] = e;
    }
    slots_free(t->slots, (size_t)t->mask + 1, sizeof *t->slots);
    t->slots = s;
    t->mask = mask;
    t->limit = cap / 4 * 3;
    return 0;
}

static void spill_add(weft_logs_t4_t *t, uint32_t key, uint64_t carry, int *oom)
{
    for (uint32_t i = 0; i < t->nspill; i++) {
        if (t->spill[i].key == key) {
            t->spill[i].carry += carry;
            return;
        }
    }
    if (t->nspill == t->capspill) {
        uint32_t cap = t->capspill ? t->capspill * 2 : 4;
        weft_logs_spill_t *s = realloc(t->spill, cap * sizeof *s);
        if (!s) {
            *oom = -ENOMEM;
            return;
        }
        t->spill = s;
        t->capspill = cap;
    }
    t->spill[t->nspill++] = (weft_logs_spill_t){key, carry};
}

static uint64_t spill_get(const weft_logs_t4_t *t, uint32_t key)
{
    for (uint32_t i = 0; i < t->nspill; i++)
        if (t->spill[i].key == key) return t->spill[i].carry;
    return 0;
}

/* Finds or inserts `key`; returns its slot, or NULL when growing failed. */
static inline weft_logs_e4_t *t4_slot(weft_logs_t4_t *t, uint32_t key, uint64_t h)
{
    uint32_t i = slot4(h) & t->mask;
    for (;;) {
        weft_logs_e4_t *e = &t->slots[i];
        if (e->key == key && e->count) return e;
        if (!e->count) {
            if (t->used >= t->limit) {
                if (t4_grow(t) != 0) return NULL;
                return t4_slot(t, key, h);
            }
            t->used++;
            e->key = key;
            return e;
        }
        i = (i + 1) & t->mask;
    }
}

void weft_logs_t4_add(weft_logs_t4_t *t, uint32_t key, uint64_t n, int *oom)
{
    if (!n) return;
    weft_logs_e4_t *e = t4_slot(t, key, hash4(key));
    if (!e) {
        *oom = -ENOMEM;
        return;
    }
    uint64_t total = (uint64_t)e->count + n;
    if (total < UINT32_MAX) {
        e->count = (uint32_t)total;
    } else {
        e->count = 1;
        spill_add(t, key, total - 1, oom);
    }
}

int weft_logs_ip4_partition(uint32_t key)
{
    return (int)(hash4(key) >> PART_SHIFT);
}

uint64_t weft_logs_part_ip4_count(const weft_logs_part_t *p, uint32_t key)
{
    uint64_t h = hash4(key);
    const weft_logs_t4_t *t = &p->ip4[h >> PART_SHIFT];
    for (uint32_t i = slot4(h) & t->mask;; i = (i + 1) & t->mask) {
        const weft_logs_e4_t *e = &t->slots[i];
        if (!e->count) return 0;
        if (e->key == key) return e->count + spill_get(t, key);
    }
}

/* ---- IPv6 table ---------------------------------------------------------------------------- */

static inline uint64_t hash6(const uint8_t *a)
{
    uint64_t hi, lo;
    memcpy(&hi, a, 8);
    memcpy(&lo, a + 8, 8);
    uint64_t h = (hi ^ (lo * PHI)) * UINT64_C(0xBF58476D1CE4E5B9);
    return h ^ (h >> 31);
}

/* weft_htab reserves hash 0. */
static inline uint64_t nonzero(uint64_t h)
{
    return h ? h : 1;
}

static int t6_init(weft_logs_t6_t *t, size_t cap)
{
    memset(t, 0, sizeof *t);
    weft_htab_init(&t->index);
    t->ents = malloc(cap * sizeof *t->ents);
    t->cap = cap;
    return t->ents && weft_htab_reserve(&t->index, cap) == 0 ? 0 : -ENOMEM;
}

static void t6_free(weft_logs_t6_t *t)
{
    weft_htab_free(&t->index);
    free(t->ents);
    memset(t, 0, sizeof *t);
}

static inline bool e6_eq(uint64_t val, const void *key, const void *ctx)
{
    return memcmp(((const weft_logs_e6_t *)ctx)[val].addr, key, 16) == 0;
}

/* Adds `n` to `addr`, whose nonzero(hash6()) is `h`. */
static int t6_add_h(weft_logs_t6_t *t, const uint8_t *addr, uint64_t h, uint64_t n)
{
    uint64_t *v = weft_htab_find(&t->index, h, e6_eq, addr, t->ents);
    if (v) {
        t->ents[*v].count += n;
        return 0;
    }
    if (t->used == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : T6_INIT;
        weft_logs_e6_t *e = realloc(t->ents, cap * sizeof *e);
        if (!e) return -ENOMEM;
        t->ents = e;
        t->cap = cap;
    }
    bool added;
    v = weft_htab_put(&t->index, h, e6_eq, addr, t->ents, &added);
    if (!v) return -ENOMEM;
    *v = t->used;
    weft_logs_e6_t *e = &t->ents[t->used++];
    memcpy(e->addr, addr, 16);
    e->count = n;
    return 0;
}

static int t6_add(weft_logs_t6_t *t, const uint8_t *addr, uint64_t n)
{
    return t6_add_h(t, addr, nonzero(hash6(addr)), n);
}

/* ---- path table ---------------------------------------------------------------------------- */

/* A word-at-a-time hash of a path; the same on every machine, since partials travel. The last
 * partial word is read with one load and masked when the buffer holds 8 bytes from it (the path
 * is followed by the rest of its line), else copied. */
static inline uint64_t path_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * PHI;
    return h ^ (h >> 29);
}

static inline uint64_t path_hash(const char *s, size_t n, const char *limit)
{
    uint64_t h = UINT64_C(0x243F6A8885A308D3) ^ ((uint64_t)n * PHI);
    if (n <= 16 && limit - s >= 16) { /* the usual short path: its one or two words, no branch */
        unsigned b0 = n >= 8 ? 64 : 8 * (unsigned)n, b1 = n > 8 ? 8 * (unsigned)(n - 8) : 8;
        uint64_t h1 = path_mix(h, tools_load_le64(s) & (~UINT64_C(0) >> (64 - b0)));
        uint64_t h2 = path_mix(h1, tools_load_le64(s + 8) & (~UINT64_C(0) >> (64 - b1)));
        h = n > 8 ? h2 : h1;
        h *= UINT64_C(0xBF58476D1CE4E5B9);
        return h ^ (h >> 31);
    }
    while (n >= 8) {
        h = (h ^ tools_load_le64(s)) * PHI;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w;
        if (limit - s >= 8) {
            w = tools_load_le64(s) & (~UINT64_C(0) >> (64 - 8 * n));
        } else {
            char tail[8] = {0};
            memcpy(tail, s, n);
            w = tools_load_le64(tail);
        }
        h = (h ^ w) * PHI;
        h ^= h >> 29;
    }
    h *= UINT64_C(0xBF58476D1CE4E5B9);
    return h ^ (h >> 31);
}

static int tp_init(weft_logs_tp_t *t)
{
    memset(t, 0, sizeof *t);
    weft_htab_init(&t->counts);
    return weft_htab_reserve(&t->counts, TP_INIT);
}

static void tp_free(weft_logs_tp_t *t)
{
    weft_htab_free(&t->counts);
    free(t->ents);
    free(t->arena);
    memset(t, 0, sizeof *t);
}

/* Paths are equal when their 64-bit hashes are (as they always were here: the text is not
 * compared), so the table needs no equality callback; nonzero() adds the pair {0, 1} to the
 * collisions already accepted, a 2^-64 chance. Returns the path's count, or NULL. */
static inline uint64_t *tp_find(const weft_logs_tp_t *t, uint64_t h)
{
    return weft_htab_find(&t->counts, nonzero(h), NULL, NULL, NULL);
}

/* The count of the i-th path (first-seen order). */
static inline uint64_t tp_count(const weft_logs_tp_t *t, size_t i)
{
    return *tp_find(t, t->ents[i].hash);
}

/* Adds `n` to the path with hash `h`; `text`/`keep` is stored the first time it is seen. */
static int tp_add(weft_logs_tp_t *t, uint64_t h, const char *text, uint32_t len, uint32_t keep,
                  uint64_t n)
{
    uint64_t *v = tp_find(t, h);
    if (v) {
        *v += n;
        return 0;
    }
    if (t->used >= WEFT_LOGS_MAX_PATHS) {
        t->overflow = true;
        return 0;
    }
    if (t->alen + keep > t->acap) {
        size_t cap = t->acap ? t->acap * 2 : 4096;
        while (cap < t->alen + keep) cap *= 2;
        char *a = realloc(t->arena, cap);
        if (!a) return -ENOMEM;
        t->arena = a;
        t->acap = cap;
    }
    if (t->used == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : TP_INIT;
        weft_logs_ep_t *e = realloc(t->ents, cap * sizeof *e);
        if (!e) return -ENOMEM;
        t->ents = e;
        t->cap = cap;
    }
    bool added;
    v = weft_htab_put(&t->counts, nonzero(h), NULL, NULL, NULL, &added);
    if (!v) return -ENOMEM;
    *v = n;
    memcpy(t->arena + t->alen, text, keep);
    t->ents[t->used++] = (weft_logs_ep_t){.hash = h, .off = (uint32_t)t->alen, .len = len};
    t->alen += keep;
    return 0;
}

static inline uint32_t path_keep(uint32_t len)
{
    return len < WEFT_LOGS_PATH_KEEP ? len : WEFT_LOGS_PATH_KEEP;
}

/* ---- parts --------------------------------------------------------------------------------- */

weft_logs_part_t *weft_logs_part_create(void)
{
    weft_logs_part_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    weft_hist_init(&p->rt);
    int rc = t6_init(&p->ip6, T6_INIT) | tp_init(&p->paths);
    for (int k = 0; k < WEFT_LOGS_PARTS; k++) rc |= t4_init(&p->ip4[k], T4_INIT);
    if (rc) {
        weft_logs_part_destroy(p);
        return NULL;
    }
    return p;
}

void weft_logs_part_destroy(weft_logs_part_t *p)
{
    if (!p) return;
    for (int k = 0; k < WEFT_LOGS_PARTS; k++) t4_free(&p->ip4[k]);
    t6_free(&p->ip6);
    tp_free(&p->paths);
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
    if (r->path && !p->paths.overflow) {
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
            e = t4_slot(t, key, h); /* grows the table */
        }
    }
    if (!e) {
        p->oom = -ENOMEM;
    } else if (++e->count == UINT32_MAX) {
        e->count = 1;
        spill_add(t, key, UINT32_MAX - 1, &p->oom);
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
    } else if (t6_add_h(&p->ip6, r->ip6, hs->h4, 1) != 0) {
        p->oom = -ENOMEM;
    }
    if (r->path && !p->paths.overflow) {
        weft_logs_tp_t *t = &p->paths;
        uint64_t *v = tp_find(t, hs->hp);
        if (v) { /* a path seen before: the usual case, done here */
            (*v)++;
        } else {
            uint32_t len = r->path_len > UINT32_MAX ? UINT32_MAX : (uint32_t)r->path_len;
            if (tp_add(t, hs->hp, r->path, len, path_keep(len), 1)) p->oom = -ENOMEM;
        }
    }
}

void weft_logs_part_record(weft_logs_part_t *p, const weft_logs_rec_t *r)
{
    hashes_t hs = {0, 0};
    prepare(p, r, &hs, r->path ? r->path + r->path_len : NULL);
    record(p, r, &hs);
}

/* Lines are parsed in batches, and each batch is recorded only after the next one is parsed:
 * parsing a batch computes each line's table slots and prefetches them, so that the cache
 * misses of a large client table (1 M addresses: 16 MB) overlap with a whole batch of parsing
 * instead of stalling the recording. */
#define BATCH 16

void weft_logs_analyze(const weft_logs_format_t *f, const char *data, size_t len,
                       weft_logs_part_t *acc, weft_logs_chunkres_t *res)
{
    const char *p = data, *end = data + len;
    uint64_t lines = res->lines, bad = 0;
    weft_logs_rec_t recs[2][BATCH];
    hashes_t hs[2][BATCH];
    size_t cnt[2] = {0, 0};
    for (int cur = 0; p < end || cnt[cur ^ 1]; cur ^= 1) {
        size_t n = p < end ? weft_logs_parse_lines(f, &p, end, recs[cur], BATCH) : 0;
        for (size_t i = 0; i < n; i++) prepare(acc, &recs[cur][i], &hs[cur][i], end);
        lines += n;
        if (n < BATCH && p < end) { /* p is at a malformed line */
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            if (le > p && le[-1] == '\r') le--;
            lines++;
            bad++;
            if (res->nbad < WEFT_LOGS_BAD_KEEP) {
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
        cnt[prev] = 0;
    }
    acc->lines += lines - res->lines;
    acc->malformed += bad;
    res->lines = lines;
}

/* ---- merge --------------------------------------------------------------------------------- */

int weft_logs_part_merge_ip4(weft_logs_part_t *dst, weft_logs_part_t *const *src, size_t n, int k)
{
    int oom = 0;
    weft_logs_t4_t *d = &dst->ip4[k];
    for (size_t s = 0; s < n; s++) {
        const weft_logs_t4_t *t = &src[s]->ip4[k];
        if (t == d) continue;
        for (uint32_t i = 0; i <= t->mask; i++)
            if (t->slots[i].count) weft_logs_t4_add(d, t->slots[i].key, t->slots[i].count, &oom);
        for (uint32_t i = 0; i < t->nspill; i++)
            spill_add(d, t->spill[i].key, t->spill[i].carry, &oom);
    }
    return oom;
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
        dst->bytes += p->bytes;
        for (int h = 0; h < 24; h++) dst->hourly[h] += p->hourly[h];
        for (int c = 0; c < WEFT_LOGS_STATUS_MAX; c++) dst->status[c] += p->status[c];
        weft_hist_merge(&dst->rt, &p->rt);
        for (size_t i = 0; i < p->ip6.used; i++)
            if (t6_add(&dst->ip6, p->ip6.ents[i].addr, p->ip6.ents[i].count) != 0) rc = -ENOMEM;
        if (p->paths.overflow) dst->paths.overflow = true;
        for (size_t i = 0; i < p->paths.used && !dst->paths.overflow; i++) {
            const weft_logs_ep_t *e = &p->paths.ents[i];
            if (tp_add(&dst->paths, e->hash, p->paths.arena + e->off, e->len, path_keep(e->len),
                       tp_count(&p->paths, i)) != 0)
                rc = -ENOMEM;
        }
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
        if (apply && t6_add(&dst->ip6, a, c) != 0) *oom = -ENOMEM;
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
            tp_add(&dst->paths, tools_load_le64(h), (const char *)text, (uint32_t)len,
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
    if (!inet_ntop(ip->family == 4 ? AF_INET : AF_INET6, ip->addr, buf, (socklen_t)len))
        snprintf(buf, len, "?");
}

/* A bounded heap of the best `cap` entries; the root is the worst kept. */
typedef struct {
    void *items;
    size_t n, cap, size;
    int (*cmp)(const void *, const void *);
} topk_t;

static void topk_sift(topk_t *t, size_t i)
{
    char *a = t->items;
    char tmp[sizeof(weft_logs_ipcount_t) > 64 ? sizeof(weft_logs_ipcount_t) : 64];
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
            char tmp[64];
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

int weft_logs_report_build(const weft_logs_part_t *p, size_t top_n, size_t top_paths,
                           weft_logs_report_t *out)
{
    memset(out, 0, sizeof *out);
    out->lines = p->lines;
    out->parsed = p->parsed;
    out->malformed = p->malformed;
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
        out->rt_p50 = weft_hist_quantile(h, 0.50);
        out->rt_p90 = weft_hist_quantile(h, 0.90);
        out->rt_p95 = weft_hist_quantile(h, 0.95);
        out->rt_p99 = weft_hist_quantile(h, 0.99);
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
        topk_push(&t, &ic);
    }
    out->ntop = t.n;
    qsort(out->top, out->ntop, sizeof *out->top, cmp_ipcount);

    /* Top paths. */
    out->paths_overflow = p->paths.overflow;
    if (!p->paths.overflow) {
        out->distinct_paths = p->paths.used;
        pathc_t *pc = calloc(top_paths ? top_paths : 1, sizeof *pc);
        if (!pc) return -ENOMEM;
        topk_t tp = {pc, 0, top_paths, sizeof *pc, cmp_pathc};
        for (size_t i = 0; i < p->paths.used; i++) {
            const weft_logs_ep_t *e = &p->paths.ents[i];
            pathc_t c = {p->paths.arena + e->off, e->len, tp_count(&p->paths, i), e->hash};
            topk_push(&tp, &c);
        }
        qsort(pc, tp.n, sizeof *pc, cmp_pathc);
        out->top_paths = calloc(tp.n ? tp.n : 1, sizeof *out->top_paths);
        if (!out->top_paths) {
            free(pc);
            return -ENOMEM;
        }
        for (size_t i = 0; i < tp.n; i++) {
            uint32_t keep = path_keep(pc[i].len);
            char *s = malloc(keep + 4);
            if (!s) {
                free(pc);
                return -ENOMEM;
            }
            memcpy(s, pc[i].text, keep);
            strcpy(s + keep, keep < pc[i].len ? "..." : "");
            out->top_paths[i] = (weft_logs_pathcount_t){s, pc[i].count};
            out->npaths = i + 1;
        }
        free(pc);
    }
    return 0;
}

void weft_logs_report_free(weft_logs_report_t *r)
{
    free(r->top);
    for (size_t i = 0; i < r->npaths; i++) free(r->top_paths[i].path);
    free(r->top_paths);
    memset(r, 0, sizeof *r);
}
