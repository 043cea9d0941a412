/* `weft orders`: dispatches to the order engine's subcommands (orders.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orders/orders.h"

#define MAX_SUB 16
static struct {
    const char *name, *summary;
    weft_cmd_fn fn;
} subs[MAX_SUB];
static int nsubs;

void orders_cmd_register(const char *name, weft_cmd_fn fn, const char *summary)
{
    if (nsubs == MAX_SUB) abort();
    subs[nsubs].name = name;
    subs[nsubs].fn = fn;
    subs[nsubs].summary = summary;
    nsubs++;
}

static int cmp_sub(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

static void usage(FILE *f)
{
    qsort(subs, (size_t)nsubs, sizeof subs[0], cmp_sub);
    fprintf(f, "usage: weft orders COMMAND [OPTIONS]\n\n"
               "A real-time order engine: orders over HTTP through create, stock, payment,\n"
               "logistics and statistics, on SQLite (default) or PostgreSQL, with Redis.\n\n");
    for (int i = 0; i < nsubs; i++) fprintf(f, "  %-13s %s\n", subs[i].name, subs[i].summary);
    fprintf(f, "\n'weft orders COMMAND --help' describes each one. Example:\n"
               "  weft orders serve            # http://127.0.0.1:8080, SQLite, built-in payment "
               "mock\n"
               "Exit codes: 0 success, 1 some work failed, 2 usage or input error, 3 internal "
               "error.\n");
}

static int cmd_orders(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return WEFT_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return WEFT_EXIT_OK;
    }
    for (int i = 0; i < nsubs; i++)
        if (strcmp(subs[i].name, argv[1]) == 0) return subs[i].fn(argc - 1, argv + 1);
    return weft_cli_usage_error("orders", "unknown command '%s'", argv[1]);
}

WEFT_COMMAND("orders", cmd_orders, "a real-time order engine on Redis and PostgreSQL/SQLite")
