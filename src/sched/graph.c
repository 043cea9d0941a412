/* Graphs of named tasks (weft/sched.h): built by one thread, checked for cycles (the cycle is
 * named), submitted whole through weft__sched_submit_batch, waited for, saved as a state file and
 * resumed from one.
 *
 * The graph owns deep copies of its task descriptions. Once submitted, the scheduler writes each
 * task's weft_sched_info_t in the graph under the scheduler's mutex (sched-int.h), and reads of it
 * take that mutex too; everything else here belongs to the graph's one thread. Destroying a
 * submitted graph waits for its tasks, because the scheduler borrows their names and infos.
 *
 * State file (text, one task per line after a header):
 *     weft-sched-state 1
 *     <state>\t<status>\t<attempts>\t<name>
 * where state is "ok" (succeeded or resumed) or a weft_sched_state_name() ("failed", "skipped",
 * "cancelled", "waiting", ...). Names hold no control characters, so tabs and newlines delimit.
 */
#include "sched/sched-int.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/htab.h>
#include <weft/sys.h>

struct gnode {
    char *name;
    weft_sched_task_t t; /* pointers below are owned copies */
    int *local;          /* indexes this task depends on */
    size_t nlocal, caplocal;
    bool resumed;
    weft_sched_info_t info;
    weft_future_t *fut;
};

struct weft_sched_graph {
    struct gnode *n;
    size_t count, cap;
    weft_htab_t names; /* name -> index */
    weft_sched_t *s;   /* set once submitted */
};

static bool name_eq(uint64_t val, const void *key, const void *ctx)
{
    const weft_sched_graph_t *g = ctx;
    return strcmp(g->n[val].name, key) == 0;
}

int weft_sched_graph_create(weft_sched_graph_t **out)
{
    if (!out) return -EINVAL;
    *out = weft__calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

static void node_free(struct gnode *g)
{
    weft__free(g->name);
    weft__free((void *)g->t.cls);
    weft__free((void *)g->t.proc_fn);
    weft__free((void *)g->t.proc_arg);
    weft__free((void *)g->t.deps);
    if (g->t.dep_futures)
        for (size_t i = 0; i < g->t.ndep_futures; i++) weft_future_release(g->t.dep_futures[i]);
    weft__free((void *)g->t.dep_futures);
    if (g->t.retry) weft__free((void *)g->t.retry->on);
    weft__free((void *)g->t.retry);
    weft__free(g->local);
    weft_future_release(g->fut);
}

void weft_sched_graph_destroy(weft_sched_graph_t *g)
{
    if (!g) return;
    if (g->s) weft_sched_graph_wait(g, -1);
    for (size_t i = 0; i < g->count; i++) node_free(&g->n[i]);
    weft__free(g->n);
    weft_htab_free(&g->names);
    weft__free(g);
}

int weft_sched_graph_find(const weft_sched_graph_t *g, const char *name)
{
    if (!g || !name) return -EINVAL;
    uint64_t *v = weft_htab_find(&g->names, weft_hash_str(name), name_eq, name, g);
    return v ? (int)*v : -ENOENT;
}

static int index_name(weft_sched_graph_t *g, size_t idx)
{
    bool added;
    const char *name = g->n[idx].name;
    uint64_t *v = weft_htab_put(&g->names, weft_hash_str(name), name_eq, name, g, &added);
    if (!v) return -ENOMEM;
    *v = idx;
    return 0;
}

static void *dup_bytes(const void *p, size_t n, int *rc)
{
    if (!p || n == 0) return NULL;
    void *d = weft__malloc(n);
    if (!d)
        *rc = -ENOMEM;
    else
        memcpy(d, p, n);
    return d;
}

int weft_sched_graph_add(weft_sched_graph_t *g, const char *name, const weft_sched_task_t *t)
{
    if (!g || g->s || !name || !t) return -EINVAL;
    size_t len = strlen(name);
    if (len == 0 || len > 255) return -EINVAL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return -EINVAL;
    if (g->count >= INT32_MAX / 2) return -ENOSPC;
    if (weft_sched_graph_find(g, name) >= 0) return -EEXIST;
    if (g->count == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        struct gnode *a = weft__realloc(g->n, cap * sizeof *a);
        if (!a) return -ENOMEM;
        g->n = a;
        g->cap = cap;
    }
    struct gnode *nd = &g->n[g->count];
    memset(nd, 0, sizeof *nd);
    int rc = 0;
    nd->t = *t;
    nd->t.name = NULL;
    nd->name = weft__strdup(name);
    if (!nd->name) rc = -ENOMEM;
    nd->t.cls = t->cls ? weft__strdup(t->cls) : NULL;
    if (t->cls && !nd->t.cls) rc = -ENOMEM;
    nd->t.proc_fn = t->proc_fn ? weft__strdup(t->proc_fn) : NULL;
    if (t->proc_fn && !nd->t.proc_fn) rc = -ENOMEM;
    nd->t.proc_arg = dup_bytes(t->proc_arg, t->proc_len, &rc);
    nd->t.deps = dup_bytes(t->deps, t->ndeps * sizeof *t->deps, &rc);
    nd->t.dep_futures = NULL;
    if (t->ndep_futures && t->dep_futures) {
        weft_future_t **fs = weft__malloc(t->ndep_futures * sizeof *fs);
        if (!fs) {
            rc = -ENOMEM;
            nd->t.ndep_futures = 0;
        } else {
            for (size_t i = 0; i < t->ndep_futures; i++)
                fs[i] = weft_future_retain(t->dep_futures[i]);
            nd->t.dep_futures = fs;
        }
    }
    nd->t.retry = NULL;
    if (t->retry) {
        weft_sched_retry_t *r = dup_bytes(t->retry, sizeof *r, &rc);
        if (r) {
            r->on = dup_bytes(t->retry->on, t->retry->n_on * sizeof *r->on, &rc);
            nd->t.retry = r;
        }
    }
    nd->info.state = WEFT_TASK_WAITING;
    nd->info.route = WEFT_ROUTE_NONE;
    nd->info.status = -EINPROGRESS;
    if (rc == 0) rc = index_name(g, g->count);
    if (rc < 0) {
        node_free(nd);
        return rc;
    }
    return (int)g->count++;
}

int weft_sched_graph_depend(weft_sched_graph_t *g, int task, int on)
{
    if (!g || g->s || task < 0 || on < 0 || task == on || (size_t)task >= g->count ||
        (size_t)on >= g->count)
        return -EINVAL;
    struct gnode *nd = &g->n[task];
    for (size_t i = 0; i < nd->nlocal; i++)
        if (nd->local[i] == on) return 0;
    if (nd->nlocal == nd->caplocal) {
        size_t cap = nd->caplocal ? nd->caplocal * 2 : 4;
        int *a = weft__realloc(nd->local, cap * sizeof *a);
        if (!a) return -ENOMEM;
        nd->local = a;
        nd->caplocal = cap;
    }
    nd->local[nd->nlocal++] = on;
    return 0;
}

size_t weft_sched_graph_size(const weft_sched_graph_t *g)
{
    return g->count;
}

const char *weft_sched_graph_name(const weft_sched_graph_t *g, int i)
{
    return i >= 0 && (size_t)i < g->count ? g->n[i].name : NULL;
}

int weft_sched_graph_order(const weft_sched_graph_t *g, int *order, weft_buf_t *why, int *cycle,
                           size_t *ncycle)
{
    if (!g || (g->count && !order)) return -EINVAL;
    size_t n = g->count;
    if (ncycle) *ncycle = 0;
    if (n == 0) return 0;
    const int **deps = weft__malloc(n * sizeof *deps);
    size_t *nd = weft__malloc(n * sizeof *nd);
    int *cyc = weft__malloc(n * sizeof *cyc);
    int rc = -ENOMEM;
    if (deps && nd && cyc) {
        for (size_t i = 0; i < n; i++) {
            deps[i] = g->n[i].local;
            nd[i] = g->n[i].nlocal;
        }
        size_t nc = 0;
        rc = weft__toposort(n, deps, nd, order, cyc, &nc);
        if (rc == WEFT_ECYCLE) {
            if (why) {
                weft_buf_printf(why, "dependency cycle: ");
                for (size_t i = 0; i < nc; i++) weft_buf_printf(why, "%s -> ", g->n[cyc[i]].name);
                weft_buf_printf(why, "%s", g->n[cyc[0]].name);
            }
            if (cycle) memcpy(cycle, cyc, nc * sizeof *cyc);
            if (ncycle) *ncycle = nc;
        }
    }
    weft__free(deps);
    weft__free(nd);
    weft__free(cyc);
    return rc;
}

int weft_sched_graph_resume(weft_sched_graph_t *g, const char *path, weft_buf_t *why)
{
    if (!g || !path) return -EINVAL;
    if (g->s) return -EALREADY;
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = -errno;
        if (why) weft_buf_printf(why, "%s: %s", path, weft_strerror(e));
        return e;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        if (lineno == 1) {
            if (strcmp(line, "weft-sched-state 1") != 0) {
                if (why) weft_buf_printf(why, "%s:1: not a weft state file", path);
                rc = WEFT_EPARSE;
                break;
            }
            continue;
        }
        if (len == 0) continue;
        char *st = line, *status = strchr(st, '\t');
        char *attempts = status ? strchr(status + 1, '\t') : NULL;
        char *name = attempts ? strchr(attempts + 1, '\t') : NULL;
        if (!name || name[1] == '\0') {
            if (why)
                weft_buf_printf(why, "%s:%d: expected state, status, attempts and name", path,
                                lineno);
            rc = WEFT_EPARSE;
            break;
        }
        *status = '\0';
        name++;
        if (strcmp(st, "ok") != 0) continue;
        int i = weft_sched_graph_find(g, name);
        if (i >= 0) g->n[i].resumed = true;
    }
    free(line);
    fclose(f);
    return rc;
}

int weft_sched_graph_submit(weft_sched_t *s, weft_sched_graph_t *g, weft_buf_t *why)
{
    if (!s || !g) return -EINVAL;
    if (g->s) return -EALREADY;
    size_t n = g->count;
    if (n == 0) {
        g->s = s;
        return 0;
    }
    int *order = weft__malloc(n * sizeof *order);
    weft_sched_task_t *tasks = weft__malloc(n * sizeof *tasks);
    const char **names = weft__malloc(n * sizeof *names);
    weft_sched_info_t **infos = weft__malloc(n * sizeof *infos);
    const int **local = weft__malloc(n * sizeof *local);
    size_t *nlocal = weft__malloc(n * sizeof *nlocal);
    bool *resumed = weft__malloc(n * sizeof *resumed);
    weft_future_t **futs = weft__malloc(n * sizeof *futs);
    int rc = -ENOMEM;
    if (order && tasks && names && infos && local && nlocal && resumed && futs) {
        rc = weft_sched_graph_order(g, order, why, NULL, NULL);
        if (rc == 0) {
            for (size_t i = 0; i < n; i++) {
                tasks[i] = g->n[i].t;
                names[i] = g->n[i].name;
                local[i] = g->n[i].local;
                nlocal[i] = g->n[i].nlocal;
                resumed[i] = g->n[i].resumed;
                infos[i] = &g->n[i].info;
            }
            rc = weft__sched_submit_batch(s, n, tasks, names, true, infos, local, nlocal, resumed,
                                          futs, NULL, why);
        }
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) g->n[i].fut = futs[i];
        g->s = s;
    }
    weft__free(order);
    weft__free(tasks);
    weft__free(names);
    weft__free(local);
    weft__free(nlocal);
    weft__free(resumed);
    weft__free(futs);
    weft__free(infos);
    return rc;
}

int weft_sched_graph_wait(weft_sched_graph_t *g, int64_t timeout_ns)
{
    if (!g || !g->s) return -EINVAL;
    uint64_t deadline = timeout_ns < 0 ? 0 : weft_now_ns() + (uint64_t)timeout_ns;
    bool ok = true;
    for (size_t i = 0; i < g->count; i++) {
        int64_t left = -1;
        if (timeout_ns >= 0) {
            uint64_t now = weft_now_ns();
            left = now >= deadline ? 0 : (int64_t)(deadline - now);
        }
        if (weft_future_wait(g->n[i].fut, left) < 0) return -ETIMEDOUT;
        if (weft_future_status(g->n[i].fut) < 0) ok = false;
    }
    return ok ? 0 : 1;
}

int weft_sched_graph_info(weft_sched_graph_t *g, int i, weft_sched_info_t *out)
{
    if (!g || !out || i < 0 || (size_t)i >= g->count) return -EINVAL;
    if (g->s)
        weft__sched_copy_info(g->s, out, &g->n[i].info);
    else
        *out = g->n[i].info;
    return 0;
}

weft_future_t *weft_sched_graph_future(const weft_sched_graph_t *g, int i)
{
    return i >= 0 && (size_t)i < g->count ? g->n[i].fut : NULL;
}

int weft_sched_graph_save(weft_sched_graph_t *g, const char *path)
{
    if (!g || !path) return -EINVAL;
    size_t plen = strlen(path);
    char *tmp = weft__malloc(plen + 32);
    if (!tmp) return -ENOMEM;
    snprintf(tmp, plen + 32, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "we");
    if (!f) {
        int e = -errno;
        weft__free(tmp);
        return e;
    }
    fprintf(f, "weft-sched-state 1\n");
    for (size_t i = 0; i < g->count; i++) {
        weft_sched_info_t in;
        weft_sched_graph_info(g, (int)i, &in);
        const char *st = in.state == WEFT_TASK_DONE || in.state == WEFT_TASK_RESUMED
                             ? "ok"
                             : weft_sched_state_name(in.state);
        fprintf(f, "%s\t%d\t%d\t%s\n", st, in.status, in.attempts, g->n[i].name);
    }
    int rc = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) rc = -errno;
    if (fclose(f) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
    if (rc < 0) unlink(tmp);
    weft__free(tmp);
    return rc;
}
