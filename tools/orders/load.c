/* `weft orders load`: an open-loop load generator for the order engine (issue 10).
 *
 * DESIGN
 * One weft_loop (caller-driven, on the main thread) runs everything: a 1 ms timer starts the
 * requests that are due, and libcurl's multi interface (weft_http_start) carries them.
 * Open loop: request i of a step is scheduled at step_start + i / rate whatever the responses
 * take, and its latency is measured from that scheduled instant, not from when it was actually
 * sent, so a stalled server or a late loop shows up as latency (no coordinated omission; the
 * wrk2 / k6 constant-arrival-rate way). A start that finds every connection busy is not queued:
 * it is counted as dropped (k6's dropped_iterations), so offered and achieved rates stay honest.
 * A request that is not acknowledged (transport error, 409, 5xx, 503) is retried after a
 * full-jitter backoff with the SAME Idempotency-Key and body, as a real client would, until
 * --retry-for has passed since its scheduled start; its latency then spans every attempt.
 * Latencies go into one weft_hist per step, merged exactly into the total (never averaged
 * percentiles). Completion latency comes from the engine's own timestamps: a sample of the
 * acknowledged ids is read back with GET /orders/{id} after the run (completed_ms - created_ms),
 * so polling does not perturb the load being measured.
 * Threads: one (the loop thread); no locks.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/hist.h>
#include <weft/http.h>
#include <weft/loop.h>
#include <weft/sys.h>
#include <weft/utf8.h>

#include "common/html-int.h"
#include "orders/orders.h"

#define MAX_STEPS 256
#define NQ 10
static const double quantiles[NQ] = {0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 0.99999, 1};

typedef struct opts {
    const char *url;
    double rates[MAX_STEPS];
    int nsteps;
    double duration_s; /* per step */
    int connections, users, skus, max_items;
    double hot, bad, dup, sample;
    double retry_for_s, timeout_s, drain_s, slo_ms;
    const char *json, *html, *acked;
    const char *sku_prefix;
    long stock; /* --stock: units PUT on each SKU before the run; -1: leave the stock alone */
    bool quiet;
} opts_t;

typedef struct step {
    double rate;
    uint64_t t0, dur;   /* ns */
    uint64_t scheduled; /* starts due (dropped included) */
    uint64_t dropped;   /* no free connection at the scheduled instant */
    uint64_t acked;     /* 200/201 (for good requests) */
    uint64_t refused;   /* 400/413 for deliberately bad requests (answered as expected) */
    uint64_t failed;    /* given up (retry budget spent) or a 4xx for a good request */
    weft_hist_t lat;    /* microseconds from the scheduled start to the acknowledgement */
} step_t;

typedef struct sec {
    uint64_t acked, errors, dropped;
    uint64_t p50, p99, max; /* us */
} sec_t;

enum kind { K_ORDER, K_BAD, K_DUP, K_POLL };

typedef struct ld ld_t;
typedef struct req {
    ld_t *ld;
    int kind, step, attempts;
    uint64_t sched; /* ns: scheduled start of the first attempt */
    char key[64];
    char id[64]; /* K_DUP: the id of the first answer; K_POLL: the id to read */
    char *body;
    size_t len;
    weft_loop_timer_t *timer;
} req_t;

struct ld {
    opts_t o;
    weft_loop_t *loop;
    weft_loop_timer_t *tick;
    uint64_t rng, run_id, t0, seq, active, pending;
    int cur;
    uint64_t n_in_step;
    bool scheduling, polling;
    step_t steps[MAX_STEPS];
    uint64_t status[600], transport[8]; /* every attempt's outcome */
    uint64_t retries, bad_sent, bad_ok, bad_unexpected, dup_sent, dup_same, dup_mismatch, gave_up;
    /* per second since t0 */
    sec_t *secs;
    size_t nsecs, cap_secs, cur_sec;
    weft_hist_t sec_hist;
    /* completion */
    char (*ids)[32];
    size_t nids, cap_ids, poll_next;
    uint64_t poll_deadline;
    weft_hist_t comp; /* ms */
    uint64_t comp_status[8], not_terminal, poll_errors;
    FILE *acked;
    uint64_t acked_total;
};

static const char *const transport_names[8] = {"timeout",   "refused", "reset", "other",
                                               "cancelled", "",        "",      ""};

static uint64_t rnd(ld_t *l)
{
    return weft_rand(&l->rng);
}
static double unif(ld_t *l)
{
    return (double)(rnd(l) >> 11) / 9007199254740992.0;
}

/* ---- the request body ---- */

static int make_body(ld_t *l, req_t *r)
{
    char buf[4096];
    size_t n = 0;
    uint64_t user = rnd(l) % (uint64_t)l->o.users;
    int nitems = 1 + (int)(rnd(l) % (uint64_t)l->o.max_items);
    if (r->kind == K_BAD) {
        static const char *const bad[] = {
            ("{\"user\":\"u1\",\"items\":[{\"sku\":\"sku-0\",\"qty\":0}],\"amount_cents\":100,"
             "\"payment_token\":\"t\"}"),
            "{\"user\":\"u1\",\"items\":[],\"amount_cents\":100,\"payment_token\":\"t\"}",
            "{\"user\":\"u1\",\"items\":[{\"sku\":\"sku-0\",\"qty\":1}],\"amount_cents\":\"x\"}",
            "{\"user\":", "[1,2,3]"};
        const char *b = bad[rnd(l) % (sizeof bad / sizeof bad[0])];
        n = strlen(b);
        memcpy(buf, b, n);
    } else {
        n = (size_t)snprintf(buf, sizeof buf, "{\"user\":\"u%" PRIu64 "\",\"items\":[", user);
        if (nitems > l->o.skus) nitems = l->o.skus;
        uint64_t chosen[100]; /* --items is at most 100 */
        for (int i = 0; i < nitems; i++) {
            uint64_t sku =
                l->o.skus <= 1 || unif(l) < l->o.hot ? 0 : 1 + rnd(l) % (uint64_t)(l->o.skus - 1);
            /* Distinct SKUs within an order (the engine refuses one twice): the next free one. */
            for (int j = 0; j < i; j++)
                if (chosen[j] == sku) {
                    sku = (sku + 1) % (uint64_t)l->o.skus;
                    j = -1;
                }
            chosen[i] = sku;
            n +=
                (size_t)snprintf(buf + n, sizeof buf - n, "%s{\"sku\":\"%s%" PRIu64 "\",\"qty\":1}",
                                 i ? "," : "", l->o.sku_prefix, sku);
        }
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "],\"amount_cents\":%" PRIu64 ",\"payment_token\":\"tok_%" PRIu64
                              "\"}",
                              100 + rnd(l) % 9900, r->ld->seq);
    }
    r->body = malloc(n + 1);
    if (!r->body) return -ENOMEM;
    memcpy(r->body, buf, n);
    r->body[n] = 0;
    r->len = n;
    return 0;
}

static void req_free(req_t *r)
{
    r->ld->pending--;
    free(r->body);
    free(r);
}

/* ---- per second ---- */

static void sec_close(ld_t *l)
{
    sec_t *s = &l->secs[l->cur_sec];
    s->p50 = weft_hist_quantile(&l->sec_hist, 0.5);
    s->p99 = weft_hist_quantile(&l->sec_hist, 0.99);
    s->max = l->sec_hist.count ? l->sec_hist.max : 0;
    weft_hist_init(&l->sec_hist);
}

/* The record of the second `now` falls in (since t0), closing the seconds before it. */
static sec_t *sec_at(ld_t *l, uint64_t now)
{
    size_t idx = now > l->t0 ? (size_t)((now - l->t0) / 1000000000u) : 0;
    if (idx >= l->cap_secs) {
        size_t nc = idx + 64 > 2 * l->cap_secs ? idx + 64 : 2 * l->cap_secs;
        sec_t *n = realloc(l->secs, nc * sizeof *n);
        if (!n) return NULL;
        memset(n + l->cap_secs, 0, (nc - l->cap_secs) * sizeof *n);
        l->secs = n;
        l->cap_secs = nc;
    }
    while (l->cur_sec < idx) {
        sec_close(l);
        l->cur_sec++;
    }
    if (idx + 1 > l->nsecs) l->nsecs = idx + 1;
    return &l->secs[idx];
}

/* ---- requests ---- */

static void start(req_t *r);

static void retry_fire(weft_loop_timer_t *t, void *arg)
{
    req_t *r = arg;
    weft_loop_timer_destroy(t);
    r->timer = NULL;
    if (r->ld->active >= (uint64_t)r->ld->o.connections) { /* wait for a free connection */
        if (weft_loop_timer_create(r->ld->loop, retry_fire, r, &r->timer) == 0) {
            weft_loop_timer_start(r->timer, 1, 0);
            return;
        }
    }
    start(r);
}

/* Schedules another attempt of r with the same key and body; false when the budget is spent. */
static bool retry(req_t *r, uint64_t now)
{
    ld_t *l = r->ld;
    if (r->kind == K_POLL || now - r->sched > (uint64_t)(l->o.retry_for_s * 1e9)) return false;
    uint64_t ms = 1 + weft_backoff(20, 1000, r->attempts, &l->rng);
    if (weft_loop_timer_create(l->loop, retry_fire, r, &r->timer) < 0) return false;
    weft_loop_timer_start(r->timer, ms, 0);
    l->retries++;
    return true;
}

static bool json_id(const weft_buf_t *b, char *id, size_t idsz)
{
    json_t *j = b->len ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(j, "id"));
    bool ok = s && strlen(s) < idsz;
    if (ok) strcpy(id, s);
    json_decref(j);
    return ok;
}

static void keep_id(ld_t *l, const char *id)
{
    if (l->acked) fprintf(l->acked, "%s\n", id);
    l->acked_total++;
    if (l->o.sample <= 0 || unif(l) >= l->o.sample || strlen(id) >= 32) return;
    if (l->nids == l->cap_ids) {
        if (l->cap_ids >= 200000) return;
        size_t nc = l->cap_ids ? 2 * l->cap_ids : 1024;
        char(*n)[32] = realloc(l->ids, nc * sizeof *n);
        if (!n) return;
        l->ids = n;
        l->cap_ids = nc;
    }
    strcpy(l->ids[l->nids++], id);
}

static void poll_more(ld_t *l);

static void on_poll(req_t *r, weft_http_resp_t *resp, uint64_t now)
{
    ld_t *l = r->ld;
    json_t *j = resp->error == 0 && resp->status == 200
                    ? json_loadb(resp->body.data, resp->body.len, 0, NULL)
                    : NULL;
    const char *st = json_string_value(json_object_get(j, "status"));
    static const char *const terminal[] = {"shipped", "rejected", "payment_failed"};
    int t = -1;
    for (int i = 0; st && i < 3; i++)
        if (strcmp(st, terminal[i]) == 0) t = i;
    if (t >= 0) {
        json_int_t c = json_integer_value(json_object_get(j, "created_ms"));
        json_int_t d = json_integer_value(json_object_get(j, "completed_ms"));
        l->comp_status[t]++;
        if (d >= c && c > 0) weft_hist_record(&l->comp, (uint64_t)(d - c));
    } else if (now < l->poll_deadline) {
        json_decref(j);
        if (weft_loop_timer_create(l->loop, retry_fire, r, &r->timer) == 0) {
            weft_loop_timer_start(r->timer, 200, 0);
            return;
        }
    } else if (!j) {
        l->poll_errors++;
    } else {
        l->not_terminal++;
    }
    json_decref(j);
    req_free(r);
    poll_more(l);
}

static void on_resp(weft_http_t *h, weft_http_resp_t *resp, void *arg)
{
    (void)h;
    req_t *r = arg;
    ld_t *l = r->ld;
    uint64_t now = weft_now_ns();
    l->active--;
    if (resp->error == -ECANCELED) { /* the loop is being destroyed: no new work */
        l->transport[4]++;
        if (r->kind == K_ORDER) l->gave_up++;
        req_free(r);
        return;
    }
    if (r->kind == K_POLL) {
        on_poll(r, resp, now);
        return;
    }
    long st = resp->error ? 0 : resp->status;
    if (resp->error) {
        int e = resp->error == -ETIMEDOUT      ? 0
                : resp->error == -ECONNREFUSED ? 1
                : resp->error == -ECONNRESET   ? 2
                : resp->error == -ECANCELED    ? 4
                                               : 3;
        l->transport[e]++;
    } else if (st >= 0 && st < 600) {
        l->status[st]++;
    }
    sec_t *s = sec_at(l, now);
    step_t *sp = &l->steps[r->step];
    bool retryable = st == 0 || st == 409 || st >= 500;
    if (retryable) {
        if (s) s->errors++;
        if (retry(r, now)) return;
        l->gave_up++;
        sp->failed++;
        req_free(r);
        return;
    }
    if (r->kind == K_BAD) {
        if (st == 400 || st == 413) {
            l->bad_ok++;
            l->steps[r->step].refused++;
        } else
            l->bad_unexpected++;
        req_free(r);
        return;
    }
    char id[64];
    if (r->kind == K_DUP) {
        if ((st == 200 || st == 201) && json_id(&resp->body, id, sizeof id) &&
            strcmp(id, r->id) == 0)
            l->dup_same++;
        else
            l->dup_mismatch++;
        req_free(r);
        return;
    }
    if (st != 200 && st != 201) {
        if (s) s->errors++;
        sp->failed++;
        req_free(r);
        return;
    }
    uint64_t us = (now - r->sched) / 1000;
    weft_hist_record(&sp->lat, us);
    weft_hist_record(&l->sec_hist, us);
    if (s) s->acked++;
    sp->acked++;
    if (json_id(&resp->body, id, sizeof id)) {
        keep_id(l, id);
        if (l->o.dup > 0 && unif(l) < l->o.dup) { /* the client lost the ack: send it again */
            r->kind = K_DUP;
            r->attempts = 0;
            strcpy(r->id, id);
            l->dup_sent++;
            if (l->active < (uint64_t)l->o.connections) {
                start(r);
                return;
            }
            l->dup_sent--;
        }
    }
    req_free(r);
}

static void start(req_t *r)
{
    ld_t *l = r->ld;
    char url[512], hkey[96];
    const char *hdrs[3] = {"Content-Type: application/json", hkey, NULL};
    weft_http_opts_t ho = {.url = url,
                           .keep_body = true,
                           .max_body = 64 << 10,
                           .timeout_ms = (long)(l->o.timeout_s * 1000),
                           .connect_timeout_ms = 2000,
                           .max_redirects = -1};
    if (r->kind == K_POLL) {
        snprintf(url, sizeof url, "%s/orders/%s", l->o.url, r->id);
    } else {
        snprintf(url, sizeof url, "%s/orders", l->o.url);
        ho.post_body = r->body;
        ho.post_len = r->len;
        ho.headers = hdrs;
        if (r->kind == K_BAD && r->key[0] == 0) hdrs[1] = NULL; /* missing key: also a 400 */
        snprintf(hkey, sizeof hkey, "Idempotency-Key: %s", r->key);
    }
    r->attempts++;
    if (weft_http_start(l->loop, &ho, on_resp, r, NULL) < 0) {
        l->transport[3]++;
        if (r->kind != K_POLL && retry(r, weft_now_ns())) return;
        if (r->kind == K_ORDER) l->gave_up++;
        req_free(r);
        return;
    }
    l->active++;
}

static req_t *req_new(ld_t *l, int kind)
{
    req_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->ld = l;
    r->kind = kind;
    l->pending++;
    return r;
}

/* Starts the requests due by now. */
static void tick(weft_loop_timer_t *t, void *arg)
{
    (void)t;
    ld_t *l = arg;
    uint64_t now = weft_now_ns();
    while (l->scheduling) {
        step_t *sp = &l->steps[l->cur];
        uint64_t at = sp->t0 + (uint64_t)((double)l->n_in_step * 1e9 / sp->rate);
        if (at > now) break;
        if (at >= sp->t0 + sp->dur) {
            if (++l->cur == l->o.nsteps) l->scheduling = false;
            l->n_in_step = 0;
            continue;
        }
        l->n_in_step++;
        sp->scheduled++;
        if (l->active >= (uint64_t)l->o.connections) {
            sp->dropped++;
            sec_t *s = sec_at(l, at);
            if (s) s->dropped++;
            continue;
        }
        bool bad = l->o.bad > 0 && unif(l) < l->o.bad;
        req_t *r = req_new(l, bad ? K_BAD : K_ORDER);
        if (!r) continue;
        r->step = l->cur;
        r->sched = at;
        l->seq++;
        if (!bad || rnd(l) % 4)
            snprintf(r->key, sizeof r->key, "ld-%012" PRIx64 "-%" PRIu64, l->run_id, l->seq);
        if (bad) l->bad_sent++;
        if (make_body(l, r) < 0) {
            req_free(r);
            continue;
        }
        start(r);
    }
    if (!l->scheduling && l->pending == 0) {
        if (l->polling) return;
        weft_loop_timer_stop(l->tick);
        l->polling = true;
        l->poll_deadline = weft_now_ns() + (uint64_t)(l->o.drain_s * 1e9);
        poll_more(l);
    } else if (!l->scheduling &&
               now > l->steps[l->o.nsteps - 1].t0 + l->steps[l->o.nsteps - 1].dur +
                         (uint64_t)((l->o.retry_for_s + l->o.timeout_s + 5) * 1e9)) {
        weft_loop_stop(l->loop); /* something never answered: do not hang */
    }
}

/* Reads back the sampled ids, a few at a time; stops the loop after the last. */
static void poll_more(ld_t *l)
{
    int lim = l->o.connections < 32 ? l->o.connections : 32;
    while (l->poll_next < l->nids && l->active < (uint64_t)lim) {
        req_t *r = req_new(l, K_POLL);
        if (!r) break;
        strcpy(r->id, l->ids[l->poll_next++]);
        start(r);
    }
    if (l->pending == 0) weft_loop_stop(l->loop);
}

/* ---- report ---- */

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void spectrum(const weft_hist_t *h, double *out)
{
    for (int i = 0; i < NQ; i++)
        out[i] = quantiles[i] >= 1 ? (h->count ? (double)h->max : 0)
                                   : (double)weft_hist_quantile(h, quantiles[i]);
}

/* The knee: the first step that did not hold its rate (achieved < 98 % of offered, or p99 over
 * --slo-ms). Returns its index, or -1 when every step held. */
static int knee(const ld_t *l)
{
    for (int i = 0; i < l->o.nsteps; i++) {
        const step_t *s = &l->steps[i];
        double d = (double)s->dur / 1e9, off = (double)s->scheduled / d,
               ach = (double)(s->acked + s->refused) / d;
        if (ach < 0.98 * off || ms(weft_hist_quantile(&s->lat, 0.99)) > l->o.slo_ms) return i;
    }
    return -1;
}

static void print_table(const ld_t *l, const weft_hist_t *all, FILE *f)
{
    fprintf(f, "weft orders load: %s, %d connections, open loop (latency from scheduled start)\n",
            l->o.url, l->o.connections);
    fprintf(f, "%-6s %10s %10s %8s %8s %8s %8s %8s %8s %9s\n", "step", "offered/s", "achieved/s",
            "dropped", "failed", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms");
    int kn = l->o.nsteps > 1 ? knee(l) : -2;
    for (int i = 0; i < l->o.nsteps; i++) {
        const step_t *s = &l->steps[i];
        double d = (double)s->dur / 1e9;
        fprintf(f, "%-6d %10.0f %10.0f %8" PRIu64 " %8" PRIu64 " %8.2f %8.2f %8.2f %8.2f %9.2f%s\n",
                i + 1, (double)s->scheduled / d, (double)(s->acked + s->refused) / d, s->dropped,
                s->failed, ms(weft_hist_quantile(&s->lat, 0.5)),
                ms(weft_hist_quantile(&s->lat, 0.9)), ms(weft_hist_quantile(&s->lat, 0.99)),
                ms(weft_hist_quantile(&s->lat, 0.999)), ms(s->lat.count ? s->lat.max : 0),
                i == kn ? "  <- knee (first step not held)" : "");
    }
    uint64_t sch = 0, ack = 0, drop = 0, fail = 0, dur = 0;
    for (int i = 0; i < l->o.nsteps; i++) {
        sch += l->steps[i].scheduled;
        ack += l->steps[i].acked + l->steps[i].refused;
        drop += l->steps[i].dropped;
        fail += l->steps[i].failed;
        dur += l->steps[i].dur;
    }
    double d = (double)dur / 1e9;
    fprintf(f, "%-6s %10.0f %10.0f %8" PRIu64 " %8" PRIu64 " %8.2f %8.2f %8.2f %8.2f %9.2f\n",
            "all", (double)sch / d, (double)ack / d, drop, fail, ms(weft_hist_quantile(all, 0.5)),
            ms(weft_hist_quantile(all, 0.9)), ms(weft_hist_quantile(all, 0.99)),
            ms(weft_hist_quantile(all, 0.999)), ms(all->count ? all->max : 0));
    if (kn >= 0)
        fprintf(f, "knee: step %d (%.0f/s): achieved < 98 %% of offered or p99 > %.0f ms\n", kn + 1,
                l->steps[kn].rate, l->o.slo_ms);
    if (kn == -1)
        fprintf(f, "knee: not reached (every step held 98 %% and p99 <= %.0f ms)\n", l->o.slo_ms);
    fprintf(f,
            "answered as expected %" PRIu64 " of %" PRIu64
            " scheduled (achieved: 201/200, and 400 for bad requests); responses by status:",
            ack, sch);
    for (int i = 0; i < 600; i++)
        if (l->status[i]) fprintf(f, " %d x%" PRIu64, i, l->status[i]);
    for (int i = 0; i < 5; i++)
        if (l->transport[i]) fprintf(f, " %s x%" PRIu64, transport_names[i], l->transport[i]);
    fprintf(f,
            "\nretries (same Idempotency-Key) %" PRIu64 ", gave up %" PRIu64
            ", bad requests %" PRIu64 " (400/413 back %" PRIu64 ", other %" PRIu64
            "), resent acknowledged %" PRIu64 " (same id %" PRIu64 ", other %" PRIu64 ")\n",
            l->retries, l->gave_up, l->bad_sent, l->bad_ok, l->bad_unexpected, l->dup_sent,
            l->dup_same, l->dup_mismatch);
    const weft_hist_t *c = &l->comp;
    fprintf(f,
            "completion (accepted -> terminal, engine timestamps, %" PRIu64
            " sampled): p50 %" PRIu64 " ms, p90 %" PRIu64 ", p99 %" PRIu64 ", p99.9 %" PRIu64
            ", max %" PRIu64 "; shipped %" PRIu64 ", rejected %" PRIu64 ", payment_failed %" PRIu64
            ", not terminal %" PRIu64 ", unreadable %" PRIu64 "\n",
            c->count, weft_hist_quantile(c, 0.5), weft_hist_quantile(c, 0.9),
            weft_hist_quantile(c, 0.99), weft_hist_quantile(c, 0.999), c->count ? c->max : 0,
            l->comp_status[0], l->comp_status[1], l->comp_status[2], l->not_terminal,
            l->poll_errors);
}

static void json_hist(FILE *f, const weft_hist_t *h, double scale)
{
    double q[NQ];
    spectrum(h, q);
    fprintf(f, "{\"count\":%" PRIu64, h->count);
    for (int i = 0; i < NQ; i++) fprintf(f, ",\"p%g\":%.3f", quantiles[i] * 100, q[i] * scale);
    fprintf(f, "}");
}

static void write_json(const ld_t *l, const weft_hist_t *all, FILE *f)
{
    fprintf(f, "{\"url\":\"%s\",\"connections\":%d,\"steps\":[", l->o.url, l->o.connections);
    for (int i = 0; i < l->o.nsteps; i++) {
        const step_t *s = &l->steps[i];
        double d = (double)s->dur / 1e9;
        fprintf(f,
                "%s{\"rate\":%.0f,\"duration_s\":%.3f,\"offered\":%.1f,\"achieved\":%.1f,"
                "\"scheduled\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"dropped\":%" PRIu64
                ",\"failed\":%" PRIu64 ",\"latency_ms\":",
                i ? "," : "", s->rate, d, (double)s->scheduled / d,
                (double)(s->acked + s->refused) / d, s->scheduled, s->acked, s->dropped, s->failed);
        json_hist(f, &s->lat, 1e-3);
        fprintf(f, "}");
    }
    fprintf(f, "],\"knee_step\":%d,\"latency_ms\":", l->o.nsteps > 1 ? knee(l) + 1 : 0);
    json_hist(f, all, 1e-3);
    fprintf(f, ",\"status\":{");
    bool first = true;
    for (int i = 0; i < 600; i++)
        if (l->status[i]) {
            fprintf(f, "%s\"%d\":%" PRIu64, first ? "" : ",", i, l->status[i]);
            first = false;
        }
    fprintf(f, "},\"transport_errors\":{");
    first = true;
    for (int i = 0; i < 5; i++)
        if (l->transport[i]) {
            fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",", transport_names[i], l->transport[i]);
            first = false;
        }
    fprintf(f,
            "},\"retries\":%" PRIu64 ",\"gave_up\":%" PRIu64 ",\"bad_sent\":%" PRIu64
            ",\"bad_rejected\":%" PRIu64 ",\"bad_unexpected\":%" PRIu64 ",\"resent\":%" PRIu64
            ",\"resent_same_id\":%" PRIu64 ",\"resent_other\":%" PRIu64 ",\"completion_ms\":",
            l->retries, l->gave_up, l->bad_sent, l->bad_ok, l->bad_unexpected, l->dup_sent,
            l->dup_same, l->dup_mismatch);
    json_hist(f, &l->comp, 1);
    fprintf(f,
            ",\"terminal\":{\"shipped\":%" PRIu64 ",\"rejected\":%" PRIu64
            ",\"payment_failed\":%" PRIu64 "},\"not_terminal\":%" PRIu64 ",\"seconds\":[",
            l->comp_status[0], l->comp_status[1], l->comp_status[2], l->not_terminal);
    for (size_t i = 0; i < l->nsecs; i++)
        fprintf(f,
                "%s{\"acked\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"dropped\":%" PRIu64
                ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}",
                i ? "," : "", l->secs[i].acked, l->secs[i].errors, l->secs[i].dropped,
                ms(l->secs[i].p50), ms(l->secs[i].p99), ms(l->secs[i].max));
    fprintf(f, "]}\n");
}

/* A line chart of n series over one x (common/html-int.h draws it with uPlot); with `ref`, the
 * last series is a reference line (offered: what achieved should equal), drawn dashed. */
static int line_chart(weft_buf_t *b, const char *title, const char *xlabel, const char *ylabel,
                      int n, const char *const *names, const double *x, const double *const *y,
                      size_t npts, bool logx, bool ref)
{
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
    tools_html_series_t ser[4];
    for (int s = 0; s < n && s < 4; s++)
        ser[s] = (tools_html_series_t){.label = names[s],
                                       .color = colors[s],
                                       .x = x,
                                       .y = y[s],
                                       .n = npts,
                                       .dashed = ref && s == n - 1};
    tools_html_chart_t c = {.title = title,
                            .xlabel = xlabel,
                            .ylabel = ylabel,
                            .logx = logx,
                            .series = ser,
                            .nseries = (size_t)(n < 4 ? n : 4)};
    return tools_html_chart(b, &c);
}

/* The page: the table as text, then the charts, drawn by the embedded uPlot (no resource from
 * elsewhere: it works offline and from file://). */
static int write_html(const ld_t *l, const weft_hist_t *all, FILE *f)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    char *table = NULL;
    size_t tlen = 0;
    FILE *tf = open_memstream(&table, &tlen);
    if (!tf) return -ENOMEM;
    print_table(l, all, tf);
    int rc = fclose(tf) ? -ENOMEM : 0;
    rc |= weft_buf_printf(&b, "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                              "<title>weft orders load</title><style>body{font-family:sans-serif;"
                              "margin:2em}pre{background:#f4f4f4;padding:1em}</style>\n");
    rc |= tools_html_charts_style(&b);
    rc |= weft_buf_printf(&b, "</head><body><h1>weft orders load</h1><pre>");
    for (size_t i = 0; i < tlen && !rc;) { /* line by line: the escape makes '\n' a space */
        const char *nl = memchr(table + i, '\n', tlen - i);
        size_t k = nl ? (size_t)(nl - (table + i)) : tlen - i;
        rc = weft_utf8_escape_html(&b, table + i, k);
        if (!rc) rc = weft_buf_append(&b, "\n", 1);
        i += k + 1;
    }
    free(table);
    rc |= weft_buf_printf(&b, "</pre>\n");
    /* the percentile spectrum: x = 1 / (1 - q) on a log axis */
    double x[NQ - 1], ys[NQ], *y[1] = {ys};
    const char *names[] = {"acknowledgement latency, ms", "achieved/s", "p99 ms", "offered/s"};
    double q[NQ];
    spectrum(all, q);
    for (int i = 0; i < NQ - 1; i++) {
        x[i] = 1 / (1 - quantiles[i]);
        ys[i] = q[i] / 1000;
    }
    rc |= line_chart(&b, "percentile spectrum (x = 1/(1-q): 2 is p50, 100 p99, 1000 p99.9)",
                     "1/(1-quantile), log", "ms", 1, names, x, (const double *const *)y, NQ - 1,
                     true, false);
    if (l->o.nsteps > 1) {
        size_t n = (size_t)l->o.nsteps;
        double *sx = calloc(n, sizeof *sx), *sa = calloc(n, sizeof *sa),
               *sp = calloc(n, sizeof *sp);
        if (sx && sa && sp) {
            for (size_t i = 0; i < n; i++) {
                double d = (double)l->steps[i].dur / 1e9;
                sx[i] = (double)l->steps[i].scheduled / d;
                sa[i] = (double)(l->steps[i].acked + l->steps[i].refused) / d;
                sp[i] = ms(weft_hist_quantile(&l->steps[i].lat, 0.99));
            }
            const double *ya[2] = {sa, sx}, *yp[1] = {sp};
            const char *an[2] = {names[1], names[3]};
            rc |= line_chart(&b, "step curve: achieved vs offered", "offered orders/s", "/s", 2, an,
                             sx, ya, n, false, true);
            rc |= line_chart(&b, "step curve: p99 vs offered", "offered orders/s", "ms", 1,
                             names + 2, sx, yp, n, false, false);
        } else {
            rc = -ENOMEM;
        }
        free(sx);
        free(sa);
        free(sp);
    }
    if (l->nsecs > 1) {
        double *tx = calloc(l->nsecs, sizeof *tx), *ta = calloc(l->nsecs, sizeof *ta),
               *tp = calloc(l->nsecs, sizeof *tp);
        if (tx && ta && tp) {
            for (size_t i = 0; i < l->nsecs; i++) {
                tx[i] = (double)i;
                ta[i] = (double)l->secs[i].acked;
                tp[i] = ms(l->secs[i].p99);
            }
            const double *ya[1] = {ta}, *yp[1] = {tp};
            rc |= line_chart(&b, "acknowledged per second", "seconds", "/s", 1, names + 1, tx, ya,
                             l->nsecs, false, false);
            rc |= line_chart(&b, "p99 per second", "seconds", "ms", 1, names + 2, tx, yp, l->nsecs,
                             false, false);
        } else {
            rc = -ENOMEM;
        }
        free(tx);
        free(ta);
        free(tp);
    }
    rc |= tools_html_charts_script(&b);
    rc |= weft_buf_printf(&b, "</body></html>\n");
    if (rc)
        rc = -ENOMEM;
    else if (b.len && fwrite(b.data, 1, b.len, f) != b.len)
        rc = -EIO;
    weft_buf_free(&b);
    return rc;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(
        f, "usage: weft orders load [--url URL] (--rate R | --steps A:B:S) [--duration S] "
           "[OPTIONS]\n\n"
           "Sends POST /orders to a running `weft orders serve` at a constant arrival rate (open\n"
           "loop): each request is scheduled at its instant whatever the answers take, and its\n"
           "latency is measured from that instant, so queueing anywhere shows up (no coordinated\n"
           "omission). A start that finds every connection busy is dropped and counted.\n\n"
           "  --url URL            the engine (default http://127.0.0.1:8080)\n"
           "  --rate R             orders per second (default 1000)\n"
           "  --steps A:B:S        a step curve: A, A+S, ... B orders/s, --duration each\n"
           "                       (k suffix: 1k:12k:1k)\n"
           "  --duration S         seconds (per step with --steps; default 10); 0 with --stock:\n"
           "                       only set the stock, send no order\n"
           "  --connections N      concurrent requests at most (default 256)\n"
           "  --users N            distinct users (default 1000)\n"
           "  --skus N             distinct SKUs, named PREFIX0.. (default 100)\n"
           "  --sku-prefix P       default sku-\n"
           "  --hot-sku F          share of items on SKU PREFIX0 (default 0: uniform)\n"
           "  --items N            1..N items per order (default 1)\n"
           "  --bad F              share of deliberately bad requests, expected 400 (default 0)\n"
           "  --resend F           share of acknowledged orders sent again with the same key, as\n"
           "                       a client that lost the answer; must return the same id\n"
           "  --retry-for S        retry unacknowledged requests (errors, 409, 5xx) with the same\n"
           "                       Idempotency-Key until S seconds after their start (default 30)\n"
           "  --timeout S          one attempt (default 10)\n"
           "  --sample F           share of acknowledged ids read back for completion latency\n"
           "                       (default 0.05; at most 200000)\n"
           "  --drain S            wait for sampled orders to become terminal (default 10)\n"
           "  --slo-ms MS          the knee is the first step with achieved < 98 %% of offered\n"
           "                       or p99 > MS (default 2000)\n"
           "  --stock N            first PUT /stock: N units on each of the --skus SKUs\n"
           "  --acked FILE         write every acknowledged id (for `weft orders audit --acked`)\n"
           "  --json FILE          the report as JSON ('-': stdout, instead of the table)\n"
           "  --html FILE          the report as a page with the percentile spectrum and curves\n"
           "                       (self-contained: uPlot inlined, works offline)\n"
           "  -h, --help           this text\n\n"
           "Exit codes: 0 every order acknowledged (or refused as expected), 1 some gave up, was\n"
           "refused (a 4xx but 409), or a resent key returned another id, 2 usage error, 3\n"
           "internal error.\n");
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s) return -EINVAL;
    if (*end == 'k' || *end == 'K') {
        v *= 1000;
        end++;
    }
    if (*end || !(v > 0) || v > 1e6) return -EINVAL;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return -EINVAL;
    *out = v;
    return 0;
}

/* --stock: PUT /stock/{sku} {"qty":N} on each SKU, one at a time before the run, on one
 * keep-alive libcurl handle (weft_http_opts_t has no method but GET and POST). */
static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static int seed_stock(const opts_t *o)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (!c || !h) {
        curl_slist_free_all(h);
        if (c) curl_easy_cleanup(c);
        return weft_cli_error("orders load", WEFT_EXIT_INTERNAL, "--stock: out of memory");
    }
    char url[400], body[64];
    snprintf(body, sizeof body, "{\"qty\":%ld}", o->stock);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    int rc = WEFT_EXIT_OK;
    for (int i = 0; i < o->skus && rc == WEFT_EXIT_OK; i++) {
        snprintf(url, sizeof url, "%s/stock/%s%d", o->url, o->sku_prefix, i);
        curl_easy_setopt(c, CURLOPT_URL, url);
        long status = 0;
        CURLcode e = curl_easy_perform(c);
        if (e == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
            rc = weft_cli_error("orders load", WEFT_EXIT_FAILED, "--stock: PUT %s: %s", url,
                                e != CURLE_OK ? curl_easy_strerror(e) : "not 200");
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

static int cmd_load(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"rate", required_argument, NULL, 'r'},
        {"steps", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'},
        {"connections", required_argument, NULL, 'c'},
        {"users", required_argument, NULL, 'U'},
        {"skus", required_argument, NULL, 'K'},
        {"sku-prefix", required_argument, NULL, 'P'},
        {"hot-sku", required_argument, NULL, 'H'},
        {"items", required_argument, NULL, 'i'},
        {"bad", required_argument, NULL, 'b'},
        {"resend", required_argument, NULL, 'R'},
        {"retry-for", required_argument, NULL, 'f'},
        {"timeout", required_argument, NULL, 't'},
        {"sample", required_argument, NULL, 'S'},
        {"drain", required_argument, NULL, 'D'},
        {"slo-ms", required_argument, NULL, 'L'},
        {"acked", required_argument, NULL, 'a'},
        {"json", required_argument, NULL, 'j'},
        {"html", required_argument, NULL, 'm'},
        {"stock", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static ld_t l; /* large (histograms): not on the stack */
    memset(&l, 0, sizeof l);
    opts_t *o = &l.o;
    *o = (opts_t){.url = "http://127.0.0.1:8080",
                  .rates = {1000},
                  .nsteps = 1,
                  .duration_s = 10,
                  .connections = 256,
                  .users = 1000,
                  .skus = 100,
                  .max_items = 1,
                  .sample = 0.05,
                  .retry_for_s = 30,
                  .timeout_s = 10,
                  .drain_s = 10,
                  .slo_ms = 2000,
                  .stock = -1,
                  .sku_prefix = "sku-"};
    const char *cmd = "orders load";
    long v;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->url = optarg;
            break;
        case 'r':
            if (parse_rate(optarg, &o->rates[0]) < 0)
                return weft_cli_usage_error(cmd, "--rate must be a rate > 0, e.g. 2000 or 2k");
            o->nsteps = 1;
            break;
        case 's': {
            char a[32], b[32], st[32];
            double x, y, z;
            if (sscanf(optarg, "%31[^:]:%31[^:]:%31s", a, b, st) != 3 || parse_rate(a, &x) < 0 ||
                parse_rate(b, &y) < 0 || parse_rate(st, &z) < 0 || y < x ||
                (y - x) / z >= MAX_STEPS)
                return weft_cli_usage_error(cmd, "--steps must be A:B:S with 0 < A <= B, S > 0, "
                                                 "at most 256 steps (e.g. 1k:12k:1k)");
            o->nsteps = 0;
            for (double r = x; r <= y + 1e-9 && o->nsteps < MAX_STEPS; r += z)
                o->rates[o->nsteps++] = r;
            break;
        }
        case 'd':
            if (parse_double(optarg, 0, 86400, &o->duration_s) < 0 ||
                (o->duration_s > 0 && o->duration_s < 0.1))
                return weft_cli_usage_error(cmd, "--duration must be 0 or 0.1..86400 seconds");
            break;
        case 'c':
            if (weft_cli_parse_int(optarg, 1, 100000, &v) < 0)
                return weft_cli_usage_error(cmd, "--connections must be 1..100000");
            o->connections = (int)v;
            break;
        case 'U':
            if (weft_cli_parse_int(optarg, 1, 100000000, &v) < 0)
                return weft_cli_usage_error(cmd, "--users must be 1..100000000");
            o->users = (int)v;
            break;
        case 'K':
            if (weft_cli_parse_int(optarg, 1, 100000000, &v) < 0)
                return weft_cli_usage_error(cmd, "--skus must be 1..100000000");
            o->skus = (int)v;
            break;
        case 'P':
            if (strlen(optarg) > 32 || strpbrk(optarg, "\"\\/ "))
                return weft_cli_usage_error(cmd, "--sku-prefix: at most 32 plain characters");
            o->sku_prefix = optarg;
            break;
        case 'i':
            if (weft_cli_parse_int(optarg, 1, 100, &v) < 0)
                return weft_cli_usage_error(cmd, "--items must be 1..100");
            o->max_items = (int)v;
            break;
        case 'H':
        case 'b':
        case 'R':
        case 'S': {
            double *dst = c == 'H' ? &o->hot : c == 'b' ? &o->bad : c == 'R' ? &o->dup : &o->sample;
            if (parse_double(optarg, 0, 1, dst) < 0)
                return weft_cli_usage_error(cmd, "%s must be a share 0..1", argv[optind - 2]);
            break;
        }
        case 'f':
        case 't':
        case 'D': {
            double *dst = c == 'f' ? &o->retry_for_s : c == 't' ? &o->timeout_s : &o->drain_s;
            if (parse_double(optarg, 0, 3600, dst) < 0 || (c == 't' && *dst < 0.001))
                return weft_cli_usage_error(cmd, "%s must be 0..3600 seconds", argv[optind - 2]);
            break;
        }
        case 'L':
            if (parse_double(optarg, 0.001, 1e7, &o->slo_ms) < 0)
                return weft_cli_usage_error(cmd, "--slo-ms must be > 0");
            break;
        case 'T':
            if (weft_cli_parse_int(optarg, 0, 1000000000000L, &o->stock) < 0)
                return weft_cli_usage_error(cmd, "--stock must be 0..1000000000000 units");
            break;
        case 'a':
            o->acked = optarg;
            break;
        case 'j':
            o->json = optarg;
            break;
        case 'm':
            o->html = optarg;
            break;
        case 'h':
            usage(stdout);
            return WEFT_EXIT_OK;
        default:
            return weft_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return weft_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (strncmp(o->url, "http://", 7) != 0 || strlen(o->url) > 256)
        return weft_cli_usage_error(cmd, "--url must be http://HOST:PORT");

    if (o->duration_s == 0 && o->stock < 0)
        return weft_cli_usage_error(cmd, "--duration 0 only sets the stock: give --stock N");
    int rc = WEFT_EXIT_OK;
    if (o->stock >= 0 && (rc = seed_stock(o)) != WEFT_EXIT_OK) return rc;
    if (o->duration_s == 0) {
        printf("stock: %ld units on each of %d SKUs (%s0..%s%d)\n", o->stock, o->skus,
               o->sku_prefix, o->sku_prefix, o->skus - 1);
        return WEFT_EXIT_OK;
    }
    if (o->acked && !(l.acked = fopen(o->acked, "w")))
        return weft_cli_error(cmd, WEFT_EXIT_USAGE, "cannot write %s: %s", o->acked,
                              strerror(errno));
    weft_loop_opts_t lo = {.max_connections = o->connections};
    int e = weft_loop_create(&l.loop, &lo);
    if (e == 0) e = weft_loop_timer_create(l.loop, tick, &l, &l.tick);
    if (e < 0) {
        if (l.acked) fclose(l.acked);
        weft_loop_destroy(l.loop);
        return weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "cannot start the loop: %s", strerror(-e));
    }
    l.rng = weft_now_ns() ^ ((uint64_t)getpid() << 32);
    l.run_id = rnd(&l) & 0xffffffffffffu;
    weft_hist_init(&l.sec_hist);
    weft_hist_init(&l.comp);
    l.t0 = weft_now_ns() + 10000000; /* 10 ms from now */
    uint64_t t = l.t0;
    for (int i = 0; i < o->nsteps; i++) {
        l.steps[i].rate = o->rates[i];
        l.steps[i].t0 = t;
        l.steps[i].dur = (uint64_t)(o->duration_s * 1e9);
        t += l.steps[i].dur;
        weft_hist_init(&l.steps[i].lat);
    }
    l.scheduling = true;
    weft_loop_timer_start(l.tick, 1, 1);
    weft_loop_run(l.loop);
    weft_loop_destroy(l.loop); /* cancels what never answered; their records leak no memory */
    if (l.nsecs) sec_close(&l);
    if (l.acked) fclose(l.acked);

    static weft_hist_t all;
    weft_hist_init(&all);
    for (int i = 0; i < o->nsteps; i++) weft_hist_merge(&all, &l.steps[i].lat);
    FILE *jf = NULL;
    if (o->json) jf = strcmp(o->json, "-") == 0 ? stdout : fopen(o->json, "w");
    if (o->json && !jf)
        rc = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "cannot write %s: %s", o->json,
                            strerror(errno));
    if (jf) write_json(&l, &all, jf);
    if (jf && jf != stdout) fclose(jf);
    if (!jf || jf != stdout) print_table(&l, &all, stdout);
    if (o->html) {
        FILE *hf = fopen(o->html, "w");
        int hrc = hf ? write_html(&l, &all, hf) : -errno;
        if (hf && fclose(hf) != 0 && !hrc) hrc = -EIO;
        if (hrc) {
            rc = weft_cli_error(cmd, WEFT_EXIT_INTERNAL, "cannot write %s: %s", o->html,
                                strerror(-hrc));
        }
    }
    uint64_t failed = 0; /* good requests answered with a final error (a 4xx but 409) */
    for (int i = 0; i < o->nsteps; i++) failed += l.steps[i].failed;
    if (rc == WEFT_EXIT_OK && (l.gave_up || l.dup_mismatch || failed)) rc = WEFT_EXIT_FAILED;
    free(l.secs);
    free(l.ids);
    return rc;
}

WEFT_ORDERS_COMMAND("load", cmd_load, "open-loop load generator: rate, latency spectrum, report")
