/* `weft demo orders`: the order engine end to end, on this machine, in about half a minute.
 *
 * Starts Redis when redis-server is installed (a throw-away server on a free loopback port, no
 * persistence; otherwise the embedded default: stock in the engine, logistics in-process, and it
 * says so), the payment mock in this process (with latency, 5xx, timeouts and declines), `weft
 * orders serve` on SQLite and, with Redis, `weft orders logistics`; prints the dashboard's URL;
 * runs `weft orders load` (open loop, retries with the same Idempotency-Key) for 20 s at a rate
 * this machine holds, with less stock than orders (so some are rejected); kills the engine with
 * SIGKILL once mid-run and restarts it on the same port; ends with `weft orders audit` (nothing
 * lost, nothing twice, stock exact, every order terminal) and the load's latency table; and stops
 * everything it started (by pid).
 *
 * DESIGN
 * The engine, the worker, the load and the audit run as child processes through their command
 * lines (the stable interface, the same the tests and the benchmarks use). The mock lives in this
 * process, so it survives the engine's death and counts captures across it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/buf.h>
#include <weft/sys.h>

#include "demo/demo.h"
#include "orders/mock.h"
#include "common/cli-int.h"

extern char **environ;

enum { SKUS = 10, KILL_PERCENT = 40 /* of the run */ };

typedef struct demo {
    char dir[64], db[128], redis_url[64], mock_url[96], url[96], log[128], listen[32];
    pid_t redis_pid, serve_pid, logistics_pid;
    int logistics_out; /* the worker's stdout: its summary line when it stops */
    orders_mock_t *mock;
} demo_t;

/* ---- processes ---- */

/* Starts argv with stdout to a pipe (*out_fd, if out_fd) or /dev/null, stderr to `log` (append).
 * Returns the pid or -1. */
static pid_t spawn(char *const *argv, int *out_fd, const char *log)
{
    int p[2] = {-1, -1};
    if (out_fd && pipe2(p, O_CLOEXEC) < 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out_fd)
        posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
    else
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (out_fd) {
        close(p[1]);
        if (rc != 0)
            close(p[0]);
        else
            *out_fd = p[0];
    }
    return rc == 0 ? pid : -1;
}

/* Reads the child's stdout until a line holds "listening on http://"; copies the URL. */
static int read_url(int fd, char *url, size_t urlsz, int timeout_ms)
{
    char buf[1024];
    size_t n = 0;
    uint64_t deadline = weft_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (weft_now_ns() < deadline && n < sizeof buf - 1) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0) continue;
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0) return -1; /* the child exited */
        n += (size_t)r;
        buf[n] = '\0';
        char *u = strstr(buf, "listening on http://");
        if (u && strchr(u, '\n')) {
            u += strlen("listening on ");
            u[strcspn(u, " \n")] = '\0';
            snprintf(url, urlsz, "%s", u);
            return 0;
        }
    }
    return -1;
}

static void stop_child(pid_t *pid)
{
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        usleep(100000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0) close(s);
    return port;
}

/* Starts redis-server if installed. Returns 0, or -ENOENT (not installed) / -EIO. */
static int start_redis(demo_t *d)
{
    int port = free_port();
    if (port < 0) return -EIO;
    char ps[16], dir[80];
    snprintf(ps, sizeof ps, "%d", port);
    snprintf(dir, sizeof dir, "%s", d->dir);
    char *argv[] = {"redis-server", "--bind", "127.0.0.1", "--port", ps,  "--save", "",
                    "--appendonly", "no",     "--dir",     dir,      NULL};
    d->redis_pid = spawn(argv, NULL, d->log);
    if (d->redis_pid < 0) {
        d->redis_pid = 0;
        return -ENOENT;
    }
    for (int i = 0; i < 100; i++) {
        redisContext *c = redisConnect("127.0.0.1", port);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (c) redisFree(c);
        if (ok) {
            snprintf(d->redis_url, sizeof d->redis_url, "redis://127.0.0.1:%d", port);
            return 0;
        }
        if (waitpid(d->redis_pid, NULL, WNOHANG) == d->redis_pid) {
            d->redis_pid = 0;
            return -ENOENT; /* exec failed in the child, or redis exited */
        }
        usleep(50000);
    }
    stop_child(&d->redis_pid);
    return -EIO;
}

/* Starts `weft orders serve` (with Redis if d->redis_url[0]) on d->listen (127.0.0.1:0 the first
 * time, then the port it got, so that a restarted engine is where clients retry). Returns 0 or
 * -1. */
static int start_serve(demo_t *d)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)weft_demo_self();
    argv[n++] = "orders";
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = d->listen;
    argv[n++] = "--db";
    argv[n++] = d->db;
    argv[n++] = "--payment";
    argv[n++] = d->mock_url;
    if (d->redis_url[0]) {
        argv[n++] = "--redis";
        argv[n++] = d->redis_url;
    }
    argv[n] = NULL;
    int fd = -1;
    d->serve_pid = spawn(argv, &fd, d->log);
    if (d->serve_pid < 0) {
        d->serve_pid = 0;
        return -1;
    }
    int rc = read_url(fd, d->url, sizeof d->url, 30000);
    close(fd);
    if (rc < 0) stop_child(&d->serve_pid);
    const char *port = rc == 0 ? strrchr(d->url, ':') : NULL;
    if (port) snprintf(d->listen, sizeof d->listen, "127.0.0.1%s", port);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void stop_all(demo_t *d)
{
    stop_child(&d->serve_pid);
    stop_child(&d->logistics_pid);
    stop_child(&d->redis_pid);
    if (d->logistics_out >= 0) close(d->logistics_out);
    d->logistics_out = -1;
    orders_mock_stop(d->mock);
    d->mock = NULL;
    if (d->dir[0]) nftw(d->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs `weft orders audit`, with the ids the load got 201 for in `acked`; prints its lines.
 * Returns its exit status, or -1. */
static int run_audit(const demo_t *d, const char *acked)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)weft_demo_self();
    argv[n++] = "orders";
    argv[n++] = "audit";
    argv[n++] = "--db";
    argv[n++] = (char *)d->db;
    argv[n++] = "--payment";
    argv[n++] = (char *)d->mock_url;
    argv[n++] = "--acked";
    argv[n++] = (char *)acked;
    argv[n++] = "--wait";
    argv[n++] = "60";
    if (d->redis_url[0]) {
        argv[n++] = "--redis";
        argv[n++] = (char *)d->redis_url;
    }
    argv[n] = NULL;
    int fd = -1;
    pid_t pid = spawn(argv, &fd, d->log);
    if (pid < 0) return -1;
    char buf[4096];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)r, stdout);
    close(fd);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static double since(uint64_t t0)
{
    return (double)(weft_now_ns() - t0) / 1e9;
}

static int demo_orders(int argc, char **argv)
{
    /* --seconds S: the load's length (default 20; the test may shorten it). */
    int seconds = 20;
    if (argc == 3 && strcmp(argv[1], "--seconds") == 0 && atoi(argv[2]) >= 4 &&
        atoi(argv[2]) <= 3600)
        seconds = atoi(argv[2]);
    else if (argc != 1) {
        fprintf(stderr, "usage: weft demo orders [--seconds 4..3600]\n");
        return WEFT_EXIT_USAGE;
    }
    weft_demo_heading("weft orders: the order engine end to end");
    demo_t d = {.logistics_out = -1};
    snprintf(d.listen, sizeof d.listen, "127.0.0.1:0");
    snprintf(d.dir, sizeof d.dir, "/tmp/weft-demo-orders-XXXXXX");
    if (!mkdtemp(d.dir)) {
        fprintf(stderr, "weft demo orders: cannot create a temporary directory\n");
        return WEFT_EXIT_INTERNAL;
    }
    snprintf(d.db, sizeof d.db, "sqlite:%s/orders.db", d.dir);
    snprintf(d.log, sizeof d.log, "%s/log", d.dir);
    int rc = WEFT_EXIT_OK;

    int r = start_redis(&d);
    if (r == 0)
        printf("Redis:     %s (redis-server started for this demo, no persistence)\n", d.redis_url);
    else
        printf("Redis:     %s: the embedded default instead (stock in the engine, logistics "
               "in-process)\n",
               r == -ENOENT ? "redis-server is not installed" : "redis-server did not start");
    orders_mock_opts_t mo = {
        .p50_ms = 20, .p99_ms = 150, .fail_rate = 0.05, .timeout_rate = 0.01, .decline_rate = 0.03};
    if (orders_mock_start(&mo, &d.mock, d.mock_url, sizeof d.mock_url) < 0) {
        fprintf(stderr, "weft demo orders: the payment mock did not start\n");
        stop_all(&d);
        return WEFT_EXIT_INTERNAL;
    }
    printf("payment:   %s (the mock, in this process: latency p50 20 ms, p99 150 ms; 5%% "
           "answered 500, 1%% never answered, 3%% declined)\n",
           d.mock_url);
    if (start_serve(&d) < 0 && d.redis_url[0]) {
        printf("engine:    did not start with --redis; trying the embedded default\n");
        d.redis_url[0] = '\0';
        stop_child(&d.redis_pid);
        start_serve(&d);
    }
    if (!d.serve_pid) {
        fprintf(stderr, "weft demo orders: weft orders serve did not start (log: %s)\n", d.log);
        stop_all(&d);
        return WEFT_EXIT_FAILED;
    }
    printf("engine:    %s (weft orders serve, SQLite %s%s)\n", d.url, d.db + 7,
           d.redis_url[0] ? ", Redis stock (lua)" : "");
    if (d.redis_url[0]) {
        char *la[] = {(char *)weft_demo_self(),
                      "orders",
                      "logistics",
                      "--redis",
                      d.redis_url,
                      "--db",
                      d.db,
                      "--quiet",
                      NULL};
        d.logistics_pid = spawn(la, &d.logistics_out, d.log);
        if (d.logistics_pid < 0) d.logistics_pid = 0;
        printf("logistics: weft orders logistics (consumer group on weft:ship)\n");
    }
    printf("\ndashboard: %s/  <- open it in a browser now: orders/s, stage p50/p99, workers, "
           "queues, stock; it keeps going across the restart and shows the gap\n",
           d.url);

    /* A rate this machine holds with room to spare (the engine did ~8,000/s on 2 cores with
     * SQLite); less stock than orders, so that the last ones are rejected. */
    int cpus = weft_cpu_count();
    int rate = 250 * (cpus > 0 ? cpus : 1);
    if (rate > 1000) rate = 1000;
    long stock = (long)rate * seconds * 9 / 10 / SKUS;
    char rates[16], secs[16], skus[16], stocks[24], acked[96], lout[96];
    snprintf(rates, sizeof rates, "%d", rate);
    snprintf(secs, sizeof secs, "%d", seconds);
    snprintf(skus, sizeof skus, "%d", SKUS);
    snprintf(stocks, sizeof stocks, "%ld", stock);
    snprintf(acked, sizeof acked, "%s/acked", d.dir);
    snprintf(lout, sizeof lout, "%s/load.out", d.dir);
    printf("load:      weft orders load --rate %d --duration %d --skus %d --stock %ld (open loop, "
           "%d cores here; %ld units for ~%d orders: ~10%% rejected at the end)\n",
           rate, seconds, SKUS, stock, cpus, stock * SKUS, rate * seconds);
    char *lav[] = {(char *)weft_demo_self(),
                   "orders",
                   "load",
                   "--url",
                   d.url,
                   "--rate",
                   rates,
                   "--duration",
                   secs,
                   "--skus",
                   skus,
                   "--stock",
                   stocks,
                   "--retry-for",
                   "60",
                   "--timeout",
                   "5",
                   "--sample",
                   "1",
                   "--drain",
                   "30",
                   "--acked",
                   acked,
                   NULL};
    fflush(stdout);
    int lfd = -1;
    uint64_t t0 = weft_now_ns();
    pid_t load_pid = spawn(lav, &lfd, d.log);
    if (load_pid < 0) {
        fprintf(stderr, "weft demo orders: weft orders load did not start\n");
        stop_all(&d);
        return WEFT_EXIT_FAILED;
    }

    /* Mid-run: SIGKILL the engine (no shutdown, whatever it holds in flight) and restart it on
     * the same port; the load keeps retrying unacknowledged orders with the same key. */
    double at = seconds * KILL_PERCENT / 100.0;
    while (since(t0) < at && waitpid(load_pid, NULL, WNOHANG) == 0) usleep(20000);
    double tk = since(t0);
    kill(d.serve_pid, SIGKILL);
    waitpid(d.serve_pid, NULL, 0);
    d.serve_pid = 0;
    printf("\nkill -9:   the engine at %.1f s into the load\n", tk);
    fflush(stdout);
    uint64_t tr = weft_now_ns();
    for (int i = 0; i < 50 && start_serve(&d) < 0; i++) usleep(200000); /* port in TIME_WAIT */
    if (!d.serve_pid) {
        fprintf(stderr, "weft demo orders: the engine did not restart (log: %s)\n", d.log);
        kill(load_pid, SIGTERM);
        waitpid(load_pid, NULL, 0);
        close(lfd);
        stop_all(&d);
        return WEFT_EXIT_FAILED;
    }
    printf("restarted: %s again after %.0f ms (it resumes the orders it had accepted)\n", d.url,
           since(tr) * 1e3);
    printf("\nthe load runs to its end, then reads back every acknowledged order...\n");
    fflush(stdout);

    /* The latency table: what the load prints when it ends. */
    weft_buf_t table;
    weft_buf_init(&table, 1 << 20);
    char buf[4096];
    ssize_t n;
    while ((n = read(lfd, buf, sizeof buf)) > 0) weft_buf_append(&table, buf, (size_t)n);
    close(lfd);
    int status = 0;
    waitpid(load_pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = WEFT_EXIT_FAILED;

    orders_mock_stats_t ms;
    orders_mock_stats(d.mock, &ms);
    printf("\npayment mock: %llu requests, %llu captures, %llu declines, %llu injected 500s, "
           "%llu timeouts; orders captured more than once: %llu\n",
           (unsigned long long)ms.requests, (unsigned long long)ms.captures,
           (unsigned long long)ms.declines, (unsigned long long)ms.injected_failures,
           (unsigned long long)ms.injected_timeouts,
           (unsigned long long)ms.orders_captured_more_than_once);
    if (ms.orders_captured_more_than_once) rc = WEFT_EXIT_FAILED;

    printf("\naudit (weft orders audit --acked: every acknowledged order, across the kill):\n");
    fflush(stdout);
    int a = run_audit(&d, acked);
    if (a != 0) {
        printf("  %s\n", a == WEFT_EXIT_USAGE ? "(not available in this build)" : "FAILED");
        if (a != WEFT_EXIT_USAGE) rc = WEFT_EXIT_FAILED;
    }
    if (d.logistics_pid) {
        stop_child(&d.logistics_pid);
        char line[512];
        ssize_t k = read(d.logistics_out, line, sizeof line - 1);
        if (k > 0) {
            line[k] = '\0';
            printf("\nlogistics worker: %s",
                   strstr(line, "applied") ? strstr(line, "applied") : line);
        }
    }
    printf("\nlatency (weft orders load: acknowledgement from each order's scheduled start, "
           "completion from the engine's timestamps):\n%.*s",
           (int)table.len, table.data ? table.data : "");
    if (rc != WEFT_EXIT_OK && WIFEXITED(status) && WEXITSTATUS(status) != 0)
        printf("the load exited %d (some order was never acknowledged)\n", WEXITSTATUS(status));
    printf("\nstopping the engine, the worker, Redis and the mock.\n");
    weft_buf_free(&table);
    stop_all(&d);
    return rc;
}

WEFT_DEMO("orders", 40, demo_orders,
          "the order engine: Redis, payment mock, 20 s of load, kill -9 mid-run, audit, latency")
