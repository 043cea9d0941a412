/* Redis stock and logistics hand-off of the order engine (stock.h), on hiredis' libuv adapter.
 *
 * DESIGN
 * One connection, used only on the loop thread; hiredis pipelines every command written before
 * the socket is flushed, so all orders in flight share round trips. Replies come back in order.
 * Strategies:
 *   lua:  one script per order checks every item, decrements all or none and records the
 *         decision under weft:ord:{id} (tagged with the reconcile epoch), so running it again for
 *         the same order returns the same decision instead of decrementing twice.
 *   lock: per SKU (in SKU order, so two multi-SKU orders cannot deadlock) SET weft:lock:{sku}
 *         TOKEN NX PX lease; then one script INCRs weft:fence:{sku} (the fencing token) and reads
 *         the stock. The durable write applies only if each token is above the SKU's stored fence
 *         (store.h), so a holder paused past its lease, whose lock another took, cannot write.
 *         After the write, its levels are mirrored (below) and a compare-and-delete script
 *         releases each lock. Redis only mirrors here: it never decrements by itself.
 * The versioned mirror (lock mode, and every release): each write of a stock row increments its
 * `ver` and returns the SKU's new (available, ver), its level (store.h). Redis keeps beside
 * weft:stock:{sku} the version of that figure, weft:stockver:{sku}, and one script sets both
 * only if the level is at least as new (LUA_SET_NEWER). Mirrors are absolute, so arriving late,
 * twice or out of order changes nothing: Redis holds the database's level at the highest version
 * it has seen. A relative DECRBY/INCRBY was not: engine A frozen between its commit and its
 * mirror while engine B reconciled (its snapshot already counting A's write) counted the write
 * twice (fencing.sh: "sku-3: database 930, redis 929"); each engine waits for its own holds
 * before it reconciles, never for another engine's.
 * Reconcile (Redis is never the record): at connect, after a reconnect (a restarted Redis is
 * empty, with no stockver: every level applies), after PUT /stock and when the database refused
 * a Redis decision. New reservations get STOCK_RETRY while `state` is not READY; once nothing is
 * in flight (`inflight` counts holds between decision and done/abort, and releases between begin
 * and end) the rows are read (SELECT sku, available, fence, ver) and applied as levels, so a
 * snapshot older than a mirror that reached Redis first is refused; fences SET NX (never
 * lowered); and a new epoch is published in weft:stock:ready, which invalidates every earlier
 * weft:ord decision: an order still 'accepted' in the database decides again against the
 * reconciled stock. (Lock mode would no longer need the wait for its own holds; lua mode does.)
 * Releases (payment failed) are mirrored once per order (SET NX weft:rel:{id}) and only after
 * their commit: lock mode with the levels, as above; lua mode, where Redis runs ahead of the
 * database by the decisions not yet committed (an absolute figure would erase them), by INCRBY,
 * skipped when a snapshot at least as new as the release's write was applied (it counts the
 * units already). Left in lua mode: a snapshot read before a release's commit and applied after
 * its INCRBY loses those units in Redis (they are short there, never oversold) until the next
 * reconcile, as another engine's snapshot can erase a decision still in flight (the lua design:
 * a database refusal triggers a reconcile).
 */
#include <errno.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <weft/sys.h>

#include "orders/stock.h"

#define LOCK_LEASE_MS "5000"

enum { ST_DOWN, ST_WAIT, ST_RECONCILING, ST_READY };

struct stock_redis {
    weft_loop_t *loop;
    char host[256];
    int port;
    engine_stock_mode_t mode;
    store_t *store;
    redisAsyncContext *ac; /* NULL while disconnected */
    bool connecting;       /* ac is not connected yet */
    bool republish;        /* (re)connected: the stream may have been lost with Redis */
    bool again;            /* asked to reconcile while one ran: its snapshot may be stale */
    int state;
    size_t inflight;
    atomic_bool healthy;
    bool destroying;
    weft_loop_timer_t *retry;
    weft_loop_timer_t *beat; /* every second: a PING, and the deadline of the previous one */
    bool ping_out;           /* a heartbeat PING awaits its answer */
    uint64_t ping_sent;      /* when (weft_now_ns) */
    uint64_t rng;
};

static const char LUA_RESERVE[] =
    "local epoch = redis.call('GET', KEYS[1]) "
    "if not epoch then return 'notready' end "
    "local m = redis.call('GET', KEYS[2]) "
    "if m then local e, d = string.match(m, '^(%d+):(.*)$') if e == epoch then return d end end "
    "for i = 3, #KEYS do "
    "  local a = redis.call('GET', KEYS[i]) "
    "  local d = nil "
    "  if not a then d = 'unknown:' .. (i - 2) "
    "  elseif tonumber(a) < tonumber(ARGV[i - 2]) then d = 'short:' .. (i - 2) .. ':' .. a end "
    "  if d then redis.call('SET', KEYS[2], epoch .. ':' .. d, 'EX', 86400) return d end "
    "end "
    "for i = 3, #KEYS do redis.call('DECRBY', KEYS[i], ARGV[i - 2]) end "
    "redis.call('SET', KEYS[2], epoch .. ':reserved', 'EX', 86400) "
    "return 'reserved'";

/* KEYS: ready, fence keys (n), stock keys (n). Returns 'notready' or {fences..., stocks...}
 * with -1 for a missing stock key. */
static const char LUA_FENCE[] = "if not redis.call('GET', KEYS[1]) then return 'notready' end "
                                "local n = (#KEYS - 1) / 2 local r = {} "
                                "for i = 1, n do r[i] = redis.call('INCR', KEYS[1 + i]) end "
                                "for i = 1, n do r[n + i] = tonumber(redis.call('GET', "
                                "KEYS[1 + n + i]) or '-1') end "
                                "return r";

static const char LUA_UNLOCK[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                 "return redis.call('DEL', KEYS[1]) end return 0";

/* KEYS: weft:rel:{id}, stock keys; ARGV: qty. Once per order. The lua strategy giving back a
 * decision the database refused (nothing was written, so there is no version to compare). */
static const char LUA_RELEASE[] =
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then return 0 end "
    "for i = 2, #KEYS do redis.call('INCRBY', KEYS[i], ARGV[i - 1]) end return 1";

/* The versioned mirror. KEYS from index FROM on: pairs weft:stock:{sku}, weft:stockver:{sku};
 * ARGV aligned with KEYS: available, ver. A level is set only if it is at least as new as the
 * one Redis holds (no stockver: a restarted Redis, anything goes), so a late mirror never
 * regresses a newer snapshot and a snapshot never erases a newer mirror. Equal versions are the
 * same database level: setting it again changes nothing (lua: it repairs drift). */
#define LUA_SET_NEWER(FROM)                                                                        \
    "for i = " FROM ", #KEYS, 2 do "                                                               \
    "  if tonumber(ARGV[i + 1]) >= tonumber(redis.call('GET', KEYS[i + 1]) or '-1') then "         \
    "    redis.call('SET', KEYS[i], ARGV[i]) redis.call('SET', KEYS[i + 1], ARGV[i + 1]) end "     \
    "end "

/* Reconcile rows and lock-mode reservations. */
static const char LUA_MIRROR[] = LUA_SET_NEWER("1") "return 1";

/* A committed release (payment failed), once per order (weft:rel:{id}, KEYS[1]; ARGV[1] unused).
 * Lock: the levels, as LUA_MIRROR. Lua: Redis runs ahead of the database by the decisions not yet
 * committed, so the units are added (ARGV: qty, ver) unless a snapshot at least as new as the
 * release's write was applied since (it counts them already). */
static const char LUA_RELEASE_LOCK[] =
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then return 0 end " LUA_SET_NEWER(
        "2") "return 1";
static const char LUA_RELEASE_LUA[] =
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then return 0 end "
    "for i = 2, #KEYS, 2 do "
    "  if tonumber(ARGV[i + 1]) > tonumber(redis.call('GET', KEYS[i + 1]) or '-1') then "
    "    redis.call('INCRBY', KEYS[i], ARGV[i]) end "
    "end return 1";

static void connect_now(stock_redis_t *s);
static void try_reconcile(stock_redis_t *s);

/* Sends a command of argc words; cb may be NULL. Returns 0 or -EIO (not connected). */
static int cmd(stock_redis_t *s, redisCallbackFn *cb, void *priv, int argc, const char **argv)
{
    if (!s->ac) return -EIO;
    return redisAsyncCommandArgv(s->ac, cb, priv, argc, argv, NULL) == REDIS_OK ? 0 : -EIO;
}

/* ---- connection ---- */

static void on_retry_timer(weft_loop_timer_t *t, void *arg)
{
    stock_redis_t *s = arg;
    if (s->ac && s->connecting) {
        /* No answer to the connect: a refused connection shows as POLLERR, which libuv reports
         * as an error status that hiredis' libuv adapter drops. Give up on it and retry. */
        redisAsyncFree(s->ac);
        s->ac = NULL;
    }
    if (!s->ac && !s->destroying) connect_now(s);
    if (s->state == ST_WAIT) try_reconcile(s);
}

static void schedule(stock_redis_t *s, uint64_t ms)
{

    if (s->retry && !s->destroying) weft_loop_timer_start(s->retry, ms, 0);
}

static void on_group(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    (void)r;
    (void)priv; /* BUSYGROUP (it exists) is fine */
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    stock_redis_t *s = ac->data;
    s->connecting = false;
    if (status != REDIS_OK) {
        s->ac = NULL; /* hiredis frees it */
        schedule(s, 300);
        return;
    }
    const char *g[] = {"XGROUP", "CREATE", "weft:ship", "logistics", "0", "MKSTREAM"};
    cmd(s, on_group, NULL, 6, g);
    s->republish = true;
    s->state = ST_WAIT;
    try_reconcile(s);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    stock_redis_t *s = ac->data;
    s->ac = NULL;
    s->state = ST_DOWN;
    atomic_store_explicit(&s->healthy, false, memory_order_relaxed);
    if (!s->destroying) {
        fprintf(stderr, "weft orders: redis connection lost; reconnecting\n");
        schedule(s, 300);
    }
}

static void connect_now(stock_redis_t *s)
{
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (!ac) {
        schedule(s, 500);
        return;
    }
    if (ac->err) {
        redisAsyncFree(ac);
        schedule(s, 500);
        return;
    }
    ac->data = s;
    /* Fails while libuv still tracks the previous connection's descriptor (hiredis closes the
     * socket before libuv has closed its poll handle, and the new socket gets the same number):
     * try again once that handle is gone. */
    if (redisLibuvAttach(ac, weft_loop_uv(s->loop)) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule(s, 100);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    s->connecting = true;
    s->ping_out = false;
    schedule(s, 1000); /* the connect's deadline (see on_retry_timer) */
    /* hiredis 0.14 watches the socket only once a command is queued: without one, a refused
     * connection would never be noticed (nor a successful one reported). */
    const char *ping[] = {"PING"};
    cmd(s, NULL, NULL, 1, ping);
}

/* The heartbeat. hiredis' libuv adapter drops a poll error (a Redis killed while our commands
 * were unread gives EPOLLERR, not EOF): the context then never learns that its connection died,
 * no callback runs again, and a reconcile in flight never ends (chaos: Redis killed -9 just after
 * an engine restart left the engine unreconciled, paid orders unshipped). A PING unanswered for
 * BEAT_DEADLINE_NS declares the connection dead: free it (pending callbacks run with NULL) and
 * reconnect. */
#define BEAT_DEADLINE_NS 5000000000ull

static void on_pong(redisAsyncContext *ac, void *r, void *priv)
{
    (void)r;
    (void)priv;
    stock_redis_t *s = ac->data;
    s->ping_out = false;
}

static void on_beat(weft_loop_timer_t *t, void *arg)
{
    (void)t;
    stock_redis_t *s = arg;
    if (!s->ac || s->connecting || s->destroying) return;
    uint64_t now = weft_now_ns();
    if (s->ping_out && now - s->ping_sent > BEAT_DEADLINE_NS) {
        fprintf(stderr, "weft orders: redis did not answer a PING for 5 s; reconnecting\n");
        redisAsyncContext *ac = s->ac;
        redisAsyncFree(ac); /* runs on_pong and the other callbacks with NULL; maybe
                               on_disconnect */
        s->ac = NULL;
        s->ping_out = false;
        s->state = ST_DOWN;
        atomic_store_explicit(&s->healthy, false, memory_order_relaxed);
        schedule(s, 100);
        return;
    }
    if (!s->ping_out) {
        const char *ping[] = {"PING"};
        if (cmd(s, on_pong, NULL, 1, ping) == 0) {
            s->ping_out = true;
            s->ping_sent = now;
        }
    }
}

int stock_redis_create(weft_loop_t *loop, const char *url, engine_stock_mode_t mode, store_t *store,
                       stock_redis_t **out, char *err, size_t errsz)
{
    *out = NULL;
    const char *hp = strncmp(url, "redis://", 8) == 0 ? url + 8 : NULL;
    const char *colon = hp ? strrchr(hp, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!hp || !colon || colon == hp || (size_t)(colon - hp) >= 256 || port <= 0 || port > 65535 ||
        (*end && *end != '/')) {
        snprintf(err, errsz, "bad Redis URL '%s' (redis://HOST:PORT)", url);
        return -EINVAL;
    }
    stock_redis_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    snprintf(s->host, sizeof s->host, "%.*s", (int)(colon - hp), hp);
    s->port = (int)port;
    s->loop = loop;
    s->mode = mode;
    s->store = store;
    if (getrandom(&s->rng, sizeof s->rng, 0) != sizeof s->rng) s->rng = weft_now_ns();
    s->rng |= 1;
    if (weft_loop_timer_create(loop, on_retry_timer, s, &s->retry) < 0) {
        free(s);
        return -ENOMEM;
    }
    if (weft_loop_timer_create(loop, on_beat, s, &s->beat) < 0) {
        weft_loop_timer_destroy(s->retry);
        free(s);
        return -ENOMEM;
    }
    weft_loop_timer_start(s->beat, 1000, 1000);
    connect_now(s);
    *out = s;
    return 0;
}

void stock_redis_destroy(stock_redis_t *s)
{
    if (!s) return;
    s->destroying = true;
    weft_loop_timer_destroy(s->retry);
    s->retry = NULL;
    weft_loop_timer_destroy(s->beat);
    s->beat = NULL;
    /* Pending callbacks run now with a NULL reply (hiredis), which finishes their holds. */
    if (s->ac) redisAsyncFree(s->ac);
    s->ac = NULL;
    free(s);
}

bool stock_redis_healthy(stock_redis_t *s)
{
    /* Relaxed: a health probe; a stale answer by one reply is fine. */
    return atomic_load_explicit(&s->healthy, memory_order_relaxed);
}

/* ---- reconcile ---- */

typedef struct snap {
    stock_redis_t *s;
    int n;
} snap_t;

static int snap_row(void *arg, int ncols, char **c)
{
    snap_t *p = arg;
    char key[300], vkey[300], fkey[300];
    snprintf(key, sizeof key, "weft:stock:%s", c[0]);
    snprintf(vkey, sizeof vkey, "weft:stockver:%s", c[0]);
    snprintf(fkey, sizeof fkey, "weft:fence:%s", c[0]);
    const char *set[] = {"EVAL", LUA_MIRROR, "2", key, vkey, c[1], c[3] ? c[3] : "0"};
    const char *fence[] = {"SET", fkey, c[2] ? c[2] : "0", "NX"};
    cmd(p->s, NULL, NULL, 7, set);
    cmd(p->s, NULL, NULL, 4, fence);
    p->n++;
    return 0;
}

static int republish_row(void *arg, int ncols, char **c)
{
    snap_t *p = arg;
    char ms[24];
    snprintf(ms, sizeof ms, "%" PRIu64, order_wall_ms());
    const char *argv[] = {"XADD",  "weft:ship",        "*",     "order_id", c[0],
                          "items", c[1] ? c[1] : "[]", "at_ms", ms};
    cmd(p->s, NULL, NULL, 9, argv);
    return 0;
}

static void on_ready(redisAsyncContext *ac, void *reply, void *priv)
{
    stock_redis_t *s = ac->data;
    redisReply *r = reply;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        s->state = ST_WAIT;
        schedule(s, 200);
        return;
    }
    if (s->again) { /* the snapshot predates a change (PUT /stock): take another */
        s->again = false;
        s->state = ST_WAIT;
        try_reconcile(s);
        return;
    }
    s->state = ST_READY;
    atomic_store_explicit(&s->healthy, true, memory_order_relaxed);
}

static void try_reconcile(stock_redis_t *s)
{
    if (s->state != ST_WAIT || s->inflight || !s->ac) return;
    s->state = ST_RECONCILING;
    s->again = false; /* this snapshot sees every change made so far */
    atomic_store_explicit(&s->healthy, false, memory_order_relaxed);
    const char *del[] = {"DEL", "weft:stock:ready"};
    cmd(s, NULL, NULL, 2, del);
    snap_t p = {s, 0};
    char err[256];
    /* A short blocking read of the database on the loop: reconciles are rare. */
    if (store_query(s->store, "SELECT sku, available, fence, ver FROM stock", snap_row, &p, err,
                    sizeof err) < 0) {
        fprintf(stderr, "weft orders: redis reconcile: %s\n", err);
        s->state = ST_WAIT;
        schedule(s, 500);
        return;
    }
    /* A restarted Redis lost weft:ship too: hand every paid order to logistics again (the
     * worker applies each order once, so a duplicate entry is harmless). */
    if (s->republish) {
        s->republish = false;
        if (store_query(s->store, "SELECT id, items, 0 FROM orders WHERE status = 'paid'",
                        republish_row, &p, err, sizeof err) < 0)
            fprintf(stderr, "weft orders: redis reconcile: %s\n", err);
    }
    /* The epoch: a new value invalidates every earlier weft:ord decision. */
    const char *lua = "local e = redis.call('INCR', 'weft:epoch') "
                      "redis.call('SET', 'weft:stock:ready', e) return e";
    const char *ev[] = {"EVAL", lua, "0"};
    if (cmd(s, on_ready, NULL, 3, ev) < 0) s->state = ST_WAIT;
}

void stock_redis_reconcile(stock_redis_t *s)
{
    if (s->state == ST_RECONCILING) s->again = true;
    if (s->state == ST_READY) s->state = ST_WAIT;
    atomic_store_explicit(&s->healthy, false, memory_order_relaxed);
    try_reconcile(s);
}

static void hold_end(stock_redis_t *s)
{
    s->inflight--;
    if (s->state == ST_WAIT && !s->inflight) try_reconcile(s);
}

/* ---- reservations ---- */

typedef struct call {
    stock_redis_t *s;
    stock_hold_t *h;
    stock_cb cb;
    void *arg;
    size_t *order; /* lock mode: item indexes sorted by SKU */
} call_t;

static void finish(call_t *c, stock_result_t r, const char *reason, bool counted)
{
    stock_redis_t *s = c->s;
    stock_cb cb = c->cb;
    void *arg = c->arg;
    if (r != STOCK_RESERVED) {
        free(c->h->fences);
        c->h->fences = NULL;
        if (counted) hold_end(s);
    }
    free(c->order);
    free(c);
    cb(arg, r, reason);
}

static void reason_of(stock_hold_t *h, const char *d, char *out, size_t n)
{
    /* "unknown:I" or "short:I:AVAIL" (1-based item index) */
    long i = strtol(strchr(d, ':') + 1, NULL, 10);
    const char *sku = i >= 1 && (size_t)i <= h->nitems ? h->items[i - 1].sku : "?";
    if (strncmp(d, "unknown", 7) == 0)
        snprintf(out, n, "unknown sku: %.128s", sku);
    else
        snprintf(out, n, "out of stock: %.128s (%s available)", sku, strrchr(d, ':') + 1);
}

static void on_lua(redisAsyncContext *ac, void *reply, void *priv)
{
    call_t *c = priv;
    redisReply *r = reply;
    char reason[200];
    if (!r || (r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_STRING)) {
        finish(c, STOCK_RETRY, "redis unavailable", true);
        return;
    }
    if (strcmp(r->str, "reserved") == 0) {
        finish(c, STOCK_RESERVED, NULL, true);
    } else if (strcmp(r->str, "notready") == 0) {
        stock_redis_reconcile(c->s);
        finish(c, STOCK_RETRY, "redis not reconciled", true);
    } else {
        reason_of(c->h, r->str, reason, sizeof reason);
        finish(c, STOCK_REJECTED, reason, true);
    }
}

static int send_lua_reserve(call_t *c)
{
    stock_hold_t *h = c->h;
    size_t n = h->nitems;
    const char **argv = calloc(3 + 2 + 2 * n, sizeof *argv);
    char **own = calloc(1 + 2 * n, sizeof *own);
    char nkeys[16];
    int rc = argv && own ? 0 : -ENOMEM;
    if (!rc) {
        snprintf(nkeys, sizeof nkeys, "%zu", n + 2);
        argv[0] = "EVAL";
        argv[1] = LUA_RESERVE;
        argv[2] = nkeys;
        argv[3] = "weft:stock:ready";
        own[0] = malloc(ORDER_ID_LEN + 16);
        if (own[0]) snprintf(own[0], ORDER_ID_LEN + 16, "weft:ord:%s", h->order_id);
        argv[4] = own[0];
        for (size_t i = 0; i < n; i++) {
            own[1 + i] = malloc(strlen(h->items[i].sku) + 16);
            own[1 + n + i] = malloc(24);
            if (!own[1 + i] || !own[1 + n + i]) continue;
            sprintf(own[1 + i], "weft:stock:%s", h->items[i].sku);
            sprintf(own[1 + n + i], "%" PRId64, h->items[i].qty);
            argv[5 + i] = own[1 + i];
            argv[5 + n + i] = own[1 + n + i];
        }
        for (size_t i = 0; i < 3 + 2 + 2 * n; i++)
            if (!argv[i]) rc = -ENOMEM;
    }
    if (!rc) rc = cmd(c->s, on_lua, c, (int)(5 + 2 * n), argv);
    for (size_t i = 0; own && i < 1 + 2 * n; i++) free(own[i]);
    free(own);
    free(argv);
    return rc;
}

/* lock mode */

static void unlock_all(stock_redis_t *s, stock_hold_t *h, const size_t *order, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        char key[300];
        snprintf(key, sizeof key, "weft:lock:%s", h->items[order[k]].sku);
        const char *argv[] = {"EVAL", LUA_UNLOCK, "1", key, h->token};
        cmd(s, NULL, NULL, 5, argv);
    }
}

static void lock_next(call_t *c);

static void on_fence(redisAsyncContext *ac, void *reply, void *priv)
{
    call_t *c = priv;
    stock_hold_t *h = c->h;
    redisReply *r = reply;
    size_t n = h->nitems;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 * n) {
        bool notready = r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "notready") == 0;
        unlock_all(c->s, h, c->order, h->nlocked);
        if (notready) stock_redis_reconcile(c->s);
        finish(c, STOCK_RETRY, "redis unavailable", true);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        h->fences[i] = r->element[i]->integer;
        long long avail = r->element[n + i]->integer;
        if (avail < h->items[i].qty) {
            char reason[200];
            if (avail < 0)
                snprintf(reason, sizeof reason, "unknown sku: %.128s", h->items[i].sku);
            else
                snprintf(reason, sizeof reason, "out of stock: %.128s (%lld available)",
                         h->items[i].sku, avail);
            unlock_all(c->s, h, c->order, h->nlocked);
            finish(c, STOCK_REJECTED, reason, true);
            return;
        }
    }
    finish(c, STOCK_RESERVED, NULL, true); /* locks held until done/abort */
}

static void on_lock(redisAsyncContext *ac, void *reply, void *priv)
{
    call_t *c = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_STATUS) { /* nil: busy; NULL: disconnected */
        unlock_all(c->s, c->h, c->order, c->h->nlocked);
        finish(c, STOCK_RETRY, r ? "lock busy" : "redis unavailable", true);
        return;
    }
    c->h->nlocked++;
    lock_next(c);
}

static void lock_next(call_t *c)
{
    stock_hold_t *h = c->h;
    size_t n = h->nitems;
    if (h->nlocked < n) {
        char key[300];
        snprintf(key, sizeof key, "weft:lock:%s", h->items[c->order[h->nlocked]].sku);
        const char *argv[] = {"SET", key, h->token, "NX", "PX", LOCK_LEASE_MS};
        if (cmd(c->s, on_lock, c, 6, argv) < 0) on_lock(c->s->ac, NULL, c);
        return;
    }
    /* All locked: fencing tokens and stock in one script. */
    const char **argv = calloc(4 + 2 * n, sizeof *argv);
    char **own = calloc(2 * n, sizeof *own);
    char nkeys[16];
    bool ok = argv && own;
    if (ok) {
        snprintf(nkeys, sizeof nkeys, "%zu", 1 + 2 * n);
        argv[0] = "EVAL";
        argv[1] = LUA_FENCE;
        argv[2] = nkeys;
        argv[3] = "weft:stock:ready";
        for (size_t i = 0; i < n && ok; i++) {
            own[i] = malloc(strlen(h->items[i].sku) + 16);
            own[n + i] = malloc(strlen(h->items[i].sku) + 16);
            ok = own[i] && own[n + i];
            if (!ok) break;
            sprintf(own[i], "weft:fence:%s", h->items[i].sku);
            sprintf(own[n + i], "weft:stock:%s", h->items[i].sku);
            argv[4 + i] = own[i];
            argv[4 + n + i] = own[n + i];
        }
    }
    int rc = ok ? cmd(c->s, on_fence, c, (int)(4 + 2 * n), argv) : -ENOMEM;
    for (size_t i = 0; own && i < 2 * n; i++) free(own[i]);
    free(own);
    free(argv);
    if (rc < 0) on_fence(c->s->ac, NULL, c);
}

static const order_item_t *sort_items;
static int cmp_idx(const void *a, const void *b)
{
    return strcmp(sort_items[*(const size_t *)a].sku, sort_items[*(const size_t *)b].sku);
}

void stock_redis_reserve(stock_redis_t *s, stock_hold_t *h, stock_cb cb, void *arg)
{
    h->fences = NULL;
    h->nlocked = 0;
    if (s->state != ST_READY || !s->ac) {
        cb(arg, STOCK_RETRY, "redis not ready");
        return;
    }
    call_t *c = calloc(1, sizeof *c);
    if (!c) {
        cb(arg, STOCK_RETRY, "out of memory");
        return;
    }
    c->s = s;
    c->h = h;
    c->cb = cb;
    c->arg = arg;
    s->inflight++;
    if (s->mode == ENGINE_STOCK_LUA) {
        if (send_lua_reserve(c) < 0) finish(c, STOCK_RETRY, "redis unavailable", true);
        return;
    }
    uint64_t t[2] = {weft_rand(&s->rng), weft_rand(&s->rng)};
    snprintf(h->token, sizeof h->token, "%016" PRIx64 "%016" PRIx64, t[0], t[1]);
    h->fences = calloc(h->nitems, sizeof *h->fences);
    c->order = malloc(h->nitems * sizeof *c->order);
    if (!h->fences || !c->order) {
        finish(c, STOCK_RETRY, "out of memory", true);
        return;
    }
    for (size_t i = 0; i < h->nitems; i++) c->order[i] = i;
    sort_items = h->items; /* loop thread only: no race on this file-local */
    qsort(c->order, h->nitems, sizeof *c->order, cmp_idx);
    lock_next(c);
}

static void release_locks(stock_redis_t *s, stock_hold_t *h)
{
    for (size_t i = 0; i < h->nitems; i++) {
        char key[300];
        snprintf(key, sizeof key, "weft:lock:%s", h->items[i].sku);
        const char *argv[] = {"EVAL", LUA_UNLOCK, "1", key, h->token};
        cmd(s, NULL, NULL, 5, argv);
    }
}

/* EVAL `script` over the items that `lv` says were written (ver > 0): KEYS are `marker` (if
 * not NULL) then the pairs weft:stock:{sku}, weft:stockver:{sku}; ARGV is aligned with KEYS:
 * "" for the marker, then per pair the level's available (or, by_qty, the item's qty) and its
 * ver. Nothing written: nothing sent. Returns 0 or a negative error (the mirror is lost). */
static int send_levels(stock_redis_t *s, const char *script, const char *marker,
                       const order_item_t *items, const store_level_t *lv, size_t n, bool by_qty)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += lv[i].ver > 0;
    if (!m) return 0;
    size_t nk = (marker ? 1 : 0) + 2 * m, k = 0;
    const char **argv = calloc(3 + 2 * nk, sizeof *argv);
    char **own = calloc(4 * m, sizeof *own);
    char nkeys[16];
    int rc = argv && own ? 0 : -ENOMEM;
    if (!rc) {
        snprintf(nkeys, sizeof nkeys, "%zu", nk);
        argv[0] = "EVAL";
        argv[1] = script;
        argv[2] = nkeys;
        if (marker) {
            argv[3 + k] = marker;
            argv[3 + nk + k++] = "";
        }
    }
    for (size_t i = 0, j = 0; !rc && i < n; i++) {
        if (lv[i].ver <= 0) continue;
        size_t l = strlen(items[i].sku) + 16;
        char **o = &own[4 * j++];
        if (!(o[0] = malloc(l)) || !(o[1] = malloc(l)) || !(o[2] = malloc(24)) ||
            !(o[3] = malloc(24))) {
            rc = -ENOMEM;
            break;
        }
        snprintf(o[0], l, "weft:stock:%s", items[i].sku);
        snprintf(o[1], l, "weft:stockver:%s", items[i].sku);
        snprintf(o[2], 24, "%" PRId64, by_qty ? items[i].qty : lv[i].available);
        snprintf(o[3], 24, "%" PRId64, lv[i].ver);
        for (int t = 0; t < 2; t++) {
            argv[3 + k] = o[t];
            argv[3 + nk + k++] = o[2 + t];
        }
    }
    if (!rc) rc = cmd(s, NULL, NULL, (int)(3 + 2 * nk), argv);
    for (size_t i = 0; own && i < 4 * m; i++) free(own[i]);
    free(own);
    free(argv);
    return rc;
}

void stock_redis_done(stock_redis_t *s, stock_hold_t *h, const store_level_t *levels)
{
    if (s->mode == ENGINE_STOCK_LOCK) {
        /* Mirror the durable write's levels (while still holding the locks, though the versions
         * make the order of arrival irrelevant), then release the locks. A lost mirror: the
         * reconcile after the reconnect restores it. */
        if (!levels || send_levels(s, LUA_MIRROR, NULL, h->items, levels, h->nitems, false) < 0)
            stock_redis_reconcile(s);
        release_locks(s, h);
    }
    free(h->fences);
    h->fences = NULL;
    hold_end(s);
}

static void send_release(stock_redis_t *s, const char *order_id, const order_item_t *items,
                         size_t n)
{
    const char **argv = calloc(3 + 2 * n + 1, sizeof *argv);
    char **own = calloc(1 + 2 * n, sizeof *own);
    char nkeys[16];
    bool ok = argv && own;
    if (ok) {
        snprintf(nkeys, sizeof nkeys, "%zu", n + 1);
        argv[0] = "EVAL";
        argv[1] = LUA_RELEASE;
        argv[2] = nkeys;
        own[0] = malloc(ORDER_ID_LEN + 16);
        ok = own[0] != NULL;
        if (ok) snprintf(own[0], ORDER_ID_LEN + 16, "weft:rel:%s", order_id);
        argv[3] = own[0];
        for (size_t i = 0; i < n && ok; i++) {
            own[1 + i] = malloc(strlen(items[i].sku) + 16);
            own[1 + n + i] = malloc(24);
            ok = own[1 + i] && own[1 + n + i];
            if (!ok) break;
            sprintf(own[1 + i], "weft:stock:%s", items[i].sku);
            sprintf(own[1 + n + i], "%" PRId64, items[i].qty);
            argv[4 + i] = own[1 + i];
            argv[4 + n + i] = own[1 + n + i];
        }
    }
    if (ok) cmd(s, NULL, NULL, (int)(4 + 2 * n), argv);
    for (size_t i = 0; own && i < 1 + 2 * n; i++) free(own[i]);
    free(own);
    free(argv);
    /* Lost (disconnected, out of memory): the reconcile after the reconnect restores it. */
    if (!ok) stock_redis_reconcile(s);
}

void stock_redis_abort(stock_redis_t *s, stock_hold_t *h, bool reconcile)
{
    if (s->mode == ENGINE_STOCK_LOCK)
        release_locks(s, h);
    else
        send_release(s, h->order_id, h->items, h->nitems); /* give back what the script took */
    free(h->fences);
    h->fences = NULL;
    if (reconcile && s->state == ST_READY) s->state = ST_WAIT;
    hold_end(s);
}

void stock_redis_release_begin(stock_redis_t *s)
{
    s->inflight++;
}

void stock_redis_release_end(stock_redis_t *s, const char *order_id, const order_item_t *items,
                             size_t n, const store_level_t *levels)
{
    if (levels) {
        char rel[ORDER_ID_LEN + 16];
        snprintf(rel, sizeof rel, "weft:rel:%s", order_id);
        bool lock = s->mode == ENGINE_STOCK_LOCK;
        if (send_levels(s, lock ? LUA_RELEASE_LOCK : LUA_RELEASE_LUA, rel, items, levels, n,
                        !lock) < 0)
            stock_redis_reconcile(s); /* lost: the reconcile after the reconnect restores it */
    }
    hold_end(s);
}

typedef struct sync_call {
    void (*cb)(void *arg);
    void *arg;
} sync_call_t;

static void on_sync(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    (void)r;
    sync_call_t *c = priv;
    void (*cb)(void *) = c->cb;
    void *arg = c->arg;
    free(c);
    cb(arg);
}

void stock_redis_sync(stock_redis_t *s, void (*cb)(void *arg), void *arg)
{
    sync_call_t *c = malloc(sizeof *c);
    const char *ping[] = {"PING"};
    if (!c) {
        cb(arg);
        return;
    }
    c->cb = cb;
    c->arg = arg;
    if (cmd(s, on_sync, c, 1, ping) < 0) on_sync(NULL, NULL, c);
}

/* ---- logistics ---- */

typedef struct ship_call {
    void (*cb)(void *, int);
    void *arg;
} ship_call_t;

static void on_xadd(redisAsyncContext *ac, void *reply, void *priv)
{
    ship_call_t *c = priv;
    redisReply *r = reply;
    int rc = r && r->type == REDIS_REPLY_STRING ? 0 : -EIO;
    void (*cb)(void *, int) = c->cb;
    void *arg = c->arg;
    free(c);
    cb(arg, rc);
}

void stock_redis_ship(stock_redis_t *s, const char *order_id, const order_item_t *items, size_t n,
                      void (*cb)(void *arg, int rc), void *arg)
{
    ship_call_t *c = malloc(sizeof *c);
    weft_buf_t json;
    weft_buf_init(&json, 0);
    char ms[24];
    snprintf(ms, sizeof ms, "%" PRIu64, order_wall_ms());
    if (!c || order_items_json(items, n, &json) < 0) {
        free(c);
        weft_buf_free(&json);
        cb(arg, -ENOMEM);
        return;
    }
    c->cb = cb;
    c->arg = arg;
    const char *argv[] = {"XADD",  "weft:ship", "*",     "order_id", order_id,
                          "items", json.data,   "at_ms", ms};
    if (cmd(s, on_xadd, c, 9, argv) < 0) {
        free(c);
        cb(arg, -EIO);
    }
    weft_buf_free(&json);
}
