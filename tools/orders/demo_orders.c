/* `weft demo orders`: the order engine end to end, on this machine, in half a minute.
 *
 * Starts Redis when redis-server is installed (a throw-away server on a free loopback port, no
 * persistence; otherwise the embedded default: stock in the engine, logistics in-process, and it
 * says so), the payment mock in this process (with latency, 5xx, timeouts and declines), `weft
 * orders serve` on SQLite and, with Redis, `weft orders logistics`; sends a burst of orders on
 * a few SKUs with less stock than orders (so some are rejected), waits until every order is
 * terminal, prints the outcomes, the per-stage latencies from GET /orders/{id}, the mock's
 * capture counts and `weft orders audit`, and stops everything it started (by pid).
 *
 * DESIGN
 * The engine and the worker run as child processes through their command lines (the stable
 * interface, the same the tests and the benchmark use); the burst is BURST_THREADS threads, each
 * with one keep-alive libcurl handle and its own weft_hist, merged at the end.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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
#include <weft/hist.h>
#include <weft/sys.h>

#include "demo/demo.h"
#include "orders/mock.h"
#include "common/cli-int.h"

extern char **environ;

enum { BURST_THREADS = 8, BURST_ORDERS = 2000, SKUS = 10, STOCK_PER_SKU = 150, MAX_STAGES = 8 };

typedef struct demo {
    char dir[64], db[128], redis_url[64], mock_url[96], url[96], log[128];
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

/* Starts `weft orders serve` (with Redis if d->redis_url[0]). Returns 0 or -1. */
static int start_serve(demo_t *d)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)weft_demo_self();
    argv[n++] = "orders";
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
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

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    return weft_buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

static long http(CURL *c, const char *method, const char *url, const char *key, const char *body,
                 weft_buf_t *out)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char kh[300];
    if (key) {
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
        h = curl_slist_append(h, kh);
    }
    weft_buf_reset(out);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return status;
}

/* ---- the burst ---- */

typedef struct burst {
    const demo_t *d;
    int index;
    char (*ids)[64]; /* this thread's slice of the order ids ("" for a refused order) */
    int n, created, other;
    weft_hist_t ack_us;
} burst_t;

static void *burst_main(void *arg)
{
    burst_t *b = arg;
    CURL *c = curl_easy_init();
    weft_buf_t out;
    weft_buf_init(&out, 1 << 16);
    char url[160], key[64], body[256];
    snprintf(url, sizeof url, "%s/orders", b->d->url);
    uint64_t rng = 0x9e3779b97f4a7c15u * (uint64_t)(b->index + 1);
    for (int i = 0; i < b->n && c; i++) {
        snprintf(key, sizeof key, "demo-%d-%d", b->index, i);
        snprintf(body, sizeof body,
                 "{\"user\":\"u%d\",\"items\":[{\"sku\":\"sku-%d\",\"qty\":1}],"
                 "\"amount_cents\":%d,\"payment_token\":\"tok_%s\"}",
                 i % 50, (int)(weft_rand(&rng) % SKUS) + 1, 999 + (int)(weft_rand(&rng) % 9000),
                 key);
        uint64_t t0 = weft_now_ns();
        long st = http(c, "POST", url, key, body, &out);
        weft_hist_record(&b->ack_us, (weft_now_ns() - t0) / 1000);
        b->ids[i][0] = '\0';
        json_t *j = st == 201 ? json_loadb(out.data, out.len, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(j, "id"));
        if (id) {
            snprintf(b->ids[i], sizeof b->ids[i], "%s", id);
            b->created++;
        } else {
            b->other++;
        }
        json_decref(j);
    }
    weft_buf_free(&out);
    if (c) curl_easy_cleanup(c);
    return NULL;
}

/* ---- results ---- */

typedef struct stage_hist {
    char name[32];
    weft_hist_t ms;
    uint64_t retried; /* orders whose stage took more than one attempt */
} stage_hist_t;

typedef struct results {
    int shipped, rejected, payment_failed, pending;
    weft_hist_t done_ms;
    stage_hist_t st[MAX_STAGES];
    int nst;
} results_t;

static stage_hist_t *stage(results_t *r, const char *name)
{
    for (int i = 0; i < r->nst; i++)
        if (strcmp(r->st[i].name, name) == 0) return &r->st[i];
    if (r->nst == MAX_STAGES) return NULL;
    stage_hist_t *s = &r->st[r->nst++];
    snprintf(s->name, sizeof s->name, "%s", name);
    weft_hist_init(&s->ms);
    return s;
}

/* Polls GET /orders/{id} until every order is terminal or the deadline passes. */
static void collect(const demo_t *d, char (*ids)[64], int n, results_t *r)
{
    CURL *c = curl_easy_init();
    weft_buf_t out;
    weft_buf_init(&out, 1 << 16);
    char url[200];
    bool *done = calloc((size_t)n, sizeof *done);
    uint64_t deadline = weft_now_ns() + 60 * 1000000000ull;
    int left = n;
    for (int i = 0; done && i < n; i++) {
        if (ids[i][0]) continue;
        done[i] = true; /* not accepted: nothing to wait for */
        left--;
    }
    while (left > 0 && weft_now_ns() < deadline && c && done) {
        for (int i = 0; i < n; i++) {
            if (done[i]) continue;
            snprintf(url, sizeof url, "%s/orders/%s", d->url, ids[i]);
            if (http(c, "GET", url, NULL, NULL, &out) != 200) continue;
            json_t *j = json_loadb(out.data, out.len, 0, NULL);
            const char *s = json_string_value(json_object_get(j, "status"));
            bool term = s && (strcmp(s, "shipped") == 0 || strcmp(s, "rejected") == 0 ||
                              strcmp(s, "payment_failed") == 0);
            if (term) {
                done[i] = true;
                left--;
                if (strcmp(s, "shipped") == 0) r->shipped++;
                if (strcmp(s, "rejected") == 0) r->rejected++;
                if (strcmp(s, "payment_failed") == 0) r->payment_failed++;
                json_int_t c0 = json_integer_value(json_object_get(j, "created_ms"));
                json_int_t c1 = json_integer_value(json_object_get(j, "completed_ms"));
                if (strcmp(s, "shipped") == 0 && c1 >= c0 && c0 > 0)
                    weft_hist_record(&r->done_ms, (uint64_t)(c1 - c0));
                const char *k;
                json_t *v;
                json_object_foreach(json_object_get(j, "stages"), k, v)
                {
                    stage_hist_t *sh = stage(r, k);
                    json_t *ms = json_object_get(v, "ms");
                    if (!sh || !json_is_number(ms)) continue;
                    weft_hist_record(&sh->ms, (uint64_t)json_number_value(ms));
                    if (json_integer_value(json_object_get(v, "attempts")) > 1) sh->retried++;
                }
            }
            json_decref(j);
        }
        if (left > 0) usleep(200000);
    }
    r->pending = left;
    free(done);
    weft_buf_free(&out);
    if (c) curl_easy_cleanup(c);
}

/* Runs `weft orders audit`, with the ids the burst got 201 for in `acked`; prints its lines.
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

static int demo_orders(int argc, char **argv)
{
    weft_demo_heading("weft orders: the order engine end to end");
    demo_t d = {.logistics_out = -1};
    snprintf(d.dir, sizeof d.dir, "/tmp/weft-demo-orders-XXXXXX");
    if (!mkdtemp(d.dir)) {
        fprintf(stderr, "weft demo orders: cannot create a temporary directory\n");
        return WEFT_EXIT_INTERNAL;
    }
    snprintf(d.db, sizeof d.db, "sqlite:%s/orders.db", d.dir);
    snprintf(d.log, sizeof d.log, "%s/log", d.dir);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = WEFT_EXIT_OK;

    int r = start_redis(&d);
    if (r == 0)
        printf("Redis:    %s (redis-server started for this demo, no persistence)\n", d.redis_url);
    else
        printf("Redis:    %s: the embedded default instead (stock in the engine, logistics "
               "in-process)\n",
               r == -ENOENT ? "redis-server is not installed" : "redis-server did not start");
    orders_mock_opts_t mo = {
        .p50_ms = 20, .p99_ms = 150, .fail_rate = 0.05, .timeout_rate = 0.01, .decline_rate = 0.03};
    if (orders_mock_start(&mo, &d.mock, d.mock_url, sizeof d.mock_url) < 0) {
        fprintf(stderr, "weft demo orders: the payment mock did not start\n");
        stop_all(&d);
        return WEFT_EXIT_INTERNAL;
    }
    printf("payment:  %s (the mock, in this process: latency p50 20 ms, p99 150 ms; 5%% "
           "answered 500, 1%% never answered, 3%% declined)\n",
           d.mock_url);
    if (start_serve(&d) < 0 && d.redis_url[0]) {
        printf("engine:   did not start with --redis; trying the embedded default\n");
        d.redis_url[0] = '\0';
        stop_child(&d.redis_pid);
        start_serve(&d);
    }
    if (!d.serve_pid) {
        fprintf(stderr, "weft demo orders: weft orders serve did not start (log: %s)\n", d.log);
        stop_all(&d);
        return WEFT_EXIT_FAILED;
    }
    printf("engine:   %s (weft orders serve, SQLite %s%s)\n", d.url, d.db + 7,
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

    /* Stock: fewer units than orders, so that some orders are rejected. */
    CURL *c = curl_easy_init();
    weft_buf_t out;
    weft_buf_init(&out, 1 << 16);
    char url[200], body[64];
    for (int i = 1; i <= SKUS && c; i++) {
        snprintf(url, sizeof url, "%s/stock/sku-%d", d.url, i);
        snprintf(body, sizeof body, "{\"qty\":%d}", STOCK_PER_SKU);
        http(c, "PUT", url, NULL, body, &out);
    }
    printf("\nstock:    %d units on %d SKUs; the burst asks for %d\n", SKUS * STOCK_PER_SKU, SKUS,
           BURST_ORDERS);

    char(*ids)[64] = calloc(BURST_ORDERS, sizeof *ids);
    burst_t *b = calloc(BURST_THREADS, sizeof *b);
    pthread_t th[BURST_THREADS];
    uint64_t t0 = weft_now_ns();
    int started = 0;
    for (int i = 0; ids && b && i < BURST_THREADS; i++) {
        b[i] = (burst_t){.d = &d, .index = i, .n = BURST_ORDERS / BURST_THREADS};
        b[i].ids = ids + i * (BURST_ORDERS / BURST_THREADS);
        weft_hist_init(&b[i].ack_us);
        if (pthread_create(&th[i], NULL, burst_main, &b[i]) == 0) started++;
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    double secs = (double)(weft_now_ns() - t0) / 1e9;
    weft_hist_t ack;
    weft_hist_init(&ack);
    int created = 0, other = 0;
    for (int i = 0; i < started; i++) {
        weft_hist_merge(&ack, &b[i].ack_us);
        created += b[i].created;
        other += b[i].other;
    }
    printf("burst:    %d orders from %d connections in %.2f s (%.0f/s): %d accepted (201), %d "
           "other\n",
           created + other, started, secs, (created + other) / (secs > 0 ? secs : 1), created,
           other);
    printf("          acknowledgement p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           weft_hist_quantile(&ack, 0.5) / 1e3, weft_hist_quantile(&ack, 0.99) / 1e3,
           (double)ack.max / 1e3);

    results_t *res = calloc(1, sizeof *res);
    if (res && ids) {
        weft_hist_init(&res->done_ms);
        collect(&d, ids, started * (BURST_ORDERS / BURST_THREADS), res);
        printf("outcomes: %d shipped, %d rejected (out of stock), %d payment_failed, %d not "
               "terminal after 60 s\n",
               res->shipped, res->rejected, res->payment_failed, res->pending);
        printf("\nper-stage latency (ms, from GET /orders/{id}):\n");
        printf("  %-22s %8s %8s %8s %8s\n", "stage", "p50", "p99", "max", "retried");
        for (int i = 0; i < res->nst; i++) {
            stage_hist_t *s = &res->st[i];
            printf("  %-22s %8llu %8llu %8llu %8llu\n", s->name,
                   (unsigned long long)weft_hist_quantile(&s->ms, 0.5),
                   (unsigned long long)weft_hist_quantile(&s->ms, 0.99),
                   (unsigned long long)(s->ms.count ? s->ms.max : 0),
                   (unsigned long long)s->retried);
        }
        printf("  %-22s %8llu %8llu %8llu\n", "accepted -> shipped",
               (unsigned long long)weft_hist_quantile(&res->done_ms, 0.5),
               (unsigned long long)weft_hist_quantile(&res->done_ms, 0.99),
               (unsigned long long)(res->done_ms.count ? res->done_ms.max : 0));
        /* Exact stock: what shipped plus what is left is what there was. */
        long long left = 0;
        for (int i = 1; i <= SKUS && c; i++) {
            snprintf(url, sizeof url, "%s/stock/sku-%d", d.url, i);
            json_t *j = http(c, "GET", url, NULL, NULL, &out) == 200
                            ? json_loadb(out.data, out.len, 0, NULL)
                            : NULL;
            left += json_integer_value(json_object_get(j, "available"));
            json_decref(j);
        }
        printf("\nstock:    %d shipped + %lld left = %lld of %d units%s\n", res->shipped, left,
               res->shipped + left, SKUS * STOCK_PER_SKU,
               res->shipped + left == SKUS * STOCK_PER_SKU ? " (exact)" : " (WRONG)");
        if (res->pending || res->shipped + left != SKUS * STOCK_PER_SKU) rc = WEFT_EXIT_FAILED;
    }
    orders_mock_stats_t ms;
    orders_mock_stats(d.mock, &ms);
    printf("\npayment mock: %llu requests, %llu captures, %llu declines, %llu injected 500s, "
           "%llu timeouts; orders captured more than once: %llu\n",
           (unsigned long long)ms.requests, (unsigned long long)ms.captures,
           (unsigned long long)ms.declines, (unsigned long long)ms.injected_failures,
           (unsigned long long)ms.injected_timeouts,
           (unsigned long long)ms.orders_captured_more_than_once);
    if (ms.orders_captured_more_than_once) rc = WEFT_EXIT_FAILED;

    printf("\naudit (weft orders audit):\n");
    fflush(stdout);
    char acked[96];
    snprintf(acked, sizeof acked, "%s/acked", d.dir);
    FILE *af = fopen(acked, "w");
    for (int i = 0; af && ids && i < BURST_ORDERS; i++)
        if (ids[i][0]) fprintf(af, "%s\n", ids[i]);
    if (af) fclose(af);
    int a = run_audit(&d, acked);
    if (a != 0) {
        printf("  %s\n", a == WEFT_EXIT_USAGE ? "(not available in this build)" : "FAILED");
        if (a != WEFT_EXIT_USAGE) rc = WEFT_EXIT_FAILED;
    }
    if (d.logistics_pid) {
        stop_child(&d.logistics_pid);
        char line[512];
        ssize_t n = read(d.logistics_out, line, sizeof line - 1);
        if (n > 0) {
            line[n] = '\0';
            printf("\nlogistics worker: %s",
                   strstr(line, "applied") ? strstr(line, "applied") : line);
        }
    }
    printf("\nstopping the engine, the worker, Redis and the mock.\n");
    free(res);
    free(ids);
    free(b);
    weft_buf_free(&out);
    if (c) curl_easy_cleanup(c);
    stop_all(&d);
    curl_global_cleanup();
    return rc;
}

WEFT_DEMO("orders", 40, demo_orders,
          "the order engine: Redis, payment mock, a burst, stage latencies, audit")
