/* `weft orders`: dispatches to the order engine's commands (orders.h). */
#include "orders/orders.h"

static int cmd_orders(int argc, char **argv)
{
    return weft_cli_dispatch("orders",
                             "A real-time order engine: orders over HTTP through create, stock, "
                             "payment,\nlogistics and statistics, on SQLite (default) or "
                             "PostgreSQL, with Redis.\nExample:\n"
                             "  weft orders serve     # http://127.0.0.1:8080, SQLite, built-in "
                             "payment mock\n",
                             argc, argv);
}

WEFT_COMMAND("orders", cmd_orders, "a real-time order engine on Redis and PostgreSQL/SQLite")
