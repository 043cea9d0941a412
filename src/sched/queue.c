/* The ready queues, one per executor: priorities with aging, FIFO within a priority.
 *
 * DESIGN
 * Threads: none of its own; every function runs under weft_sched.mu.
 * A queue is one FIFO per priority level (through rec->qnext) and a max-heap of the non-empty
 * levels keyed by their head's aging key (weft__sched_key: priority * aging - enqueue time,
 * which never changes while queued). Within a level keys only decrease, so the best task is the
 * best level's head: push and pop are O(log levels), and a queued task costs no memory beyond
 * its record. The level of a priority is found through a weft_htab.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>
#include <weft/hash.h>

static int64_t level_key(weft_sched_t *s, const struct pqlevel *l)
{
    return weft__sched_key(l->prio, weft__rec(s, l->head)->t_enq, s->opts.aging_ns);
}

static void heap_set(struct pq *q, size_t pos, uint32_t lvi)
{
    q->heap[pos] = lvi;
    q->lv[lvi].hpos = (uint32_t)pos;
}

static void level_up(weft_sched_t *s, struct pq *q, size_t pos)
{
    uint32_t lvi = q->heap[pos];
    int64_t k = level_key(s, &q->lv[lvi]);
    while (pos > 0) {
        size_t p = (pos - 1) / 2;
        if (level_key(s, &q->lv[q->heap[p]]) >= k) break;
        heap_set(q, pos, q->heap[p]);
        pos = p;
    }
    heap_set(q, pos, lvi);
}

static void level_down(weft_sched_t *s, struct pq *q, size_t pos)
{
    uint32_t lvi = q->heap[pos];
    int64_t k = level_key(s, &q->lv[lvi]);
    for (;;) {
        size_t l = 2 * pos + 1, r = l + 1, m = pos;
        int64_t mk = k;
        if (l < q->nheap) {
            int64_t lk = level_key(s, &q->lv[q->heap[l]]);
            if (lk > mk) {
                m = l;
                mk = lk;
            }
        }
        if (r < q->nheap && level_key(s, &q->lv[q->heap[r]]) > mk) m = r;
        if (m == pos) break;
        heap_set(q, pos, q->heap[m]);
        pos = m;
    }
    heap_set(q, pos, lvi);
}

static bool level_eq(uint64_t val, const void *key, const void *ctx)
{
    const struct pq *q = ctx;
    return q->lv[val].prio == *(const int32_t *)key;
}

/* The level of `prio`, created if needed (-ENOMEM). */
static int pq_level(struct pq *q, int32_t prio)
{
    /* Most pushes repeat the last priority: that saves hashing on the hot path. */
    if (q->nlv && q->lv[q->last].prio == prio) return (int)q->last;
    uint64_t h = weft_hash(&prio, sizeof prio);
    uint64_t *v = weft_htab_find(&q->map, h, level_eq, &prio, q);
    if (v) return (int)(q->last = (uint32_t)*v);
    if (q->nlv == q->caplv) {
        size_t cap = q->caplv ? q->caplv * 2 : 8;
        struct pqlevel *a = weft__realloc(q->lv, cap * sizeof *a);
        uint32_t *hp = a ? weft__realloc(q->heap, cap * sizeof *hp) : NULL;
        if (a) q->lv = a;
        if (!hp) return -ENOMEM;
        q->heap = hp;
        q->caplv = cap;
    }
    bool added;
    v = weft_htab_put(&q->map, h, level_eq, &prio, q, &added);
    if (!v) return -ENOMEM;
    *v = q->nlv;
    q->lv[q->nlv] = (struct pqlevel){prio, WEFT__NIL, WEFT__NIL, WEFT__NIL};
    q->last = (uint32_t)q->nlv;
    return (int)q->nlv++;
}

/* Appends record idx (t_enq set, not earlier than the level's tail's) to its level. */
int weft__pq_push(weft_sched_t *s, struct pq *q, uint32_t idx)
{
    struct rec *r = weft__rec(s, idx);
    int lvi = pq_level(q, r->prio);
    if (lvi < 0) return lvi;
    struct pqlevel *l = &q->lv[lvi];
    r->qnext = WEFT__NIL;
    if (l->tail != WEFT__NIL) {
        weft__rec(s, l->tail)->qnext = idx;
        l->tail = idx;
    } else {
        l->head = l->tail = idx;
        heap_set(q, q->nheap++, (uint32_t)lvi);
        level_up(s, q, q->nheap - 1);
    }
    q->n++;
    return 0;
}

/* Removes and returns the best task, or WEFT__NIL. */
uint32_t weft__pq_pop(weft_sched_t *s, struct pq *q)
{
    if (q->nheap == 0) return WEFT__NIL;
    uint32_t lvi = q->heap[0];
    struct pqlevel *l = &q->lv[lvi];
    uint32_t idx = l->head;
    l->head = weft__rec(s, idx)->qnext;
    q->n--;
    if (l->head == WEFT__NIL) {
        l->tail = WEFT__NIL;
        l->hpos = WEFT__NIL;
        if (--q->nheap > 0) {
            heap_set(q, 0, q->heap[q->nheap]);
            level_down(s, q, 0);
        }
    } else if (q->nheap > 1) {
        level_down(s, q, 0); /* its key went down */
    }
    return idx;
}

/* Empties the queue without looking at the records (shutdown retires them itself). */
void weft__pq_clear(struct pq *q)
{
    for (size_t i = 0; i < q->nlv; i++) {
        q->lv[i].head = q->lv[i].tail = WEFT__NIL;
        q->lv[i].hpos = WEFT__NIL;
    }
    q->nheap = 0;
    q->n = 0;
}

void weft__pq_free(struct pq *q)
{
    weft__free(q->lv);
    weft__free(q->heap);
    weft_htab_free(&q->map);
    memset(q, 0, sizeof *q);
}
