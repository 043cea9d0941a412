/* broker.c - the submitting side of the Redis-Streams executor (weft/broker.h), and the Lua
 * scripts both sides run.
 *
 * DESIGN
 * Keys, under P = "weft:<ns>" (docs/distributed.md has the table):
 *   P:t:<id>   hash: the task (fn/cmd/arg/band/att/bo/to), its state st, deliveries del, tries,
 *              status, val, err, worker wk, the stream entry that holds it (sid), cancel flag cx,
 *              remaining dependencies rem, hd = 1 once it has dependents (P:d:<id>). Expires ttl
 *              after the task finished.
 *   P:d:<id>   list: the ids of tasks that wait for <id>.
 *   P:q:<b>    stream per priority band b (0 high, 1 normal, 2 low); consumer group "workers".
 *   P:delay    sorted set: tasks in backoff, scored by the ms they are due.
 *   P:ev       stream: what happened (running, backoff, done, failed, skipped, cancelled);
 *              'running' only while P:follow exists (set, with a TTL of a minute, by whoever
 *              reads the events: weft_broker_events, weft_broker_events_last).
 *   P:dead     stream: tasks given up after too many deliveries, with their last error.
 *   P:n:sub, P:n:fin  counters: tasks submitted, tasks finished.
 *   P:w:<name> hash with a TTL: a worker's heartbeat; P:workers: the set of names seen.
 * Every change of a task's state is one Lua script, so it is atomic: a completion records the
 * result, releases the dependents and acknowledges the entry in one step, and a second
 * completion of the same task (it ran twice after a takeover) finds the task no longer RUNNING
 * and only acknowledges. That is what makes recording exactly-once on top of at-least-once
 * delivery. Scripts use keys computed from P (not KEYS[]): weft needs one Redis, not a cluster.
 *
 * One weft_broker_t holds one hiredis connection and is used by one thread at a time.
 */
#include "dist/broker-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weft/buf.h>
#include <weft/err.h>
#include <weft/sys.h>

#include "core/alloc.h"

/* clang-format off */
#define LUA_COMMON                                                                                 \
    "local P = ARGV[1]\n"                                                                          \
    "local TTL, TTLS = tonumber(ARGV[2]), ARGV[2]\n"                                              \
    "local FOLLOWED = nil\n"                                                                      \
    "local function itoa(n)\n"                                                                    \
    "  if n >= 0 and n < 10 then return string.char(48 + n) end\n"                                \
    "  return tostring(n)\n"                                                                      \
    "end\n"                                                                                       \
    "local function followed()\n"                                                                 \
    "  if FOLLOWED == nil then FOLLOWED = redis.call('EXISTS', P..':follow') == 1 end\n"           \
    "  return FOLLOWED\n"                                                                         \
    "end\n"                                                                                       \
    "local function ev(id, st, wk, status, tries)\n"                                              \
    "  redis.call('XADD', P..':ev', 'MAXLEN', '~', '1000000', '*', 'id', id, 'st', st,\n"          \
    "    'wk', wk or '', 'status', status or 0, 'tries', tries or 0)\n"                           \
    "end\n"                                                                                        \
    "local function finish(id, st, status, wk)\n"                                                  \
    "  local k = P..':t:'..id\n"                                                                   \
    "  redis.call('HSET', k, 'st', st, 'status', status, 'wk', wk)\n"                              \
    "  redis.call('INCR', P..':n:fin')\n"                                                          \
    "  ev(id, st, wk, status, redis.call('HGET', k, 'tries'))\n"                                   \
    "  if TTL > 0 then redis.call('EXPIRE', k, TTLS); redis.call('EXPIRE', P..':d:'..id, TTLS) end\n"\
    "end\n"                                                                                        \
    "local function skip_dependents(id)\n"                                                         \
    "  local q = {id}\n"                                                                           \
    "  local i = 1\n"                                                                              \
    "  while i <= #q do\n"                                                                         \
    "    for _, d in ipairs(redis.call('LRANGE', P..':d:'..q[i], 0, -1)) do\n"                     \
    "      if redis.call('HGET', P..':t:'..d, 'st') == 'waiting' then\n"                          \
    "        finish(d, 'skipped', -4101, '')\n"                                                    \
    "        q[#q + 1] = d\n"                                                                      \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "    i = i + 1\n"                                                                              \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function enqueue(id)\n"                                                                 \
    "  local k = P..':t:'..id\n"                                                                   \
    "  redis.call('HSET', k, 'st', 'queued')\n"                                                    \
    "  redis.call('XADD', P..':q:'..redis.call('HGET', k, 'band'), '*', 'id', id)\n"              \
    "end\n"                                                                                        \
    "local function terminal(st)\n"                                                                \
    "  return st == 'done' or st == 'failed' or st == 'skipped' or st == 'cancelled'\n"           \
    "end\n"

/* ARGV: P TTL n, then n tasks of (id fn cmd arg band att bo to ndeps deps...) -> the number
 * of new tasks (known ids are left as they are). One call per window of tasks: per task one
 * EXISTS, one HSET and the XADD that queues it. The HSET writes only the fields that are not at
 * their default (a missing fn, cmd, arg: empty; to, rem, cx: 0; status: -115; wk, deps: empty;
 * every reader defaults them); del, tries and hd stay (hd: its absence marks a task of an older
 * weft). An unknown dependency ends the call with an error; the tasks before it stay submitted. */
static const char lua_submit[] =
    "local new, i = 0, 4\n"
    "for _ = 1, tonumber(ARGV[3]) do\n"
    "  local id, band, nd = ARGV[i], ARGV[i + 4], tonumber(ARGV[i + 8])\n"
    "  local k = P..':t:'..id\n"
    "  if redis.call('EXISTS', k) == 0 then\n"
    "    local rem, skip, wait = 0, false, {}\n"
    "    for x = 1, nd do\n"
    "      local d = ARGV[i + 8 + x]\n"
    "      local st = redis.call('HGET', P..':t:'..d, 'st')\n"
    "      if not st then\n"
    "        if new > 0 then redis.call('INCRBY', P..':n:sub', new) end\n"
    "        return redis.error_reply('ENOENT dependency '..d..' of '..id)\n"
    "      end\n"
    "      if st == 'done' then\n"
    "      elseif terminal(st) then skip = true\n"
    "      else rem = rem + 1; wait[#wait + 1] = d end\n"
    "    end\n"
    "    for _, d in ipairs(wait) do\n"
    "      redis.call('RPUSH', P..':d:'..d, id)\n"
    "      redis.call('HSET', P..':t:'..d, 'hd', '1')\n"
    "    end\n"
    "    local st = 'waiting'\n"
    "    if rem == 0 and not skip then st = 'queued' end\n"
    "    local h = {'band', band, 'att', ARGV[i + 5], 'bo', ARGV[i + 6], 'del', '0', 'tries', '0',\n"
    "      'st', st, 'hd', '0'}\n"
    "    local fn, cmd, arg, to = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 7]\n"
    "    if fn ~= '' then h[#h + 1] = 'fn'; h[#h + 1] = fn end\n"
    "    if cmd ~= '' then h[#h + 1] = 'cmd'; h[#h + 1] = cmd end\n"
    "    if arg ~= '' then h[#h + 1] = 'arg'; h[#h + 1] = arg end\n"
    "    if to ~= '0' then h[#h + 1] = 'to'; h[#h + 1] = to end\n"
    "    if nd > 0 then\n"
    "      h[#h + 1] = 'rem'; h[#h + 1] = rem\n"
    "      h[#h + 1] = 'deps'; h[#h + 1] = table.concat(ARGV, ' ', i + 9, i + 8 + nd)\n"
    "    end\n"
    "    redis.call('HSET', k, unpack(h))\n"
    "    new = new + 1\n"
    "    if skip then finish(id, 'skipped', -4101, '')\n"
    "    elseif st == 'queued' then redis.call('XADD', P..':q:'..band, '*', 'id', id) end\n"
    "  end\n"
    "  i = i + 9 + nd\n"
    "end\n"
    "if new > 0 then redis.call('INCRBY', P..':n:sub', new) end\n"
    "return new\n";

/* One entry handed to worker wk: count the delivery, dead-letter it past the limit, else mark it
 * RUNNING under this entry. Returns the row the worker reads: {entry, id, action, fn, cmd, arg,
 * to, tries, att, bo, band}; action "run" or "ack" (already handled: acknowledged). One HMGET and
 * one HSET per task; the 'running' event only while someone follows the events (P:follow exists,
 * looked up once per call), as `weft run --broker` does: no one else reads it. */
#define LUA_CLAIM                                                                                  \
    "local function claim(band, e, id, maxr, wk, g)\n"                                            \
    "  local k = P..':t:'..id\n"                                                                  \
    "  local f = redis.call('HMGET', k, 'st', 'sid', 'del', 'att', 'fn', 'cmd', 'arg', 'to',\n"   \
    "    'tries', 'bo')\n"                                                                        \
    "  local st = f[1]\n"                                                                         \
    "  local act = 'ack'\n"                                                                       \
    "  if st == 'queued' or (st == 'running' and f[2] == e) then\n"                              \
    "    local del = itoa(tonumber(f[3]) + 1)\n"                                                  \
    "    local att = tonumber(f[4])\n"                                                            \
    "    if att < 1 then att = 1 end\n"                                                           \
    "    if tonumber(del) > att + maxr then\n"                                                    \
    "      redis.call('XADD', P..':dead', '*', 'id', id, 'deliveries', del, 'worker', wk,\n"     \
    "        'err', redis.call('HGET', k, 'err') or 'its workers died')\n"                        \
    "      redis.call('HSET', k, 'del', del, 'err', 'dead-lettered after '..del..' deliveries')\n"\
    "      finish(id, 'failed', -4100, wk)\n"                                                     \
    "      skip_dependents(id)\n"                                                                 \
    "    else\n"                                                                                  \
    "      act = 'run'\n"                                                                         \
    "      redis.call('HSET', k, 'st', 'running', 'wk', wk, 'sid', e, 'del', del)\n"              \
    "      if followed() then ev(id, 'running', wk, '0', f[9]) end\n"                             \
    "    end\n"                                                                                   \
    "  end\n"                                                                                     \
    "  if act == 'ack' then redis.call('XACK', P..':q:'..band, g, e) end\n"                       \
    "  return {e, id, act, f[5] or '', f[6] or '', f[7] or '', f[8] or '0', f[9] or '0',\n"      \
    "    f[4] or '0', f[10] or '0', band}\n"                                                      \
    "end\n"

/* ARGV: P TTL maxredeliver worker group band (entry id)... -> a claim row per entry (entries
 * read by the caller: its own pending list, or taken over with XAUTOCLAIM). */
static const char lua_claim[] =
    "local maxr, wk, g, band = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]\n"
    "local out = {}\n"
    "for i = 7, #ARGV, 2 do\n"
    "  out[#out + 1] = claim(band, ARGV[i], ARGV[i + 1], maxr, wk, g)\n"
    "end\n"
    "return out\n";

/* Reads up to `want` new entries, highest band first, and claims them: -> claim rows. `bands`:
 * one character per band, '1' for the bands the worker takes. */
#define LUA_FETCH                                                                                  \
    "local function fetch(maxr, wk, g, want, bands)\n"                                            \
    "  local out = {}\n"                                                                          \
    "  for b = 0, 2 do\n"                                                                         \
    "    if want <= 0 then break end\n"                                                           \
    "    local band = itoa(b)\n"                                                                  \
    "    local r = false\n"                                                                       \
    "    if string.sub(bands, b + 1, b + 1) == '1' then\n"                                        \
    "      r = redis.call('XREADGROUP', 'GROUP', g, wk, 'COUNT', want, 'STREAMS',\n"              \
    "        P..':q:'..band, '>')\n"                                                              \
    "    end\n"                                                                                   \
    "    if r then\n"                                                                             \
    "      for _, e in ipairs(r[1][2]) do\n"                                                      \
    "        want = want - 1\n"                                                                   \
    "        local f, id = e[2], nil\n"                                                           \
    "        for x = 1, #f, 2 do if f[x] == 'id' then id = f[x + 1] end end\n"                    \
    "        if id then out[#out + 1] = claim(band, e[1], id, maxr, wk, g) end\n"                 \
    "      end\n"                                                                                 \
    "    end\n"                                                                                   \
    "  end\n"                                                                                     \
    "  return out\n"                                                                              \
    "end\n"

/* ARGV: P TTL maxredeliver worker group count bands -> claim rows (LUA_FETCH), in one round
 * trip. */
static const char lua_fetch[] =
    "return fetch(tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7])\n";

/* ARGV: P TTL worker group maxredeliver count bands (band entry id status val err delay)...
 * -> claim rows: records the outcomes, then (count > 0) fetches the worker's next tasks as
 * lua_fetch does, saving the worker a round trip per batch (per task, one at a time).
 * delay < 0: do not retry; else retry after delay ms if attempts remain. A success costs one
 * HMGET, one HSET, the event and the EXPIRE; its dependents list is read only if the task has one
 * (flag `hd`: '0' at submit, '1' from whoever appends to P:d:<id>; a task an older weft submitted
 * has no flag and its list is read); the entries are acknowledged with one XACK per
 * band and the finished counter moves once. Numbers that Redis would format (Lua numbers are
 * doubles, printed with "%.14g") are passed as strings where the script has them. */
static const char lua_complete[] =
    "local wk, g = ARGV[3], ARGV[4]\n"
    "local n, fin, ms = 0, 0, nil\n"
    "local acks = {['0'] = {}, ['1'] = {}, ['2'] = {}}\n"
    "for i = 8, #ARGV, 7 do\n"
    "  local band, e, id = ARGV[i], ARGV[i + 1], ARGV[i + 2]\n"
    "  local status, val, err = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]\n"
    "  local k = P..':t:'..id\n"
    "  local a = acks[band]\n"
    "  a[#a + 1] = e\n"
    "  local f = redis.call('HMGET', k, 'st', 'sid', 'tries', 'att', 'cx', 'hd')\n"
    "  if f[1] == 'running' and f[2] == e then\n"
    "    n = n + 1\n"
    "    local tries = tonumber(f[3]) + 1\n"
    "    if status == '0' then\n"
    "      local ts = itoa(tries)\n"
    "      redis.call('HSET', k, 'val', val, 'tries', ts, 'st', 'done', 'status', '0', 'wk', wk)\n"
    "      fin = fin + 1\n"
    "      ev(id, 'done', wk, '0', ts)\n"
    "      if TTL > 0 then redis.call('EXPIRE', k, TTLS) end\n"
    "      local dk = P..':d:'..id\n"
    "      local ds = f[6] ~= '0' and redis.call('LRANGE', dk, 0, -1) or {}\n"
    "      if #ds > 0 then\n"
    "        if TTL > 0 then redis.call('EXPIRE', dk, TTLS) end\n"
    "        for _, d in ipairs(ds) do\n"
    "          local dk2 = P..':t:'..d\n"
    "          if redis.call('HINCRBY', dk2, 'rem', -1) <= 0 and\n"
    "             redis.call('HGET', dk2, 'st') == 'waiting' then enqueue(d) end\n"
    "        end\n"
    "      end\n"
    "    else\n"
    "      local delay = tonumber(ARGV[i + 6])\n"
    "      redis.call('HSET', k, 'err', err, 'val', val, 'tries', tries)\n"
    "      if f[5] == '1' then\n"
    "        finish(id, 'cancelled', -125, wk)\n"
    "        skip_dependents(id)\n"
    "      elseif delay >= 0 and tries < tonumber(f[4]) then\n"
    "        if not ms then\n"
    "          local now = redis.call('TIME')\n"
    "          ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)\n"
    "        end\n"
    "        redis.call('HSET', k, 'st', 'backoff', 'status', status, 'wk', wk)\n"
    "        redis.call('ZADD', P..':delay', ms + delay, id)\n"
    "        ev(id, 'backoff', wk, status, tries)\n"
    "      else\n"
    "        finish(id, 'failed', status, wk)\n"
    "        skip_dependents(id)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for b, a in pairs(acks) do\n"
    "  if #a > 0 then redis.call('XACK', P..':q:'..b, g, unpack(a)) end\n"
    "end\n"
    "if fin > 0 then redis.call('INCRBY', P..':n:fin', fin) end\n"
    "if tonumber(ARGV[6]) <= 0 then return {} end\n"
    "return fetch(tonumber(ARGV[5]), wk, g, tonumber(ARGV[6]), ARGV[7])\n";

/* ARGV: P TTL id -> 0 cancelled now, 1 running (its worker will kill it), -2 unknown,
 * -114 finished */
static const char lua_cancel[] =
    "local id = ARGV[3]\n"
    "local k = P..':t:'..id\n"
    "local st = redis.call('HGET', k, 'st')\n"
    "if not st then return -2 end\n"
    "if terminal(st) then return -114 end\n"
    "redis.call('HSET', k, 'cx', 1)\n"
    "if st == 'running' then return 1 end\n"
    "redis.call('ZREM', P..':delay', id)\n"
    "finish(id, 'cancelled', -125, '')\n"
    "skip_dependents(id)\n"
    "return 0\n";

/* ARGV: P TTL -> tasks moved from backoff to their streams */
static const char lua_promote[] =
    "local now = redis.call('TIME')\n"
    "local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)\n"
    "local due = redis.call('ZRANGEBYSCORE', P..':delay', '-inf', ms, 'LIMIT', 0, 256)\n"
    "for _, id in ipairs(due) do\n"
    "  redis.call('ZREM', P..':delay', id)\n"
    "  if redis.call('HGET', P..':t:'..id, 'st') == 'backoff' then enqueue(id) end\n"
    "end\n"
    "return #due\n";

/* ARGV: P TTL ids... -> tasks reset (failed/skipped/cancelled -> waiting, then queued once
 * their dependencies are done) */
static const char lua_resume[] =
    "local reset = {}\n"
    "for i = 3, #ARGV do\n"
    "  local id = ARGV[i]\n"
    "  local k = P..':t:'..id\n"
    "  local st = redis.call('HGET', k, 'st')\n"
    "  if st == 'failed' or st == 'skipped' or st == 'cancelled' then\n"
    "    reset[#reset + 1] = id\n"
    "    redis.call('PERSIST', k)\n"
    "    redis.call('DECR', P..':n:fin')\n"
    "    redis.call('HSET', k, 'st', 'waiting', 'del', 0, 'tries', 0, 'cx', 0, 'status', -115)\n"
    "  end\n"
    "end\n"
    "for _, id in ipairs(reset) do\n"
    "  local k = P..':t:'..id\n"
    "  local rem = 0\n"
    "  for d in string.gmatch(redis.call('HGET', k, 'deps') or '', '%S+') do\n"
    "    local dst = redis.call('HGET', P..':t:'..d, 'st')\n"
    "    if dst ~= 'done' then\n"
    "      rem = rem + 1\n"
    "      if not redis.call('LPOS', P..':d:'..d, id) then\n"
    "        redis.call('RPUSH', P..':d:'..d, id)\n"
    "        if dst then redis.call('HSET', P..':t:'..d, 'hd', '1') end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  redis.call('HSET', k, 'rem', rem)\n"
    "  if rem == 0 then enqueue(id) end\n"
    "end\n"
    "return #reset\n";
/* clang-format on */

/* Each script is its parts joined (C99 promises string literals of 4095 bytes only). */
static const char *const scripts[WEFT__S_COUNT][5] = {
    [WEFT__S_SUBMIT] = {LUA_COMMON, lua_submit},
    [WEFT__S_CLAIM] = {LUA_COMMON, LUA_CLAIM, lua_claim},
    [WEFT__S_COMPLETE] = {LUA_COMMON, LUA_CLAIM, LUA_FETCH, lua_complete},
    [WEFT__S_CANCEL] = {LUA_COMMON, lua_cancel},
    [WEFT__S_PROMOTE] = {LUA_COMMON, lua_promote},
    [WEFT__S_RESUME] = {LUA_COMMON, lua_resume},
    [WEFT__S_FETCH] = {LUA_COMMON, LUA_CLAIM, LUA_FETCH, lua_fetch},
};

struct weft_broker {
    weft__broker_conf_t conf;
    redisContext *c;
    char sha[WEFT__S_COUNT][41];
    char prefix[80];
    char ttl[24];
    uint64_t follow_next_ns; /* when to renew P:follow (0: not set by this handle) */
};

int weft__broker_conf(weft__broker_conf_t *c, const char *url, const weft_broker_opts_t *o)
{
    memset(c, 0, sizeof *c);
    if (!url || strncmp(url, "redis://", 8) != 0) return -EINVAL;
    const char *h = url + 8, *colon = strchr(h, ':'), *slash = strchr(h, '/');
    size_t hl = colon ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof c->host) return -EINVAL;
    memcpy(c->host, h, hl);
    c->port = 6379;
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (p <= 0 || p > 65535 || (*end && *end != '/')) return -EINVAL;
        c->port = (int)p;
    }
    if (slash) {
        char *end;
        long d = strtol(slash + 1, &end, 10);
        if (d < 0 || d > 1000 || *end) return -EINVAL;
        c->db = (int)d;
    }
    const char *ns = o && o->ns ? o->ns : "weft";
    size_t nl = strlen(ns);
    if (nl == 0 || nl >= sizeof c->ns) return -EINVAL;
    for (size_t i = 0; i < nl; i++) {
        char ch = ns[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return -EINVAL;
    }
    memcpy(c->ns, ns, nl + 1);
    c->ttl_s = o && o->ttl_s ? o->ttl_s : 86400;
    c->max_redeliveries = o && o->max_redeliveries > 0 ? o->max_redeliveries : 3;
    c->connect_timeout_ms = o && o->connect_timeout_ms ? o->connect_timeout_ms : 2000;
    return 0;
}

int weft__broker_err(const redisContext *ctx, const redisReply *r)
{
    if (ctx && ctx->err) {
        if (ctx->err == REDIS_ERR_IO) return errno ? -errno : -EIO;
        if (ctx->err == REDIS_ERR_EOF) return -ECONNRESET;
        if (ctx->err == REDIS_ERR_OOM) return -ENOMEM;
        return -EIO;
    }
    if (!r) return -EIO;
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "ENOENT", 6) == 0) return -ENOENT;
        if (strncmp(r->str, "LOADING", 7) == 0) return -EAGAIN;
        return -EPROTO;
    }
    return 0;
}

int weft__broker_connect(const weft__broker_conf_t *c, redisContext **out,
                         char sha[WEFT__S_COUNT][41])
{
    *out = NULL;
    struct timeval tv = {(time_t)(c->connect_timeout_ms / 1000),
                         (suseconds_t)(c->connect_timeout_ms % 1000) * 1000};
    redisContext *ctx = redisConnectWithTimeout(c->host, c->port, tv);
    if (!ctx) return -ENOMEM;
    if (ctx->err) {
        int rc = ctx->err == REDIS_ERR_IO && errno ? -errno : -ECONNREFUSED;
        redisFree(ctx);
        return rc;
    }
    int rc = 0;
    redisReply *r;
    if (c->db) {
        r = redisCommand(ctx, "SELECT %d", c->db);
        rc = weft__broker_err(ctx, r);
        if (r) freeReplyObject(r);
    }
    for (int i = 0; rc == 0 && i < WEFT__S_COUNT; i++) {
        weft_buf_t src;
        weft_buf_init(&src, 0);
        for (int p = 0; scripts[i][p] && rc == 0; p++)
            rc = weft_buf_append(&src, scripts[i][p], strlen(scripts[i][p]));
        if (rc < 0) {
            weft_buf_free(&src);
            break;
        }
        r = redisCommand(ctx, "SCRIPT LOAD %b", src.data, src.len);
        weft_buf_free(&src);
        rc = weft__broker_err(ctx, r);
        if (rc == 0 && (r->type != REDIS_REPLY_STRING || r->len != 40)) rc = -EPROTO;
        if (rc == 0) memcpy(sha[i], r->str, 41);
        if (r) freeReplyObject(r);
    }
    for (int b = 0; rc == 0 && b < WEFT__BROKER_BANDS; b++) {
        r = redisCommand(ctx, "XGROUP CREATE weft:%s:q:%d " WEFT__BROKER_GROUP " 0 MKSTREAM", c->ns,
                         b);
        rc = weft__broker_err(ctx, r);
        if (rc == -EPROTO && strncmp(r->str, "BUSYGROUP", 9) == 0) rc = 0;
        if (r) freeReplyObject(r);
    }
    if (rc) {
        redisFree(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

weft_broker_state_t weft__broker_state(const char *s, size_t len)
{
    static const char *const names[] = {"",     "waiting", "queued",  "running",  "backoff",
                                        "done", "failed",  "skipped", "cancelled"};
    for (size_t i = 1; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) return (weft_broker_state_t)i;
    return WEFT_BROKER_UNKNOWN;
}

int weft_broker_create(weft_broker_t **out, const char *url, const weft_broker_opts_t *opts)
{
    if (!out) return -EINVAL;
    *out = NULL;
    weft_broker_t *b = weft__calloc(1, sizeof *b);
    if (!b) return -ENOMEM;
    int rc = weft__broker_conf(&b->conf, url, opts);
    if (rc == 0) rc = weft__broker_connect(&b->conf, &b->c, b->sha);
    if (rc) {
        weft__free(b);
        return rc;
    }
    snprintf(b->prefix, sizeof b->prefix, "weft:%s", b->conf.ns);
    snprintf(b->ttl, sizeof b->ttl, "%llu", (unsigned long long)b->conf.ttl_s);
    *out = b;
    return 0;
}

void weft_broker_destroy(weft_broker_t *b)
{
    if (!b) return;
    redisFree(b->c);
    weft__free(b);
}

/* (Re)connects if the connection is gone or broken (Redis restarted). Returns 0 or an error. */
static int ensure(weft_broker_t *b)
{
    if (b->c && !b->c->err) return 0;
    redisFree(b->c);
    b->c = NULL;
    return weft__broker_connect(&b->conf, &b->c, b->sha);
}

/* Runs one command; returns the reply (free it) or NULL with *rc set. The commands sent this
 * way are reads or idempotent scripts: on a lost connection they are sent again on a new one,
 * for up to about 10 s (a Redis restart), so that a long `weft run --broker` survives it. */
static redisReply *cmd(weft_broker_t *b, int *rc, const char *fmt, ...)
{
    for (int tries = 0;; tries++) {
        *rc = ensure(b);
        redisReply *r = NULL;
        if (*rc == 0) {
            va_list ap;
            va_start(ap, fmt);
            r = redisvCommand(b->c, fmt, ap);
            va_end(ap);
            *rc = weft__broker_err(b->c, r);
        }
        if (*rc == 0) return r;
        if (r) freeReplyObject(r);
        bool lost = !b->c || b->c->err || *rc == -EAGAIN;
        if (!lost || tries >= 100) return NULL;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int weft_broker_reset(weft_broker_t *b)
{
    if (!b) return -EINVAL;
    int erc = ensure(b);
    if (erc) return erc;
    char cursor[32] = "0";
    int rc;
    do {
        redisReply *r = cmd(b, &rc, "SCAN %s MATCH %s:* COUNT 1000", cursor, b->prefix);
        if (!r) return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            return -EPROTO;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            redisAppendCommand(b->c, "UNLINK %b", keys->element[i]->str,
                               (size_t)keys->element[i]->len);
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *x = NULL;
            if (redisGetReply(b->c, (void **)&x) != REDIS_OK) {
                freeReplyObject(r);
                return weft__broker_err(b->c, NULL);
            }
            freeReplyObject(x);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    b->follow_next_ns = 0; /* P:follow went too */
    /* The consumer groups went with the streams: make them again. */
    redisFree(b->c);
    b->c = NULL;
    return weft__broker_connect(&b->conf, &b->c, b->sha);
}

static int band_of(int priority)
{
    return priority > 0 ? 0 : priority == 0 ? 1 : 2;
}

static int check_task(const weft_broker_task_t *t)
{
    if (!t->id || !*t->id || strlen(t->id) > 200 || strpbrk(t->id, " \t\n")) return -EINVAL;
    if (!t->fn == !t->cmd) return -EINVAL;
    if (t->fn && (!*t->fn || strlen(t->fn) > 63)) return -EINVAL;
    if (t->attempts < 0 || t->attempts > 64 || (t->ndeps && !t->deps)) return -EINVAL;
    for (size_t i = 0; i < t->ndeps; i++)
        if (!t->deps[i]) return -EINVAL;
    return 0;
}

int weft_broker_submit(weft_broker_t *b, const weft_broker_task_t *tasks, size_t n)
{
    if (!b || (n && !tasks)) return -EINVAL;
    int erc = ensure(b);
    if (erc) return erc;
    for (size_t i = 0; i < n; i++)
        if (check_task(&tasks[i])) return -EINVAL;
    /* One script call per window: a window's tasks are submitted in one step, and a large DAG
     * neither buffers all its commands nor holds Redis for long. */
    const size_t window = 256;
    size_t per_window = n < window ? n : window, maxdeps = 0; /* dependencies in a window */
    for (size_t base = 0; base < n; base += window) {
        size_t nd = 0;
        for (size_t i = base; i < n && i < base + window; i++) nd += tasks[i].ndeps;
        if (nd > maxdeps) maxdeps = nd;
    }
    size_t argc_max = 6 + 9 * per_window + maxdeps;
    const char **argv = weft__malloc(argc_max * sizeof *argv);
    size_t *argl = weft__malloc(argc_max * sizeof *argl);
    char(*nums)[5][24] = weft__malloc(per_window * sizeof *nums + 1);
    int rc = argv && argl && nums ? 0 : -ENOMEM;
    for (size_t base = 0; base < n && rc == 0; base += window) {
        size_t end = base + window < n ? base + window : n;
        char count[24];
        snprintf(count, sizeof count, "%zu", end - base);
        size_t k = 0;
#define ARG(s, l) (argv[k] = (s), argl[k] = (l), k++)
#define ARGS(s) ARG((s), strlen(s))
        ARGS("EVALSHA");
        ARGS(b->sha[WEFT__S_SUBMIT]);
        ARGS("0");
        ARGS(b->prefix);
        ARGS(b->ttl);
        ARGS(count);
        for (size_t i = base; i < end; i++) {
            const weft_broker_task_t *t = &tasks[i];
            char(*num)[24] = nums[i - base];
            snprintf(num[0], 24, "%d", band_of(t->priority));
            snprintf(num[1], 24, "%d", t->attempts < 1 ? 1 : t->attempts);
            snprintf(num[2], 24, "%llu", (unsigned long long)(t->backoff_ms ? t->backoff_ms : 100));
            snprintf(num[3], 24, "%llu", (unsigned long long)t->timeout_ms);
            snprintf(num[4], 24, "%zu", t->ndeps);
            ARGS(t->id);
            ARGS(t->fn ? t->fn : "");
            ARGS(t->cmd ? t->cmd : "");
            ARG(t->arg ? (const char *)t->arg : "", t->arg ? t->len : 0);
            for (int x = 0; x < 5; x++) ARGS(num[x]);
            for (size_t d = 0; d < t->ndeps; d++) ARGS(t->deps[d]);
        }
#undef ARGS
#undef ARG
        redisReply *r = redisCommandArgv(b->c, (int)k, argv, argl);
        rc = weft__broker_err(b->c, r);
        if (r) freeReplyObject(r);
    }
    weft__free(argv);
    weft__free(argl);
    weft__free(nums);
    return rc;
}

int weft_broker_resume(weft_broker_t *b, const char *const *ids, size_t n)
{
    if (!b || (n && !ids)) return -EINVAL;
    int erc = ensure(b);
    if (erc) return erc;
    const char **argv = weft__malloc((n + 5) * sizeof *argv);
    size_t *argl = weft__malloc((n + 5) * sizeof *argl);
    int rc = -ENOMEM;
    if (argv && argl) {
        argv[0] = "EVALSHA", argv[1] = b->sha[WEFT__S_RESUME], argv[2] = "0";
        argv[3] = b->prefix, argv[4] = b->ttl;
        for (size_t i = 0; i < n; i++) argv[5 + i] = ids[i];
        for (size_t i = 0; i < n + 5; i++) argl[i] = strlen(argv[i]);
        redisReply *r = redisCommandArgv(b->c, (int)(n + 5), argv, argl);
        rc = weft__broker_err(b->c, r);
        if (rc == 0) rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -EPROTO;
        if (r) freeReplyObject(r);
    }
    weft__free(argv);
    weft__free(argl);
    return rc;
}

int weft_broker_counts(weft_broker_t *b, uint64_t *submitted, uint64_t *finished)
{
    if (!b) return -EINVAL;
    int rc;
    redisReply *r = cmd(b, &rc, "MGET %s:n:sub %s:n:fin", b->prefix, b->prefix);
    if (!r) return rc;
    uint64_t v[2] = {0, 0};
    for (size_t i = 0; i < 2 && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            v[i] = strtoull(r->element[i]->str, NULL, 10);
    freeReplyObject(r);
    if (submitted) *submitted = v[0];
    if (finished) *finished = v[1];
    return 0;
}

int weft_broker_wait(weft_broker_t *b, uint64_t n, int64_t timeout_ns)
{
    if (!b) return -EINVAL;
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : weft_now_ns() + (uint64_t)timeout_ns;
    for (;;) {
        uint64_t fin;
        int rc = weft_broker_counts(b, NULL, &fin);
        if (rc) return rc;
        if (fin >= n) return 0;
        if (weft_now_ns() >= deadline) return -ETIMEDOUT;
        /* Sleep until something happens (an event) or 100 ms pass. */
        /* COUNT 1: only the wake-up matters, not the batch of events that woke it. */
        redisReply *r = cmd(b, &rc, "XREAD COUNT 1 BLOCK 100 STREAMS %s:ev $", b->prefix);
        if (!r) return rc;
        freeReplyObject(r);
    }
}

static int field_int(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_STRING ? atoi(r->element[i]->str)
                                                                        : 0;
}

int weft_broker_result(weft_broker_t *b, const char *id, weft_broker_result_t *out)
{
    if (!out) return -EINVAL;
    memset(out, 0, sizeof *out);
    weft_buf_init(&out->value, 0);
    weft_buf_init(&out->error, 0);
    out->status = -EINPROGRESS;
    if (!b || !id) return -EINVAL;
    int rc;
    redisReply *r = cmd(b, &rc, "HMGET %s:t:%s st status del tries wk val err", b->prefix, id);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 7) {
        freeReplyObject(r);
        return -EPROTO;
    }
    if (r->element[0]->type == REDIS_REPLY_STRING) {
        out->state = weft__broker_state(r->element[0]->str, r->element[0]->len);
        /* Not written until the task has an outcome (submit leaves it out). */
        out->status = r->element[1]->type == REDIS_REPLY_STRING ? field_int(r, 1) : -EINPROGRESS;
        out->deliveries = field_int(r, 2);
        out->attempts = field_int(r, 3);
        if (r->element[4]->type == REDIS_REPLY_STRING)
            snprintf(out->worker, sizeof out->worker, "%s", r->element[4]->str);
        if (r->element[5]->type == REDIS_REPLY_STRING)
            rc = weft_buf_append(&out->value, r->element[5]->str, r->element[5]->len);
        if (rc == 0 && r->element[6]->type == REDIS_REPLY_STRING)
            rc = weft_buf_append(&out->error, r->element[6]->str, r->element[6]->len);
    }
    freeReplyObject(r);
    return rc;
}

void weft_broker_result_free(weft_broker_result_t *r)
{
    if (!r) return;
    weft_buf_free(&r->value);
    weft_buf_free(&r->error);
}

int weft_broker_cancel(weft_broker_t *b, const char *id)
{
    if (!b || !id) return -EINVAL;
    int rc;
    redisReply *r =
        cmd(b, &rc, "EVALSHA %s 0 %s %s %s", b->sha[WEFT__S_CANCEL], b->prefix, b->ttl, id);
    if (!r) return rc;
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -EPROTO;
    freeReplyObject(r);
    return v == -2 ? -ENOENT : v == -114 ? -EALREADY : v < 0 ? (int)v : 0;
}

int weft_broker_dead_count(weft_broker_t *b, uint64_t *n)
{
    if (!b || !n) return -EINVAL;
    int rc;
    redisReply *r = cmd(b, &rc, "XLEN %s:dead", b->prefix);
    if (!r) return rc;
    *n = r->type == REDIS_REPLY_INTEGER ? (uint64_t)r->integer : 0;
    freeReplyObject(r);
    return 0;
}

static const redisReply *kv(const redisReply *fields, const char *key)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, key) == 0)
            return fields->element[i + 1];
    return NULL;
}

/* Whoever reads the events asks the workers for the 'running' ones too: P:follow, which the claim
 * script looks up, lives a minute and is renewed every 20 s of reading. Returns 0 or an error. */
static int follow(weft_broker_t *b)
{
    uint64_t now = weft_now_ns();
    if (now < b->follow_next_ns) return 0;
    int rc;
    redisReply *r = cmd(b, &rc, "SET %s:follow 1 PX 60000", b->prefix);
    if (!r) return rc;
    freeReplyObject(r);
    b->follow_next_ns = now + 20000000000ull;
    return 0;
}

int weft_broker_events(weft_broker_t *b, const char *after, weft_broker_event_t *ev, int max,
                       int block_ms)
{
    if (!b || !after || (max > 0 && !ev) || max < 0 || block_ms < 0) return -EINVAL;
    if (max == 0) return 0;
    int rc = follow(b);
    if (rc) return rc;
    redisReply *r = block_ms > 0
                        ? cmd(b, &rc, "XREAD COUNT %d BLOCK %d STREAMS %s:ev %s", max, block_ms,
                              b->prefix, after)
                        : cmd(b, &rc, "XREAD COUNT %d STREAMS %s:ev %s", max, b->prefix, after);
    if (!r) return rc;
    int n = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; i < entries->elements && n < max; i++) {
            const redisReply *e = entries->element[i];
            const redisReply *f = e->element[1];
            weft_broker_event_t *x = &ev[n++];
            memset(x, 0, sizeof *x);
            snprintf(x->stream_id, sizeof x->stream_id, "%s", e->element[0]->str);
            x->ms = strtoull(e->element[0]->str, NULL, 10);
            const redisReply *v;
            if ((v = kv(f, "id"))) snprintf(x->id, sizeof x->id, "%s", v->str);
            if ((v = kv(f, "st"))) x->state = weft__broker_state(v->str, v->len);
            if ((v = kv(f, "wk"))) snprintf(x->worker, sizeof x->worker, "%s", v->str);
            if ((v = kv(f, "status"))) x->status = atoi(v->str);
            if ((v = kv(f, "tries"))) x->attempts = atoi(v->str);
        }
    }
    freeReplyObject(r);
    return n;
}

int weft_broker_workers(weft_broker_t *b, weft_buf_t *out)
{
    if (!b || !out) return -EINVAL;
    int rc;
    redisReply *names = cmd(b, &rc, "SMEMBERS %s:workers", b->prefix);
    if (!names) return rc;
    int live = 0;
    rc = weft_buf_printf(out, "%-24s %-16s %8s %6s %8s %10s  %s\n", "WORKER", "HOST", "PID",
                         "SLOTS", "RUNNING", "DONE", "TASKS");
    for (size_t i = 0; rc == 0 && i < names->elements; i++) {
        const char *name = names->element[i]->str;
        redisReply *h =
            cmd(b, &rc, "HMGET %s:w:%s host pid slots running done tasks", b->prefix, name);
        if (!h) break;
        if (h->elements == 6 && h->element[0]->type == REDIS_REPLY_STRING) {
            live++;
            const char *s[6];
            for (int j = 0; j < 6; j++)
                s[j] = h->element[j]->type == REDIS_REPLY_STRING ? h->element[j]->str : "";
            rc = weft_buf_printf(out, "%-24s %-16s %8s %6s %8s %10s  %s\n", name, s[0], s[1], s[2],
                                 s[3], s[4], s[5]);
        } else {
            freeReplyObject(h);
            /* It stopped heartbeating: forget the name (its entries are reclaimed). */
            h = cmd(b, &rc, "SREM %s:workers %s", b->prefix, name);
            if (!h) break;
        }
        freeReplyObject(h);
    }
    freeReplyObject(names);
    return rc ? rc : live;
}

int weft_broker_forget(weft_broker_t *b, const char *const *ids, size_t n)
{
    if (!b || (n && !ids)) return -EINVAL;
    int erc = ensure(b);
    if (erc) return erc;
    for (size_t i = 0; i < n; i++) redisAppendCommand(b->c, "HGET %s:t:%s st", b->prefix, ids[i]);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(b->c, (void **)&r) != REDIS_OK) return weft__broker_err(b->c, NULL);
        if (r->type == REDIS_REPLY_STRING) {
            weft_broker_state_t st = weft__broker_state(r->str, r->len);
            if (st == WEFT_BROKER_QUEUED || st == WEFT_BROKER_RUNNING || st == WEFT_BROKER_BACKOFF)
                rc = -EBUSY;
        }
        freeReplyObject(r);
    }
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        redisAppendCommand(b->c, "UNLINK %s:t:%s %s:d:%s", b->prefix, ids[i], b->prefix, ids[i]);
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(b->c, (void **)&r) != REDIS_OK) return weft__broker_err(b->c, NULL);
        freeReplyObject(r);
    }
    return 0;
}

int weft_broker_events_last(weft_broker_t *b, char id[32])
{
    if (!b || !id) return -EINVAL;
    int rc = follow(b);
    if (rc) return rc;
    redisReply *r = cmd(b, &rc, "XREVRANGE %s:ev + - COUNT 1", b->prefix);
    if (!r) return rc;
    snprintf(id, 32, "0-0");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1)
        snprintf(id, 32, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    return 0;
}
