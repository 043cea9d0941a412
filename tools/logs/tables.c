/* weft logs: the count tables of a part: IPv4 (specialised), IPv6 and paths (weft_htab), and
 * the huge-page memory of the large ones (tables-int.h describes them).
 *
 * IPv6 clients and paths are weft_htab tables. Measured on a 200 MB `weft logs gen` log with
 * -j1, alternating runs: paths keyed by hash with the count as the table's value cost the same
 * as the specialised table they replaced (218 vs 214 ms); an index into a path array instead
 * cost 11 % (one more dependent load per line). IPv6 through an index costs the same once its
 * slot is prefetched with the batch like the others (400 vs 401 ms at 30 % IPv6). The IPv4
 * table stays specialised: see stats.h.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "logs/tables-int.h"

#define HUGE (UINT64_C(2) << 20)

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

/* ---- IPv4 table ---------------------------------------------------------------------------- */

int weft_logs_t4_init(weft_logs_t4_t *t, uint32_t cap)
{
    memset(t, 0, sizeof *t);
    t->slots = slots_alloc(cap, sizeof *t->slots);
    if (!t->slots) return -ENOMEM;
    t->mask = cap - 1;
    t->limit = cap / 4 * 3;
    return 0;
}

void weft_logs_t4_free(weft_logs_t4_t *t)
{
    if (t->slots) slots_free(t->slots, (size_t)t->mask + 1, sizeof *t->slots);
    free(t->spill);
    memset(t, 0, sizeof *t);
}

/* Rehashes into `cap` slots (a power of two, larger than the current one). */
static int t4_resize(weft_logs_t4_t *t, uint32_t cap)
{
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

static int t4_grow(weft_logs_t4_t *t)
{
    return t4_resize(t, (t->mask + 1) * 2);
}

int weft_logs_t4_reserve(weft_logs_t4_t *t, uint64_t n)
{
    uint64_t cap = (uint64_t)t->mask + 1;
    while (n > cap / 4 * 3) cap *= 2;
    if (cap > (UINT64_C(1) << 31)) cap = UINT64_C(1) << 31; /* the most a table holds */
    return cap > (uint64_t)t->mask + 1 ? t4_resize(t, (uint32_t)cap) : 0;
}

void weft_logs_spill_add(weft_logs_t4_t *t, uint32_t key, uint64_t carry, int *oom)
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

/* Finds or inserts `key`; returns its slot, or NULL when growing failed. */
weft_logs_e4_t *weft_logs_t4_slot(weft_logs_t4_t *t, uint32_t key, uint64_t h)
{
    uint32_t i = slot4(h) & t->mask;
    for (;; t->probes++) {
        weft_logs_e4_t *e = &t->slots[i];
        if (e->key == key && e->count) return e;
        if (!e->count) {
            if (t->used >= t->limit) {
                if (t4_grow(t) != 0) return NULL;
                return weft_logs_t4_slot(t, key, h);
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
    weft_logs_e4_t *e = weft_logs_t4_slot(t, key, hash4(key));
    if (!e) {
        *oom = -ENOMEM;
        return;
    }
    uint64_t total = (uint64_t)e->count + n;
    if (total < UINT32_MAX) {
        e->count = (uint32_t)total;
    } else {
        e->count = 1;
        weft_logs_spill_add(t, key, total - 1, oom);
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

int weft_logs_t6_init(weft_logs_t6_t *t, size_t cap)
{
    memset(t, 0, sizeof *t);
    weft_htab_init(&t->index);
    t->ents = malloc(cap * sizeof *t->ents);
    t->cap = cap;
    return t->ents && weft_htab_reserve(&t->index, cap) == 0 ? 0 : -ENOMEM;
}

void weft_logs_t6_free(weft_logs_t6_t *t)
{
    weft_htab_free(&t->index);
    free(t->ents);
    memset(t, 0, sizeof *t);
}

static inline bool e6_eq(uint64_t val, const void *key, const void *ctx)
{
    return memcmp(((const weft_logs_e6_t *)ctx)[val].addr, key, 16) == 0;
}

/* Keeps `text` as e's spelling when it is less (in byte order) than the one kept, or none is. */
static inline void e6_spell(weft_logs_e6_t *e, const char *text, size_t tlen)
{
    if (!text || !tlen || tlen >= WEFT_LOGS_IP6_TEXT) return;
    size_t el = strlen(e->text);
    if (el) {
        int c = memcmp(text, e->text, tlen < el ? tlen : el);
        if (c > 0 || (c == 0 && tlen >= el)) return;
    }
    memcpy(e->text, text, tlen);
    e->text[tlen] = '\0';
}

/* Adds `n` to `addr`, whose nonzero(hash6()) is `h`. */
int weft_logs_t6_add_h(weft_logs_t6_t *t, const uint8_t *addr, const char *text, size_t tlen,
                       uint64_t h, uint64_t n)
{
    uint64_t *v = weft_htab_find(&t->index, h, e6_eq, addr, t->ents);
    if (v) {
        t->ents[*v].count += n;
        e6_spell(&t->ents[*v], text, tlen);
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
    e->text[0] = '\0';
    e6_spell(e, text, tlen);
    return 0;
}

int weft_logs_t6_add(weft_logs_t6_t *t, const uint8_t *addr, const char *text, size_t tlen,
                     uint64_t n)
{
    return weft_logs_t6_add_h(t, addr, text, tlen, nonzero(hash6(addr)), n);
}

const weft_logs_e6_t *weft_logs_t6_find(const weft_logs_t6_t *t, const uint8_t *addr)
{
    uint64_t *v = weft_htab_find(&t->index, nonzero(hash6(addr)), e6_eq, addr, t->ents);
    return v ? &t->ents[*v] : NULL;
}

/* ---- path table ---------------------------------------------------------------------------- */

int weft_logs_tp_init(weft_logs_tp_t *t)
{
    memset(t, 0, sizeof *t);
    weft_htab_init(&t->counts);
    return weft_htab_reserve(&t->counts, TP_INIT);
}

void weft_logs_tp_free(weft_logs_tp_t *t)
{
    weft_htab_free(&t->counts);
    free(t->ents);
    free(t->arena);
    memset(t, 0, sizeof *t);
}

/* Adds `n` to the path with hash `h`; `text`/`keep` is stored the first time it is seen. */
int weft_logs_tp_add(weft_logs_tp_t *t, uint64_t h, const char *text, uint32_t len, uint32_t keep,
                     uint64_t n)
{
    if (__builtin_expect(t->buckets != NULL, 0)) { /* a recount's first pass (run.c) */
        /* relaxed: a sum read after the workers' futures completed (their release edge) */
        atomic_fetch_add_explicit(&t->buckets[h & t->bmask], n & ~TP_STATIC, memory_order_relaxed);
        return 0;
    }
    if (__builtin_expect(t->select != NULL, 0) &&
        atomic_load_explicit(&t->select[h & t->bmask], memory_order_relaxed) < t->thresh)
        return 0; /* a recount's second pass: not a candidate (relaxed: read-only by now) */
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
