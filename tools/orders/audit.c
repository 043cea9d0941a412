/* `weft orders audit`: checks, from the database (and the payment provider's and Redis' own
 * counters when given), that the order engine lost and duplicated nothing (issue 9).
 *
 * DESIGN
 * Read-only. Each check is one or two queries valid in both SQLite and PostgreSQL, evaluated
 * here, and prints one line: "ok   name: detail" or "FAIL name: detail". The stock check is the
 * ledger identity, per SKU: available = sum(stock_sets.delta) - reserved + released and
 * reserved = sum(reserve moves) - sum(release moves), so a unit can be neither created nor lost
 * by any interleaving of orders, restarts and PUT /stock. The per-order check ties every status
 * to its ledger rows (a payment_failed order released exactly what it reserved, a shipped one has
 * exactly one shipment). --wait lets a running engine finish its orders before the last check.
 */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/http.h>
#include <weft/sys.h>

#include "orders/order.h"
#include "orders/orders.h"
#include "orders/store.h"

typedef struct audit {
    store_t *db;
    int failed;
    char err[512];
} audit_t;

static void report(audit_t *a, bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(audit_t *a, bool ok, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %s: ", ok ? "ok  " : "FAIL", name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!ok) a->failed++;
}

static int one_int(void *arg, int n, char **c)
{
    *(int64_t *)arg = c[0] ? strtoll(c[0], NULL, 10) : 0;
    return 0;
}

static int count(audit_t *a, const char *sql, int64_t *out)
{
    *out = -1;
    return store_query(a->db, sql, one_int, out, a->err, sizeof a->err);
}

/* ---- stock: the ledger identity ---- */

typedef struct stock_chk {
    audit_t *a;
    int64_t skus, bad;
    char first[300];
} stock_chk_t;

static int stock_row(void *arg, int n, char **c)
{
    stock_chk_t *s = arg;
    int64_t avail = strtoll(c[1], NULL, 10), res = strtoll(c[2], NULL, 10);
    int64_t sets = strtoll(c[3], NULL, 10), rsv = strtoll(c[4], NULL, 10),
            rel = strtoll(c[5], NULL, 10);
    s->skus++;
    if (avail < 0 || avail != sets - rsv + rel || res != rsv - rel) {
        if (!s->bad++)
            snprintf(s->first, sizeof s->first,
                     "%.100s: available %" PRId64 " reserved %" PRId64 ", ledger says %" PRId64
                     " and %" PRId64,
                     c[0], avail, res, sets - rsv + rel, rsv - rel);
    }
    return 0;
}

static void check_stock(audit_t *a)
{
    stock_chk_t s = {.a = a};
    int rc =
        store_query(a->db,
                    "SELECT s.sku, s.available, s.reserved, "
                    "COALESCE((SELECT sum(t.delta) FROM stock_sets t WHERE t.sku = s.sku), 0), "
                    "COALESCE((SELECT sum(m.qty) FROM stock_moves m WHERE m.sku = s.sku AND "
                    "m.kind = 'reserve'), 0), "
                    "COALESCE((SELECT sum(m.qty) FROM stock_moves m WHERE m.sku = s.sku AND "
                    "m.kind = 'release'), 0) FROM stock s",
                    stock_row, &s, a->err, sizeof a->err);
    if (rc < 0)
        report(a, false, "stock", "query failed: %s", a->err);
    else if (s.bad)
        report(a, false, "stock", "%" PRId64 " of %" PRId64 " SKUs disagree with the ledger; %s",
               s.bad, s.skus, s.first);
    else
        report(a, true, "stock",
               "%" PRId64 " SKUs: available = set - reserved + released, never negative", s.skus);
}

/* ---- every order against its ledger rows ---- */

typedef struct ord_chk {
    int64_t orders, bad, by_status[ORDER_PAYMENT_FAILED + 1];
    char first[300];
} ord_chk_t;

static int order_row(void *arg, int n, char **c)
{
    ord_chk_t *s = arg;
    order_status_t st = order_status_parse(c[1]);
    order_item_t *items = NULL;
    size_t nitems = 0;
    int64_t qty = 0;
    bool items_ok = c[2] && order_items_parse(c[2], &items, &nitems) == 0;
    for (size_t i = 0; i < nitems; i++) qty += items[i].qty;
    order_items_free(items, nitems);
    int64_t rsv_n = strtoll(c[3], NULL, 10), rsv_q = c[4] ? strtoll(c[4], NULL, 10) : 0;
    int64_t rel_n = strtoll(c[5], NULL, 10), rel_q = c[6] ? strtoll(c[6], NULL, 10) : 0;
    int64_t ships = strtoll(c[7], NULL, 10);
    s->orders++;
    if (st != ORDER_NEW) s->by_status[st]++;
    const char *why = NULL;
    bool holds = st == ORDER_RESERVED || st == ORDER_PAID || st == ORDER_SHIPPED ||
                 st == ORDER_PAYMENT_FAILED;
    if (st == ORDER_NEW)
        why = "unknown status";
    else if (!items_ok)
        why = "items unreadable";
    else if (holds && (rsv_n != (int64_t)nitems || rsv_q != qty))
        why = "reserve moves do not match its items";
    else if (!holds && rsv_n)
        why = "has reserve moves but never reserved";
    else if (st == ORDER_PAYMENT_FAILED && (rel_n != rsv_n || rel_q != rsv_q))
        why = "payment_failed but did not release exactly what it reserved";
    else if (st != ORDER_PAYMENT_FAILED && rel_n)
        why = "released stock without a failed payment";
    else if ((st == ORDER_SHIPPED) != (ships == 1))
        why = st == ORDER_SHIPPED ? "shipped without a shipment" : "a shipment but not shipped";
    if (why && !s->bad++) snprintf(s->first, sizeof s->first, "%.64s (%s): %s", c[0], c[1], why);
    return 0;
}

static void check_orders(audit_t *a, ord_chk_t *s)
{
    int rc = store_query(
        a->db,
        "SELECT o.id, o.status, o.items, "
        "(SELECT count(*) FROM stock_moves m WHERE m.order_id = o.id AND m.kind = 'reserve'), "
        "(SELECT sum(m.qty) FROM stock_moves m WHERE m.order_id = o.id AND m.kind = 'reserve'), "
        "(SELECT count(*) FROM stock_moves m WHERE m.order_id = o.id AND m.kind = 'release'), "
        "(SELECT sum(m.qty) FROM stock_moves m WHERE m.order_id = o.id AND m.kind = 'release'), "
        "(SELECT count(*) FROM shipments h WHERE h.order_id = o.id) FROM orders o",
        order_row, s, a->err, sizeof a->err);
    if (rc < 0) {
        report(a, false, "ledger", "query failed: %s", a->err);
        return;
    }
    int64_t orphans;
    count(a,
          "SELECT (SELECT count(*) FROM stock_moves m WHERE NOT EXISTS (SELECT 1 FROM orders o "
          "WHERE o.id = m.order_id)) + (SELECT count(*) FROM shipments h WHERE NOT EXISTS "
          "(SELECT 1 FROM orders o WHERE o.id = h.order_id))",
          &orphans);
    if (s->bad)
        report(a, false, "ledger", "%" PRId64 " of %" PRId64 " orders disagree; first: %s", s->bad,
               s->orders, s->first);
    else if (orphans != 0)
        report(a, false, "ledger", "%" PRId64 " moves or shipments of no order", orphans);
    else
        report(a, true, "ledger",
               "%" PRId64 " orders: each status matches its stock moves and shipments", s->orders);
}

/* ---- Redis agrees with the database ---- */

typedef struct redis_chk {
    redisContext *rc;
    int64_t skus, bad;
    char first[300];
} redis_chk_t;

static int redis_row(void *arg, int n, char **c)
{
    redis_chk_t *r = arg;
    redisReply *rep = redisCommand(r->rc, "GET weft:stock:%s", c[0]);
    r->skus++;
    const char *got = rep && rep->type == REDIS_REPLY_STRING ? rep->str : "(none)";
    if (strcmp(got, c[1]) != 0 && !r->bad++)
        snprintf(r->first, sizeof r->first, "%.100s: database %s, redis %.40s", c[0], c[1], got);
    freeReplyObject(rep);
    return 0;
}

static void check_redis(audit_t *a, const char *url)
{
    const char *hp = strncmp(url, "redis://", 8) == 0 ? url + 8 : url;
    const char *colon = strrchr(hp, ':');
    char host[256];
    if (!colon || (size_t)(colon - hp) >= sizeof host) {
        report(a, false, "redis", "bad URL '%s'", url);
        return;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
    struct timeval tv = {5, 0};
    redis_chk_t r = {.rc = redisConnectWithTimeout(host, atoi(colon + 1), tv)};
    if (!r.rc || r.rc->err) {
        report(a, false, "redis", "cannot connect to %s: %s", url, r.rc ? r.rc->errstr : "");
        if (r.rc) redisFree(r.rc);
        return;
    }
    redisReply *ready = redisCommand(r.rc, "GET weft:stock:ready");
    bool is_ready = ready && ready->type == REDIS_REPLY_STRING;
    freeReplyObject(ready);
    int rc = store_query(a->db, "SELECT sku, available FROM stock", redis_row, &r, a->err,
                         sizeof a->err);
    redisFree(r.rc);
    if (rc < 0)
        report(a, false, "redis", "query failed: %s", a->err);
    else if (!is_ready)
        report(a, false, "redis", "not reconciled (no weft:stock:ready): is an engine running?");
    else if (r.bad)
        report(a, false, "redis", "%" PRId64 " of %" PRId64 " SKUs differ; first: %s", r.bad,
               r.skus, r.first);
    else
        report(a, true, "redis", "%" PRId64 " SKUs: weft:stock:{sku} equals the database", r.skus);
}

/* ---- acknowledged orders ---- */

static int exists_row(void *arg, int n, char **c)
{
    (*(int64_t *)arg)++;
    return 0;
}

static void check_acked(audit_t *a, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        report(a, false, "acknowledged", "cannot read %s: %s", path, strerror(errno));
        return;
    }
    char line[512], sql[640], missing[ORDER_ID_LEN + 1] = "";
    int64_t n = 0, lost = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, " \t\r\n")] = 0;
        if (!*line) continue;
        bool ok = strlen(line) <= 64;
        for (char *p = line; ok && *p; p++)
            ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z');
        n++;
        int64_t found = 0;
        if (ok) {
            snprintf(sql, sizeof sql, "SELECT 1 FROM orders WHERE id = '%s'", line);
            if (store_query(a->db, sql, exists_row, &found, a->err, sizeof a->err) < 0) found = 0;
        }
        if (!found && !lost++) snprintf(missing, sizeof missing, "%.26s", line);
    }
    fclose(f);
    if (lost)
        report(a, false, "acknowledged",
               "%" PRId64 " of %" PRId64 " acknowledged orders are missing; first: %s", lost, n,
               missing);
    else
        report(a, true, "acknowledged", "all %" PRId64 " acknowledged orders exist", n);
}

/* ---- payments ---- */

static void check_payments(audit_t *a, const char *url, const ord_chk_t *o)
{
    weft_http_session_t *s = NULL;
    weft_http_resp_t r;
    memset(&r, 0, sizeof r);
    char u[1024];
    snprintf(u, sizeof u, "%s/stats", url);
    size_t l = strlen(url);
    if (l && url[l - 1] == '/') snprintf(u, sizeof u, "%sstats", url);
    weft_http_opts_t ho = {.url = u, .timeout_ms = 10000, .keep_body = true, .max_body = 1 << 20};
    int rc = weft_http_session_create(&s);
    if (rc == 0) rc = weft_http_session_perform(s, &ho, &r);
    json_t *j = rc == 0 && r.status == 200 ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
    if (!j) {
        report(a, false, "payments", "cannot read %s (%s)", u,
               rc ? weft_strerror(rc) : "not a JSON 200");
    } else {
        int64_t keys2 = json_integer_value(json_object_get(j, "keys_captured_more_than_once"));
        int64_t ord2 = json_integer_value(json_object_get(j, "orders_captured_more_than_once"));
        int64_t caps = json_integer_value(json_object_get(j, "captures"));
        int64_t paid = o->by_status[ORDER_PAID] + o->by_status[ORDER_SHIPPED];
        if (keys2 || ord2)
            report(a, false, "payments",
                   "%" PRId64 " keys and %" PRId64 " orders captured more than once", keys2, ord2);
        else if (caps < paid)
            report(a, false, "payments", "%" PRId64 " paid orders but only %" PRId64 " captures",
                   paid, caps);
        else
            report(a, true, "payments",
                   "%" PRId64 " captures, none twice for a key or an order; %" PRId64
                   " paid orders",
                   caps, paid);
    }
    json_decref(j);
    weft_http_resp_free(&r);
    weft_http_session_destroy(s);
}

/* ---- terminal ---- */

typedef struct pend_list {
    int64_t n;
    weft_buf_t ids;
} pend_list_t;

static int pend_row(void *arg, int n, char **c)
{
    pend_list_t *p = arg;
    if (p->n++ < 10) weft_buf_printf(&p->ids, "%s%s (%s)", p->n > 1 ? ", " : "", c[0], c[1]);
    return 0;
}

/* restart_ms > 0: also every order terminal within `within_s` of the later of its creation and
 * the last restart (epoch ms), from its completed_ms. */
static void check_terminal(audit_t *a, double wait_s, int64_t restart_ms, double within_s)
{
    uint64_t deadline = weft_now_ns() + (uint64_t)(wait_s * 1e9);
    pend_list_t p;
    weft_buf_init(&p.ids, 0);
    for (;;) {
        p.n = 0;
        weft_buf_reset(&p.ids);
        int rc = store_query(a->db,
                             "SELECT id, status FROM orders WHERE status IN "
                             "('accepted','reserved','paid') ORDER BY created_ms",
                             pend_row, &p, a->err, sizeof a->err);
        if (rc < 0) {
            report(a, false, "terminal", "query failed: %s", a->err);
            weft_buf_free(&p.ids);
            return;
        }
        if (p.n == 0 || weft_now_ns() >= deadline) break;
        usleep(100000);
    }
    if (p.n)
        report(a, false, "terminal", "%" PRId64 " orders not terminal: %s%s", p.n, p.ids.data,
               p.n > 10 ? ", ..." : "");
    else if (restart_ms <= 0)
        report(a, true, "terminal", "every order is shipped, rejected or payment_failed");
    if (p.n || restart_ms <= 0) {
        weft_buf_free(&p.ids);
        return;
    }
    char sql[400];
    int64_t w = (int64_t)(within_s * 1000);
    snprintf(sql, sizeof sql,
             "SELECT id, status FROM orders WHERE completed_ms IS NULL OR completed_ms > "
             "(CASE WHEN created_ms > %" PRId64 " THEN created_ms ELSE %" PRId64 " END) + %" PRId64
             " ORDER BY created_ms",
             restart_ms, restart_ms, w);
    p.n = 0;
    weft_buf_reset(&p.ids);
    if (store_query(a->db, sql, pend_row, &p, a->err, sizeof a->err) < 0)
        report(a, false, "terminal", "query failed: %s", a->err);
    else if (p.n)
        report(a, false, "terminal",
               "%" PRId64 " orders terminal more than %g s after the later of their creation and "
               "the last restart: %s%s",
               p.n, within_s, p.ids.data, p.n > 10 ? ", ..." : "");
    else
        report(a, true, "terminal",
               "every order is terminal, within %g s of the later of its creation and the last "
               "restart",
               within_s);
    weft_buf_free(&p.ids);
}

static void usage(FILE *f)
{
    fprintf(
        f, "usage: weft orders audit --db URL [--redis URL] [--payment URL] [--acked FILE]\n"
           "                         [--wait SECONDS] [--restart-ms EPOCH_MS [--within S]]\n\n"
           "Checks that the order engine lost and duplicated nothing, and prints one line per\n"
           "check:\n"
           "  keys          every order is unique by Idempotency-Key\n"
           "  acknowledged  every order id in FILE (one per line: the ids clients got 201 for)\n"
           "                exists (skipped without --acked)\n"
           "  stock         per SKU: available = set - reserved + released >= 0, and\n"
           "                reserved = reserve moves - release moves (the ledger)\n"
           "  ledger        every order's status matches its stock moves and shipments\n"
           "  payments      the payment API's /stats: no key or order captured twice, and a\n"
           "                capture for every paid order (skipped without --payment)\n"
           "  redis         with --redis: Redis' stock equals the database's, per SKU\n"
           "  terminal      every order is terminal, after waiting up to --wait seconds (default\n"
           "                0) for a running engine; lists those that are not. With\n"
           "                --restart-ms (the last restart of the engine or a service, in ms\n"
           "                since the epoch): also each order completed within --within\n"
           "                seconds (default 10) of the later of its creation and that restart\n\n"
           "  --db URL      sqlite:PATH or postgresql://...\n"
           "  --redis URL   also check that Redis' stock (weft:stock:{sku}) equals the database's\n"
           "Exit codes: 0 every check holds, 1 a check failed (or the database cannot be read),\n"
           "2 usage error.\n");
}

static int cmd_audit(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},
        {"redis", required_argument, NULL, 'r'},
        {"payment", required_argument, NULL, 'p'},
        {"acked", required_argument, NULL, 'a'},
        {"wait", required_argument, NULL, 'w'},
        {"restart-ms", required_argument, NULL, 'R'},
        {"within", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *redis = NULL, *payment = NULL, *acked = NULL;
    double wait_s = 0, within_s = 10;
    int64_t restart_ms = 0;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db = optarg;
            break;
        case 'r':
            redis = optarg;
            break;
        case 'p':
            payment = optarg;
            break;
        case 'a':
            acked = optarg;
            break;
        case 'w': {
            char *end;
            wait_s = strtod(optarg, &end);
            if (*end || wait_s < 0 || wait_s > 86400)
                return weft_cli_usage_error("orders audit", "--wait must be 0..86400 seconds");
            break;
        }
        case 'R': {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (*end || end == optarg || v <= 0)
                return weft_cli_usage_error("orders audit",
                                            "--restart-ms must be milliseconds since the epoch");
            restart_ms = v;
            break;
        }
        case 'W': {
            char *end;
            within_s = strtod(optarg, &end);
            if (*end || end == optarg || !(within_s > 0) || within_s > 86400)
                return weft_cli_usage_error("orders audit", "--within must be 0..86400 seconds");
            break;
        }
        case 'h':
            usage(stdout);
            return WEFT_EXIT_OK;
        default:
            return weft_cli_usage_error("orders audit", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return weft_cli_usage_error("orders audit", "unexpected argument '%s'", argv[optind]);
    if (!db) return weft_cli_usage_error("orders audit", "--db URL is required");
    audit_t a = {0};
    int rc = store_open(db, &a.db, a.err, sizeof a.err);
    if (rc < 0)
        return weft_cli_error("orders audit", rc == -EINVAL ? WEFT_EXIT_USAGE : WEFT_EXIT_FAILED,
                              "%s", a.err);
    int64_t dups;
    if (count(&a,
              "SELECT count(*) FROM (SELECT idem_key FROM orders GROUP BY idem_key "
              "HAVING count(*) > 1) d",
              &dups) < 0)
        report(&a, false, "keys", "query failed: %s", a.err);
    else
        report(&a, dups == 0, "keys", "%" PRId64 " keys used by more than one order", dups);
    if (acked)
        check_acked(&a, acked);
    else
        printf("skip acknowledged: no --acked FILE\n");
    check_terminal(&a, wait_s, restart_ms,
                   within_s); /* first: the checks below then see a settled database */
    check_stock(&a);
    ord_chk_t oc;
    memset(&oc, 0, sizeof oc);
    check_orders(&a, &oc);
    if (redis)
        check_redis(&a, redis);
    else
        printf("skip redis: no --redis URL\n");
    if (payment)
        check_payments(&a, payment, &oc);
    else
        printf("skip payments: no --payment URL\n");
    printf("%s: %" PRId64 " orders (shipped %" PRId64 ", rejected %" PRId64
           ", payment_failed %" PRId64 "), %d check%s failed\n",
           a.failed ? "FAILED" : "PASSED", oc.orders, oc.by_status[ORDER_SHIPPED],
           oc.by_status[ORDER_REJECTED], oc.by_status[ORDER_PAYMENT_FAILED], a.failed,
           a.failed == 1 ? "" : "s");
    store_close(a.db);
    return a.failed ? WEFT_EXIT_FAILED : WEFT_EXIT_OK;
}

WEFT_ORDERS_COMMAND("audit", cmd_audit, "check that no order was lost or duplicated")
