/* Task records: the pool of record slots (chunks that never move, a LIFO free list), the
 * dependency edges between records, and the ring of finished tasks' outcomes.
 *
 * DESIGN
 * Threads: none of its own; every function runs under weft_sched.mu (sched-int.h), except
 * weft__rec(), which needs no lock for a record the caller owns (chunks never move).
 * Invariants:
 *   - a slot is free (id 0, on the free list) or holds one task, whose id is
 *     (seq << WEFT__IDX_BITS) | slot with seq increasing: a reused slot gets a larger id, so a
 *     stale id or edge never matches its new occupant;
 *   - the outcome ring is indexed by seq (not by slot), so a finished task's outcome stays until
 *     a task submitted ring_mask + 1 (>= opts.remember) submissions later finishes.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>
#include <weft/err.h>

/* The record of task `id` while it is unfinished, or NULL. With `unreleased`, also a finished
 * task whose dependents are not released yet (its future is being settled): a new dependent
 * then joins the others, so that it too starts only after that future is DONE. */
struct rec *weft__rec_lookup(weft_sched_t *s, weft_sched_id_t id, bool unreleased,
                             uint32_t *idx_out)
{
    uint64_t idx = id & WEFT__IDX_MASK;
    if (id == 0 || idx >= s->nrecs) return NULL;
    struct rec *r = weft__rec(s, (uint32_t)idx);
    if (r->id != id || r->state == R_FREE) return NULL;
    if (r->state == R_RETIRING && (!unreleased || r->walked)) return NULL;
    if (idx_out) *idx_out = (uint32_t)idx;
    return r;
}

/* Makes sure `n` more records can be allocated without failing. */
int weft__rec_reserve(weft_sched_t *s, size_t n)
{
    size_t freecount = 0;
    for (uint32_t i = s->free_head; i != WEFT__NIL && freecount < n; i = weft__rec(s, i)->link)
        freecount++;
    size_t need = s->nrecs + (n - freecount);
    if (need > (size_t)WEFT__MAX_CHUNKS * WEFT__CHUNK) return -ENOSPC;
    if (s->next_seq + n >= WEFT__MAX_SEQ) return -ENOSPC; /* ids stay unique */
    while (s->nchunks * WEFT__CHUNK < need) {
        /* calloc: untouched pages of a fresh chunk cost no resident memory. */
        struct rec *c = weft__calloc(WEFT__CHUNK, sizeof(struct rec));
        if (!c) return -ENOMEM;
        s->chunks[s->nchunks++] = c;
    }
    return 0;
}

/* Takes a record from the free list or the reserved chunks (call rec_reserve first). */
uint32_t weft__rec_alloc(weft_sched_t *s)
{
    uint32_t idx;
    if (s->free_head != WEFT__NIL) {
        idx = s->free_head;
        s->free_head = weft__rec(s, idx)->link;
    } else {
        idx = (uint32_t)s->nrecs++;
    }
    struct rec *r = weft__rec(s, idx);
    memset(r, 0, sizeof *r);
    r->id = (s->next_seq++ << WEFT__IDX_BITS) | idx;
    r->dependents = WEFT__NIL;
    r->link = WEFT__NIL;
    r->route = (uint8_t)WEFT_ROUTE_COUNT;
    return idx;
}

void weft__extra_free(struct extra *x)
{
    if (!x) return;
    if (!x->name_borrowed) weft__free((char *)x->name);
    weft__free(x->msg);
    weft__free(x->cause);
    weft__free(x);
}

/* Returns a record's slot to the free list (its future must already be handed off). */
void weft__rec_free(weft_sched_t *s, uint32_t idx)
{
    struct rec *r = weft__rec(s, idx);
    if (r->parg) {
        s->parg_bytes -= r->plen;
        weft__free(r->parg);
    }
    weft__extra_free(r->x);
    weft__timer_cancel(s, idx);
    memset(r, 0, sizeof *r);
    r->state = R_FREE;
    r->link = s->free_head;
    s->free_head = idx;
}

struct extra *weft__extra_of(struct rec *r)
{
    if (!r->x) r->x = weft__calloc(1, sizeof *r->x);
    return r->x;
}

/* Makes sure `n` more edges can be added without failing. */
int weft__edge_reserve(weft_sched_t *s, size_t n)
{
    if (s->nedges + n <= s->capedges) return 0;
    size_t cap = s->capedges ? s->capedges : 256;
    while (cap < s->nedges + n) cap *= 2;
    struct edge *a = weft__realloc(s->edges, cap * sizeof *a);
    if (!a) return -ENOMEM;
    s->edges = a;
    s->capedges = cap;
    return 0;
}

/* Records that task `id` depends on `dep` (call edge_reserve first). */
void weft__edge_add(weft_sched_t *s, struct rec *dep, uint64_t id)
{
    uint32_t e;
    if (s->free_edge != WEFT__NIL) {
        e = s->free_edge;
        s->free_edge = s->edges[e].next;
    } else {
        e = (uint32_t)s->nedges++;
    }
    s->edges[e] = (struct edge){id, dep->dependents};
    dep->dependents = e;
}

/* The outcome of finished task `id`, if still remembered: indexed by the id's submission
 * sequence number, so that an outcome is overwritten only by that of a task submitted
 * ring_mask + 1 (>= opts.remember) submissions later. */
struct ring_ent *weft__ring_of(weft_sched_t *s, weft_sched_id_t id)
{
    return &s->ring[(id >> WEFT__IDX_BITS) & s->ring_mask];
}

void weft__ring_store(weft_sched_t *s, uint32_t idx, struct rec *r, weft_sched_state_t st,
                      int status, uint64_t now)
{
    weft_sched_id_t id = r->id;
    struct ring_ent *e = weft__ring_of(s, id);
    (void)idx;
    e->id = id;
    e->status = status;
    e->state = (uint8_t)st;
    e->attempts = r->attempts;
    e->route = r->route;
    e->nerr = r->x ? (uint8_t)r->x->nerrors : 0;
    e->err_first = e->nerr ? r->x->errors[0] : 0;
    e->err_last = e->nerr ? r->x->errors[e->nerr - 1] : 0;
    e->t_sub = r->t_sub;
    e->t_fin = now;
}
