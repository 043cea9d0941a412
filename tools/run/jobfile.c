/* The job file of `weft run`: YAML read with libyaml's document API, which keeps the line of
 * every node, so that each error names the file, the line and the reason. Everything that can be
 * checked without running is checked here: syntax, unknown keys (with a suggestion), missing
 * commands, bad values, unknown dependencies and cycles (named). See docs/run.md for the format.
 */
#include "run/run.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/htab.h>
#include <yaml.h>

#define MAX_JOBS 100000
#define MAX_TEXT (16u << 20)

struct ctx {
    const char *path;
    yaml_document_t *doc;
    weft_buf_t *err;
    bool failed;
};

static void fail(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    if (c->failed) return; /* the first error is the one to fix */
    c->failed = true;
    weft_buf_printf(c->err, "%s:%zu: ", c->path, n ? n->start_mark.line + 1 : (size_t)1);
    va_list ap;
    va_start(ap, fmt);
    weft_buf_vprintf(c->err, fmt, ap);
    va_end(ap);
}

static yaml_node_t *node(struct ctx *c, int i)
{
    return yaml_document_get_node(c->doc, i);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Levenshtein distance, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32) return 99;
    size_t d[33][33];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

static void unknown_key(struct ctx *c, const yaml_node_t *k, const char *where,
                        const char *const *keys)
{
    const char *key = scalar(k), *best = NULL;
    size_t bd = 3;
    for (size_t i = 0; keys[i]; i++) {
        size_t d = distance(key, keys[i]);
        if (d < bd) {
            bd = d;
            best = keys[i];
        }
    }
    if (best)
        fail(c, k, "unknown key '%s' %s (did you mean '%s'?)", key, where, best);
    else
        fail(c, k, "unknown key '%s' %s", key, where);
}

static bool key_in(const char *key, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++)
        if (strcmp(key, keys[i]) == 0) return true;
    return false;
}

/* A mapping's pairs with YAML merge keys applied ("<<: *base" or "<<: [*a, *b]", as in YAML 1.1):
 * the map's own keys win over merged ones, and an earlier merged map wins over a later one. A
 * key given twice in the map itself is an error. Returns the pairs (free them) and their count in
 * *n, or NULL with c->failed set. */
struct kv {
    yaml_node_t *k, *v;
};

static bool has_key(const struct kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(scalar(kv[i].k), key) == 0) return true;
    return false;
}

static int add_pairs(struct ctx *c, yaml_node_t *m, const char *where, struct kv **kv, size_t *n,
                     size_t *cap, bool merged, int depth)
{
    if (depth > 8) {
        fail(c, m, "merge keys ('<<') nested too deep %s", where);
        return -1;
    }
    yaml_node_t *merge = NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(c, p->key), *vn = node(c, p->value);
        const char *key = scalar(kn);
        if (!key) {
            fail(c, kn, "keys %s must be plain names", where);
            return -1;
        }
        if (strcmp(key, "<<") == 0 && kn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            if (merge) {
                fail(c, kn, "merge key '<<' given twice %s", where);
                return -1;
            }
            merge = vn;
            continue;
        }
        if (has_key(*kv, *n, key)) {
            if (merged) continue; /* overridden */
            fail(c, kn, "key '%s' given twice %s", key, where);
            return -1;
        }
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *kv = realloc(*kv, *cap * sizeof **kv);
            if (!*kv) abort();
        }
        (*kv)[(*n)++] = (struct kv){kn, vn};
    }
    if (!merge) return 0;
    if (merge->type == YAML_MAPPING_NODE)
        return add_pairs(c, merge, where, kv, n, cap, true, depth + 1);
    if (merge->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = merge->data.sequence.items.start;
             it < merge->data.sequence.items.top; it++) {
            yaml_node_t *e = node(c, *it);
            if (e->type != YAML_MAPPING_NODE) {
                fail(c, e, "'<<' %s must merge a map or a list of maps", where);
                return -1;
            }
            if (add_pairs(c, e, where, kv, n, cap, true, depth + 1) < 0) return -1;
        }
        return 0;
    }
    fail(c, merge, "'<<' %s must merge a map or a list of maps (such as <<: *base)", where);
    return -1;
}

static struct kv *pairs_of(struct ctx *c, yaml_node_t *m, const char *where, size_t *n)
{
    struct kv *kv = NULL;
    size_t cap = 0;
    *n = 0;
    if (add_pairs(c, m, where, &kv, n, &cap, false, 0) < 0) {
        free(kv);
        return NULL;
    }
    if (!kv) kv = malloc(sizeof *kv); /* an empty map: not an error */
    if (!kv) abort();
    return kv;
}

int run_parse_duration(const char *s, uint64_t *ns)
{
    if (!s || !*s) return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || v != v) return -EINVAL;
    double mult = 1e9;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1e9;
    else if (strcmp(end, "ms") == 0)
        mult = 1e6;
    else if (strcmp(end, "us") == 0)
        mult = 1e3;
    else if (strcmp(end, "ns") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60e9;
    else if (strcmp(end, "h") == 0)
        mult = 3600e9;
    else
        return -EINVAL;
    double r = v * mult;
    if (r > 1e18) return -EINVAL;
    *ns = (uint64_t)r;
    return 0;
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static const char *want_scalar(struct ctx *c, const yaml_node_t *v, const char *key,
                               const char *job)
{
    const char *s = scalar(v);
    if (!s) fail(c, v, "'%s' in %s must be a single value, not a list or map", key, job);
    return s;
}

static int retry_code(const char *s)
{
    static const struct {
        const char *name;
        int code;
    } m[] = {{"timeout", -ETIMEDOUT},    {"crash", WEFT_ECRASHED}, {"signal", WEFT_ESIGNAL},
             {"exit", WEFT_EEXIT},       {"http", WEFT_EHTTP},     {"io", -EIO},
             {"refused", -ECONNREFUSED}, {"reset", -ECONNRESET},   {"dns", WEFT_EDNS},
             {"slow", WEFT_ESLOW}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(s, m[i].name) == 0) return m[i].code;
    return 0;
}

/* Settings that `defaults` may give and jobs may override. */
struct common {
    bool has_type, has_prio, has_retries, has_retry_on, has_backoff, has_timeout;
    weft_sched_type_t type;
    int prio, retries;
    int retry_on[16];
    size_t n_retry_on;
    uint64_t backoff_ns, timeout_ns;
};

/* Parses one of the common keys; returns false if `key` is not one. */
static bool common_key(struct ctx *c, const char *key, yaml_node_t *v, const char *job,
                       struct common *o)
{
    long n;
    const char *s;
    if (strcmp(key, "type") == 0) {
        if (!(s = want_scalar(c, v, key, job))) return true;
        if (weft_sched_type_parse(s, &o->type) < 0)
            fail(c, v, "bad type '%s' in %s (expected cpu, io, mixed or auto)", s, job);
        o->has_type = true;
    } else if (strcmp(key, "priority") == 0) {
        if (!(s = want_scalar(c, v, key, job))) return true;
        if (!parse_int(s, -1000000, 1000000, &n))
            fail(c, v, "bad priority '%s' in %s (an integer, -1000000..1000000)", s, job);
        o->prio = (int)n;
        o->has_prio = true;
    } else if (strcmp(key, "retries") == 0) {
        if (!(s = want_scalar(c, v, key, job))) return true;
        if (!parse_int(s, 0, 20, &n))
            fail(c, v, "bad retries '%s' in %s (an integer, 0..20)", s, job);
        o->retries = (int)n;
        o->has_retries = true;
    } else if (strcmp(key, "retry-on") == 0) {
        o->has_retry_on = true;
        o->n_retry_on = 0;
        if (scalar(v)) {
            int code = retry_code(scalar(v));
            if (!code) fail(c, v, "bad retry-on '%s' in %s", scalar(v), job);
            o->retry_on[o->n_retry_on++] = code;
        } else if (v->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                yaml_node_t *e = node(c, *it);
                int code = scalar(e) ? retry_code(scalar(e)) : 0;
                if (!code) {
                    fail(c, e,
                         "bad retry-on entry in %s (expected timeout, crash, signal, exit, http, "
                         "io, refused, reset, dns or slow)",
                         job);
                    return true;
                }
                if (o->n_retry_on == 16) {
                    fail(c, e, "too many retry-on entries in %s (at most 16)", job);
                    return true;
                }
                o->retry_on[o->n_retry_on++] = code;
            }
        } else {
            fail(c, v, "'retry-on' in %s must be a name or a list of names", job);
        }
    } else if (strcmp(key, "backoff") == 0 || strcmp(key, "timeout") == 0) {
        if (!(s = want_scalar(c, v, key, job))) return true;
        uint64_t ns;
        if (run_parse_duration(s, &ns) < 0) {
            fail(c, v, "bad %s '%s' in %s (a duration such as 500ms, 2s or 1m)", key, s, job);
            return true;
        }
        if (key[0] == 'b') {
            o->backoff_ns = ns;
            o->has_backoff = true;
        } else {
            o->timeout_ns = ns;
            o->has_timeout = true;
        }
    } else {
        return false;
    }
    return true;
}

static bool good_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-') return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.') return false;
    return true;
}

static char *dup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) abort(); /* a job file is small; out of memory here is not worth a code path */
    return d;
}

static void parse_settings(struct ctx *c, struct job *j, yaml_node_t *k, const struct kv *kv,
                           size_t np, const struct common *defaults);

static void parse_job(struct ctx *c, struct job *j, yaml_node_t *k, yaml_node_t *v,
                      const struct common *defaults)
{
    j->name = dup(scalar(k));
    j->line = (int)k->start_mark.line + 1;
    if (v->type != YAML_MAPPING_NODE) {
        fail(c, v, "job '%s' must be a map of settings (run:, deps:, ...)", j->name);
        return;
    }
    char in[160];
    snprintf(in, sizeof in, "in job '%s'", j->name);
    size_t np;
    struct kv *kv = pairs_of(c, v, in, &np);
    if (!kv) return;
    parse_settings(c, j, k, kv, np, defaults);
    free(kv);
}

static void parse_settings(struct ctx *c, struct job *j, yaml_node_t *k, const struct kv *kv,
                           size_t np, const struct common *defaults)
{
    static const char *const keys[] = {"run",     "kind",     "type",    "deps",    "priority",
                                       "retries", "retry-on", "backoff", "timeout", "duration",
                                       "url",     "cwd",      "env",     "class",   NULL};
    char where[128];
    snprintf(where, sizeof where, "job '%s'", j->name);
    struct common o = *defaults;
    const char *kind = NULL;
    yaml_node_t *kind_node = NULL, *dur_node = NULL;
    for (size_t pi = 0; pi < np; pi++) {
        yaml_node_t *kn = kv[pi].k, *vn = kv[pi].v;
        const char *key = scalar(kn), *s;
        if (!key_in(key, keys)) {
            char in[160];
            snprintf(in, sizeof in, "in job '%s'", j->name);
            unknown_key(c, kn, in, keys);
            return;
        }
        if (common_key(c, key, vn, where, &o)) {
            if (c->failed) return;
            continue;
        }
        if (strcmp(key, "deps") == 0) {
            if (scalar(vn)) {
                j->deps = calloc(1, sizeof *j->deps);
                j->dep_lines = calloc(1, sizeof *j->dep_lines);
                if (!j->deps || !j->dep_lines) abort();
                j->deps[0] = dup(scalar(vn));
                j->dep_lines[0] = (int)vn->start_mark.line + 1;
                j->ndeps = 1;
            } else if (vn->type == YAML_SEQUENCE_NODE) {
                size_t n = (size_t)(vn->data.sequence.items.top - vn->data.sequence.items.start);
                j->deps = calloc(n + 1, sizeof *j->deps);
                j->dep_lines = calloc(n + 1, sizeof *j->dep_lines);
                if (!j->deps || !j->dep_lines) abort();
                for (yaml_node_item_t *it = vn->data.sequence.items.start;
                     it < vn->data.sequence.items.top; it++) {
                    yaml_node_t *e = node(c, *it);
                    if (!scalar(e)) {
                        fail(c, e, "deps of job '%s' must be job names", j->name);
                        return;
                    }
                    j->deps[j->ndeps] = dup(scalar(e));
                    j->dep_lines[j->ndeps++] = (int)e->start_mark.line + 1;
                }
            } else {
                fail(c, vn, "deps of job '%s' must be a job name or a list of names", j->name);
                return;
            }
            continue;
        }
        if (strcmp(key, "env") == 0) {
            if (vn->type != YAML_MAPPING_NODE) {
                fail(c, vn, "env of job '%s' must be a map of NAME: value", j->name);
                return;
            }
            char ein[160];
            snprintf(ein, sizeof ein, "in the env of job '%s'", j->name);
            size_t n;
            struct kv *e = pairs_of(c, vn, ein, &n);
            if (!e) return;
            j->env = calloc(n + 1, sizeof *j->env);
            if (!j->env) abort();
            for (size_t ei = 0; ei < n; ei++) {
                const char *name = scalar(e[ei].k), *val = scalar(e[ei].v);
                if (!name || !val || !*name || strchr(name, '=')) {
                    fail(c, e[ei].k, "bad env entry in job '%s' (NAME: value)", j->name);
                    free(e);
                    return;
                }
                size_t len = strlen(name) + strlen(val) + 2;
                j->env[j->nenv] = malloc(len);
                if (!j->env[j->nenv]) abort();
                snprintf(j->env[j->nenv++], len, "%s=%s", name, val);
            }
            free(e);
            continue;
        }
        if (!(s = want_scalar(c, vn, key, where))) return;
        if (strcmp(key, "run") == 0) {
            if (!*s) {
                fail(c, vn, "empty 'run' command in job '%s'", j->name);
                return;
            }
            j->run = dup(s);
        } else if (strcmp(key, "kind") == 0) {
            kind = s;
            kind_node = vn;
        } else if (strcmp(key, "duration") == 0) {
            dur_node = vn;
            if (run_parse_duration(s, &j->duration_ns) < 0) {
                fail(c, vn, "bad duration '%s' in job '%s' (such as 500ms, 2s or 1m)", s, j->name);
                return;
            }
        } else if (strcmp(key, "url") == 0) {
            j->url = dup(s);
        } else if (strcmp(key, "cwd") == 0) {
            /* Relative to the job file's directory, so that a job file works from anywhere. */
            const char *slash = strrchr(c->path, '/');
            if (s[0] == '/' || !slash || strcmp(c->path, "-") == 0) {
                j->cwd = dup(s);
            } else {
                size_t dl = (size_t)(slash - c->path) + 1, len = dl + strlen(s) + 1;
                j->cwd = malloc(len);
                if (!j->cwd) abort();
                memcpy(j->cwd, c->path, dl);
                memcpy(j->cwd + dl, s, len - dl);
            }
        } else if (strcmp(key, "class") == 0) {
            if (!*s || strlen(s) > 60) {
                fail(c, vn, "class of job '%s' must be 1..60 characters", j->name);
                return;
            }
            j->cls = dup(s);
        }
    }
    if (!kind || strcmp(kind, "shell") == 0) {
        j->kind = JOB_SHELL;
        if (!j->run) {
            fail(c, k, "job '%s' has no 'run' command (or a 'kind': sleep, cpu-burn, http-get)",
                 j->name);
            return;
        }
    } else if (strcmp(kind, "sleep") == 0 || strcmp(kind, "cpu-burn") == 0) {
        j->kind = kind[0] == 's' ? JOB_SLEEP : JOB_CPU_BURN;
        if (!dur_node) {
            fail(c, k, "job '%s' (kind %s) needs a 'duration'", j->name, kind);
            return;
        }
    } else if (strcmp(kind, "http-get") == 0) {
        j->kind = JOB_HTTP_GET;
        if (!j->url ||
            (strncmp(j->url, "http://", 7) != 0 && strncmp(j->url, "https://", 8) != 0)) {
            fail(c, k, "job '%s' (kind http-get) needs a 'url' starting with http:// or https://",
                 j->name);
            return;
        }
    } else {
        fail(c, kind_node,
             "unknown kind '%s' in job '%s' (expected shell, sleep, cpu-burn, http-get)", kind,
             j->name);
        return;
    }
    if (j->run && j->kind != JOB_SHELL) {
        fail(c, k, "job '%s' has both 'run' and kind '%s'", j->name, kind);
        return;
    }
    if (!o.has_type)
        o.type = j->kind == JOB_CPU_BURN ? WEFT_SCHED_CPU
                 : j->kind == JOB_SHELL  ? WEFT_SCHED_AUTO
                                         : WEFT_SCHED_IO;
    j->type = o.type;
    j->priority = o.prio;
    j->retries = o.retries;
    memcpy(j->retry_on, o.retry_on, sizeof j->retry_on);
    j->n_retry_on = o.n_retry_on;
    j->backoff_ns = o.has_backoff ? o.backoff_ns : 200000000u;
    j->timeout_ns = o.timeout_ns;
}

static void job_free(struct job *j)
{
    free(j->name);
    free(j->run);
    free(j->url);
    free(j->cwd);
    free(j->cls);
    for (size_t i = 0; i < j->nenv; i++) free(j->env[i]);
    free(j->env);
    for (size_t i = 0; i < j->ndeps; i++) free(j->deps[i]);
    free(j->deps);
    free(j->dep_lines);
}

static bool name_eq(uint64_t val, const void *key, const void *ctx)
{
    const struct job *jobs = ctx;
    return strcmp(jobs[val].name, key) == 0;
}

int jobfile_find(const struct jobfile *jf, const char *name)
{
    const uint64_t *v = weft_htab_find(&jf->names, weft_hash_str(name), name_eq, name, jf->jobs);
    return v ? (int)*v : -1;
}

void jobfile_free(struct jobfile *jf)
{
    weft_htab_free(&jf->names);
    free(jf->order);
    for (size_t i = 0; i < jf->n; i++) job_free(&jf->jobs[i]);
    free(jf->jobs);
    free(jf->path);
    memset(jf, 0, sizeof *jf);
}

/* Dependencies: known, not the job itself, no cycle (named, via the scheduler's graph check). */
static void check_deps(struct ctx *c, struct jobfile *jf)
{
    weft_sched_graph_t *g;
    if (weft_sched_graph_create(&g) < 0) abort();
    weft_sched_task_t t = {.fn = (weft_task_fn)(uintptr_t)1}; /* never run: order only */
    for (size_t i = 0; i < jf->n; i++) weft_sched_graph_add(g, jf->jobs[i].name, &t);
    for (size_t i = 0; i < jf->n && !c->failed; i++) {
        struct job *j = &jf->jobs[i];
        for (size_t k = 0; k < j->ndeps; k++) {
            int d = jobfile_find(jf, j->deps[k]);
            if (d < 0) {
                c->failed = true;
                weft_buf_printf(c->err, "%s:%d: job '%s' depends on unknown job '%s'", c->path,
                                j->dep_lines[k], j->name, j->deps[k]);
                break;
            }
            if ((size_t)d == i) {
                c->failed = true;
                weft_buf_printf(c->err, "%s:%d: job '%s' depends on itself", c->path,
                                j->dep_lines[k], j->name);
                break;
            }
            weft_sched_graph_depend(g, (int)i, d);
        }
    }
    if (!c->failed) {
        int *order = malloc((jf->n + 1) * sizeof *order);
        int *cycle = malloc((jf->n + 1) * sizeof *cycle);
        size_t nc = 0;
        weft_buf_t why;
        weft_buf_init(&why, 0);
        if (!order || !cycle) abort();
        if (weft_sched_graph_order(g, order, &why, cycle, &nc) == WEFT_ECYCLE) {
            c->failed = true;
            weft_buf_printf(c->err, "%s:%d: %s", c->path, jf->jobs[cycle[0]].line, why.data);
        }
        weft_buf_free(&why);
        if (c->failed)
            free(order);
        else
            jf->order = order;
        free(cycle);
    }
    weft_sched_graph_destroy(g);
}

/* Error messages quote the file's values: keep them one printable line of sane length. */
static void sanitize(weft_buf_t *err, size_t from)
{
    if (!err->data) return;
    for (size_t i = from; i < err->len; i++)
        if ((unsigned char)err->data[i] < 0x20 || err->data[i] == 0x7f) err->data[i] = '?';
    if (err->len - from > 400) {
        memcpy(err->data + from + 396, "...", 4);
        err->len = from + 399;
    }
}

int jobfile_parse(const char *path, const char *text, size_t len, struct jobfile *out,
                  weft_buf_t *err)
{
    memset(out, 0, sizeof *out);
    struct ctx c = {.path = path, .err = err};
    size_t err_start = err->len;
    if (len > MAX_TEXT) {
        weft_buf_printf(err, "%s: larger than %u MiB", path, MAX_TEXT >> 20);
        return WEFT_EPARSE;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        weft_buf_printf(err, "%s:%zu: YAML error: %s%s%s", path, parser.problem_mark.line + 1,
                        parser.problem ? parser.problem : "malformed", parser.context ? " " : "",
                        parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        sanitize(err, err_start);
        return WEFT_EPARSE;
    }
    c.doc = &doc;
    out->path = dup(path);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    static const char *const top[] = {"jobs", "defaults", "pools", NULL};
    static const char *const dkeys[] = {"type",    "priority", "retries", "retry-on",
                                        "backoff", "timeout",  NULL};
    static const char *const pkeys[] = {"processes", "threads", NULL};
    struct common defaults = {0};
    yaml_node_t *jobs = NULL;
    if (!root || root->type != YAML_MAPPING_NODE) {
        fail(&c, root, "expected a map with a 'jobs' key at the top");
        goto out;
    }
    /* A second YAML document would be silently ignored by a reader of the first: refuse it. */
    yaml_document_t next;
    if (!yaml_parser_load(&parser, &next)) {
        c.failed = true;
        weft_buf_printf(err, "%s:%zu: YAML error: %s", path, parser.problem_mark.line + 1,
                        parser.problem ? parser.problem : "malformed");
        goto out;
    }
    yaml_node_t *next_root = yaml_document_get_root_node(&next);
    if (next_root) {
        fail(&c, next_root,
             "a second YAML document (after '---'): a job file holds one; put every job under "
             "the one 'jobs' key");
        yaml_document_delete(&next);
        goto out;
    }
    yaml_document_delete(&next);
    /* defaults and pools first: jobs use them whatever the order in the file */
    yaml_node_t *seen[3] = {NULL, NULL, NULL}; /* the key nodes of jobs, defaults, pools */
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = node(&c, p->key), *vn = node(&c, p->value);
        const char *key = scalar(kn);
        if (key && strncmp(key, "x-", 2) == 0) continue; /* free for anchors (&base) and notes */
        if (key && key_in(key, top)) {
            size_t w = key[0] == 'j' ? 0 : key[0] == 'd' ? 1 : 2;
            if (seen[w]) {
                fail(&c, kn, "'%s' given twice at the top level (first at line %zu)", key,
                     seen[w]->start_mark.line + 1);
                goto out;
            }
            seen[w] = kn;
        }
        if (!key || !key_in(key, top)) {
            if (key)
                unknown_key(&c, kn, "at the top level", top);
            else
                fail(&c, kn, "top-level keys must be plain names");
            goto out;
        }
        if (strcmp(key, "jobs") == 0) {
            jobs = vn;
        } else if (strcmp(key, "defaults") == 0) {
            if (vn->type != YAML_MAPPING_NODE) {
                fail(&c, vn, "'defaults' must be a map");
                goto out;
            }
            size_t nd;
            struct kv *kv = pairs_of(&c, vn, "in defaults", &nd);
            for (size_t q = 0; kv && q < nd && !c.failed; q++) {
                if (!key_in(scalar(kv[q].k), dkeys))
                    unknown_key(&c, kv[q].k, "in defaults", dkeys);
                else
                    common_key(&c, scalar(kv[q].k), kv[q].v, "defaults", &defaults);
            }
            free(kv);
            if (c.failed) goto out;
        } else {
            if (vn->type != YAML_MAPPING_NODE) {
                fail(&c, vn, "'pools' must be a map (processes:, threads:)");
                goto out;
            }
            for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top;
                 q++) {
                yaml_node_t *pk = node(&c, q->key), *pv = node(&c, q->value);
                long n;
                if (!scalar(pk) || !key_in(scalar(pk), pkeys)) {
                    if (scalar(pk))
                        unknown_key(&c, pk, "in pools", pkeys);
                    else
                        fail(&c, pk, "keys in pools must be plain names");
                    goto out;
                }
                bool procs = strcmp(scalar(pk), "processes") == 0;
                if (!parse_int(scalar(pv), 1, procs ? 256 : 1024, &n)) {
                    fail(&c, pv, "bad %s count in pools (1..%d)", scalar(pk), procs ? 256 : 1024);
                    goto out;
                }
                if (procs)
                    out->procs = (int)n;
                else
                    out->threads = (int)n;
            }
        }
    }
    if (!jobs) {
        fail(&c, root, "no 'jobs' key: nothing to run");
        goto out;
    }
    if (jobs->type != YAML_MAPPING_NODE) {
        fail(&c, jobs, "'jobs' must be a map of job names to their settings");
        goto out;
    }
    size_t n = (size_t)(jobs->data.mapping.pairs.top - jobs->data.mapping.pairs.start);
    if (n == 0) {
        fail(&c, jobs, "'jobs' is empty: nothing to run");
        goto out;
    }
    if (n > MAX_JOBS) {
        fail(&c, jobs, "too many jobs (at most %d)", MAX_JOBS);
        goto out;
    }
    out->jobs = calloc(n, sizeof *out->jobs);
    if (!out->jobs) abort();
    for (yaml_node_pair_t *p = jobs->data.mapping.pairs.start; p < jobs->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = node(&c, p->key), *vn = node(&c, p->value);
        const char *name = scalar(kn);
        if (!name || !good_name(name)) {
            fail(&c, kn,
                 "bad job name%s%s%s: 1..64 letters, digits, '_', '-' or '.', not starting with "
                 "'.' or '-'",
                 name ? " '" : "", name ? name : "", name ? "'" : "");
            goto out;
        }
        bool added;
        uint64_t *slot =
            weft_htab_put(&out->names, weft_hash_str(name), name_eq, name, out->jobs, &added);
        if (!slot) abort();
        if (!added) {
            fail(&c, kn, "duplicate job '%s' (first at line %d)", name, out->jobs[*slot].line);
            goto out;
        }
        *slot = out->n;
        parse_job(&c, &out->jobs[out->n++], kn, vn, &defaults);
        if (c.failed) goto out;
    }
    check_deps(&c, out);
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (c.failed) {
        jobfile_free(out);
        sanitize(err, err_start);
        return WEFT_EPARSE;
    }
    return 0;
}
