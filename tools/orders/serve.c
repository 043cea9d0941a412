/* `weft orders serve`: the order engine as a service (issue 9). Parses the command line, starts
 * the payment mock when no --payment is given, the engine (engine.c) and its HTTP API (api.c),
 * prints "weft orders: listening on http://H:P", and stops cleanly on SIGTERM or SIGINT.
 *
 * DESIGN
 * Signals are blocked before any thread starts, so every thread inherits the mask and the main
 * thread alone takes SIGTERM/SIGINT with sigtimedwait: no handler runs on an arbitrary thread.
 * Stop order: the HTTP API first (no new requests; every request already handed to the engine
 * is answered), then the engine (group commits finish; payment attempts in progress are dropped
 * and resume on the next start from the database), then the mock.
 * Memory: every 10 s, while it waits, the main thread gives glibc's free pages back to the system
 * (malloc_trim). A stall (a slow fsync, a paused process) piles thousands of orders into the
 * queues; once they drain, their memory is free but scattered through the HTTP, intake and loop
 * threads' arenas, and glibc returns it only from the top of a heap. Without the trim, RSS kept
 * the high-water mark of every such surge: +13 % over the 1-hour soak at 5,000/s (4,514/s
 * achieved); 41 -> 56 MiB after two debugger pauses of about a second in a 12-minute run. With
 * it, RSS came back to 41.5 MiB within a minute of each of two 2 s SIGSTOPs. Cost, measured at
 * 5,000/s: 0.5-9 ms per call (median 2) on this otherwise idle thread; allocating threads wait
 * for an arena only while it is trimmed.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orders/api.h"
#include "orders/engine.h"
#include "orders/mock.h"
#include "orders/orders.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weft orders serve [--listen HOST:PORT] [--db URL] [--redis URL]\n"
            "                         [--payment URL] [--stock lock|lua] [OPTIONS]\n\n"
            "Runs the order engine: POST /orders, GET /orders/{id}, PUT|GET /stock/{sku},\n"
            "GET /healthz, GET /stats (docs/orders.md). Each order goes through create,\n"
            "reserve stock, payment, logistics and statistics; 201 is sent only once the order\n"
            "is committed, and on restart every unfinished order resumes from the database.\n\n"
            "  --listen HOST:PORT   address to serve on (default 127.0.0.1:8080; port 0: any)\n"
            "  --db URL             sqlite:PATH (default sqlite:weft-orders.db) or\n"
            "                       postgresql://USER@HOST:PORT/DB\n"
            "  --redis URL          redis://HOST:PORT: stock decided in Redis (--stock) and\n"
            "                       orders handed to `weft orders logistics` by XADD weft:ship;\n"
            "                       without it the engine keeps stock and ships by itself\n"
            "  --payment URL        the payment API (POST URL/pay); without it a payment mock\n"
            "                       runs inside this process (said on start-up)\n"
            "  --stock lua|lock     with --redis: one atomic script per order (lua, default), or\n"
            "                       a lock per SKU with a fencing token (lock; serialises a SKU)\n"
            "  --http-threads N     HTTP polling threads (default 2)\n"
            "  --max-live N         orders in flight before answering 503 (default 50000)\n"
            "  --payment-timeout MS one payment attempt (default 1000); retried, same key\n"
            "  --payment-concurrency N  payment calls in flight at once (default 256); the\n"
            "                       others wait their turn\n"
            "  -h, --help           this text\n\n"
            "Stops on SIGTERM or SIGINT: stops accepting, answers what it accepted, exits 0.\n"
            "Exit codes: 0 stopped cleanly, 1 could not start (database, port), 2 usage error,\n"
            "3 internal error.\n");
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"db", required_argument, NULL, 'd'},
        {"redis", required_argument, NULL, 'r'},
        {"payment", required_argument, NULL, 'p'},
        {"stock", required_argument, NULL, 's'},
        {"http-threads", required_argument, NULL, 't'},
        {"max-live", required_argument, NULL, 'm'},
        {"payment-timeout", required_argument, NULL, 'T'},
        {"payment-concurrency", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = "127.0.0.1:8080";
    engine_opts_t eo = {.db_url = "sqlite:weft-orders.db", .stock = ENGINE_STOCK_LUA};
    long threads = 2, v;
    int c;
    optind = 1;
    opterr = 0;
    bool stock_given = false;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen = optarg;
            break;
        case 'd':
            eo.db_url = optarg;
            break;
        case 'r':
            eo.redis_url = optarg;
            break;
        case 'p':
            eo.payment_url = optarg;
            break;
        case 's':
            stock_given = true;
            if (strcmp(optarg, "lock") == 0)
                eo.stock = ENGINE_STOCK_LOCK;
            else if (strcmp(optarg, "lua") == 0)
                eo.stock = ENGINE_STOCK_LUA;
            else
                return weft_cli_usage_error("orders serve", "--stock must be lock or lua");
            break;
        case 't':
            if (weft_cli_parse_int(optarg, 1, 64, &threads) < 0)
                return weft_cli_usage_error("orders serve", "--http-threads must be 1..64");
            break;
        case 'm':
            if (weft_cli_parse_int(optarg, 1, 10000000, &v) < 0)
                return weft_cli_usage_error("orders serve", "--max-live must be 1..10000000");
            eo.max_live = (size_t)v;
            break;
        case 'T':
            if (weft_cli_parse_int(optarg, 1, 600000, &v) < 0)
                return weft_cli_usage_error("orders serve", "--payment-timeout must be 1..600000");
            eo.pay_timeout_ms = (uint32_t)v;
            break;
        case 'P':
            if (weft_cli_parse_int(optarg, 1, 8192, &v) < 0)
                return weft_cli_usage_error("orders serve",
                                            "--payment-concurrency must be 1..8192");
            eo.pay_concurrency = (uint32_t)v;
            break;
        case 'h':
            usage(stdout);
            return WEFT_EXIT_OK;
        default:
            return weft_cli_usage_error("orders serve", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return weft_cli_usage_error("orders serve", "unexpected argument '%s'", argv[optind]);
    if (!eo.redis_url) eo.stock = ENGINE_STOCK_DB;
    if (stock_given && !eo.redis_url)
        return weft_cli_usage_error("orders serve", "--stock needs --redis");
    char host[64];
    long port;
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host ||
        weft_cli_parse_int(colon + 1, 0, 65535, &port) < 0)
        return weft_cli_usage_error("orders serve", "--listen must be HOST:PORT, got '%s'", listen);
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    char err[512], mock_url[128], url[128];
    orders_mock_t *mock = NULL;
    if (!eo.payment_url) {
        int rc = orders_mock_start(NULL, &mock, mock_url, sizeof mock_url);
        if (rc < 0)
            return weft_cli_error("orders serve", WEFT_EXIT_FAILED,
                                  "cannot start the built-in payment mock: %s", strerror(-rc));
        eo.payment_url = mock_url;
        printf("weft orders: no --payment given: using the built-in payment mock at %s\n",
               mock_url);
    }
    engine_t *e = NULL;
    int rc = engine_create(&eo, &e, err, sizeof err);
    if (rc < 0) {
        orders_mock_stop(mock);
        return weft_cli_error("orders serve",
                              rc == -ENOMEM   ? WEFT_EXIT_INTERNAL
                              : rc == -EINVAL ? WEFT_EXIT_USAGE /* a bad --db or --redis URL */
                                              : WEFT_EXIT_FAILED,
                              "%s", err);
    }
    api_t *api = NULL;
    rc = api_start(e, host, (int)port, (int)threads, &api, url, sizeof url, err, sizeof err);
    if (rc < 0) {
        engine_destroy(e);
        orders_mock_stop(mock);
        return weft_cli_error("orders serve", rc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_FAILED,
                              "%s", err);
    }
    printf("weft orders: listening on %s\n", url);
    fflush(stdout);
    int sig;
    const struct timespec every = {.tv_sec = 10};
    while ((sig = sigtimedwait(&set, NULL, &every)) < 0) malloc_trim(0);
    fprintf(stderr, "weft orders: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    api_stop(api);
    engine_destroy(e);
    orders_mock_stop(mock);
    return WEFT_EXIT_OK;
}

WEFT_ORDERS_COMMAND("serve", cmd_serve, "run the order engine (HTTP API, stages, resume)")
