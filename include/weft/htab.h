/* weft/htab.h - the one hash table every module and tool uses.
 *
 * Open addressing with linear probing over a power-of-two array of {hash, value} slots, grown
 * at 3/4 full, with backward-shift deletion (no tombstones, so lookups never slow down after
 * many removals). The table stores a caller's 64-bit value per key (an index into the caller's
 * array, or a pointer cast to uintptr_t); the key itself stays in the caller's records, and an
 * equality callback compares a candidate value with the key being looked up. Storing the full
 * hash means the callback runs only on a 64-bit hash match and growing never calls it.
 *
 * Hash 0 marks an empty slot: pass hashes from weft_hash() (never 0), or map 0 to 1 yourself.
 * Lookup is inline so that a constant `eq` is inlined at hot call sites.
 *
 *   weft_htab_t t = WEFT_HTAB_INIT;
 *   bool added;
 *   uint64_t *v = weft_htab_put(&t, weft_hash_str(name), name_eq, name, names, &added);
 *   if (!v) return -ENOMEM;
 *   if (added) *v = new_index;
 *
 * Thread safety: a table is used by one thread at a time. Ownership: the table owns only its
 * slot array (weft_htab_free); values are the caller's.
 */
#ifndef WEFT_HTAB_H
#define WEFT_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_htab_slot {
    uint64_t hash; /* 0: empty */
    uint64_t val;
} weft_htab_slot_t;

typedef struct weft_htab {
    weft_htab_slot_t *slots; /* private */
    size_t mask;             /* private: capacity - 1; 0 with no slots */
    size_t len;              /* read-only: number of entries */
} weft_htab_t;

#define WEFT_HTAB_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Does the entry whose value is `val` have the key `key`? `ctx` is passed through (e.g. the
 * caller's array of records). NULL `eq` means "equal hashes are equal keys". */
typedef bool (*weft_htab_eq_fn)(uint64_t val, const void *key, const void *ctx);

/* Initialises an empty table (the same as WEFT_HTAB_INIT). Ownership: borrows `t`. */
void weft_htab_init(weft_htab_t *t);

/* Makes room for `n` entries in all, so that inserting up to `n` never allocates.
 * Returns 0 or -ENOMEM (the table is unchanged). */
int weft_htab_reserve(weft_htab_t *t, size_t n);

/* Frees the slot array; the table is empty and may be reused. */
void weft_htab_free(weft_htab_t *t);

/* Returns a pointer to the value stored for `key`, or NULL. The pointer is valid until the next
 * put, reserve or remove. Ownership: borrows everything. */
static inline uint64_t *weft_htab_find(const weft_htab_t *t, uint64_t hash, weft_htab_eq_fn eq,
                                       const void *key, const void *ctx)
{
    if (!t->len) return NULL;
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
        weft_htab_slot_t *s = &t->slots[i];
        if (s->hash == 0) return NULL;
        if (s->hash == hash && (!eq || eq(s->val, key, ctx))) return &s->val;
    }
}

/* Starts loading the slot where a lookup of `hash` begins, so that a batch of lookups can
 * overlap their cache misses (compute the hashes and prefetch a batch, then look them up).
 * Only a hint: no effect on the table. */
static inline void weft_htab_prefetch(const weft_htab_t *t, uint64_t hash)
{
#if defined(__GNUC__) || defined(__clang__)
    if (t->slots) __builtin_prefetch(&t->slots[hash & t->mask]);
#else
    (void)t;
    (void)hash;
#endif
}

/* Finds `key` or adds it: *added tells which. A new entry's value is 0, for the caller to set
 * through the returned pointer (valid until the next put, reserve or remove). Returns NULL on
 * -ENOMEM, with the table unchanged. */
uint64_t *weft_htab_put(weft_htab_t *t, uint64_t hash, weft_htab_eq_fn eq, const void *key,
                        const void *ctx, bool *added);

/* Removes `key`. Returns true and stores its value in *val (if val is not NULL) when it was
 * there, false otherwise. Never allocates. */
bool weft_htab_remove(weft_htab_t *t, uint64_t hash, weft_htab_eq_fn eq, const void *key,
                      const void *ctx, uint64_t *val);

/* Iteration in slot order: start with *pos = 0; returns the next occupied slot or NULL at the
 * end. The table must not change during the iteration. */
weft_htab_slot_t *weft_htab_next(const weft_htab_t *t, size_t *pos);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_HTAB_H */
