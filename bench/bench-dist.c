/* bench-dist.c - end-to-end no-op tasks/s through Redis Streams (weft/broker.h): a submitter and
 * W worker processes on one local Redis ($WEFT_REDIS_URL; bench-dist.sh starts one).
 *
 *   bench-dist [N]   N no-op tasks (default 20000), each mode:
 *     round-trip: submit one task per call, workers read one entry per XREADGROUP (batch 1);
 *     batched:    one pipelined submit, workers read COUNT 128 and record in batches.
 * $WEFT_BENCH_WORKERS (default 2) worker processes, each with one process worker.
 * Then reclaim: 5 times, a worker that holds a task is killed (SIGKILL) while another idles;
 * prints how long until the other runs it, against the lease (1 s; the bound is 2 x lease).
 * Prints "dist <mode> N tasks: T s, R tasks/s", then the floors (floor_run: the fewest Redis
 * commands a task needs, plain and in scripts, one connection), then runs the peers on the same
 * Redis (bench/dist_peer.py: RQ and Celery, N/10 tasks) and prints the ratios. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <hiredis.h>
#include <unistd.h>
#include <weft/broker.h>
#include <weft/procpool.h>
#include <weft/sys.h>

#include "peer.h"

static int pf_noop(const void *arg, size_t len, weft_buf_t *out)
{
    (void)arg, (void)len, (void)out;
    return 0;
}
WEFT_PROCPOOL_FN("bench.noop", pf_noop)

static int pf_hang(const void *arg, size_t len, weft_buf_t *out)
{
    (void)arg, (void)len, (void)out;
    for (;;) pause();
    return 0;
}
WEFT_PROCPOOL_FN("bench.hang", pf_hang)

static weft_broker_worker_t *g_w;
static void on_term(int sig)
{
    (void)sig;
    weft_broker_worker_stop(g_w);
}

static pid_t worker(const char *url, const char *ns, int batch, int slots, int i, uint64_t lease_ms)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    char name[32];
    snprintf(name, sizeof name, "bench%d", i);
    weft_broker_opts_t bo = {.ns = ns};
    weft_broker_worker_opts_t wo = {.name = name,
                                    .procs = 1,
                                    .threads = 1,
                                    .slots = slots,
                                    .batch = batch,
                                    .lease_ms = lease_ms};
    if (weft_broker_worker_create(&g_w, url, &bo, &wo) != 0) _exit(2);
    signal(SIGTERM, on_term);
    weft_broker_worker_run(g_w);
    weft_broker_worker_destroy(g_w);
    _exit(0);
}

static double run(const char *url, const char *mode, long n, int nworkers)
{
    bool rt = strcmp(mode, "round-trip") == 0;
    weft_broker_opts_t bo = {.ns = mode};
    weft_broker_t *b;
    if (weft_broker_create(&b, url, &bo) != 0 || weft_broker_reset(b) != 0) {
        fprintf(stderr, "bench-dist: cannot reach %s\n", url);
        exit(1);
    }
    pid_t w[64];
    for (int i = 0; i < nworkers; i++) w[i] = worker(url, mode, rt ? 1 : 128, rt ? 1 : 256, i, 0);
    char(*ids)[24] = malloc((size_t)n * sizeof *ids);
    weft_broker_task_t *t = calloc((size_t)n, sizeof *t);
    for (long i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "n%ld", i);
        t[i] = (weft_broker_task_t){.id = ids[i], .fn = "bench.noop"};
    }
    uint64_t t0 = weft_now_ns();
    if (rt) {
        for (long i = 0; i < n; i++) weft_broker_submit(b, &t[i], 1);
    } else {
        weft_broker_submit(b, t, (size_t)n);
    }
    double sub_s = (double)(weft_now_ns() - t0) / 1e9;
    weft_broker_wait(b, (uint64_t)n, -1);
    double s = (double)(weft_now_ns() - t0) / 1e9;
    for (int i = 0; i < nworkers; i++) kill(w[i], SIGTERM);
    for (int i = 0; i < nworkers; i++) waitpid(w[i], NULL, 0);
    weft_broker_reset(b);
    weft_broker_destroy(b);
    free(ids);
    free(t);
    printf("dist %-10s %ld tasks, %d workers: %.3f s, %.0f tasks/s (submitting took %.3f s)\n",
           mode, n, nworkers, s, (double)n / s, sub_s);
    fflush(stdout);
    return (double)n / s;
}

/* The floor: what the fewest Redis commands a task needs cost, with no scheduler, no worker
 * process and one connection. Per batch of 128 tasks, pipelined: an XADD each, one XREADGROUP
 * COUNT 128, an HSET each (its state) and one XACK. lua = 1: the same state machine in three
 * scripts per batch (submit: HSET + XADD each; fetch: XREADGROUP, HSET each; complete: HSET
 * each, XACK), the form weft's broker has, to show what the scripts alone cost. */
static const char floor_submit[] = "for i = 1, #ARGV do\n"
                                   "  redis.call('HSET', 'floor:t:'..ARGV[i], 'st', 'queued')\n"
                                   "  redis.call('XADD', 'floor:q', '*', 'id', ARGV[i])\n"
                                   "end\n";
static const char floor_fetch[] =
    "local r = redis.call('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', ARGV[1], 'STREAMS',\n"
    "  'floor:q', '>')\n"
    "local out = {}\n"
    "for _, e in ipairs(r[1][2]) do\n"
    "  redis.call('HSET', 'floor:t:'..e[2][2], 'st', 'running', 'sid', e[1])\n"
    "  out[#out + 1] = {e[1], e[2][2]}\n"
    "end\n"
    "return out\n";
static const char floor_complete[] = "local ids = {}\n"
                                     "for i = 1, #ARGV, 2 do\n"
                                     "  redis.call('HSET', 'floor:t:'..ARGV[i + 1], 'st', 'done')\n"
                                     "  ids[#ids + 1] = ARGV[i]\n"
                                     "end\n"
                                     "redis.call('XACK', 'floor:q', 'g', unpack(ids))\n";

static void floor_reply(redisContext *c, int n)
{
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "bench-dist floor: %s\n", r ? r->str : c->errstr);
            exit(1);
        }
        freeReplyObject(r);
    }
}

static void floor_run(const char *url, long n, bool lua)
{
    const char *h = url + 8, *colon = strrchr(h, ':');
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
    redisContext *c = redisConnect(host, atoi(colon + 1));
    if (!c || c->err) {
        fprintf(stderr, "bench-dist floor: cannot connect to %s: %s\n", url,
                c ? c->errstr : "out of memory");
        exit(1);
    }
    redisAppendCommand(c, "DEL floor:q");
    redisAppendCommand(c, "XGROUP CREATE floor:q g $ MKSTREAM");
    floor_reply(c, 2);
    enum { B = 128 };
    char ids[B][24], entries[B][48], sha[3][41];
    const char *argv[2 * B + 8];
    size_t argl[2 * B + 8];
    const char *src[3] = {floor_submit, floor_fetch, floor_complete};
    for (int i = 0; i < 3; i++) {
        redisReply *r = redisCommand(c, "SCRIPT LOAD %s", src[i]);
        if (!r || r->type != REDIS_REPLY_STRING) {
            fprintf(stderr, "bench-dist floor: SCRIPT LOAD failed: %s\n", r ? r->str : c->errstr);
            exit(1);
        }
        snprintf(sha[i], sizeof sha[i], "%s", r->str);
        freeReplyObject(r);
    }
    uint64_t t0 = weft_now_ns();
    for (long base = 0; base < n; base += B) {
        int m = n - base < B ? (int)(n - base) : B, k = 0;
        for (int i = 0; i < m; i++) snprintf(ids[i], sizeof ids[i], "f%ld", base + i);
        if (lua) {
            argv[k++] = "EVALSHA", argv[k++] = sha[0], argv[k++] = "0";
            for (int i = 0; i < m; i++) argv[k++] = ids[i];
            for (int i = 0; i < k; i++) argl[i] = strlen(argv[i]);
            redisAppendCommandArgv(c, k, argv, argl);
            floor_reply(c, 1);
        } else {
            for (int i = 0; i < m; i++) redisAppendCommand(c, "XADD floor:q * id %s", ids[i]);
            floor_reply(c, m);
        }
        redisReply *r = lua ? redisCommand(c, "EVALSHA %s 0 %d", sha[1], m)
                            : redisCommand(c, "XREADGROUP GROUP g c COUNT %d STREAMS floor:q >", m);
        const redisReply *es = lua ? r : r->element[0]->element[1];
        int got = (int)es->elements;
        for (int i = 0; i < got; i++) {
            const redisReply *e = es->element[i];
            snprintf(entries[i], sizeof entries[i], "%s", e->element[0]->str);
            snprintf(ids[i], sizeof ids[i], "%s",
                     lua ? e->element[1]->str : e->element[1]->element[1]->str);
        }
        freeReplyObject(r);
        k = 0;
        if (lua) {
            argv[k++] = "EVALSHA", argv[k++] = sha[2], argv[k++] = "0";
            for (int i = 0; i < got; i++) argv[k++] = entries[i], argv[k++] = ids[i];
            for (int i = 0; i < k; i++) argl[i] = strlen(argv[i]);
            redisAppendCommandArgv(c, k, argv, argl);
            floor_reply(c, 1);
        } else {
            for (int i = 0; i < got; i++) redisAppendCommand(c, "HSET floor:t:%s st done", ids[i]);
            argv[k++] = "XACK", argv[k++] = "floor:q", argv[k++] = "g";
            for (int i = 0; i < got; i++) argv[k++] = entries[i];
            for (int i = 0; i < k; i++) argl[i] = strlen(argv[i]);
            redisAppendCommandArgv(c, k, argv, argl);
            floor_reply(c, got + 1);
        }
    }
    double s = (double)(weft_now_ns() - t0) / 1e9;
    printf("dist %-10s %ld tasks, 1 client: %.3f s, %.0f tasks/s (XADD, XREADGROUP COUNT %d, "
           "HSET, XACK%s)\n",
           lua ? "floor-lua" : "floor", n, s, (double)n / s, B,
           lua ? ": in 3 scripts per batch" : ", pipelined");
    fflush(stdout);
    redisFree(c);
}

/* Waits until task `id` is RUNNING on worker `wk`; returns when it saw it (ns). */
static uint64_t await_running_on(weft_broker_t *b, const char *id, const char *wk)
{
    for (;;) {
        weft_broker_result_t r;
        int rc = weft_broker_result(b, id, &r);
        bool there = rc == 0 && r.state == WEFT_BROKER_RUNNING && strcmp(r.worker, wk) == 0;
        weft_broker_result_free(&r);
        if (rc) exit(1);
        if (there) return weft_now_ns();
        weft_broker_event_t ev;
        weft_broker_events(b, "$", &ev, 1, 5);
    }
}

/* Reclaim: a worker holding a task is killed with SIGKILL while another one idles; the time
 * until the other one runs the task, against the lease (the bound: 2 x lease). */
static void reclaim(const char *url, uint64_t lease_ms, int reps)
{
    weft_broker_opts_t bo = {.ns = "reclaim"};
    weft_broker_t *b;
    if (weft_broker_create(&b, url, &bo) != 0) exit(1);
    double min = 1e9, max = 0, sum = 0;
    for (int i = 0; i < reps; i++) {
        weft_broker_reset(b);
        pid_t victim = worker(url, "reclaim", 1, 1, 0, lease_ms);
        weft_broker_task_t t = {.id = "held", .fn = "bench.hang"};
        weft_broker_submit(b, &t, 1);
        await_running_on(b, "held", "bench0");
        pid_t rescuer = worker(url, "reclaim", 1, 1, 1, lease_ms);
        for (;;) { /* the rescuer is up (heartbeat written) */
            weft_buf_t list;
            weft_buf_init(&list, 0);
            int live = weft_broker_workers(b, &list);
            weft_buf_free(&list);
            if (live >= 2) break;
            weft_broker_event_t ev;
            weft_broker_events(b, "$", &ev, 1, 5);
        }
        kill(victim, SIGKILL);
        uint64_t t0 = weft_now_ns();
        waitpid(victim, NULL, 0);
        double ms = (double)(await_running_on(b, "held", "bench1") - t0) / 1e6;
        if (ms < min) min = ms;
        if (ms > max) max = ms;
        sum += ms;
        weft_broker_cancel(b, "held"); /* the rescuer kills it */
        weft_broker_wait(b, 1, -1);
        kill(rescuer, SIGTERM);
        waitpid(rescuer, NULL, 0);
    }
    printf("dist reclaim   lease %llu ms, %d kills: taken over after %.0f - %.0f ms (mean %.0f; "
           "%.2f - %.2f x the lease)\n",
           (unsigned long long)lease_ms, reps, min, max, sum / reps, min / (double)lease_ms,
           max / (double)lease_ms);
    fflush(stdout);
    weft_broker_reset(b);
    weft_broker_destroy(b);
}

int main(int argc, char **argv)
{
    long n = bench_arg_n(argc, argv, 20000, "bench-dist");
    const char *url = getenv("WEFT_REDIS_URL");
    if (!url) {
        fprintf(stderr, "bench-dist: set WEFT_REDIS_URL (bench/bench-dist.sh starts a Redis)\n");
        return 2;
    }
    const char *ws = getenv("WEFT_BENCH_WORKERS");
    int nworkers = ws ? atoi(ws) : 2;
    if (nworkers < 1 || nworkers > 64) nworkers = 2;
    /* WEFT_BENCH_ONLY=round-trip|batched|floor|floor-lua|reclaim: that alone, no peers. */
    const char *only = getenv("WEFT_BENCH_ONLY");
    if (only && strncmp(only, "floor", 5) == 0) {
        floor_run(url, n, strcmp(only, "floor-lua") == 0);
        return 0;
    }
    if (only && strcmp(only, "reclaim") == 0) {
        reclaim(url, 1000, 5);
        return 0;
    }
    if (only) return run(url, only, n, nworkers) > 0 ? 0 : 1;
    double rt = run(url, "round-trip", n, nworkers);
    double batched = run(url, "batched", n, nworkers);
    floor_run(url, n, false);
    floor_run(url, n, true);
    reclaim(url, 1000, 5);
    /* Peers on the same Redis (bench/dist_peer.py: python3-rq, python3-celery), fewer tasks:
     * they are slow. */
    long pn = n / 10 < 500 ? 500 : n / 10;
    const char *peers[] = {"rq", "celery"};
    for (int i = 0; i < 2; i++) {
        char args[512], line[512];
        snprintf(args, sizeof args, "%s %ld %d '%s'", peers[i], pn, nworkers, url);
        FILE *f = bench_peer_open("dist_peer.py", args);
        double rate = 0;
        while (f && fgets(line, sizeof line, f)) {
            fputs(line, stdout);
            const char *c = strrchr(line, ',');
            if (c) rate = atof(c + 1);
        }
        bench_peer_close(f, "dist_peer.py");
        if (rate > 0)
            printf("ratio weft/%s: %.1fx (round-trip), %.1fx (batched)\n", peers[i], rt / rate,
                   batched / rate);
        else
            printf("peer %s: did not run (python3-%s installed? apt-get install python3-%s)\n",
                   peers[i], peers[i], peers[i]);
    }
    return 0;
}
