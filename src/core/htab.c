/* The one hash table (weft/htab.h): linear probing, grown at 3/4 full, backward-shift deletion.
 *
 * Invariant: every entry lies in the run of occupied slots that starts at its home slot
 * (hash & mask), with no empty slot between its home and itself. Lookup relies on it (an empty
 * slot ends the search) and removal keeps it by moving later entries of the run back into the
 * hole when their home is not between the hole and themselves.
 */
#include <errno.h>
#include <stdbool.h>
#include <weft/htab.h>

#include "core/alloc.h"

void weft_htab_init(weft_htab_t *t)
{
    t->slots = NULL;
    t->mask = 0;
    t->len = 0;
}

void weft_htab_free(weft_htab_t *t)
{
    weft__free(t->slots);
    weft_htab_init(t);
}

static bool fits(size_t cap, size_t n)
{
    return cap && n <= cap / 4 * 3;
}

int weft_htab_reserve(weft_htab_t *t, size_t n)
{
    size_t cap = t->slots ? t->mask + 1 : 0;
    if (fits(cap, n)) return 0;
    size_t ncap = cap ? cap : 16;
    while (!fits(ncap, n)) {
        if (ncap > SIZE_MAX / 2 / sizeof(weft_htab_slot_t)) return -ENOMEM;
        ncap *= 2;
    }
    weft_htab_slot_t *ns = weft__calloc(ncap, sizeof *ns);
    if (!ns) return -ENOMEM;
    for (size_t i = 0; i < cap; i++) {
        weft_htab_slot_t s = t->slots[i];
        if (!s.hash) continue;
        size_t j = s.hash & (ncap - 1);
        while (ns[j].hash) j = (j + 1) & (ncap - 1);
        ns[j] = s;
    }
    weft__free(t->slots);
    t->slots = ns;
    t->mask = ncap - 1;
    return 0;
}

uint64_t *weft_htab_put(weft_htab_t *t, uint64_t hash, weft_htab_eq_fn eq, const void *key,
                        const void *ctx, bool *added)
{
    *added = false;
    uint64_t *v = weft_htab_find(t, hash, eq, key, ctx);
    if (v) return v;
    if (weft_htab_reserve(t, t->len + 1) != 0) return NULL;
    size_t i = hash & t->mask;
    while (t->slots[i].hash) i = (i + 1) & t->mask;
    t->slots[i].hash = hash;
    t->slots[i].val = 0;
    t->len++;
    *added = true;
    return &t->slots[i].val;
}

bool weft_htab_remove(weft_htab_t *t, uint64_t hash, weft_htab_eq_fn eq, const void *key,
                      const void *ctx, uint64_t *val)
{
    uint64_t *v = weft_htab_find(t, hash, eq, key, ctx);
    if (!v) return false;
    if (val) *val = *v;
    size_t hole =
        (size_t)((weft_htab_slot_t *)((char *)v - offsetof(weft_htab_slot_t, val)) - t->slots);
    for (size_t j = (hole + 1) & t->mask; t->slots[j].hash; j = (j + 1) & t->mask) {
        size_t home = t->slots[j].hash & t->mask;
        /* The entry at j may move to the hole unless its home lies in (hole, j] (cyclically). */
        bool home_after_hole = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (home_after_hole) continue;
        t->slots[hole] = t->slots[j];
        hole = j;
    }
    t->slots[hole].hash = 0;
    t->slots[hole].val = 0;
    t->len--;
    return true;
}

weft_htab_slot_t *weft_htab_next(const weft_htab_t *t, size_t *pos)
{
    if (!t->slots) return NULL;
    for (size_t i = *pos; i <= t->mask; i++) {
        if (t->slots[i].hash) {
            *pos = i + 1;
            return &t->slots[i];
        }
    }
    *pos = t->mask + 1;
    return NULL;
}
