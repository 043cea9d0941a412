/* `weft orders logistics`: the consumer-group worker that applies each shipment exactly once.
 *
 * The engine XADDs every paid order to the stream weft:ship (fields order_id, items, at_ms);
 * this worker, one of any number in the group `logistics`, applies the shipments to the database
 * (logistics.h) and acknowledges them.
 *
 * DESIGN
 * One thread, hiredis' blocking API: a worker is a loop of batches, and its speed is the
 * database's group commit, not Redis round trips (each batch costs one XREADGROUP, one commit,
 * one MULTI/XACK/XDEL/EXEC).
 * Exactly once = at-least-once delivery + an idempotent apply. An entry is acknowledged only
 * after the transaction that applied it committed; a crash between the two leaves it pending, it
 * is delivered again and applied again, which changes nothing (the shipments primary key), and
 * then acknowledged. Acknowledged entries are deleted too (one consumer group: nobody else needs
 * them), so the stream does not grow without bound.
 * The order of reads: first this consumer's own pending entries (XREADGROUP ... 0, walking the
 * ids: a restarted worker with the same name finishes its last batch at once), then new ones
 * (>, BLOCK). Every claim interval, XAUTOCLAIM takes entries idle longer than --claim-idle-ms from
 * any consumer (dead ones, and our own refused ones, which is how a refused entry is retried).
 * Poison: an entry the database refuses (unknown order, not paid, no order_id) stays pending and
 * comes back through XAUTOCLAIM; refused on its --max-deliveries-th delivery, or found delivered
 * more often than that (a worker crashed on it), it goes to weft:ship:dead (order_id,
 * deliveries, error, id) in the same MULTI as its XACK. Delivery counts come from XPENDING,
 * i.e. from Redis, so they survive crashes of workers.
 * Failures: a Redis error closes the connection and reconnects with backoff (re-creating the
 * group, MKSTREAM, from id 0, if Redis lost it), then reads its own pending entries again; a
 * database error waits until the database answers before reading again, so an outage does not
 * count as deliveries of good entries.
 * Test hook: with WEFT_ORDERS_LOGISTICS_STOP_BEFORE_ACK=1 in the environment, the worker stops
 * itself (SIGSTOP) after its first committed batch, before acknowledging it, so a test can
 * kill -9 it at exactly that point.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft/hist.h>
#include <weft/sys.h>

#include "orders/logistics.h"
#include "orders/orders.h"

#define CMD "orders logistics"
#define STREAM "weft:ship"
#define DEAD "weft:ship:dead"
#define GROUP "logistics"
#define MAX_BATCH 1024

typedef struct worker {
    const char *redis_url, *db_url, *consumer;
    char host[256];
    int port, dbnum;
    unsigned batch, max_deliveries, claim_idle_ms;
    bool quiet;

    redisContext *rc;
    ship_db_t *db;
    char claim_cursor[48];
    bool stop_before_ack; /* the test hook, armed once */

    uint64_t applied, duplicates, dead, refused, deleted, claimed;
    weft_hist_t lag_ms; /* at_ms (XADD) to applied, wall clock */
} worker_t;

typedef struct entry {
    const char *id;       /* borrowed from the reply */
    const char *order_id; /* NULL: no such field (or the entry was deleted) */
    long long at_ms;
    long long deliveries;
    bool deleted;
} entry_t;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps up to ms, waking early when a signal asks to stop. */
static void nap(uint64_t ms)
{
    while (ms > 0 && !stopping) {
        uint64_t step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* "redis://HOST:PORT[/DB]" or "HOST:PORT". Returns 0 or -EINVAL. */
static int parse_redis_url(worker_t *w, const char *url)
{
    const char *p = strncmp(url, "redis://", 8) == 0 ? url + 8 : url;
    const char *at = strchr(p, '@');
    if (at) p = at + 1; /* no AUTH support: loopback servers of our own */
    const char *colon = strrchr(p, ':');
    const char *slash = strchr(p, '/');
    size_t hl = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof w->host) return -EINVAL;
    memcpy(w->host, p, hl);
    w->host[hl] = '\0';
    w->port = 6379;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || v <= 0 || v > 65535 || (*end && *end != '/')) return -EINVAL;
        w->port = (int)v;
        slash = *end == '/' ? end : NULL;
    }
    w->dbnum = slash && slash[1] ? atoi(slash + 1) : 0;
    return 0;
}

/* One log line on stderr, unless --quiet. */
__attribute__((format(printf, 2, 3))) static void say(const worker_t *w, const char *fmt, ...)
{
    if (w->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "weft " CMD ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- Redis ---- */

static void redis_close(worker_t *w)
{
    if (w->rc) redisFree(w->rc);
    w->rc = NULL;
}

/* Connects and makes sure the group exists. Returns 0 or -EIO (logged). */
static int redis_open(worker_t *w)
{
    struct timeval tv = {2, 0};
    w->rc = redisConnectWithTimeout(w->host, w->port, tv);
    if (!w->rc || w->rc->err) {
        say(w, "redis %s: %s", w->redis_url, w->rc ? w->rc->errstr : "out of memory");
        redis_close(w);
        return -EIO;
    }
    struct timeval rw = {10, 0}; /* longer than any BLOCK below */
    redisSetTimeout(w->rc, rw);
    redisReply *r;
    if (w->dbnum) {
        r = redisCommand(w->rc, "SELECT %d", w->dbnum);
        freeReplyObject(r);
    }
    /* From 0: entries added before the group existed are shipments too. */
    r = redisCommand(w->rc, "XGROUP CREATE " STREAM " " GROUP " 0 MKSTREAM");
    bool ok = r && (r->type == REDIS_REPLY_STATUS ||
                    (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0));
    if (!ok) say(w, "redis %s: XGROUP CREATE: %s", w->redis_url, r ? r->str : w->rc->errstr);
    freeReplyObject(r);
    if (!ok) {
        redis_close(w);
        return -EIO;
    }
    return 0;
}

/* Reads entries from an XRANGE-shaped array ([id, [field, value, ...] | nil] ...). */
static size_t parse_entries(const redisReply *arr, entry_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; arr && arr->type == REDIS_REPLY_ARRAY && i < arr->elements && n < max; i++) {
        const redisReply *e = arr->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        entry_t *x = &out[n++];
        *x = (entry_t){.id = e->element[0]->str, .deliveries = 1};
        const redisReply *f = e->element[1];
        if (f->type != REDIS_REPLY_ARRAY) {
            x->deleted = true; /* a pending entry that was deleted from the stream */
            continue;
        }
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            const redisReply *key = f->element[k], *val = f->element[k + 1];
            if (key->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) continue;
            if (strcmp(key->str, "order_id") == 0 && val->len > 0 && strlen(val->str) == val->len)
                x->order_id = val->str;
            else if (strcmp(key->str, "at_ms") == 0)
                x->at_ms = atoll(val->str);
        }
    }
    return n;
}

/* Fills the delivery counts of entries [0, n) (sorted by id) from XPENDING. */
static int fetch_deliveries(worker_t *w, entry_t *e, size_t n)
{
    if (n == 0) return 0;
    redisReply *r = redisCommand(w->rc, "XPENDING " STREAM " " GROUP " %s %s %u %s", e[0].id,
                                 e[n - 1].id, (unsigned)(4 * n + 64), w->consumer);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR) say(w, "redis: XPENDING: %s", r->str);
        freeReplyObject(r);
        return -EIO;
    }
    /* Both lists ascend by id: walk them together. */
    size_t k = 0;
    for (size_t i = 0; i < r->elements && k < n; i++) {
        const redisReply *p = r->element[i];
        if (p->type != REDIS_REPLY_ARRAY || p->elements < 4) continue;
        while (k < n && strcmp(e[k].id, p->element[0]->str) != 0) k++;
        if (k < n) e[k++].deliveries = p->element[3]->integer;
    }
    freeReplyObject(r);
    return 0;
}

/* Acknowledges and deletes `ids`, and dead-letters the entries in `dead` with their errors, in
 * one MULTI. Returns 0 or -EIO. */
static int ack(worker_t *w, const char **ids, size_t nids, entry_t **dead, char (*derr)[96],
               size_t ndead)
{
    if (nids + ndead == 0) return 0;
    redisAppendCommand(w->rc, "MULTI");
    for (size_t i = 0; i < ndead; i++) {
        entry_t *d = dead[i];
        redisAppendCommand(w->rc, "XADD " DEAD " * order_id %s deliveries %lld error %s id %s",
                           d->order_id ? d->order_id : "", d->deliveries, derr[i], d->id);
        redisAppendCommand(w->rc, "XACK " STREAM " " GROUP " %s", d->id);
        redisAppendCommand(w->rc, "XDEL " STREAM " %s", d->id);
    }
    size_t argc = nids + 3;
    const char **argv = malloc(argc * sizeof *argv);
    if (!argv) return -ENOMEM;
    int ncmd = 1 + 3 * (int)ndead;
    if (nids) {
        argv[0] = "XACK";
        argv[1] = STREAM;
        argv[2] = GROUP;
        memcpy(argv + 3, ids, nids * sizeof *ids);
        redisAppendCommandArgv(w->rc, (int)argc, argv, NULL);
        argv[1] = "XDEL";
        argv[2] = STREAM;
        redisAppendCommandArgv(w->rc, (int)argc - 1, argv + 1, NULL);
        ncmd += 2;
    }
    free(argv);
    redisAppendCommand(w->rc, "EXEC");
    int rc = 0;
    for (int i = 0; i <= ncmd; i++) {
        redisReply *r = NULL;
        if (redisGetReply(w->rc, (void **)&r) != REDIS_OK) {
            rc = -EIO;
            break;
        }
        if (i == ncmd && (!r || r->type != REDIS_REPLY_ARRAY)) rc = -EIO; /* EXEC */
        freeReplyObject(r);
    }
    return rc;
}

/* Applies one batch of delivered entries. Returns 0, or -EIO for a Redis error (reconnect) or
 * -EAGAIN for a database error (wait for it). */
static int process(worker_t *w, entry_t *e, size_t n, bool need_counts)
{
    if (n == 0) return 0;
    if (need_counts && fetch_deliveries(w, e, n) < 0) return -EIO;
    static const char *ids[MAX_BATCH], *acks[MAX_BATCH];
    static entry_t *todo[MAX_BATCH], *dead[MAX_BATCH];
    static ship_result_t res[MAX_BATCH];
    static char why[MAX_BATCH][64], derr[MAX_BATCH][96];
    size_t nt = 0, na = 0, nd = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].deleted) {
            acks[na++] = e[i].id; /* gone from the stream: nothing to ship */
            w->deleted++;
        } else if (e[i].deliveries > (long long)w->max_deliveries) {
            snprintf(derr[nd], sizeof derr[nd], "delivered %lld times without an acknowledgement",
                     e[i].deliveries);
            dead[nd++] = &e[i];
        } else if (!e[i].order_id) {
            if (e[i].deliveries >= (long long)w->max_deliveries) {
                snprintf(derr[nd], sizeof derr[nd], "no order_id field");
                dead[nd++] = &e[i];
            } else {
                w->refused++;
            }
        } else {
            todo[nt] = &e[i];
            ids[nt++] = e[i].order_id;
        }
    }
    char err[256];
    int64_t now = wall_ms();
    if (ship_db_apply(w->db, ids, nt, now, res, why, err, sizeof err) < 0) {
        say(w, "database: %s", err);
        return -EAGAIN;
    }
    for (size_t i = 0; i < nt; i++) {
        entry_t *x = todo[i];
        if (res[i] == SHIP_REFUSED) {
            if (x->deliveries >= (long long)w->max_deliveries) {
                snprintf(derr[nd], sizeof derr[nd], "%s", why[i]);
                dead[nd++] = x;
            } else {
                w->refused++;
            }
            continue;
        }
        acks[na++] = x->id;
        if (res[i] == SHIP_APPLIED) {
            w->applied++;
            if (x->at_ms > now - 86400000 && now >= x->at_ms) /* a plausible wall clock */
                weft_hist_record(&w->lag_ms, (uint64_t)(now - x->at_ms));
        } else {
            w->duplicates++;
        }
    }
    if (w->stop_before_ack && nt > 0) {
        w->stop_before_ack = false;
        raise(SIGSTOP); /* the test hook: committed, not acknowledged */
    }
    w->dead += nd;
    return ack(w, acks, na, dead, derr, nd);
}

/* One XREADGROUP from `id` (">" or the last own pending id seen). Returns the number of
 * entries read (0: none), or -EIO / -EAGAIN as process(). */
static int read_batch(worker_t *w, const char *id, unsigned block_ms, char *last, size_t lastsz)
{
    redisReply *r;
    if (strcmp(id, ">") == 0)
        r = redisCommand(w->rc,
                         "XREADGROUP GROUP " GROUP " %s COUNT %u BLOCK %u STREAMS " STREAM " >",
                         w->consumer, w->batch, block_ms);
    else
        r = redisCommand(w->rc, "XREADGROUP GROUP " GROUP " %s COUNT %u STREAMS " STREAM " %s",
                         w->consumer, w->batch, id);
    if (!r || (r->type != REDIS_REPLY_ARRAY && r->type != REDIS_REPLY_NIL)) {
        if (r && r->type == REDIS_REPLY_ERROR) say(w, "redis: XREADGROUP: %s", r->str);
        freeReplyObject(r);
        return -EIO;
    }
    static entry_t e[MAX_BATCH];
    size_t n = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->elements >= 2)
        n = parse_entries(r->element[0]->element[1], e, MAX_BATCH);
    if (n && last) snprintf(last, lastsz, "%s", e[n - 1].id);
    int rc = process(w, e, n, strcmp(id, ">") != 0);
    freeReplyObject(r);
    return rc < 0 ? rc : (int)n;
}

/* One XAUTOCLAIM step. Returns the number of entries claimed, or -EIO / -EAGAIN. */
static int claim(worker_t *w)
{
    redisReply *r = redisCommand(w->rc, "XAUTOCLAIM " STREAM " " GROUP " %s %u %s COUNT %u",
                                 w->consumer, w->claim_idle_ms, w->claim_cursor, w->batch);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        if (r && r->type == REDIS_REPLY_ERROR) say(w, "redis: XAUTOCLAIM: %s", r->str);
        freeReplyObject(r);
        return -EIO;
    }
    snprintf(w->claim_cursor, sizeof w->claim_cursor, "%s",
             r->element[0]->type == REDIS_REPLY_STRING ? r->element[0]->str : "0-0");
    static entry_t e[MAX_BATCH];
    size_t n = parse_entries(r->element[1], e, MAX_BATCH);
    w->claimed += n;
    int rc = process(w, e, n, true);
    freeReplyObject(r);
    return rc < 0 ? rc : (int)n;
}

/* The worker's loop until SIGINT/SIGTERM. */
static void run(worker_t *w)
{
    int failures = 0;
    uint64_t rng = weft_now_ns();
    char cursor[48] = "0"; /* own pending entries first; ">" once they are done */
    uint64_t claim_every = w->claim_idle_ms / 2 < 50 ? 50 : w->claim_idle_ms / 2;
    if (claim_every > 1000) claim_every = 1000;
    uint64_t next_claim = 0;
    while (!stopping) {
        if (!w->rc && redis_open(w) < 0) {
            nap(weft_backoff(50, 2000, ++failures, &rng));
            continue;
        }
        int rc;
        uint64_t now = weft_now_ns() / 1000000;
        if (now >= next_claim) {
            next_claim = now + claim_every;
            rc = claim(w);
            if (rc > 0) next_claim = now; /* more may be waiting */
        } else {
            bool own = strcmp(cursor, ">") != 0;
            unsigned block = (unsigned)(next_claim - now);
            rc = read_batch(w, cursor, block ? block : 1, own ? cursor : NULL, sizeof cursor);
            if (own && rc == 0) snprintf(cursor, sizeof cursor, ">");
        }
        if (rc == -EIO) {
            redis_close(w);
            snprintf(cursor, sizeof cursor, "0");
            say(w, "redis %s: connection lost; reconnecting", w->redis_url);
            nap(weft_backoff(50, 2000, ++failures, &rng));
        } else if (rc == -EAGAIN) {
            snprintf(cursor, sizeof cursor, "0"); /* what we read is still ours and pending */
            while (!stopping && ship_db_ping(w->db) < 0)
                nap(weft_backoff(50, 2000, ++failures, &rng));
        } else {
            failures = 0;
        }
    }
}

static void usage(FILE *f)
{
    fprintf(
        f, "usage: weft orders logistics --redis URL [OPTIONS]\n\n"
           "The logistics worker: consumes the stream weft:ship in the consumer group\n"
           "'logistics' and applies each shipment to the database exactly once (the order\n"
           "becomes 'shipped'). Entries of dead consumers are claimed after --claim-idle-ms;\n"
           "an entry refused --max-deliveries times goes to the stream weft:ship:dead.\n\n"
           "Options:\n"
           "  --redis URL          redis://HOST:PORT[/DB] (required)\n"
           "  --db URL             sqlite:PATH (default sqlite:weft-orders.db) or\n"
           "                       postgresql://USER@HOST:PORT/DB\n"
           "  --consumer NAME      consumer name (default logistics@HOSTNAME); a restarted\n"
           "                       worker with the same name finishes its pending entries first\n"
           "  --batch N            entries per read and per transaction at most (default 128;\n"
           "                       512 applies ~1.7x more per second on PostgreSQL under backlog)\n"
           "  --max-deliveries N   dead-letter after N deliveries (default 5)\n"
           "  --claim-idle-ms MS   claim entries pending longer than this (default 5000)\n"
           "  --quiet              no log lines, only the summary\n\n"
           "SIGINT or SIGTERM stops it after the current batch and prints a summary on stdout.\n"
           "Exit codes: 0 stopped by a signal, 2 usage error or unusable database, 3 internal "
           "error.\n");
}

static int cmd_logistics(int argc, char **argv)
{
    worker_t w = {.db_url = "sqlite:weft-orders.db",
                  .batch = 128,
                  .max_deliveries = 5,
                  .claim_idle_ms = 5000};
    char consumer[300];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        long v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return WEFT_EXIT_OK;
        } else if (strcmp(a, "--redis") == 0 && has) {
            w.redis_url = argv[++i];
        } else if (strcmp(a, "--db") == 0 && has) {
            w.db_url = argv[++i];
        } else if (strcmp(a, "--consumer") == 0 && has) {
            w.consumer = argv[++i];
            if (!*w.consumer || strchr(w.consumer, ' '))
                return weft_cli_usage_error(CMD, "--consumer: a name without spaces");
        } else if (strcmp(a, "--batch") == 0 && has) {
            if (weft_cli_parse_int(argv[++i], 1, MAX_BATCH, &v) < 0)
                return weft_cli_usage_error(CMD, "--batch: '%s' is not in 1..%d", argv[i],
                                            MAX_BATCH);
            w.batch = (unsigned)v;
        } else if (strcmp(a, "--max-deliveries") == 0 && has) {
            if (weft_cli_parse_int(argv[++i], 1, 1000, &v) < 0)
                return weft_cli_usage_error(CMD, "--max-deliveries: '%s' is not in 1..1000",
                                            argv[i]);
            w.max_deliveries = (unsigned)v;
        } else if (strcmp(a, "--claim-idle-ms") == 0 && has) {
            if (weft_cli_parse_int(argv[++i], 1, 3600000, &v) < 0)
                return weft_cli_usage_error(CMD, "--claim-idle-ms: '%s' is not in 1..3600000",
                                            argv[i]);
            w.claim_idle_ms = (unsigned)v;
        } else if (strcmp(a, "--quiet") == 0) {
            w.quiet = true;
        } else {
            return weft_cli_usage_error(CMD, "unknown option '%s'%s", a,
                                        has ? "" : " (or missing value)");
        }
    }
    if (!w.redis_url)
        return weft_cli_usage_error(CMD, "--redis URL is required (without Redis, "
                                         "'weft orders serve' ships in-process)");
    if (parse_redis_url(&w, w.redis_url) < 0)
        return weft_cli_usage_error(CMD, "--redis: '%s' is not redis://HOST:PORT[/DB]",
                                    w.redis_url);
    if (!w.consumer) {
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(consumer, sizeof consumer, "logistics@%s", host);
        w.consumer = consumer;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    stopping = 0;
    /* The worker may start before the engine created the tables: wait for them, saying so once. */
    char err[512];
    int rc;
    bool said = false;
    while ((rc = ship_db_open(w.db_url, &w.db, err, sizeof err)) == -ENOENT && !stopping) {
        if (!said) say(&w, "%s; waiting for the schema (weft orders serve creates it)", err);
        said = true;
        nap(200);
    }
    if (rc == -ENOENT) return WEFT_EXIT_OK; /* stopped while waiting */
    if (rc < 0)
        return weft_cli_error(CMD, rc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_USAGE, "%s", err);
    const char *hook = getenv("WEFT_ORDERS_LOGISTICS_STOP_BEFORE_ACK");
    w.stop_before_ack = hook && *hook == '1';
    snprintf(w.claim_cursor, sizeof w.claim_cursor, "0-0");
    weft_hist_init(&w.lag_ms);

    if (!w.quiet)
        fprintf(stderr,
                "weft " CMD ": consumer %s of group " GROUP " on %s " STREAM ", database %s\n",
                w.consumer, w.redis_url, w.db_url);
    run(&w);
    redis_close(&w);
    ship_db_close(w.db);
    printf("weft " CMD ": applied %llu, duplicates %llu, dead-lettered %llu, refused %llu, "
           "claimed %llu; lag p50 %llu ms, p99 %llu ms\n",
           (unsigned long long)w.applied, (unsigned long long)w.duplicates,
           (unsigned long long)w.dead, (unsigned long long)w.refused, (unsigned long long)w.claimed,
           (unsigned long long)weft_hist_quantile(&w.lag_ms, 0.5),
           (unsigned long long)weft_hist_quantile(&w.lag_ms, 0.99));
    return WEFT_EXIT_OK;
}

WEFT_ORDERS_COMMAND("logistics", cmd_logistics,
                    "the consumer-group worker that applies each shipment exactly once")
