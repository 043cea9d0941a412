/* robots.txt parsing and matching (robots.h). */
#include "crawl/robots.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct rule {
    bool allow;
    char *pattern;
    size_t len;
} rule_t;

struct crawl_robots {
    rule_t *rules;
    size_t n, cap;
    bool any_disallow;
};

void crawl_robots_free(crawl_robots_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) free(r->rules[i].pattern);
    free(r->rules);
    free(r);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* One "key: value" line, comments and blanks stripped. Returns false if it is not one. */
static bool split_line(const char *s, size_t n, const char **key, size_t *klen, const char **val,
                       size_t *vlen)
{
    const char *hash = memchr(s, '#', n);
    if (hash) n = (size_t)(hash - s);
    const char *colon = memchr(s, ':', n);
    if (!colon) return false;
    const char *k = s, *ke = colon, *v = colon + 1, *ve = s + n;
    while (k < ke && is_blank(*k)) k++;
    while (ke > k && is_blank(ke[-1])) ke--;
    while (v < ve && is_blank(*v)) v++;
    while (ve > v && is_blank(ve[-1])) ve--;
    *key = k;
    *klen = (size_t)(ke - k);
    *val = v;
    *vlen = (size_t)(ve - v);
    return *klen > 0;
}

static bool key_is(const char *k, size_t kl, const char *name)
{
    return strlen(name) == kl && strncasecmp(k, name, kl) == 0;
}

/* Does a user-agent line's value name `agent`? */
static bool names(const char *v, size_t vl, const char *agent)
{
    size_t al = strlen(agent);
    return vl == al && strncasecmp(v, agent, al) == 0;
}

/* The groups to use: pass 0 looks for a group naming `agent`; if there is none, pass 1 uses the
 * "*" groups. `want_star` selects which. */
static void scan(const char *txt, size_t n, const char *agent, bool want_star, crawl_robots_t *r,
                 uint64_t *delay_ms, bool *found, bool collect)
{
    bool in_group = false, group_applies = false, last_was_agent = false;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(txt + i, '\n', n - i);
        size_t len = nl ? (size_t)(nl - (txt + i)) : n - i;
        const char *k, *v;
        size_t kl, vl;
        if (split_line(txt + i, len, &k, &kl, &v, &vl)) {
            if (key_is(k, kl, "user-agent")) {
                if (!last_was_agent) group_applies = false; /* a new group starts */
                in_group = true;
                bool hit = want_star ? (vl == 1 && v[0] == '*') : names(v, vl, agent);
                if (hit) {
                    group_applies = true;
                    *found = true;
                }
                last_was_agent = true;
            } else {
                last_was_agent = false;
                if (in_group && group_applies && collect) {
                    bool allow = key_is(k, kl, "allow"), dis = key_is(k, kl, "disallow");
                    if ((allow || dis) && vl > 0 && r) {
                        if (r->n == r->cap) {
                            size_t cap = r->cap ? 2 * r->cap : 8;
                            rule_t *nr = realloc(r->rules, cap * sizeof *nr);
                            if (!nr) return;
                            r->rules = nr;
                            r->cap = cap;
                        }
                        char *p = malloc(vl + 1);
                        if (!p) return;
                        memcpy(p, v, vl);
                        p[vl] = '\0';
                        r->rules[r->n++] = (rule_t){allow, p, vl};
                        if (dis) r->any_disallow = true;
                    } else if (key_is(k, kl, "crawl-delay") && vl > 0 && vl < 16) {
                        char num[16];
                        memcpy(num, v, vl);
                        num[vl] = '\0';
                        char *end;
                        double s = strtod(num, &end);
                        if (end != num && s > 0 && s <= 86400) *delay_ms = (uint64_t)(s * 1000);
                    }
                }
            }
        }
        i += len + 1;
    }
}

crawl_robots_t *crawl_robots_parse(const char *txt, size_t n, const char *agent, uint64_t *delay_ms)
{
    *delay_ms = 0;
    bool specific = false, star = false;
    scan(txt, n, agent, false, NULL, delay_ms, &specific, false);
    crawl_robots_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    scan(txt, n, agent, !specific, r, delay_ms, &star, true);
    if (!r->any_disallow) {
        crawl_robots_free(r);
        return NULL;
    }
    return r;
}

/* Does pattern p[0..pl) match the start of s ("*" any run, a final "$" the end)?
 * Greedy with one backtrack point, the last "*": a later "*" can absorb whatever an earlier one
 * would have, so O(pl * strlen(s)) at worst. (Recursing at every "*" was exponential: a rule
 * "*a*a*a...b" from an untrusted robots.txt hung the crawler; found by fuzz-robots.) */
static bool match(const char *p, size_t pl, const char *s)
{
    bool anchored = pl && p[pl - 1] == '$';
    if (anchored) pl--;
    size_t sl = strlen(s), pi = 0, si = 0, star = SIZE_MAX, mark = 0;
    for (;;) {
        if (pi < pl && p[pi] == '*') {
            star = ++pi;
            mark = si;
            continue;
        }
        if (pi == pl) {
            if (!anchored || si == sl) return true;
        } else if (si < sl && p[pi] == s[si]) { /* a NUL in the rule never matches the path's end */
            pi++, si++;
            continue;
        }
        if (star == SIZE_MAX || mark >= sl) return false;
        pi = star;
        si = ++mark;
    }
}

bool crawl_robots_allowed(const crawl_robots_t *r, const char *path)
{
    if (!r) return true;
    size_t best = 0;
    bool allowed = true, any = false;
    for (size_t i = 0; i < r->n; i++) {
        const rule_t *u = &r->rules[i];
        if (!match(u->pattern, u->len, path)) continue;
        if (!any || u->len > best || (u->len == best && u->allow)) {
            best = u->len;
            allowed = u->allow;
            any = true;
        }
    }
    return allowed;
}
