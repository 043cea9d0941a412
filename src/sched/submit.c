/* Submission: validating task descriptions, interning classes, process function names and
 * retry policies, and entering a batch of tasks with their dependencies in one locked section
 * (all or nothing); dependencies on futures.
 *
 * DESIGN
 * Threads: any submitter; extdep_cb runs on whichever thread completes a dependency future.
 * Everything that can fail (allocations, validation, unknown dependency ids) is checked before
 * anything is changed, so a failed submit leaves no trace but interned names. Lock order:
 * weft_sched.mu, then at most a future's stripe lock (weft__future_add_node), a leaf.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"
#include "exec/procpool-int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <weft/err.h>
#include <weft/hash.h>

#define MAX_PRIO 1000000

static bool strtab_eq(uint64_t val, const void *key, const void *ctx)
{
    const struct strtab *t = ctx;
    return strcmp(t->str[val], key) == 0;
}

/* Returns the index of `str` in the table, adding it if needed; -ENOMEM; -ENOSPC past 65535. */
static int strtab_intern(struct strtab *t, const char *str, bool *added)
{
    *added = false;
    uint64_t h = weft_hash_str(str);
    uint64_t *v = weft_htab_find(&t->idx, h, strtab_eq, str, t);
    if (v) return (int)*v;
    if (t->n >= 65535) return -ENOSPC;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **a = weft__realloc(t->str, cap * sizeof *a);
        if (!a) return -ENOMEM;
        t->str = a;
        t->cap = cap;
    }
    if (weft_htab_reserve(&t->idx, t->n + 1) < 0) return -ENOMEM;
    char *copy = weft__strdup(str);
    if (!copy) return -ENOMEM;
    bool put;
    v = weft_htab_put(&t->idx, h, strtab_eq, str, t, &put); /* reserved: cannot fail */
    *v = t->n;
    t->str[t->n++] = copy;
    *added = true;
    return (int)(t->n - 1);
}

void weft__strtab_free(struct strtab *t)
{
    for (size_t i = 0; i < t->n; i++) weft__free(t->str[i]);
    weft__free(t->str);
    weft_htab_free(&t->idx);
    memset(t, 0, sizeof *t);
}

static int intern_class(weft_sched_t *s, const char *name)
{
    if (s->cls_names.n == s->classes_cap) { /* room first, so a new name always has a class */
        size_t cap = s->classes_cap ? s->classes_cap * 2 : 8;
        weft__class_t *c = weft__realloc(s->classes, cap * sizeof *c);
        if (!c) return -ENOMEM;
        s->classes = c;
        s->classes_cap = cap;
    }
    bool added;
    int i = strtab_intern(&s->cls_names, name, &added);
    if (i >= 0 && added) weft__class_init(&s->classes[i], name);
    return i;
}

static int intern_policy(weft_sched_t *s, const weft_sched_retry_t *p)
{
    if (!p || p->attempts <= 1) return 0;
    struct policy np;
    memset(&np, 0, sizeof np);
    np.p.attempts = p->attempts;
    np.p.backoff_ns = p->backoff_ns ? p->backoff_ns : 100000000u;
    np.p.backoff_max_ns = p->backoff_max_ns ? p->backoff_max_ns : UINT64_C(30000000000);
    np.p.n_on = p->n_on;
    for (size_t i = 0; i < p->n_on; i++) np.on[i] = p->on[i];
    for (size_t i = 1; i < s->npolicies; i++) {
        struct policy *q = &s->policies[i];
        if (q->p.attempts == np.p.attempts && q->p.backoff_ns == np.p.backoff_ns &&
            q->p.backoff_max_ns == np.p.backoff_max_ns && q->p.n_on == np.p.n_on &&
            memcmp(q->on, np.on, sizeof np.on) == 0)
            return (int)i;
    }
    if (s->npolicies >= 65535) return -ENOSPC;
    if (s->npolicies == 0) s->npolicies = 1; /* index 0 means "no policy" */
    struct policy *a = weft__realloc(s->policies, (s->npolicies + 1) * sizeof *a);
    if (!a) return -ENOMEM;
    s->policies = a;
    s->policies[s->npolicies] = np;
    return (int)s->npolicies++;
}

static void extdep_cb(weft_future_t *f, void *arg)
{
    struct extdep *d = arg;
    weft_sched_t *s = d->s;
    int st = weft_future_status(f);
    struct todo t = TODO_INIT;
    pthread_mutex_lock(&s->mu);
    if (d->orphan) { /* the task finished first (detach_extdeps) */
        if (--s->ext_inflight == 0) pthread_cond_broadcast(&s->idle_cv);
    } else {
        struct rec *r = weft__rec(s, d->idx);
        for (struct extdep **p = &r->x->ext; *p; p = &(*p)->next)
            if (*p == d) {
                *p = d->next;
                break;
            }
        if (st >= 0) {
            if (--r->deps_left == 0) {
                s->waiting--;
                weft__make_ready(s, &t, d->idx);
            }
        } else {
            const char *m = weft_future_message(f);
            weft_buf_t b;
            weft_buf_init(&b, 1024);
            weft_buf_printf(&b, "skipped: a dependency future failed: %s",
                            m ? m : weft_strerror(st));
            size_t n;
            char *msg = weft_buf_steal(&b, &n);
            weft_buf_free(&b);
            weft__retire(s, &t, d->idx, WEFT_TASK_SKIPPED, WEFT_ESKIPPED, msg);
        }
        weft__drain_props(s, &t);
        weft__dispatch(s, &t);
    }
    pthread_mutex_unlock(&s->mu);
    weft__run_todo(s, &t);
    weft_future_release(f);
    weft__free(d);
}

static bool bad_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255) return true;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return true;
    return false;
}

static void why_printf(weft_buf_t *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void why_printf(weft_buf_t *why, const char *fmt, ...)
{
    if (!why) return;
    va_list ap;
    va_start(ap, fmt);
    weft_buf_vprintf(why, fmt, ap);
    va_end(ap);
}

static unsigned task_forms(const weft_sched_task_t *t)
{
    return (t->fn ? WEFT__FORM_THREAD : 0u) | (t->proc_fn ? WEFT__FORM_PROC : 0u) |
           (t->async_fn ? WEFT__FORM_ASYNC : 0u);
}

static int validate(weft_sched_t *s, const weft_sched_task_t *t, const char *label, weft_buf_t *why)
{
    unsigned forms = task_forms(t);
    if (!forms) {
        why_printf(why, "task %s has no function (fn, proc_fn or async_fn)", label);
        return -EINVAL;
    }
    unsigned avail = (s->rcfg.has[WEFT_ROUTE_THREADS] ? WEFT__FORM_THREAD : 0u) |
                     (s->rcfg.has[WEFT_ROUTE_PROCS] ? WEFT__FORM_PROC : 0u) |
                     (s->rcfg.has[WEFT_ROUTE_LOOP] ? WEFT__FORM_ASYNC : 0u);
    if (!(forms & avail)) {
        why_printf(why, "task %s: no executor of this scheduler runs any of its forms", label);
        return -EINVAL;
    }
    if (t->priority < -MAX_PRIO || t->priority > MAX_PRIO || (unsigned)t->type > WEFT_SCHED_MIXED) {
        why_printf(why, "task %s: priority or type out of range", label);
        return -EINVAL;
    }
    if (t->retry &&
        (t->retry->attempts > 64 || t->retry->n_on > 32 || (t->retry->n_on && !t->retry->on))) {
        why_printf(why, "task %s: retry policy out of range (attempts <= 64, <= 32 codes)", label);
        return -EINVAL;
    }
    if ((t->cls && (strlen(t->cls) == 0 || strlen(t->cls) > 63)) ||
        (t->proc_fn && (strlen(t->proc_fn) == 0 || strlen(t->proc_fn) > 63))) {
        why_printf(why, "task %s: class or process function name empty or over 63 bytes", label);
        return -EINVAL;
    }
    if (t->proc_fn && !weft__pp_lookup(t->proc_fn, &(uint64_t){0})) {
        why_printf(why, "task %s: process function '%s' is not registered (WEFT_PROCPOOL_FN)",
                   label, t->proc_fn);
        return -EINVAL;
    }
    if ((t->ndeps && !t->deps) || (t->ndep_futures && !t->dep_futures) ||
        (t->proc_len && !t->proc_arg) || t->proc_len > UINT32_MAX) {
        why_printf(why, "task %s: inconsistent dependency or argument fields", label);
        return -EINVAL;
    }
    return 0;
}

static void class_name_of(const weft_sched_task_t *t, char *buf, size_t n)
{
    if (t->cls)
        snprintf(buf, n, "%s", t->cls);
    else if (t->proc_fn)
        snprintf(buf, n, "%s", t->proc_fn);
    else if (t->fn)
        snprintf(buf, n, "fn@%p", (void *)(uintptr_t)t->fn);
    else
        snprintf(buf, n, "async@%p", (void *)(uintptr_t)t->async_fn);
}

/* The class of a task. Tasks named by their function (no cls, no proc_fn) hit a small cache
 * keyed by the function pointers, so the common repeated submit does no formatting. */
static int class_of(weft_sched_t *s, const weft_sched_task_t *t)
{
    bool by_fn = !t->cls && !t->proc_fn;
    size_t slot = (((uintptr_t)t->fn ^ (uintptr_t)t->async_fn) >> 4) & 15;
    if (by_fn && s->fn_cache[slot].idx > 0 && s->fn_cache[slot].fn == t->fn &&
        s->fn_cache[slot].afn == t->async_fn)
        return s->fn_cache[slot].idx - 1;
    char cname[64];
    class_name_of(t, cname, sizeof cname);
    int c = intern_class(s, cname);
    if (by_fn && c >= 0) {
        s->fn_cache[slot].fn = t->fn;
        s->fn_cache[slot].afn = t->async_fn;
        s->fn_cache[slot].idx = c + 1;
    }
    return c;
}

int weft__sched_submit_batch(weft_sched_t *s, size_t n, const weft_sched_task_t *tasks,
                             const char *const *names, bool borrow_names,
                             weft_sched_info_t *const *infos, const int *const *local,
                             const size_t *nlocal, const bool *resumed, weft_future_t **futs,
                             weft_sched_id_t *ids, weft_buf_t *why)
{
    if (n == 0) return 0;
    if (n > UINT32_MAX / 2) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (futs) futs[i] = NULL;
        if (ids) ids[i] = 0;
    }
    /* Validate and allocate everything that can fail before touching the scheduler. */
    size_t nedges = 0;
    for (size_t i = 0; i < n; i++) {
        const weft_sched_task_t *t = &tasks[i];
        const char *nm = names && names[i] ? names[i] : NULL;
        char label[300]; /* not zero-filled: that was a tenth of a single submit's cost */
        label[0] = '\0';
        if (why) { /* only messages need it */
            if (nm)
                snprintf(label, sizeof label, "'%s'", nm);
            else
                snprintf(label, sizeof label, "#%zu", i);
        }
        if (nm && bad_name(nm)) {
            why_printf(why, "task %s: a name is 1..255 bytes without control characters", label);
            return -EINVAL;
        }
        int rc = validate(s, t, label, why);
        if (rc < 0) return rc;
        nedges += t->ndeps + (nlocal ? nlocal[i] : 0);
        if (local)
            for (size_t k = 0; k < nlocal[i]; k++)
                if (local[i][k] < 0 || (size_t)local[i][k] >= n || (size_t)local[i][k] == i) {
                    why_printf(why, "task %s: bad dependency index %d", label, local[i][k]);
                    return -EINVAL;
                }
    }
    struct prep {
        weft_future_t *fut;
        void *parg;
        struct extra *x;
        struct extdep *ext;
    } prep_small[4], *prep = prep_small;
    uint32_t ix_small[4], *ix = ix_small;
    uint16_t cls_small[12], *cls = cls_small, *pfn, *pol;
    if (n <= 4) { /* the common single submit allocates nothing here */
        memset(prep_small, 0, n * sizeof prep_small[0]);
    } else {
        prep = weft__calloc(n, sizeof *prep);
        ix = weft__malloc(n * sizeof *ix);
        cls = weft__malloc(n * 3 * sizeof *cls);
        if (!prep || !ix || !cls) {
            weft__free(prep);
            weft__free(ix);
            weft__free(cls);
            return -ENOMEM;
        }
    }
    pfn = cls + n;
    pol = cls + 2 * n;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const weft_sched_task_t *t = &tasks[i];
        struct prep *p = &prep[i];
        if (futs && !(p->fut = weft_future_create())) rc = -ENOMEM;
        if (t->proc_len && !(p->parg = weft__malloc(t->proc_len))) rc = -ENOMEM;
        if (p->parg) memcpy(p->parg, t->proc_arg, t->proc_len);
        const char *nm = names && names[i] ? names[i] : NULL;
        if (nm || infos || t->ndep_futures) {
            if (!(p->x = weft__calloc(1, sizeof *p->x))) {
                rc = -ENOMEM;
                break;
            }
            if (nm) {
                p->x->name_borrowed = borrow_names;
                p->x->name = borrow_names ? nm : weft__strdup(nm);
                if (!p->x->name) rc = -ENOMEM;
            }
            p->x->info = infos ? infos[i] : NULL;
        }
        for (size_t k = 0; k < t->ndep_futures && rc == 0; k++) {
            struct extdep *d = weft__calloc(1, sizeof *d);
            if (!d) {
                rc = -ENOMEM;
                break;
            }
            d->f = weft_future_retain(t->dep_futures[k]);
            d->s = s;
            d->node.cb = extdep_cb;
            d->node.arg = d;
            d->next = p->ext;
            p->ext = d;
        }
    }
    struct todo td = TODO_INIT;
    pthread_mutex_lock(&s->mu);
    if (rc == 0 && s->shutdown) {
        why_printf(why, "the scheduler is shutting down");
        rc = -ESHUTDOWN;
    }
    if (rc == 0) rc = weft__rec_reserve(s, n);
    if (rc == 0) rc = weft__edge_reserve(s, nedges);
    /* Dependency ids: live, or finished and remembered. */
    for (size_t i = 0; i < n && rc == 0; i++)
        for (size_t k = 0; k < tasks[i].ndeps; k++) {
            weft_sched_id_t id = tasks[i].deps[k];
            if (weft__rec_lookup(s, id, true, NULL)) continue;
            if (id != 0 && weft__ring_of(s, id)->id == id) continue;
            why_printf(why,
                       "task %zu depends on task #%" PRIu64 ", which is unknown or finished "
                       "too long ago (depend on its future instead)",
                       i, id);
            rc = -ENOENT;
            break;
        }
    /* Names and policies are interned first; they may stay interned if a later step fails. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        int c = class_of(s, &tasks[i]);
        int pf = 0;
        if (c >= 0 && tasks[i].proc_fn) {
            bool added;
            pf = strtab_intern(&s->pfn_names, tasks[i].proc_fn, &added);
            if (pf >= 0) pf++;
        }
        int po = c >= 0 && pf >= 0 ? intern_policy(s, tasks[i].retry) : 0;
        if (c < 0 || pf < 0 || po < 0) {
            rc = c < 0 ? c : pf < 0 ? pf : po;
            why_printf(why, "too many classes, functions or policies, or out of memory");
            break;
        }
        cls[i] = (uint16_t)c;
        pfn[i] = (uint16_t)pf;
        pol[i] = (uint16_t)po;
    }
    if (rc < 0) {
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < n; i++) {
            weft_future_release(prep[i].fut);
            weft__free(prep[i].parg);
            weft__extra_free(prep[i].x);
            for (struct extdep *d = prep[i].ext, *next; d; d = next) {
                next = d->next;
                weft_future_release(d->f);
                weft__free(d);
            }
        }
        if (prep != prep_small) {
            weft__free(prep);
            weft__free(ix);
            weft__free(cls);
        }
        return rc;
    }
    /* From here on nothing fails. Records first, so that local edges can point at them. */
    uint64_t now = weft__tnow(s, &td);
    for (size_t i = 0; i < n; i++) {
        const weft_sched_task_t *t = &tasks[i];
        uint32_t idx = weft__rec_alloc(s);
        ix[i] = idx;
        struct rec *r = weft__rec(s, idx);
        r->fn = t->fn;
        r->arg = t->arg;
        r->afn = t->async_fn;
        r->aarg = t->async_arg;
        r->parg = prep[i].parg;
        r->plen = (uint32_t)t->proc_len;
        s->parg_bytes += t->proc_len;
        r->fut = prep[i].fut ? weft_future_retain(prep[i].fut) : NULL;
        if (r->fut) s->futures++;
        r->x = prep[i].x;
        r->t_sub = now;
        r->timeout_ns = t->timeout_ns;
        r->prio = t->priority;
        r->cls = cls[i];
        r->pfn = pfn[i];
        r->policy = pol[i];
        r->type = (uint8_t)t->type;
        r->state = R_WAITING;
        r->deps_left = 1; /* guard, dropped below */
        if (r->x && r->x->info) {
            memset(r->x->info, 0, sizeof *r->x->info);
            r->x->info->route = WEFT_ROUTE_NONE;
            r->x->info->status = -EINPROGRESS;
            r->x->info->submitted_ns = s->t0 + now;
        }
        if (futs) futs[i] = prep[i].fut;
        if (ids) ids[i] = r->id;
    }
    s->live += n;
    s->waiting += n;
    s->submitted += n;
    atomic_fetch_add_explicit(&s->unsettled, n, memory_order_relaxed); /* under mu: ordered */
    /* Edges. A dependency that already failed skips the task at once. */
    for (size_t i = 0; i < n; i++) {
        struct rec *r = weft__rec(s, ix[i]);
        const weft_sched_task_t *t = &tasks[i];
        for (size_t k = 0; k < t->ndeps; k++) {
            uint32_t didx;
            struct rec *d = weft__rec_lookup(s, t->deps[k], true, &didx);
            if (d) {
                weft__edge_add(s, d, r->id);
                r->deps_left++;
                continue;
            }
            struct ring_ent *e = weft__ring_of(s, t->deps[k]);
            if (e->status < 0 && r->state == R_WAITING) {
                char msg[200];
                snprintf(msg, sizeof msg, "skipped: dependency #%" PRIu64 " %s: %s", t->deps[k],
                         e->state == WEFT_TASK_SKIPPED ? "was skipped" : "failed",
                         weft_strerror(e->status));
                weft__retire(s, &td, ix[i], WEFT_TASK_SKIPPED, WEFT_ESKIPPED, weft__strdup(msg));
            }
        }
        if (local)
            for (size_t k = 0; k < nlocal[i]; k++) {
                struct rec *d = weft__rec(s, ix[local[i][k]]);
                weft__edge_add(s, d, r->id);
                r->deps_left++;
            }
        for (struct extdep *d = prep[i].ext, *next; d; d = next) {
            next = d->next;
            d->idx = ix[i];
            d->id = r->id;
            if (r->state == R_WAITING && weft__future_add_node(d->f, &d->node) == 0) {
                d->next = r->x->ext;
                r->x->ext = d;
                r->deps_left++;
                continue;
            }
            /* Already DONE (or the task is already skipped): decide now. */
            int st = weft_future_status(d->f);
            if (st < 0 && r->state == R_WAITING) {
                const char *m = weft_future_message(d->f);
                char msg[512];
                snprintf(msg, sizeof msg, "skipped: a dependency future failed: %s",
                         m ? m : weft_strerror(st));
                weft__retire(s, &td, ix[i], WEFT_TASK_SKIPPED, WEFT_ESKIPPED, weft__strdup(msg));
            }
            weft_future_release(d->f);
            weft__free(d);
        }
    }
    /* Resumed tasks finish at once (releasing their dependents' edges), then the guards go. */
    if (resumed)
        for (size_t i = 0; i < n; i++)
            if (resumed[i]) weft__retire(s, &td, ix[i], WEFT_TASK_RESUMED, 0, NULL);
    weft__drain_props(s, &td);
    for (size_t i = 0; i < n; i++) {
        struct rec *r = weft__rec(s, ix[i]);
        if (r->state != R_WAITING) continue;
        if (--r->deps_left == 0) {
            s->waiting--;
            weft__make_ready(s, &td, ix[i]);
        }
    }
    weft__drain_props(s, &td);
    weft__dispatch(s, &td);
    pthread_mutex_unlock(&s->mu);
    if (prep != prep_small) {
        weft__free(prep);
        weft__free(ix);
        weft__free(cls);
    }
    weft__run_todo(s, &td);
    return 0;
}

int weft_sched_submit_many(weft_sched_t *s, const weft_sched_task_t *tasks, size_t n,
                           weft_sched_id_t *ids, weft_future_t **futs)
{
    if (!s || (!tasks && n)) return -EINVAL;
    const char *small[16], **names = n <= 16 ? small : weft__malloc(n * sizeof *names);
    if (!names) return -ENOMEM;
    bool any = false;
    for (size_t i = 0; i < n; i++) any |= (names[i] = tasks[i].name) != NULL;
    int rc = weft__sched_submit_batch(s, n, tasks, any ? names : NULL, false, NULL, NULL, NULL,
                                      NULL, futs, ids, NULL);
    if (names != small) weft__free((void *)names);
    return rc;
}

int weft_sched_submit(weft_sched_t *s, const weft_sched_task_t *t, weft_sched_id_t *id,
                      weft_future_t **out)
{
    const char *name = t ? t->name : NULL;
    if (out) *out = NULL;
    if (id) *id = 0;
    if (!s || !t) return -EINVAL;
    weft_future_t *f = NULL;
    int rc = weft__sched_submit_batch(s, 1, t, &name, false, NULL, NULL, NULL, NULL,
                                      out ? &f : NULL, id, NULL);
    if (rc == 0 && out) *out = f;
    return rc;
}
