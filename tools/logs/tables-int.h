/* weft logs: the three count tables of a part (tables.c), for the files that record into them
 * (stats.c), serialize them (partial.c) and rank them (rank.c). Internal to tools/logs.
 *
 * IPv4: open addressing with 8-byte {key, count} slots, Fibonacci hashing (the top 2 bits of the
 * hash pick one of WEFT_LOGS_PARTS partitions, the next bits the slot), linear probing; a count
 * about to reach 2^32 - 1 moves its carry to a small spill list. IPv6: a weft_htab index into a
 * dense entry array. Paths: a weft_htab from the path's 64-bit hash to its count, the texts
 * beside it in first-seen order. The hashes and lookups on the hot path are inline here.
 * Thread safety: a part's tables are used by one thread at a time.
 */
#ifndef WEFT_TOOLS_LOGS_TABLES_INT_H
#define WEFT_TOOLS_LOGS_TABLES_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <weft/htab.h>

#include "common/bytes-int.h"
#include "logs/stats.h"

#define PHI UINT64_C(0x9E3779B97F4A7C15)
#define PART_SHIFT 62 /* the top 2 bits of the hash pick one of WEFT_LOGS_PARTS */
_Static_assert(WEFT_LOGS_PARTS == 1 << (64 - PART_SHIFT), "partition bits");
#define T4_INIT 1024 /* slots per partition at start */
#define T6_INIT 64
#define TP_INIT 256
/* Lines (and merged IPv4 entries) are processed in batches whose table slots are prefetched. */
#define BATCH 16

/* ---- IPv4 ---- */

static inline uint64_t hash4(uint32_t key)
{
    return (uint64_t)key * PHI;
}

static inline uint32_t slot4(uint64_t h)
{
    return (uint32_t)(h >> 28);
}

static inline uint64_t spill_get(const weft_logs_t4_t *t, uint32_t key)
{
    for (uint32_t i = 0; i < t->nspill; i++)
        if (t->spill[i].key == key) return t->spill[i].carry;
    return 0;
}

/* Whether `key` (hash `h` = hash4(key)) is in the table. */
static inline bool t4_has(const weft_logs_t4_t *t, uint32_t key, uint64_t h)
{
    for (uint32_t i = slot4(h) & t->mask;; i = (i + 1) & t->mask) {
        if (!t->slots[i].count) return false;
        if (t->slots[i].key == key) return true;
    }
}

/* Sampling: one entry in T4_SAMPLE is looked up in the destination before a merge, to estimate
 * how many keys are new to it. */
#define T4_SAMPLE 32

/* The room to reserve for `n` incoming keys of which `sampled` were looked up and `fresh` were
 * new: the estimate plus 1/8 and a constant, so that growth mid-merge stays rare. */
static inline uint64_t t4_estimate(uint64_t n, uint64_t sampled, uint64_t fresh)
{
    uint64_t est = sampled ? n * fresh / sampled : n;
    est += est / 8 + 1024;
    return est < n ? est : n;
}

/* ---- IPv6 ---- */

static inline uint64_t hash6(const uint8_t *a)
{
    uint64_t hi, lo;
    memcpy(&hi, a, 8);
    memcpy(&lo, a + 8, 8);
    uint64_t h = (hi ^ (lo * PHI)) * UINT64_C(0xBF58476D1CE4E5B9);
    return h ^ (h >> 31);
}

/* weft_htab reserves hash 0 (IPv6 and path hashes go through this). */
static inline uint64_t nonzero(uint64_t h)
{
    return h ? h : 1;
}

/* ---- paths ---- */

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

/* Paths are equal when their 64-bit hashes are (as they always were here: the text is not
 * compared), so the table needs no equality callback; nonzero() adds the pair {0, 1} to the
 * collisions already accepted, a 2^-64 chance. Returns the path's count, or NULL. */
static inline uint64_t *tp_find(const weft_logs_tp_t *t, uint64_t h)
{
    return weft_htab_find(&t->counts, nonzero(h), NULL, NULL, NULL);
}

/* The top bit of a path's count in a part's main path table marks a static file, decided once
 * when the path is first seen (weft_logs_is_static): readers of counts mask it (tp_count). */
#define TP_STATIC (UINT64_C(1) << 63)

/* The count of the i-th path (first-seen order). */
static inline uint64_t tp_count(const weft_logs_tp_t *t, size_t i)
{
    return *tp_find(t, t->ents[i].hash) & ~TP_STATIC;
}

static inline uint32_t path_keep(uint32_t len)
{
    return len < WEFT_LOGS_PATH_KEEP ? len : WEFT_LOGS_PATH_KEEP;
}

/* IPv4. Returns 0 or -ENOMEM. */
int weft_logs_t4_init(weft_logs_t4_t *t, uint32_t cap);
void weft_logs_t4_free(weft_logs_t4_t *t);
/* Finds or inserts `key` (hash `h` = hash4(key)); returns its slot, or NULL when growing
 * failed. */
weft_logs_e4_t *weft_logs_t4_slot(weft_logs_t4_t *t, uint32_t key, uint64_t h);
/* Grows the table so that it holds `n` keys in all without growing again (at most 2^31 slots).
 * Returns 0 or -ENOMEM (the table is unchanged). */
int weft_logs_t4_reserve(weft_logs_t4_t *t, uint64_t n);
/* Adds `carry` to the spilled part of `key`'s count; out of memory sets *oom. */
void weft_logs_spill_add(weft_logs_t4_t *t, uint32_t key, uint64_t carry, int *oom);

/* IPv6. Return 0 or -ENOMEM. */
int weft_logs_t6_init(weft_logs_t6_t *t, size_t cap);
void weft_logs_t6_free(weft_logs_t6_t *t);
/* Adds `n` to `addr`; `text` (`tlen` bytes, at most 45; NULL or "": unknown) is a spelling of
 * the address, kept when it is the least seen (weft_logs_e6_t). */
int weft_logs_t6_add(weft_logs_t6_t *t, const uint8_t *addr, const char *text, size_t tlen,
                     uint64_t n);
/* The same, with `h` = nonzero(hash6(addr)) computed (and prefetched) ahead. */
int weft_logs_t6_add_h(weft_logs_t6_t *t, const uint8_t *addr, const char *text, size_t tlen,
                       uint64_t h, uint64_t n);
/* The entry of `addr`, or NULL. */
const weft_logs_e6_t *weft_logs_t6_find(const weft_logs_t6_t *t, const uint8_t *addr);

/* Paths. Return 0 or -ENOMEM. */
int weft_logs_tp_init(weft_logs_tp_t *t);
void weft_logs_tp_free(weft_logs_tp_t *t);
/* Adds `n` to the path with hash `h`; `text`/`keep` is stored the first time it is seen. Past
 * WEFT_LOGS_MAX_PATHS distinct paths only sets t->overflow. */
int weft_logs_tp_add(weft_logs_tp_t *t, uint64_t h, const char *text, uint32_t len, uint32_t keep,
                     uint64_t n);

#endif
