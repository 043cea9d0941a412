/* GET /metrics and GET /events of the order engine (metrics.h).
 *
 * DESIGN
 * Nothing here keeps state: each scrape or event reads the statistics' snapshot through
 * stats_view (under the snapshot lock, for the time it takes to format) and the engine's gauges.
 * Histograms: weft_hist buckets are log-linear (exact below 256, then 128 per power of two);
 * Prometheus wants cumulative counts at fixed bounds, so each `le` bound counts the records of
 * every weft_hist bucket whose upper end is <= the bound. A bound that falls inside a weft_hist
 * bucket (never below 256 us) is off by at most that bucket's width (< 1 %). _sum and _count are
 * exact. Units are base units (seconds); counters end in _total. No order id is ever a label;
 * SKUs appear only in /events (the ten hottest), not as metric labels.
 */
#include "orders/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <weft/hist.h>

#include "orders/order.h"
#include "orders/stats.h"
#include "orders/store.h"

/* Bounds in seconds for stage and commit durations, and for completion. */
static const double stage_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                  0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define NLE (sizeof stage_le / sizeof stage_le[0])

typedef struct mctx {
    weft_buf_t *b;
    engine_gauges_t g;
    int rc;
    size_t ntop; /* /events: how many of the hottest SKUs to include */
} mctx_t;

static void put(mctx_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(mctx_t *m, const char *fmt, ...)
{
    if (m->rc) return;
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        m->rc = -ENOMEM;
        return;
    }
    m->rc = weft_buf_append(m->b, tmp, (size_t)n);
}

static void head(mctx_t *m, const char *name, const char *type, const char *help)
{
    put(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One gauge per label value: name{label="keys[i]"} vals[i]. */
static void labelled(mctx_t *m, const char *name, const char *label, const char *const *keys,
                     const size_t *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) put(m, "%s{%s=\"%s\"} %zu\n", name, label, keys[i], vals[i]);
}

/* One histogram series: `unit_per_s` converts the recorded unit to seconds (1e6 for us). */
static void hist(mctx_t *m, const char *name, const char *labels, const weft_hist_t *h,
                 double unit_per_s)
{
    uint64_t cum = 0;
    size_t bi = 0;
    for (size_t i = 0; i < NLE; i++) {
        double bound = stage_le[i] * unit_per_s;
        for (; bi < WEFT_HIST_BUCKETS; bi++) {
            uint64_t lo, hi;
            weft_hist_bucket_range(bi, &lo, &hi);
            if ((double)hi > bound) break;
            cum += weft_hist_bucket_count(h, bi);
        }
        put(m, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, *labels ? "," : "",
            stage_le[i], cum);
    }
    put(m, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, *labels ? "," : "", h->count);
    const char *o = *labels ? "{" : "", *c = *labels ? "}" : "";
    put(m, "%s_sum%s%s%s %.6f\n", name, o, labels, c, (double)h->sum / unit_per_s);
    put(m, "%s_count%s%s%s %" PRIu64 "\n", name, o, labels, c, h->count);
}

static int prom(const stats_view_t *v, void *arg)
{
    mctx_t *m = arg;
    const struct stats_view_agg *c = &v->cum;
    static const struct {
        stats_counter_t c;
        const char *result;
    } received[] = {{STATS_ACCEPTED, "accepted"},         {STATS_DUPLICATE, "duplicate"},
                    {STATS_KEY_CONFLICT, "key_conflict"}, {STATS_IN_FLIGHT, "in_flight"},
                    {STATS_BAD_REQUEST, "bad_request"},   {STATS_OVERLOAD, "overload"}};
    head(m, "orders_received_total", "counter",
         "POST /orders requests by result (accepted 201, duplicate 200, key_conflict 422, "
         "in_flight 409, bad_request 400/413, overload 503).");
    for (size_t i = 0; i < sizeof received / sizeof received[0]; i++)
        put(m, "orders_received_total{result=\"%s\"} %" PRIu64 "\n", received[i].result,
            v->counters[received[i].c]);
    head(m, "orders_completed_total", "counter", "Orders that reached a terminal status.");
    for (int s = ORDER_SHIPPED; s <= ORDER_PAYMENT_FAILED; s++)
        put(m, "orders_completed_total{status=\"%s\"} %" PRIu64 "\n",
            order_status_name((order_status_t)s), c->by_status[s]);
    head(m, "orders_revenue_cents_total", "counter", "Amount of shipped orders, in cents.");
    put(m, "orders_revenue_cents_total %" PRIu64 "\n", c->revenue_cents);
    head(m, "orders_resumed_total", "counter",
         "Orders resumed from the database at start (after a restart or crash).");
    put(m, "orders_resumed_total %" PRIu64 "\n", v->counters[STATS_RESUMED]);

    head(m, "order_stage_duration_seconds", "histogram",
         "Time of each stage of an order (create: intake; reserve and ship: with their commit; "
         "payment: every attempt and backoff).");
    for (int s = 0; s < STATS_NSTAGES; s++) {
        char lab[64];
        snprintf(lab, sizeof lab, "stage=\"%s\"", stats_stage_name(s));
        hist(m, "order_stage_duration_seconds", lab, c->stage_us[s], 1e6);
    }
    head(m, "order_completion_duration_seconds", "histogram",
         "Accepted to terminal, from the engine's own timestamps (millisecond resolution).");
    hist(m, "order_completion_duration_seconds", "", c->total_ms, 1e3);

    head(m, "order_stage_retries_total", "counter",
         "Attempts beyond the first, per stage (payment retries use the same key).");
    for (int s = 0; s < STATS_NSTAGES; s++) {
        uint64_t n = c->retries[s];
        if (s == STATS_RESERVE) n += v->counters[STATS_STOCK_RETRY];
        put(m, "order_stage_retries_total{stage=\"%s\"} %" PRIu64 "\n", stats_stage_name(s), n);
    }
    head(m, "order_stage_failures_total", "counter",
         "Orders that ended at a stage, by reason; and failed group commits.");
    put(m, "order_stage_failures_total{stage=\"reserve\",reason=\"rejected\"} %" PRIu64 "\n",
        c->by_status[ORDER_REJECTED]);
    put(m, "order_stage_failures_total{stage=\"payment\",reason=\"payment_failed\"} %" PRIu64 "\n",
        c->by_status[ORDER_PAYMENT_FAILED]);
    put(m,
        "order_stage_failures_total{stage=\"commit\",reason=\"transaction_failed\"} %" PRIu64 "\n",
        c->commit_fail);

    head(m, "store_commits_total", "counter", "Group commits (one transaction each).");
    put(m, "store_commits_total %" PRIu64 "\n", c->commits);
    head(m, "store_commit_operations_total", "counter", "Operations applied by group commits.");
    put(m, "store_commit_operations_total %" PRIu64 "\n", c->commit_ops);
    head(m, "store_commit_duration_seconds", "histogram", "Time of one group commit.");
    hist(m, "store_commit_duration_seconds", "", c->commit_us, 1e6);

    head(m, "orders_live", "gauge", "Orders in flight: intake to terminal.");
    put(m, "orders_live %zu\n", m->g.live);
    const engine_gauges_t *g = &m->g;
    static const char *const pools[] = {"intake", "writer", "io", "payment", "cpu"};
    static const char *const queues[] = {"intake",  "writer", "loop", "backoff",
                                         "payment", "cpu",    "stats"};
    const size_t size[] = {(size_t)g->intake_threads, 1, 1, g->pay_concurrency,
                           (size_t)g->cpu_workers};
    const size_t busy[] = {g->intake_running, g->writer_running, g->io_running, g->pay_running,
                           g->cpu_running};
    const size_t depth[] = {g->intake_queued, g->writer_queued, g->loop_queued, g->io_backoff,
                            g->pay_queued,    g->cpu_queued,    g->stats_queued};
    head(m, "workers", "gauge",
         "Workers per pool: intake threads, the writer thread, the IO loop thread, payment "
         "calls allowed at once (--payment-concurrency), the statistics' CPU processes.");
    labelled(m, "workers", "pool", pools, size, 5);
    head(m, "workers_active", "gauge",
         "Busy now, per pool: intake threads running a task, the writer in a transaction (0/1), "
         "IO calls in flight on the loop (payment and Redis), payment calls in flight, CPU "
         "processes running a task.");
    labelled(m, "workers_active", "pool", pools, busy, 5);
    head(m, "queue_depth", "gauge",
         "Items waiting, per queue: intake (bodies to parse), writer (operations for the next "
         "group commit), loop (orders for their next stage), backoff (orders on a retry timer), "
         "payment (orders waiting for a payment slot), cpu (seconds of events for the CPU "
         "processes), stats (events not yet folded).");
    labelled(m, "queue_depth", "queue", queues, depth, 7);
    head(m, "orders_engine_uptime_seconds", "gauge", "Seconds since the engine started.");
    put(m, "orders_engine_uptime_seconds %.3f\n", v->uptime_s);
    return m->rc;
}

int metrics_prometheus(engine_t *e, weft_buf_t *out)
{
    mctx_t m = {.b = out};
    engine_gauges(e, &m.g);
    return stats_view(engine_stats(e), prom, &m);
}

/* ---- /events ---- */

static double q_ms(const weft_hist_t *h, double q, double unit_per_ms)
{
    return (double)weft_hist_quantile(h, q) / unit_per_ms;
}

static int event(const stats_view_t *v, void *arg)
{
    mctx_t *m = arg;
    const struct stats_view_agg *c = &v->cum, *l = &v->last;
    put(m,
        "\"t\":%.3f,\"seconds\":%" PRIu64 ",\"accepted\":%" PRIu64 ",\"duplicate\":%" PRIu64
        ",\"bad_request\":%" PRIu64 ",\"overload\":%" PRIu64 ",\"in_flight\":%" PRIu64
        ",\"resumed\":%" PRIu64 ",\"completed\":{",
        v->uptime_s, v->seconds, v->counters[STATS_ACCEPTED], v->counters[STATS_DUPLICATE],
        v->counters[STATS_BAD_REQUEST], v->counters[STATS_OVERLOAD], v->counters[STATS_IN_FLIGHT],
        v->counters[STATS_RESUMED]);
    for (int s = ORDER_SHIPPED; s <= ORDER_PAYMENT_FAILED; s++)
        put(m, "%s\"%s\":%" PRIu64, s > ORDER_SHIPPED ? "," : "",
            order_status_name((order_status_t)s), c->by_status[s]);
    put(m, "},\"retries\":{");
    for (int s = 0; s < STATS_NSTAGES; s++)
        put(m, "%s\"%s\":%" PRIu64, s ? "," : "", stats_stage_name(s),
            c->retries[s] + (s == STATS_RESERVE ? v->counters[STATS_STOCK_RETRY] : 0));
    /* the last complete second */
    put(m, "},\"last\":{\"completed\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"stages\":{",
        l->by_status[ORDER_SHIPPED] + l->by_status[ORDER_REJECTED] +
            l->by_status[ORDER_PAYMENT_FAILED],
        l->by_status[ORDER_REJECTED] + l->by_status[ORDER_PAYMENT_FAILED]);
    for (int s = 0; s < STATS_NSTAGES; s++)
        put(m, "%s\"%s\":{\"n\":%" PRIu64 ",\"p50\":%.3f,\"p99\":%.3f,\"retries\":%" PRIu64 "}",
            s ? "," : "", stats_stage_name(s), l->stage_us[s]->count,
            q_ms(l->stage_us[s], 0.5, 1e3), q_ms(l->stage_us[s], 0.99, 1e3), l->retries[s]);
    put(m, "},\"completion_p50\":%.0f,\"completion_p99\":%.0f}", q_ms(l->total_ms, 0.5, 1),
        q_ms(l->total_ms, 0.99, 1));
    const engine_gauges_t *g = &m->g;
    put(m,
        ",\"live\":%zu,\"workers\":{\"intake\":%zu,\"intake_threads\":%d,\"writer\":%zu,"
        "\"io\":%zu,\"payment\":%zu,\"cpu\":%zu,\"cpu_workers\":%d},\"queues\":{\"intake\":%zu,"
        "\"writer\":%zu,\"loop\":%zu,\"backoff\":%zu,\"payment\":%zu,\"cpu\":%zu,\"stats\":%zu},"
        "\"top\":[",
        g->live, g->intake_running, g->intake_threads, g->writer_running, g->io_running,
        g->pay_running, g->cpu_running, g->cpu_workers, g->intake_queued, g->writer_queued,
        g->loop_queued, g->io_backoff, g->pay_queued, g->cpu_queued, g->stats_queued);
    for (size_t i = 0; i < v->ntop && i < m->ntop; i++) {
        put(m, "%s[", i ? "," : "");
        char sku[40];
        snprintf(sku, sizeof sku, "%.32s", v->top_sku[i]);
        if (!m->rc) m->rc = order_json_str(m->b, sku);
        put(m, ",%" PRIu64 "]", v->top_units[i]);
    }
    put(m, "]");
    return m->rc;
}

int metrics_event(engine_t *e, weft_buf_t *out)
{
    weft_buf_t ev;
    weft_buf_init(&ev, 0);
    mctx_t m = {.b = &ev, .ntop = STATS_VIEW_TOP};
    engine_gauges(e, &m.g);
    /* At most METRICS_EVENT_MAX bytes once framed (id:, retry: and data: lines take < 64): the
     * fixed part is ~1.2 KiB; if long SKU names push it over, fewer of the hottest SKUs go out. */
    for (;;) {
        put(&m, "{");
        if (!m.rc) m.rc = stats_view(engine_stats(e), event, &m);
        put(&m, "}");
        if (m.rc || ev.len + 64 <= METRICS_EVENT_MAX || m.ntop == 0) break;
        weft_buf_reset(&ev);
        m.ntop = m.ntop > 3 ? m.ntop - 3 : 0;
    }
    if (!m.rc) m.rc = weft_buf_append(out, ev.data, ev.len);
    weft_buf_free(&ev);
    return m.rc;
}
/* ---- the dashboard's files ---- */

extern const unsigned char dash_html[], dash_js[], uplot_js[], uplot_css[];
extern const size_t dash_html_len, dash_js_len, uplot_js_len, uplot_css_len;

const char *metrics_asset(const char *path, size_t *len, const char **ctype)
{
    static const struct {
        const char *path, *ctype;
        const unsigned char *data;
        const size_t *len;
    } assets[] = {
        {"/", "text/html; charset=utf-8", dash_html, &dash_html_len},
        {"/dashboard.js", "text/javascript; charset=utf-8", dash_js, &dash_js_len},
        {"/uPlot.iife.min.js", "text/javascript; charset=utf-8", uplot_js, &uplot_js_len},
        {"/uPlot.min.css", "text/css; charset=utf-8", uplot_css, &uplot_css_len},
    };
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (strcmp(path, assets[i].path) == 0) {
            *len = *assets[i].len;
            *ctype = assets[i].ctype;
            return (const char *)assets[i].data;
        }
    return NULL;
}
